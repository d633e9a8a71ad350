import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { notifySecretProblem, notifyUrlProblem } from '../../src/calls/config.js';
import { compileConfig, ConfigError } from '../../src/config/compile.js';
import { parseConfig } from '../../src/config/load.js';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, until, WEBHOOK_SECRET } from './support.js';

/**
 * A SIP call the proxy accepted is announced to the tenant's app (calls.sip.routes[].notify): a
 * Standard-Webhooks-signed realtime.call.incoming, which the app verifies with the openai SDK as it
 * would OpenAI's, then attaches its own sideband with its tenant key and `?call_id=`. Until
 * 2026-12-07 the app never learnt the call id (README, Browser and phone calls).
 */

/** The secret the tenant's app verifies announcements with (not the proxy's OpenAI webhook secret). */
const APP_SECRET = `whsec_${Buffer.from('tenant-app-notify-secret-0123456789').toString('base64')}`;

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** The tenant's app on loopback: `/ok` answers 200, `/flaky` 500 then 200, `/hang` never (until released), `/moved` 302 to `/ok`. */
async function tenantApp() {
  const received: Received[] = [];
  const hanging: ServerResponse[] = [];
  let flakyCalls = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (path === '/hang') return void hanging.push(res);
      if (path === '/flaky' && ++flakyCalls === 1) return void res.writeHead(500).end('not yet');
      if (path === '/moved') return void res.writeHead(302, { location: '/ok' }).end();
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: (path: string) => `${base}${path}`,
    received,
    to: (path: string) => received.filter((r) => r.path === path),
    hanging: () => hanging.length,
    /** Answers every held request 200 (the announcements then count as delivered). */
    release: () => {
      for (const res of hanging.splice(0)) res.writeHead(200).end();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const to = (number: string) => [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: `<sip:${number}@sip.api.openai.com>` },
  { name: 'X-Ticket', value: 'T-42' },
];
const headersOf = (r: Received) => Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)]));
const sdk = new OpenAI({ apiKey: 'sk-not-used-by-unwrap' });
/** The call an app's request announced ('' for a request that is no announcement: a redirect followed would be a GET). */
const callIdOf = (r: Received): string => {
  try {
    return (JSON.parse(r.body) as { data: { call_id: string } }).data.call_id;
  } catch {
    return '';
  }
};

