import { sniffStringSpan } from '../protocol/sniff.js';
import type { Frame } from '../pipeline/frame.js';

const QUOTE = 0x22;
const COLON = 0x3a;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const EQUALS = 0x3d;

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

  bytes(frame: Frame): number {
    const buf = frame.bytes;
    if (this.#start < 0 || !this.#fits(buf)) {
      const span = sniffStringSpan(buf, this.#name);
      if (!span) return Math.floor((buf.length * 3) / 4);
      this.#start = span[0];
      this.#tail = buf.length - span[1];
    }
    const end = buf.length - this.#tail;
    let pad = 0;
    if (buf[end - 1] === EQUALS) pad = buf[end - 2] === EQUALS ? 2 : 1;
    return Math.floor(((end - this.#start) * 3) / 4) - pad;
  }

  #fits(buf: Buffer): boolean {
    const start = this.#start;
    const end = buf.length - this.#tail;
    if (end < start || buf[start - 1] !== QUOTE || buf[end] !== QUOTE) return false;
    // After the string: only `}`/whitespace, or a further member (`,"…`) as some senders put ids last.
    const next = buf[end + 1];
    if (next !== COMMA) {
      for (let i = end + 1; i < buf.length; i++) {
        const c = buf[i];
        if (c !== CLOSE_BRACE && !isSpace(c)) return false;
      }
    }
    // `"name"`, optional spaces, `:`, optional spaces, right before the opening quote.
    let p = start - 2;
    while (p > 0 && isSpace(buf[p])) p--;
    if (buf[p] !== COLON) return false;
    p--;
    while (p > 0 && isSpace(buf[p])) p--;
    const k0 = p - this.#keyLength;
    return k0 >= 1 && buf[p] === QUOTE && buf[p - 1] === this.#last && buf[k0] === this.#first && buf[k0 - 1] === QUOTE;
  }
}

/**
 * The proxy's input-audio clock: where in wall time (proxy clock) each stretch of appended audio
 * was forwarded, so server audio positions (`audio_end_ms`) can be mapped back to the moment the
 * proxy saw that audio. A fixed ring of the most recent appends; O(1) per append.
 */
export class AudioClock {
  /** Interleaved (audio end position ms, proxy time) pairs: one array, one allocation. */
  readonly #ring: Float64Array;
  readonly #capacity: number;
  #next = 0;
  #count = 0;
  /** Total audio appended so far (ms). */
  totalMs = 0;

  constructor(capacity = 128) {
    this.#capacity = capacity;
    this.#ring = new Float64Array(capacity * 2);
  }

  push(ms: number, at: number): void {
    this.totalMs += ms;
    const i = this.#next;
    this.#ring[2 * i] = this.totalMs;
    this.#ring[2 * i + 1] = at;
    this.#next = i + 1 === this.#capacity ? 0 : i + 1;
    if (this.#count < this.#capacity) this.#count++;
  }

  /**
   * Proxy time at which the audio at position `posMs` was captured, assuming the client sends each
   * chunk as soon as it is complete: the forward time of the chunk holding `posMs`, less the audio
   * that followed `posMs` inside that chunk. Null when the position is outside the ring.
   */
  timeOf(posMs: number): number | null {
    const cap = this.#capacity;
    if (this.#count === 0 || posMs > this.totalMs) return null;
    // Walk newest to oldest: the wanted chunk is almost always among the last few.
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#next - 1 - k + cap) % cap;
      const end = this.#ring[2 * i]!;
      // The oldest retained chunk starts at 0 unless the ring has wrapped (then: extrapolate).
      const start = k + 1 < this.#count ? this.#ring[2 * ((i - 1 + cap) % cap)]! : this.#count < cap ? 0 : -Infinity;
      if (posMs <= end && (posMs > start || (start === 0 && posMs === 0))) return this.#ring[2 * i + 1]! - (end - posMs);
    }
    return null;
  }
}
