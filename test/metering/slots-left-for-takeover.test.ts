import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { T0 } from './ledger-contract.js';
import { startRedis, type RedisServer } from './redis-server.js';

/*
 * A call's concurrency slot travels with the call from the instance that lets it go (handover at
 * shutdown, or a lease another instance claimed) to the one that takes it over (src/calls,
 * CarriedUsage.slotGoesOn): the first leaves it in the shared ledger (leaveSlot), the second takes
 * it over by its token. A left slot nobody takes over (the call ended, nobody claims it) is no
 * longer refreshed and expires with the slot TTL, as a crashed instance's slots do.
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const ledger = (prefix: string, wall: () => number): RedisLedger =>
  new RedisLedger({
    url: redis.url,
    keyPrefix: prefix,
    commandTimeoutMs: 3000,
    reservationTtlSec: 600,
    usageStreamMaxLen: 10_000,
    pendingMax: 100,
    failMode: 'closed',
    tenants: ['acme', 'beta'],
    log: pino({ level: 'silent' }),
    // Heartbeats every second: the tests wait for one, not for a time.
    slotTtlMs: 3000,
    wall,
  });

describe('a slot left for the instance taking its call over (Redis ledger)', () => {
  it('another instance takes the left slot over by its token at the limit, and a new session is still refused', { timeout: 30_000 }, async () => {
    const now = T0;
    const leaving = ledger('left-takeover:', () => now);
    const taking = ledger('left-takeover:', () => now);
    try {
      await leaving.connect();
      await taking.connect();
      expect(await leaving.acquireSlot('acme', 'hold_call', 1, now)).toBe(true);
      leaving.leaveSlot('acme', 'hold_call');
      // Still counted: the gap before the takeover does not free the tenant's limit.
      expect(await taking.acquireSlot('acme', 'slot_new_session', 1, now)).toBe(false);
      // The call's token is taken over even though the tenant is at its limit.
      expect(await taking.acquireSlot('acme', 'hold_call', 1, now)).toBe(true);
      expect(await taking.acquireSlot('acme', 'slot_new_session', 1, now)).toBe(false);
      // Given back by the instance that holds it now: the tenant may open another session.
      taking.releaseSlot('acme', 'hold_call');
      await vi.waitFor(async () => expect(await taking.acquireSlot('acme', 'slot_new_session', 1, now)).toBe(true), { timeout: 5000, interval: 50 });
    } finally {
      await leaving.close();
      await taking.close();
    }
  });

  it('a left slot nobody takes over is not refreshed: it expires with the slot TTL while a held one is kept', { timeout: 30_000 }, async () => {
    let now = T0;
    const wall = () => now;
    const leaving = ledger('left-expiry:', wall);
    const other = ledger('left-expiry:', wall);
    try {
      await leaving.connect();
      await other.connect();
      expect(await leaving.acquireSlot('acme', 'held', 1, now)).toBe(true);
      expect(await leaving.acquireSlot('beta', 'left', 1, now)).toBe(true);
      leaving.leaveSlot('beta', 'left');
      // Both were taken at T0 (expiring at T0 + 3000). The leaving instance's next heartbeat refreshes
      // what it still holds to now + 3000 = T0 + 5500; asked at T0 + 4000, `held` is still counted.
      now = T0 + 2500;
      await vi.waitFor(
        async () => {
          const got = await other.acquireSlot('acme', 'probe', 1, T0 + 4000);
          if (got === true) other.releaseSlot('acme', 'probe');
          expect(got).toBe(false);
        },
        { timeout: 8000, interval: 100 },
      );
      // That heartbeat left `left` alone: expired at T0 + 3000, the tenant's slot is free.
      expect(await other.acquireSlot('beta', 'probe', 1, T0 + 4000)).toBe(true);
    } finally {
      await leaving.close();
      await other.close();
    }
  });
});
