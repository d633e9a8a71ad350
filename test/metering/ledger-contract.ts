import { describe, expect, it } from 'vitest';
import type { Ledger, UsageRecord } from '../../src/metering/ledger.js';
import { NO_CAPS, type CapSet } from '../../src/metering/limits.js';
import { nextUtcMidnight, recentNoon } from '../support/clock.js';

/*
 * The contract every ledger keeps, run against each backend (ledger-contract.test.ts). Redis
 * compares expiry instants with its own clock, so T0 is near now (test/support/clock.ts).
 */

export const T0 = recentNoon();
export const NEXT_DAY = nextUtcMidnight(T0);
export const caps = (c: Partial<CapSet>): CapSet => ({ ...NO_CAPS, ...c });

export function record(over: Partial<UsageRecord> = {}): UsageRecord {
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
    settledBy: 'response.done',
    fallbackPrice: false,
    ...over,
  };
}

export interface LedgerBackend {
  readonly name: string;
  /**
   * A ledger on `store`: the same store name opens the same data (a second SQLite connection on
   * the file after the first was abandoned, as after kill -9; a second Redis instance on the
   * prefix). A fresh name is an empty store.
   */
  open(store: string): Promise<Ledger>;
  /** True when two ledgers open on one store at once share reservations (Redis: instances). */
  readonly sharedReservations: boolean;
}

let storeSeq = 0;
const fresh = () => `store${++storeSeq}_${process.pid}`;

