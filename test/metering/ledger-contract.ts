import { describe, expect, it } from 'vitest';
import type { Ledger, UsageRecord } from '../../src/metering/ledger.js';
import { NO_CAPS, type CapSet } from '../../src/metering/limits.js';
import { nextUtcMidnight, recentNoon } from '../support/clock.js';

/*
 * The contract every ledger keeps, run against each backend (ledger-contract-sqlite.test.ts, ledger-contract-redis.test.ts). Redis
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
      const all = (await l.usagePage('acme', 0, 10)).records;
      expect(all.map((r) => r.ref)).toEqual(['resp_1', 'resp_2', 'resp_3']);
      expect(all[1]).toEqual(record({ ref: 'resp_2', costNanos: 2_500, totalTokens: 10, estimated: true, settledBy: 'client_gone_estimate', status: null }));
      expect((await l.usagePage(null, NEXT_DAY, 10)).records.map((r) => r.ref)).toEqual(['resp_3']);
      expect((await l.usagePage('beta', 0, 10)).records).toEqual([]);
      expect((await l.usagePage('acme', 0, 2)).records).toHaveLength(2);
    });

    it('usage pages: following the cursor returns every record exactly once, more than a page of them in one millisecond, over tenants', async () => {
      // Regression (2026-12-07): pages went by time alone, so the records of the boundary millisecond
      // repeated, and a millisecond holding more than a page could never be passed.
      const l = await backend.open(fresh());
      const refs: { tenant: string; ref: string }[] = [];
      for (let i = 0; i < 7; i++) refs.push({ tenant: i % 3 === 0 ? 'beta' : 'acme', ref: `same_ms_${i}` });
      for (let i = 0; i < 2; i++) refs.push({ tenant: 'acme', ref: `next_ms_${i}` });
      for (const [i, r] of refs.entries()) await l.settle(null, record({ ...r, ts: i < 7 ? T0 : T0 + 1 }));
      const follow = async (tenant: string | null, pageSize: number): Promise<string[]> => {
        const seen: string[] = [];
        let page = await l.usagePage(tenant, T0, pageSize);
        // Bounded: a cursor that did not advance fails here instead of looping.
        for (let pages = 0; pages <= refs.length; pages++) {
          seen.push(...page.records.map((r) => r.ref));
          if (page.records.length < pageSize) return seen;
          page = await l.usagePage(tenant, page.next!, pageSize);
        }
        throw new Error(`the cursor did not advance: ${seen.join(',')}`);
      };
      for (const pageSize of [1, 2, 3, 9]) {
        const all = await follow(null, pageSize);
        expect(all, `page size ${pageSize}`).toHaveLength(refs.length);
        expect([...all].sort(), `page size ${pageSize}`).toEqual(refs.map((r) => r.ref).sort());
        // The millisecond's records come before the next millisecond's.
        expect(all.slice(7).sort()).toEqual(['next_ms_0', 'next_ms_1']);
        expect(await follow('acme', pageSize)).toEqual(refs.filter((r) => r.tenant === 'acme').map((r) => r.ref));
      }
      // An empty page has no cursor; a page past the end is empty.
      const end = await l.usagePage('acme', T0 + 2, 5);
      expect(end).toEqual({ records: [], next: null });
      const last = await l.usagePage(null, T0, 100);
      expect((await l.usagePage(null, last.next!, 100)).records).toEqual([]);
    });

    it('two settlements of one response both count: a ledger bills what it is given (only a backend retry checks for its own earlier write)', async () => {
      const l = await backend.open(fresh());
      await l.settle(null, record({ costNanos: 300, totalTokens: 3 }));
      await l.settle(null, record({ costNanos: 300, totalTokens: 3 }));
      expect((await l.status('acme', NO_CAPS, T0)).day.spent).toEqual({ nanos: 600, tokens: 6 });
      expect((await l.usagePage('acme', 0, 10)).records.map((r) => r.ref)).toEqual(['resp_1', 'resp_1']);
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
      expect((await l.usagePage('acme', 0, 10)).records).toHaveLength(1);
    });

    it('each override lands on its own period and unit; clearing one leaves the others', async () => {
      const l = await backend.open(fresh());
      const c = caps({ dayNanos: 10, monthNanos: 20, dayTokens: 30, monthTokens: 40 });
      await l.setOverride('acme', 'day', { nanos: 1, tokens: 2 });
      await l.setOverride('acme', 'month', { nanos: 3, tokens: 4 });
      let s = await l.status('acme', c, T0);
      expect([s.day.capNanos, s.day.capTokens, s.month.capNanos, s.month.capTokens]).toEqual([1, 2, 3, 4]);
      expect([s.day.override, s.month.override]).toEqual([{ nanos: 1, tokens: 2 }, { nanos: 3, tokens: 4 }]);
      // Another tenant is untouched: the configured caps apply.
      const beta = await l.status('beta', c, T0);
      expect([beta.day.capNanos, beta.day.capTokens, beta.month.capNanos, beta.month.capTokens]).toEqual([10, 30, 20, 40]);
      expect(beta.day.override).toEqual({ nanos: null, tokens: null });
      await l.setOverride('acme', 'month', { nanos: null });
      await l.setOverride('acme', 'day', {});
      s = await l.status('acme', c, T0);
      expect([s.day.capNanos, s.day.capTokens, s.month.capNanos, s.month.capTokens]).toEqual([1, 2, 20, 4]);
      // Both cleared: the configured caps again, and no override is left behind.
      await l.setOverride('acme', 'day', { nanos: null, tokens: null });
      await l.setOverride('acme', 'month', { tokens: null });
      s = await l.status('acme', c, T0);
      expect([s.day.capNanos, s.day.capTokens, s.month.capNanos, s.month.capTokens]).toEqual([10, 30, 20, 40]);
      expect([s.day.override, s.month.override]).toEqual([{ nanos: null, tokens: null }, { nanos: null, tokens: null }]);
      // The monthly override is what admission checks against.
      await l.setOverride('acme', 'month', { tokens: 5 });
      expect(await l.reserve({ tenant: 'acme', id: 'm', amount: { nanos: 0, tokens: 6 }, caps: c, wallMs: T0, mode: 'worst_case' })).toMatchObject({ kind: 'over', hit: { cap: 'monthly_tokens', limit: 5 } });
    });

    it('reservations add up per tenant in both units; settling or releasing one leaves the others', async () => {
      const l = await backend.open(fresh());
      const req = (tenant: string, id: string, nanos: number, tokens: number) => ({ tenant, id, amount: { nanos, tokens }, caps: NO_CAPS, wallMs: T0, mode: 'remaining' as const });
      for (const [t, id, n, k] of [['acme', 'a', 100, 1], ['acme', 'b', 20, 2], ['acme', 'c', 3, 30], ['beta', 'd', 7, 7]] as const) expect((await l.reserve(req(t, id, n, k))).kind).toBe('ok');
      let s = await l.status('acme', NO_CAPS, T0);
      expect(s.day.reserved).toEqual({ nanos: 123, tokens: 33 });
      expect(s.month.reserved).toEqual({ nanos: 123, tokens: 33 });
      await l.release('acme', 'b');
      expect((await l.status('acme', NO_CAPS, T0)).day.reserved).toEqual({ nanos: 103, tokens: 31 });
      await l.settle('a', record({ costNanos: 90, totalTokens: 1 }));
      s = await l.status('acme', NO_CAPS, T0);
      expect(s.day.reserved).toEqual({ nanos: 3, tokens: 30 });
      expect(s.day.spent).toEqual({ nanos: 90, tokens: 1 });
      // Releasing another tenant's id, or an id twice, changes nothing.
      await l.release('beta', 'c');
      await l.release('acme', 'a');
      expect((await l.status('acme', NO_CAPS, T0)).day.reserved).toEqual({ nanos: 3, tokens: 30 });
      expect((await l.status('beta', NO_CAPS, T0)).day.reserved).toEqual({ nanos: 7, tokens: 7 });
      await l.release('acme', 'c');
      expect((await l.status('acme', NO_CAPS, T0)).day.reserved).toEqual({ nanos: 0, tokens: 0 });
      // A fresh reservation after all were gone starts from zero.
      expect((await l.reserve(req('acme', 'e', 5, 5))).kind).toBe('ok');
      expect((await l.status('acme', NO_CAPS, T0)).day.reserved).toEqual({ nanos: 5, tokens: 5 });
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
      expect((await b.usagePage('acme', 0, 5)).records).toHaveLength(1);
    });

    it('hands out concurrent-session slots up to the limit, per tenant', async () => {
      const l = await backend.open(fresh());
      expect(await l.acquireSlot('acme', 's1', 2, T0)).toBe(true);
      expect(await l.acquireSlot('acme', 's1', 2, T0)).toBe(true); // idempotent per token
      expect(await l.acquireSlot('acme', 's2', 2, T0)).toBe(true);
      expect(await l.acquireSlot('acme', 's3', 2, T0)).toBe(false);
      // A session re-acquiring its own slot at the limit keeps it.
      expect(await l.acquireSlot('acme', 's2', 2, T0)).toBe(true);
      expect(await l.acquireSlot('beta', 's4', 2, T0)).toBe(true);
      // Releasing what was never held changes nothing.
      l.releaseSlot('gamma', 's1');
      l.releaseSlot('acme', 's9');
      expect(await l.acquireSlot('acme', 's3', 2, T0)).toBe(false);
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

    it('a session leaving frees its slot only: the others still count', async () => {
      const l = await backend.open(fresh());
      for (const s of ['s1', 's2', 's3']) expect(await l.acquireSlot('acme', s, 3, T0)).toBe(true);
      l.releaseSlot('acme', 's1');
      const deadline = Date.now() + 2000;
      let got = await l.acquireSlot('acme', 's4', 3, T0);
      while (got !== true && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        got = await l.acquireSlot('acme', 's4', 3, T0);
      }
      expect(got).toBe(true);
      expect(await l.acquireSlot('acme', 's5', 3, T0)).toBe(false);
    });

    it('is ready while open, and says whether its answers are synchronous', async () => {
      const l = await backend.open(fresh());
      expect(l.readiness()).toBeNull();
      const answer = l.status('acme', NO_CAPS, T0);
      expect(answer instanceof Promise).toBe(!l.synchronous);
      await answer;
      expect(l.kind).toBe(backend.name.startsWith('redis') ? 'redis' : 'sqlite');
    });
  });
}
