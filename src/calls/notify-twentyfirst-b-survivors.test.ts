import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { SIP_WEBHOOK_PATH } from './index.js';
import { CallNotifier, notifyTenantShare, type NotifyOutcome } from './notify.js';
import { callsProxy, until, WEBHOOK_SECRET } from '../../test/calls/support.js';

/**
 * The survivors of the notify queue's tenant share (src/calls/notify.ts, config default in
 * src/calls/index.ts; c57fa44), twenty-first session: a tenant past its share is dropped (told,
 * counted, logged) and its count goes down by one per announcement settled, never to zero while
 * some are pending; the default share counts only tenants whose routes announce.
 */
const APP_SECRET = `whsec_${Buffer.from('tenant-app-notify-secret-0123456789').toString('base64')}`;

/** The tenant's app on loopback: `/hang` holds each request until `release`, anything else answers 200. */
async function tenantApp() {
  const hanging: ServerResponse[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => (req.url === '/hang' ? hanging.push(res) : res.writeHead(200).end('ok')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    target: (path: string) => ({ url: `${base}${path}`, secret: APP_SECRET }),
    hanging: () => hanging.length,
    /** Answers the oldest held request 200. */
    releaseOne: () => hanging.shift()?.writeHead(200).end(),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const BOUNDS = { timeoutMs: 60_000, attempts: 1, retryPauseMs: 10 };
let app: Awaited<ReturnType<typeof tenantApp>>;
beforeAll(async () => {
  app = await tenantApp();
});
afterAll(async () => {
  await app?.close();
});

describe('notifyTenantShare', () => {
  it('one tenant announced: the whole queue; more: half of it', () => {
    expect([notifyTenantShare(1), notifyTenantShare(2), notifyTenantShare(5)]).toEqual([1, 0.5, 0.5]);
  });
});

describe("CallNotifier: a tenant's share", () => {
  it('past its share a tenant is dropped (returned, told, counted, logged); one settled frees exactly one place', async () => {
    const { log, lines } = capturedLog('debug');
    const outcomes: [string, NotifyOutcome][] = [];
    const notifier = new CallNotifier({ log, bounds: { ...BOUNDS, maxPending: 4 }, tenantShare: 0.5, wall: () => Date.now(), outcome: (t, o) => outcomes.push([t, o]) });
    const settled: string[] = [];
    const tell = (outcome: string) => settled.push(outcome);
    try {
      expect([notifier.announce(app.target('/hang'), 'slow', 'rtc_1', {}, tell), notifier.announce(app.target('/hang'), 'slow', 'rtc_2', {}, tell)]).toEqual(['queued', 'queued']);
      expect(notifier.pending).toBe(2);
      await until(() => app.hanging() === 2, 'both announcements held');

      expect(notifier.announce(app.target('/hang'), 'slow', 'rtc_3', {}, tell)).toBe('dropped');
      expect(settled).toEqual(['dropped']);
      expect(outcomes).toEqual([['slow', 'dropped']]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(lines.find((l) => l['call'] === 'rtc_3')).toMatchObject({ event: 'sip_notify_dropped', reason: 'tenant_share', pending: 2, msg: "SIP call announcement dropped: the tenant's share of the queue is full (calls.sip.notifyDelivery.tenantShare)" });

      // One delivered: one place back, not the whole share.
      app.releaseOne();
      await until(() => notifier.pending === 1, 'the first delivered');
      expect(settled).toEqual(['dropped', 'delivered']);
      expect(notifier.announce(app.target('/hang'), 'slow', 'rtc_4', {}, tell)).toBe('queued');
      expect(notifier.announce(app.target('/hang'), 'slow', 'rtc_5', {}, tell)).toBe('dropped');
      expect(notifier.pending).toBe(2);
      // Another tenant has its own share.
      expect(notifier.announce(app.target('/ok'), 'fast', 'rtc_6', {}, tell)).toBe('queued');
      await until(() => notifier.pending === 2, "the other tenant's delivered");
    } finally {
      notifier.close();
      while (app.hanging() > 0) app.releaseOne();
    }
  });

  it('without an outcome counter or a settled callback: dropped or delivered, nothing thrown', async () => {
    const { log } = capturedLog('debug');
    const notifier = new CallNotifier({ log, bounds: { ...BOUNDS, maxPending: 2 }, tenantShare: 0.5, wall: () => Date.now() });
    // A throw in the delivery's own chain surfaces nowhere but here (announce never waits for it).
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      expect(notifier.announce(app.target('/ok'), 'acme', 'rtc_1', {})).toBe('queued');
      expect(notifier.announce(app.target('/ok'), 'acme', 'rtc_2', {})).toBe('dropped');
      await until(() => notifier.pending === 0, 'the first delivered');
      // An announcement that fails before its first attempt (an unusable URL) settles too.
      expect(notifier.announce({ url: 'not a url', secret: APP_SECRET }, 'acme', 'rtc_3', {})).toBe('queued');
      await until(() => notifier.pending === 0, 'the unusable one settled');
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      notifier.close();
    }
  });

  it('an announcement that fails before its first attempt is told failed (its call stops waiting for the app)', async () => {
    const { log } = capturedLog('debug');
    const notifier = new CallNotifier({ log, bounds: { ...BOUNDS, maxPending: 2 }, tenantShare: 1, wall: () => Date.now() });
    const settled: string[] = [];
    try {
      notifier.announce({ url: 'not a url', secret: APP_SECRET }, 'acme', 'rtc_1', {}, (outcome) => settled.push(outcome));
      await until(() => settled.length === 1, 'told');
      expect(settled).toEqual(['failed']);
    } finally {
      notifier.close();
    }
  });
});

describe('the default share counts only tenants whose routes announce', () => {
  it('one tenant announced and another routed without notify: the announced tenant may fill the whole queue', async () => {
    const hang = await tenantApp();
    const proxy = await callsProxy({
      tenants: { slow: {}, quiet: {} },
      calls: {
        sip: {
          webhookSecret: WEBHOOK_SECRET,
          notifyDelivery: { maxPending: 2, timeoutMs: 60_000 },
          routes: [
            { tenant: 'slow', to: '+15550000001', notify: hang.target('/hang') },
            { tenant: 'quiet', to: '+15550000002' },
          ],
        },
      },
    });
    try {
      const sipHeaders = [{ name: 'To', value: '<sip:+15550000001@sip.api.openai.com>' }];
      const ring = () => proxy.sim.calls.ring({ webhookUrl: `${proxy.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders });
      await ring();
      await until(() => hang.hanging() === 1, 'the first announcement held');
      await ring();
      await until(() => hang.hanging() === 2 || proxy.logs.some((l) => l['event'] === 'sip_notify_dropped'), 'the second announcement held or dropped');
      expect(proxy.logs.filter((l) => l['event'] === 'sip_notify_dropped')).toEqual([]);
      expect(hang.hanging()).toBe(2);
    } finally {
      await proxy.stop();
      while (hang.hanging() > 0) hang.releaseOne();
      await hang.close();
    }
  });
});
