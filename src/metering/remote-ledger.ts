import { isCallSlot, type CapHit, type Ledger, type OverrideChange, type ReserveRequest, type ReserveResult, type TenantStatus, type UsageCursor, type UsagePage, type UsageRecord } from './ledger.js';
import type { CapSet } from './limits.js';
import { ChannelHoldLink, type TenantHoldMessage } from './hold-link.js';
import { OverHints } from './over-hints.js';
import type { PeriodKind } from './periods.js';

/*
 * One ledger owner for several relay workers (server.workers > 1 with the SQLite ledger): the
 * primary process holds the only SqliteLedger; each worker reaches it through a RemoteLedger over
 * the worker's IPC channel. The owner runs every call on its one event loop, so "read spend and
 * reservations, compare with the cap, record the reservation" stays atomic across workers exactly
 * as it is across sessions of one process: caps are as exact with N workers as with one.
 */


/** The primary did not answer (a timeout, its channel gone, too many calls waiting): not an answer of its ledger's. */
class OwnerSilent extends Error {}

/** The Ledger methods a worker may call on the owner. */
export type LedgerMethod = 'reserve' | 'settle' | 'release' | 'status' | 'setOverride' | 'resetSpend' | 'usagePage' | 'acquireSlot' | 'releaseSlot' | 'leaveSlot';

const METHODS: ReadonlySet<string> = new Set<LedgerMethod>(['reserve', 'settle', 'release', 'status', 'setOverride', 'resetSpend', 'usagePage', 'acquireSlot', 'releaseSlot', 'leaveSlot']);
/**
 * Calls that bill or give back what the owner already granted: never refused for a backlog (a
 * refused settle is cost the cap never sees, a refused release a reservation held until the
 * worker exits). Their number is bounded by the grants outstanding. (releaseSlot waits for no
 * answer: it is never refused either.)
 */
const SETTLING: ReadonlySet<LedgerMethod> = new Set<LedgerMethod>(['settle', 'release']);

export interface LedgerCall {
  readonly t: 'ledger';
  /** 0: no answer wanted (releaseSlot). */
  readonly id: number;
  readonly method: LedgerMethod;
  readonly args: readonly unknown[];
}

