import type { JsonObject } from '../pipeline/frame.js';
import { asNumber, asObject, asString } from './json.js';

/*
 * A realtime session's audio formats, read one way by every concern that turns audio bytes into
 * time: telemetry's durations, metering's audio tokens, truncation's context estimate.
 *
 * GA states a format as an object under `audio.input.format` / `audio.output.format`:
 * `{type: "audio/pcm", rate: 24000}` (24 kHz is GA's only rate), `{type: "audio/pcmu"}`,
 * `{type: "audio/pcma"}`. The beta (preview) protocol states it as a string in
 * `input_audio_format` / `output_audio_format`: `pcm16`, `g711_ulaw`, `g711_alaw`.
 */

export type AudioFormatName = 'pcm16' | 'g711_ulaw' | 'g711_alaw';

export interface AudioFormat {
  /** Beta's name of the format (telemetry reports formats by it, whichever protocol stated them). */
  readonly name: AudioFormatName;
  readonly bytesPerMs: number;
}

/** 24 kHz mono PCM16: GA's only PCM rate and the API's default format. */
export const PCM16_BYTES_PER_MS = 48;
/** G.711 (8 kHz, a byte a sample): the most audio per byte of any format the API takes. */
export const G711_BYTES_PER_MS = 8;

/**
 * PCM sample rates believed (Hz). An upstream echoes the rate a client asked, and one that echoed
 * `rate: 0` or `-24000` made telemetry's audio milliseconds bytes / 0 = Infinity or negative:
 * summed into the tenant's totals, `rtproxy_audio_duration_total` stayed +Inf or went down (until
 * 2026-12-06). Outside this range GA's only rate, 24 kHz, is assumed.
 */
const MIN_PCM_RATE = 8_000;
const MAX_PCM_RATE = 48_000;
const DEFAULT_PCM_RATE = 24_000;

function pcmBytesPerMs(rate: number | null): number {
  const believed = rate !== null && rate >= MIN_PCM_RATE && rate <= MAX_PCM_RATE ? rate : DEFAULT_PCM_RATE;
  return (believed * 2) / 1000;
}

const format = (name: AudioFormatName, bytesPerMs: number): AudioFormat => Object.freeze({ name, bytesPerMs });
const BETA_FORMATS: ReadonlyMap<string, AudioFormat> = new Map([
  ['pcm16', format('pcm16', PCM16_BYTES_PER_MS)],
  ['g711_ulaw', format('g711_ulaw', G711_BYTES_PER_MS)],
  ['g711_alaw', format('g711_alaw', G711_BYTES_PER_MS)],
]);
const GA_G711_FORMATS: ReadonlyMap<string, AudioFormat> = new Map([
  ['audio/pcmu', format('g711_ulaw', G711_BYTES_PER_MS)],
  ['audio/pcma', format('g711_alaw', G711_BYTES_PER_MS)],
]);

/** A format as GA (an object) or beta (a string) states it; null for one the proxy does not know. */
export function audioFormatOf(stated: unknown): AudioFormat | null {
  if (typeof stated === 'string') return BETA_FORMATS.get(stated) ?? null;
  const ga = asObject(stated);
  const type = asString(ga?.['type']);
  if (type === 'audio/pcm') return format('pcm16', pcmBytesPerMs(asNumber(ga?.['rate'])));
  return type === null ? null : (GA_G711_FORMATS.get(type) ?? null);
}

/**
 * The format a session (or a `session.update`'s `session`) states for `direction`: GA's
 * `audio.<direction>.format` where given, else beta's `<direction>_audio_format`. Undefined when
 * it states none (`null` is none too: neither protocol takes it as a format).
 */
export function statedAudioFormat(session: JsonObject, direction: 'input' | 'output'): unknown {
  const ga = asObject(asObject(session['audio'])?.[direction])?.['format'];
  if (ga !== undefined && ga !== null) return ga;
  const beta = session[`${direction}_audio_format`];
  return beta === null ? undefined : beta;
}

/**
 * Input audio bytes per millisecond a session (or update) states, read so the audio is never
 * counted short, by the budgets (metering's reservations, truncation's context): the denser of
 * GA's and beta's members when both are stated; a format stated but not known as G.711's, the densest; a PCM rate above 24 kHz as 24 kHz (the upstream echoes a
 * rate a client asked, and plays GA's only one). Null when the session states no input format.
 */
export function budgetedInputBytesPerMs(session: JsonObject): number | null {
  // Both protocols' members, the denser: a preview upstream reads the beta one and leaves GA's
  // aside (as for max_output_tokens). Until 2026-12-07 GA's won wherever it was given, and an update
  // naming GA's PCM16 beside beta's G.711 had the G.711 sent behind it sized a sixth of its length
  // (test/metering/redteam-18t-both-format-members.test.ts).
  let budgeted: number | null = null;
  for (const stated of [asObject(asObject(session['audio'])?.['input'])?.['format'], session['input_audio_format']]) {
    if (stated === undefined || stated === null) continue;
    const format = audioFormatOf(stated);
    const bytesPerMs = format === null ? G711_BYTES_PER_MS : Math.min(format.bytesPerMs, PCM16_BYTES_PER_MS);
    budgeted = budgeted === null ? bytesPerMs : Math.min(budgeted, bytesPerMs);
  }
  return budgeted;
}

/**
 * An input audio buffer's length in milliseconds when parts of it were appended under different
 * formats: each part keeps the size of the format in force while it was appended (the upstream read
 * it so; a later switch does not resize audio already sent). Positions are a running count of what
 * was appended, in the caller's unit (decoded bytes, or base64 characters): `msOf` sizes a stretch
 * of them at a rate. Metering's conversation estimate and the truncation filter both size committed
 * turns with it.
 */
export class PartedAudioBuffer {
  #bytesPerMs: number;
  readonly #msOf: (units: number, bytesPerMs: number) => number;
  /** Where the buffer last started (a commit, a clear). */
  #bufferStart = 0;
  /** Where the part in the format now in force began. */
  #partStart = 0;
  /** The buffer's audio appended under formats no longer in force. */
  #earlierMs = 0;

  constructor(bytesPerMs: number, msOf: (units: number, bytesPerMs: number) => number) {
    this.#bytesPerMs = bytesPerMs;
    this.#msOf = msOf;
  }

  /** Input audio bytes per millisecond in force now. */
  get bytesPerMs(): number {
    return this.#bytesPerMs;
  }

  /** The format in force from `position` on: the part appended before keeps its size. */
  switchAt(bytesPerMs: number, position: number): void {
    if (bytesPerMs === this.#bytesPerMs) return;
    this.#earlierMs = this.ms(position);
    this.#partStart = position;
    this.#bytesPerMs = bytesPerMs;
  }

  /** The format the part in force now was in all along (no part closed: nothing was known before). */
  retune(bytesPerMs: number): void {
    this.#bytesPerMs = bytesPerMs;
  }

  /** Milliseconds of audio appended since the buffer started, up to `position`, each part at its own format. */
  ms(position: number): number {
    const since = Math.max(this.#partStart, this.#bufferStart);
    return this.#earlierMs + (position > since ? this.#msOf(position - since, this.#bytesPerMs) : 0);
  }

  /** The buffer starts again at `position` (a commit, a clear). */
  restart(position: number): void {
    this.#bufferStart = position;
    this.#earlierMs = 0;
  }
}
