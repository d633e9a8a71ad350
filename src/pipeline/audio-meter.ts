import { base64DecodedBytes, COLON, QUOTE } from '../protocol/json-bytes.js';
import { MAX_KEPT_ID_CHARS } from '../protocol/json.js';
import { sniffStringSpan } from '../protocol/sniff.js';
import type { Report } from './reports.js';

/**
 * Audio accounting done by the relay itself, so that no filter has to see audio frames: the
 * telemetry filter reads these plain counters at turn and response boundaries and learns the
 * moments it needs (first audio of a response, first input after idle) from one report each.
 *
 * Cost per audio frame: a handful of byte reads (`Base64Member`) and a few additions; no
 * allocation except the first frame of each response (one small record).
 */


const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Decoded byte count of an audio frame's base64 member (`audio` / `delta`), in O(1) per frame.
 *
 * A sender serialises every audio frame the same way, so the base64 string starts at the same
 * offset and is followed by the same few bytes. The first frame is located with the sniffer; later
 * frames only confirm the layout with a handful of byte reads (quote, colon, key, closing brace)
 * and take the length from the frame size. A layout change falls back to the sniffer once.
 */
export class Base64Member {
  readonly #name: string;
  /** The key's first and last characters (the check reads no other memory than the frame). */
  readonly #first: number;
  readonly #last: number;
  readonly #keyLength: number;
  /** Offset of the first base64 character; -1 until learned. */
  #start = -1;
  /** Bytes after the closing quote (`}` and whitespace, or further members). */
  #tail = -1;

  constructor(name: string) {
    this.#name = name;
    this.#first = name.charCodeAt(0);
    this.#last = name.charCodeAt(name.length - 1);
    this.#keyLength = name.length;
  }

