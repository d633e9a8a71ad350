import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisCallStore } from '../../src/calls/redis-store.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { leaseContract } from './lease-contract.js';
import { callsProxy, OFFER, post, until } from './support.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

it('Redis: bindings are shared by instances, expire by the proxy clock, and webhook ids are delivered once', async () => {
  const wall = Date.now();
  const a = new RedisCallStore({ url: redis.url, keyPrefix: 'calls-test:', commandTimeoutMs: 2000 });
  const b = new RedisCallStore({ url: redis.url, keyPrefix: 'calls-test:', commandTimeoutMs: 2000 });
  try {
    await a.putSecret('h1', { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: wall + 60_000, session: { type: 'realtime' } }, wall);
    await a.putCall('rtc_1', { tenant: 'acme', model: 'gpt-realtime', kind: 'sip', expiresAtMs: wall + 60_000 }, { owner: 'gov_a', untilMs: wall + 15_000 }, wall);
    expect(await b.getSecret('h1', wall)).toMatchObject({ tenant: 'acme' });
    expect(await b.getSecret('h1', wall + 60_000)).toBeNull();
    expect(await b.getCall('rtc_1', wall)).toMatchObject({ tenant: 'acme', kind: 'sip' });
    expect(await b.getCall('rtc_unknown', wall)).toBeNull();
    expect(await a.firstDelivery('wh_1', 60_000, wall)).toBe(true);
    expect(await b.firstDelivery('wh_1', 60_000, wall)).toBe(false);
  } finally {
    await a.close();
    await b.close();
  }
});

it('Redis: call leases are claimed once when lapsed or handed over, never while renewed, never after the end', async () => {
  const a = new RedisCallStore({ url: redis.url, keyPrefix: 'leases-test:', commandTimeoutMs: 2000 });
  const b = new RedisCallStore({ url: redis.url, keyPrefix: 'leases-test:', commandTimeoutMs: 2000 });
  try {
    await leaseContract(a, b, Date.now());
  } finally {
    await a.close();
    await b.close();
  }
});

it('a proxy on the Redis ledger keeps its call bindings there: a second instance honours them', async () => {
  const ledger = { kind: 'redis' as const, url: redis.url, keyPrefix: 'calls-proxy:', commandTimeoutMs: 2000 };
  const one = await callsProxy({ extra: { config: { metering: { ledger } } } });
  const two = await callsProxy({ extra: { config: { metering: { ledger } } } });
  try {
    const form = new FormData();
    form.set('sdp', OFFER);
    form.set('session', JSON.stringify({ type: 'realtime' }));
    const res = await post(`${one.httpUrl}/v1/realtime/calls`, { key: one.key('acme'), body: form });
    expect(res.status).toBe(201);
    const callId = res.headers.get('location')!.split('/').at(-1)!;
    // Instance two knows the call belongs to acme: other is refused there too.
    const hangOther = await post(`${two.httpUrl}/v1/realtime/calls/${callId}/hangup`, { key: two.key('other') });
    expect(hangOther.status).toBe(404);
    // The owner hangs up through instance one: the call ends.
    const hang = await post(`${one.httpUrl}/v1/realtime/calls/${callId}/hangup`, { key: one.key('acme') });
    expect(hang.status).toBe(200);
    expect(one.sim.calls.calls.get(callId)!.state).toBe('ended');
  } finally {
    await one.stop();
    await two.stop();
  }
});

it('a call whose binding cannot be stored (Redis down) is hung up, never left ungoverned', async () => {
  const ledger = { kind: 'redis' as const, url: redis.url, keyPrefix: 'calls-down:', commandTimeoutMs: 500 };
  const tp = await callsProxy({ extra: { config: { metering: { ledger } } } });
  try {
    await redis.stop();
    const form = new FormData();
    form.set('sdp', OFFER);
    form.set('session', JSON.stringify({ type: 'realtime' }));
    const res = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: tp.key('acme'), body: form });
    expect(res.status).toBe(502);
    const calls = [...tp.sim.calls.calls.values()];
    expect(calls).toHaveLength(1);
    await until(() => calls[0]!.state === 'ended', 'the hangup');
    expect(calls[0]!.control.map((c) => c.action)).toEqual(['hangup']);
  } finally {
    await redis.restart();
    await tp.stop();
  }
});
