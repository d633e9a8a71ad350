/**
 * Audio for the simulator: a cheap speech-like synthesiser (voiced harmonics under a syllable
 * envelope), G.711 μ-law / A-law codecs, and decoding of client audio for VAD.
 *
 * PCM16 buffers are little-endian Int16Array views: Node runs on little-endian hosts only.
 */

export type AudioFormatKind = 'pcm' | 'pcmu' | 'pcma';

export const PCM_RATE = 24_000;
export const G711_RATE = 8_000;

export function sampleRateOf(kind: AudioFormatKind): number {
  return kind === 'pcm' ? PCM_RATE : G711_RATE;
}

export function bytesPerMs(kind: AudioFormatKind): number {
  return kind === 'pcm' ? 48 : 8;
}

/** Deterministic PRNG (mulberry32) so a given text always sounds and chunks the same. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const TABLE_SIZE = 1024;
/** One period of a vowel-like waveform: harmonics shaped by two broad formant bumps. */
const VOICED_TABLE: Float32Array = (() => {
  const table = new Float32Array(TABLE_SIZE);
  const harmonics = 14;
  let peak = 0;
  for (let i = 0; i < TABLE_SIZE; i++) {
    const x = (i / TABLE_SIZE) * 2 * Math.PI;
    let v = 0;
    for (let k = 1; k <= harmonics; k++) {
      const formant = 1 + 1.6 * Math.exp(-((k - 4) ** 2) / 3) + 0.8 * Math.exp(-((k - 10) ** 2) / 6);
      v += (formant / k) * Math.sin(k * x + k * 0.7);
    }
    table[i] = v;
    peak = Math.max(peak, Math.abs(v));
  }
  for (let i = 0; i < TABLE_SIZE; i++) table[i]! /= peak;
  return table;
})();

const VOICE_PITCH: Readonly<Record<string, number>> = {
  alloy: 170, ash: 120, ballad: 130, coral: 200, echo: 115, sage: 185, shimmer: 210, verse: 125, marin: 195, cedar: 118,
};

export interface SpeechOptions {
  /** Milliseconds per character of text (before `speed`). */
  readonly msPerChar?: number;
  readonly minMs?: number;
  readonly speed?: number;
  readonly voice?: string;
  /** Peak amplitude, 0..1 of full scale. */
  readonly level?: number;
}

export function speechDurationMs(text: string, options: SpeechOptions = {}): number {
  return speechDurationMsOf(text.length, options);
}

/** speechDurationMs of a text of `chars` characters (the duration depends on its length only). */
export function speechDurationMsOf(chars: number, options: SpeechOptions = {}): number {
  const msPerChar = options.msPerChar ?? 65;
  const speed = options.speed ?? 1;
  return Math.max(options.minMs ?? 300, Math.round((chars * msPerChar) / speed));
}

/**
 * Speech-like PCM16 at 24 kHz: a pitch contour per word, syllable-rate amplitude envelope,
 * near-silent gaps at spaces and punctuation, and a little breath noise.
 */
export function synthesizeSpeech(text: string, options: SpeechOptions = {}): Int16Array {
  const slices = speechSlices(text, options, Infinity);
  let step = slices.next();
  while (!step.done) step = slices.next();
  return step.value;
}

/**
 * synthesizeSpeech, `sliceSamples` samples at a time: the generator yields between slices and returns
 * the whole PCM, so that a caller can let other work run meanwhile (a long answer is seconds of
 * computation).
 */
