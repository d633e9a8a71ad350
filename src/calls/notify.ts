import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { JsonObject } from '../pipeline/frame.js';
import type { NotifyDelivery, NotifyTarget } from './config.js';
import { signWebhook } from './webhook.js';

/** What became of one announcement (the `rtproxy.notify.outcome` label). */
export type NotifyOutcome = 'delivered' | 'failed' | 'dropped';

export interface CallNotifierDeps {
  readonly log: Logger;
  readonly bounds: NotifyDelivery;
  /**
   * The fraction of `bounds.maxPending` one tenant's announcements may take (notifyDelivery.tenantShare,
   * or notifyTenantShare's default): an app that hangs fills only its tenant's share of the queue.
   */
  readonly tenantShare: number;
  /** Wall clock (epoch ms): the event's `created_at` and each attempt's `webhook-timestamp`. */
  readonly wall: () => number;
  /** Counts the outcome (telemetry: rtproxy_calls_notifications_total). */
  readonly outcome?: (tenant: string, outcome: NotifyOutcome) => void;
}

/**
 * One announcement's target as it is logged: the URL's origin only. Webhook URLs often carry their
 * token in the path (`/hooks/T0/B0/<token>`) or the query; the secret is never logged either.
 */
function logged(url: string): string {
  return new URL(url).origin;
}

/**
 * `calls.sip.notifyDelivery.tenantShare` when unset, as `server.memoryBudgetTenantShare`'s: half the
 * queue when the routes announce to more than one tenant's apps, all of it for a single tenant.
 */
export function notifyTenantShare(tenantsAnnounced: number): number {
  return tenantsAnnounced > 1 ? 0.5 : 1;
}

/**
 * Announces the SIP calls the proxy accepted to the tenants' apps: the `realtime.call.incoming`
 * OpenAI sent the proxy, re-issued as the proxy's own (a fresh event id and webhook id, its
 * `created_at`; `data` as OpenAI sent it: `call_id`, `sip_headers`) and signed with the route's
 * `notify.secret` the Standard Webhooks way (`signWebhook`, the scheme the proxy verifies OpenAI's
 * deliveries with), so an app verifies it as it would OpenAI's (`client.webhooks.unwrap`).
 *
 * Never on the webhook's own path: `announce` only queues (OpenAI gets its answer at once). Each
 * announcement is delivered on its own (a hanging app holds up only its own calls' announcements),
 * every attempt bounded by `timeoutMs`, a non-2xx answer, a timeout or a network error retried up to
 * `attempts` times with a doubling pause; the same webhook id on every attempt (the app dedupes by
 * it), signed afresh (its timestamp stays inside the app's replay window). No redirect is followed
 * and no response body byte is read. At most `maxPending` announcements are in flight or waiting for
 * a retry per process, and of them at most `tenantShare` of it (at least one) per tenant; one more is
 * dropped (logged and counted). Until 2026-12-07 the bound was shared by all tenants: one tenant's
 * hanging app (each announcement held for its timeouts and retries) filled it, and every other
 * tenant's announcements were dropped (test/calls/sip-notify.test.ts).
 */
export class CallNotifier {
  readonly #deps: CallNotifierDeps;
  /** Announcements in flight or waiting for their next attempt. */
  #pending = 0;
  /** Of those, each tenant's (a tenant with none has no entry). */
  readonly #pendingByTenant = new Map<string, number>();
  /** The most one tenant may have pending. */
  readonly #perTenant: number;
  /** Aborts every attempt in flight and every pause at close. */
  readonly #closing = new AbortController();

  constructor(deps: CallNotifierDeps) {
    this.#deps = deps;
    this.#perTenant = Math.max(1, Math.floor(deps.bounds.maxPending * deps.tenantShare));
  }

