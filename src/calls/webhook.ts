import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { settledWithin } from '../bounded.js';

/**
 * Standard Webhooks signatures, as OpenAI signs `realtime.call.incoming`: the secret is
 * `whsec_<base64 key>`; `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>` of
 * `<webhook-id>.<webhook-timestamp>.<raw body>`; the timestamp is Unix seconds.
 */
export function webhookKey(secret: string): Buffer {
  const raw = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  return Buffer.from(raw, 'base64');
}

export function signWebhook(secret: string, id: string, timestampSec: number, body: string | Buffer): string {
  const mac = createHmac('sha256', webhookKey(secret));
  mac.update(`${id}.${timestampSec}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

export type WebhookCheck = { readonly ok: true; readonly id: string } | { readonly ok: false; readonly reason: string };

/** Checks headers, timestamp window (against the proxy's clock) and signature; never throws. */
export function verifyWebhook(
  secret: string,
  headers: ReadonlyMap<string, string>,
  body: Buffer,
  nowMs: number,
  toleranceSec: number,
): WebhookCheck {
  const id = headers.get('webhook-id') ?? '';
  const ts = headers.get('webhook-timestamp') ?? '';
  const sigs = headers.get('webhook-signature') ?? '';
  if (!id || id.length > 256 || !/^\d{1,12}$/.test(ts) || !sigs) return { ok: false, reason: 'missing or malformed webhook headers' };
  const timestamp = Number(ts);
  if (Math.abs(nowMs / 1000 - timestamp) > toleranceSec) return { ok: false, reason: 'timestamp outside the replay window' };
  const expected = Buffer.from(signWebhook(secret, id, timestamp, body).slice(3), 'base64');
  for (const entry of sigs.split(' ').slice(0, 16)) {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true, id };
  }
  return { ok: false, reason: 'no valid signature' };
}

/**
 * What can be checked of a delivery before its body is read: the three headers present and well
 * formed, the timestamp inside the replay window, and at least one `v1` signature of an
 * HMAC-SHA256's length. Null when the delivery may be genuine, else why not; never throws.
 * (`verifyWebhook` then checks the signature over the body.)
 */
export function webhookHeadersProblem(headers: ReadonlyMap<string, string>, nowMs: number, toleranceSec: number): string | null {
  const id = headers.get('webhook-id') ?? '';
  const ts = headers.get('webhook-timestamp') ?? '';
  const sigs = headers.get('webhook-signature') ?? '';
  if (!id || id.length > 256 || !/^\d{1,12}$/.test(ts) || !sigs) return 'missing or malformed webhook headers';
  if (Math.abs(nowMs / 1000 - Number(ts)) > toleranceSec) return 'timestamp outside the replay window';
  const signed = sigs
    .split(' ')
    .slice(0, 16)
    .some((entry) => {
      const [version, value] = entry.split(',', 2);
      return version === 'v1' && !!value && Buffer.from(value, 'base64').length === 32;
    });
  return signed ? null : 'no valid signature';
}

/**
 * What the store knows of a webhook id when a delivery claims it: `claimed` (this delivery is to
 * handle it), `in_progress` (another delivery's claim holds it: its outcome is not known yet) or
 * `handled` (answered 2xx before: a duplicate).
 */
export type DeliveryClaim = 'claimed' | 'in_progress' | 'handled';

/** The store's record of webhook ids (`CallStore`'s, shared by the instances on one ledger). */
export interface DeliveryRecord {
  /**
   * Claims `webhookId` for handling, atomically across the instances sharing the record: `claimed`
   * (recorded as in progress, held by `token` until `wallMs + leaseMs`) when unknown, forgotten, or
   * when its claim lapsed (the instance handling it died); `in_progress` while another claim holds
   * it; `handled` once it was handled (within the ttl given then).
   */
  claimDelivery(webhookId: string, token: string, leaseMs: number, wallMs: number): Promise<DeliveryClaim>;
  /** Records it as handled until `wallMs + ttlMs`, whoever holds its claim (a handled delivery is final). */
  deliveryHandled(webhookId: string, ttlMs: number, wallMs: number): Promise<void>;
  /** Forgets the claim `token` holds: its handling failed, and a redelivery is to be handled. Any other record is left alone. */
  forgetDelivery(webhookId: string, token: string): Promise<void>;
}

export interface WebhookDeliveriesOptions<R> {
  readonly record: DeliveryRecord;
  /** How long a handled id is remembered. */
  readonly ttlMs: number;
  /**
   * How long a claim holds an id being handled: at least the handling's own bound (else a live
   * handling could be taken over and the call acted on twice); past it, an instance sharing the
   * record takes it over (the claiming one died mid-handling).
   */
  readonly leaseMs: number;
  /** Wall clock (epoch ms) for the record. */
  readonly wall: () => number;
  /** How long a redelivery waits for the handling of the same id in flight here before answering `busy`. */
  readonly waitMs: number;
  /** The answer to a delivery handled already. */
  readonly duplicate: () => R;
  /** The answer to a redelivery whose first handling is still running (past `waitMs` here, or on another instance): a status the sender retries (not 2xx). */
  readonly busy: () => R;
  /**
   * The record could not be updated after the handling: `forget` (its redelivery gets `busy` until
   * the claim lapses, then it is handled), or `handled` (the 2xx answer stands; the claim lapses).
   */
  readonly onRecordFailed: (err: unknown, step: 'forget' | 'handled') => void;
  /** A redelivery starts waiting for the handling of its id in flight here (logged: the sender retried). */
  readonly onWait?: (webhookId: string) => void;
}

/** A redelivery waits this long (at most) for the first handling of its id on this instance. */
export const REDELIVERY_WAIT_MS = 5000;

/**
 * Acts once per webhook id, and never answers "handled" for a delivery that was not. A delivery is
 * handled when it was answered 2xx; one that failed (threw, or answered an error, which the sender
 * redelivers) is forgotten, so that its redelivery is handled. A redelivery arriving while the same
 * id is being handled on this instance (the sender timed out and retried) waits for that outcome,
 * up to `waitMs`: handled, it is a duplicate; failed, it is handled itself; still running, it gets
 * `busy` (a status the sender retries). Until 2026-12-05 it was answered "duplicate" at once, and a
 * first handling that then failed left the call ringing with nobody to answer it.
 *
 * A redelivery on another instance sharing the record finds the id claimed (in progress) there and
 * gets `busy` too, until the first handling is recorded as handled (then it is a duplicate) or
 * forgotten (then it is handled); a claim whose lease lapsed (its instance died mid-handling) is
 * taken over. Until 2026-12-05 the record knew only "seen", and such a redelivery was answered
 * "duplicate" while the first handling could still fail.
 */
export class WebhookDeliveries<R extends { readonly status: number }> {
  readonly #opts: WebhookDeliveriesOptions<R>;
  /** Ids being handled here: each settles (to whether it was handled) after its record is settled. */
  readonly #inFlight = new Map<string, Promise<boolean>>();

  constructor(options: WebhookDeliveriesOptions<R>) {
    this.#opts = options;
  }

  /** Deliveries being handled on this instance now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  async deliver(webhookId: string, handle: () => Promise<R>): Promise<R> {
    const deadline = performance.now() + this.#opts.waitMs;
    for (;;) {
      const running = this.#inFlight.get(webhookId);
      if (!running) break;
      this.#opts.onWait?.(webhookId);
      // `running` never rejects (its settle only resolves): null is the bound passing.
      const handled = await settledWithin<boolean | null>(running, deadline - performance.now(), null);
      if (handled === null) return this.#opts.busy();
      if (handled) return this.#opts.duplicate();
      // It failed (and was forgotten): this delivery takes it, unless another waiter did first.
    }
    let settle: (handled: boolean) => void = () => undefined;
    // Claimed here before the first await: a concurrent redelivery finds it in flight, never a bare record.
    this.#inFlight.set(webhookId, new Promise<boolean>((resolve) => (settle = resolve)));
    let handled = false;
    const token = randomUUID();
    let claimed = false;
    try {
      const claim = await this.#opts.record.claimDelivery(webhookId, token, this.#opts.leaseMs, this.#opts.wall());
      // Handled before: acknowledged without acting twice. Claimed by another instance: its outcome is not known, so retried later.
      if (claim === 'handled') {
        handled = true;
        return this.#opts.duplicate();
      }
      if (claim === 'in_progress') return this.#opts.busy();
      claimed = true;
      const reply = await handle();
      handled = reply.status < 300;
      if (handled) await this.#opts.record.deliveryHandled(webhookId, this.#opts.ttlMs, this.#opts.wall()).catch((err: unknown) => this.#opts.onRecordFailed(err, 'handled'));
      return reply;
    } finally {
      if (claimed && !handled) await this.#opts.record.forgetDelivery(webhookId, token).catch((err: unknown) => this.#opts.onRecordFailed(err, 'forget'));
      this.#inFlight.delete(webhookId);
      settle(handled);
    }
  }
}
