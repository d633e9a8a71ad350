/**
 * A call's client sockets (`?call_id=`: the app's own sideband, a supervisor's dashboard), counted
 * per call on this process. They are not metered (the proxy's own sideband meters the call) and so
 * hold no concurrent-session slot of the tenant's: this bound keeps what one call can hold
 * (upstream sockets, buffers) from growing without end. Until 2026-12-06 (thirteenth session) a
 * tenant limited to one concurrent session held a call and any number of such sockets.
 *
 * They are counted per tenant too, at most MAX_CLIENT_SOCKETS_PER_CALL for each concurrent session
 * the tenant is allowed (as if every allowed session were a call with all its sockets): a call's
 * binding, which the attach admission reads, outlives the call (until `calls.bindingTtlSec`), so
 * the per-call bound alone let a tenant allowed one session attach 4 sockets to every call it had
 * placed and hung up. Until 2026-12-07 it did: 2 ended calls × 4 sockets filled maxSessions 6 while
 * the upstream was slow to accept them (test/calls/redteam-18-ended-call-attaches.test.ts).
 */
export const MAX_CLIENT_SOCKETS_PER_CALL = 4;

/** The tenant a socket is counted for, and its `maxConcurrentSessions` (null: no per-tenant bound). */
export interface AttachingTenant {
  readonly id: string;
  readonly maxConcurrentSessions: number | null;
}

export class AttachedSockets {
  readonly #byCall = new Map<string, number>();
  readonly #byTenant = new Map<string, number>();
  readonly #max: number;

  constructor(max = MAX_CLIENT_SOCKETS_PER_CALL) {
    this.#max = max;
  }

  #tenantFull(tenant: AttachingTenant | undefined): boolean {
    if (!tenant || tenant.maxConcurrentSessions === null) return false;
    return (this.#byTenant.get(tenant.id) ?? 0) >= this.#max * Math.max(1, tenant.maxConcurrentSessions);
  }

  /** The call (or the tenant, when given) has as many client sockets as allowed. */
  full(callId: string, tenant?: AttachingTenant): boolean {
    return (this.#byCall.get(callId) ?? 0) >= this.#max || this.#tenantFull(tenant);
  }

  /** Counts one more socket on the call (and the tenant); null when either is full. The returned release counts it out, once. */
  attach(callId: string, tenant?: AttachingTenant): (() => void) | null {
    if (this.full(callId, tenant)) return null;
    const n = this.#byCall.get(callId) ?? 0;
    this.#byCall.set(callId, n + 1);
    const tenantId = tenant?.id;
    if (tenantId !== undefined) this.#byTenant.set(tenantId, (this.#byTenant.get(tenantId) ?? 0) + 1);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      countOut(this.#byCall, callId);
      if (tenantId !== undefined) countOut(this.#byTenant, tenantId);
    };
  }

  /** Calls with sockets counted (for tests and metrics). */
  get calls(): number {
    return this.#byCall.size;
  }

  /** Tenants with sockets counted (for tests). */
  get tenants(): number {
    return this.#byTenant.size;
  }
}

/** One fewer under `key`; the key is forgotten at zero (per-call, per-tenant counts here and the calls module's offers in flight). */
export function countOut(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left <= 0) counts.delete(key);
  else counts.set(key, left);
}
