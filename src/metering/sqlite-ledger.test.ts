import { copyFileSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NO_CAPS, resolveLimits, validatePlans } from './limits.js';
import { dayPeriod } from './periods.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { background } from '../background/thread.js';
import { caps, record, T0 } from '../../test/metering/ledger-contract.js';
import { tempDir } from '../../test/support/temp-dir.js';


const open: SqliteLedger[] = [];
function ledger(path = ':memory:'): SqliteLedger {
  const l = new SqliteLedger(path);
  open.push(l);
  return l;
}

afterEach(async () => {
  for (const l of open.splice(0)) await l.close();
});

describe('sqlite ledger (backend-specific; the shared contract is test/metering/ledger-contract-sqlite.test.ts)', () => {
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
    expect(l.usagePage('acme', 0, 10).records.map((r) => r.ref)).toEqual(['new']);
    expect(l.status('acme', NO_CAPS, old).month.spent.nanos).toBe(oldMonth);
    expect(l.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(1_000_000);
  });

  it('prunes on open when a retention is configured', async () => {
    const path = join(tempDir('rp-retention-'), 'm.sqlite');
    const a = new SqliteLedger(path);
    a.settle(null, record({ ref: 'ancient', ts: T0 - 400 * 86_400_000 }));
    a.settle(null, record({ ref: 'recent' }));
    await a.close();
    const b = new SqliteLedger(path, { retentionDays: 90, wall: () => T0 });
    open.push(b);
    const deadline = Date.now() + 2000;
    while (b.usagePage('acme', 0, 10).records.length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(b.usagePage('acme', 0, 10).records.map((r) => r.ref)).toEqual(['recent']);
  });

  it('reservations are in memory: a reopened file has spend but no reservations', () => {
    const path = join(tempDir('rp-ledger-'), 'nested', 'm.sqlite');
    const a = ledger(path);
    a.reserve({ tenant: 'acme', id: 'r', amount: { nanos: 5, tokens: 5 }, caps: caps({ dayNanos: 100 }), wallMs: T0, mode: 'remaining' });
    a.settle(null, record());
    const b = ledger(path);
    expect(b.status('acme', NO_CAPS, T0).day).toMatchObject({ spent: { nanos: 1_000_000 }, reserved: { nanos: 0 } });
  });
});

const tempFile = (name = 'm.sqlite') => join(tempDir('rp-sqlite-'), name);

/** More than 1000 WAL pages (4 KiB each) of usage rows (few rows, large ones: fast). */
function writeBulk(l: SqliteLedger, rows = 45): void {
  const model = 'm'.repeat(60_000);
  for (let i = 0; i < rows; i++) l.settle(null, record({ ref: `bulk${i}`, model, costNanos: 1, totalTokens: 1 }));
}

