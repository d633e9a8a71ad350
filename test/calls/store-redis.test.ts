import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RedisCallStore } from '../../src/calls/redis-store.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { deliveryContract } from './delivery-contract.js';
import { leaseContract } from './lease-contract.js';
import { callsProxy, mint, OFFER, post, until } from './support.js';

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
    await a.putSecret('h1', { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: wall + 60_000, session: { type: 'realtime' }, keySha256: 'a'.repeat(64) }, wall);
    await a.putCall('rtc_1', { tenant: 'acme', model: 'gpt-realtime', kind: 'sip', expiresAtMs: wall + 60_000 }, { owner: 'gov_a', untilMs: wall + 15_000 }, wall);
    expect(await b.getSecret('h1', wall)).toMatchObject({ tenant: 'acme', keySha256: 'a'.repeat(64) });
    expect(await b.getSecret('h1', wall + 60_000)).toBeNull();
    expect(await b.getCall('rtc_1', wall)).toMatchObject({ tenant: 'acme', kind: 'sip' });
    expect(await b.getCall('rtc_unknown', wall)).toBeNull();
    expect(await a.claimDelivery('wh_1', 'tok_a', 60_000, wall)).toBe('claimed');
    expect(await b.claimDelivery('wh_1', 'tok_b', 60_000, wall)).toBe('in_progress');
    // A delivery whose handling failed is forgotten (by its claim's holder): its redelivery is handled.
    await a.forgetDelivery('wh_1', 'tok_a');
    await b.forgetDelivery('wh_never_seen', 'tok_b');
    expect(await b.claimDelivery('wh_1', 'tok_b', 60_000, wall)).toBe('claimed');
    await b.deliveryHandled('wh_1', 60_000, wall);
    expect(await a.claimDelivery('wh_1', 'tok_a', 60_000, wall)).toBe('handled');
  } finally {
    await a.close();
    await b.close();
  }
});

