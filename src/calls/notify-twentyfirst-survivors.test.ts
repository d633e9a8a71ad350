import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { CallNotifier, type NotifyOutcome } from './notify.js';
import { signWebhook } from './webhook.js';

// Written against the mutants of src/calls/notify.ts that survived its tests (twenty-first session):
// the notifier driven directly against a tenant's app on loopback whose answers each test scripts.

const SECRET = `whsec_${Buffer.from('tenant-app-notify-secret-0123456789').toString('base64')}`;

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** The app: `/status/<n>` answers n, `/seq/<a>,<b>,…` answers each status in turn (then 200), `/hang` never (until released). */
let received: Received[] = [];
const hanging: ServerResponse[] = [];
const sequences = new Map<string, number>();
const app = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const path = req.url ?? '';
    received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    if (path.startsWith('/hang')) return void hanging.push(res);
    if (path.startsWith('/status/')) return void res.writeHead(Number(path.split('/')[2])).end('a body nobody reads');
    if (path.startsWith('/seq/')) {
      const statuses = path.split('/')[2]!.split(',').map(Number);
      const n = sequences.get(path) ?? 0;
      sequences.set(path, n + 1);
      return void res.writeHead(statuses[n] ?? 200).end();
    }
    res.writeHead(404).end();
  });
});
let base = '';
beforeAll(async () => {
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const res of hanging.splice(0)) res.destroy();
  app.closeAllConnections();
  await new Promise<void>((resolve) => app.close(() => resolve()));
});

/** A notifier whose log lines, outcomes and settled announcements are kept; the wall clock ticks a second a read. */
function notifier(bounds: Partial<{ timeoutMs: number; attempts: number; retryPauseMs: number; maxPending: number }> = {}, wall?: () => number) {
  const { log, lines } = capturedLog('debug');

  const outcomes: [string, NotifyOutcome][] = [];
  let now = 1_700_000_000_500;
  const n = new CallNotifier({
    log,
    bounds: { timeoutMs: 10_000, attempts: 1, retryPauseMs: 1, maxPending: 10, ...bounds },
    tenantShare: 1,
    wall: wall ?? (() => (now += 1000)),
    outcome: (tenant, outcome) => outcomes.push([tenant, outcome]),
  });
  const settled: string[] = [];
  /** Announces call `rtc_<id>` to `path`; resolves with what became of it. */
  const announce = (path: string, id = '1') =>
    new Promise<string>((resolve) => {
      const queued = n.announce({ url: `${base}${path}`, secret: SECRET }, 'acme', `rtc_${id}`, { call_id: `rtc_${id}` }, (outcome) => {
        settled.push(outcome);
        resolve(outcome);
      });
      // A drop is settled before announce returns: the two must agree.
      if (queued === 'dropped') settled.push('returned dropped');
    });
  const events = async (name: string) => {
    await new Promise((r) => setImmediate(r));
    return lines.filter((l) => l['event'] === name);
  };
  return { n, lines, outcomes, settled, announce, events };
}

/** Lets the settled announcement's bookkeeping (the pending count) run. */
const afterSettled = () => new Promise((r) => setImmediate(r));

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
};

