import { sniffStringSpan } from '../protocol/sniff.js';
import type { Frame } from '../pipeline/frame.js';

const EQUALS = 0x3d;

/**
 * Decoded byte count of the base64 string member `key` of an audio frame, read without parsing it.
 * Falls back to the frame size when the member cannot be located cheaply.
 */
export function base64Bytes(frame: Frame, key: string): number {
  const buf = frame.bytes;
  const span = sniffStringSpan(buf, key);
  if (!span) return Math.floor((frame.size * 3) / 4);
  const [start, end] = span;
  let pad = 0;
  if (end > start && buf[end - 1] === EQUALS) pad = end - 1 > start && buf[end - 2] === EQUALS ? 2 : 1;
  return Math.floor(((end - start) * 3) / 4) - pad;
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
