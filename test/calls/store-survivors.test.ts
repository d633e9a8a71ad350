import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisCallStore } from '../../src/calls/redis-store.js';
import { SqliteCallStore, type CallRecord } from '../../src/calls/store.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * What the stores' mutation survivors of 2026-12-06 (after commit 54652e0) showed untested: SQLite's
 * migration of a ledger file made before call_leases had a tokens column when another instance adds
 * it first, and Redis's claim reply (the tokens a claim hands over) and its tokens key.
 */
const record = (expiresAtMs: number): CallRecord => ({ tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs });

describe('SQLite: a ledger file made before call_leases had its tokens column', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('another instance adds the column between this one looking for it and adding it: this one opens the file all the same', async () => {
    const path = join(tempDir('rp-calls-migrate-'), 'ledger.sqlite');
    const old = new Database(path);
    old.exec('CREATE TABLE call_leases (call_id TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL)');
    old.close();
    const exec = Database.prototype.exec;
    let raced = 0;
    vi.spyOn(Database.prototype, 'exec').mockImplementation(function (this: Database.Database, sql: string) {
      if (sql.startsWith('ALTER TABLE call_leases ADD COLUMN tokens')) {
        // The other instance, on its own connection, wins the race.
        const other = new Database(path);
        exec.call(other, sql);
        other.close();
        raced++;
      }
      return exec.call(this, sql);
    });
    const store = new SqliteCallStore(path);
    vi.restoreAllMocks();
    try {
      expect(raced).toBe(1);
      await store.putCall('rtc_1', record(60_000), { owner: 'gov_a', untilMs: 1000 }, 0);
      await store.recordTokens('rtc_1', 'gov_a', 42);
      expect(await store.claimLapsed('gov_b', 31_000, 1000, 10)).toEqual([{ callId: 'rtc_1', record: record(60_000), tokens: 42 }]);
    } finally {
      await store.close();
    }
  });
  it('adding the column fails for another reason (the file locked past busy_timeout): opening fails with that cause', () => {
    const path = join(tempDir('rp-calls-migrate-'), 'ledger.sqlite');
    const old = new Database(path);
    old.exec('CREATE TABLE call_leases (call_id TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL)');
    old.close();
    const exec = Database.prototype.exec;
    vi.spyOn(Database.prototype, 'exec').mockImplementation(function (this: Database.Database, sql: string) {
      if (sql.startsWith('ALTER TABLE call_leases ADD COLUMN tokens')) throw new Error('database is locked');
      return exec.call(this, sql);
    });
    expect(() => new SqliteCallStore(path)).toThrow('database is locked');
  });
});

describe('Redis: the tokens a claim hands over', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('two deployments on one Redis with different key prefixes: one call id, two calls, each with its own count', async () => {
    const wall = Date.now();
    const a = new RedisCallStore({ url: redis.url, keyPrefix: 'one:', commandTimeoutMs: 2000 });
    const b = new RedisCallStore({ url: redis.url, keyPrefix: 'two:', commandTimeoutMs: 2000 });
    try {
      await b.putCall('rtc_same', record(wall + 60_000), { owner: 'gov_b', untilMs: wall - 1 }, wall);
      await a.putCall('rtc_same', record(wall + 60_000), { owner: 'gov_a', untilMs: wall - 1 }, wall);
      await a.recordTokens('rtc_same', 'gov_a', 500);
      expect((await b.claimLapsed('gov_b2', wall + 30_000, wall, 10)).map((c) => [c.callId, c.tokens])).toEqual([['rtc_same', 0]]);
      expect((await a.claimLapsed('gov_a2', wall + 30_000, wall, 10)).map((c) => [c.callId, c.tokens])).toEqual([['rtc_same', 500]]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a count in the tokens hash that is not a positive number (written by hand, or by another version) is handed over as none', async () => {
    const wall = Date.now();
    const store = new RedisCallStore({ url: redis.url, keyPrefix: 'junk:', commandTimeoutMs: 2000 });
    const raw = new Redis(redis.url);
    try {
      const junk = { rtc_text: 'many', rtc_negative: '-5', rtc_infinite: 'Infinity', rtc_good: '70' };
      for (const [id, count] of Object.entries(junk)) {
        await store.putCall(id, record(wall + 60_000), { owner: 'gov_dead', untilMs: wall - 1 }, wall);
        await raw.hset('junk:calls:tokens', id, count);
      }
      const claimed = await store.claimLapsed('gov_next', wall + 30_000, wall, 10);
      expect(Object.fromEntries(claimed.map((c) => [c.callId, c.tokens]))).toEqual({ rtc_text: 0, rtc_negative: 0, rtc_infinite: 0, rtc_good: 70 });
    } finally {
      raw.disconnect();
      await store.close();
    }
  });
});