describe('CallNotifier: the edges the first tests left open', () => {
  it('an announcement: POSTed as JSON, the proxy\'s own event (created_at, type, the data as given), its webhook id and timestamp signed over the exact body', async () => {
    received = [];
    const { announce, outcomes, settled, events, n } = notifier();
    const done = announce('/status/200');
    expect(n.pending).toBe(1);
    expect(await done).toBe('delivered');
    await afterSettled();
    expect(n.pending).toBe(0);
    expect([outcomes, settled]).toEqual([[['acme', 'delivered']], ['delivered']]);
    const [r] = received;
    expect(r!.headers['content-type']).toBe('application/json');
    expect(r!.headers['user-agent']).toBe('realtime-governance-proxy/0.1');
    const body = JSON.parse(r!.body) as Record<string, unknown>;
    // The wall clock was read once for the event (1_700_000_001_500) and once for the attempt.
    expect(body).toEqual({ id: expect.stringMatching(/^evt_[0-9a-f]{24}$/), object: 'event', created_at: 1_700_000_001, type: 'realtime.call.incoming', data: { call_id: 'rtc_1' } });
    const id = r!.headers['webhook-id'] as string;
    expect(id).toMatch(/^wh_[0-9a-f]{24}$/);
    expect(r!.headers['webhook-timestamp']).toBe('1700000002');
    expect(r!.headers['webhook-signature']).toBe(signWebhook(SECRET, id, 1_700_000_002, r!.body));
    expect((await events('sip_notify_delivered'))[0]).toMatchObject({ url: base, webhookId: id, status: 200, attempt: 1, call: 'rtc_1', tenant: 'acme', transport: 'sip', msg: "SIP call announced to the tenant's app" });
  });

  it('every 2xx is an acknowledgement (299 too); 300 is not', async () => {
    const { announce, outcomes } = notifier();
    expect(await announce('/status/204')).toBe('delivered');
    expect(await announce('/status/299')).toBe('delivered');
    expect(await announce('/status/300')).toBe('failed');
    expect(outcomes.map(([, o]) => o)).toEqual(['delivered', 'delivered', 'failed']);
  });

  it('retries: the same id and body, a fresh timestamp and signature, pauses doubling, each retry logged with its failure', async () => {
    received = [];
    const { announce, events } = notifier({ attempts: 4, retryPauseMs: 3 });
    expect(await announce('/seq/500,502,503')).toBe('delivered');
    expect(received).toHaveLength(4);
    expect(new Set(received.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(received.map((r) => r.body)).size).toBe(1);
    const stamps = received.map((r) => Number(r.headers['webhook-timestamp']));
    expect(stamps).toEqual([1_700_000_002, 1_700_000_003, 1_700_000_004, 1_700_000_005]);
    for (const r of received) expect(r.headers['webhook-signature']).toBe(signWebhook(SECRET, r.headers['webhook-id'] as string, Number(r.headers['webhook-timestamp']), r.body));
    expect((await events('sip_notify_retry')).map((l) => [l['attempt'], l['pauseMs'], l['status'], l['msg']])).toEqual([
      [1, 3, 500, 'SIP call announcement not acknowledged: retrying'],
      [2, 6, 502, 'SIP call announcement not acknowledged: retrying'],
      [3, 12, 503, 'SIP call announcement not acknowledged: retrying'],
    ]);
    expect((await events('sip_notify_delivered'))[0]).toMatchObject({ attempt: 4, status: 200 });
  });

  it('every attempt refused: failed after exactly `attempts`, logged with the last answer, counted, settled', async () => {
    received = [];
    const { announce, outcomes, settled, events, n } = notifier({ attempts: 2 });
    expect(await announce('/status/503')).toBe('failed');
    expect(received).toHaveLength(2);
    await afterSettled();
    expect([outcomes, settled, n.pending]).toEqual([[['acme', 'failed']], ['failed'], 0]);
    const failed = await events('sip_notify_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ url: base, attempt: 2, status: 503, msg: 'SIP call announcement failed: every attempt refused or unanswered' });
  });

  it('no answer within timeoutMs, or no app listening: a failure saying so', async () => {
    const slow = notifier({ timeoutMs: 30 });
    expect(await slow.announce('/hang')).toBe('failed');
    expect((await slow.events('sip_notify_failed'))[0]).toMatchObject({ err: 'no answer within 30 ms', attempt: 1 });
    hanging.splice(0).forEach((res) => res.destroy());

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { log: nowhereLog, lines } = capturedLog();

    const nowhere = new CallNotifier({ log: nowhereLog, bounds: { timeoutMs: 5000, attempts: 1, retryPauseMs: 1, maxPending: 1 }, tenantShare: 1, wall: () => 0 });
    const outcome = await new Promise<string>((resolve) => nowhere.announce({ url: `http://127.0.0.1:${port}/x`, secret: SECRET }, 'acme', 'rtc_2', {}, resolve));
    expect(outcome).toBe('failed');
    await new Promise((r) => setImmediate(r));
    expect(lines.find((l) => l['event'] === 'sip_notify_failed')).toMatchObject({ err: 'fetch failed' });
  });

  it('the queue bound: maxPending in flight, one more dropped (logged with the count, counted), room again once one settles', async () => {
    const { n, announce, outcomes, events } = notifier({ maxPending: 2 });
    const first = announce('/hang/a', 'a');
    const second = announce('/hang/b', 'b');
    await until(() => hanging.length === 2);
    expect(n.pending).toBe(2);
    expect(await announce('/status/200', 'c')).toBe('dropped');
    expect(outcomes).toEqual([['acme', 'dropped']]);
    expect((await events('sip_notify_dropped'))[0]).toMatchObject({ pending: 2, call: 'rtc_c', url: base, msg: 'SIP call announcement dropped: too many pending (calls.sip.notifyDelivery.maxPending)' });
    // Whichever answers first frees a place.
    hanging.shift()!.writeHead(200).end();
    expect(await Promise.race([first, second])).toBe('delivered');
    await afterSettled();
    expect(n.pending).toBe(1);
    expect(await announce('/status/200', 'd')).toBe('delivered');
    hanging.shift()!.writeHead(200).end();
    expect(await Promise.all([first, second])).toEqual(['delivered', 'delivered']);
    await afterSettled();
    expect(n.pending).toBe(0);
  });

  it('close: an attempt in flight and a pause are abandoned (logged, not counted as failed), the pending count back to 0', async () => {
    const { n, announce, outcomes, events } = notifier({ attempts: 3, retryPauseMs: 60_000 });
    const inFlight = announce('/hang/close', 'e');
    const pausing = announce('/status/500', 'f');
    await until(() => hanging.length === 1);
    await until(() => n.pending === 2 && outcomes.length === 0);
    // The second one answered 500 and pauses a minute.
    await until(() => received.some((r) => r.path === '/status/500'));
    const retried = async () => (await events('sip_notify_retry')).some((l) => l['call'] === 'rtc_f');
    while (!(await retried())) await new Promise((r) => setTimeout(r, 5));
    n.close();
    expect(await inFlight).toBe('abandoned');
    expect(await pausing).toBe('abandoned');
    expect(outcomes).toEqual([]);
    await afterSettled();
    expect(n.pending).toBe(0);
    const abandoned = await events('sip_notify_abandoned');
    expect(abandoned.map((l) => [l['call'], l['attempt'], l['msg']]).sort()).toEqual([
      ['rtc_e', 1, 'SIP call announcement abandoned: the proxy is shutting down'],
      ['rtc_f', 1, 'SIP call announcement abandoned: the proxy is shutting down'],
    ]);
    // Neither was retried: the one in flight was abandoned where it stood, not read as a failure.
    expect((await events('sip_notify_retry')).map((l) => l['call'])).toEqual(['rtc_f']);
    hanging.splice(0).forEach((res) => res.destroy());
  });

  it('close with an attempt in flight that was the last one: abandoned, not counted as failed', async () => {
    const { n, announce, outcomes, events } = notifier({ attempts: 1 });
    const last = announce('/hang/last', 'g');
    await until(() => hanging.length === 1);
    n.close();
    expect(await last).toBe('abandoned');
    expect(outcomes).toEqual([]);
    expect(await events('sip_notify_failed')).toEqual([]);
    // Later ones are dropped, saying why.
    expect(await announce('/status/200', 'h')).toBe('dropped');
    expect(outcomes).toEqual([['acme', 'dropped']]);
    expect((await events('sip_notify_dropped'))[0]).toMatchObject({ reason: 'shutting_down', msg: 'SIP call announcement dropped: the proxy is shutting down' });
    hanging.splice(0).forEach((res) => res.destroy());
  });

  it('without an outcome counter or a settled callback (both optional) every path runs', async () => {
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.on('unhandledRejection', onError);
    try {
      received = [];
      const bare = new CallNotifier({ log: pino({ level: 'silent' }), bounds: { timeoutMs: 10_000, attempts: 1, retryPauseMs: 1, maxPending: 2 }, tenantShare: 1, wall: () => 0 });
      const target = (path: string) => ({ url: `${base}${path}`, secret: SECRET });
      // Told what became of it (a settled callback) while nothing counts outcomes.
      const delivered = new Promise<string>((resolve) => expect(bare.announce(target('/status/200'), 'acme', 'rtc_i', {}, resolve)).toBe('queued'));
      expect(bare.announce(target('/status/500'), 'acme', 'rtc_j', {})).toBe('queued');
      expect(bare.announce(target('/status/200'), 'acme', 'rtc_k', {})).toBe('dropped');
      expect(await delivered).toBe('delivered');
      await until(() => bare.pending === 0);
      expect(received.map((r) => r.path).sort()).toEqual(['/status/200', '/status/500']);
      bare.close();
      expect(bare.announce(target('/status/200'), 'acme', 'rtc_l', {})).toBe('dropped');
      // An announcement that cannot be made (the clock throws), with nobody to tell.
      const broken = new CallNotifier({ log: pino({ level: 'silent' }), bounds: { timeoutMs: 10_000, attempts: 1, retryPauseMs: 1, maxPending: 2 }, tenantShare: 1, wall: () => {
        throw new Error('clock');
      } });
      expect(broken.announce(target('/status/200'), 'acme', 'rtc_m', {})).toBe('queued');
      await until(() => broken.pending === 0);
      await new Promise((r) => setTimeout(r, 10));
    } finally {
      process.off('unhandledRejection', onError);
    }
    expect(errors).toEqual([]);
  });

  it('an announcement that cannot even be made (the wall clock throws) settles failed and frees its place', async () => {
    const { n, announce } = notifier({ maxPending: 1 }, () => {
      throw new Error('clock');
    });
    expect(await announce('/status/200')).toBe('failed');
    await afterSettled();
    expect(n.pending).toBe(0);
  });
});
