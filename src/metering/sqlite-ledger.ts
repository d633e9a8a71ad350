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
import { WalCheckpoints } from './wal-checkpoints.js';

const ZERO: Amount = Object.freeze({ nanos: 0, tokens: 0 });

const NO_OVERRIDE: CapOverride = Object.freeze({ nanos: null, tokens: null });
/** Retention: usage rows deleted per step (one short transaction), steps one event-loop turn apart. */
const PRUNE_BATCH = 5000;
const PRUNE_INTERVAL_MS = 3_600_000;
const DAY_MS = 86_400_000;

interface UsageRow {
  id: number;
  ts: number;
  json: string;
}

interface SpendRow {
  nanos: number;
  tokens: number;
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
    insertUsage: Database.Statement<[number, string, string, string, string, string, number, number, string]>;
    addSpend: Database.Statement<[string, string, number, number]>;
    getSpend: Database.Statement<[string, string], SpendRow>;
    resetSpend: Database.Statement<[string, string]>;
    setOverride: Database.Statement<[string, string, number | null, number | null]>;
    usageAll: Database.Statement<[number, number], UsageRow>;
    usageTenant: Database.Statement<[string, number, number], UsageRow>;
    usageAllAfter: Database.Statement<[number, number, number], UsageRow>;
    usageTenantAfter: Database.Statement<[string, number, number, number], UsageRow>;
    audit: Database.Statement<[number, string, string, string]>;
  };
  readonly #settleTx: (record: UsageRecord, day: Period, month: Period) => void;
  /** The log's checkpoints, off the event loop (none for a database in memory). */
  readonly #checkpoints: WalCheckpoints | null = null;
  readonly #pruneBatch: Database.Statement<[number, number]>;
  readonly #retentionMs: number | null;
  readonly #wall: () => number;
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
        json TEXT NOT NULL
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
    this.#stmt = {
      insertUsage: db.prepare('INSERT INTO usage (ts, tenant, session, source, ref, model, cost_nanos, total_tokens, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      addSpend: db.prepare(
        'INSERT INTO spend (tenant, period, nanos, tokens) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, period) DO UPDATE SET nanos = nanos + excluded.nanos, tokens = tokens + excluded.tokens',
      ),
      getSpend: db.prepare('SELECT nanos, tokens FROM spend WHERE tenant = ? AND period = ?'),
      resetSpend: db.prepare('UPDATE spend SET nanos = 0, tokens = 0 WHERE tenant = ? AND period = ?'),
      setOverride: db.prepare(
        'INSERT INTO cap_override (tenant, kind, nanos, tokens) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, kind) DO UPDATE SET nanos = excluded.nanos, tokens = excluded.tokens',
      ),
      // Ordered by (ts, id), the cursor's order (the ts indexes hold the rowid: no sort).
      usageAll: db.prepare('SELECT id, ts, json FROM usage WHERE ts >= ? ORDER BY ts, id LIMIT ?'),
      usageTenant: db.prepare('SELECT id, ts, json FROM usage WHERE tenant = ? AND ts >= ? ORDER BY ts, id LIMIT ?'),
      usageAllAfter: db.prepare('SELECT id, ts, json FROM usage WHERE (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?'),
      usageTenantAfter: db.prepare('SELECT id, ts, json FROM usage WHERE tenant = ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?'),
      audit: db.prepare('INSERT INTO audit (ts, tenant, action, detail) VALUES (?, ?, ?, ?)'),
    };
    this.#pruneBatch = db.prepare('DELETE FROM usage WHERE id IN (SELECT id FROM usage WHERE ts < ? ORDER BY ts LIMIT ?)');
    this.#retentionMs = options.retentionDays == null ? null : options.retentionDays * DAY_MS;
    this.#wall = options.wall ?? Date.now;
    if (this.#retentionMs !== null) {
      this.#schedulePrune(0);
    }
    for (const row of db.prepare('SELECT tenant, kind, nanos, tokens FROM cap_override').all() as OverrideRow[]) {
      this.#overrides.set(`${row.tenant}\u0000${row.kind}`, { nanos: row.nanos, tokens: row.tokens });
    }
    this.#settleTx = db.transaction((record: UsageRecord, day: Period, month: Period) => {
      this.#stmt.insertUsage.run(record.ts, record.tenant, record.session, record.source, record.ref, record.model, record.costNanos, record.totalTokens, JSON.stringify(record));
      this.#stmt.addSpend.run(record.tenant, day.key, record.costNanos, record.totalTokens);
      this.#stmt.addSpend.run(record.tenant, month.key, record.costNanos, record.totalTokens);
    });
  }

  #spent(tenant: string, period: Period): SpendRow {
    const key = `${tenant}\u0000${period.key}`;
    let row = this.#spend.get(key);
    if (!row) {
      const found = this.#stmt.getSpend.get(tenant, period.key);
      row = { nanos: found?.nanos ?? 0, tokens: found?.tokens ?? 0 };
      this.#spend.set(key, row);
    }
    return row;
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
    // Warm the caches first so the in-memory totals match the file after the commit.
    const d = this.#spent(record.tenant, day);
    const m = this.#spent(record.tenant, month);
    this.#settleTx(record, day, month);
    this.#checkpoints?.wrote();
    d.nanos += record.costNanos;
    d.tokens += record.totalTokens;
    m.nanos += record.costNanos;
    m.tokens += record.totalTokens;
    if (reservationId !== null) this.release(record.tenant, reservationId);
  }

  setOverride(tenant: string, kind: PeriodKind, change: OverrideChange): void {
    const cur = this.#override(tenant, kind);
    const next: CapOverride = {
      nanos: change.nanos === undefined ? cur.nanos : change.nanos,
      tokens: change.tokens === undefined ? cur.tokens : change.tokens,
    };
    // Both null (cleared) is stored as such: it reads as no override.
    this.#stmt.setOverride.run(tenant, kind, next.nanos, next.tokens);
    this.#overrides.set(`${tenant}\u0000${kind}`, next);
    this.#stmt.audit.run(Date.now(), tenant, 'set_override', JSON.stringify({ kind, ...next }));
    this.#checkpoints?.wrote();
  }

  resetSpend(tenant: string, kind: PeriodKind, wallMs: number): void {
    const period = periodOf(kind, wallMs);
    const row = this.#spent(tenant, period);
    this.#stmt.resetSpend.run(tenant, period.key);
    this.#stmt.audit.run(Date.now(), tenant, 'reset_spend', JSON.stringify({ period: period.key, nanos: row.nanos, tokens: row.tokens }));
    this.#checkpoints?.wrote();
    row.nanos = 0;
    row.tokens = 0;
  }

  usage(tenant: string | null, sinceMs: number, limit: number): UsageRecord[] {
    return this.usagePage(tenant, sinceMs, limit).records;
  }

  usagePage(tenant: string | null, from: number | UsageCursor, limit: number): UsagePage {
    const s = this.#stmt;
    let rows: UsageRow[];
    if (typeof from === 'number') rows = tenant === null ? s.usageAll.all(from, limit) : s.usageTenant.all(tenant, from, limit);
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
    return this.#closed ? 'ledger closed' : null;
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
    this.#closed = true;
    if (this.#pruneTimer) clearTimeout(this.#pruneTimer);
    this.#db.close();
    await this.#checkpoints?.close();
  }
}
