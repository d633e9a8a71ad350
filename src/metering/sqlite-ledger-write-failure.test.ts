import { describe, expect, it, vi } from 'vitest';
import { NO_CAPS } from './limits.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { caps, record, T0 } from '../../test/metering/ledger-contract.js';
import { failingSqliteFiles, type FailingSqlite } from '../../test/metering/failing-sqlite.js';

/*
 * A settle whose write fails must fail closed (sqlite-ledger.ts): counted in memory, its reservation
 * released, the record kept and written once the file takes writes again. The failure is real: a
 * second connection on the file installs a trigger that aborts every usage insert (with the text
 * SQLite gives a full disk), so the ledger's own transaction fails and rolls back as it would on a
 * full disk; dropping the trigger is the disk freed. Deterministic, and unaffected by running as root
 * (file modes are not).
 */

const sqliteFiles = failingSqliteFiles();

/** A file that refuses writes on demand and a ledger already open on it. */
function rig(options: { unwrittenMaxBytes?: number } = {}): Rig {
  const files = sqliteFiles('rp-sqlite-fail-');
  return { ...files, ledger: files.ledger(options), another: () => files.ledger() };
}

type Rig = Omit<FailingSqlite, 'ledger'> & {
  readonly ledger: SqliteLedger;
  /** Another ledger on the file (a restart). */
  another(): SqliteLedger;
};

const reserveOne = (l: SqliteLedger, id: string, dayNanos: number | null = null) =>
  l.reserve({ tenant: 'acme', id, amount: { nanos: 1_000_000, tokens: 150 }, caps: caps({ dayNanos }), wallMs: T0, mode: 'worst_case' });

