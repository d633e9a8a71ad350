import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { callsProxy, post } from './support.js';

/*
 * Adversary review (2026-12-05): `calls.sip.webhookSecret` is any string. One with no base64 key
 * after `whsec_` (an empty or mangled value, e.g. `whsec_` from a template whose variable was
 * empty) decodes to an empty HMAC key, and the route is served: anyone can sign a
 * `realtime.call.incoming` with the empty key and have calls accepted and billed to a tenant.
 * Such a secret must be refused (the proxy does not start), not used.
 */
describe('adversary: a webhook secret without a key', () => {
  it('is refused at startup rather than verifying signatures made with an empty key', async () => {
    let tp: Awaited<ReturnType<typeof callsProxy>> | null = null;
    let accepted = false;
    try {
      tp = await callsProxy({ tenants: { acme: {} }, calls: { sip: { webhookSecret: 'whsec_', routes: [{ tenant: 'acme' }] } } });
      // Started: a delivery signed with an empty key (no secret at all) must not be taken.
      const now = Math.floor(Date.now() / 1000);
      const body = JSON.stringify({ id: 'evt_forged', object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: 'rtc_forged', sip_headers: [] } });
      const sig = `v1,${createHmac('sha256', Buffer.alloc(0)).update(`wh_forged.${now}.`).update(body).digest('base64')}`;
      const res = await post(`${tp.httpUrl}${SIP_WEBHOOK_PATH}`, { contentType: 'application/json', body, headers: { 'webhook-id': 'wh_forged', 'webhook-timestamp': String(now), 'webhook-signature': sig } });
      accepted = res.status !== 400;
    } catch {
      // Refused at startup: the expected outcome.
    } finally {
      await tp?.stop();
    }
    expect(tp === null || !accepted, 'a forged delivery signed with the empty key was verified').toBe(true);
    expect(tp, 'the proxy started with a webhook secret that holds no key').toBeNull();
  });
});