  /** Decoded bytes of the member in `frame` (a Frame or its bytes). */
  bytes(frame: Buffer | { readonly bytes: Buffer }): number {
    const buf = Buffer.isBuffer(frame) ? frame : frame.bytes;
    if (this.#start < 0 || !this.#fits(buf)) {
      const span = sniffStringSpan(buf, this.#name);
      if (!span) return Math.floor((buf.length * 3) / 4);
      this.#start = span[0];
      this.#tail = buf.length - span[1];
    }
    return base64DecodedBytes(buf, this.#start, buf.length - this.#tail);
  }

  #fits(buf: Buffer): boolean {
    const start = this.#start;
    const end = buf.length - this.#tail;
    if (buf[start - 1] !== QUOTE) return false;
    // `"name"`, optional spaces, `:`, optional spaces, right before the opening quote.
    let p = start - 2;
    while (p > 0 && isSpace(buf[p])) p--;
    if (buf[p] !== COLON) return false;
    p--;
    while (p > 0 && isSpace(buf[p])) p--;
    const k0 = p - this.#keyLength;
    if (!(k0 >= 1 && buf[p] === QUOTE && buf[p - 1] === this.#last && buf[k0] === this.#first && buf[k0 - 1] === QUOTE)) return false;
    // Base64 has no quote: the string ends at its first one, which must be where the learned layout
    // ends it. Otherwise `end` is a later member's closing quote (`…"<b64>","event_id":"x"}` after
    // a layout ending in `"}`) and that member's text would count as audio. One native scan (memchr).
    return buf.indexOf(QUOTE, start) === end;
  }
}

/**
 * The input-audio clock: where in proxy time each stretch of appended audio was forwarded, so
 * server audio positions (`audio_end_ms`) can be mapped back to the moment the proxy saw that
 * audio. A fixed ring of the most recent appends; O(1) per append. Positions are in any unit
 * (ms in the telemetry tests, decoded bytes in the relay); `timeOf` converts with `unitsPerMs`.
 */
export class AudioClock {
  /** Interleaved (audio end position, proxy time) pairs: one array, one allocation. */
  readonly #ring: Float64Array;
  readonly #capacity: number;
  #next = 0;
  #count = 0;
  /** Total audio appended so far (in the caller's unit). */
  totalMs = 0;

  constructor(capacity = 128) {
    this.#capacity = capacity;
    this.#ring = new Float64Array(capacity * 2);
  }

  push(amount: number, at: number): void {
    this.totalMs += amount;
    const i = this.#next;
    this.#ring[2 * i] = this.totalMs;
    this.#ring[2 * i + 1] = at;
    this.#next = i + 1 === this.#capacity ? 0 : i + 1;
    if (this.#count < this.#capacity) this.#count++;
  }

  /**
   * Proxy time at which the audio at position `pos` was captured, assuming the client sends each
   * chunk as soon as it is complete: the forward time of the chunk holding `pos`, less the audio
   * that followed `pos` inside that chunk. Null when the position is outside the ring.
   */
  timeOf(pos: number, unitsPerMs = 1): number | null {
    const cap = this.#capacity;
    if (this.#count === 0 || pos > this.totalMs) return null;
    // Walk newest to oldest: the wanted chunk is almost always among the last few.
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#next - 1 - k + cap) % cap;
      const end = this.#ring[2 * i]!;
      // The oldest retained chunk starts at 0 unless the ring has wrapped (then: extrapolate).
      const start = k + 1 < this.#count ? this.#ring[2 * ((i - 1 + cap) % cap)]! : this.#count < cap ? 0 : -Infinity;
      if (pos <= end && (pos > start || (start === 0 && pos === 0))) return this.#ring[2 * i + 1]! - (end - pos) / unitsPerMs;
    }
    return null;
  }
}

/** Output audio of one response, as forwarded to the client. */
export interface ResponseAudio {
  /** Decoded audio bytes. */
  bytes: number;
  frames: number;
  /** Proxy time of its first audio frame. */
  readonly firstAt: number;
}

/** What filters may read of the relay's audio accounting (SessionContext.audio). */
export interface AudioCounters {
  /** Decoded bytes / frames / wire bytes of `input_audio_buffer.append` the client sent (before the filters). */
  readonly inputBytes: number;
  readonly inputFrames: number;
  readonly inputWireBytes: number;
  /** Decoded bytes / frames / wire bytes of output audio deltas forwarded to the client. */
  readonly outputBytes: number;
  readonly outputFrames: number;
  readonly outputWireBytes: number;
  /**
   * Proxy time at which the input audio at cumulative decoded-byte position `posBytes` was
   * forwarded (see AudioClock); null when it is no longer in the ring.
   */
  inputTimeOf(posBytes: number, bytesPerMs: number): number | null;
  /** Output audio of a response, while it is among the session's most recent responses. */
  response(responseId: string): Readonly<ResponseAudio> | undefined;
  /** Report `input_audio_started` once, at the next append (push-to-talk turns start there). */
  watchInputStart(): void;
}

/** Responses whose audio records are kept (oldest dropped first): enough for concurrent + recent ones. */
const MAX_RESPONSES = 32;

/**
 * The relay's audio accounting for one session. The relay calls `input` / `output` for each audio
 * frame; filters read it through `AudioCounters`.
 */
export class AudioMeter implements AudioCounters {
  inputBytes = 0;
  inputFrames = 0;
  inputWireBytes = 0;
  outputBytes = 0;
  outputFrames = 0;
  outputWireBytes = 0;
  readonly #report: (report: Report) => void;
  readonly #in = new Base64Member('audio');
  readonly #out = new Base64Member('delta');
  /** Allocated at the first append (2 KiB): idle sessions stay small. */
  #clock: AudioClock | null = null;
  #responses: Map<string, ResponseAudio> | null = null;
  /** The record of the response that received audio last: consecutive deltas skip the map. */
  #lastId: string | null = null;
  #last: ResponseAudio | null = null;
  #watchInput = false;

  constructor(report: (report: Report) => void) {
    this.#report = report;
  }

  /** One `input_audio_buffer.append` (its frame bytes), forwarded at proxy time `now`. */
  input(bytes: Buffer, now: number): void {
    const n = this.#in.bytes(bytes);
    this.inputBytes += n;
    this.inputFrames++;
    this.inputWireBytes += bytes.length;
    (this.#clock ??= new AudioClock()).push(n, now);
    if (this.#watchInput) {
      this.#watchInput = false;
      this.#report({ kind: 'input_audio_started', at: now });
    }
  }

  /** One output audio delta of `responseId` (null: unknown) forwarded to the client at `now`. */
  output(responseId: string | null, bytes: Buffer, now: number): void {
    const n = this.#out.bytes(bytes);
    this.outputBytes += n;
    this.outputFrames++;
    this.outputWireBytes += bytes.length;
    // An id longer than any the session keeps names no response it knows (the conversation view ends
    // the session on one): counted in the totals only, never kept (a delta's id may be as long as the frame).
    if (responseId === null || responseId.length > MAX_KEPT_ID_CHARS) return;
    let rec = responseId === this.#lastId ? this.#last : null;
    if (rec === null) {
      const map = (this.#responses ??= new Map());
      rec = map.get(responseId) ?? null;
      if (rec === null) {
        rec = { bytes: 0, frames: 0, firstAt: now };
        map.set(responseId, rec);
        if (map.size > MAX_RESPONSES) map.delete(map.keys().next().value!);
        this.#report({ kind: 'output_audio_started', responseId, at: now });
      }
      this.#lastId = responseId;
      this.#last = rec;
    }
    rec.bytes += n;
    rec.frames++;
  }

  inputTimeOf(posBytes: number, bytesPerMs: number): number | null {
    return this.#clock === null ? null : this.#clock.timeOf(posBytes, bytesPerMs);
  }

  response(responseId: string): Readonly<ResponseAudio> | undefined {
    return this.#responses?.get(responseId);
  }

  watchInputStart(): void {
    this.#watchInput = true;
  }
}
