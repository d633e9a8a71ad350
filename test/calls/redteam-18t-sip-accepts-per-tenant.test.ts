/**
 * Red team 18t (calls): incoming SIP calls in flight and their tenant's maxConcurrentSessions.
 *
 * f28aa7d made a tenant's WebRTC offers in flight count against its `maxConcurrentSessions`
 * (holdOffer / `alsoHeld`), but the SIP webhook's check (`routeSipCall` → `checkCall`) passes no
 * `alsoHeld`: every incoming call routed to a tenant allowed ONE session sees the slot free while
 * earlier calls' accepts are still on their way, takes a place among `server.maxSessions`
 * (holdRoom) and is ACCEPTED upstream (media starts; a refused one is hung up only once its
 * accept came back). Adversary: anyone who can dial the tenant's SIP number dials twice at once
 * (or a tenant holding one WebRTC offer in flight gets a SIP call meanwhile: neither sees the
 * other). Guarantee broken: a tenant's sessions in flight hold at most its `maxConcurrentSessions`
 * places (README "Browser and phone calls"; test/calls/redteam-18-offers-per-tenant.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { deliverIncoming, heldAccepts, type HeldAccepts } from './held-accepts.js';
import { callsProxy, until, WEBHOOK_SECRET } from './support.js';

let upstream: HeldAccepts;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await heldAccepts();
  tp = await callsProxy({
    tenants: { acme: { limits: { maxConcurrentSessions: 1 } }, other: {} },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] } },
    extra: { config: { server: { maxSessions: 3 }, logging: { level: 'warn' }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

const deliver = (webhookId: string, callId: string) => deliverIncoming(tp.httpUrl, WEBHOOK_SECRET, webhookId, callId);

describe('red team 18t: a SIP tenant allowed one session and its calls in flight', () => {
  it('a second incoming call while the first accept is held upstream is rejected 486, never accepted', async () => {
    const first = deliver('wh_18t_1', 'rtc_18t_sip_1');
    await until(() => upstream.holding('rtc_18t_sip_1'), 'the first accept held upstream');
    const second = deliver('wh_18t_2', 'rtc_18t_sip_2');
    const outcome = await Promise.race([
      second.then((r) => String(r.json['status'])),
      until(() => upstream.accepts.includes('rtc_18t_sip_2'), 'the second accept upstream').then(() => 'accepted upstream'),
    ]);
    // Old code: 'accepted upstream' (the second call's accept went out while the first one's was held).
    expect(outcome).toBe('rejected');
    expect(upstream.accepts).toEqual(['rtc_18t_sip_1']);
    upstream.fail('rtc_18t_sip_1');
    upstream.fail('rtc_18t_sip_2');
    await Promise.allSettled([first, second]);
  });
});
