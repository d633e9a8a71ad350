import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisCallStore } from './redis-store.js';
import { SqliteCallStore, type CallRecord } from './store.js';
import { startRedis, type RedisServer } from '../../test/metering/redis-server.js';
import { tempDir } from '../../test/support/temp-dir.js';

/**
 * The survivors of CallStore.amendCall (d251fdd), twenty-first session: a record this version cannot
 * read is left as it is (never replaced by the amendment alone, never a throw), and on Redis a record
 * that keeps changing under the amendment fails it after a bounded number of rounds.
 */
let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const ENDED = { code: 'budget_exceeded', message: 'The call reached its cost cap and was ended.', closeCode: 4002 };
const WALL = 1_000_000;

describe('amendCall on a record this version cannot read', () => {
  it('SQLite: the row is left as it was', async () => {
    const path = join(tempDir('rp-store-amend-b-'), 'ledger.sqlite');
    const store = new SqliteCallStore(path);
    const db = new Database(path);
    try {
      db.prepare('INSERT INTO call_bindings (kind, id, json, expires_at) VALUES (?, ?, ?, ?)').run('call', 'rtc_unreadable', '{not json', WALL + 60_000);
      await store.amendCall('rtc_unreadable', { endedByProxy: ENDED }, WALL);
      expect(db.prepare('SELECT json, expires_at FROM call_bindings WHERE kind = ? AND id = ?').get('call', 'rtc_unreadable')).toEqual({ json: '{not json', expires_at: WALL + 60_000 });
    } finally {
      db.close();
      await store.close();
    }
  });

  it('Redis: the key is left as it was', async () => {
    const store = new RedisCallStore({ url: redis.url, keyPrefix: 'amend-b:', commandTimeoutMs: 2000 });
    const raw = new Redis(redis.url);
    try {
      await raw.set('amend-b:calls:call:rtc_unreadable', '{not json', 'PX', 60_000);
      await store.amendCall('rtc_unreadable', { endedByProxy: ENDED }, Date.now());
      expect(await raw.get('amend-b:calls:call:rtc_unreadable')).toBe('{not json');
    } finally {
      raw.disconnect();
      await store.close();
    }
  });
});

describe('amendCall on Redis, a record changing under it', () => {
  it('four rounds of read and compare-and-set, then it fails saying so', async () => {
    const store = new RedisCallStore({ url: redis.url, keyPrefix: 'amend-b:', commandTimeoutMs: 2000 });
    const wall = Date.now();
    const record: CallRecord = { tenant: 'acme', model: 'gpt-realtime', kind: 'sip', expiresAtMs: wall + 60_000, startedAtMs: wall };
    try {
      await store.putCall('rtc_contended', record, { owner: 'gov_a', untilMs: wall + 3000 }, wall);
      // Every compare-and-set loses (another instance's amendment each time); other scripts run as they are.
      const realEval = Redis.prototype.eval;
      let replaces = 0;
      vi.spyOn(Redis.prototype, 'eval').mockImplementation(function (this: Redis, ...args: Parameters<Redis['eval']>) {
        if (typeof args[0] === 'string' && args[0].includes("redis.call('PTTL', KEYS[1])")) {
          replaces++;
          // A loop that never ends is stopped here (the bound is what is tested).
          if (replaces > 20) return Promise.reject(new Error('unbounded'));
          return Promise.resolve(0);
        }
        return realEval.apply(this, args);
      } as Redis['eval']);
      await expect(store.amendCall('rtc_contended', { endedByProxy: ENDED }, wall)).rejects.toThrow("the call's record changed under 4 amendments in a row");
      expect(replaces).toBe(4);
    } finally {
      await store.close();
    }
  });
});