  /** Announcements being delivered or waiting to be retried. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Queues the announcement of an accepted call (`data`: the incoming event's, as OpenAI sent it); never
   * waits for it. `settled`: told once what became of it (`abandoned`: in flight or waiting at shutdown).
   */
  announce(target: Pick<NotifyTarget, 'url' | 'secret'>, tenant: string, callId: string, data: JsonObject, settled?: (outcome: NotifyOutcome | 'abandoned') => void): 'queued' | 'dropped' {
    const log = this.#deps.log.child({ call: callId, tenant, transport: 'sip' });
    if (this.#closing.signal.aborted) {
      log.warn({ event: 'sip_notify_dropped', url: logged(target.url), reason: 'shutting_down' }, 'SIP call announcement dropped: the proxy is shutting down');
      this.#deps.outcome?.(tenant, 'dropped');
      settled?.('dropped');
      return 'dropped';
    }
    if (this.#pending >= this.#deps.bounds.maxPending) {
      log.warn({ event: 'sip_notify_dropped', url: logged(target.url), pending: this.#pending, reason: 'max_pending' }, 'SIP call announcement dropped: too many pending (calls.sip.notifyDelivery.maxPending)');
      this.#deps.outcome?.(tenant, 'dropped');
      settled?.('dropped');
      return 'dropped';
    }
    const tenantPending = this.#pendingByTenant.get(tenant) ?? 0;
    if (tenantPending >= this.#perTenant) {
      log.warn({ event: 'sip_notify_dropped', url: logged(target.url), pending: tenantPending, reason: 'tenant_share' }, "SIP call announcement dropped: the tenant's share of the queue is full (calls.sip.notifyDelivery.tenantShare)");
      this.#deps.outcome?.(tenant, 'dropped');
      settled?.('dropped');
      return 'dropped';
    }
    this.#pending++;
    this.#pendingByTenant.set(tenant, tenantPending + 1);
    void this.#deliver(target, tenant, data, log)
      .then(
        (outcome) => settled?.(outcome),
        () => settled?.('failed'),
      )
      .finally(() => {
        this.#pending--;
        const left = (this.#pendingByTenant.get(tenant) ?? 1) - 1;
        if (left > 0) this.#pendingByTenant.set(tenant, left);
        else this.#pendingByTenant.delete(tenant);
      });
    return 'queued';
  }

  async #deliver(target: Pick<NotifyTarget, 'url' | 'secret'>, tenant: string, data: JsonObject, log: Logger): Promise<NotifyOutcome | 'abandoned'> {
    const { attempts, timeoutMs, retryPauseMs } = this.#deps.bounds;
    const webhookId = `wh_${randomBytes(12).toString('hex')}`;
    const body = JSON.stringify({ id: `evt_${randomBytes(12).toString('hex')}`, object: 'event', created_at: Math.floor(this.#deps.wall() / 1000), type: 'realtime.call.incoming', data });
    const url = logged(target.url);
    for (let attempt = 1; ; attempt++) {
      const timestampSec = Math.floor(this.#deps.wall() / 1000);
      let failure: { status: number } | { err: string };
      try {
        const res = await fetch(target.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'realtime-governance-proxy/0.1',
            'webhook-id': webhookId,
            'webhook-timestamp': String(timestampSec),
            'webhook-signature': signWebhook(target.secret, webhookId, timestampSec, body),
          },
          body,
          redirect: 'manual',
          signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#closing.signal]),
        });
        // The app's answer is its status: its body is not read at all.
        await res.body?.cancel().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) {
          log.info({ event: 'sip_notify_delivered', url, webhookId, status: res.status, attempt }, 'SIP call announced to the tenant\'s app');
          this.#deps.outcome?.(tenant, 'delivered');
          return 'delivered';
        }
        failure = { status: res.status };
      } catch (err) {
        failure = { err: err instanceof Error ? (err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : err.message) : String(err) };
      }
      if (this.#closing.signal.aborted) {
        log.warn({ event: 'sip_notify_abandoned', url, webhookId, attempt }, 'SIP call announcement abandoned: the proxy is shutting down');
        return 'abandoned';
      }
      if (attempt >= attempts) {
        log.warn({ event: 'sip_notify_failed', url, webhookId, attempt, ...failure }, 'SIP call announcement failed: every attempt refused or unanswered');
        this.#deps.outcome?.(tenant, 'failed');
        return 'failed';
      }
      const pauseMs = retryPauseMs * 2 ** (attempt - 1);
      log.info({ event: 'sip_notify_retry', url, webhookId, attempt, pauseMs, ...failure }, 'SIP call announcement not acknowledged: retrying');
      if (!(await this.#pause(pauseMs))) {
        log.warn({ event: 'sip_notify_abandoned', url, webhookId, attempt }, 'SIP call announcement abandoned: the proxy is shutting down');
        return 'abandoned';
      }
    }
  }

  /** Waits `ms` (a timer that does not keep the process alive); false when the notifier closed meanwhile. */
  #pause(ms: number): Promise<boolean> {
    return sleep(ms, true, { signal: this.#closing.signal, ref: false }).catch(() => false);
  }

  /** Ends every attempt in flight and every pause (each logged abandoned); later announcements are dropped. */
  close(): void {
    this.#closing.abort();
  }
}
