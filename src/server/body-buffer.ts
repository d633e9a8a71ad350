/** The first allocation of a body whose first chunk is smaller (bounded by its expected length). */
const FIRST_CAPACITY = 1024;

/**
 * A request body being received, kept in one buffer that grows by doubling (never past the length
 * the body is expected to have: its Content-Length, else its route's limit), so that what it holds
 * is at most about twice the bytes received plus FIRST_CAPACITY, however the sender splits it.
 *
 * Until 2026-12-06 every chunk uWS handed over was kept as a Buffer of its own: a chunked body sent
 * as one-byte chunks cost ~100 bytes of heap per byte while the memory budget counted one, so eight
 * forged webhooks (no key) held ~26 MiB for 256 KiB counted
 * (test/security/redteam-15-chunked-bodies.test.ts).
 */
export class BodyBuffer {
  readonly #expected: number;
  #buffer: Buffer | null = null;
  #length = 0;

  /** `expected`: the most bytes this body may have (the caller refuses a chunk that would pass it). */
  constructor(expected: number) {
    this.#expected = expected;
  }

  /** Bytes received so far. */
  get length(): number {
    return this.#length;
  }

  /** Copies a chunk in (uWS's chunk is invalid once its callback returns). */
  append(chunk: ArrayBuffer): void {
    const bytes = new Uint8Array(chunk);
    const needed = this.#length + bytes.byteLength;
    if (bytes.byteLength === 0) return;
    let buffer = this.#buffer;
    if (buffer === null || needed > buffer.length) {
      const doubled = buffer === null ? FIRST_CAPACITY : 2 * buffer.length;
      // At least what is needed (even past `expected`: the caller's limit check is the bound).
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, Math.min(this.#expected, doubled)));
      if (buffer !== null) buffer.copy(grown, 0, 0, this.#length);
      buffer = grown;
      this.#buffer = grown;
    }
    buffer.set(bytes, this.#length);
    this.#length = needed;
  }

  /** The body received (a view of the buffer, no copy); the buffer is given up. */
  take(): Buffer {
    const body = this.#buffer === null ? Buffer.alloc(0) : this.#buffer.subarray(0, this.#length);
    this.clear();
    return body;
  }

  /** Drops what was received. */
  clear(): void {
    this.#buffer = null;
    this.#length = 0;
  }
}