export function* speechSlices(text: string, options: SpeechOptions, sliceSamples: number): Generator<void, Int16Array, void> {
  const durationMs = speechDurationMs(text, options);
  const n = Math.round((durationMs * PCM_RATE) / 1000);
  const out = new Int16Array(n);
  const rand = prng(hashString(text) ^ hashString(options.voice ?? 'marin'));
  const basePitch = VOICE_PITCH[options.voice ?? 'marin'] ?? 170;
  const level = (options.level ?? 0.4) * 32767;
  const chars = text.length > 0 ? text : ' ';
  const samplesPerChar = n / chars.length;
  const syllableSamples = Math.round(0.19 * PCM_RATE);
  let phase = 0;
  let wordPitch = basePitch;
  let lastCharIndex = -1;
  let gain = 0;
  for (let start = 0; start < n; start += sliceSamples) {
    if (start > 0) yield;
    const end = Math.min(n, start + sliceSamples);
    for (let i = start; i < end; i++) {
      const ci = Math.min(chars.length - 1, Math.floor(i / samplesPerChar));
      const ch = chars.charCodeAt(ci);
      if (ci !== lastCharIndex) {
        lastCharIndex = ci;
        if (ci === 0 || chars.charCodeAt(ci - 1) === 32) wordPitch = basePitch * (0.88 + 0.24 * rand());
      }
      const voiced = !(ch === 32 || ch === 44 || ch === 46 || ch === 63 || ch === 33 || ch === 58 || ch === 59);
      const progress = i / n;
      // Declination: pitch drifts down over the utterance, with a slow vibrato.
      const pitch = wordPitch * (1.08 - 0.16 * progress) * (1 + 0.02 * Math.sin((2 * Math.PI * 5 * i) / PCM_RATE));
      phase += (pitch * TABLE_SIZE) / PCM_RATE;
      if (phase >= TABLE_SIZE) phase -= TABLE_SIZE;
      const syllable = Math.sin((Math.PI * (i % syllableSamples)) / syllableSamples);
      const target = voiced ? 0.35 + 0.65 * syllable * syllable : 0.02;
      // One-pole smoothing avoids clicks at gap edges (~5 ms).
      gain += (target - gain) * 0.008;
      const fadeIn = Math.min(1, i / 240);
      const fadeOut = Math.min(1, (n - i) / 480);
      const sample = (VOICED_TABLE[phase | 0]! * gain + (rand() - 0.5) * 0.03) * fadeIn * fadeOut;
      out[i] = Math.max(-32768, Math.min(32767, Math.round(sample * level)));
    }
  }
  return out;
}

/** Low-level noise floor (default ~-66 dBFS): realistic "silence" that a VAD must reject. */
export function silence(ms: number, rate = PCM_RATE, noiseLevel = 0.0005, seed = 7): Int16Array {
  const n = Math.round((ms * rate) / 1000);
  const out = new Int16Array(n);
  const rand = prng(seed);
  const amp = noiseLevel * 32767;
  for (let i = 0; i < n; i++) out[i] = Math.round((rand() * 2 - 1) * amp);
  return out;
}

export function concatPcm(parts: readonly Int16Array[]): Int16Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Int16Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** 24 kHz → 8 kHz by averaging triples: a crude low-pass, good enough for telephony output. */
export function downsample3(pcm: Int16Array): Int16Array {
  const n = Math.floor(pcm.length / 3);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round((pcm[3 * i]! + pcm[3 * i + 1]! + pcm[3 * i + 2]!) / 3);
  return out;
}

const ULAW_BIAS = 0x84;
const ULAW_CLIP = 32635;

export function linearToUlaw(sample: number): number {
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  if (s > ULAW_CLIP) s = ULAW_CLIP;
  s += ULAW_BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

export function ulawToLinear(byte: number): number {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

const ALAW_SEGMENT_END = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

export function linearToAlaw(sample: number): number {
  let v = sample >> 3;
  let mask: number;
  if (v >= 0) {
    mask = 0xd5;
  } else {
    mask = 0x55;
    v = -v - 1;
  }
  let seg = 0;
  while (seg < 8 && v > ALAW_SEGMENT_END[seg]!) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  const aval = (seg << 4) | (seg < 2 ? (v >> 1) & 0x0f : (v >> seg) & 0x0f);
  return aval ^ mask;
}

export function alawToLinear(byte: number): number {
  const a = byte ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

/** Encode 24 kHz PCM16 into the wire bytes of `kind`. */
export function encodeAudio(pcm24k: Int16Array, kind: AudioFormatKind): Buffer {
  if (kind === 'pcm') return Buffer.from(pcm24k.buffer, pcm24k.byteOffset, pcm24k.byteLength);
  const narrow = downsample3(pcm24k);
  const out = Buffer.allocUnsafe(narrow.length);
  const encode = kind === 'pcmu' ? linearToUlaw : linearToAlaw;
  for (let i = 0; i < narrow.length; i++) out[i] = encode(narrow[i]!);
  return out;
}

/** Decode wire bytes of `kind` to PCM16 at the format's own rate (24 kHz or 8 kHz). */
export function decodeAudio(bytes: Buffer, kind: AudioFormatKind): Int16Array {
  if (kind === 'pcm') {
    const even = bytes.length & ~1;
    if (bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, even / 2);
    const copy = new Int16Array(even / 2);
    for (let i = 0; i < copy.length; i++) copy[i] = bytes.readInt16LE(2 * i);
    return copy;
  }
  const decode = kind === 'pcmu' ? ulawToLinear : alawToLinear;
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = decode(bytes[i]!);
  return out;
}

export function pcmToBase64(pcm: Int16Array): string {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).toString('base64');
}

/** RMS of a PCM16 window as a fraction of full scale. */
export function rms(samples: Int16Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i++) {
    const v = samples[i]!;
    sum += v * v;
  }
  const count = end - start;
  return count > 0 ? Math.sqrt(sum / count) / 32768 : 0;
}
