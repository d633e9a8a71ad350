import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedis, type RedisServer } from '../../test/metering/redis-server.js';
import { caps, NEXT_DAY, record, T0 } from '../../test/metering/ledger-contract.js';
import { NO_CAPS } from './limits.js';
import { RedisLedger } from './redis-ledger.js';

let redis: RedisServer;
let prefix = 0;
const ledgers: RedisLedger[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(ledgers.splice(0).map((l) => l.close()));
});

async function ledger(options: { keyPrefix?: string; slotTtlMs?: number; failMode?: 'open' | 'closed' } = {}): Promise<RedisLedger> {
  const l = new RedisLedger({
    url: redis.url,
    keyPrefix: options.keyPrefix ?? `t${++prefix}:`,
    // Generous: the test process's own event-loop stalls under load count against this timeout.
    commandTimeoutMs: 3000,
    reservationTtlSec: 600,
    usageStreamMaxLen: 10_000,
    pendingMax: 1000,
    failMode: options.failMode ?? 'closed',
    tenants: ['acme', 'beta'],
    log: pino({ level: 'silent' }),
    ...(options.slotTtlMs ? { slotTtlMs: options.slotTtlMs } : {}),
    wall: () => T0,
  });
  ledgers.push(l);
  await l.connect();
  expect(l.connected).toBe(true);
  return l;
}


describe('redis ledger (backend-specific; the shared contract is test/metering/ledger-contract.test.ts)', () => {
  it('a settlement written after its period key expired counts into the current period and keeps its own timestamp', async () => {
    const a = await ledger();
    const threeDaysAgo = T0 - 3 * 86_400_000;
    await a.settle(null, record({ ref: 'late', ts: threeDaysAgo, costNanos: 4_000 }));
    const s = await a.status('acme', NO_CAPS, T0);
    expect(s.day.spent.nanos).toBe(4_000);
    const rows = await a.usage('acme', 0, 10);
    expect(rows.map((r) => [r.ref, r.ts])).toEqual([['late', threeDaysAgo]]);
  });

  it('counts concurrent-session slots across instances; a dead instance\'s slots expire', async () => {
    const a = await ledger({ keyPrefix: 'shared4:', slotTtlMs: 200 });
    const b = await ledger({ keyPrefix: 'shared4:', slotTtlMs: 200 });
    expect(await a.acquireSlot('acme', 's1', 2, T0)).toBe(true);
    expect(await b.acquireSlot('acme', 's2', 2, T0)).toBe(true);
    expect(await b.acquireSlot('acme', 's3', 2, T0)).toBe(false);
    b.releaseSlot('acme', 's2');
    // The release is fire-and-forget: the slot frees once Redis has run it (bounded wait).
    await vi.waitFor(async () => expect(await b.acquireSlot('acme', 's3', 2, T0)).toBe(true), { timeout: 5000, interval: 10 });
    // s1's owner stops heartbeating (wall is frozen at T0 in these ledgers, so jump past the TTL):
    expect(await b.acquireSlot('acme', 's4', 2, T0 + 1000)).toBe(true);
  });

  it('Redis stopped: reserve reports unavailable, settlements queue and are written after it returns (once)', async () => {
    const own = await startRedis();
    const l = new RedisLedger({
      url: own.url,
      keyPrefix: 'down:',
      commandTimeoutMs: 300,
      reservationTtlSec: 600,
      usageStreamMaxLen: 1000,
      pendingMax: 1000,
      failMode: 'closed',
      tenants: ['acme'],
      log: pino({ level: 'silent' }),
      wall: () => T0,
    });
    try {
      await l.connect();
      await l.settle(null, record({ ref: 'before' }));
      await own.stop(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(l.connected).toBe(false);
      expect(l.readiness()).toMatch(/redis ledger unavailable/);
      const r = await l.reserve({ tenant: 'acme', id: 'x', amount: { nanos: 1, tokens: 1 }, caps: caps({ dayNanos: 100 }), wallMs: T0, mode: 'remaining' });
      expect(r.kind).toBe('unavailable');
      await expect(l.status('acme', NO_CAPS, T0)).rejects.toThrow();
      await l.settle(null, record({ ref: 'during-1', costNanos: 7 }));
      await l.settle(null, record({ ref: 'during-2', costNanos: 11 }));
      expect(l.pendingCount).toBe(2);
      await own.restart(); // an empty dataset: the test server keeps nothing
      const deadline = Date.now() + 5000;
      while ((l.pendingCount > 0 || !l.connected) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      expect(l.pendingCount).toBe(0);
      const s = await l.status('acme', NO_CAPS, T0);
      expect(s.day.spent.nanos).toBe(18);
      expect((await l.usage('acme', 0, 10)).map((u) => u.ref)).toEqual(['during-1', 'during-2']);
      expect(l.readiness()).toBeNull();
    } finally {
      await l.close();
      await own.stop();
    }
  });

  it('a settle whose reply is lost (timeout) is retried and billed exactly once', async () => {
    const l = new RedisLedger({
      url: redis.url,
      keyPrefix: `t${++prefix}:`,
      commandTimeoutMs: 150,
      reservationTtlSec: 600,
      usageStreamMaxLen: 1000,
      pendingMax: 1000,
      failMode: 'closed',
      tenants: ['acme'],
      log: pino({ level: 'silent' }),
      wall: () => T0,
    });
    ledgers.push(l);
    await l.connect();
    const admin = new Redis(redis.url);
    try {
      await l.settle(null, record({ ref: 'warm', costNanos: 1 })); // loads the script (EVALSHA hits)
      // Writes (scripts included) wait on the server while the client's 150 ms timeout fires; the
      // paused write then runs, and so would every retry without the duplicate check.
      await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
      await l.settle(null, record({ ref: 'once' }));
      expect(l.pendingCount).toBe(1);
      expect(await l.drain(5000)).toBe(true);
      // A write of our own waits out the pause: any paused duplicate has run by the time it returns.
      await admin.call('SET', 'probe:after-pause', '1');
      expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(1_000_001);
      expect(await l.usage('acme', 0, 10)).toHaveLength(2);
    } finally {
      admin.disconnect();
    }
  });

  it('starts without Redis (not ready, fail-closed) and connects once it appears', async () => {
    const own = await startRedis();
    await own.stop(true);
    const l = new RedisLedger({
      url: own.url,
      keyPrefix: 'late:',
      commandTimeoutMs: 500,
      reservationTtlSec: 60,
      usageStreamMaxLen: 100,
      pendingMax: 10,
      failMode: 'closed',
      tenants: ['acme'],
      log: pino({ level: 'silent' }),
    });
    try {
      await l.connect(300);
      expect(l.connected).toBe(false);
      expect(l.readiness()).toMatch(/unavailable/);
      expect((await l.acquireSlot('acme', 's', 1, T0))).toBe('unavailable');
      await own.restart();
      const deadline = Date.now() + 8000;
      while (!l.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(l.connected).toBe(true);
      expect(await l.acquireSlot('acme', 's', 1, T0)).toBe(true);
    } finally {
      await l.close();
      await own.stop();
    }
  });
});
