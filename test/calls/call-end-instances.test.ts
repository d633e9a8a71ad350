import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { SimCall } from '../../src/simulator/index.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import type { ReceivedEvent, TestClient } from '../support/client.js';
import type { TestProxy } from '../support/harness.js';
import { sharedUpstream } from './instances.js';
import { say, sipHeadersTo, until, WEBHOOK_SECRET } from './support.js';

/**
 * A call the proxy ends (here the tenant's cost cap) while the tenant's app is attached to it
 * (`?call_id=`) through ANOTHER instance than the one governing it, both sharing the calls store.
 * Until 2026-12-07 only the governing process's client sockets were told why (`budget_exceeded`,
 * 4002): the app attached elsewhere got the hang-up's 1000 "call ended", what a caller hanging up
 * gives. Now the governing instance records the end's reason in the call's record before it hangs
 * up, and the other instance reads it when its upstream closes: the app socket there receives what
 * the one on the governing instance receives. A caller's own hang-up still closes it 1000.
 */

const SIM_KEY = 'sk-sim-call-end-instances';
const NUMBER = '+15551260001';
const upstream = sharedUpstream(SIM_KEY, 'rp-call-end-instances-');
let redis: RedisServer;
const started: TestProxy[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const tp of started.splice(0).reverse()) await tp.stop();
  await redis?.stop();
});

/** A store of its own per test (`label`): the tenant's cap spent in one does not refuse the next one's call. */
const stores: Array<[string, (label: string) => string | Record<string, unknown>]> = [
  ['one SQLite file', (label) => upstream.ledger(label)],
  ['one Redis', (label) => ({ kind: 'redis', url: redis.url, keyPrefix: `call-end-instances-${label}:`, commandTimeoutMs: 2000 })],
];

async function instances(ledger: string | Record<string, unknown>, calls: Record<string, unknown> = {}): Promise<[TestProxy, TestProxy]> {
  // The tenant's cap is spent by the first answer: the second turn ends the call.
  const o = { tenants: { acme: { limits: { dailyTokens: 1 } } }, calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: NUMBER }] }, ...calls } };
  const governing = await upstream.instance(ledger, o);
  started.push(governing);
  const other = await upstream.instance(ledger, o);
  started.push(other);
  return [governing, other];
}

async function ring(governing: TestProxy): Promise<SimCall> {
  const rang = await upstream.sim.calls.ring({ webhookUrl: `${governing.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: sipHeadersTo(NUMBER) });
  expect([rang.status, JSON.parse(rang.body)['status']]).toEqual([200, 'accepted']);
  await until(() => rang.call.sidebands.length === 1, 'the governing sideband');
  return rang.call;
}

/** The app's socket on the call through `tp`, once the call's session reached it. */
async function attach(tp: TestProxy, call: SimCall): Promise<TestClient> {
  const app = await tp.client({ query: `call_id=${call.id}` });
  await app.waitFor((e) => e.type === 'session.created', 5000, 'session.created');
  return app;
}

/** What a socket received, without the event ids (each socket's session.created and the proxy's error have their own). */
const withoutIds = (events: readonly ReceivedEvent[]) => events.map(({ event_id: _id, ...rest }) => rest);
const errorsOf = (events: readonly ReceivedEvent[]) => events.filter((e) => e.type === 'error');

describe('a call the proxy ends, as the app attached through another instance sees it', () => {
  for (const [name, ledger] of stores) {
    it(`${name}: the app socket elsewhere gets the governing process's error (budget_exceeded) and close (4002), event for event`, async () => {
      const [governing, other] = await instances(ledger('cap'));
      const call = await ring(governing);
      const here = await attach(governing, call);
      const elsewhere = await attach(other, call);
      await until(() => call.sidebands.length === 3, 'both app sockets on the call');

      say(call, 'say: first');
      await until(() => call.dataChannel.filter((e) => e['type'] === 'response.done').length === 1, 'the first answer');
      say(call, 'say: second');
      await until(() => call.state === 'ended', 'the call hung up over the cap');
      const [closedHere, closedElsewhere] = await Promise.all([here.closed, elsewhere.closed]);
      expect(governing.logs.filter((l) => l['event'] === 'call_hangup' && l['call'] === call.id)).toMatchObject([{ why: expect.stringContaining('cost cap') }]);
      expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(1);

      // The error the proxy ended the call with, once, last, and the same close code and reason on both.
      const told = { type: 'error', error: { type: 'rate_limit_error', code: 'budget_exceeded', message: 'The call reached its cost cap and was ended.', param: null, event_id: null } };
      expect(errorsOf(here.events).map((e) => withoutIds([e])[0])).toEqual([told]);
      expect(errorsOf(elsewhere.events).map((e) => withoutIds([e])[0])).toEqual([told]);
      expect(elsewhere.events.at(-1)!.type).toBe('error');
      expect(closedHere).toEqual({ code: 4002, reason: 'budget_exceeded' });
      expect(closedElsewhere).toEqual(closedHere);
      // Every other event: the socket elsewhere relayed its session.created and then every event of
      // the call's session up to its end (the simulator's record of what it sent every socket), in order.
      const relayed = elsewhere.events.slice(1, -1);
      expect(elsewhere.events[0]!.type).toBe('session.created');
      expect(withoutIds(relayed)).toEqual(withoutIds(call.dataChannel.slice(-relayed.length) as ReceivedEvent[]));
      // The socket on the governing process, closed as the hang-up began, got the same up to there.
      expect(withoutIds(here.events.slice(0, -1))).toEqual(withoutIds(elsewhere.events.slice(0, here.events.length - 1)));
    }, 30_000);

    it(`${name}: the caller hanging up still closes the app socket elsewhere 1000 "call ended", no error`, async () => {
      const [governing, other] = await instances(ledger('caller'));
      const call = await ring(governing);
      const elsewhere = await attach(other, call);
      call.end();
      expect(await elsewhere.closed).toEqual({ code: 1000, reason: 'call ended' });
      expect(errorsOf(elsewhere.events)).toEqual([]);
      expect(call.control.filter((c) => c.action === 'hangup')).toHaveLength(0);
    }, 30_000);

    it(`${name}: a hang-up that never landed (every attempt failed): the caller's own hang-up later closes the app socket elsewhere 1000 "call ended", no error (found 2026-12-07)`, async () => {
      // A lease longer than the test: nobody claims the call meanwhile (a claim clears the reason too).
      const [governing, other] = await instances(ledger('failed-hangup'), { leaseSec: 60 });
      const call = await ring(governing);
      const elsewhere = await attach(other, call);
      await until(() => call.sidebands.length === 2, 'the app socket on the call');
      say(call, 'say: first');
      await until(() => call.dataChannel.filter((e) => e['type'] === 'response.done').length === 1, 'the first answer');
      // Every hang-up attempt of the governing instance fails (a server fault upstream).
      upstream.sim.calls.failControl(4, 503);
      say(call, 'say: second');
      await until(() => governing.logs.some((l) => l['msg'] === 'call sideband end'), 'the governing sideband closed once its hang-up was given up', 20_000);
      expect(governing.logs.filter((l) => l['msg'] === 'upstream refused the hangup' && l['call'] === call.id).map((l) => [l['status'], l['attempt']])).toEqual([[503, 1], [503, 2], [503, 3], [503, 4]]);
      expect(call.state).toBe('active');
      // The caller hangs up: nothing the proxy did ends the call, and the app is told nothing else.
      call.end();
      expect(await elsewhere.closed).toEqual({ code: 1000, reason: 'call ended' });
      expect(errorsOf(elsewhere.events)).toEqual([]);
    }, 40_000);
  }
});
