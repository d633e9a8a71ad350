import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { T0 } from './ledger-contract.js';
import { startRedis, type RedisServer } from './redis-server.js';

/*
 * Red team (fifteenth session, ledger): concurrent-session slots across instances after Redis lost
 * them. The slot heartbeat refreshed with ZADD XX, which only updates members still present: after
 * a Redis restart from a snapshot older than the slot TTL (RDB's usual case: spend mostly kept,
 * slots expired or absent) or with no persistence, every live session held no slot any more, and
 * the tenant could open maxConcurrentSessions more while the first ones ran (the limit doubled,
 * once per restart). A live session's heartbeat re-adds its slot.
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const ledger = (wall: () => number): RedisLedger =>
  new RedisLedger({
    url: redis.url,
    keyPrefix: 'slot15c:',
    commandTimeoutMs: 3000,
    reservationTtlSec: 600,
    usageStreamMaxLen: 10_000,
    pendingMax: 100,
    failMode: 'closed',
    tenants: ['acme'],
    log: pino({ level: 'silent' }),
    // Heartbeats every second: the test waits for a few of them, not for a time.
    slotTtlMs: 3000,
    wall,
  });

describe('redis slots after Redis lost them', () => {
  it('a live session on one instance still holds its slot: another instance is refused at max 1', { timeout: 30_000 }, async () => {
    let now = T0;
    const wall = () => now;
    const a = ledger(wall);
    const b = ledger(wall);
    try {
      await a.connect();
      await b.connect();
      expect(await a.acquireSlot('acme', 'live', 1, now)).toBe(true);
      expect(await b.acquireSlot('acme', 'other', 1, now)).toBe(false);
      await redis.restart(); // empty dataset: the slot set is gone
      await vi.waitFor(() => expect(a.connected && b.connected).toBe(true), { timeout: 10_000, interval: 20 });
      // Wait for A's heartbeats (real timers), then ask on B: A's session is still open.
      await vi.waitFor(
        async () => {
          now += 100;
          const got = await b.acquireSlot('acme', 'other', 1, now);
          if (got === true) b.releaseSlot('acme', 'other');
          expect(got).toBe(false);
        },
        { timeout: 8000, interval: 200 },
      );
    } finally {
      await a.close();
      await b.close();
    }
  });
});
