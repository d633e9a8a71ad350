import { sniffStringSpan } from '../protocol/sniff.js';
import type { Frame } from '../pipeline/frame.js';

const QUOTE = 0x22;
const COLON = 0x3a;
const CLOSE_BRACE = 0x7d;
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
  readonly #key: Buffer;
  /** Offset of the first base64 character; -1 until learned. */
  #start = -1;
  /** Bytes after the closing quote (`}` and whitespace). */
  #tail = -1;

  constructor(name: string) {
    this.#name = name;
    this.#key = Buffer.from(`"${name}"`, 'latin1');
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
    for (let i = end + 1; i < buf.length; i++) {
      const c = buf[i];
      if (c !== CLOSE_BRACE && !isSpace(c)) return false;
    }
    // `"name"` then optional spaces, `:`, optional spaces, right before the opening quote.
    let p = start - 2;
    while (p > 0 && isSpace(buf[p])) p--;
    if (buf[p] !== COLON) return false;
    p--;
    while (p > 0 && isSpace(buf[p])) p--;
    const key = this.#key;
    const k0 = p - key.length + 1;
    if (k0 < 1) return false;
    for (let i = 0; i < key.length; i++) if (buf[k0 + i] !== key[i]) return false;
    return true;
  }
}

/**
 * The proxy's input-audio clock: where in wall time (proxy clock) each stretch of appended audio
 * was forwarded, so server audio positions (`audio_end_ms`) can be mapped back to the moment the
 * proxy saw that audio. A fixed ring of the most recent appends; O(1) per append.
 */
export class AudioClock {
  readonly #ends: Float64Array;
  readonly #times: Float64Array;
  #next = 0;
  #count = 0;
  /** Total audio appended so far (ms). */
  totalMs = 0;

  constructor(capacity = 512) {
    this.#ends = new Float64Array(capacity);
    this.#times = new Float64Array(capacity);
  }

  push(ms: number, at: number): void {
    this.totalMs += ms;
    this.#ends[this.#next] = this.totalMs;
    this.#times[this.#next] = at;
    this.#next = (this.#next + 1) % this.#ends.length;
    if (this.#count < this.#ends.length) this.#count++;
  }

  /**
   * Proxy time at which the audio at position `posMs` was captured, assuming the client sends each
   * chunk as soon as it is complete: the forward time of the chunk holding `posMs`, less the audio
   * that followed `posMs` inside that chunk. Null when the position is outside the ring.
   */
  timeOf(posMs: number): number | null {
    const cap = this.#ends.length;
    if (this.#count === 0 || posMs > this.totalMs) return null;
    // Walk newest to oldest: the wanted chunk is almost always among the last few.
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#next - 1 - k + cap) % cap;
      const end = this.#ends[i]!;
      // The oldest retained chunk starts at 0 unless the ring has wrapped (then: extrapolate).
      const start = k + 1 < this.#count ? this.#ends[(i - 1 + cap) % cap]! : this.#count < cap ? 0 : -Infinity;
      if (posMs <= end && (posMs > start || (start === 0 && posMs === 0))) return this.#times[i]! - (end - posMs);
    }
    return null;
  }
}
