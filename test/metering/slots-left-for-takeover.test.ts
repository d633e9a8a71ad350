import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { LedgerHost } from '../../src/metering/remote-ledger.js';
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
    tenants: ['acme', 'beta', 'gamma'],
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

describe('a relay worker that dies (the primary\'s LedgerHost over the Redis ledger)', () => {
  // Red team 2026-12-07 (b24): workerGone gave back every slot the dead worker held, its calls' too;
  // the calls go on upstream and are taken over once their leases lapse, and in that gap the tenant
  // opened a session in the call's place: the takeover was refused its slot and governed without one
  // (the tenant ran its limit + 1 for the rest of the call). A crashed instance's slots expire instead.
  it('leaves its calls\' slots for the instance taking the calls over, and gives back its WebSocket sessions\'', { timeout: 30_000 }, async () => {
    const now = T0;
    const primary = ledger('worker-gone:', () => now);
    const other = ledger('worker-gone:', () => now);
    try {
      await primary.connect();
      await other.connect();
      const host = new LedgerHost(primary);
      const acquire = (tenant: string, token: string, id: number) =>
        new Promise<unknown>((resolve) => host.handle({ t: 'ledger', id, method: 'acquireSlot', args: [tenant, token, 1, now] }, (r) => resolve(r.ok ? r.value : r.error)));
      expect(await acquire('acme', 'hold_0123456789abcdef', 1)).toBe(true);
      expect(await acquire('beta', 'call_rtc_1', 2)).toBe(true);
      expect(await acquire('beta', 'slot_0123456789abcdef', 3)).toBe(false);
      expect(await acquire('gamma', 'slot_fedcba9876543210', 4)).toBe(true);
      host.workerGone();
      // The calls' slots are still counted (an offer's hold, and one named after its call) ...
      expect(await other.acquireSlot('acme', 'slot_new', 1, now)).toBe(false);
      expect(await other.acquireSlot('beta', 'slot_new', 1, now)).toBe(false);
      // ... and taken over by their tokens.
      expect(await other.acquireSlot('acme', 'hold_0123456789abcdef', 1, now)).toBe(true);
      expect(await other.acquireSlot('beta', 'call_rtc_1', 1, now)).toBe(true);
      // A WebSocket session's slot is given back: its client is gone with the worker.
      await vi.waitFor(async () => expect(await other.acquireSlot('gamma', 'slot_new', 1, now)).toBe(true), { timeout: 5000, interval: 50 });
    } finally {
      await primary.close();
      await other.close();
    }
  });
});

describe('two relay workers of one instance holding one call\'s slot (the primary\'s Redis ledger)', () => {
  const acquireOn = (host: LedgerHost, tenant: string, token: string, at: number) =>
    new Promise<unknown>((resolve) => host.handle({ t: 'ledger', id: 1, method: 'acquireSlot', args: [tenant, token, 1, at] }, (r) => resolve(r.ok ? r.value : r.error)));
  const send = (host: LedgerHost, method: 'leaveSlot' | 'releaseSlot', tenant: string, token: string) => host.handle({ t: 'ledger', id: 0, method, args: [tenant, token] }, () => undefined);

  // Red team 2026-12-07 (b24): the primary's ledger refreshes a slot by its token, one entry whoever
  // holds it. A worker that took a call over (its lease lapsed in a stalled sibling) took the call's
  // slot by its token; the stalled sibling then let the call go (leaveSlot) or ended its sideband
  // (releaseSlot), and the slot was no longer refreshed, or removed: the tenant's limit stopped
  // counting a call that went on.
  for (const method of ['leaveSlot', 'releaseSlot'] as const) {
    it(`the slot a sibling took over stays counted and refreshed when the first worker's ${method} arrives`, { timeout: 30_000 }, async () => {
      let now = T0;
      const wall = () => now;
      const primary = ledger(`siblings-${method}:`, wall);
      const other = ledger(`siblings-${method}:`, wall);
      try {
        await primary.connect();
        await other.connect();
        const stalled = new LedgerHost(primary);
        const taking = new LedgerHost(primary);
        expect(await acquireOn(stalled, 'acme', 'hold_call', now)).toBe(true);
        expect(await acquireOn(taking, 'acme', 'hold_call', now)).toBe(true);
        send(stalled, method, 'acme', 'hold_call');
        expect(await other.acquireSlot('acme', 'slot_new', 1, now)).toBe(false);
        // The primary's next heartbeat refreshes it (to T0 + 5500): asked at T0 + 4000, still counted.
        now = T0 + 2500;
        await vi.waitFor(
          async () => {
            const got = await other.acquireSlot('acme', 'probe', 1, T0 + 4000);
            if (got === true) other.releaseSlot('acme', 'probe');
            expect(got).toBe(false);
          },
          { timeout: 8000, interval: 100 },
        );
        // The worker holding it gives it back: the tenant's slot is free.
        send(taking, 'releaseSlot', 'acme', 'hold_call');
        await vi.waitFor(async () => expect(await other.acquireSlot('acme', 'slot_new', 1, T0 + 4000)).toBe(true), { timeout: 5000, interval: 50 });
      } finally {
        await primary.close();
        await other.close();
      }
    });
  }
});
