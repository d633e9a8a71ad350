import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { simSignWebhook, type SimulatorHandle } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxyBehindHop, type CallsProxyBehindHop } from './control-hop.js';
import { post, until, WEBHOOK_SECRET } from './support.js';

/*
 * Adversary review (2026-12-05): an accept whose answer is lost (the upstream accepted the call,
 * then the connection broke or the proxy's request timed out) is answered 502 and nothing else
 * happens: the call is live upstream, accepted with the governed config, but no sideband governs
 * it and nobody hangs it up. OpenAI's redelivery then finds the call no longer ringing (its accept
 * is refused) and is acknowledged `accept_failed`: the call runs to its end unmetered and unguarded.
 * A call the proxy cannot govern must not go on.
 */
let sim: SimulatorHandle;
let tp: TestProxy;
let rig: CallsProxyBehindHop;
let dropped = false;

beforeAll(async () => {
  // The upstream acts on the first accept; its answer never reaches the proxy.
  rig = await callsProxyBehindHop('sk-simulator-adv-lost-accept', (line) => {
    if (dropped || !/^POST \S+\/accept /.test(line)) return 'pass';
    dropped = true;
    return 'cut';
  }, [{ tenant: 'acme', to: '+15551230001' }]);
  ({ sim, tp } = rig);
});
afterAll(async () => {
  await rig?.stop();
});

describe('adversary: a SIP accept whose answer is lost', () => {
  it('the call accepted upstream is not left running ungoverned: a sideband governs it or it is hung up (also after the redelivery)', async () => {
    const sipHeaders = [{ name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' }];
    const webhookUrl = `${tp.httpUrl}${SIP_WEBHOOK_PATH}`;
    const first = await sim.calls.ring({ webhookUrl, webhookSecret: WEBHOOK_SECRET, sipHeaders, webhookId: 'wh_lost_accept' });
    // The proxy could not read the accept's answer: 502, for OpenAI to redeliver.
    expect(first.status).toBe(502);
    const call = first.call;
    // But the upstream did accept it: the call is live.
    expect(call.state).toBe('active');
    // OpenAI redelivers the unacknowledged webhook (same id).
    const now = Math.floor(Date.now() / 1000);
    const raw = JSON.stringify({ id: 'evt_lost_accept', object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: call.id, sip_headers: sipHeaders } });
    const again = await post(webhookUrl, { contentType: 'application/json', body: raw, headers: { 'webhook-id': 'wh_lost_accept', 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(WEBHOOK_SECRET, 'wh_lost_accept', now, raw) } });
    expect(again.status).toBe(200);
    const governedOrEnded = () => call.sidebands.length > 0 || call.control.some((c) => c.action === 'hangup') || call.state === 'ended';
    await until(governedOrEnded, 'a sideband or a hang-up', 5000).catch(() => undefined);
    const seen = `call ${call.state}, sidebands ${call.sidebands.length}, control [${call.control.map((c) => c.action).join(', ')}], redelivery ${JSON.stringify(again.json)}`;
    expect(governedOrEnded(), seen).toBe(true);
  }, 20_000);
});
