import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { UsageRecord } from './ledger.js';
import { NO_CAPS } from './limits.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { caps, record, T0 } from '../../test/metering/ledger-contract.js';
import { failingSqliteFiles, type FailingSqlite } from '../../test/metering/failing-sqlite.js';
import { tempDir } from '../../test/support/temp-dir.js';

/*
 * Usage records the SQLite file refused wait in memory and in a journal beside it
 * (`<path>-unwritten.jsonl`, unwritten-journal.ts): an instance that dies while they wait no
 * longer takes their spend with it; the next one on the file counts and writes them, once. The
 * file refuses writes as in sqlite-ledger-write-failure.test.ts: a trigger a second connection
 * installs aborts every usage insert with SQLite's disk-full text.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

const rig = (): FailingSqlite => sqliteFiles('rp-sqlite-journal-');
const sqliteFiles = failingSqliteFiles();

/** A ledger in a child process that settles `records` while the file refuses them, then waits to be killed. */
async function settleInChildThenKill(path: string, records: UsageRecord[]): Promise<void> {
  const script = `
import { SqliteLedger } from ${JSON.stringify(join(ROOT, 'src/metering/sqlite-ledger.ts'))};
const ledger = new SqliteLedger(${JSON.stringify(path)});
for (const r of ${JSON.stringify(records)}) ledger.settle(null, r);
process.stdout.write(JSON.stringify(ledger.unwritten) + '\\n');
setInterval(() => undefined, 60_000);
`;
  const child = spawn(process.execPath, ['--import', TSX, '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
      });
      void exited.then(() => reject(new Error(`child exited before settling: ${out}`)));
    });
    expect(JSON.parse(line)).toMatchObject({ records: records.length });
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

const reserveOne = (l: SqliteLedger, dayNanos: number) =>
  l.reserve({ tenant: 'acme', id: 'res', amount: { nanos: 1_000_000, tokens: 150 }, caps: caps({ dayNanos }), wallMs: T0, mode: 'worst_case' });

