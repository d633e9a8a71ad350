import { ProxyError } from '../protocol/errors.js';

/** One owner's share of request-body bytes: the limit divided by this (a quarter). */
const OWNER_SHARE_DIVISOR = 4;

/** Where a tenant's sessions were found past their share of the budget (see tenantShareExceeded). */
export type TenantShareCheck = 'frame' | 'recount' | 'upgrade';

const TENANT_SHARE_MESSAGES: Readonly<Record<TenantShareCheck, string>> = {
  frame: "This tenant's sessions hold their share of the proxy's memory budget; the frame was not relayed. Retry shortly.",
  recount: "This tenant's sessions held more than their share of the proxy's memory budget; this session, the largest, was ended.",
  upgrade: "This tenant's sessions hold their share of the proxy's memory budget; end one or retry shortly.",
};

/**
 * `memory_budget_exceeded` for one tenant past its share (`details.scope: "tenant"`, against the
 * global budget's refusal, which has no details). A refused frame leaves the session going, as the
 * global refusal does; a session ended at the recount, or a browser's upgrade refused, closes 4008
 * (as upstream_backpressure, the per-session bound on the same bytes: not retried by SDKs that
 * reconnect on 1011/1013). An upgrade gets HTTP 429, the catalogue's status: this tenant is over a
 * limit of its own, not the proxy out of capacity (503 `overloaded` reads as the whole instance
 * unavailable to load balancers and retry policies).
 */
export function tenantShareExceeded(at: TenantShareCheck, tenantLimit: number): ProxyError {
  return new ProxyError('memory_budget_exceeded', {
    message: TENANT_SHARE_MESSAGES[at],
    close: at === 'frame' ? null : 'slowConsumer',
    details: { scope: 'tenant', limit: tenantLimit },
  });
}

/**
 * `server.memoryBudgetTenantShare` when unset: half the budget when several tenants share the
 * proxy, all of it for a single tenant (a single-tenant deployment keeps its whole budget).
 */
export function defaultTenantShare(tenantCount: number): number {
  return tenantCount > 1 ? 0.5 : 1;
}

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
  /**
   * The most bytes one tenant's sessions may hold (`server.memoryBudgetTenantShare` of the limit),
   * so that one tenant's sessions queuing frames for a slow upstream cannot take the budget every
   * tenant shares (found 2026-12-07: three sessions of one tenant got every other tenant refused).
   */
  readonly tenantLimit: number;
  /**
   * The sessions' figure by tenant: the last resync's sums plus reservations since. Only tenants
   * with a live session holding bytes have an entry (each resync replaces the whole map).
   */
  #tenantSessions = new Map<string, number>();

  /**
   * `tenantFloorBytes`: the least a tenant's share may be (the largest frame a client may send,
   * `server.maxFrameBytes`), within the budget. A share of a relay worker's budget (the budget / the
   * workers) could otherwise be below one legal frame, and a tenant holding nothing had every large
   * append refused on every retry: until 2026-12-07 it was, from 9 cores up with the defaults and two
   * tenants (test/security/redteam-18o-tenant-share-frame.test.ts).
   */
  constructor(limit: number, tenantShare = 1, tenantFloorBytes = 0) {
    this.limit = limit;
    this.ownerShare = Math.floor(limit / OWNER_SHARE_DIVISOR);
    this.tenantLimit = Math.min(limit, Math.max(Math.floor(limit * tenantShare), tenantFloorBytes));
  }

  /** Bytes `tenant`'s sessions hold (as of the last resync, plus reservations since). */
  sessionBytesOf(tenant: string): number {
    return this.#tenantSessions.get(tenant) ?? 0;
  }

  /** Tenants with an entry in the per-tenant figures (read by tests and diagnostics). */
  get tenants(): number {
    return this.#tenantSessions.size;
  }

  /** `tenant`'s sessions hold their whole share: its new sessions are refused (as `exhausted` refuses everyone's). */
  tenantExhausted(tenant: string): boolean {
    return this.sessionBytesOf(tenant) >= this.tenantLimit;
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

  /**
   * Counts `bytes` of a frame of `tenant`'s session now if they fit: null when counted; `budget`
   * when they would take the sessions past the limit, else `share` past the tenant's `tenantLimit`
   * (nothing counted either way).
   */
  tryReserveFor(tenant: string, bytes: number): 'budget' | 'share' | null {
    // The global limit first: with one tenant (share 1) a full budget is the proxy's, not the tenant's.
    if (this.used + bytes > this.limit) return 'budget';
    const mine = this.sessionBytesOf(tenant);
    if (mine + bytes > this.tenantLimit) return 'share';
    this.#sessions += bytes;
    this.#tenantSessions.set(tenant, mine + bytes);
    return null;
  }

  /**
   * Replaces the sessions' running figure with a fresh sum over the live sessions, and the
   * per-tenant figures with theirs (kept as given: one entry per tenant whose sessions hold bytes).
   */
  resync(total: number, byTenant: Map<string, number> = new Map()): void {
    this.#sessions = total;
    this.#tenantSessions = byTenant;
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