export function ledgerContract(backend: LedgerBackend): void {
  describe(`ledger contract: ${backend.name}`, () => {
    it('settles into the day and month of the record, keeps every usage record with its rule', async () => {
      const l = await backend.open(fresh());
      await l.settle(null, record());
      await l.settle(null, record({ ref: 'resp_2', costNanos: 2_500, totalTokens: 10, estimated: true, settledBy: 'client_gone_estimate', status: null }));
      await l.settle(null, record({ ref: 'resp_3', ts: NEXT_DAY + 3_600_000 }));
      const s = await l.status('acme', NO_CAPS, T0);
      expect(s.day.spent).toEqual({ nanos: 1_002_500, tokens: 160 });
      expect(s.month.spent).toEqual({ nanos: 2_002_500, tokens: 310 });
      expect((await l.status('acme', NO_CAPS, NEXT_DAY + 7_200_000)).day.spent.nanos).toBe(1_000_000);
      const all = await l.usage('acme', 0, 10);
      expect(all.map((r) => r.ref)).toEqual(['resp_1', 'resp_2', 'resp_3']);
      expect(all[1]).toEqual(record({ ref: 'resp_2', costNanos: 2_500, totalTokens: 10, estimated: true, settledBy: 'client_gone_estimate', status: null }));
      expect((await l.usage(null, NEXT_DAY, 10)).map((r) => r.ref)).toEqual(['resp_3']);
      expect(await l.usage('beta', 0, 10)).toEqual([]);
      expect(await l.usage('acme', 0, 2)).toHaveLength(2);
    });

    it('remaining mode: grants while spent + reserved is below the cap; settle and release drop reservations', async () => {
      const l = await backend.open(fresh());
      const c = caps({ dayNanos: 10_000_000 });
      const req = (id: string, nanos: number) => ({ tenant: 'acme', id, amount: { nanos, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' as const });
      expect((await l.reserve(req('r1', 9_000_000))).kind).toBe('ok');
      // 0 spent + 9 reserved < 10: granted; the overshoot is bounded by this one reservation.
      expect((await l.reserve(req('r2', 9_000_000))).kind).toBe('ok');
      expect(await l.reserve(req('r3', 1))).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', limit: 10_000_000, spent: 0, reserved: 18_000_000 } });
      await l.release('acme', 'r2');
      await l.settle('r1', record({ costNanos: 3_000_000 }));
      expect((await l.status('acme', c, T0)).day).toMatchObject({ reserved: { nanos: 0, tokens: 0 }, spent: { nanos: 3_000_000 } });
      expect((await l.reserve(req('r4', 9_000_000))).kind).toBe('ok');
      // Releasing twice, or an unknown id, changes nothing.
      await l.release('acme', 'r4');
      await l.release('acme', 'r4');
      await l.release('acme', 'nope');
      expect((await l.status('acme', c, T0)).day.reserved.nanos).toBe(0);
    });

    it('worst_case mode grants only what fits; token caps work the same way', async () => {
      const l = await backend.open(fresh());
      const c = caps({ monthNanos: 10_000_000, dayTokens: 1000 });
      const req = (id: string, nanos: number, tokens: number) => ({ tenant: 'acme', id, amount: { nanos, tokens }, caps: c, wallMs: T0, mode: 'worst_case' as const });
      expect((await l.reserve(req('a', 10_000_000, 10))).kind).toBe('ok');
      await l.release('acme', 'a');
      expect(await l.reserve(req('b', 10_000_001, 10))).toMatchObject({ kind: 'over', hit: { cap: 'monthly_usd' } });
      expect(await l.reserve(req('c', 1, 1001))).toMatchObject({ kind: 'over', hit: { cap: 'daily_tokens', limit: 1000 } });
    });

    it('admissions are serialised per tenant: of 40 concurrent reservations exactly the ones that fit are granted', async () => {
      const store = fresh();
      const a = await backend.open(store);
      const b = backend.sharedReservations ? await backend.open(store) : a;
      const c = caps({ dayNanos: 10_000 });
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).reserve({ tenant: 'acme', id: `r${i}`, amount: { nanos: 1000, tokens: 0 }, caps: c, wallMs: T0, mode: 'worst_case' })),
      );
      expect(results.filter((r) => r.kind === 'ok')).toHaveLength(10);
      expect(results.find((r) => r.kind === 'over')).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', limit: 10_000, reserved: 10_000 } });
      // remaining mode sees every grant too: spent + reserved is at the cap, so nothing more.
      expect((await a.reserve({ tenant: 'acme', id: 'late', amount: { nanos: 1, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' })).kind).toBe('over');
      const granted = results.map((r, i) => (r.kind === 'ok' ? `r${i}` : null)).filter((id): id is string => id !== null);
      await a.settle(granted[0]!, record({ costNanos: 500 }));
      await b.release('acme', granted[1]!);
      expect((await b.status('acme', c, T0)).day).toMatchObject({ reserved: { nanos: 8000 }, spent: { nanos: 500 } });
    });

    it('runtime overrides replace the configured cap until cleared; reset zeroes the period only', async () => {
      const l = await backend.open(fresh());
      const c = caps({ dayNanos: 1_000_000 });
      await l.settle(null, record({ costNanos: 1_000_000 }));
      expect((await l.reserve({ tenant: 'acme', id: 'x', amount: { nanos: 1, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' })).kind).toBe('over');
      await l.setOverride('acme', 'day', { nanos: 5_000_000, tokens: 7 });
      expect((await l.status('acme', c, T0)).day).toMatchObject({ capNanos: 5_000_000, capTokens: 7, override: { nanos: 5_000_000, tokens: 7 } });
      await l.setOverride('acme', 'day', { tokens: null });
      expect((await l.status('acme', c, T0)).day.override).toEqual({ nanos: 5_000_000, tokens: null });
      expect((await l.reserve({ tenant: 'acme', id: 'y', amount: { nanos: 1, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' })).kind).toBe('ok');
      await l.setOverride('acme', 'day', { nanos: null });
      expect((await l.status('acme', c, T0)).day.capNanos).toBe(1_000_000);
      await l.resetSpend('acme', 'day', T0);
      expect((await l.status('acme', c, T0)).day.spent.nanos).toBe(0);
      expect((await l.status('acme', c, T0)).month.spent.nanos).toBe(1_000_000);
      expect(await l.usage('acme', 0, 10)).toHaveLength(1);
    });

    it('spend, overrides and usage outlive the ledger object (another one on the same store sees them)', async () => {
      const store = fresh();
      const a = await backend.open(store);
      await a.settle(null, record());
      await a.setOverride('acme', 'month', { tokens: 42 });
      // `a` is not closed: a kill -9 does not close either.
      const b = await backend.open(store);
      expect((await b.status('acme', NO_CAPS, T0)).day.spent).toEqual({ nanos: 1_000_000, tokens: 150 });
      expect((await b.status('acme', NO_CAPS, T0)).month.capTokens).toBe(42);
      expect(await b.usage('acme', 0, 5)).toHaveLength(1);
    });

    it('hands out concurrent-session slots up to the limit, per tenant', async () => {
      const l = await backend.open(fresh());
      expect(await l.acquireSlot('acme', 's1', 2, T0)).toBe(true);
      expect(await l.acquireSlot('acme', 's1', 2, T0)).toBe(true); // idempotent per token
      expect(await l.acquireSlot('acme', 's2', 2, T0)).toBe(true);
      expect(await l.acquireSlot('acme', 's3', 2, T0)).toBe(false);
      expect(await l.acquireSlot('beta', 's4', 2, T0)).toBe(true);
      l.releaseSlot('acme', 's1');
      // Redis releases in the background: wait on the outcome, bounded.
      const deadline = Date.now() + 2000;
      let got = await l.acquireSlot('acme', 's3', 2, T0);
      while (got !== true && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        got = await l.acquireSlot('acme', 's3', 2, T0);
      }
      expect(got).toBe(true);
    });

    it('is ready while open', async () => {
      const l = await backend.open(fresh());
      expect(l.readiness()).toBeNull();
    });
  });
}
