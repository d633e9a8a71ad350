import type { Logger } from 'pino';
import type { HttpReply } from '../app/module.js';
import { ProxyError } from '../protocol/errors.js';
import type { DeliveryClaim } from './webhook.js';
import type { CallAmendment, CallLease, CallRecord, CallStore, ClaimedCall, SecretRecord } from './store.js';

/** Thrown by OutageGuardedStore in place of the store's own error (whose text names internal addresses). */
export class CallStoreUnavailable extends Error {
  constructor() {
    super('calls store unavailable');
    this.name = 'CallStoreUnavailable';
  }
}

/** Seconds a client is told to wait (Retry-After) before asking again: the Redis client reconnects within 2 s. */
export const STORE_RETRY_AFTER_SEC = 1;

/** The answer to a calls request the store could not serve: 503, a fixed message (never the store's error), Retry-After. */
export function storeUnavailableReply(error: ProxyError = storeUnavailableError()): HttpReply {
  return {
    status: error.httpStatus,
    headers: { 'content-type': 'application/json', 'retry-after': String(STORE_RETRY_AFTER_SEC) },
    body: JSON.stringify(error.toHttpBody()),
    refusal: error.code,
  };
}

export function storeUnavailableError(): ProxyError {
  return new ProxyError('calls_store_unavailable');
}

/** How often the failing kinds of store call are probed during an outage (see OutageGuardedStore). */
export const PROBE_EVERY_MS = 1000;

/** Store calls that only read, and those that write: a store may fail the writes alone (see OutageGuardedStore). */
type StoreCallKind = 'read' | 'write';

/**
 * The calls store as the request paths (mint, offer, attach, hangup, webhook deliveries) use it: a
 * failed store call throws CallStoreUnavailable, which those paths answer 503
 * `calls_store_unavailable`. The failure is logged once per outage (the first failure after a
 * success, with the store's error), not per request: with Redis down every request fails, and until
 * 2026-12-07 each wrote an error line (and answered 500 `internal_error`). The outage ends, logged
 * with how many store calls failed meanwhile, once a call of every kind (read, write) that failed
 * in it has succeeded: a Redis that refuses writes and serves reads (READONLY after a failover,
 * OOM under `noeviction`) is one outage. Until 2026-12-07 (later that day) any success ended it, and
 * a keyless client's made-up `ek_` secret, one successful read, made every failed mint after it a
 * new outage: an error and a warn line per request (test/calls/redteam-18-store-outage-flips.test.ts).
 */
export class OutageGuardedStore implements CallStore {
  readonly #store: CallStore;
  readonly #log: Logger;
  /** Store calls failed since the outage began; 0 while the store answers. */
  #failed = 0;
  /** The kinds of call that failed in this outage and have not succeeded since. */
  readonly #failing = new Set<StoreCallKind>();
  /** Probes the failing kinds while an outage is on (see #startProbing); null otherwise. */
  #prober: ReturnType<typeof setInterval> | null = null;
  #probing = false;
  /** Closed (the module's close): no probe starts again (a call in flight failing on the closed store would start one for good). */
  #closed = false;
  readonly #probeEveryMs: number;

  constructor(store: CallStore, log: Logger, probeEveryMs = PROBE_EVERY_MS) {
    this.#store = store;
    this.#log = log;
    this.#probeEveryMs = probeEveryMs;
  }