it('Redis: webhook ids, two instances: one claim at a time, the outcome known to both, forgotten only by its holder; a lapsed claim is taken over', async () => {
  const a = new RedisCallStore({ url: redis.url, keyPrefix: 'deliveries-test:', commandTimeoutMs: 2000 });
  const b = new RedisCallStore({ url: redis.url, keyPrefix: 'deliveries-test:', commandTimeoutMs: 2000 });
  const raw = new Redis(redis.url);
  try {
    const wall = Date.now();
    await deliveryContract(a, b, wall);
    // The claim's TTL is its lease; the handled record's, its ttl.
    expect(await a.claimDelivery('wh_lease', 'tok_a', 30_000, wall)).toBe('claimed');
    expect(await raw.get('deliveries-test:calls:webhook:wh_lease')).toBe('claim:tok_a');
    const leaseLeft = await raw.pttl('deliveries-test:calls:webhook:wh_lease');
    expect(leaseLeft).toBeGreaterThan(28_000);
    expect(leaseLeft).toBeLessThanOrEqual(30_000);
    await a.deliveryHandled('wh_lease', 90_000, wall);
    expect(await raw.get('deliveries-test:calls:webhook:wh_lease')).toBe('1');
    expect(await raw.pttl('deliveries-test:calls:webhook:wh_lease')).toBeGreaterThan(30_000);
    // A claim whose lease lapsed (its instance died mid-handling) is taken over by the next delivery.
    expect(await a.claimDelivery('wh_dead', 'tok_dead', 1, wall)).toBe('claimed');
    await until(async () => (await raw.exists('deliveries-test:calls:webhook:wh_dead')) === 0, 'the lapsed claim expired');
    expect(await b.claimDelivery('wh_dead', 'tok_b', 30_000, wall)).toBe('claimed');
    await a.forgetDelivery('wh_dead', 'tok_dead');
    expect(await a.claimDelivery('wh_dead', 'tok_a', 30_000, wall)).toBe('in_progress');
    // A record written before 2026-12-05 ('1') is handled.
    await raw.set('deliveries-test:calls:webhook:wh_old', '1', 'PX', 60_000);
    expect(await a.claimDelivery('wh_old', 'tok_a', 30_000, wall)).toBe('handled');
  } finally {
    raw.disconnect();
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

it('Redis: keys expire by the proxy clock (TTL from it), prefixes keep deployments apart, bad records are no records, a closed store answers nothing', async () => {
  const wall = Date.now();
  const a = new RedisCallStore({ url: redis.url, keyPrefix: 'ttl-a:', commandTimeoutMs: 2000 });
  const other = new RedisCallStore({ url: redis.url, keyPrefix: 'ttl-b:', commandTimeoutMs: 2000 });
  const raw = new Redis(redis.url);
  try {
    await a.putSecret('h', { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: wall + 60_000, session: {} }, wall);
    await a.putCall('rtc_t', { tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs: wall + 30_000 }, { owner: 'gov_a', untilMs: wall + 1000 }, wall);
    expect(await a.claimDelivery('wh', 'tok', 1000, wall)).toBe('claimed');
    await a.deliveryHandled('wh', 5000, wall);
    const pttl = async (key: string) => raw.pttl(key);
    for (const [key, ms] of [['ttl-a:calls:secret:h', 60_000], ['ttl-a:calls:call:rtc_t', 30_000], ['ttl-a:calls:webhook:wh', 5000]] as const) {
      const left = await pttl(key);
      expect(left).toBeGreaterThan(ms - 2000);
      expect(left).toBeLessThanOrEqual(ms);
    }
    expect(await a.claimDelivery('wh0', 'tok', 1000, wall)).toBe('claimed');
    await a.deliveryHandled('wh0', 0, wall);
    expect(await pttl('ttl-a:calls:webhook:wh0')).toBeLessThanOrEqual(1);
    // Expiry is also checked against the proxy clock (the TTL rounds up).
    expect(await a.getSecret('h', wall + 59_999)).not.toBeNull();
    expect(await a.getSecret('h', wall + 60_000)).toBeNull();
    expect(await a.getCall('rtc_t', wall + 29_999)).not.toBeNull();
    expect(await a.getCall('rtc_t', wall + 30_000)).toBeNull();
    expect(await a.getSecret('nope', wall)).toBeNull();
    expect(await a.getCall('nope', wall)).toBeNull();
    // Another prefix is another deployment: none of this is visible there, its leases included.
    expect(await other.getCall('rtc_t', wall)).toBeNull();
    expect(await other.claimLapsed('gov_b', wall + 9000, wall + 5000, 10)).toEqual([]);
    expect(await raw.zscore('ttl-a:calls:leases', 'rtc_t')).toBe(String(wall + 1000));
    expect(await a.renewLeases('gov_a', [], wall + 3000)).toEqual([]);
    // The same call id under two prefixes: two leases, each its owner's.
    await other.putCall('rtc_t', { tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs: wall + 30_000 }, { owner: 'gov_other', untilMs: wall + 1000 }, wall);
    expect(await a.renewLeases('gov_a', ['rtc_t'], wall + 2000)).toEqual([]);
    expect(await other.renewLeases('gov_other', ['rtc_t'], wall + 2000)).toEqual([]);
    // An unreadable record is no record, and its lease goes at the next claim.
    await raw.set('ttl-a:calls:secret:bad', '{broken');
    await raw.set('ttl-a:calls:call:rtc_t', '{broken');
    expect(await a.getSecret('bad', wall)).toBeNull();
    expect(await a.getCall('rtc_t', wall)).toBeNull();
    expect(await a.claimLapsed('gov_a', wall + 9000, wall + 5000, 10)).toEqual([]);
    expect(await raw.zscore('ttl-a:calls:leases', 'rtc_t')).toBeNull();
    expect(await raw.hget('ttl-a:calls:owners', 'rtc_t')).toBeNull();
    // A binding that expired by the proxy clock before Redis dropped it: its lease goes too.
    await a.putCall('rtc_late', { tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs: wall + 30_000 }, { owner: 'gov_a', untilMs: wall + 1000 }, wall);
    expect(await a.claimLapsed('gov_b', wall + 90_000, wall + 30_000, 10)).toEqual([]);
    expect(await raw.zscore('ttl-a:calls:leases', 'rtc_late')).toBeNull();
    await a.close();
    await expect(a.getCall('rtc_t', wall)).rejects.toThrow();
  } finally {
    raw.disconnect();
    await a.close();
    await other.close();
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

it('a burst of concurrent mints on the Redis ledger gets calls.maxLiveSecretsPerTenant secrets, not one more (found 2026-12-05)', async () => {
  const ledger = { kind: 'redis' as const, url: redis.url, keyPrefix: 'calls-burst:', commandTimeoutMs: 2000 };
  const tp = await callsProxy({ tenants: { acme: {}, other: {} }, calls: { maxLiveSecretsPerTenant: 2 }, extra: { config: { metering: { ledger } } } });
  const raw = new Redis(redis.url);
  try {
    // Every mint awaits the Redis write: before 2026-12-05 all of them had passed the check by then.
    const replies = await Promise.all(Array.from({ length: 20 }, () => mint(tp, 'acme', {})));
    const codes = replies.map((r) => (r.status === 200 ? 'minted' : `${r.status} ${(r.json['error'] as { code?: string } | undefined)?.code}`));
    expect(codes.filter((c) => c === 'minted')).toHaveLength(2);
    expect(codes.filter((c) => c === '429 client_secrets_exceeded')).toHaveLength(18);
    expect(await raw.keys('calls-burst:calls:secret:*')).toHaveLength(2);
    // Per tenant.
    expect((await mint(tp, 'other', {})).status).toBe(200);
  } finally {
    raw.disconnect();
    await tp.stop();
  }
});

it('a secret that cannot be stored (Redis down) is not minted and gives its room back', async () => {
  const ledger = { kind: 'redis' as const, url: redis.url, keyPrefix: 'calls-room:', commandTimeoutMs: 500 };
  const tp = await callsProxy({ tenants: { acme: {} }, calls: { maxLiveSecretsPerTenant: 1 }, extra: { config: { metering: { ledger } } } });
  try {
    await redis.stop();
    const failed = await mint(tp, 'acme', {});
    expect(failed.status).toBeGreaterThanOrEqual(500);
    expect(failed.json['value']).toBeUndefined();
    await redis.restart();
    // The one room is free again: the failed mint did not keep it.
    await until(async () => (await mint(tp, 'acme', {})).status === 200, 'a mint once Redis is back');
    expect((await mint(tp, 'acme', {})).status).toBe(429);
  } finally {
    if (!redis.running) await redis.restart();
    await tp.stop();
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
    // 503 calls_store_unavailable since 2026-12-07 (502 upstream_unavailable before: the upstream was fine).
    expect(res.status).toBe(503);
    expect(res.json['error']).toMatchObject({ code: 'calls_store_unavailable' });
    const calls = [...tp.sim.calls.calls.values()];
    expect(calls).toHaveLength(1);
    await until(() => calls[0]!.state === 'ended', 'the hangup');
    expect(calls[0]!.control.map((c) => c.action)).toEqual(['hangup']);
  } finally {
    await redis.restart();
    await tp.stop();
  }
});

it('Redis: the outage probe reads and writes <prefix>calls:probe only, the write with a TTL of at most 10 s', async () => {
  const store = new RedisCallStore({ url: redis.url, keyPrefix: 'probe-test:', commandTimeoutMs: 2000 });
  const side = new Redis(redis.url);
  try {
    await store.probe('read');
    expect(await side.keys('probe-test:*')).toEqual([]);
    await store.probe('write');
    expect(await side.keys('probe-test:*')).toEqual(['probe-test:calls:probe']);
    const ttl = await side.pttl('probe-test:calls:probe');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);
  } finally {
    side.disconnect();
    await store.close();
  }
});
