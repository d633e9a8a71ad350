/**
 * The global byte budget for data the proxy holds: for sessions (client frames waiting for the
 * upstream to open or for an asynchronous filter, bytes queued for either socket) and for HTTP
 * request bodies being read or handled. Each session reports what it holds; the server's timer
 * re-sums the truth every second, and reservations made between two sums count at once, so a
 * burst cannot overshoot by more than one frame per session. Request bodies are not re-summed:
 * their holder releases exactly what it held when the request ends.
 */
export class MemoryBudget {
  readonly limit: number;
  /** Sessions' share: reservations since the last resync, plus the resynced sum. */
  #sessions = 0;
  /** Request bodies' share (tryHold/release). */
  #held = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#sessions + this.#held;
  }

  /** Bytes held for request bodies (not part of the sessions' resync). */
  get held(): number {
    return this.#held;
  }

  get exhausted(): boolean {
    return this.used >= this.limit;
  }

  /** Counts `bytes` now if they fit; false when they would exceed the budget. */
  tryReserve(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.#sessions += bytes;
    return true;
  }

  /** Replaces the sessions' running figure with a fresh sum over the live sessions. */
  resync(total: number): void {
    this.#sessions = total;
  }

  /**
   * Counts `bytes` of a request body until `release`; false (nothing counted) when they would
   * exceed the budget. A resync does not drop them.
   */
  tryHold(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.#held += bytes;
    return true;
  }

  /**
   * Counts `bytes` of a request body until `release`, even past the limit: for requests that must
   * not be refused for memory (the admin API, small and authenticated, is how an operator acts on
   * an overloaded proxy).
   */
  hold(bytes: number): void {
    this.#held += bytes;
  }

  /** Gives back bytes counted by `tryHold` or `hold`. */
  release(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes);
  }
}
