import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCallStore } from '../../src/calls/redis-store.js';
import { SqliteCallStore, type CallRecord, type CallStore } from '../../src/calls/store.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * CallStore.amendCall, the way instances sharing a store tell each other about a call after it was
 * bound (why the proxy ended it, the app's update taking effect): merged into the record, its expiry
 * kept, seen by the other instance; a call unknown or expired is not bound again. Both stores.
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const LEASE = { owner: 'gov_a', untilMs: 0 };
// Empty arrays and nested objects, as a SIP call's held session carries them: they must come back as they went.
const RECORD: CallRecord = { tenant: 'acme', model: 'gpt-realtime', kind: 'sip', expiresAtMs: 0, onAttach: { type: 'realtime', tools: [], audio: { input: { turn_detection: { type: 'server_vad', create_response: true } } } }, startedAtMs: 0, sipRoute: 'acme|+1555' };
const ENDED = { code: 'budget_exceeded', message: 'The call reached its cost cap and was ended.', closeCode: 4002 };
const APP = { choice: { kind: 'set' as const, createResponse: null }, turnDetection: { type: 'semantic_vad', create_response: true } };

async function contract(a: CallStore, b: CallStore, wall: number): Promise<void> {
  const record = { ...RECORD, expiresAtMs: wall + 60_000, startedAtMs: wall };
  await a.putCall('rtc_amend', record, { ...LEASE, untilMs: wall + 3000 }, wall);
  await a.amendCall('rtc_amend', { endedByProxy: ENDED }, wall);
  expect(await b.getCall('rtc_amend', wall)).toEqual({ ...record, endedByProxy: ENDED });
  // Another field, from the other instance: the first stays.
  await b.amendCall('rtc_amend', { appUpdate: APP }, wall);
  expect(await a.getCall('rtc_amend', wall)).toEqual({ ...record, endedByProxy: ENDED, appUpdate: APP });
  // Cleared (a call taken over after a hang-up that never landed).
  await a.amendCall('rtc_amend', { endedByProxy: null }, wall);
  expect(await b.getCall('rtc_amend', wall)).toEqual({ ...record, endedByProxy: null, appUpdate: APP });
  // The expiry is the binding's still.
  expect(await b.getCall('rtc_amend', wall + 60_000)).toBeNull();
  // Unknown, or expired by the proxy's clock: nothing is bound.
  await a.amendCall('rtc_never_bound', { endedByProxy: ENDED }, wall);
  expect(await b.getCall('rtc_never_bound', wall)).toBeNull();
  await a.putCall('rtc_expired', { ...record, expiresAtMs: wall + 10 }, { ...LEASE, untilMs: wall + 10 }, wall);
  await a.amendCall('rtc_expired', { endedByProxy: ENDED }, wall + 10);
  expect(await b.getCall('rtc_expired', wall)).toEqual({ ...record, expiresAtMs: wall + 10 });
}

describe('CallStore.amendCall', () => {
  it('SQLite: two instances on one file', async () => {
    const path = join(tempDir('rp-store-amend-'), 'ledger.sqlite');
    const a = new SqliteCallStore(path);
    const b = new SqliteCallStore(path);
    try {
      await contract(a, b, 1_000_000);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('Redis: two instances on one Redis; the key keeps its TTL', async () => {
    const a = new RedisCallStore({ url: redis.url, keyPrefix: 'store-amend:', commandTimeoutMs: 2000 });
    const b = new RedisCallStore({ url: redis.url, keyPrefix: 'store-amend:', commandTimeoutMs: 2000 });
    const raw = new Redis(redis.url);
    try {
      const wall = Date.now();
      await contract(a, b, wall);
      const ttl = await raw.pttl('store-amend:calls:call:rtc_amend');
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
      // An amendment never makes a key without its TTL (a key gone by itself stays gone).
      expect(await raw.exists('store-amend:calls:call:rtc_never_bound')).toBe(0);
    } finally {
      raw.disconnect();
      await a.close();
      await b.close();
    }
  });
});
