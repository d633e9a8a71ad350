import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ChainTemplate } from '../pipeline/chain.js';
import { type AdmissionTicket, type CarriedUsage, type Clock } from '../pipeline/filter.js';
import { ProxyError, type ProxyErrorCode } from '../protocol/errors.js';
import { RelaySession } from '../relay/session.js';
import type { Tenant } from '../tenants/tenant.js';
import type { CallEndReason, CallRecord, CallStore, ClaimedCall } from './store.js';
import type { UpstreamCalls } from './upstream.js';
import { capLogBinding } from '../logging.js';
import { CALL_SLOT_PREFIX } from '../metering/ledger.js';
import { settledWithin } from '../bounded.js';
import { endReasonOf } from './end-reason.js';

export interface GovernedCall {
  readonly callId: string;
  readonly tenant: Tenant;
  readonly model: string;
  readonly kind: 'webrtc' | 'sip';
  /** A session.update that turns its responses back on (a SIP call accepted with responses held: see withResponsesHeld and ResponsesHold). */
  readonly onAttach?: Readonly<Record<string, unknown>> | null;
  /**
   * How long its sideband keeps the responses held for the tenant's app (a SIP route's
   * `notify.waitForAppMs`, ResponsesHold); absent or 0: turned back on as the sideband starts (a call
   * taken over after a crash too: the app had its chance).
   */
  readonly waitForAppMs?: number;
  /**
   * What the call used toward the per-session limits before this sideband: when it was bound (proxy
   * wall clock) and the settled tokens its earlier sidebands counted (from the store, on a takeover).
   * Absent: a call starting now, with none.
   */
  readonly usage?: { readonly startedAtMs: number; readonly tokens: number } | null;
  /** What the call's admission took (its concurrent-session slot), for its sideband to claim; absent: nothing. */
  readonly admission?: CallAdmission | null;
  /** The call is taken over (CarriedUsage.takenOver): it had a sideband before, elsewhere or here. */
  readonly takenOver?: boolean;
  /** The ledger token of the call's concurrency slot (CallRecord.slot): a taken-over call's admission takes that slot over. */
  readonly slot?: string;
}

/** The token of a call's concurrency slot when its record names none (bound before 2026-12-07, or with no offer's hold). */
export const callSlotToken = (callId: string): string => `${CALL_SLOT_PREFIX}${callId}`;

/**
 * A call admitted by the chain: its ticket (SessionContext.admission of its sideband) and the way
 * back for what the admission took, when no sideband opens with it. Withdrawing a ticket the
 * sideband claimed already gives back nothing.
 */
export interface CallAdmission {
  readonly ticket: AdmissionTicket;
  withdraw(): void;
}

/** What the governors need of a call's sideband session (a RelaySession without a client). */
export interface Sideband {
  readonly id: string;
  readonly log: Logger;
  readonly ended: boolean;
  start(): void;
  close(error: ProxyError): void;
  tick(now: number): void;
  /** Ends the sideband after one of its handlers threw (logged; `internal_error`). */
  fail(what: string, err: unknown): void;
  /** Resolves once no response is in flight on the sideband, it ended, or `timeoutMs` passed. */
  idle(timeoutMs: number): Promise<void>;
  endRecord(): Record<string, unknown>;
}

export interface SidebandInit {
  readonly id: string;
  readonly call: GovernedCall;
  readonly log: Logger;
  /** The call's usage so far, for its metering (SessionContext.carried): its settles are written to the store. */
  readonly carried: CarriedUsage;
  readonly onEnded: (session: Sideband) => void;
  /**
   * The sideband's own close (a guardrail, a governance failure, its max duration, any close the
   * relay or a filter decides) hangs the call up first and closes once that settled (bounded); null
   * when there is nothing to wait for (hung up already, or let go). `drain` (the session's: it
   * cancels the running responses and waits for their response.done, bounded) goes before the
   * hang-up, as a cap's drain does. Never rejects.
   */
  readonly endCallFirst: (error: ProxyError, drain: () => Promise<void>) => Promise<void> | null;
}

export interface GovernorDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: Clock;
  readonly upstream: Pick<UpstreamCalls, 'control' | 'sidebandTarget'>;
  /** Where call leases live (shared by the instances that share the ledger). */
  readonly store: CallStore;
  /** The configured tenant of this id (undefined: no longer configured). */
  readonly tenant: (id: string) => Tenant | undefined;
  /** Builds a call's sideband session (tests); default: a RelaySession running the calls chain. */
  readonly openSideband?: (init: SidebandInit) => Sideband;
  /**
   * Admission of a call taken over here (the chain's, as a new session's: caps, model, and the
   * tenant's concurrent-session slot, which the call's sideband then holds, by the admission's
   * ticket). Null: admitted holding nothing. Absent: taken-over calls are governed without one (tests).
   */
  readonly admitTakenOver?: (call: GovernedCall) => Promise<ProxyError | CallAdmission | null>;
  /**
   * A call taken over here is hung up unadmitted (its tenant gone, or refused): the slot its last
   * sideband left in the ledger under `slot` (CallRecord.slot) goes back now, not at its expiry.
   */
  readonly giveBackSlot?: (tenantId: string, slot: string) => void;
  /**
   * The proxy ends this call (a cap, a guardrail's end_session, governance failed, its binding's
   * end, a shutdown) with `error`, its running responses drained, just before the hang-up: the
   * calls module closes the call's client sockets (`?call_id=`) on this process with the same error,
   * so the app is told why, not only the upstream's 1000 a caller's hang-up also gives.
   */
  readonly ending?: (callId: string, error: ProxyError) => void;
}