export type LedgerReply =
  | { readonly t: 'ledger-reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: 'ledger-reply'; readonly id: number; readonly ok: false; readonly error: string };

export function isLedgerCall(m: unknown): m is LedgerCall {
  if (typeof m !== 'object' || m === null) return false;
  const c = m as Partial<LedgerCall>;
  return c.t === 'ledger' && typeof c.id === 'number' && typeof c.method === 'string' && METHODS.has(c.method) && Array.isArray(c.args);
}

export function isLedgerReply(m: unknown): m is LedgerReply {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === 'ledger-reply' && typeof (m as { id?: unknown }).id === 'number';
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  readonly timer: NodeJS.Timeout;
}

export interface RemoteLedgerOptions {
  /** Sends a message to the owner; false when the channel is closed. */
  readonly send: (message: LedgerCall) => boolean;
  /** Sends an over-cap audio hold to the owner, who passes it to the other workers (absent: holds stay in this process). */
  readonly sendHold?: (message: TenantHoldMessage) => boolean;
  readonly kind: 'sqlite' | 'redis';
  /** Bound of every wait for the owner's answer. */
  readonly timeoutMs: number;
  /** Calls waiting for an answer at most; beyond it reserve and acquireSlot answer unavailable (settle and release always go). */
  readonly maxPending?: number;
}

/** How long a reserve "over" answer is kept as a synchronous hint (knownOver). */
const OVER_HINT_MS = 1000;

/** A worker's view of the owner's ledger: every call asynchronous, every wait bounded. */
export class RemoteLedger implements Ledger {
  readonly kind: 'sqlite' | 'redis';
  readonly synchronous = false;
  readonly #o: RemoteLedgerOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #over = new OverHints();
  #seq = 0;
  #closed = false;
  /** Why the owner's ledger is not ready, as the owner last said (each liveness ping), or null. */
  #ownerNotReady: string | null = null;
  /** Over-cap audio holds to and from the other workers (and instances), through the owner; feed its `tenant-hold` messages to `holds.receive`. */
  readonly holds: ChannelHoldLink;

  constructor(options: RemoteLedgerOptions) {
    this.#o = options;
    this.kind = options.kind;
    this.holds = new ChannelHoldLink((m) => !this.#closed && (options.sendHold?.(m) ?? false));
  }

  /** Feed every owner answer here. */
  onReply(reply: LedgerReply): void {
    const p = this.#pending.get(reply.id);
    if (!p) return;
    this.#pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.ok) p.resolve(reply.value);
    else p.reject(new Error(reply.error));
  }

  /** The channel to the owner closed: every waiting call fails now. */
  disconnect(): void {
    this.#closed = true;
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new OwnerSilent('ledger owner unreachable'));
    }
  }

  #call<T>(method: LedgerMethod, args: readonly unknown[], onTimeout?: () => void): Promise<T> {
    if (this.#closed) return Promise.reject(new OwnerSilent('ledger owner unreachable'));
    if (!SETTLING.has(method) && this.#pending.size >= (this.#o.maxPending ?? 10_000)) return Promise.reject(new OwnerSilent('too many ledger calls waiting for the owner'));
    const id = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        onTimeout?.();
        reject(new OwnerSilent(`ledger owner did not answer ${method} within ${this.#o.timeoutMs} ms`));
      }, this.#o.timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      if (!this.#o.send({ t: 'ledger', id, method, args })) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new OwnerSilent('ledger owner unreachable'));
      }
    });
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    try {
      // A late grant after the timeout is released, so the owner does not keep it.
      const r = await this.#call<ReserveResult>('reserve', [req], () => this.#send('release', [req.tenant, req.id]));
      // Only a spent cap is a hint; a refusal because other responses hold reservations is not.
      if (r.kind === 'over' && r.hit.spent >= r.hit.limit) this.#over.set(req.tenant, { hit: r.hit, until: req.wallMs + OVER_HINT_MS });
      else if (r.kind === 'ok') this.#over.delete(req.tenant);
      return r;
    } catch (err) {
      // No answer from the primary (its ledger answers `unavailable` itself when Redis is down).
      return err instanceof OwnerSilent ? { kind: 'unavailable', reason: err.message, ownerSilent: true } : { kind: 'unavailable', reason: (err as Error).message };
    }
  }

  settle(reservationId: string | null, record: UsageRecord): Promise<void> {
    return this.#call('settle', [reservationId, record]);
  }

  release(tenant: string, reservationId: string): Promise<void> {
    return this.#call('release', [tenant, reservationId]);
  }

  status(tenant: string, caps: CapSet, wallMs: number): Promise<TenantStatus> {
    return this.#call('status', [tenant, caps, wallMs]);
  }

  setOverride(tenant: string, kind: PeriodKind, change: OverrideChange): Promise<void> {
    return this.#call('setOverride', [tenant, kind, change]);
  }

  resetSpend(tenant: string, kind: PeriodKind, wallMs: number): Promise<void> {
    return this.#call('resetSpend', [tenant, kind, wallMs]);
  }

  usagePage(tenant: string | null, from: number | UsageCursor, limit: number): Promise<UsagePage> {
    return this.#call('usagePage', [tenant, from, limit]);
  }

  async acquireSlot(tenant: string, token: string, max: number, wallMs: number): Promise<boolean | 'unavailable'> {
    try {
      return await this.#call<boolean | 'unavailable'>('acquireSlot', [tenant, token, max, wallMs], () => this.#send('releaseSlot', [tenant, token]));
    } catch {
      return 'unavailable';
    }
  }

  releaseSlot(tenant: string, token: string): void {
    this.#send('releaseSlot', [tenant, token]);
  }

  leaveSlot(tenant: string, token: string): void {
    this.#send('leaveSlot', [tenant, token]);
  }

  #send(method: LedgerMethod, args: readonly unknown[]): void {
    if (!this.#closed) this.#o.send({ t: 'ledger', id: 0, method, args });
  }

  /**
   * The last "cap spent" answer of reserve for this tenant, for up to a second: lets a server-started
   * response be cancelled before any of its frames pass. The owner decides again on every reserve,
   * so a cap raised through the admin API counts within that second.
   */
  knownOver(tenant: string, wallMs: number): CapHit | null {
    return this.#over.fresh(tenant, wallMs)?.hit ?? null;
  }

  /** The owner's ledger readiness (src/server/workers.ts sends it with every ping). */
  ownerReadiness(reason: string | null): void {
    this.#ownerNotReady = reason;
  }

  readiness(): string | null {
    if (this.#closed) return 'ledger owner unreachable';
    // The owner's ledger failing its writes (sqlite-ledger.ts) drains this worker too.
    return this.#ownerNotReady === null ? null : `ledger owner: ${this.#ownerNotReady}`;
  }

  async close(): Promise<void> {
    this.disconnect();
  }
}

const slotKey = (tenant: string, token: string): string => `${tenant}\u0000${token}`;

/** The slot holders of every LedgerHost over one ledger (the primary's, one host per worker). */
const holdersByLedger = new WeakMap<Ledger, Map<string, number>>();

function holdersOf(ledger: Ledger): Map<string, number> {
  let holders = holdersByLedger.get(ledger);
  if (!holders) holdersByLedger.set(ledger, (holders = new Map()));
  return holders;
}

