import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedis, type RedisServer } from '../../test/metering/redis-server.js';
import { nextUtcMidnight, recentNoon } from '../../test/support/clock.js';
import type { UsageRecord } from './ledger.js';
import { NO_CAPS, type CapSet } from './limits.js';
import { RedisLedger } from './redis-ledger.js';

// Redis compares the ledger's expiry instants with its own clock: T0 must be near now.
const T0 = recentNoon();
const NEXT_DAY = nextUtcMidnight(T0);
const caps = (c: Partial<CapSet>): CapSet => ({ ...NO_CAPS, ...c });
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

function record(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    ts: T0,
    tenant: 'acme',
    session: 'rps_1',
    source: 'response',
    ref: 'resp_1',
    model: 'gpt-realtime',
    status: 'completed',
    costNanos: 1_000_000,
    inputTokens: 100,
    outputTokens: 50,
    cachedTokens: 0,
    totalTokens: 150,
    input: { text: 100, audio: 0, image: 0 },
    cached: { text: 0, audio: 0, image: 0 },
    output: { text: 50, audio: 0 },
    seconds: null,
    estimated: false,
    fallbackPrice: false,
    ...over,
  };
}

describe('redis ledger (real redis-server)', () => {
  it('settles day and month atomically, shares spend between instances, exports usage', async () => {
    const a = await ledger({ keyPrefix: 'shared1:' });
    const b = await ledger({ keyPrefix: 'shared1:' });
    await a.settle(null, record());
    await b.settle(null, record({ ref: 'resp_2', costNanos: 2_500, totalTokens: 10, session: 'rps_2' }));
    await a.settle(null, record({ ref: 'resp_3', ts: NEXT_DAY + 3_600_000 }));
    const s = await b.status('acme', NO_CAPS, T0);
    expect(s.day.spent).toEqual({ nanos: 1_002_500, tokens: 160 });
    expect(s.month.spent).toEqual({ nanos: 2_002_500, tokens: 310 });
    expect((await a.usage('acme', 0, 10)).map((r) => r.ref).sort()).toEqual(['resp_1', 'resp_2', 'resp_3']);
    expect((await a.usage(null, NEXT_DAY, 10)).map((r) => r.ref)).toEqual(['resp_3']);
  });

  it('a settlement written after its period key expired counts into the current period and keeps its own timestamp', async () => {
    const a = await ledger();
    const threeDaysAgo = T0 - 3 * 86_400_000;
    await a.settle(null, record({ ref: 'late', ts: threeDaysAgo, costNanos: 4_000 }));
    const s = await a.status('acme', NO_CAPS, T0);
    expect(s.day.spent.nanos).toBe(4_000);
    const rows = await a.usage('acme', 0, 10);
    expect(rows.map((r) => [r.ref, r.ts])).toEqual([['late', threeDaysAgo]]);
  });

  it('reserves atomically: of 40 concurrent reservations across two instances exactly the ones that fit are granted', async () => {
    const a = await ledger({ keyPrefix: 'shared2:' });
    const b = await ledger({ keyPrefix: 'shared2:' });
    const c = caps({ dayNanos: 10_000 });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).reserve({ tenant: 'acme', id: `r${i}`, amount: { nanos: 1000, tokens: 0 }, caps: c, wallMs: T0, mode: 'worst_case' })),
    );
    expect(results.filter((r) => r.kind === 'ok')).toHaveLength(10);
    const over = results.find((r) => r.kind === 'over');
    expect(over).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', limit: 10_000, reserved: 10_000 } });
    const s = await a.status('acme', c, T0);
    expect(s.day.reserved.nanos).toBe(10_000);
    const granted = results.map((r, i) => (r.kind === 'ok' ? `r${i}` : null)).filter((id): id is string => id !== null);
    await a.settle(granted[0]!, record({ costNanos: 500 }));
    await b.release('acme', granted[1]!);
    expect((await b.status('acme', c, T0)).day).toMatchObject({ reserved: { nanos: 8000 }, spent: { nanos: 500 } });
  });

  it('remaining mode: grants while spent + reserved is below the cap', async () => {
    const a = await ledger();
    const c = caps({ monthTokens: 100 });
    const req = (id: string, tokens: number) => ({ tenant: 'acme', id, amount: { nanos: 0, tokens }, caps: c, wallMs: T0, mode: 'remaining' as const });
    expect((await a.reserve(req('x', 90))).kind).toBe('ok');
    expect((await a.reserve(req('y', 90))).kind).toBe('ok');
    expect(await a.reserve(req('z', 1))).toMatchObject({ kind: 'over', hit: { cap: 'monthly_tokens', reserved: 180 } });
  });

  it('overrides caps at runtime for every instance; reset zeroes the period', async () => {
    const a = await ledger({ keyPrefix: 'shared3:' });
    const b = await ledger({ keyPrefix: 'shared3:' });
    const c = caps({ dayNanos: 1_000_000 });
    await a.settle(null, record({ costNanos: 1_000_000 }));
    expect((await b.reserve({ tenant: 'acme', id: 'q', amount: { nanos: 1, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' })).kind).toBe('over');
    await a.setOverride('acme', 'day', { nanos: 3_000_000, tokens: 7 });
    expect((await b.status('acme', c, T0)).day).toMatchObject({ capNanos: 3_000_000, capTokens: 7, override: { nanos: 3_000_000, tokens: 7 } });
    await a.setOverride('acme', 'day', { tokens: null });
    expect((await b.status('acme', c, T0)).day.override).toEqual({ nanos: 3_000_000, tokens: null });
    await b.resetSpend('acme', 'day', T0);
    expect((await a.status('acme', c, T0)).day.spent.nanos).toBe(0);
    expect((await a.status('acme', c, T0)).month.spent.nanos).toBe(1_000_000);
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