/**
 * Refusals a taken-over call is governed through all the same (without a slot): it was admitted when
 * it was created and is live; the tenant's limit (whose slot a crashed instance may still hold in a
 * shared ledger until that slot expires) or an unavailable ledger does not end it. Any other refusal
 * (a spent cap, a model no longer allowed or priced) hangs it up, as a new call would be refused.
 */
const GOVERNED_OVER_REFUSAL: ReadonlySet<string> = new Set(['concurrent_sessions_exceeded', 'budget_unavailable', 'overloaded']);

/**
 * Whether a call may still be running when its sideband ended: the upstream closes a sideband
 * normally (1000) when its call has ended; any other end (the proxy's decision, a dropped or failed
 * sideband) leaves a call nobody meters or guards, to be hung up.
 */
export function sidebandEndLeavesCall(initiator: unknown, upstreamCloseCode: unknown): boolean {
  return initiator !== 'upstream' || upstreamCloseCode !== 1000;
}

/** Which limit a call's sideband reached (metering's budget report): the tenant's cap or its own session limit. */
export interface CallLimit {
  readonly scope: 'tenant' | 'session';
  /** The cap or limit (`daily_usd`, `max_session_tokens`, `session_duration_exceeded`, …). */
  readonly name: string;
  /** The error code metering gave the sideband's client: the call ends with it. */
  readonly code: ProxyErrorCode;
}
const TENANT_CAP: CallLimit = { scope: 'tenant', name: 'cost', code: 'budget_exceeded' };

/** Hang-up attempts for one call (1 + retries after 1, 2 and 4 s). */
const HANGUP_ATTEMPTS = 4;
/** The pauses between them, in all (1 + 2 + 4 s). */
const HANGUP_PAUSES_MS = (2 ** (HANGUP_ATTEMPTS - 1) - 1) * 1000;
/**
 * How long a hang-up waits for the end's reason to reach the store (CallRecord.endedByProxy): a store
 * slower than this leaves client sockets on other processes the upstream's 1000, the call hung up on time.
 */
const END_REASON_WRITE_MS = 1000;
/**
 * How a hang-up settled: the upstream took it (`hung_up`, 2xx), answered otherwise without a retry
 * (`refused`: the call goes on, or was gone), or it was `given_up` (its retries spent, or shutdown);
 * `earlier`: the call was hung up (or tried) before, nothing sent now.
 */
export type HangupOutcome = 'hung_up' | 'refused' | 'given_up' | 'earlier';

/** Calls one sweep claims at most (each dials a sideband). */
const CLAIMS_PER_SWEEP = 64;

/**
 * The proxy's own sideband sessions: one relay session per call, with no client socket, dialled
 * with `?call_id=` and the proxy's key, running the same filter chain as a WebSocket session
 * (metering, caps, guardrails, locks, telemetry). Whatever ends it but the call's own end (a cap, a
 * guardrail, a governance failure, a shutdown, a sideband that drops or fails) also ends the call
 * with `/hangup`: a call the proxy can no longer govern does not go on. When the proxy ends a call
 * (the governor: a cap, a shutdown, `#endCall`; the sideband's own close: a guardrail, a governance
 * failure, `#hangUpFirst`) it hangs up first and closes the sideband only once the hang-up settled:
 * OpenAI bills a response that runs while the hang-up is on its way, and only an open sideband sees
 * (and metering bills) it. A sideband the upstream drops is hung up after its end (`#ended`).
 *
 * Each governed call is leased to this instance in the store; the lease is renewed every third of
 * `calls.leaseSec`. A call whose lease lapsed (its instance crashed, or handed it over at shutdown)
 * is claimed by the first instance that sweeps and gets a new sideband; a call whose lease another
 * instance took is let go here without a hang-up (one sideband meters a call, never two).
 */
