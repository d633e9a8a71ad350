import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NO_CAPS, resolveLimits, validatePlans } from './limits.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { caps, record, T0 } from '../../test/metering/ledger-contract.js';


const open: SqliteLedger[] = [];
function ledger(path = ':memory:'): SqliteLedger {
  const l = new SqliteLedger(path);
  open.push(l);
  return l;
}

afterEach(async () => {
  for (const l of open.splice(0)) await l.close();
});

describe('sqlite ledger (backend-specific; the shared contract is test/metering/ledger-contract.test.ts)', () => {
  it('retention deletes old usage rows in batches and keeps the period totals', () => {
    const l = ledger();
    const old = T0 - 100 * 86_400_000;
    for (let i = 0; i < 5; i++) l.settle(null, record({ ref: `old_${i}`, ts: old + i }));
    l.settle(null, record({ ref: 'new' }));
    const oldMonth = l.status('acme', NO_CAPS, old).month.spent.nanos;
    expect(oldMonth).toBe(5_000_000);
    expect(l.pruneUsage(T0 - 90 * 86_400_000, 3)).toBe(3);
    expect(l.pruneUsage(T0 - 90 * 86_400_000, 3)).toBe(2);
    expect(l.pruneUsage(T0 - 90 * 86_400_000, 3)).toBe(0);
    expect(l.usage('acme', 0, 10).map((r) => r.ref)).toEqual(['new']);
    expect(l.status('acme', NO_CAPS, old).month.spent.nanos).toBe(oldMonth);
    expect(l.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(1_000_000);
  });

  it('prunes on open when a retention is configured', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'rp-retention-')), 'm.sqlite');
    const a = new SqliteLedger(path);
    a.settle(null, record({ ref: 'ancient', ts: T0 - 400 * 86_400_000 }));
    a.settle(null, record({ ref: 'recent' }));
    await a.close();
    const b = new SqliteLedger(path, { retentionDays: 90, wall: () => T0 });
    open.push(b);
    const deadline = Date.now() + 2000;
    while (b.usage('acme', 0, 10).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(b.usage('acme', 0, 10).map((r) => r.ref)).toEqual(['recent']);
  });

  it('reservations are in memory: a reopened file has spend but no reservations', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'rp-ledger-')), 'nested', 'm.sqlite');
    const a = ledger(path);
    a.reserve({ tenant: 'acme', id: 'r', amount: { nanos: 5, tokens: 5 }, caps: caps({ dayNanos: 100 }), wallMs: T0, mode: 'remaining' });
    a.settle(null, record());
    const b = ledger(path);
    expect(b.status('acme', NO_CAPS, T0).day).toMatchObject({ spent: { nanos: 1_000_000 }, reserved: { nanos: 0 } });
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
