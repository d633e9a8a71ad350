/** One owner's share of request-body bytes: the limit divided by this (a quarter). */
const OWNER_SHARE_DIVISOR = 4;

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
  /**
   * The most request-body bytes one owner (a tenant) may hold: a quarter of the limit, so that one
   * tenant's unfinished bodies (or its browsers', holding client secrets) cannot take the budget
   * every tenant's sessions and requests share (found 2026-12-06: five stalled offers filled it).
   */
  readonly ownerShare: number;
  /** Sessions' share: reservations since the last resync, plus the resynced sum. */
  #sessions = 0;
  /** Request bodies' share (tryHold/release). */
  #held = 0;
  /** Of those, by owner (tryHoldFor/assign/releaseFor); an entry goes when it reaches 0. */
  readonly #owners = new Map<string, number>();

  constructor(limit: number) {
    this.limit = limit;
    this.ownerShare = Math.floor(limit / OWNER_SHARE_DIVISOR);
  }

  /** Request-body bytes `owner` holds. */
  heldBy(owner: string): number {
    return this.#owners.get(owner) ?? 0;
  }

  /** Owners holding request-body bytes (read by tests and diagnostics). */
  get owners(): number {
    return this.#owners.size;
  }

  /**
   * Counts `bytes` of a request body for `owner` until `releaseFor`: null when counted; `share` when
   * they would take the owner past `ownerShare`, `budget` past the limit (nothing counted either way).
   */
  tryHoldFor(owner: string, bytes: number): 'budget' | 'share' | null {
    const mine = this.heldBy(owner);
    if (mine + bytes > this.ownerShare) return 'share';
    if (!this.tryHold(bytes)) return 'budget';
    this.#owners.set(owner, mine + bytes);
    return null;
  }

  /**
   * Counts `bytes` already held (`tryHold`, before the body's sender was known) for `owner` too;
   * false (nothing moved) when they would take the owner past its share.
   */
  assign(owner: string, bytes: number): boolean {
    const mine = this.heldBy(owner);
    if (mine + bytes > this.ownerShare) return false;
    if (bytes > 0) this.#owners.set(owner, mine + bytes);
    return true;
  }

  /** Gives back bytes counted for `owner` (tryHoldFor, assign). */
  releaseFor(owner: string, bytes: number): void {
    const left = this.heldBy(owner) - bytes;
    if (left > 0) this.#owners.set(owner, left);
    else this.#owners.delete(owner);
    this.release(bytes);
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