export class CallGovernors {
  readonly #deps: GovernorDeps;
  readonly #byCall = new Map<string, Sideband>();
  /** The calls of this instance's sideband sessions, by session id. */
  readonly #sessionIds = new Map<string, GovernedCall>();
  readonly #hungUp = new Set<string>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Calls let go without a hang-up: another instance holds them now, or they were handed over. */
  readonly #released = new Set<string>();
  readonly #ticker: NodeJS.Timeout;
  readonly #leaseTimer: NodeJS.Timeout;
  /** This process as the owner of call leases (a restarted process is a new owner). */
  readonly owner = `gov_${randomBytes(8).toString('hex')}`;
  #template: ChainTemplate | null = null;
  #closing = false;
  #sweeping: Promise<void> | null = null;
  /** Calls whose sideband read session.created (its chain ran: the locked state is on its way). */
  readonly #governing = new Set<string>();
  /** Who waits for a call's sideband to be ready (`ready`), by call id. */
  readonly #readyWaiters = new Map<string, (ok: boolean) => void>();
  /** Set while shutdown waits for handed-over sidebands to end. */
  #whenIdle: (() => void) | null = null;
  /** Responses started and cancelled over a cap, per call (`calls.onCap: cancel`: the second ends the call). */
  readonly #overCap = new Map<string, number>();
  /** Calls the governor is ending (`#endCall`: hung up first, sideband closed after), with why. */
  readonly #endReasons = new Map<string, string>();
  /** Hang-ups waiting for their next attempt, by their settle: shutdown settles them at once. */
  readonly #settling = new Set<(outcome: HangupOutcome) => void>();
  /**
   * The settled tokens of each call's sideband, on their way to the store (`recordTokens`): one write
   * in flight per call, the latest count written after it (settles meanwhile coalesce).
   */
  readonly #tokenWrites = new Map<string, { latest: number; inflight: Promise<void> | null }>();

