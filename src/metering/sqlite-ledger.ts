import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { BACKGROUND_IDLE_MS } from '../background/idle.js';
import {
  firstHit,
  type Amount,
  type CapOverride,
  type Ledger,
  type OverrideChange,
  type PeriodStatus,
  type ReserveRequest,
  type ReserveResult,
  type TenantStatus,
  type UsageCursor,
  type UsagePage,
  type UsageRecord,
} from './ledger.js';
import type { CapSet } from './limits.js';
import { PeriodClock, periodOf, type Period, type PeriodKind } from './periods.js';
import { UNWRITTEN_MAX_BYTES, UnwrittenJournal, unwrittenJournalPath, type JournalEntry } from './unwritten-journal.js';
import { UnstoredAmounts } from './unstored-amounts.js';
import { WalCheckpoints } from './wal-checkpoints.js';

const ZERO: Amount = Object.freeze({ nanos: 0, tokens: 0 });

const NO_OVERRIDE: CapOverride = Object.freeze({ nanos: null, tokens: null });
/** Retention: usage rows deleted per step (one short transaction), steps one event-loop turn apart. */
const PRUNE_BATCH = 5000;
const PRUNE_INTERVAL_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Retries of unwritten records: the first soon, then doubling up to this. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 10_000;

interface UsageRow {
  id: number;
  ts: number;
  json: string;
}

interface SpendRow {
  nanos: number;
  tokens: number;
}

/** A settled record the file refused (disk full, I/O error, busy): kept, in order, until it takes it. */
interface Unwritten extends JournalEntry {
  readonly day: Period;
  readonly month: Period;
  readonly bytes: number;
}

interface OverrideRow {
  tenant: string;
  kind: string;
  nanos: number | null;
  tokens: number | null;
}

/** Process-local concurrent-session slots (the SQLite ledger serves one instance). */
export class LocalSlots {
  readonly #byTenant = new Map<string, Set<string>>();

  acquire(tenant: string, token: string, max: number): boolean {
    let set = this.#byTenant.get(tenant);
    if (!set) this.#byTenant.set(tenant, (set = new Set()));
    if (set.has(token)) return true;
    if (set.size >= max) return false;
    set.add(token);
    return true;
  }

  release(tenant: string, token: string): void {
    const set = this.#byTenant.get(tenant);
    if (!set) return;
    set.delete(token);
    if (set.size === 0) this.#byTenant.delete(tenant);
  }
}

/**
 * Embedded ledger: one SQLite file in WAL mode. A settle is one small synchronous transaction
 * (the usage row and both period totals), so a settled response survives kill -9. Reservations
 * and session slots are in memory: they belong to responses and sessions of this process, which
 * die with it. Spend totals are cached in memory after first read; the file must not be shared by
 * two running instances (use the Redis ledger for that).
 *
 * A settle whose write fails (disk full, I/O error, SQLITE_BUSY) fails closed: the cost is known,
 * so it counts in the in-memory totals (the caps see it) and the reservation is released as on
 * success; the record waits in a queue bounded in bytes and is written, in order, at the next
 * settle or by a retry timer. While records wait, readiness() is not ready (/readyz drains the
 * instance); past the bound, reserve answers unavailable (no new spend) instead of dropping any.
 */
