import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { UsageRecord } from './ledger.js';
import { NO_CAPS, resolveLimits, validatePlans, type CapSet } from './limits.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { nextUtcMidnight, recentNoon } from '../../test/support/clock.js';

const T0 = recentNoon();
const NEXT_DAY = nextUtcMidnight(T0);
const caps = (c: Partial<CapSet>): CapSet => ({ ...NO_CAPS, ...c });

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

const open: SqliteLedger[] = [];
function ledger(path = ':memory:'): SqliteLedger {
  const l = new SqliteLedger(path);
  open.push(l);
  return l;
}

afterEach(async () => {
  for (const l of open.splice(0)) await l.close();
});

describe('sqlite ledger', () => {
  it('settles into the day and month of the record and keeps the usage row', () => {
    const l = ledger();
    l.settle(null, record());
    l.settle(null, record({ ref: 'resp_2', costNanos: 2_500, totalTokens: 10 }));
    l.settle(null, record({ ref: 'resp_3', ts: NEXT_DAY + 3_600_000 }));
    const s = l.status('acme', NO_CAPS, T0);
    expect(s.day.spent).toEqual({ nanos: 1_002_500, tokens: 160 });
    expect(s.month.spent).toEqual({ nanos: 2_002_500, tokens: 310 });
    expect(l.status('acme', NO_CAPS, NEXT_DAY + 7_200_000).day.spent.nanos).toBe(1_000_000);
    expect(l.usage('acme', 0, 10).map((r) => r.ref)).toEqual(['resp_1', 'resp_2', 'resp_3']);
    expect(l.usage(null, NEXT_DAY, 10).map((r) => r.ref)).toEqual(['resp_3']);
    expect(l.usage('other', 0, 10)).toEqual([]);
  });

  it('grants while budget remains, counts reservations, refuses at the cap (remaining mode)', () => {
    const l = ledger();
    const c = caps({ dayNanos: 10_000_000 });
    const req = (id: string, nanos: number) => ({ tenant: 'acme', id, amount: { nanos, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' as const });
    expect(l.reserve(req('r1', 9_000_000)).kind).toBe('ok');
    // 0 spent + 9 reserved < 10: still granted, the overshoot is bounded by one response.
    expect(l.reserve(req('r2', 9_000_000)).kind).toBe('ok');
    const over = l.reserve(req('r3', 1));
    expect(over).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', limit: 10_000_000, spent: 0, reserved: 18_000_000 } });
    l.release('acme', 'r2');
    l.settle('r1', record({ costNanos: 3_000_000 }));
    expect(l.status('acme', c, T0).day.reserved).toEqual({ nanos: 0, tokens: 0 });
    expect(l.reserve(req('r4', 9_000_000)).kind).toBe('ok');
  });

  it('worst_case mode grants only what fits; token caps work the same way', () => {
    const l = ledger();
    const c = caps({ monthNanos: 10_000_000, dayTokens: 1000 });
    const req = (id: string, nanos: number, tokens: number) => ({ tenant: 'acme', id, amount: { nanos, tokens }, caps: c, wallMs: T0, mode: 'worst_case' as const });
    expect(l.reserve(req('a', 10_000_000, 10)).kind).toBe('ok');
    l.release('acme', 'a');
    expect(l.reserve(req('b', 10_000_001, 10))).toMatchObject({ kind: 'over', hit: { cap: 'monthly_usd' } });
    expect(l.reserve(req('c', 1, 1001))).toMatchObject({ kind: 'over', hit: { cap: 'daily_tokens', limit: 1000 } });
  });

  it('runtime overrides replace the configured cap until cleared; reset zeroes the period', () => {
    const l = ledger();
    const c = caps({ dayNanos: 1_000_000 });
    l.settle(null, record({ costNanos: 1_000_000 }));
    expect(l.reserve({ tenant: 'acme', id: 'x', amount: { nanos: 1, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' }).kind).toBe('over');
    l.setOverride('acme', 'day', { nanos: 5_000_000 });
    expect(l.status('acme', c, T0).day).toMatchObject({ capNanos: 5_000_000, override: { nanos: 5_000_000, tokens: null } });
    expect(l.reserve({ tenant: 'acme', id: 'y', amount: { nanos: 1, tokens: 0 }, caps: c, wallMs: T0, mode: 'remaining' }).kind).toBe('ok');
    l.setOverride('acme', 'day', { nanos: null });
    expect(l.status('acme', c, T0).day.capNanos).toBe(1_000_000);
    l.resetSpend('acme', 'day', T0);
    expect(l.status('acme', c, T0).day.spent.nanos).toBe(0);
    expect(l.status('acme', c, T0).month.spent.nanos).toBe(1_000_000);
  });

  it('keeps spend, overrides and usage across reopen (the file is the truth)', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'rp-ledger-')), 'nested', 'm.sqlite');
    const a = new SqliteLedger(path);
    a.settle(null, record());
    a.setOverride('acme', 'month', { tokens: 42 });
    // No close: a kill -9 does not close either (the WAL holds the committed transactions).
    const b = ledger(path);
    expect(b.status('acme', NO_CAPS, T0).day.spent).toEqual({ nanos: 1_000_000, tokens: 150 });
    expect(b.status('acme', NO_CAPS, T0).month.capTokens).toBe(42);
    expect(b.usage('acme', 0, 5)).toHaveLength(1);
    void a.close();
  });

  it('hands out concurrent-session slots up to the limit', () => {
    const l = ledger();
    expect(l.acquireSlot('acme', 's1', 2)).toBe(true);
    expect(l.acquireSlot('acme', 's2', 2)).toBe(true);
    expect(l.acquireSlot('acme', 's3', 2)).toBe(false);
    expect(l.acquireSlot('other', 's4', 2)).toBe(true);
    l.releaseSlot('acme', 's1');
    expect(l.acquireSlot('acme', 's3', 2)).toBe(true);
  });
});

describe('limits', () => {
  const metering = {
    plans: { starter: { dailyUsd: '5', monthlyUsd: 100, maxConcurrentSessions: 2, maxResponseOutputTokens: 1024 } },
    defaultPlan: null,
  };

  it('merges the tenant over its plan; null removes a plan limit', () => {
    const l = resolveLimits({ id: 'a', plan: 'starter', limits: { dailyUsd: '0.25', maxConcurrentSessions: null } }, metering);
    expect(l.caps).toEqual({ dayNanos: 250_000_000, monthNanos: 100_000_000_000, dayTokens: null, monthTokens: null });
    expect(l.maxConcurrentSessions).toBeNull();
    expect(l.maxResponseOutputTokens).toBe(1024);
  });

  it('applies the default plan and rejects unknown plans', () => {
    expect(resolveLimits({ id: 'a', plan: null, limits: null }, { ...metering, defaultPlan: 'starter' }).caps.dayNanos).toBe(5_000_000_000);
    expect(resolveLimits({ id: 'a', plan: null, limits: null }, metering).caps).toEqual(NO_CAPS);
    expect(() => resolveLimits({ id: 'a', plan: 'gold', limits: null }, metering)).toThrow(/plan "gold"/);
    expect(() => validatePlans({ plans: {}, defaultPlan: 'x' })).toThrow(/defaultPlan/);
    expect(() => validatePlans({ plans: { p: { dailyUsd: '0.0000000001' } }, defaultPlan: null })).toThrow(/metering.plans.p.dailyUsd/);
  });
});