  constructor(deps: GovernorDeps) {
    this.#deps = deps;
    this.#ticker = setInterval(() => {
      const now = deps.clock.now();
      // One sideband's failure ends that sideband (and so its call) only: the others still get
      // their deadlines checked, and nothing escapes the timer (that would end the process).
      for (const s of [...this.#byCall.values()]) {
        try {
          s.tick(now);
        } catch (err) {
          s.fail('tick', err);
        }
      }
    }, 1000);
    this.#ticker.unref();
    this.#leaseTimer = setInterval(() => void this.sweep(), (deps.config.calls.leaseSec * 1000) / 3);
    this.#leaseTimer.unref();
  }

  /** A lease for a call this instance starts governing now. */
  lease(): { owner: string; untilMs: number } {
    return { owner: this.owner, untilMs: this.#deps.clock.wall() + this.#deps.config.calls.leaseSec * 1000 };
  }

  /**
   * Renews this instance's leases (letting go of calls another instance took) and claims calls whose
   * lease lapsed. One sweep at a time; store failures are logged (governed calls go on governed).
   */
  sweep(): Promise<void> {
    if (this.#closing) return Promise.resolve();
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = null));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const { store, log } = this.#deps;
    const { owner, untilMs } = this.lease();
    try {
      const lost = await store.renewLeases(owner, [...this.#byCall.keys()], untilMs);
      for (const callId of lost) await this.#lost(callId);
      // Claimed even at server.maxSessions (until 2026-12-05 a full instance skipped the claim, and a
      // call nobody else claimed ran ungoverned for as long as it stayed full): a lapsed call is live
      // already, and governing it over maxSessions (one more sideband) is better than leaving it
      // unmetered and unguarded. maxSessions still refuses new calls and sessions.
      if (this.#closing) return;
      const claimed = await store.claimLapsed(owner, untilMs, this.#deps.clock.wall(), CLAIMS_PER_SWEEP);
      await Promise.all(claimed.map((call) => this.#reattach(call)));
    } catch (err) {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'call leases: the store did not answer (calls stay governed here)');
    }
  }

  /**
   * A governed call's lease is no longer this instance's. Another instance claimed it (its binding is
   * still there): let go here, it governs the call. Its binding expired (the call outlived
   * `calls.bindingTtlSec`; its lease went with it): nobody can claim it, so it is hung up. (Until
   * 2026-12-05 it was let go either way, and such a call ran on ungoverned.) A store that does not
   * answer counts as bound (letting go never leaves two sidebands metering one call).
   */
  async #lost(callId: string): Promise<void> {
    const bound = await this.#deps.store.getCall(callId, this.#deps.clock.wall()).then(
      (record) => record !== null,
      () => true,
    );
    if (bound) return this.#letGo(callId, 'another instance governs the call now');
    const session = this.#byCall.get(callId);
    if (!session || session.ended || this.#endReasons.has(callId) || this.#released.has(callId)) return;
    const why = 'the call outlived its binding (calls.bindingTtlSec)';
    session.log.warn({ event: 'call_binding_expired', call: callId }, 'the call outlived its binding: hanging it up');
    this.#trackEnd(this.#endCall(callId, session, why, new ProxyError('session_duration_exceeded', { close: 'limitExceeded', message: 'The call outlived its binding (calls.bindingTtlSec) and was ended.' }), false));
  }

  /**
   * A call whose governing instance went away: admitted here (its sideband holds the tenant's
   * concurrent-session slot, as on the instance that created it; until 2026-12-05 a taken-over call
   * held none), then a new sideband; a hang-up when it cannot be governed. Never rejects.
   */
  async #reattach({ callId, record, tokens }: ClaimedCall): Promise<void> {
    const log = this.#deps.log;
    if (this.#closing) {
      this.#track(this.#deps.store.releaseCall(callId, this.owner, false));
      return;
    }
    const existing = this.#byCall.get(callId);
    if (existing && !existing.ended) return;
    // Claimed again, so nobody ended it (an answered hang-up ends the lease): a hang-up given up here
    // before (an upstream incident) must not turn this call's next ones into no-ops. (Until 2026-12-06
    // it did: re-claimed over a spent cap, or reaching its cap once governed again, the call ran on
    // unmetered; src/calls/governor.test.ts.)
    this.#hungUp.delete(callId);
    const tenant = this.#deps.tenant(record.tenant);
    const slot = typeof record.slot === 'string' ? record.slot : callSlotToken(callId);
    // Hung up unadmitted: until 2026-12-07 (red team) the left slot counted for the tenant until it
    // expired, the slot TTL after the call ended (test/calls/adversary-handover-slot.test.ts, "refused").
    const giveBackSlot = (tenantId: string) => this.#deps.giveBackSlot?.(tenantId, slot);
    if (!tenant) {
      giveBackSlot(record.tenant);
      void this.hangup(callId, log, 'the call was re-claimed but its tenant is no longer configured');
      return;
    }
    // Ended by the proxy before, but its hang-up never landed: the call goes on, and its client
    // sockets elsewhere must not read that old reason at its own end.
    if (record.endedByProxy) this.#track(this.#deps.store.amendCall(callId, { endedByProxy: null }, this.#deps.clock.wall()));
    // A SIP call whose sidebands never turned its responses back on gets the update (a released one's record holds none: CallRecord.onAttach).
    const call: GovernedCall = { callId, tenant, model: record.model, kind: record.kind, onAttach: record.onAttach ?? null, usage: { startedAtMs: this.#startedAt(record), tokens }, takenOver: true, slot };
    let refused: ProxyError | null = null;
    let admission: CallAdmission | null = null;
    try {
      const answer = (await this.#deps.admitTakenOver?.(call)) ?? null;
      if (answer instanceof ProxyError) refused = answer;
      else admission = answer;
    } catch (err) {
      log.warn({ call: callId, err: err instanceof Error ? err.message : String(err) }, 'admission of a re-claimed call failed: governed without it');
    }
    if (refused && !GOVERNED_OVER_REFUSAL.has(refused.code)) {
      log.info({ event: 'call_reattach_refused', call: callId, tenant: tenant.id, code: refused.code }, 'a re-claimed call the tenant may not open now is hung up');
      giveBackSlot(tenant.id);
      void this.hangup(callId, log, `the re-claimed call was refused admission (${refused.code})`);
      return;
    }
    if (refused) log.warn({ event: 'call_reattached_unadmitted', call: callId, tenant: tenant.id, code: refused.code }, 'a re-claimed call is governed without a concurrency slot (it is live already)');
    // Shutdown, or another start, while admission ran: no sideband opens with this admission.
    if (this.#closing) {
      admission?.withdraw();
      this.#track(this.#deps.store.releaseCall(callId, this.owner, false));
      return;
    }
    const again = this.#byCall.get(callId);
    if (again && !again.ended) {
      admission?.withdraw();
      return;
    }
    log.info({ event: 'call_reattached', call: callId, tenant: tenant.id, transport: record.kind }, 'a call whose instance went away gets a new sideband here');
    try {
      this.start({ ...call, admission });
    } catch (err) {
      log.error({ call: callId, err: err instanceof Error ? err.message : String(err) }, 'the re-claimed call could not be governed');
      this.hangup(callId, log, 'the re-claimed call could not be governed');
    }
  }

  /**
   * When a claimed call was bound. A record bound before 2026-12-06 does not say: its binding's expiry
   * less `calls.bindingTtlSec` (as it was set), never later than now.
   */
  #startedAt(record: CallRecord): number {
    const wall = this.#deps.clock.wall();
    if (typeof record.startedAtMs === 'number' && Number.isFinite(record.startedAtMs)) return record.startedAtMs;
    return Math.min(wall, record.expiresAtMs - this.#deps.config.calls.bindingTtlSec * 1000);
  }

  /**
   * A call's sideband settled (metering, through SessionContext.carried): its count, the carried
   * tokens included, goes to the store with the lease, one write per settle, coalesced while one is in
   * flight (at most one in flight and one waiting per call). A crash loses at most the settles whose
   * write had not landed (one store round trip); a failed write is logged (the next settle's carries
   * the count). Never throws (it runs inside the metering filter).
   */
  #settledTokens(callId: string, tokens: number): void {
    let w = this.#tokenWrites.get(callId);
    if (!w) this.#tokenWrites.set(callId, (w = { latest: 0, inflight: null }));
    if (!(tokens > w.latest)) return;
    w.latest = tokens;
    if (!w.inflight) this.#writeTokens(callId, w);
  }

  #writeTokens(callId: string, w: { latest: number; inflight: Promise<void> | null }): void {
    const tokens = w.latest;
    let write: Promise<void>;
    try {
      write = this.#deps.store.recordTokens(callId, this.owner, tokens);
    } catch (err) {
      write = Promise.reject(err);
    }
    const done = write
      .catch((err: unknown) => this.#deps.log.warn({ call: callId, err: err instanceof Error ? err.message : String(err) }, 'call usage: the store did not take the settled tokens'))
      .then(() => {
        if (w.latest > tokens) return this.#writeTokens(callId, w);
        w.inflight = null;
        if (this.#tokenWrites.get(callId) === w && !this.#byCall.has(callId)) this.#tokenWrites.delete(callId);
      });
    w.inflight = done;
    this.#pend(done);
  }

  /** Drops the call's count once none of it is on its way to the store (a write in flight drops it when done). */
  #forgetWrittenTokens(callId: string): void {
    if (!this.#tokenWrites.get(callId)?.inflight) this.#tokenWrites.delete(callId);
  }

  /** Resolves once the call's settled tokens counted so far are written (or their write failed). */
  async #tokensWritten(callId: string): Promise<void> {
    for (let w = this.#tokenWrites.get(callId); w?.inflight; ) await w.inflight;
  }

  /** Ends this call's sideband here without a hang-up (it is governed elsewhere, or handed over). */
  #letGo(callId: string, why: string): void {
    const session = this.#byCall.get(callId);
    if (!session) return;
    this.#released.add(callId);
    session.log.info({ event: 'call_released', call: callId, why }, 'call sideband let go');
    session.close(new ProxyError('server_shutting_down', { message: `This instance stopped governing the call: ${why}.` }));
  }

  /** Nobody is to govern the call again (it ended or was hung up). */
  #endLease(callId: string): void {
    this.#track(this.#deps.store.releaseCall(callId, this.owner, true));
  }

  /** A call being ended that shutdown waits for (its sideband closed once the hang-up settled). */
  #trackEnd(end: Promise<void>): void {
    this.#pend(end.catch((err: unknown) => this.#deps.log.error({ err: err instanceof Error ? err.message : String(err) }, 'ending a call failed')));
  }

  /** A lease write shutdown waits for; a failure is logged (the lease then lapses by itself). */
  #track(write: Promise<void>): void {
    this.#pend(write.catch((err: unknown) => this.#deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'call lease: the store did not take the write')));
  }

  /** Work shutdown waits for (it never rejects: each caller logs its failure). */
  #pend(p: Promise<unknown>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** The chain is built after this module's own filter exists (it is part of it). */
  useTemplate(template: ChainTemplate): void {
    this.#template = template;
  }

  get size(): number {
    return this.#byCall.size;
  }

  /** Calls whose settled-token count this instance keeps: its live calls and writes still in flight. */
  get trackedTokenCounts(): number {
    return this.#tokenWrites.size;
  }

  /** True for the proxy's own sideband session `sessionId`. */
  governs(sessionId: string): boolean {
    return this.#sessionIds.has(sessionId);
  }

  /** The call the proxy's own sideband session `sessionId` governs. */
  callOf(sessionId: string): GovernedCall | undefined {
    return this.#sessionIds.get(sessionId);
  }

  session(callId: string): Sideband | undefined {
    return this.#byCall.get(callId);
  }

  start(call: GovernedCall): Sideband {
    if (!this.#deps.openSideband && !this.#template) throw new Error('calls: the filter chain is not ready');
    const existing = this.#byCall.get(call.callId);
    if (existing && !existing.ended) {
      // The call has its sideband (and that one its slot): this admission opens nothing.
      call.admission?.withdraw();
      return existing;
    }
    // An earlier sideband's count here, all written: the store's (call.usage) is the count now.
    this.#forgetWrittenTokens(call.callId);
    const id = `rpc_${randomBytes(8).toString('hex')}`;
    // Known before the chain is built: the calls filter asks `governs(id)` when it is created.
    this.#sessionIds.set(id, call);
    const log = this.#deps.log.child({ session: id, tenant: call.tenant.id, model: capLogBinding(call.model), call: call.callId, transport: call.kind });
    const carried: CarriedUsage = {
      startedAtWallMs: call.usage?.startedAtMs ?? this.#deps.clock.wall(),
      tokens: call.usage?.tokens ?? 0,
      settled: (tokens) => this.#settledTokens(call.callId, tokens),
      ...(call.takenOver === true ? { takenOver: true } : {}),
      // Let go (handed over, or claimed elsewhere): the call goes on, and its slot with it.
      slotGoesOn: () => this.#released.has(call.callId),
    };
    const init: SidebandInit = { id, call, log, carried, onEnded: (s) => this.#ended(call, s), endCallFirst: (error, drain) => this.#hangUpFirst(call.callId, log, error, drain) };
    let session: Sideband;
    try {
      session = this.#deps.openSideband ? this.#deps.openSideband(init) : this.#relaySideband(init);
    } catch (err) {
      // No sideband holds the admission's slot (nothing, once its metering filter claimed it).
      call.admission?.withdraw();
      throw err;
    }
    this.#byCall.set(call.callId, session);
    log.info({ event: 'call_governed' }, 'call sideband start');
    session.start();
    return session;
  }

  #relaySideband({ id, call, log, carried, onEnded, endCallFirst }: SidebandInit): Sideband {
    const template = this.#template!;
    return new RelaySession(
      {
        id,
        tenant: call.tenant,
        model: call.model,
        // The model is known from the governed config: metering prices and locks check it from the start.
        query: new Map([['model', call.model]]),
        callId: call.callId,
        target: this.#deps.upstream.sidebandTarget(call.callId),
        config: this.#deps.config,
        template,
        clock: this.#deps.clock,
        log,
        onEnded,
        endCallFirst,
        carried,
        admission: call.admission?.ticket ?? null,
      },
      null,
    );
  }

  #ended(call: GovernedCall, session: Sideband): void {
    const reason = this.#endReasons.get(call.callId);
    if (this.#byCall.get(call.callId) === session) {
      this.#byCall.delete(call.callId);
      this.#forgetWrittenTokens(call.callId);
      this.#governing.delete(call.callId);
      this.#readyWaiters.get(call.callId)?.(false);
      this.#overCap.delete(call.callId);
      this.#endReasons.delete(call.callId);
    }
    this.#sessionIds.delete(session.id);
    const record = session.endRecord();
    session.log.info(record, 'call sideband end');
    this.#whenIdle?.();
    // Let go (lease lost, or handed over at shutdown): the call goes on, governed by whoever claims it.
    if (this.#released.delete(call.callId)) {
      // Handed over only now that this sideband stopped metering (after a lingering response.done):
      // the next instance never bills a response this one billed.
      // Its settled tokens are written first: the next instance counts on from all of them.
      if (this.#closing) this.#track(this.#tokensWritten(call.callId).then(() => this.#deps.store.releaseCall(call.callId, this.owner, false)));
      return;
    }
    if (sidebandEndLeavesCall(record['initiator'], record['upstreamCloseCode'])) {
      this.hangup(call.callId, session.log, record['initiator'] === 'proxy' ? (reason ?? 'the proxy ended the call sideband') : 'the call sideband was lost');
    } else {
      this.#endLease(call.callId);
    }
  }

  /**
   * Ends the call upstream (once per call). A failure the upstream may not repeat (a network error,
   * a 5xx, a 429) is retried after 1, 2 and 4 s: a call left running is unmetered. Failures are
   * logged, never thrown; shutdown waits for the attempt in flight, not for the retries. The call's
   * lease ends when the upstream answered (hung up, or refused: no such call); a hang-up given up
   * (retries exhausted, or shutdown) leaves the lease to lapse, so an instance claims the call again
   * and governs it or finds it gone. Resolves once the hang-up settled (answered, or given up), with
   * how; at once for a call already hung up (`earlier`).
   */
  hangup(callId: string, log: Logger, why: string): Promise<HangupOutcome> {
    if (this.#hungUp.has(callId)) return Promise.resolve('earlier');
    this.#hungUp.add(callId);
    if (this.#hungUp.size > 10_000) this.#hungUp.delete(this.#hungUp.values().next().value!);
    log.info({ event: 'call_hangup', call: callId, why }, 'hanging up the call');
    return new Promise<HangupOutcome>((settle) => {
      const attempt = (n: number): void => {
        const p = this.#deps.upstream
          .control(callId, 'hangup')
          .then((r) => {
            if (r.status >= 300) log.warn({ call: callId, status: r.status, attempt: n }, 'upstream refused the hangup');
            if (r.status >= 500 || r.status === 429) return retry(n);
            this.#endLease(callId);
            settle(r.status < 300 ? 'hung_up' : 'refused');
          })
          .catch((err: unknown) => {
            log.error({ call: callId, err: err instanceof Error ? err.message : String(err), attempt: n }, 'hangup failed');
            retry(n);
          });
        this.#pend(p);
      };
      const retry = (n: number): void => {
        if (n >= HANGUP_ATTEMPTS || this.#closing) return settle('given_up');
        this.#settling.add(settle);
        setTimeout(() => {
          this.#settling.delete(settle);
          if (this.#closing) settle('given_up');
          else attempt(n + 1);
        }, 1000 * 2 ** (n - 1)).unref();
      };
      attempt(1);
    });
  }

  /**
   * The governor ends a call (a cap, a shutdown): the hang-up goes first, and the sideband is closed
   * (`error`) only once it settled, so every response the call runs until it is gone (one the
   * browser or the server starts while the hang-up is on its way included) is read on the sideband
   * and billed. (Until 2026-12-05 the sideband was closed first: a response started during the
   * hang-up's flight, or its retries, ran unseen and unbilled.) Over a cap (`drain`), the hang-up
   * waits first for the cancelled responses' response.done (`Sideband.idle`, at most
   * `metering.lingerAfterClientCloseMs`); a response the hang-up still cuts short, whose
   * response.done never comes, is billed at its reservation when the sideband ends. Bounded: the
   * drain, then every attempt and the pauses between them (`calls.upstreamTimeoutMs` each; at
   * shutdown only the attempt in flight), then the sideband is closed whatever the upstream did.
   * Once per call while it is being ended.
   */
  async #endCall(callId: string, session: Sideband, why: string, error: ProxyError, drain: boolean): Promise<void> {
    this.#endReasons.set(callId, why);
    // Over a cap, metering has cancelled the running responses: their response.done (billed as
    // OpenAI bills them) comes before the hang-up can cut them short. Bounded like a client's linger.
    if (drain) await session.idle(this.#deps.config.metering.lingerAfterClientCloseMs);
    await this.#announceEnd(callId, error, session.log);
    await this.#hangUpAnnounced(callId, session.log, why);
    // The upstream may have closed it already (the call ended): nothing left to close.
    if (session.ended) return;
    try {
      session.close(error);
    } catch (err) {
      // Outside every socket callback: a throw here would be an unhandled rejection.
      session.fail('close', err);
    }
  }

  /**
   * The hang-up of a call whose end was announced (`#announceEnd`), and the reason's withdrawal after
   * it, waited for at most every attempt and the pauses between them; never rejects. A hang-up the
   * upstream did not take (given up, or refused) leaves the call running: its reason is taken back out
   * of the record whenever it settles (within the wait or after it), so that the caller hanging up
   * later closes the call's client sockets on other processes 1000, as a caller's hang-up does (until
   * 2026-12-07 they read the proxy's error: test/calls/call-end-instances.test.ts).
   */
  #hangUpAnnounced(callId: string, log: Logger, why: string): Promise<void> {
    const boundMs = HANGUP_ATTEMPTS * this.#deps.config.calls.upstreamTimeoutMs + HANGUP_PAUSES_MS;
    const settled = this.hangup(callId, log, why).then((outcome) => (outcome === 'hung_up' ? undefined : this.#withdrawEndReason(callId, outcome, log)));
    return settledWithin(settled, boundMs, undefined);
  }

  /** The end's reason cleared in the call's record. */
  #withdrawEndReason(callId: string, hangup: HangupOutcome, log: Logger): Promise<void> {
    log.warn({ event: 'call_end_reason_withdrawn', call: callId, hangup }, 'call end: the hang-up did not land; its reason is withdrawn from the call\'s record');
    return this.#writeEndReason(callId, null, log, 'call end: the store did not take the reason\'s withdrawal (client sockets on other processes may read the proxy\'s error at the call\'s end)');
  }

  /** `endedByProxy` written to the call's record, waited for at most END_REASON_WRITE_MS; never rejects: a store that fails is logged (`failure`). */
  async #writeEndReason(callId: string, reason: CallEndReason | null, log: Logger, failure: string): Promise<void> {
    let write: Promise<void>;
    try {
      write = this.#deps.store.amendCall(callId, { endedByProxy: reason }, this.#deps.clock.wall());
    } catch (err) {
      write = Promise.reject(err);
    }
    const written = write.catch((err: unknown) => log.warn({ call: callId, err: err instanceof Error ? err.message : String(err) }, failure));
    this.#pend(written);
    await settledWithin(written, END_REASON_WRITE_MS, undefined);
  }

  /**
   * A call's sideband is closing on its own decision (a guardrail's end_session, a governance
   * failure, its max duration, …): the running responses are drained first (cancelled, their
   * response.done read: billed from their usage, not at their reservation when the hang-up cuts
   * them short), then the call is hung up, the sideband read until that settled (bounded as
   * `#endCall`), so a response started during the hang-up's flight is billed. (Until 2026-12-05
   * these closed the sideband first and hung up from `#ended`, and then hung up without the drain.)
   * Null when the call is hung up already (`#endCall` closes after its hang-up) or let go here (it
   * goes on elsewhere).
   */
  #hangUpFirst(callId: string, log: Logger, error: ProxyError, drain: () => Promise<void>): Promise<void> | null {
    if (this.#hungUp.has(callId) || this.#released.has(callId)) return null;
    const why = this.#endReasons.get(callId) ?? `the proxy ended the call sideband (${error.code})`;
    // Being ended: a cap reached meanwhile does not end it twice; shutdown lets this close.
    this.#endReasons.set(callId, why);
    const end = drain()
      .then(() => this.#announceEnd(callId, error, log))
      .then(() => this.#hangUpAnnounced(callId, log, why));
    this.#trackEnd(end);
    return end;
  }

  /**
   * Why the proxy ends the call, just before its hang-up: the call's client sockets on this process
   * are closed with the error (`GovernorDeps.ending`), and the error goes into the call's store record
   * (`endedByProxy`, waited for at most END_REASON_WRITE_MS) for those on other processes, which read
   * it when the hang-up closes their upstream. (Until 2026-12-07 those got only the upstream's 1000,
   * a caller hanging up to the app.) Never rejects: a store that fails leaves them that 1000.
   */
  async #announceEnd(callId: string, error: ProxyError, log: Logger): Promise<void> {
    try {
      this.#deps.ending?.(callId, error);
    } catch (err) {
      log.error({ err, call: callId }, 'telling the call\'s client sockets why it ends failed');
    }
    await this.#writeEndReason(callId, endReasonOf(error), log, 'call end: the store did not take its reason (client sockets on other processes get the upstream\'s close)');
  }

  /** The calls filter saw session.created on this call's sideband. */
  governing(callId: string): void {
    this.#governing.add(callId);
    this.#readyWaiters.get(callId)?.(true);
  }

  /**
   * True once the call's sideband read session.created, false when it ended first or `timeoutMs`
   * passed. (A browser's answer waits for it: it could act on its data channel before that.)
   */
  ready(callId: string, timeoutMs: number): Promise<boolean> {
    if (this.#governing.has(callId)) return Promise.resolve(true);
    const session = this.#byCall.get(callId);
    if (!session || session.ended) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => settle(false), timeoutMs);
      const settle = (ok: boolean): void => {
        clearTimeout(timer);
        this.#readyWaiters.delete(callId);
        resolve(ok);
      };
      this.#readyWaiters.get(callId)?.(false);
      this.#readyWaiters.set(callId, settle);
    });
  }

  /**
   * A cap on the call's sideband (`responseStarted`: a response the browser or the server started
   * over it was cancelled at its response.created). `calls.onCap: hangup` ends the call now;
   * `cancel` lets it go on after one such response and ends it at the second: the browser starts
   * responses on its data channel, which the proxy cannot refuse, and one short enough finishes
   * (and is billed) before its cancel lands, so a call that goes on starting them is ended rather
   * than billed past the cap without bound. Ended after the cancel went out, through the
   * sideband's end, which hangs the call up (`#ended`).
   */
  capReached(callId: string, responseStarted: boolean, limit: CallLimit = TENANT_CAP): void {
    const session = this.#byCall.get(callId);
    // Being ended already (its sideband stays open until the hang-up settled): once.
    if (!session || session.ended || this.#endReasons.has(callId)) return;
    // The tenant's cost cap, the session's own limit (maxSessionTokens, maxSessionDurationSec), its
    // model no longer priced or the ledger unavailable, named as it is and ended with metering's own code (until
    // 2026-12-06 a call ended at its duration was logged as over its cost cap, and one whose model
    // was not priced was hung up as over its token limit or its cost cap).
    const what = limit.code === 'budget_exceeded' ? 'cost cap' : limit.code === 'token_limit_exceeded' || limit.code === 'session_duration_exceeded' ? `session limit (${limit.name})` : `metering limit (${limit.code})`;
    const code = limit.code;
    let why = `the call reached its ${what}`;
    let message = `The call reached its ${what} and was ended.`;
    if (this.#deps.config.calls.onCap !== 'hangup') {
      if (!responseStarted) return;
      const started = (this.#overCap.get(callId) ?? 0) + 1;
      this.#overCap.set(callId, started);
      // The first goes on; past the second the call is already ending.
      if (started !== 2) return;
      why = `a second response started over the ${what}`;
      message = `The call started another response over its ${what} after one was cancelled, and was ended.`;
      session.log.warn({ event: 'call_cap_repeat', call: callId, overCapResponses: started }, `a second response started over the ${what} (calls.onCap: cancel): ending the call`);
    }
    this.#endReasons.set(callId, why);
    // Let the chain finish the frame (cancel + clear are already queued upstream), then end.
    queueMicrotask(() => {
      // Ended meanwhile (the upstream closed it): its end decided about the call.
      if (!session.ended) this.#trackEnd(this.#endCall(callId, session, why, new ProxyError(code, { close: 'limitExceeded', message }), true));
    });
  }

  /**
   * Ends every sideband. `calls.onShutdown: hangup` hangs the calls up; `handover` leaves them
   * running and releases their leases for the next instance that sweeps.
   */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#ticker);
    clearInterval(this.#leaseTimer);
    await this.#sweeping;
    const handover = this.#deps.config.calls.onShutdown === 'handover';
    for (const [callId, session] of [...this.#byCall]) {
      if (handover) this.#letGo(callId, 'handed over at shutdown');
      // Hung up first (the attempt in flight: no retries now), then closed; one a cap is ending already just settles sooner.
      else if (!this.#endReasons.has(callId)) this.#trackEnd(this.#endCall(callId, session, 'the proxy is shutting down', new ProxyError('server_shutting_down'), false));
    }
    // Hang-ups waiting for a retry are given up now: their sidebands close.
    for (const settle of [...this.#settling]) settle('given_up');
    if (handover && this.#byCall.size > 0) {
      // A sideband with a response running lingers until its response.done (bounded): its lease is
      // released when it ends. One that outlives the wait keeps its lease, which lapses by itself.
      const bound = this.#deps.config.metering.lingerAfterClientCloseMs + 1000;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, bound);
        this.#whenIdle = () => {
          if (this.#byCall.size > 0) return;
          clearTimeout(timer);
          resolve();
        };
      });
    }
    // A settled hang-up may add its lease write: wait until nothing is left.
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }
}
