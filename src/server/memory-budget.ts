/**
 * The global byte budget for data the proxy holds on behalf of sessions: client frames waiting for
 * the upstream to open or for an asynchronous filter, bytes queued for either socket. Each session
 * reports what it holds; the server's timer re-sums the truth every second, and reservations made
 * between two sums count at once, so a burst cannot overshoot by more than one frame per session.
 */
export class MemoryBudget {
  readonly limit: number;
  #used = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  get exhausted(): boolean {
    return this.#used >= this.limit;
  }

  /** Counts `bytes` now if they fit; false when they would exceed the budget. */
  tryReserve(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  /** Replaces the running figure with a fresh sum over the live sessions. */
  resync(total: number): void {
    this.#used = total;
  }
}