/** `status` of the usage record billed for a reservation a relay worker held when it died. */
export const WORKER_LOST_STATUS = 'worker_lost';

/** A reservation the owner granted a worker: enough to bill it if the worker dies. */
interface Held {
  readonly tenant: string;
  readonly amount: { readonly nanos: number; readonly tokens: number };
  /** The worker's wall clock (its reserve's wallMs) minus the owner's monotonic clock then. */
  readonly wallOffset: number;
}

/** What workerGone billed, for the owner's log. */
export interface WorkerLost {
  /** Reservations billed at their amount (estimated, status `worker_lost`). */
  readonly billed: number;
  readonly costNanos: number;
  /** Settles that failed (their reservation was released instead, so it does not block the tenant). */
  readonly failed: number;
}

/**
 * The owner's side for one worker: runs its calls on the real ledger and remembers what the
 * worker holds (reservations, session slots), so that a worker that dies neither keeps a tenant's
 * budget or slots held forever nor gets its running responses for free.
 */
export class LedgerHost {
  readonly #ledger: Ledger;
  readonly #reservations = new Map<string, Held>();
  readonly #slots = new Map<string, { readonly tenant: string; readonly token: string }>();
  /** How many of the hosts over this ledger (its workers) hold each slot (slotKey), shared by them (holdersOf). */
  readonly #holders: Map<string, number>;
  #gone = false;

  constructor(ledger: Ledger) {
    this.#ledger = ledger;
    this.#holders = holdersOf(ledger);
  }