let app: Awaited<ReturnType<typeof tenantApp>>;
let tp: TestProxy;
const ring = (number: string) => tp.sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: to(number) });
/** The value of the announcement counter's series whose labels include all of `labels` (0 when none). */
async function notifications(adminUrl: string, labels: readonly string[]): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith('rtproxy_calls_notifications_total{') && labels.every((label) => l.includes(label)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
const notifyEvents = (callId: string) => tp.logs.filter((l) => typeof l['event'] === 'string' && (l['event'] as string).startsWith('sip_notify') && l['call'] === callId);

beforeAll(async () => {
  app = await tenantApp();
  const notify = (path: string) => ({ url: app.url(path), secret: APP_SECRET });
  tp = await callsProxy({
    tenants: { acme: { policy: 'locked' }, broke: { limits: { dailyUsd: '0' } }, other: {} },
    calls: {
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        // Fast retries; an attempt's timeout far beyond the test, so a hanging app stays hanging.
        notifyDelivery: { retryPauseMs: 10, attempts: 3, timeoutMs: 60_000 },
        routes: [
          { tenant: 'acme', to: '+15551230001', notify: notify('/ok') },
          { tenant: 'broke', to: '+15551230002', notify: notify('/ok') },
          { tenant: 'acme', to: '+15551230003', notify: notify('/flaky') },
          { tenant: 'other', to: '+15551230004', notify: notify('/hang') },
          { tenant: 'other', to: '+15551230005', notify: notify('/moved') },
          { tenant: 'other', to: '+15551230006' },
        ],
      },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
  await app?.close();
});

describe('SIP: the tenant\'s app is told of an accepted call', () => {
  it('gets a signed realtime.call.incoming the openai SDK verifies, attaches its sideband with its key and ?call_id=, and sees the call; another tenant still cannot', async () => {
    const { call, status, body } = await ring('+15551230001');
    expect([status, JSON.parse(body)['status']]).toEqual([200, 'accepted']);
    await until(() => app.to('/ok').some((r) => callIdOf(r) === call.id), 'the announcement');
    const delivery = app.to('/ok').find((r) => callIdOf(r) === call.id)!;

    const event = (await sdk.webhooks.unwrap(delivery.body, headersOf(delivery), APP_SECRET)) as unknown as Record<string, unknown>;
    expect(event).toMatchObject({ object: 'event', type: 'realtime.call.incoming', data: { call_id: call.id, sip_headers: to('+15551230001') } });
    expect(event['id']).toMatch(/^evt_/);
    expect(delivery.headers['webhook-id']).toMatch(/^wh_/);
    // Signed with the app's secret, not the proxy's OpenAI one.
    await expect(sdk.webhooks.unwrap(delivery.body, headersOf(delivery), WEBHOOK_SECRET)).rejects.toThrow(/signature/);

    const owner = await tp.client({ tenant: 'acme', query: `call_id=${call.id}` });
    await owner.next('session.created');
    owner.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: your order has shipped' }] } });
    owner.send({ type: 'response.create' });
    const done = await owner.next('response.done');
    expect(JSON.stringify(done)).toContain('your order has shipped');
    owner.close();

    const stranger = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${call.id}`, { headers: { authorization: `Bearer ${tp.key('other')}` } });
    expect(await stranger.refused).toBe(404);

    await until(() => notifyEvents(call.id).some((l) => l['event'] === 'sip_notify_delivered'), 'the delivery logged');
    expect(await notifications(tp.adminUrl, ['rtproxy_notify_outcome="delivered"', 'rtproxy_tenant_id="acme"'])).toBeGreaterThanOrEqual(1);
    // The delivery is logged without the secret (nor its key), and its URL by origin only: a webhook
    // URL often carries its token in the path.
    expect(tp.logText()).not.toContain(APP_SECRET.slice('whsec_'.length));
    const logged = notifyEvents(call.id).find((l) => l['event'] === 'sip_notify_delivered')!;
    expect(logged['url']).toBe(new URL(app.url('/ok')).origin);
  });

  it('a rejected call is not announced', async () => {
    const rejected = await ring('+15551230002');
    expect([rejected.status, JSON.parse(rejected.body)['status']]).toEqual([200, 'rejected']);
    expect(rejected.call.state).toBe('rejected');
    // A call accepted after it is announced; the rejected one never was, nor queued.
    const accepted = await ring('+15551230001');
    await until(() => app.to('/ok').some((r) => callIdOf(r) === accepted.call.id), 'the next call\'s announcement');
    expect(app.received.filter((r) => callIdOf(r) === rejected.call.id)).toEqual([]);
    expect(notifyEvents(rejected.call.id)).toEqual([]);
  });

  it('an app answering 500 gets the announcement again (same webhook id, signed afresh) and takes it', async () => {
    const { call } = await ring('+15551230003');
    await until(() => app.to('/flaky').length === 2, 'the retry');
    const [first, second] = app.to('/flaky');
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(second!.body).toBe(first!.body);
    expect(((await sdk.webhooks.unwrap(second!.body, headersOf(second!), APP_SECRET)) as unknown as { data: { call_id: string } }).data.call_id).toBe(call.id);
    await until(() => notifyEvents(call.id).some((l) => l['event'] === 'sip_notify_delivered'), 'the delivery logged');
    expect(notifyEvents(call.id).map((l) => [l['event'], l['attempt'], l['status']])).toEqual([
      ['sip_notify_retry', 1, 500],
      ['sip_notify_delivered', 2, 200],
    ]);
  });

  it('a redirect is not followed: the announcement fails after its attempts', async () => {
    const { call } = await ring('+15551230005');
    await until(() => notifyEvents(call.id).some((l) => l['event'] === 'sip_notify_failed'), 'the announcement given up');
    expect(app.to('/moved')).toHaveLength(3);
    expect(app.to('/ok').filter((r) => callIdOf(r) === call.id)).toEqual([]);
    expect(notifyEvents(call.id).at(-1)).toMatchObject({ event: 'sip_notify_failed', attempt: 3, status: 302 });
  });

  it('an app that never answers delays neither OpenAI\'s 200 for its call nor other calls and their announcements', async () => {
    const held = await ring('+15551230004');
    // The app has not answered anything yet (it never does until released): the 200 did not wait for it.
    expect([held.status, JSON.parse(held.body)['status']]).toEqual([200, 'accepted']);
    await until(() => app.hanging() === 1, 'the announcement held by the app');
    const next = await ring('+15551230004');
    expect([next.status, JSON.parse(next.body)['status']]).toEqual([200, 'accepted']);
    const other = await ring('+15551230001');
    expect(other.status).toBe(200);
    await until(() => app.to('/ok').some((r) => callIdOf(r) === other.call.id), 'the other call\'s announcement');
    await until(() => app.hanging() === 2, 'the second held announcement');
    expect(notifyEvents(held.call.id)).toEqual([]);
    app.release();
    await until(() => notifyEvents(held.call.id).some((l) => l['event'] === 'sip_notify_delivered'), 'the held one delivered once answered');
  });

  it('a route without notify announces nothing', async () => {
    const { call, status } = await ring('+15551230006');
    expect(status).toBe(200);
    await until(() => call.sidebands.length === 1, 'the proxy sideband');
    const later = await ring('+15551230001');
    await until(() => app.to('/ok').some((r) => callIdOf(r) === later.call.id), 'a later announcement');
    expect(app.received.filter((r) => callIdOf(r) === call.id)).toEqual([]);
  });
});

describe('SIP announcements: a bounded queue', () => {
  it('past maxPending an announcement is dropped, logged and counted; the call itself is accepted', async () => {
    const hang = await tenantApp();
    const proxy = await callsProxy({
      tenants: { acme: {} },
      calls: { sip: { webhookSecret: WEBHOOK_SECRET, notifyDelivery: { maxPending: 1, timeoutMs: 60_000 }, routes: [{ tenant: 'acme', notify: { url: hang.url('/hang'), secret: APP_SECRET } }] } },
    });
    try {
      const ringHere = () => proxy.sim.calls.ring({ webhookUrl: `${proxy.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15550000000') });
      await ringHere();
      await until(() => hang.hanging() === 1, 'the first announcement held');
      const second = await ringHere();
      expect(JSON.parse(second.body)['status']).toBe('accepted');
      await until(() => proxy.logs.some((l) => l['event'] === 'sip_notify_dropped' && l['call'] === second.call.id), 'the drop logged');
      expect(await notifications(proxy.adminUrl, ['rtproxy_notify_outcome="dropped"', 'rtproxy_tenant_id="acme"'])).toBe(1);
      expect(hang.hanging()).toBe(1);
    } finally {
      await proxy.stop();
      await hang.close();
    }
  });
});

describe('SIP announcements: each tenant a share of the queue', () => {
  // Until 2026-12-07 maxPending was shared by all tenants: one tenant's hanging app (each announcement
  // held for its timeouts and retries) filled it, and the other tenants' announcements were dropped.
  it('a tenant whose app hangs fills only its share (0.5 of maxPending with two tenants announced); the other tenant\'s calls are still announced', async () => {
    const hanging = await tenantApp();
    const answering = await tenantApp();
    const proxy = await callsProxy({
      tenants: { slow: {}, fast: {} },
      calls: {
        sip: {
          webhookSecret: WEBHOOK_SECRET,
          notifyDelivery: { maxPending: 2, timeoutMs: 60_000 },
          routes: [
            { tenant: 'slow', to: '+15550000001', notify: { url: hanging.url('/hang'), secret: APP_SECRET } },
            { tenant: 'fast', to: '+15550000002', notify: { url: answering.url('/ok'), secret: APP_SECRET } },
          ],
        },
      },
    });
    try {
      const ringHere = (number: string) => proxy.sim.calls.ring({ webhookUrl: `${proxy.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: to(number) });
      await ringHere('+15550000001');
      await until(() => hanging.hanging() === 1, 'the slow tenant\'s first announcement held');
      const overShare = await ringHere('+15550000001');
      await until(() => proxy.logs.some((l) => l['event'] === 'sip_notify_dropped' && l['call'] === overShare.call.id), 'the slow tenant\'s second announcement dropped');
      expect(proxy.logs.find((l) => l['event'] === 'sip_notify_dropped' && l['call'] === overShare.call.id)).toMatchObject({ tenant: 'slow', reason: 'tenant_share' });
      // The queue's other half is the other tenant's: its call is announced, twice over.
      for (let i = 0; i < 2; i++) {
        const call = await ringHere('+15550000002');
        await until(() => answering.to('/ok').some((r) => callIdOf(r) === call.call.id), 'the fast tenant\'s announcement');
      }
      expect(proxy.logs.filter((l) => l['event'] === 'sip_notify_dropped' && l['tenant'] === 'fast')).toEqual([]);
      expect(await notifications(proxy.adminUrl, ['rtproxy_notify_outcome="dropped"', 'rtproxy_tenant_id="slow"'])).toBe(1);
      expect(hanging.hanging()).toBe(1);
    } finally {
      await proxy.stop();
      await hanging.close();
      await answering.close();
    }
  });
});

describe('SIP announcements: only a call its sideband found live', () => {
  it('a call whose sideband never reads session.created (within sidebandReadyTimeoutMs) is not announced, and that is logged', async () => {
    const hooks = await tenantApp();
    const proxy = await callsProxy({
      tenants: { acme: {} },
      calls: { sidebandReadyTimeoutMs: 200, sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', notify: { url: hooks.url('/ok'), secret: APP_SECRET } }] } },
    });
    try {
      proxy.sim.calls.stallSidebands(1);
      const stalled = await proxy.sim.calls.ring({ webhookUrl: `${proxy.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: to('+15550000000') });
      expect(JSON.parse(stalled.body)['status']).toBe('accepted');
      await until(() => proxy.logs.some((l) => l['event'] === 'sip_notify_skipped' && l['call'] === stalled.call.id), 'the skip logged');
      expect(hooks.received.filter((r) => callIdOf(r) === stalled.call.id)).toEqual([]);
    } finally {
      await proxy.stop();
      await hooks.close();
    }
  });
});

describe('notify config', () => {
  const base = (notify: Record<string, unknown>) => ({
    upstream: { provider: 'simulator' },
    tenants: { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } },
    calls: { enabled: true, sip: { routes: [{ tenant: 'acme', notify }] } },
  });

  it('takes https anywhere and http to loopback; http elsewhere only with allowHttp', () => {
    expect(notifyUrlProblem('https://app.example.com/hooks?token=x', false)).toBeNull();
    for (const url of ['http://127.0.0.1:9000/h', 'http://[::1]/h', 'http://localhost/h']) expect(notifyUrlProblem(url, false)).toBeNull();
    expect(notifyUrlProblem('http://app.internal/h', false)).toMatch(/not loopback/);
    expect(notifyUrlProblem('http://app.internal/h', true)).toBeNull();
    expect(notifyUrlProblem('ftp://app.example.com/h', true)).toMatch(/scheme ftp:/);
    expect(notifyUrlProblem('https://user:pw@app.example.com/h', false)).toMatch(/credentials/);
    expect(notifyUrlProblem('/hooks', false)).toMatch(/absolute/);
  });

  it('wants a whsec_ secret (the form unwrap reads) of a full key', () => {
    expect(notifySecretProblem(APP_SECRET)).toBeNull();
    expect(notifySecretProblem(APP_SECRET.slice('whsec_'.length))).toMatch(/whsec_/);
    expect(notifySecretProblem('whsec_c2hvcnQ=')).toMatch(/bytes/);
  });

  it('refuses at load a bad secret and at compile an http URL off loopback, without quoting the secret; ${ENV} fills the secret', async () => {
    expect(() => parseConfig(base({ url: 'https://app.example.com/h', secret: 'plain-secret-without-prefix' }), 'proxy.yaml')).toThrow(/calls\.sip\.routes\.0\.notify\.secret: must be whsec_/);
    try {
      parseConfig(base({ url: 'https://app.example.com/h', secret: 'plain-secret-without-prefix' }), 'proxy.yaml');
    } catch (err) {
      expect(String(err)).not.toContain('plain-secret-without-prefix');
    }
    const fromEnv = parseConfig(base({ url: 'https://app.example.com/h', secret: '${ACME_NOTIFY_SECRET}' }), 'proxy.yaml', { ACME_NOTIFY_SECRET: APP_SECRET });
    expect(fromEnv.calls.sip.routes[0]!.notify?.secret).toBe(APP_SECRET);
    const plainHttp = parseConfig(base({ url: 'http://app.internal/h', secret: APP_SECRET }), 'proxy.yaml');
    const refused = await compileConfig(plainHttp, { file: 'proxy.yaml', baseDir: process.cwd() }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(ConfigError);
    expect(String(refused)).toContain('calls.sip.routes.0.notify.url: the URL is http: to a host that is not loopback');
  });
});
