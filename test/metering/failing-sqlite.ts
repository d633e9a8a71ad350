import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach } from 'vitest';
import { dayPeriod } from '../../src/metering/periods.js';
import { SqliteLedger } from '../../src/metering/sqlite-ledger.js';
import { T0 } from './ledger-contract.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * A SQLite ledger file that refuses writes on demand, as a full disk does: a second connection on
 * the file installs a trigger that aborts every usage insert with SQLite's disk-full text, so the
 * ledger's own transaction fails and rolls back; dropping the trigger is the disk freed.
 * Deterministic, and unaffected by running as root (file modes are not).
 */

export interface FailingSqlite {
  readonly path: string;
  /** Where the ledger journals the records the file refused (unwritten-journal.ts). */
  readonly journal: string;
  /** What the ledgers on this file reported (`onError`). */
  readonly log: string[];
  /** The second connection on the file. */
  readonly side: Database.Database;
  /** A new ledger on the file (closed after the test). */
  ledger(options?: { unwrittenMaxBytes?: number }): SqliteLedger;
  /** The file refuses every usage insert from now on. */
  fail(): void;
  /** It takes them again. */
  heal(): void;
  /** What the file holds: a tenant's day total (at T0) and its usage refs in insertion order. */
  onDisk(tenant?: string): { nanos: number; tokens: number; refs: string[] };
}

/** Registers the cleanup of the files a test file makes; call at its top level. Returns the maker. */
export function failingSqliteFiles(): (dirPrefix: string) => FailingSqlite {
  const ledgers: SqliteLedger[] = [];
  const sides: Database.Database[] = [];
  afterEach(async () => {
    for (const l of ledgers.splice(0)) await l.close();
    for (const db of sides.splice(0)) db.close();
  });
  return (dirPrefix) => {
    const path = join(tempDir(dirPrefix), 'm.sqlite');
    const log: string[] = [];
    // Creates the tables the side connection's trigger needs.
    void new SqliteLedger(path).close();
    const db = new Database(path);
    sides.push(db);
    const day = dayPeriod(T0).key;
    return {
      path,
      journal: `${path}-unwritten.jsonl`,
      log,
      side: db,
      ledger(options = {}) {
        const l = new SqliteLedger(path, { onError: (m) => log.push(m), ...options });
        ledgers.push(l);
        return l;
      },
      fail: () => db.exec(`CREATE TRIGGER disk_full BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`),
      heal: () => db.exec('DROP TRIGGER disk_full'),
      onDisk(tenant = 'acme') {
        const spend = db.prepare('SELECT nanos, tokens FROM spend WHERE tenant = ? AND period = ?').get(tenant, day) as { nanos: number; tokens: number } | undefined;
        const refs = (db.prepare('SELECT ref FROM usage WHERE tenant = ? ORDER BY id').all(tenant) as Array<{ ref: string }>).map((r) => r.ref);
        return { nanos: spend?.nanos ?? 0, tokens: spend?.tokens ?? 0, refs };
      },
    };
  };
}