  /** Runs one call; `reply` gets the answer (not called for id 0). */
  handle(call: LedgerCall, reply: (r: LedgerReply) => void): void {
    let result: unknown;
    try {
      result = this.#run(call);
    } catch (err) {
      if (call.id !== 0) reply({ t: 'ledger-reply', id: call.id, ok: false, error: (err as Error).message });
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        this.#track(call, value);
        if (call.id !== 0) reply({ t: 'ledger-reply', id: call.id, ok: true, value });
      },
      (err: unknown) => {
        if (call.id !== 0) reply({ t: 'ledger-reply', id: call.id, ok: false, error: err instanceof Error ? err.message : String(err) });
      },
    );
  }

  #run(call: LedgerCall): unknown {
    const l = this.#ledger;
    const a = call.args;
    switch (call.method) {
      case 'reserve':
        return l.reserve(a[0] as ReserveRequest);
      case 'settle':
        return l.settle(a[0] as string | null, a[1] as UsageRecord);
      case 'release':
        return l.release(a[0] as string, a[1] as string);
      case 'status':
        return l.status(a[0] as string, a[1] as CapSet, a[2] as number);
      case 'setOverride':
        return l.setOverride(a[0] as string, a[1] as PeriodKind, a[2] as OverrideChange);
      case 'resetSpend':
        return l.resetSpend(a[0] as string, a[1] as PeriodKind, a[2] as number);
      case 'usagePage':
        return l.usagePage(a[0] as string | null, a[1] as number | UsageCursor, a[2] as number);
      case 'acquireSlot':
        return l.acquireSlot(a[0] as string, a[1] as string, a[2] as number, a[3] as number);
      case 'releaseSlot':
        if (this.#heldBySibling(a[0] as string, a[1] as string)) return;
        return l.releaseSlot(a[0] as string, a[1] as string);
      case 'leaveSlot':
        if (this.#heldBySibling(a[0] as string, a[1] as string)) return;
        return l.leaveSlot ? l.leaveSlot(a[0] as string, a[1] as string) : l.releaseSlot(a[0] as string, a[1] as string);
    }
  }

  /**
   * Whether another worker over this ledger holds the slot too: a call's, taken over by its token
   * while this worker still governed the call (its lease lapsed in a stall). The ledger keeps and
   * refreshes a slot by its token, one entry whoever holds it: this worker giving it back or leaving
   * it would stop the sibling's (until 2026-12-07, red team: test/metering/slots-left-for-takeover.test.ts).
   */
  #heldBySibling(tenant: string, token: string): boolean {
    const key = slotKey(tenant, token);
    return (this.#holders.get(key) ?? 0) - (this.#slots.has(key) ? 1 : 0) > 0;
  }

  #holdSlot(tenant: string, token: string): void {
    const key = slotKey(tenant, token);
    if (this.#slots.has(key)) return;
    this.#slots.set(key, { tenant, token });
    this.#holders.set(key, (this.#holders.get(key) ?? 0) + 1);
  }

  #forgetSlot(tenant: string, token: string): void {
    const key = slotKey(tenant, token);
    if (!this.#slots.delete(key)) return;
    const left = (this.#holders.get(key) ?? 1) - 1;
    if (left > 0) this.#holders.set(key, left);
    else this.#holders.delete(key);
  }

  #track(call: LedgerCall, value: unknown): void {
    const a = call.args;
    switch (call.method) {
      case 'reserve': {
        const req = a[0] as ReserveRequest;
        if ((value as ReserveResult).kind !== 'ok') return;
        // Granted after the worker died (an asynchronous ledger's late answer): nobody will settle it.
        if (this.#gone) void Promise.resolve(this.#ledger.release(req.tenant, req.id)).catch(() => undefined);
        else this.#reservations.set(req.id, { tenant: req.tenant, amount: { nanos: req.amount.nanos, tokens: req.amount.tokens }, wallOffset: req.wallMs - performance.now() });
        return;
      }
      case 'settle':
        if (typeof a[0] === 'string') this.#reservations.delete(a[0]);
        return;
      case 'release':
        this.#reservations.delete(a[1] as string);
        return;
      case 'acquireSlot':
        if (value !== true) return;
        if (this.#gone) this.#giveUpSlot(a[0] as string, a[1] as string);
        else this.#holdSlot(a[0] as string, a[1] as string);
        return;
      case 'releaseSlot':
      case 'leaveSlot':
        // Left: no longer this worker's to give back when it dies (the call went on elsewhere).
        this.#forgetSlot(a[0] as string, a[1] as string);
        return;
      default:
        return;
    }
  }

  /**
   * A slot of the dead worker's: a call's is left for the instance taking the call over (it expires
   * unrefreshed if none does, as a crashed instance's), a WebSocket session's given back. Until
   * 2026-12-07 (red team) a call's was given back too, and the tenant's limit did not count the call
   * until its takeover, which was then refused its slot (test/metering/slots-left-for-takeover.test.ts).
   */
  #giveUpSlot(tenant: string, token: string): void {
    if (this.#heldBySibling(tenant, token)) return;
    if (this.#ledger.leaveSlot && isCallSlot(token)) this.#ledger.leaveSlot(tenant, token);
    else this.#ledger.releaseSlot(tenant, token);
  }

  /** The ledger's own readiness (sent to the worker with each ping: its /readyz reports it). */
  readiness(): string | null {
    return this.#ledger.readiness();
  }

  /** What the worker holds now (tests, diagnostics). */
  get held(): { readonly reservations: number; readonly slots: number } {
    return { reservations: this.#reservations.size, slots: this.#slots.size };
  }

  /**
   * The worker is gone (crashed, killed, exited): its WebSocket sessions' slots are released, its
   * calls' left for their takeover (#giveUpSlot), one a sibling holds too kept as it is; and every
   * reservation it still held is billed at its amount, as one process bills a response whose
   * `response.done` never came. The owner cannot tell a running response (which the upstream
   * bills) from a create that was reserved but never sent, so it bills them all: conservative,
   * never free. The record: `estimated: true`, `status: "worker_lost"`, `settledBy:
   * "worker_lost_estimate"`, `ref` the reservation id
   * (`<session>:<n>`: the response id is the worker's knowledge), `model: "unknown"`, token
   * details null, `ts` the dead worker's clock now (its last reserve's wall time plus the time
   * since). A grant the ledger gives after this (an asynchronous ledger's late answer) is
   * released at once: nobody is left to settle it.
   */
  workerGone(): WorkerLost {
    this.#gone = true;
    let billed = 0;
    let costNanos = 0;
    let failed = 0;
    const now = performance.now();
    for (const [id, h] of this.#reservations) {
      const colon = id.lastIndexOf(':');
      const record: UsageRecord = {
        ts: Math.round(now + h.wallOffset),
        tenant: h.tenant,
        session: colon > 0 ? id.slice(0, colon) : id,
        source: 'response',
        ref: id,
        model: 'unknown',
        status: WORKER_LOST_STATUS,
        costNanos: h.amount.nanos,
        inputTokens: 0,
        outputTokens: 0,
        cachedTokens: 0,
        totalTokens: h.amount.tokens,
        input: null,
        cached: null,
        output: null,
        seconds: null,
        estimated: true,
        settledBy: 'worker_lost_estimate',
        fallbackPrice: false,
      };
      const giveBack = () => void Promise.resolve(this.#ledger.release(h.tenant, id)).catch(() => undefined);
      try {
        const r = this.#ledger.settle(id, record);
        if (r instanceof Promise) r.catch(giveBack);
        billed++;
        costNanos += h.amount.nanos;
      } catch {
        // A settle that failed (disk full…) must not keep the tenant's budget held until a restart.
        failed++;
        giveBack();
      }
    }
    for (const s of [...this.#slots.values()]) {
      this.#forgetSlot(s.tenant, s.token);
      this.#giveUpSlot(s.tenant, s.token);
    }
    this.#reservations.clear();
    return { billed, costNanos, failed };
  }
}
