import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { matchSipRoute, sipAddress, sipUser } from '../../src/calls/sip.js';
import { signWebhook, verifyWebhook } from '../../src/calls/webhook.js';
import { SIMULATOR_KEY } from '../../src/main.js';
import { simSignWebhook } from '../../src/simulator/index.js';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, post, say, types, until, WEBHOOK_SECRET } from './support.js';
import { tempDir } from '../support/temp-dir.js';

let tp: TestProxy;
const to = (number: string) => [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: `<sip:${number}@sip.api.openai.com>` },
];

beforeAll(async () => {
  tp = await callsProxy({
    tenants: { acme: { policy: 'locked' }, broke: { limits: { dailyUsd: '0' } }, other: {} },
    calls: {
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        routes: [
          { tenant: 'acme', to: '+15551230001', session: { model: 'gpt-realtime-mini', instructions: 'ignored: the policy locks them', audio: { output: { voice: 'cedar' } } } },
          { tenant: 'broke', to: '+15551230002' },
          { tenant: 'other', header: { name: 'X-Customer', equals: 'other-co' } },
        ],
      },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
});

const webhookUrl = () => `${tp.httpUrl}${SIP_WEBHOOK_PATH}`;

describe('SIP: realtime.call.incoming', () => {
  it('routes by called number, accepts with the governed session, and governs the call over the sideband', async () => {
    const { call, status, body } = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15551230001') });
    expect(status).toBe(200);
    expect(JSON.parse(body)).toMatchObject({ status: 'accepted', tenant: 'acme' });
    const accept = call.control.find((c) => c.action === 'accept')!;
    expect(accept.body).toMatchObject({ type: 'realtime', model: 'gpt-realtime', instructions: 'You are the Acme phone agent.', audio: { output: { voice: 'cedar' } } });
    await until(() => call.sidebands.length === 1, 'the proxy sideband');
    say(call, 'say: here is the forbidden phrase on the phone');
    await until(() => call.received.some((r) => r.type === 'output_audio_buffer.clear'), 'cancel + clear');
    expect(call.received.map((r) => r.type)).toContain('response.cancel');
    // The call is bound to acme: another tenant cannot attach.
    const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${call.id}`, { headers: { authorization: `Bearer ${tp.key('other')}` } });
    expect(await c.refused).toBe(404);
    const owner = await tp.client({ tenant: 'acme', query: `call_id=${call.id}` });
    await owner.next('session.created');
    owner.close();
  });

  it('a call is accepted with responses held, and its sideband turns them back on once it reads the call: nothing is answered before the proxy governs it (found 2026-12-05)', async () => {
    const { call, status } = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15551230001') });
    expect(status).toBe(200);
    // Media starts at the accept; the sideband attaches after: a server VAD turn in between is not answered.
    const accept = call.control.find((c) => c.action === 'accept')!;
    expect(accept.body).toMatchObject({ audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } });
    await until(() => call.sidebands.length === 1, 'the proxy sideband');
    const restored = () => call.received.filter((r) => r.from === 'sideband' && r.type === 'session.update').map((r) => (r.event as { session: { audio?: { input?: { turn_detection?: unknown } } } }).session.audio?.input?.turn_detection);
    await until(() => restored().length > 0, 'the update that turns responses back on');
    expect(restored()[0]).toEqual({ type: 'server_vad', create_response: true });
  });

  it('routes by a SIP header', async () => {
    const { call, body } = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders: [...to('+15559999999'), { name: 'x-customer', value: 'other-co' }] });
    expect(JSON.parse(body)).toMatchObject({ status: 'accepted', tenant: 'other' });
    await until(() => call.sidebands.length === 1, 'the proxy sideband');
    say(call, 'say: hi');
    await until(() => types(call).includes('response.done'), 'response');
  });

  it('rejects a call over its cap (486) and a call no rule routes (404), without accepting', async () => {
    const broke = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15551230002') });
    expect(broke.status).toBe(200);
    expect(broke.call.control).toEqual([{ action: 'reject', body: { status_code: 486 }, credential: SIMULATOR_KEY }]);
    expect(broke.call.state).toBe('rejected');
    const nobody = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15550000000') });
    expect(nobody.call.control).toEqual([{ action: 'reject', body: { status_code: 404 }, credential: SIMULATOR_KEY }]);
  });

  it('refuses a bad signature, a stale or future timestamp, and acts once on a replayed delivery', async () => {
    const forged = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: `whsec_${Buffer.from('not-the-secret').toString('base64')}`, sipHeaders: to('+15551230001') });
    expect(forged.status).toBe(400);
    expect(forged.call.control).toEqual([]);
    const now = Math.floor(Date.now() / 1000);
    for (const ts of [now - 3600, now + 3600]) {
      const stale = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15551230001'), timestampSec: ts });
      expect(stale.status).toBe(400);
      expect(stale.call.control).toEqual([]);
    }
    // The same delivery twice (same webhook-id, body and signature): one accept.
    const body = JSON.stringify({ id: 'evt_replay', object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: 'rtc_replayed_call', sip_headers: to('+15559999999') } });
    const headers = { 'webhook-id': 'wh_replay_1', 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(WEBHOOK_SECRET, 'wh_replay_1', now, body) };
    const first = await post(webhookUrl(), { contentType: 'application/json', body, headers });
    const second = await post(webhookUrl(), { contentType: 'application/json', body, headers });
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(second.json).toEqual({ status: 'duplicate' });
    const unsigned = await post(webhookUrl(), { contentType: 'application/json', body });
    expect(unsigned.status).toBe(400);
  });
});

describe('SIP: a malformed call and a failed delivery (found 2026-12-05)', () => {
  it('a To header with malformed percent-encoding is no route: acknowledged (200) and the call rejected (404), once', async () => {
    const sipHeaders = [{ name: 'To', value: '<sip:%E0%A4%A@sip.api.openai.com>' }];
    const { call, status, body } = await tp.sim.calls.ring({ webhookUrl: webhookUrl(), webhookSecret: WEBHOOK_SECRET, sipHeaders, webhookId: 'wh_bad_to' });
    expect([status, JSON.parse(body)['status']]).toEqual([200, 'rejected']);
    expect(call.control).toEqual([{ action: 'reject', body: { status_code: 404 }, credential: SIMULATOR_KEY }]);
    expect(call.state).toBe('rejected');
    // Handled: a redelivery is acknowledged without acting twice.
    const now = Math.floor(Date.now() / 1000);
    const raw = JSON.stringify({ id: 'evt_bad_to', object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: call.id, sip_headers: sipHeaders } });
    const again = await post(webhookUrl(), { contentType: 'application/json', body: raw, headers: { 'webhook-id': 'wh_bad_to', 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(WEBHOOK_SECRET, 'wh_bad_to', now, raw) } });
    expect(again.json).toEqual({ status: 'duplicate' });
    expect(call.control).toHaveLength(1);
  });

  it('a delivery whose handling failed is not recorded: its redelivery (to another instance on the same ledger) is handled, not answered "duplicate"', async () => {
    const ledger = { path: join(tempDir('rp-sip-redeliver-'), 'ledger.sqlite') };
    const sip = { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] };
    // Instance A cannot reach the upstream (its accept fails: a network error, 502).
    const broken = createServer((req) => req.socket.destroy());
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const brokenUrl = `ws://127.0.0.1:${(broken.address() as AddressInfo).port}/v1/realtime`;
    const good = await callsProxy({ tenants: { acme: {} }, calls: { sip }, extra: { config: { metering: { ledger } } } });
    const cut = await callsProxy({ tenants: { acme: {} }, calls: { sip }, extra: { config: { metering: { ledger }, upstream: { provider: 'openai', url: brokenUrl, apiKey: 'sk-unreachable', allowCallId: true } } } });
    try {
      const first = await good.sim.calls.ring({ webhookUrl: `${cut.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15551230001'), webhookId: 'wh_redelivered' });
      expect(first.status).toBe(502);
      expect(first.call.state).toBe('ringing');
      // OpenAI redelivers the unacknowledged webhook (same id) and instance B takes it.
      const now = Math.floor(Date.now() / 1000);
      const raw = JSON.stringify({ id: 'evt_redelivered', object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: first.call.id, sip_headers: to('+15551230001') } });
      const headers = { 'webhook-id': 'wh_redelivered', 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(WEBHOOK_SECRET, 'wh_redelivered', now, raw) };
      const redelivered = await post(`${good.httpUrl}${SIP_WEBHOOK_PATH}`, { contentType: 'application/json', body: raw, headers });
      expect([redelivered.status, redelivered.json['status']]).toEqual([200, 'accepted']);
      expect(first.call.state).toBe('active');
      await until(() => first.call.sidebands.length === 1, 'the proxy sideband');
      // Handled now: the next redelivery is a duplicate, on either instance.
      expect((await post(`${cut.httpUrl}${SIP_WEBHOOK_PATH}`, { contentType: 'application/json', body: raw, headers })).json).toEqual({ status: 'duplicate' });
    } finally {
      await cut.stop();
      await good.stop();
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
  });
});

describe('webhook signatures and routing rules (units)', () => {
  it('the proxy verifies what the simulator signs (standard webhooks), in constant shape', () => {
    const body = Buffer.from('{"x":1}');
    const sig = simSignWebhook(WEBHOOK_SECRET, 'wh_1', 1_000_000, body.toString());
    expect(sig).toBe(signWebhook(WEBHOOK_SECRET, 'wh_1', 1_000_000, body));
    const headers = (s: string, ts = '1000000') => new Map([['webhook-id', 'wh_1'], ['webhook-timestamp', ts], ['webhook-signature', s]]);
    expect(verifyWebhook(WEBHOOK_SECRET, headers(`v1,bogus ${sig}`), body, 1_000_000_000, 300)).toEqual({ ok: true, id: 'wh_1' });
    expect(verifyWebhook(WEBHOOK_SECRET, headers(sig), Buffer.from('{"x":2}'), 1_000_000_000, 300).ok).toBe(false);
    expect(verifyWebhook(WEBHOOK_SECRET, headers(sig), body, 1_000_301_000, 300).ok).toBe(false);
    expect(verifyWebhook(WEBHOOK_SECRET, headers(sig, '1e6'), body, 1_000_000_000, 300).ok).toBe(false);
    expect(verifyWebhook(WEBHOOK_SECRET, headers('v2,' + sig.slice(3)), body, 1_000_000_000, 300).ok).toBe(false);
  });

  it('reads the called number from the address, never from the display name (a caller writes it)', () => {
    // Until 2026-12-06 the first `sip:` anywhere in the value was read: a display name picked the route.
    expect(sipUser('"sip:+15550000001@x" <sip:+15559999999@sip.api.openai.com>;tag=7')).toBe('+15559999999');
    expect(sipUser('"a \\" <sip:+1@x>" <sip:+2@x>')).toBe('+2');
    expect(sipUser('sip:+15550000001@x <sip:+15559999999@x>')).toBe('+15559999999');
    expect(sipUser('Bob <tel:+4930123>')).toBe('+4930123');
    // addr-spec without brackets: the header's parameters are not the URI's.
    expect(sipUser('sip:+15551230001@sip.api.openai.com;tag=1')).toBe('+15551230001');
    // Malformed: an unterminated quote or bracket names no number.
    expect(sipUser('"sip:+1@x <sip:+2@x>')).toBeNull();
    expect(sipUser('<sip:+1@x')).toBeNull();
    // The address must be the URI: text before it is not a scheme.
    expect(sipUser('<junk sip:+1@x>')).toBeNull();
    expect(sipAddress('  "Bob" <sips:bob@example.com> ;tag=1')).toBe('sips:bob@example.com');
    const routes = [
      { tenant: 'victim', to: '+15550000001', session: {} },
      { tenant: 'caller', to: '+15559999999', session: {} },
    ];
    expect(matchSipRoute(routes, [{ name: 'To', value: '"sip:+15550000001@x" <sip:+15559999999@x>' }])?.tenant).toBe('caller');
  });

  it('reads the called number from To and matches the first rule', () => {
    expect(sipUser('<sip:+15551230001@sip.api.openai.com>;tag=1')).toBe('+15551230001');
    expect(sipUser('"Bob" <sips:bob@example.com>')).toBe('bob');
    expect(sipUser('<tel:+4930123>')).toBe('+4930123');
    expect(sipUser('<sip:%2B15551230001@x>')).toBe('+15551230001');
    // Malformed percent-encoding (the caller's SIP client writes it): no called number, not a throw.
    expect(sipUser('<sip:%E0%A4%A@sip.api.openai.com>')).toBeNull();
    expect(sipUser('<tel:%ZZ>')).toBeNull();
    const routes = [
      { tenant: 'a', to: '+1', session: {} },
      { tenant: 'b', session: {} },
    ];
    expect(matchSipRoute(routes, [{ name: 'to', value: '<sip:+1@x>' }])?.tenant).toBe('a');
    expect(matchSipRoute(routes, [{ name: 'To', value: '<sip:+2@x>' }])?.tenant).toBe('b');
    expect(matchSipRoute([routes[0]!], [])).toBeNull();
    // A To that cannot be read matches no `to` rule; a rule without one still matches.
    expect(matchSipRoute([routes[0]!], [{ name: 'To', value: '<sip:%E0%A4%A@x>' }])).toBeNull();
    expect(matchSipRoute(routes, [{ name: 'To', value: '<sip:%E0%A4%A@x>' }])?.tenant).toBe('b');
  });
});