describe('sqlite ledger: unwritten usage records survive the process', () => {
  it('killed with SIGKILL while a record waited: the next instance counts it against the cap, once, and writes it', async () => {
    const r = rig();
    r.fail();
    await settleInChildThenKill(r.path, [record({ ref: 'resp_lost', costNanos: 2_000_000 })]);
    expect(existsSync(r.journal)).toBe(true);
    expect(r.onDisk()).toMatchObject({ nanos: 0, refs: [] });
    r.heal();
    const l = r.ledger();
    expect(l.status('acme', NO_CAPS, T0).day.spent).toEqual({ nanos: 2_000_000, tokens: 150 });
    // 2 M spent + 1 M asked > 2.5 M: the dead instance's spend is on the cap.
    expect(reserveOne(l, 2_500_000)).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', spent: 2_000_000 } });
    expect(r.onDisk()).toMatchObject({ nanos: 2_000_000, refs: ['resp_lost'] });
    expect(existsSync(r.journal)).toBe(false);
    expect(l.readiness()).toBeNull();
  }, 60_000);

  it('a journal replayed twice (the replaying instance died before removing it) counts each record once', async () => {
    const r = rig();
    const first = r.ledger();
    first.settle(null, record({ ref: 'resp_1' }));
    r.fail();
    first.settle(null, record({ ref: 'resp_2' }));
    first.settle(null, record({ ref: 'resp_3' }));
    const journal = readFileSync(r.journal);
    expect(journal.toString().trim().split('\n')).toHaveLength(2);
    r.heal();
    // Written by a later settle; its journal removed. Put back, as a crash before the removal would leave it.
    first.settle(null, record({ ref: 'resp_4' }));
    expect(existsSync(r.journal)).toBe(false);
    await first.close();
    writeFileSync(r.journal, journal);
    const second = r.ledger();
    expect(second.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(4_000_000);
    await second.close();
    writeFileSync(r.journal, journal);
    const third = r.ledger();
    expect(third.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(4_000_000);
    expect(r.onDisk()).toMatchObject({ nanos: 4_000_000, refs: ['resp_1', 'resp_2', 'resp_3', 'resp_4'] });
    expect(existsSync(r.journal)).toBe(false);
  });

  it('records the file still refuses at shutdown are written by the next start', async () => {
    const r = rig();
    const first = r.ledger();
    r.fail();
    first.settle(null, record({ ref: 'resp_1' }));
    first.settle(null, record({ ref: 'resp_2', costNanos: 5 }));
    await first.close();
    expect(r.log.some((m) => m.includes('kept in') && m.includes('next start'))).toBe(true);
    r.heal();
    const second = r.ledger();
    expect(second.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(1_000_005);
    expect(r.onDisk()).toMatchObject({ nanos: 1_000_005, refs: ['resp_1', 'resp_2'] });
  });

  it('a start on a file that still refuses them counts them, keeps the journal, and writes them when it can', async () => {
    const r = rig();
    r.fail();
    const first = r.ledger();
    first.settle(null, record({ ref: 'resp_1' }));
    await first.close();
    const second = r.ledger();
    expect(second.unwritten.records).toBe(1);
    expect(second.readiness()).toMatch(/not written/);
    expect(second.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(1_000_000);
    expect(existsSync(r.journal)).toBe(true);
    r.heal();
    second.settle(null, record({ ref: 'resp_2' }));
    expect(r.onDisk()).toMatchObject({ nanos: 2_000_000, refs: ['resp_1', 'resp_2'] });
    expect(existsSync(r.journal)).toBe(false);
  });

  it('a line torn by a crash during its append is skipped with a log line; the whole ones count', async () => {
    const r = rig();
    const first = r.ledger();
    r.fail();
    first.settle(null, record({ ref: 'resp_1' }));
    first.settle(null, record({ ref: 'resp_2' }));
    await first.close();
    const whole = readFileSync(r.journal, 'utf8');
    const line = whole.slice(0, whole.indexOf('\n'));
    appendFileSync(r.journal, line.slice(0, Math.floor(line.length / 2)));
    r.heal();
    const second = r.ledger();
    expect(second.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(2_000_000);
    expect(r.onDisk().refs).toEqual(['resp_1', 'resp_2']);
    expect(r.log.filter((m) => m.includes('line 3 is not a whole usage record'))).toHaveLength(1);
    expect(existsSync(r.journal)).toBe(false);
  });

  it('never grows past the queue\'s byte bound; written lines make room for newer ones', async () => {
    const r = rig();
    const bound = 1200;
    const l = r.ledger({ unwrittenMaxBytes: bound });
    r.fail();
    const lines = (): string[] => readFileSync(r.journal, 'utf8').trim().split('\n');
    for (const ref of ['resp_1', 'resp_2', 'resp_3', 'resp_4']) {
      l.settle(null, record({ ref }));
      expect(statSync(r.journal).size).toBeLessThanOrEqual(bound);
    }
    // Two lines fit; the others are in memory only, and the log says so once.
    expect(lines().map((s) => (JSON.parse(s) as { record: UsageRecord }).record.ref)).toEqual(['resp_1', 'resp_2']);
    expect(r.log.filter((m) => m.includes('full (1200 bytes)'))).toHaveLength(1);
    expect(l.unwritten.records).toBe(4);
    // The file takes one record (then refuses again): the journal is rewritten from what still waits.
    r.heal();
    r.side.exec(`CREATE TRIGGER second_full BEFORE INSERT ON usage WHEN (SELECT COUNT(*) FROM usage) >= 1 BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`);
    l.settle(null, record({ ref: 'resp_5' }));
    expect(r.onDisk().refs).toEqual(['resp_1']);
    expect(statSync(r.journal).size).toBeLessThanOrEqual(bound);
    expect(lines().map((s) => (JSON.parse(s) as { record: UsageRecord }).record.ref)).toEqual(['resp_2', 'resp_3']);
    await l.close();
    expect(r.log.filter((m) => m.includes('holds only some of them'))).toHaveLength(1);
  });

  it('a journal that cannot be written is said once; the records still wait in memory and are written', () => {
    const r = rig();
    const l = r.ledger();
    mkdirSync(r.journal);
    r.fail();
    l.settle(null, record({ ref: 'resp_1' }));
    l.settle(null, record({ ref: 'resp_2' }));
    expect(r.log.filter((m) => m.includes('could not be kept on disk'))).toHaveLength(1);
    expect(l.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(2_000_000);
    rmdirSync(r.journal);
    // Back: the next try writes the journal whole.
    l.settle(null, record({ ref: 'resp_3' }));
    expect(readFileSync(r.journal, 'utf8').trim().split('\n')).toHaveLength(3);
    r.heal();
    l.settle(null, record({ ref: 'resp_4' }));
    expect(r.onDisk().refs).toEqual(['resp_1', 'resp_2', 'resp_3', 'resp_4']);
    expect(existsSync(r.journal)).toBe(false);
  });

  it('opens a file made before the record id column, which an older version can still write', async () => {
    const path = join(tempDir('rp-sqlite-journal-old-'), 'm.sqlite');
    const old = new Database(path);
    old.exec('CREATE TABLE usage (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, tenant TEXT NOT NULL, session TEXT NOT NULL, source TEXT NOT NULL, ref TEXT NOT NULL, model TEXT NOT NULL, cost_nanos INTEGER NOT NULL, total_tokens INTEGER NOT NULL, json TEXT NOT NULL)');
    old.close();
    const l = new SqliteLedger(path);
    const db = new Database(path);
    try {
      l.settle(null, record({ ref: 'resp_1' }));
      db.prepare("INSERT INTO usage (ts, tenant, session, source, ref, model, cost_nanos, total_tokens, json) VALUES (1, 'acme', 's', 'response', 'older', 'm', 1, 1, '{}')").run();
      expect((db.prepare('SELECT ref, record_id FROM usage ORDER BY id').all() as Array<{ ref: string; record_id: string | null }>)).toEqual([
        { ref: 'resp_1', record_id: null },
        { ref: 'older', record_id: null },
      ]);
    } finally {
      db.close();
      await l.close();
    }
  });
});
