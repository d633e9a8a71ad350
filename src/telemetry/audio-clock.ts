// The audio byte counter and input-audio clock moved to the relay's audio meter (the telemetry
// filter no longer sees audio frames); re-exported here for existing imports.
export { AudioClock, Base64Member } from '../pipeline/audio-meter.js';
