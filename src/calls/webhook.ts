import { createHmac, timingSafeEqual } from 'node:crypto';

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