describe('sqlite ledger: the file on disk', () => {
  it('a checkpoint worker folds the write-ahead log into the file while the ledger runs', async () => {
    const path = tempFile();
    const errors: string[] = [];
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10, onError: (m) => errors.push(m) });
    open.push(l);
    const before = statSync(path).size;
    for (let i = 0; i < 200; i++) l.settle(null, record({ ref: `r${i}` }));
    await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(before), { timeout: 10_000, interval: 20 });
    expect(errors).toEqual([]);
  });

  it('after a clean close the .sqlite file alone (a backup copy) holds every record and total', async () => {
    const path = tempFile();
    // A long interval: only the shutdown checkpoint can have folded the log in.
    const l = new SqliteLedger(path, { checkpointIntervalMs: 3_600_000 });
    for (let i = 0; i < 20; i++) l.settle(null, record({ ref: `r${i}` }));
    await l.close();
    expect(l.readiness()).toBe('ledger closed');
    await l.close(); // twice is harmless
    expect(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0).toBe(0);
    const copy = tempFile('copy.sqlite');
    copyFileSync(path, copy);
    const reopened = ledger(copy);
    expect(reopened.usagePage('acme', 0, 100).records).toHaveLength(20);
    expect(reopened.status('acme', NO_CAPS, T0).day.spent).toEqual({ nanos: 20_000_000, tokens: 3000 });
  });

  it('a checkpoint worker that cannot open the file is reported, and the ledger keeps working', async () => {
    const dir = tempDir('rp-sqlite-');
    const path = join(dir, 'm.sqlite');
    const errors: string[] = [];
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10, onError: (m) => errors.push(m) });
    open.push(l);
    // Before the worker opens its own connection, the path stops being a database file; the first
    // settle starts the job.
    renameSync(path, join(dir, 'moved.sqlite'));
    mkdirSync(path);
    l.settle(null, record({ ref: 'starts-the-job' }));
    await vi.waitFor(() => expect(errors).toEqual([expect.stringMatching(/^checkpoint worker: .+/)]), { timeout: 10_000, interval: 20 });
    l.settle(null, record());
    expect(l.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(2_000_000);
    // Without its worker the ledger checkpoints by itself, so the log stays bounded: writing more
    // than 1000 pages (SQLite's auto-checkpoint) folds it into the file (here, the moved one).
    const moved = statSync(join(dir, 'moved.sqlite')).size;
    writeBulk(l);
    expect(statSync(join(dir, 'moved.sqlite')).size).toBeGreaterThan(moved);
    // Reported without an onError too (no throw from the worker's error handler).
    const dir2 = tempDir('rp-sqlite-');
    const quiet = new SqliteLedger(join(dir2, 'q.sqlite'), { checkpointIntervalMs: 10 });
    open.push(quiet);
    renameSync(join(dir2, 'q.sqlite'), join(dir2, 'moved.sqlite'));
    mkdirSync(join(dir2, 'q.sqlite'));
    quiet.settle(null, record());
    const q2 = statSync(join(dir2, 'moved.sqlite')).size;
    await vi.waitFor(() => {
      writeBulk(quiet, 10);
      expect(statSync(join(dir2, 'moved.sqlite')).size).toBeGreaterThan(q2);
    }, { timeout: 10_000, interval: 50 });
  });

  it('a clean close while the checkpoint job holds its own connection folds the log into the file and ends the job', async () => {
    const path = tempFile();
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10 });
    for (let i = 0; i < 20; i++) l.settle(null, record({ ref: `a${i}` }));
    // The job opens its connection at its first checkpoint: wait until that one has run.
    const before = statSync(path).size;
    await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(before), { timeout: 10_000, interval: 20 });
    for (let i = 0; i < 20; i++) l.settle(null, record({ ref: `b${i}` }));
    expect(background.jobs).toBe(1);
    await l.close();
    expect(background.jobs).toBe(0);
    expect(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0).toBe(0);
  });

  it('the checkpoint job starts with the first write: a ledger that settled nothing holds no background thread', async () => {
    const path = tempFile();
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10 });
    open.push(l);
    // Reads (status, usage) are not writes.
    l.status('acme', NO_CAPS, T0);
    l.usagePage(null, 0, 10);
    expect(background.running).toBe(false);
    l.settle(null, record());
    expect(background.jobs).toBe(1);
    await l.close();
    expect(background.jobs).toBe(0);
    // A ledger closed before any write checkpoints nothing and starts nothing.
    const idle = new SqliteLedger(tempFile());
    await idle.close();
    expect(background.running).toBe(false);
  });

  it.each([
    ['an override', (l: SqliteLedger) => l.setOverride('acme', 'day', { nanos: 1 })],
    ['a reset', (l: SqliteLedger) => l.resetSpend('acme', 'day', T0)],
  ])('%s is a write: it starts the checkpoint job', async (_name, write) => {
    const l = new SqliteLedger(tempFile(), { checkpointIntervalMs: 10 });
    open.push(l);
    write(l);
    expect(background.jobs).toBe(1);
    await l.close();
    expect(background.jobs).toBe(0);
  });

  it('an in-memory ledger has no checkpoint job: settles, overrides, resets and prunes work without one', () => {
    const l = new SqliteLedger(':memory:');
    open.push(l);
    l.settle(null, record({ ref: 'old', ts: T0 - 100 * 86_400_000 }));
    l.setOverride('acme', 'day', { nanos: 5 });
    l.resetSpend('acme', 'day', T0);
    expect(l.pruneUsage(T0 - 90 * 86_400_000)).toBe(1);
    expect(background.running).toBe(false);
  });

  it('a prune that deletes rows is a write and starts the checkpoint job; one that deletes nothing is not', async () => {
    const path = tempFile();
    const seed = new SqliteLedger(path);
    seed.settle(null, record({ ref: 'old', ts: T0 - 100 * 86_400_000 }));
    await seed.close();
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10 });
    open.push(l);
    expect(l.pruneUsage(T0 - 200 * 86_400_000)).toBe(0);
    expect(background.running).toBe(false);
    expect(l.pruneUsage(T0 - 90 * 86_400_000)).toBe(1);
    expect(background.jobs).toBe(1);
  });

  it('a background thread that dies is reported, and the ledger checkpoints by itself from then on', async () => {
    const dir = tempDir('rp-sqlite-');
    const path = join(dir, 'm.sqlite');
    const errors: string[] = [];
    const l = new SqliteLedger(path, { checkpointIntervalMs: 10, onError: (m) => errors.push(m) });
    open.push(l);
    l.settle(null, record());
    await background.kill();
    await vi.waitFor(() => expect(errors).toEqual(['checkpoint worker: the background thread exited']), { timeout: 10_000, interval: 20 });
    const size = statSync(path).size;
    writeBulk(l);
    expect(statSync(path).size).toBeGreaterThan(size);
    expect(l.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(1_000_000 + 45);
  });

  it('the event loop never checkpoints: with the worker idle, the log grows past SQLite\'s auto-checkpoint size', () => {
    const path = tempFile();
    const l = new SqliteLedger(path, { checkpointIntervalMs: 3_600_000 });
    open.push(l);
    const before = statSync(path).size;
    writeBulk(l);
    expect(statSync(path).size).toBe(before);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(4096 * 1000);
  });

  it('runtime overrides and resets leave an audit trail in the file (what changed, and the totals a reset discarded)', async () => {
    const path = tempFile();
    const l = new SqliteLedger(path);
    l.settle(null, record({ costNanos: 4_000, totalTokens: 40 }));
    l.setOverride('acme', 'day', { nanos: 5_000_000 });
    l.setOverride('acme', 'day', { tokens: 9 });
    l.resetSpend('acme', 'day', T0);
    await l.close();
    const db = new Database(path, { readonly: true });
    try {
      const rows = db.prepare('SELECT tenant, action, detail FROM audit ORDER BY id').all() as Array<{ tenant: string; action: string; detail: string }>;
      expect(rows.map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }))).toEqual([
        { tenant: 'acme', action: 'set_override', detail: { kind: 'day', nanos: 5_000_000, tokens: null } },
        { tenant: 'acme', action: 'set_override', detail: { kind: 'day', nanos: 5_000_000, tokens: 9 } },
        { tenant: 'acme', action: 'reset_spend', detail: { period: dayPeriod(T0).key, nanos: 4_000, tokens: 40 } },
      ]);
    } finally {
      db.close();
    }
  });

  it('retention works through a backlog larger than one batch; without retention nothing is deleted', async () => {
    const path = tempFile();
    const keep = tempFile();
    for (const p of [path, keep]) {
      const seed = new SqliteLedger(p);
      // A day old: well inside a 90-day retention.
      seed.settle(null, record({ ref: 'recent', ts: T0 - 86_400_000 }));
      await seed.close();
      // 5,001 old rows, written in one transaction: more than one prune batch (5,000).
      const db = new Database(p);
      const insert = db.prepare("INSERT INTO usage (ts, tenant, session, source, ref, model, cost_nanos, total_tokens, json) VALUES (?, 'acme', 's', 'response', ?, 'm', 1, 1, ?)");
      db.transaction(() => {
        for (let i = 0; i < 5001; i++) insert.run(T0 - 400 * 86_400_000 + i, `old${i}`, '{}');
      })();
      db.close();
    }
    // null, as the config passes "no retention".
    const kept = new SqliteLedger(keep, { retentionDays: null, wall: () => T0 });
    open.push(kept);
    const pruned = new SqliteLedger(path, { retentionDays: 90, wall: () => T0 });
    open.push(pruned);
    await vi.waitFor(() => expect(pruned.usagePage('acme', 0, 10_000).records.map((r) => r.ref)).toEqual(['recent']), { timeout: 10_000, interval: 20 });
    // The retained ledger's first prune ran after the unretained one was opened: that one deleted nothing.
    expect(kept.usagePage('acme', 0, 10_000).records).toHaveLength(5002);
  });

  it('opens an existing file with its overrides; a cleared override reopens as none', async () => {
    const path = tempFile();
    const a = new SqliteLedger(path);
    a.setOverride('acme', 'day', { nanos: 1, tokens: 2 });
    a.setOverride('acme', 'month', { nanos: 3 });
    a.setOverride('acme', 'month', { nanos: null });
    a.setOverride('beta', 'month', { tokens: 4 });
    await a.close();
    const b = ledger(path);
    const c = caps({ monthNanos: 30 });
    expect(b.status('acme', c, T0).day.override).toEqual({ nanos: 1, tokens: 2 });
    expect(b.status('acme', c, T0).month).toMatchObject({ override: { nanos: null, tokens: null }, capNanos: 30 });
    expect(b.status('beta', c, T0).month.override).toEqual({ nanos: null, tokens: 4 });
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
