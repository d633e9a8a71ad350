import { randomBytes } from 'node:crypto';
import type { Ledger } from '../metering/ledger.js';
import type { AdmissionTicket } from '../pipeline/filter.js';

/**
 * A call's client sockets (`?call_id=`: the app's own sideband, a supervisor's dashboard), counted
 * per call on this process (and, with a ledger, across relay workers and instances: SharedAttachPlaces below). They are not metered (the proxy's own sideband meters the call) and so
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

/** The ledger's counted sets (its concurrent-session slots), under names of this module's. */
export type SlotLedger = Pick<Ledger, 'acquireSlot' | 'releaseSlot'>;

/** An attach admission whose socket never opened gives its places back after this long (as metering's slot handoff does). */
const ATTACH_HANDOFF_MS = 30_000;

/**
 * The ledger's name for a call's attached sockets, and a tenant's: never a tenant id, whose set holds
 * its concurrent-session slots (tenant ids are [A-Za-z0-9_.-], no colon: src/config/schema.ts).
 */
export const callSocketsKey = (callId: string): string => `call-sockets:${callId}`;
export const tenantSocketsKey = (tenantId: string): string => `tenant-call-sockets:${tenantId}`;

interface ParkedPlaces {
  readonly keys: readonly string[];
  readonly token: string;
  readonly timer: NodeJS.Timeout;
}

/**
 * The same bounds as AttachedSockets, counted in the ledger: the primary's across relay workers
 * (over IPC; a worker that dies gives its places back, src/metering/remote-ledger.ts LedgerHost),
 * Redis across instances. An attach's admission takes its places (the call's, the tenant's) under
 * its admission ticket; the socket made with that ticket claims them and gives them back when it
 * closes; a refused or withdrawn admission gives them back at once. Until 2026-12-07 only the
 * process's own count bounded them: with `server.workers: 2` a call held 8 attached sockets
 * (test/calls/workers-attached-sockets.test.ts). A ledger that cannot answer leaves the process's
 * own count as the bound (the sockets are not metered: nothing is spent unchecked).
 */
export class SharedAttachPlaces {
  readonly #ledger: SlotLedger;
  readonly #wall: () => number;
  readonly #max: number;
  readonly #parked = new Map<AdmissionTicket, ParkedPlaces>();

  constructor(ledger: SlotLedger, wall: () => number, max = MAX_CLIENT_SOCKETS_PER_CALL) {
    this.#ledger = ledger;
    this.#wall = wall;
    this.#max = max;
  }

  /** Takes the call's place and the tenant's for `ticket`: false when either is full. */
  async take(ticket: AdmissionTicket, callId: string, tenant: AttachingTenant): Promise<boolean> {
    const token = `attach_${randomBytes(8).toString('hex')}`;
    const wanted: Array<{ readonly key: string; readonly max: number }> = [{ key: callSocketsKey(callId), max: this.#max }];
    if (tenant.maxConcurrentSessions !== null) wanted.push({ key: tenantSocketsKey(tenant.id), max: this.#max * Math.max(1, tenant.maxConcurrentSessions) });
    const taken: string[] = [];
    for (const { key, max } of wanted) {
      const got = await this.#ledger.acquireSlot(key, token, max, this.#wall());
      if (got === false) {
        for (const k of taken) this.#ledger.releaseSlot(k, token);
        return false;
      }
      if (got === true) taken.push(key);
    }
    this.#park(ticket, taken, token);
    return true;
  }

  #park(ticket: AdmissionTicket, keys: readonly string[], token: string): void {
    // One admission parks once: a second take gives the first back rather than losing it.
    this.withdraw(ticket);
    if (keys.length === 0) return;
    const timer = setTimeout(() => this.withdraw(ticket), ATTACH_HANDOFF_MS);
    timer.unref();
    this.#parked.set(ticket, { keys, token, timer });
  }

  /** The places parked for `ticket`, now the socket's: the returned release gives them back, once. Null: none were taken. */
  claim(ticket: AdmissionTicket | null | undefined): (() => void) | null {
    if (!ticket) return null;
    const parked = this.#parked.get(ticket);
    if (!parked) return null;
    this.#parked.delete(ticket);
    clearTimeout(parked.timer);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      for (const key of parked.keys) this.#ledger.releaseSlot(key, parked.token);
    };
  }

  /** The places parked for `ticket`, if any, go back now. */
  withdraw(ticket: AdmissionTicket): void {
    this.claim(ticket)?.();
  }

  /** Admissions with places parked (tests). */
  get parked(): number {
    return this.#parked.size;
  }
}

/** One fewer under `key`; the key is forgotten at zero (per-call, per-tenant counts here and the calls module's offers in flight). */
export function countOut(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left <= 0) counts.delete(key);
  else counts.set(key, left);
}