  async #guard<T>(kind: StoreCallKind, call: () => Promise<T>): Promise<T> {
    let value: T;
    try {
      value = await call();
    } catch (err) {
      if (this.#failed++ === 0) {
        this.#log.error({ event: 'calls_store_unavailable', err: err instanceof Error ? err.message : String(err) }, 'calls store unavailable: calls requests are answered 503 calls_store_unavailable until it answers (logged once per outage)');
      }
      this.#failing.add(kind);
      this.#startProbing();
      throw new CallStoreUnavailable();
    }
    this.#succeeded(kind);
    return value;
  }

  #succeeded(kind: StoreCallKind): void {
    if (this.#failed > 0 && this.#failing.delete(kind) && this.#failing.size === 0) {
      this.#log.warn({ event: 'calls_store_available', failed: this.#failed }, 'calls store answering again');
      this.#failed = 0;
      this.#stopProbing();
    }
  }

  /**
   * While an outage is on, /readyz says not ready (readiness) and the load balancer sends no more
   * requests: none would end the outage. So each failing kind is probed (the store's own cheap call
   * on a key of its own) every PROBE_EVERY_MS, one round at a time (a hung store holds one round,
   * bounded by its command timeout), until both kinds answer; stopped then and on close.
   */
  #startProbing(): void {
    // Until 2026-12-07 a call in flight at close, failing after it, started one that ran for good
    // (test/calls/redteam-18z-probe-after-close.test.ts).
    if (this.#prober !== null || this.#closed || !this.#store.probe) return;
    this.#prober = setInterval(() => void this.#probeRound(), this.#probeEveryMs);
    this.#prober.unref();
  }

  #stopProbing(): void {
    if (this.#prober !== null) clearInterval(this.#prober);
    this.#prober = null;
  }

  async #probeRound(): Promise<void> {
    const probe = this.#store.probe?.bind(this.#store);
    if (this.#probing || !probe) return;
    this.#probing = true;
    try {
      for (const kind of [...this.#failing]) {
        // A failed probe is no request refused: not counted in the outage's failures.
        const answered = await probe(kind).then(() => true, () => false);
        if (!answered) break;
        this.#succeeded(kind);
      }
    } finally {
      this.#probing = false;
    }
  }

  putSecret(hash: string, record: SecretRecord, wallMs: number): Promise<void> {
    return this.#guard('write', () => this.#store.putSecret(hash, record, wallMs));
  }

  getSecret(hash: string, wallMs: number): Promise<SecretRecord | null> {
    return this.#guard('read', () => this.#store.getSecret(hash, wallMs));
  }

  putCall(callId: string, record: CallRecord, lease: CallLease, wallMs: number): Promise<void> {
    return this.#guard('write', () => this.#store.putCall(callId, record, lease, wallMs));
  }

  getCall(callId: string, wallMs: number): Promise<CallRecord | null> {
    return this.#guard('read', () => this.#store.getCall(callId, wallMs));
  }

  amendCall(callId: string, amendment: CallAmendment, wallMs: number): Promise<void> {
    return this.#guard('write', () => this.#store.amendCall(callId, amendment, wallMs));
  }

  renewLeases(owner: string, callIds: readonly string[], untilMs: number): Promise<string[]> {
    return this.#guard('write', () => this.#store.renewLeases(owner, callIds, untilMs));
  }

  claimLapsed(owner: string, untilMs: number, wallMs: number, limit: number): Promise<ClaimedCall[]> {
    return this.#guard('write', () => this.#store.claimLapsed(owner, untilMs, wallMs, limit));
  }

  releaseCall(callId: string, owner: string, ended: boolean): Promise<void> {
    return this.#guard('write', () => this.#store.releaseCall(callId, owner, ended));
  }

  recordTokens(callId: string, owner: string, tokens: number): Promise<void> {
    return this.#guard('write', () => this.#store.recordTokens(callId, owner, tokens));
  }

  claimDelivery(webhookId: string, token: string, leaseMs: number, wallMs: number): Promise<DeliveryClaim> {
    return this.#guard('write', () => this.#store.claimDelivery(webhookId, token, leaseMs, wallMs));
  }

  deliveryHandled(webhookId: string, ttlMs: number, wallMs: number): Promise<void> {
    return this.#guard('write', () => this.#store.deliveryHandled(webhookId, ttlMs, wallMs));
  }

  forgetDelivery(webhookId: string, token: string): Promise<void> {
    return this.#guard('write', () => this.#store.forgetDelivery(webhookId, token));
  }

  /**
   * The store's own readiness (its connection), else not ready while calls of a kind fail and the
   * store can be probed: a Redis that refuses writes (READONLY after a failover, OOM) or hangs keeps
   * its connection, and until 2026-12-07 /readyz said ready while every mint answered 503
   * (test/calls/redteam-18o-store-outage-ops.test.ts). A store that cannot be probed would stay out
   * for good once no request reaches it: its outage keeps its readiness.
   */
  readiness(): string | null {
    const own = this.#store.readiness?.() ?? null;
    if (own !== null || this.#failing.size === 0 || !this.#store.probe) return own;
    return `calls store failing ${[...this.#failing].sort().join(' and ')}s`;
  }

  /** Stops the probes. The store is the module's: closing it is the module's close, not a request path's. */
  close(): Promise<void> {
    this.#closed = true;
    this.#stopProbing();
    return Promise.resolve();
  }
}
