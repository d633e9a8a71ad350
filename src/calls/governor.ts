import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ChainTemplate } from '../pipeline/chain.js';
import type { Clock } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { RelaySession } from '../relay/session.js';
import type { Tenant } from '../tenants/tenant.js';
import type { UpstreamCalls } from './upstream.js';

export interface GovernedCall {
  readonly callId: string;
  readonly tenant: Tenant;
  readonly model: string;
  readonly kind: 'webrtc' | 'sip';
}

export interface GovernorDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: Clock;
  readonly upstream: UpstreamCalls;
}

/**
 * Whether a call may still be running when its sideband ended: the upstream closes a sideband
 * normally (1000) when its call has ended; any other end (the proxy's decision, a dropped or failed
 * sideband) leaves a call nobody meters or guards, to be hung up.
 */
export function sidebandEndLeavesCall(initiator: unknown, upstreamCloseCode: unknown): boolean {
  return initiator !== 'upstream' || upstreamCloseCode !== 1000;
}

/** Hang-up attempts for one call (1 + retries after 1, 2 and 4 s). */
const HANGUP_ATTEMPTS = 4;

/**
 * The proxy's own sideband sessions: one relay session per call, with no client socket, dialled
 * with `?call_id=` and the proxy's key, running the same filter chain as a WebSocket session
 * (metering, caps, guardrails, locks, telemetry). Whatever ends it but the call's own end (a cap, a
 * guardrail, a governance failure, a shutdown, a sideband that drops or fails) also ends the call
 * with `/hangup`: a call the proxy can no longer govern does not go on.
 */
export class CallGovernors {
  readonly #deps: GovernorDeps;
  readonly #byCall = new Map<string, RelaySession>();
  readonly #sessionIds = new Set<string>();
  readonly #hungUp = new Set<string>();
  readonly #pending = new Set<Promise<unknown>>();
  readonly #ticker: NodeJS.Timeout;
  #template: ChainTemplate | null = null;
  #closing = false;

  constructor(deps: GovernorDeps) {
    this.#deps = deps;
    this.#ticker = setInterval(() => {
      const now = deps.clock.now();
      for (const s of this.#byCall.values()) s.tick(now);
    }, 1000);
    this.#ticker.unref();
  }

  /** The chain is built after this module's own filter exists (it is part of it). */
  useTemplate(template: ChainTemplate): void {
    this.#template = template;
  }

  get size(): number {
    return this.#byCall.size;
  }

  /** True for the proxy's own sideband session `sessionId`. */
  governs(sessionId: string): boolean {
    return this.#sessionIds.has(sessionId);
  }

  session(callId: string): RelaySession | undefined {
    return this.#byCall.get(callId);
  }

  start(call: GovernedCall): RelaySession {
    const template = this.#template;
    if (!template) throw new Error('calls: the filter chain is not ready');
    const existing = this.#byCall.get(call.callId);
    if (existing && !existing.ended) return existing;
    const id = `rpc_${randomBytes(8).toString('hex')}`;
    // Known before the chain is built: the calls filter asks `governs(id)` when it is created.
    this.#sessionIds.add(id);
    const log = this.#deps.log.child({ session: id, tenant: call.tenant.id, model: call.model, call: call.callId, transport: call.kind });
    const session = new RelaySession(
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
        onEnded: (s) => this.#ended(call, s),
      },
      null,
    );
    this.#byCall.set(call.callId, session);
    log.info({ event: 'call_governed' }, 'call sideband start');
    session.start();
    return session;
  }

  #ended(call: GovernedCall, session: RelaySession): void {
    if (this.#byCall.get(call.callId) === session) this.#byCall.delete(call.callId);
    this.#sessionIds.delete(session.id);
    const record = session.endRecord();
    session.log.info(record, 'call sideband end');
    if (sidebandEndLeavesCall(record['initiator'], record['upstreamCloseCode'])) {
      this.hangup(call.callId, session.log, record['initiator'] === 'proxy' ? 'the proxy ended the call sideband' : 'the call sideband was lost');
    }
  }

  /**
   * Ends the call upstream (once per call). A failure the upstream may not repeat (a network error,
   * a 5xx, a 429) is retried after 1, 2 and 4 s: a call left running is unmetered. Failures are
   * logged, never thrown; shutdown waits for the attempt in flight, not for the retries.
   */
  hangup(callId: string, log: Logger, why: string): void {
    if (this.#hungUp.has(callId)) return;
    this.#hungUp.add(callId);
    if (this.#hungUp.size > 10_000) this.#hungUp.delete(this.#hungUp.values().next().value!);
    log.info({ event: 'call_hangup', call: callId, why }, 'hanging up the call');
    const attempt = (n: number): void => {
      const p = this.#deps.upstream
        .control(callId, 'hangup')
        .then((r) => {
          if (r.status < 300) return;
          log.warn({ call: callId, status: r.status, attempt: n }, 'upstream refused the hangup');
          if (r.status >= 500 || r.status === 429) retry(n);
        })
        .catch((err: unknown) => {
          log.error({ call: callId, err: err instanceof Error ? err.message : String(err), attempt: n }, 'hangup failed');
          retry(n);
        });
      this.#pending.add(p);
      void p.finally(() => this.#pending.delete(p));
    };
    const retry = (n: number): void => {
      if (n >= HANGUP_ATTEMPTS || this.#closing) return;
      setTimeout(() => attempt(n + 1), 1000 * 2 ** (n - 1)).unref();
    };
    attempt(1);
  }

  /** A cap on the call's sideband: end the call (`calls.onCap: hangup`) after the cancel went out. */
  capReached(callId: string): void {
    const session = this.#byCall.get(callId);
    if (!session || this.#deps.config.calls.onCap !== 'hangup') return;
    // Let the chain finish the frame (cancel + clear are already queued upstream), then end.
    queueMicrotask(() => session.close(new ProxyError('budget_exceeded', { close: 'limitExceeded', message: 'The call reached its cost cap and was ended.' })));
  }

  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#ticker);
    for (const s of [...this.#byCall.values()]) s.close(new ProxyError('server_shutting_down'));
    await Promise.allSettled([...this.#pending]);
  }
}
