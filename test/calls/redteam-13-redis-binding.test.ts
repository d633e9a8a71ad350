import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCallStore } from '../../src/calls/redis-store.js';
import { SqliteCallStore, type CallStore } from '../../src/calls/store.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { until } from './support.js';

/**
 * Red team 13 (2026-12-06): "a call is governed no longer than calls.bindingTtlSec: one still
 * running when its binding expires is hung up". The governor learns it from `renewLeases` (the
 * lease is lost, the binding is gone: hang up). On SQLite the lease goes with the binding at the
 * next sweep; on Redis the lease (a sorted set and an owners hash, no TTL) outlived the binding's
 * key and was renewed for ever: the call was never hung up, its tenant could no longer hang it up
 * or attach to it (call_not_found), and after a crash nobody claimed it (no binding): ungoverned.
 */
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Two sweeps of one instance past the binding's expiry: renew, then claim (as CallGovernors#sweep); the ids reported lost. */
async function sweepsAfterExpiry(store: CallStore, t0: number, expiresAtMs: number, waitExpired: () => Promise<void>): Promise<string[]> {
  await store.putCall('rtc_outlived', { tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs }, { owner: 'gov_a', untilMs: t0 + 15_000 }, t0);
  expect(await store.renewLeases('gov_a', ['rtc_outlived'], t0 + 15_000)).toEqual([]);
  await waitExpired();
  const now = expiresAtMs + 1;
  const lost: string[] = [];
  for (let sweep = 0; sweep < 2; sweep++) {
    lost.push(...(await store.renewLeases('gov_a', ['rtc_outlived'], now + 15_000)));
    expect(await store.claimLapsed('gov_a', now + 15_000, now, 64)).toEqual([]);
  }
  expect(await store.getCall('rtc_outlived', now)).toBeNull();
  return lost;
}

describe('a lease does not outlive its binding (red team 13)', () => {
  it('SQLite: the governor learns at a sweep that the call outlived its binding (the lease is lost)', async () => {
    const store = new SqliteCallStore(':memory:');
    const t0 = 1_000_000;
    try {
      expect(new Set(await sweepsAfterExpiry(store, t0, t0 + 2000, async () => undefined))).toEqual(new Set(['rtc_outlived']));
    } finally {
      await store.close();
    }
  });

  it('Redis: the same, once the binding key expired', async () => {
    const store = new RedisCallStore({ url: redis.url, keyPrefix: 'rt13:', commandTimeoutMs: 2000 });
    const raw = new Redis(redis.url);
    try {
      const t0 = Date.now();
      const lost = await sweepsAfterExpiry(store, t0, t0 + 300, () => until(async () => (await raw.exists('rt13:calls:call:rtc_outlived')) === 0, 'the binding key expired'));
      expect(new Set(lost)).toEqual(new Set(['rtc_outlived']));
      // Nothing of the lease is left behind.
      expect(await raw.zscore('rt13:calls:leases', 'rtc_outlived')).toBeNull();
      expect(await raw.hget('rt13:calls:owners', 'rtc_outlived')).toBeNull();
    } finally {
      raw.disconnect();
      await store.close();
    }
  });
});
