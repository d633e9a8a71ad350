import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook, webhookKey } from './webhook.js';

// Standard Webhooks: the secret is `whsec_` + the base64 key.
const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const SECRET = `whsec_${KEY.toString('base64')}`;
const NOW_MS = 1_800_000_000_000;
const TS = NOW_MS / 1000;
const BODY = Buffer.from('{"type":"realtime.call.incoming","data":{"call_id":"rtc_1"}}');

const headers = (h: Record<string, string>) => new Map(Object.entries(h));
const signed = (over: Record<string, string> = {}) => headers({ 'webhook-id': 'msg_1', 'webhook-timestamp': String(TS), 'webhook-signature': signWebhook(SECRET, 'msg_1', TS, BODY), ...over });
const verify = (h: ReadonlyMap<string, string>, body = BODY, nowMs = NOW_MS) => verifyWebhook(SECRET, h, body, nowMs, 300);

describe('webhook signatures (Standard Webhooks, as OpenAI signs realtime.call.incoming)', () => {
  it('signs `<id>.<timestamp>.<body>` with HMAC-SHA256 under the decoded key, as v1,<base64>', () => {
    const mac = createHmac('sha256', KEY).update(`msg_1.${TS}.`).update(BODY).digest('base64');
    expect(signWebhook(SECRET, 'msg_1', TS, BODY)).toBe(`v1,${mac}`);
    expect(signWebhook(SECRET, 'msg_1', TS, BODY.toString())).toBe(`v1,${mac}`);
    // The key with or without its whsec_ prefix.
    expect(webhookKey(SECRET)).toEqual(KEY);
    expect(webhookKey(KEY.toString('base64'))).toEqual(KEY);
    expect(webhookKey(`x${SECRET}`)).not.toEqual(KEY);
  });

  it('accepts a valid signature and names the webhook id', () => {
    expect(verify(signed())).toEqual({ ok: true, id: 'msg_1' });
  });

  it('refuses missing or malformed headers', () => {
    const bad = 'missing or malformed webhook headers';
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const h = new Map(signed());
      h.delete(name);
      expect(verify(h), name).toEqual({ ok: false, reason: bad });
      expect(verify(new Map([...signed(), [name, '']])), `${name} empty`).toEqual({ ok: false, reason: bad });
    }
    expect(verify(signed({ 'webhook-id': 'm'.repeat(257) }))).toEqual({ ok: false, reason: bad });
    const longId = 'm'.repeat(256);
    expect(verify(signed({ 'webhook-id': longId, 'webhook-signature': signWebhook(SECRET, longId, TS, BODY) }))).toEqual({ ok: true, id: longId });
    for (const ts of ['1.5e9', '-1', ' 1800000000', '1800000000 ', 'abc', '1234567890123']) expect(verify(signed({ 'webhook-timestamp': ts })), ts).toEqual({ ok: false, reason: bad });
  });

  it('refuses a timestamp outside the replay window, either way; the window edge is inside', () => {
    const at = (offsetSec: number) => {
      const ts = TS + offsetSec;
      return verify(signed({ 'webhook-timestamp': String(ts), 'webhook-signature': signWebhook(SECRET, 'msg_1', ts, BODY) }));
    };
    expect(at(-300)).toEqual({ ok: true, id: 'msg_1' });
    expect(at(300)).toEqual({ ok: true, id: 'msg_1' });
    expect(at(-301)).toEqual({ ok: false, reason: 'timestamp outside the replay window' });
    expect(at(301)).toEqual({ ok: false, reason: 'timestamp outside the replay window' });
    // The clock is the proxy's (milliseconds), compared in seconds.
    expect(verify(signed(), BODY, NOW_MS + 300_500)).toEqual({ ok: false, reason: 'timestamp outside the replay window' });
  });

  it('refuses a signature over anything else: another body, id, timestamp or key', () => {
    const none = { ok: false, reason: 'no valid signature' };
    expect(verify(signed(), Buffer.from(`${BODY.toString()} `))).toEqual(none);
    expect(verify(signed({ 'webhook-id': 'msg_2' }))).toEqual(none);
    expect(verify(signed({ 'webhook-timestamp': String(TS + 1) }))).toEqual(none);
    const otherKey = `whsec_${Buffer.from('another key, another key, anoth').toString('base64')}`;
    expect(verify(signed({ 'webhook-signature': signWebhook(otherKey, 'msg_1', TS, BODY) }))).toEqual(none);
  });

  it('reads up to 16 space-separated signatures, v1 only; a truncated or non-v1 one never matches', () => {
    const good = signWebhook(SECRET, 'msg_1', TS, BODY);
    const value = good.slice(3);
    const none = { ok: false, reason: 'no valid signature' };
    expect(verify(signed({ 'webhook-signature': `v1,AAAA ${good}` }))).toEqual({ ok: true, id: 'msg_1' });
    expect(verify(signed({ 'webhook-signature': `v2,${value}` }))).toEqual(none);
    expect(verify(signed({ 'webhook-signature': `v1,${value.slice(0, 20)}` }))).toEqual(none);
    expect(verify(signed({ 'webhook-signature': `v1 ${value}` }))).toEqual(none);
    expect(verify(signed({ 'webhook-signature': 'v1,' }))).toEqual(none);
    const filler = (n: number) => Array.from({ length: n }, () => 'v1,AAAA').join(' ');
    expect(verify(signed({ 'webhook-signature': `${filler(15)} ${good}` }))).toEqual({ ok: true, id: 'msg_1' });
    expect(verify(signed({ 'webhook-signature': `${filler(16)} ${good}` }))).toEqual(none);
  });
});