describe('sqlite ledger: a settle the file refuses', () => {
  it('counts against the cap, releases its reservation, and makes the ledger not ready', () => {
    const r = rig();
    const l = r.ledger;
    l.settle(null, record({ ref: 'resp_1' }));
    r.fail();
    expect(reserveOne(l, 'res_2', 2_500_000)).toEqual({ kind: 'ok' });
    // Does not throw: the caller's response.done goes on, and the cost is known.
    l.settle('res_2', record({ ref: 'resp_2' }));
    expect(l.unwritten.records).toBe(1);
    expect(r.onDisk().nanos).toBe(1_000_000);
    const s = l.status('acme', NO_CAPS, T0);
    expect(s.day.spent).toEqual({ nanos: 2_000_000, tokens: 300 });
    expect(s.month.spent).toEqual({ nanos: 2_000_000, tokens: 300 });
    expect(s.day.reserved).toEqual({ nanos: 0, tokens: 0 });
    // 2 M spent (1 M of it unwritten) + 1 M asked > 2.5 M: refused on what the file does not hold yet.
    const refused = reserveOne(l, 'res_3', 2_500_000);
    expect(refused).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', spent: 2_000_000 } });
    expect(l.readiness()).toMatch(/not written/);
    expect(r.log.some((m) => m.includes('database or disk is full'))).toBe(true);
  });

  it('writes the kept records in order at the next settle once the file takes writes again', async () => {
    const r = rig();
    const l = r.ledger;
    l.settle(null, record({ ref: 'resp_1' }));
    r.fail();
    l.settle(null, record({ ref: 'resp_2' }));
    l.settle(null, record({ ref: 'resp_3', costNanos: 7, totalTokens: 3 }));
    expect(l.unwritten.records).toBe(2);
    expect(r.onDisk().refs).toEqual(['resp_1']);
    r.heal();
    l.settle(null, record({ ref: 'resp_4' }));
    expect(l.unwritten).toEqual({ records: 0, bytes: 0 });
    expect(l.readiness()).toBeNull();
    const disk = r.onDisk();
    expect(disk.refs).toEqual(['resp_1', 'resp_2', 'resp_3', 'resp_4']);
    expect({ nanos: disk.nanos, tokens: disk.tokens }).toEqual({ nanos: 3_000_007, tokens: 453 });
    expect(l.status('acme', NO_CAPS, T0).day.spent).toEqual({ nanos: 3_000_007, tokens: 453 });
    // A reopened file holds the same totals as memory did.
    await l.close();
    const again = r.another();
    expect(again.status('acme', NO_CAPS, T0).day.spent).toEqual({ nanos: 3_000_007, tokens: 453 });
    expect(again.status('acme', NO_CAPS, T0).month.spent).toEqual({ nanos: 3_000_007, tokens: 453 });
  });

  it('writes them without another settle: a retry timer', async () => {
    const r = rig();
    const l = r.ledger;
    r.fail();
    l.settle(null, record({ ref: 'resp_1' }));
    l.settle(null, record({ ref: 'resp_2' }));
    r.heal();
    await vi.waitFor(() => expect(l.unwritten.records).toBe(0), { timeout: 10_000, interval: 20 });
    expect(l.readiness()).toBeNull();
    expect(r.onDisk()).toEqual({ nanos: 2_000_000, tokens: 300, refs: ['resp_1', 'resp_2'] });
    expect(r.log.some((m) => m.includes('2 usage records written'))).toBe(true);
  });

  it('counts the unwritten spend of a tenant whose totals could not be read when it settled (a cold cache)', async () => {
    const r = rig();
    const l = r.ledger;
    const other = new SqliteLedger(r.path);
    other.settle(null, record({ tenant: 'beta', ref: 'earlier' }));
    await other.close();
    // Neither read nor write: the totals table is gone (as an unreadable page would make it).
    r.side.exec('ALTER TABLE spend RENAME TO spend_away');
    l.settle(null, record({ tenant: 'beta', ref: 'resp_1' }));
    expect(l.unwritten.records).toBe(1);
    expect(() => l.status('beta', NO_CAPS, T0)).toThrow();
    r.side.exec('ALTER TABLE spend_away RENAME TO spend');
    // Read before the record is written (the retry timer cannot run in between): the file's 1 M and the kept 1 M.
    expect(l.status('beta', NO_CAPS, T0).day.spent.nanos).toBe(2_000_000);
    l.settle(null, record({ tenant: 'beta', ref: 'resp_2' }));
    expect(l.unwritten.records).toBe(0);
    expect(l.status('beta', NO_CAPS, T0).day.spent.nanos).toBe(3_000_000);
    expect(r.onDisk('beta')).toEqual({ nanos: 3_000_000, tokens: 450, refs: ['earlier', 'resp_1', 'resp_2'] });
  });

  it('past its byte bound refuses new reservations (fail closed) and drops nothing', () => {
    const r = rig({ unwrittenMaxBytes: 600 });
    const l = r.ledger;
    r.fail();
    l.settle(null, record({ ref: 'resp_1' }));
    expect(l.unwritten.bytes).toBeLessThan(600);
    expect(reserveOne(l, 'res_a')).toEqual({ kind: 'ok' });
    l.release('acme', 'res_a');
    l.settle(null, record({ ref: 'resp_2' }));
    expect(l.unwritten.bytes).toBeGreaterThanOrEqual(600);
    expect(reserveOne(l, 'res_b')).toMatchObject({ kind: 'unavailable' });
    // Records of what was already granted are still kept, beyond the bound.
    l.settle(null, record({ ref: 'resp_3' }));
    expect(l.unwritten.records).toBe(3);
    expect(r.log.some((m) => m.includes('new reservations refused'))).toBe(true);
    r.heal();
    l.settle(null, record({ ref: 'resp_4' }));
    expect(reserveOne(l, 'res_c')).toEqual({ kind: 'ok' });
    expect(r.onDisk().refs).toEqual(['resp_1', 'resp_2', 'resp_3', 'resp_4']);
  });

  it('a reset of a period with unwritten records is refused (they would count again after it)', () => {
    const r = rig();
    const l = r.ledger;
    r.fail();
    l.settle(null, record({ ref: 'resp_1' }));
    expect(() => l.resetSpend('acme', 'day', T0)).toThrow(/not written/);
    r.heal();
    l.resetSpend('acme', 'day', T0);
    expect(l.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(0);
    expect(r.onDisk()).toMatchObject({ nanos: 0, refs: ['resp_1'] });
  });

  it('a close with records the file still refuses logs each of them whole', async () => {
    const r = rig();
    r.fail();
    r.ledger.settle(null, record({ ref: 'resp_lost' }));
    await r.ledger.close();
    expect(r.log.filter((m) => m.startsWith('usage record not written at shutdown') && m.includes('"ref":"resp_lost"'))).toHaveLength(1);
  });
});

describe('sqlite ledger: admin changes whose audit row the file refuses', () => {
  const failAudit = (r: Rig): void => {
    r.side.exec(`CREATE TRIGGER audit_full BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
  };

  it('a cap override is not taken, on disk or in memory, when its audit row cannot be written', () => {
    const r = rig();
    failAudit(r);
    expect(() => r.ledger.setOverride('acme', 'day', { nanos: 5, tokens: null })).toThrow(/disk is full/);
    expect(r.ledger.status('acme', NO_CAPS, T0).day.override).toEqual({ nanos: null, tokens: null });
    expect(r.side.prepare('SELECT COUNT(*) AS n FROM cap_override').get()).toEqual({ n: 0 });
  });

  it('a spend reset is not taken, on disk or in memory, when its audit row cannot be written', () => {
    const r = rig();
    r.ledger.settle(null, record({ ref: 'resp_1' }));
    const before = r.ledger.status('acme', NO_CAPS, T0).day.spent;
    expect(before.nanos).toBeGreaterThan(0);
    failAudit(r);
    expect(() => r.ledger.resetSpend('acme', 'day', T0)).toThrow(/disk is full/);
    expect(r.ledger.status('acme', NO_CAPS, T0).day.spent).toEqual(before);
    expect(r.onDisk().nanos).toBe(before.nanos);
  });
});