export class SqliteLedger implements Ledger {
  readonly kind = 'sqlite' as const;
  readonly synchronous = true;
  readonly #db: Database.Database;
  readonly #clock = new PeriodClock();
  readonly #spend = new Map<string, SpendRow>();
  readonly #reservations = new Map<string, Map<string, Amount>>();
  readonly #reserved = new Map<string, Amount>();
  readonly #overrides = new Map<string, CapOverride>();
  readonly #slots = new LocalSlots();
  readonly #stmt: {
    insertUsage: Database.Statement<[number, string, string, string, string, string, number, number, string, string | null]>;
    hasRecordId: Database.Statement<[string], { found: number }>;
    addSpend: Database.Statement<[string, string, number, number]>;
    getSpend: Database.Statement<[string, string], SpendRow>;
    resetSpend: Database.Statement<[string, string]>;
    setOverride: Database.Statement<[string, string, number | null, number | null]>;
    usageAll: Database.Statement<[number, number, number], UsageRow>;
    usageTenant: Database.Statement<[string, number, number, number], UsageRow>;
    usageAllAfter: Database.Statement<[number, number, number], UsageRow>;
    usageTenantAfter: Database.Statement<[string, number, number, number], UsageRow>;
    audit: Database.Statement<[number, string, string, string]>;
  };
  /** Returns the time the record's row was given. */
  readonly #settleTx: (record: UsageRecord, day: Period, month: Period, recordId: string | null) => number;
  /**
   * The newest usage row's time (null: no row), where a late record's row goes. Read once at open:
   * this ledger is the file's only writer, so its committed settles are the only changes to it.
   */
  #newestRowTs: number | null;
  /** The log's checkpoints, off the event loop (none for a database in memory). */
  readonly #checkpoints: WalCheckpoints | null = null;
  readonly #pruneBatch: Database.Statement<[number, number]>;
  readonly #retentionMs: number | null;
  readonly #wall: () => number;
  readonly #onError: (message: string) => void;
  /** Settled records the file has not taken yet, oldest first. */
  readonly #unwritten: Unwritten[] = [];
  /** Their amounts per tenant and period: what a cold read of the file lacks. */
  readonly #unwrittenSum = new UnstoredAmounts();
  readonly #unwrittenMaxBytes: number;
  #unwrittenBytes = 0;
  /** The unwritten records on disk too (none for a database in memory): a crash does not lose them. */
  readonly #journal: UnwrittenJournal | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryDelayMs = RETRY_FIRST_MS;
  /** The last refused write's error, for the log. */
  #lastWriteError = '';
  #pruneTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(
    path: string,
    options: {
      synchronous?: 'normal' | 'full';
      checkpointIntervalMs?: number;
      /** The checkpoint job stops after this long without a write (the next write starts it again). */
      checkpointIdleMs?: number;
      /** Usage rows older than this many days are deleted (hourly, in small batches); spend totals stay. */
      retentionDays?: number | null;
      wall?: () => number;
      onError?: (message: string) => void;
      /** Usage records kept in memory while writes fail, in bytes of JSON; beyond it reserve answers unavailable. */
      unwrittenMaxBytes?: number;
    } = {},
  ) {
    const onDisk = path !== ':memory:';
    if (onDisk) mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    this.#db = db;
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('busy_timeout = 5000');
    if (onDisk) {
      // This connection never checkpoints (wal-checkpoints.ts: the job does, started by the first write).
      db.pragma('wal_autocheckpoint = 0');
      this.#checkpoints = new WalCheckpoints({
        path,
        intervalMs: options.checkpointIntervalMs ?? 1000,
        idleMs: options.checkpointIdleMs ?? BACKGROUND_IDLE_MS,
        // Never called after close (WalCheckpoints checks).
        fallBack: () => db.pragma('wal_autocheckpoint = 1000'),
        onError: options.onError,
      });
    }
    db.exec(`
      CREATE TABLE IF NOT EXISTS usage (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        session TEXT NOT NULL,
        source TEXT NOT NULL,
        ref TEXT NOT NULL,
        model TEXT NOT NULL,
        cost_nanos INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        json TEXT NOT NULL,
        record_id TEXT
      );
      CREATE INDEX IF NOT EXISTS usage_tenant_ts ON usage (tenant, ts);
      CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts);
      CREATE TABLE IF NOT EXISTS spend (
        tenant TEXT NOT NULL,
        period TEXT NOT NULL,
        nanos INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (tenant, period)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS cap_override (
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        nanos INTEGER,
        tokens INTEGER,
        PRIMARY KEY (tenant, kind)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
      );
    `);
    // Files made before 2026-12-07 lack the column (an older version's inserts name their columns: it
    // can still open the file). Only records that waited have an id: the ones a journal may replay.
    if (!(db.prepare('SELECT name FROM pragma_table_info(?)').all('usage') as Array<{ name: string }>).some((c) => c.name === 'record_id')) {
      db.exec('ALTER TABLE usage ADD COLUMN record_id TEXT');
    }
    db.exec('CREATE UNIQUE INDEX IF NOT EXISTS usage_record_id ON usage (record_id) WHERE record_id IS NOT NULL');
    this.#stmt = {
      insertUsage: db.prepare('INSERT INTO usage (ts, tenant, session, source, ref, model, cost_nanos, total_tokens, json, record_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      hasRecordId: db.prepare('SELECT 1 AS found FROM usage WHERE record_id = ?'),
      addSpend: db.prepare(
        'INSERT INTO spend (tenant, period, nanos, tokens) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, period) DO UPDATE SET nanos = nanos + excluded.nanos, tokens = tokens + excluded.tokens',
      ),
      getSpend: db.prepare('SELECT nanos, tokens FROM spend WHERE tenant = ? AND period = ?'),
      resetSpend: db.prepare('UPDATE spend SET nanos = 0, tokens = 0 WHERE tenant = ? AND period = ?'),
      setOverride: db.prepare(
        'INSERT INTO cap_override (tenant, kind, nanos, tokens) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, kind) DO UPDATE SET nanos = excluded.nanos, tokens = excluded.tokens',
      ),
      // Ordered by (ts, id), the cursor's order (the ts indexes hold the rowid: no sort).
      // A row's time is at or after its record's (#settleTx): `since` keeps the records settled at or after it.
      usageAll: db.prepare("SELECT id, ts, json FROM usage WHERE ts >= ? AND COALESCE(json_extract(json, '$.ts'), ts) >= ? ORDER BY ts, id LIMIT ?"),
      usageTenant: db.prepare("SELECT id, ts, json FROM usage WHERE tenant = ? AND ts >= ? AND COALESCE(json_extract(json, '$.ts'), ts) >= ? ORDER BY ts, id LIMIT ?"),
      usageAllAfter: db.prepare('SELECT id, ts, json FROM usage WHERE (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?'),
      usageTenantAfter: db.prepare('SELECT id, ts, json FROM usage WHERE tenant = ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?'),
      audit: db.prepare('INSERT INTO audit (ts, tenant, action, detail) VALUES (?, ?, ?, ?)'),
    };
    this.#pruneBatch = db.prepare('DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE ts < ? ORDER BY ts LIMIT ?)');
    this.#retentionMs = options.retentionDays == null ? null : options.retentionDays * DAY_MS;
    this.#wall = options.wall ?? Date.now;
    this.#onError = options.onError ?? (() => undefined);
    this.#unwrittenMaxBytes = options.unwrittenMaxBytes ?? UNWRITTEN_MAX_BYTES;
    if (this.#retentionMs !== null) {
      this.#schedulePrune(0);
    }
    for (const row of db.prepare('SELECT tenant, kind, nanos, tokens FROM cap_override').all() as OverrideRow[]) {
      this.#overrides.set(`${row.tenant}\u0000${row.kind}`, { nanos: row.nanos, tokens: row.tokens });
    }
    this.#newestRowTs = (db.prepare('SELECT MAX(ts) AS ts FROM usage').get() as { ts: number | null }).ts;
    this.#settleTx = db.transaction((record: UsageRecord, day: Period, month: Period, recordId: string | null): number => {
      // The row's time is the record's, or the newest row's when it comes after a newer one (a
      // worker's settle reaching the primary late, a clock stepped back): pages go by (row time, id),
      // so a cursor already past its time still reaches it, as Redis places a late record where it
      // was written. Until 2026-12-07 it kept its own time and no cursor returned it
      // (test/metering/redteam-16-usage-cursor-late.test.ts). The JSON keeps the record's time.
      const newest = this.#newestRowTs;
      const rowTs = newest !== null && newest > record.ts ? newest : record.ts;
      this.#stmt.insertUsage.run(rowTs, record.tenant, record.session, record.source, record.ref, record.model, record.costNanos, record.totalTokens, JSON.stringify(record), recordId);
      this.#stmt.addSpend.run(record.tenant, day.key, record.costNanos, record.totalTokens);
      this.#stmt.addSpend.run(record.tenant, month.key, record.costNanos, record.totalTokens);
      return rowTs;
    });
    if (onDisk) {
      this.#journal = new UnwrittenJournal(unwrittenJournalPath(path), this.#unwrittenMaxBytes, this.#onError);
      this.#replay(this.#journal);
    }
  }

  /**
   * Before the first admit: the records a previous instance journaled and did not write (it died,
   * or stopped while the file refused them) count again, written now or waiting like any other.
   * Those already in the file (their id is) are skipped, so a replay interrupted by another crash
   * counts each once.
   */
  #replay(journal: UnwrittenJournal): void {
    const left = journal.read();
    // One id twice (a journal copied back onto itself) is one record: until 2026-12-07 it counted twice
    // and its second insert failed the UNIQUE index forever (test/metering/redteam-17b-journal-duplicate-id.test.ts).
    const seen = new Set<string>();
    for (const entry of left) {
      if (seen.has(entry.id)) continue;
      seen.add(entry.id);
      if (this.#stmt.hasRecordId.get(entry.id)) continue;
      const { day, month } = this.#clock.at(entry.record.ts);
      this.#enqueue({ id: entry.id, record: entry.record, day, month, bytes: Buffer.byteLength(JSON.stringify(entry.record)) });
    }
    if (this.#unwritten.length > 0) this.#onError(`${this.#unwritten.length} usage records left unwritten by the previous instance (${journal.path}): counted, and written now`);
    // Written now, or the journal is rewritten with those still waiting (no torn or written lines).
    this.#writeUnwritten();
    if (this.#unwritten.length === 0) journal.clear();
    else this.#onError(`usage record not written (${this.#lastWriteError}); kept in memory and retried, /readyz not ready until written`);
  }

  #spent(tenant: string, period: Period): SpendRow {
    const key = `${tenant}\u0000${period.key}`;
    let row = this.#spend.get(key);
    if (!row) {
      const found = this.#stmt.getSpend.get(tenant, period.key);
      // The file lacks the records still waiting to be written: they count all the same.
      const waiting = this.#unwrittenSum.of(tenant, period);
      row = { nanos: (found?.nanos ?? 0) + waiting.nanos, tokens: (found?.tokens ?? 0) + waiting.tokens };
      this.#spend.set(key, row);
    }
    return row;
  }

  /** Adds a record to a period's in-memory total (read from the file first if cold). */
  #count(record: UsageRecord, period: Period): void {
    let row: SpendRow;
    try {
      row = this.#spent(record.tenant, period);
    } catch {
      // The file cannot be read either: the total stays cold, and its first read adds the unwritten records.
      return;
    }
    row.nanos += record.costNanos;
    row.tokens += record.totalTokens;
  }

  #override(tenant: string, kind: PeriodKind): CapOverride {
    return this.#overrides.get(`${tenant}\u0000${kind}`) ?? NO_OVERRIDE;
  }

  #periodStatus(tenant: string, period: Period, caps: CapSet): PeriodStatus {
    const o = this.#override(tenant, period.kind);
    const spent = this.#spent(tenant, period);
    return {
      period,
      spent: { nanos: spent.nanos, tokens: spent.tokens },
      reserved: this.#reserved.get(tenant) ?? ZERO,
      capNanos: o.nanos ?? (period.kind === 'day' ? caps.dayNanos : caps.monthNanos),
      capTokens: o.tokens ?? (period.kind === 'day' ? caps.dayTokens : caps.monthTokens),
      override: o,
    };
  }

  status(tenant: string, caps: CapSet, wallMs: number): TenantStatus {
    const { day, month } = this.#clock.at(wallMs);
    return { tenant, day: this.#periodStatus(tenant, day, caps), month: this.#periodStatus(tenant, month, caps) };
  }

  reserve(req: ReserveRequest): ReserveResult {
    // Fail closed: more spend would only add records that cannot be kept.
    if (this.#unwrittenBytes >= this.#unwrittenMaxBytes) return { kind: 'unavailable', reason: 'sqlite ledger: too many usage records not written' };
    const s = this.status(req.tenant, req.caps, req.wallMs);
    const reserved = this.#reserved.get(req.tenant) ?? ZERO;
    const hit = firstHit(s.day, s.month, reserved, req.amount, req.mode);
    if (hit) return { kind: 'over', hit };
    let map = this.#reservations.get(req.tenant);
    if (!map) this.#reservations.set(req.tenant, (map = new Map()));
    map.set(req.id, req.amount);
    this.#reserved.set(req.tenant, { nanos: reserved.nanos + req.amount.nanos, tokens: reserved.tokens + req.amount.tokens });
    return { kind: 'ok' };
  }

  release(tenant: string, reservationId: string): void {
    const map = this.#reservations.get(tenant);
    const amount = map?.get(reservationId);
    if (!map || !amount) return;
    map.delete(reservationId);
    const r = this.#reserved.get(tenant) ?? ZERO;
    if (map.size === 0) {
      this.#reservations.delete(tenant);
      this.#reserved.delete(tenant);
    } else {
      this.#reserved.set(tenant, { nanos: r.nanos - amount.nanos, tokens: r.tokens - amount.tokens });
    }
  }

  settle(reservationId: string | null, record: UsageRecord): void {
    const { day, month } = this.#clock.at(record.ts);
    // Counted before the write (a warm total then matches the file after the commit), and counted
    // whether or not the write succeeds: the cost is known, the cap must see it.
    this.#count(record, day);
    this.#count(record, month);
    if (reservationId !== null) this.release(record.tenant, reservationId);
    // Committed before the caller goes on (response.done reaches the client after this returns).
    if (this.#unwritten.length === 0 && this.#write(record, day, month, null)) return;
    // Behind earlier unwritten records, or refused itself: queued, then everything tried in order.
    this.#keep({ id: randomUUID(), record, day, month, bytes: Buffer.byteLength(JSON.stringify(record)) });
    this.#writeUnwritten();
  }

  /** One record's transaction; false (and the error kept for the log) when the file refuses it. */
  #write(record: UsageRecord, day: Period, month: Period, recordId: string | null): boolean {
    try {
      // Kept only once committed: a rolled-back transaction left the file's newest row as it was.
      this.#newestRowTs = this.#settleTx(record, day, month, recordId);
    } catch (err) {
      this.#lastWriteError = err instanceof Error ? err.message : String(err);
      return false;
    }
    this.#checkpoints?.wrote();
    return true;
  }

  #keep(item: Unwritten): void {
    const wasEmpty = this.#unwritten.length === 0;
    const wasFull = this.#unwrittenBytes >= this.#unwrittenMaxBytes;
    this.#enqueue(item);
    // On disk before the caller goes on (the client sees response.done after this returns).
    this.#journal?.append(item);
    if (wasEmpty) this.#onError(`usage record not written (${this.#lastWriteError}); kept in memory and retried, /readyz not ready until written`);
    if (!wasFull && this.#unwrittenBytes >= this.#unwrittenMaxBytes) {
      this.#onError(`${this.#unwritten.length} usage records (${this.#unwrittenBytes} bytes) not written: new reservations refused until the file takes them`);
    }
  }

  #enqueue(item: Unwritten): void {
    this.#unwritten.push(item);
    this.#unwrittenBytes += item.bytes;
    this.#unwrittenSum.add(item.record, [item.day, item.month]);
  }

  /** Writes the unwritten records oldest first; stops at the first refusal and retries later. */
  #writeUnwritten(): void {
    const before = this.#unwritten.length;
    while (this.#unwritten.length > 0 && !this.#closed) {
      const item = this.#unwritten[0]!;
      // Refused because the file has its id already (another instance on the file wrote its journal's
      // copy): written, not a record to retry forever in front of all the others.
      if (!this.#write(item.record, item.day, item.month, item.id) && !this.#hasRecord(item.id)) break;
      this.#unwritten.shift();
      this.#unwrittenBytes -= item.bytes;
      this.#unwrittenSum.add(item.record, [item.day, item.month], -1);
    }
    if (this.#unwritten.length === 0) {
      if (before > 0) this.#journal?.clear();
      this.#retryDelayMs = RETRY_FIRST_MS;
      if (this.#retryTimer) clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      if (before > 0) this.#onError(`${before} usage records written after failed writes; ledger ready again`);
      return;
    }
    // Some written (the journal holds lines no longer waiting, room a newer record may need), or the
    // journal missing some after a failed write: rewritten from what still waits.
    const journal = this.#journal;
    if (journal && !this.#closed && (this.#unwritten.length < before || journal.failing)) journal.mirror(this.#unwritten);
    this.#scheduleRetry();
  }

  /** The file holds a row with this record id (false when it cannot be read either). */
  #hasRecord(recordId: string): boolean {
    try {
      return this.#stmt.hasRecordId.get(recordId) !== undefined;
    } catch {
      return false;
    }
  }

  #scheduleRetry(): void {
    if (this.#retryTimer || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, RETRY_MAX_MS);
      this.#writeUnwritten();
    }, this.#retryDelayMs);
    this.#retryTimer.unref();
  }

  /** Settled records not in the file yet (diagnostics, tests). */
  get unwritten(): { readonly records: number; readonly bytes: number } {
    return { records: this.#unwritten.length, bytes: this.#unwrittenBytes };
  }

  setOverride(tenant: string, kind: PeriodKind, change: OverrideChange): void {
    const cur = this.#override(tenant, kind);
    const next: CapOverride = {
      nanos: change.nanos === undefined ? cur.nanos : change.nanos,
      tokens: change.tokens === undefined ? cur.tokens : change.tokens,
    };
    // Both null (cleared) is stored as such: it reads as no override. The change and its audit row
    // commit together, and memory follows the commit: until 2026-12-07 a failing audit insert (disk
    // full) answered 500 after the override had taken effect (sqlite-ledger-write-failure.test.ts).
    this.#db.transaction(() => {
      this.#stmt.setOverride.run(tenant, kind, next.nanos, next.tokens);
      this.#stmt.audit.run(Date.now(), tenant, 'set_override', JSON.stringify({ kind, ...next }));
    })();
    this.#overrides.set(`${tenant}\u0000${kind}`, next);
    this.#checkpoints?.wrote();
  }

  resetSpend(tenant: string, kind: PeriodKind, wallMs: number): void {
    const period = periodOf(kind, wallMs);
    // A record of this period written after the reset would count again what the reset zeroed.
    this.#writeUnwritten();
    if (this.#unwrittenSum.has(tenant, period)) throw new Error('sqlite ledger: usage records of this period are not written yet; try again');
    const row = this.#spent(tenant, period);
    // One transaction with its audit row, memory zeroed after the commit (see setOverride).
    this.#db.transaction(() => {
      this.#stmt.resetSpend.run(tenant, period.key);
      this.#stmt.audit.run(Date.now(), tenant, 'reset_spend', JSON.stringify({ period: period.key, nanos: row.nanos, tokens: row.tokens }));
    })();
    this.#checkpoints?.wrote();
    row.nanos = 0;
    row.tokens = 0;
  }

  usagePage(tenant: string | null, from: number | UsageCursor, limit: number): UsagePage {
    const s = this.#stmt;
    let rows: UsageRow[];
    if (typeof from === 'number') rows = tenant === null ? s.usageAll.all(from, from, limit) : s.usageTenant.all(tenant, from, from, limit);
    else rows = tenant === null ? s.usageAllAfter.all(from.ts, from.seq, limit) : s.usageTenantAfter.all(tenant, from.ts, from.seq, limit);
    const last = rows[rows.length - 1];
    return { records: rows.map((r) => JSON.parse(r.json) as UsageRecord), next: last === undefined ? null : { ts: last.ts, seq: last.id, tenant: '' } };
  }

  acquireSlot(tenant: string, token: string, max: number): boolean {
    return this.#slots.acquire(tenant, token, max);
  }

  releaseSlot(tenant: string, token: string): void {
    this.#slots.release(tenant, token);
  }

  readiness(): string | null {
    if (this.#closed) return 'ledger closed';
    // A fixed text (/readyz answers anyone); the count and the error are in the log.
    return this.#unwritten.length > 0 ? 'sqlite ledger: usage records not written (writes failing)' : null;
  }

  /**
   * Deletes up to `batch` usage rows settled before `beforeMs`; returns how many. The spend
   * table (day and month totals, what caps read) is untouched, so old periods keep their totals.
   */
  pruneUsage(beforeMs: number, batch = PRUNE_BATCH): number {
    const deleted = this.#pruneBatch.run(beforeMs, batch).changes;
    if (deleted > 0) this.#checkpoints?.wrote();
    return deleted;
  }

  #schedulePrune(delayMs: number): void {
    this.#pruneTimer = setTimeout(() => {
      this.#pruneTimer = null;
      if (this.#closed) return;
      let deleted = 0;
      try {
        deleted = this.pruneUsage(this.#wall() - this.#retentionMs!);
      } catch {
        // A busy or failing file: the next hourly run tries again.
      }
      // A full batch: more is due, continue on a later turn so sessions are not stalled.
      this.#schedulePrune(deleted === PRUNE_BATCH ? 10 : PRUNE_INTERVAL_MS);
    }, delayMs);
    this.#pruneTimer.unref();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // A last try; what the file still refuses stays in the journal for the next start, and is logged
    // whole (the only other copy with the export file, if the journal could not keep it).
    this.#writeUnwritten();
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const item of this.#unwritten) this.#onError(`usage record not written at shutdown: ${JSON.stringify(item.record)}`);
    if (this.#unwritten.length > 0 && this.#journal) {
      this.#onError(
        this.#journal.complete
          ? `${this.#unwritten.length} usage records not written at shutdown are kept in ${this.#journal.path}: the next start on this file writes them`
          : `${this.#unwritten.length} usage records not written at shutdown; ${this.#journal.path} holds only some of them (see earlier lines): the others are lost`,
      );
    }
    this.#journal?.close();
    if (this.#pruneTimer) clearTimeout(this.#pruneTimer);
    this.#db.close();
    await this.#checkpoints?.close();
  }
}
