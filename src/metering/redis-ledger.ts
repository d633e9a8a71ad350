import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type {
  Amount,
  CapHit,
  CapOverride,
  Ledger,
  OverrideChange,
  PeriodStatus,
  ReserveRequest,
  ReserveResult,
  TenantStatus,
  UsageCursor,
  UsagePage,
  UsageRecord,
} from './ledger.js';
import type { CapName, CapSet } from './limits.js';
import { OverHints, type OverHint } from './over-hints.js';
import { RedisHoldLink } from './redis-holds.js';
import { settledWithin } from '../bounded.js';
import { PERIOD_GRACE_MS, PeriodClock, periodOf, settlementPeriods, type Period, type PeriodKind } from './periods.js';
import { UnstoredAmounts } from './unstored-amounts.js';

/*
 * Keys (the tenant in a hash tag, so one tenant's keys share a cluster slot):
 *   P{t}:spend:d:2026-11-28, P{t}:spend:m:2026-11  hash nanos, tokens; expire at period end + 1 day
 *   P{t}:resv, P{t}:resvx                            hash reservation id → "nanos:tokens" (+ sums), zset id → expiry
 *   P{t}:caps                                        hash day_nanos, month_nanos, day_tokens, month_tokens
 *   P{t}:usage                                       stream of usage records (k = session/ref, r = JSON)
 *   P{t}:slots                                       zset session token → expiresAtMs
 * and one pub/sub channel (no tenant in it), Ptenant-holds: over-cap audio holds (redis-holds.ts).
 * Lua numbers are doubles: totals are exact up to 2^53 nano-dollars (9 million USD) per period.
 */

// Reservations: hash id → "nanos:tokens" with running sums in fields '#n' / '#t', and a zset
// id → expiry, so reserve/settle/release are O(log n) however many responses are in flight.
const RESERVATIONS = `
local function num(v) if v then return tonumber(v) end return 0 end
local function drop(h, z, id)
  local v = redis.call('HGET', h, id)
  if v then
    local n, t = string.match(v, '^(%d+):(%d+)$')
    if n ~= '0' then redis.call('HINCRBY', h, '#n', '-' .. n) end
    if t ~= '0' then redis.call('HINCRBY', h, '#t', '-' .. t) end
    redis.call('HDEL', h, id)
  end
  redis.call('ZREM', z, id)
end
local function reserved(h, z, now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now)) do drop(h, z, id) end
  local s = redis.call('HMGET', h, '#n', '#t')
  return num(s[1]), num(s[2])
end
`;

// KEYS: day, month, resv, caps, resvExpiry. ARGV: id, nanos, tokens, now, ttlMs, mode, capDayN,
// capMonthN, capDayT, capMonthT ('' = none), then spend Redis does not hold (settlements queued, and
// amounts of records whose bodies were dropped): dayNanos, dayTokens, monthNanos, monthTokens.
const RESERVE = `${RESERVATIONS}
local now = tonumber(ARGV[4])
local rn, rt = reserved(KEYS[3], KEYS[5], now)
local o = redis.call('HMGET', KEYS[4], 'day_nanos', 'month_nanos', 'day_tokens', 'month_tokens')
local d = redis.call('HMGET', KEYS[1], 'nanos', 'tokens')
local m = redis.call('HMGET', KEYS[2], 'nanos', 'tokens')
local dn, dt = tonumber(ARGV[11]), tonumber(ARGV[12])
local mn, mt = tonumber(ARGV[13]), tonumber(ARGV[14])
local an, at = tonumber(ARGV[2]), tonumber(ARGV[3])
local checks = {
  {'daily_usd', o[1], ARGV[7], num(d[1]) + dn, rn, an},
  {'monthly_usd', o[2], ARGV[8], num(m[1]) + mn, rn, an},
  {'daily_tokens', o[3], ARGV[9], num(d[2]) + dt, rt, at},
  {'monthly_tokens', o[4], ARGV[10], num(m[2]) + mt, rt, at},
}
for _, c in ipairs(checks) do
  local limit = nil
  if c[2] then limit = tonumber(c[2]) elseif c[3] ~= '' then limit = tonumber(c[3]) end
  if limit then
    local over
    if ARGV[6] == 'remaining' then over = c[4] + c[5] >= limit else over = c[4] + c[5] + c[6] > limit end
    if over then return {0, c[1], limit, c[4], c[5]} end
  end
end
drop(KEYS[3], KEYS[5], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
redis.call('HINCRBY', KEYS[3], '#n', ARGV[2])
redis.call('HINCRBY', KEYS[3], '#t', ARGV[3])
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[5]), ARGV[1])
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[5]))
return {1}
`;

// KEYS: resv, resvExpiry. ARGV: id.
const RELEASE = `${RESERVATIONS}
drop(KEYS[1], KEYS[2], ARGV[1])
return 1
`;

// KEYS: day, month, resv, usage, resvExpiry. ARGV: reservation id ('' = none), nanos, tokens,
// dayExpireAt, monthExpireAt (unix s), maxlen, record key, record JSON, check ('1' on retries:
// skip duplicates), record ts (ms).
const SETTLE = `${RESERVATIONS}
if ARGV[1] ~= '' then drop(KEYS[3], KEYS[5], ARGV[1]) end
if ARGV[9] == '1' then
  local recent = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 5000)
  for _, e in ipairs(recent) do
    if e[2][2] == ARGV[7] then return 0 end
  end
end
-- Entry ids carry the record's time (never below the stream's last id), so ?since= maps to XRANGE.
-- Read before any write: a script that fails midway keeps its earlier writes, and the retry would
-- bill them again.
local ms = tonumber(ARGV[10])
local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
if #last > 0 then
  local lm = tonumber(string.match(last[1][1], '^(%d+)'))
  if lm > ms then ms = lm end
end
redis.call('HINCRBY', KEYS[1], 'nanos', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], 'nanos', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'tokens', ARGV[3])
redis.call('EXPIREAT', KEYS[2], ARGV[5])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], string.format('%.0f', ms) .. '-*', 'k', ARGV[7], 'r', ARGV[8])
return 1
`;

// KEYS: day, month, resv, caps, resvExpiry. ARGV: now.
const STATUS = `${RESERVATIONS}
local rn, rt = reserved(KEYS[3], KEYS[5], tonumber(ARGV[1]))
local d = redis.call('HMGET', KEYS[1], 'nanos', 'tokens')
local m = redis.call('HMGET', KEYS[2], 'nanos', 'tokens')
local o = redis.call('HMGET', KEYS[4], 'day_nanos', 'month_nanos', 'day_tokens', 'month_tokens')
local function opt(v) if v then return v end return '' end
return {num(d[1]), num(d[2]), num(m[1]), num(m[2]), rn, rt, opt(o[1]), opt(o[2]), opt(o[3]), opt(o[4])}
`;

// KEYS: slots. ARGV: token, max, now, ttlMs.
const ACQUIRE_SLOT = `
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 2)
return 1
`;

/** Wait before reconnect attempt `attempt` (1, 2, …): 100 ms, doubling, at most 2 s (2 ** n is Infinity for huge n: still 2 s). */
export const reconnectDelayMs = (attempt: number): number => Math.min(50 * 2 ** attempt, 2000);

/** Session slots are refreshed three times per TTL (a missed beat is not fatal), at most once a second. */
export const heartbeatEveryMs = (slotTtlMs: number): number => Math.max(1000, Math.floor(slotTtlMs / 3));

/** How long a refusal at the cap is trusted at most (each use also re-checks it in the background). */
const OVER_HINT_MS = 30_000;

interface CheckedOverHint extends OverHint {
  checking: boolean;
  /** The configured caps the refused reserve carried: what the re-check compares with when no override is left. */
  readonly caps: CapSet;
}

class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

const scripts = () => ({
  reserve: new Script(RESERVE),
  settle: new Script(SETTLE),
  status: new Script(STATUS),
  release: new Script(RELEASE),
  acquireSlot: new Script(ACQUIRE_SLOT),
});

export interface RedisLedgerOptions {
  readonly url: string;
  readonly keyPrefix: string;
  readonly commandTimeoutMs: number;
  readonly reservationTtlSec: number;
  readonly usageStreamMaxLen: number;
  /**
   * Settlements queued while Redis does not take them. At this many, new reservations are refused
   * (fail closed, whatever failMode says); record bodies are kept up to twice as many (responses
   * granted before, tenants without caps), and past that a record's body is dropped (logged whole)
   * while its amount keeps counting in memory.
   */
  readonly pendingMax: number;
  readonly failMode: 'closed' | 'open';
  /** Tenants known to the config (usage export across all tenants). */
  readonly tenants: readonly string[];
  readonly log: Logger;
  /** Session slots expire after this long without a heartbeat (an instance died). */
  readonly slotTtlMs?: number;
  readonly wall?: () => number;
}

/** Queued record bodies kept, as a multiple of pendingMax: room for responses granted before reservations were refused. */
const PENDING_BODIES_FACTOR = 2;

/** The fixed readiness texts (/readyz answers anyone); counts and errors are in the log. */
const NOT_WRITTEN = 'redis ledger: usage records not written';
const QUEUE_FULL = 'redis ledger: usage records not written (queue full)';

interface PendingSettle {
  readonly reservationId: string | null;
  readonly record: UsageRecord;
  attempts: number;
}

// The scripts reply with Lua numbers (integer replies) and raw hash fields ('' when unset).
const optNum = (v: unknown): number | null => (v === '' ? null : Number(v));

/**
 * Shared ledger for several proxy instances: atomic reserve/settle in Lua, period keys expiring
 * with their period. Redis down: reserve/status report `unavailable` (the caller applies the
 * fail mode), settlements queue in memory and are written once Redis is back; nothing here throws
 * into a session. At pendingMax queued, reserve refuses (never open); past the memory bound a
 * record's body is dropped but its amount keeps counting here (see #dropBody).
 */
export class RedisLedger implements Ledger {
  readonly kind = 'redis' as const;
  readonly synchronous = false;
  readonly #redis: Redis;
  readonly #o: RedisLedgerOptions;
  readonly #clock = new PeriodClock();
  readonly #pending: PendingSettle[] = [];
  readonly #pendingReleases: Array<[tenant: string, id: string]> = [];
  /** Per tenant, the amounts of queued settlements (counted as spent by reserve). */
  readonly #pendingSum = new Map<string, { nanos: number; tokens: number }>();
  /**
   * Amounts of records whose bodies were dropped (queue past its bound), per tenant and period:
   * never written to Redis, so they count as spent here for the rest of their period.
   */
  readonly #droppedSum = new UnstoredAmounts();
  readonly #slots = new Map<string, string>();
  /** Recent "spend is at the cap" answers per tenant (see knownOver). */
  readonly #over = new OverHints<CheckedOverHint>();
  readonly #slotTtlMs: number;
  readonly #wall: () => number;
  readonly #scripts = scripts();
  #flushing = false;
  #flushTimer: NodeJS.Timeout | undefined;
  readonly #heartbeat: NodeJS.Timeout;
  #closed = false;
  #dropped = 0;
  #lastError: string | null = null;
  /** Over-cap audio holds to and from the other instances sharing this Redis. */
  readonly holds: RedisHoldLink;

  constructor(options: RedisLedgerOptions) {
    this.#o = options;
    this.#slotTtlMs = options.slotTtlMs ?? 60_000;
    this.#wall = options.wall ?? Date.now;
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: Math.max(1000, options.commandTimeoutMs),
      retryStrategy: reconnectDelayMs,
    });
    this.#redis.on('error', (err: Error) => {
      if (this.#lastError !== err.message) options.log.warn({ err: err.message }, 'metering redis error');
      this.#lastError = err.message;
    });
    this.#redis.on('ready', () => {
      if (this.#lastError !== null) options.log.info('metering redis reconnected');
      this.#lastError = null;
      void this.#flush();
    });
    this.#heartbeat = setInterval(() => this.#refreshSlots(), heartbeatEveryMs(this.#slotTtlMs));
    this.#heartbeat.unref();
    this.holds = new RedisHoldLink({
      channel: `${options.keyPrefix}tenant-holds`,
      publish: (channel, message) => this.#redis.publish(channel, message),
      // RedisHoldLink subscribes at every 'ready' itself.
      connection: () => this.#redis.duplicate({ autoResubscribe: false }),
      log: options.log,
    });
  }

  /** Connects (bounded wait). Failure is not fatal: the ledger keeps retrying in the background. */
  async connect(waitMs = 2000): Promise<void> {
    // The failure reaches the 'error' listener too, which records it.
    // The connecting socket (or ioredis's retry timer) keeps the process up meanwhile, not this bound.
    await settledWithin(this.#redis.connect(), waitMs, undefined);
  }

  get connected(): boolean {
    return this.#redis.status === 'ready';
  }

  /** Settlements waiting for Redis. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  #key(tenant: string, suffix: string): string {
    return `${this.#o.keyPrefix}{${tenant}}:${suffix}`;
  }

  async #eval(script: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await this.#redis.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return await this.#redis.eval(script.source, keys.length, ...keys, ...args);
      throw err;
    }
  }

  #pendingOf(tenant: string): { nanos: number; tokens: number } {
    return this.#pendingSum.get(tenant) ?? { nanos: 0, tokens: 0 };
  }

  /** Spend of `period` Redis does not hold: queued settlements (whatever their period) plus dropped bodies of this period. */
  #unwrittenIn(tenant: string, period: Period): { nanos: number; tokens: number } {
    const p = this.#pendingOf(tenant);
    const d = this.#droppedSum.of(tenant, period);
    return { nanos: p.nanos + d.nanos, tokens: p.tokens + d.tokens };
  }

  /** The queue holds as many settlements as pendingMax: no new spend until Redis takes them. */
  get #queueFull(): boolean {
    return this.#pending.length >= this.#o.pendingMax;
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    // Fail closed even with failMode open: more spend would only add records the queue cannot keep.
    if (this.#queueFull) return { kind: 'unavailable', reason: QUEUE_FULL, queueFull: true };
    if (!this.connected) return { kind: 'unavailable', reason: this.#lastError ?? 'redis not connected' };
    const { day, month } = this.#clock.at(req.wallMs);
    const c = req.caps;
    const pd = this.#unwrittenIn(req.tenant, day);
    const pm = this.#unwrittenIn(req.tenant, month);
    let reply: unknown;
    try {
      reply = await this.#eval(
        this.#scripts.reserve,
        [this.#key(req.tenant, `spend:${day.key}`), this.#key(req.tenant, `spend:${month.key}`), this.#key(req.tenant, 'resv'), this.#key(req.tenant, 'caps'), this.#key(req.tenant, 'resvx')],
        [
          req.id,
          req.amount.nanos,
          req.amount.tokens,
          req.wallMs,
          this.#o.reservationTtlSec * 1000,
          req.mode,
          c.dayNanos ?? '',
          c.monthNanos ?? '',
          c.dayTokens ?? '',
          c.monthTokens ?? '',
          pd.nanos,
          pd.tokens,
          pm.nanos,
          pm.tokens,
        ],
      );
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      // Logged here (once per distinct text): callers put a fixed reason in what clients see.
      if (this.#lastError !== reason) this.#o.log.warn({ err: reason }, 'metering redis: reserve failed');
      this.#lastError = reason;
      return { kind: 'unavailable', reason };
    }
    if (!Array.isArray(reply) || reply.length === 0) return { kind: 'unavailable', reason: 'unexpected reply' };
    if (Number(reply[0]) === 1) {
      this.#over.delete(req.tenant);
      return { kind: 'ok' };
    }
    const cap = String(reply[1]) as CapName;
    const period: Period = cap.startsWith('daily') ? day : month;
    const hit: CapHit = { cap, period, limit: Number(reply[2]), spent: Number(reply[3]), reserved: Number(reply[4]) };
    // Only spend at the cap is remembered: a refusal caused by reservations clears up by itself.
    if (hit.spent >= hit.limit) this.#over.set(req.tenant, { hit, until: req.wallMs + OVER_HINT_MS, checking: false, caps: req.caps });
    return { kind: 'over', hit };
  }

  knownOver(tenant: string, wallMs: number): CapHit | null {
    const o = this.#over.fresh(tenant, wallMs);
    if (!o) return null;
    // Used: re-check in the background, so a cap raised on another instance counts from the next response.
    if (!o.checking && this.connected) {
      o.checking = true;
      this.#recheck(tenant, o, wallMs).finally(() => (o.checking = false));
    }
    return o.hit;
  }

  async #recheck(tenant: string, o: CheckedOverHint, wallMs: number): Promise<void> {
    try {
      const hit = o.hit;
      // The cap in force now: the override, or else the configured cap the refused reserve carried.
      // Until 2026-12-06 the hint's own limit stood in for the configured cap, so an override that
      // had lowered it, cleared on another instance, kept this one refusing for the hint's 30 s.
      const s = await this.status(tenant, o.caps, wallMs);
      const p = hit.period.kind === 'day' ? s.day : s.month;
      const usd = hit.cap.endsWith('_usd');
      const limit = usd ? p.capNanos : p.capTokens;
      const spent = usd ? p.spent.nanos : p.spent.tokens;
      if (limit === null || spent < limit) this.#over.deleteIfCurrent(tenant, o);
    } catch {
      // Keep the hint; it expires on its own.
    }
  }

  async release(tenant: string, reservationId: string): Promise<void> {
    if (this.connected && (await this.#release(tenant, reservationId))) return;
    // Retried when Redis is back (a lost release would hold budget until the reservation TTL).
    if (this.#pendingReleases.length < this.#o.pendingMax) this.#pendingReleases.push([tenant, reservationId]);
    this.#scheduleFlush();
  }

  async #release(tenant: string, reservationId: string): Promise<boolean> {
    try {
      await this.#eval(this.#scripts.release, [this.#key(tenant, 'resv'), this.#key(tenant, 'resvx')], [reservationId]);
      return true;
    } catch {
      return false;
    }
  }

  async settle(reservationId: string | null, record: UsageRecord): Promise<void> {
    const item: PendingSettle = { reservationId, record, attempts: 0 };
    if (this.#pending.length > 0 || !this.connected) {
      this.#enqueue(item);
      return;
    }
    const ok = await this.#write(item);
    if (!ok) this.#enqueue(item);
  }

  async #write(item: PendingSettle): Promise<boolean> {
    const r = item.record;
    const { day, month, late } = settlementPeriods(this.#clock, r.ts, this.#wall());
    // Logged on the first attempt only, not on every retry.
    if (late && item.attempts === 0) this.#o.log.warn({ tenant: r.tenant, ref: r.ref, recordTs: r.ts, countedIn: day.key }, 'metering: late settlement counted into the current period');
    const grace = PERIOD_GRACE_MS / 1000;
    try {
      await this.#eval(
        this.#scripts.settle,
        [this.#key(r.tenant, `spend:${day.key}`), this.#key(r.tenant, `spend:${month.key}`), this.#key(r.tenant, 'resv'), this.#key(r.tenant, 'usage'), this.#key(r.tenant, 'resvx')],
        [
          item.reservationId ?? '',
          r.costNanos,
          r.totalTokens,
          Math.floor(day.resetsAt / 1000) + grace,
          Math.floor(month.resetsAt / 1000) + grace,
          this.#o.usageStreamMaxLen,
          `${r.session}/${r.source}/${r.ref}`,
          JSON.stringify(r),
          // A retried write may have landed before its reply was lost: check for it.
          item.attempts > 0 ? '1' : '0',
          r.ts,
        ],
      );
      return true;
    } catch (err) {
      item.attempts++;
      this.#lastError = err instanceof Error ? err.message : String(err);
      return false;
    }
  }

  #enqueue(item: PendingSettle): void {
    if (this.#pending.length >= this.#o.pendingMax * PENDING_BODIES_FACTOR) {
      this.#dropBody(item.record);
      return;
    }
    if (this.#pending.length === 0) this.#o.log.error({ err: this.#lastError }, 'metering redis: settlement not written; queued in memory and retried, counted as spent here until written');
    this.#pending.push(item);
    this.#adjustPending(item.record, 1);
    if (this.#pending.length === this.#o.pendingMax) {
      this.#o.log.error({ pending: this.#pending.length }, 'metering redis settle queue full: new reservations refused until Redis takes the queue');
    }
    this.#scheduleFlush();
  }

  /**
   * Memory bound: the record's body goes (logged whole: with the export file, the only copy), its
   * amount stays counted for its tenant and period. Until 2026-12-07 the oldest queued record was
   * dropped and its amount forgotten, so a long outage let a tenant spend past its cap.
   */
  #dropBody(r: UsageRecord): void {
    const { day, month } = settlementPeriods(this.#clock, r.ts, this.#wall());
    this.#droppedSum.add(r, [day, month]);
    this.#dropped++;
    this.#o.log.error({ tenant: r.tenant, ref: r.ref, dropped: this.#dropped, record: r }, 'metering redis settle queue full: record not kept (its amount still counts as spent here)');
  }

  #adjustPending(r: UsageRecord, sign: 1 | -1): void {
    const cur = this.#pendingOf(r.tenant);
    const next = { nanos: cur.nanos + sign * r.costNanos, tokens: cur.tokens + sign * r.totalTokens };
    this.#pendingSum.set(r.tenant, next);
  }

  #scheduleFlush(): void {
    if (this.#flushTimer || this.#closed) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      void this.#flush();
    }, 500);
    this.#flushTimer.unref();
  }

  /** Writes queued settlements in order; stops at the first failure and retries later. */
  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#pending.length > 0 && this.connected) {
        const item = this.#pending[0]!;
        const ok = await this.#write(item);
        if (!ok) break;
        // Queued records leave the queue only here, once written.
        this.#pending.shift();
        this.#adjustPending(item.record, -1);
        if (this.#pending.length === 0) this.#o.log.info('metering redis: queued settlements written');
      }
      while (this.#pendingReleases.length > 0 && this.connected) {
        const [tenant, id] = this.#pendingReleases[0]!;
        if (!(await this.#release(tenant, id))) break;
        this.#pendingReleases.shift();
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#pending.length > 0 || this.#pendingReleases.length > 0) this.#scheduleFlush();
  }

  /** Waits until queued settlements are written (or `timeoutMs` passes). */
  async drain(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#pending.length > 0 && Date.now() < deadline) {
      await this.#flush();
      if (this.#pending.length > 0) await new Promise((r) => setTimeout(r, 50));
    }
    return this.#pending.length === 0;
  }

  async status(tenant: string, caps: CapSet, wallMs: number): Promise<TenantStatus> {
    const { day, month } = this.#clock.at(wallMs);
    const reply = await this.#eval(
      this.#scripts.status,
      [this.#key(tenant, `spend:${day.key}`), this.#key(tenant, `spend:${month.key}`), this.#key(tenant, 'resv'), this.#key(tenant, 'caps'), this.#key(tenant, 'resvx')],
      [wallMs],
    );
    if (!Array.isArray(reply) || reply.length < 10) throw new Error('unexpected status reply');
    const reserved: Amount = { nanos: Number(reply[4]), tokens: Number(reply[5]) };
    const ps = (period: Period, n: unknown, t: unknown, on: unknown, ot: unknown, capN: number | null, capT: number | null): PeriodStatus => {
      const override: CapOverride = { nanos: optNum(on), tokens: optNum(ot) };
      const p = this.#unwrittenIn(tenant, period);
      return {
        period,
        spent: { nanos: Number(n) + p.nanos, tokens: Number(t) + p.tokens },
        reserved,
        capNanos: override.nanos ?? capN,
        capTokens: override.tokens ?? capT,
        override,
      };
    };
    return {
      tenant,
      day: ps(day, reply[0], reply[1], reply[6], reply[8], caps.dayNanos, caps.dayTokens),
      month: ps(month, reply[2], reply[3], reply[7], reply[9], caps.monthNanos, caps.monthTokens),
    };
  }

  async setOverride(tenant: string, kind: PeriodKind, change: OverrideChange): Promise<void> {
    this.#over.delete(tenant);
    const key = this.#key(tenant, 'caps');
    const multi = this.#redis.multi();
    const field = (f: 'nanos' | 'tokens') => `${kind}_${f}`;
    for (const f of ['nanos', 'tokens'] as const) {
      const v = change[f];
      if (v === undefined) continue;
      if (v === null) multi.hdel(key, field(f));
      else multi.hset(key, field(f), String(v));
    }
    await multi.exec();
  }

  async resetSpend(tenant: string, kind: PeriodKind, wallMs: number): Promise<void> {
    // A settlement still queued here would add, once written, what the reset zeroes (as the SQLite
    // ledger refuses a reset with records unwritten). Until 2026-12-07 the Redis reset went ahead.
    const queued = this.#pendingOf(tenant);
    if (queued.nanos > 0 || queued.tokens > 0) throw new Error('redis ledger: usage records of this tenant are not written yet; try again');
    this.#over.delete(tenant);
    const period = periodOf(kind, wallMs);
    await this.#redis.hset(this.#key(tenant, `spend:${period.key}`), 'nanos', '0', 'tokens', '0');
    await this.#redis.expireat(this.#key(tenant, `spend:${period.key}`), Math.floor(period.resetsAt / 1000) + 86_400);
    // Once Redis took the reset: it forgives this period's spend here too (amounts of dropped records included).
    this.#droppedSum.forget(tenant, period);
  }

  /**
   * Ordered by stream entry id, then tenant (entry ids are per tenant's stream): (ms, seq, tenant)
   * is the cursor. An entry's ms is its record's time, or later for a record written after a newer
   * one (ids never go back), so `since` reads from the id and keeps records at or after it.
   */
  async usagePage(tenant: string | null, from: number | UsageCursor, limit: number): Promise<UsagePage> {
    const tenants = tenant === null ? this.#o.tenants : [tenant];
    const found: { readonly ms: number; readonly seq: number; readonly tenant: string; readonly record: UsageRecord }[] = [];
    for (const t of tenants) {
      let start: string;
      if (typeof from === 'number') start = String(Math.max(0, from));
      // The cursor's own entry id: after it in tenants ordered after the cursor's, strictly after in the others.
      else start = t > from.tenant ? `${from.ts}-${from.seq}` : `(${from.ts}-${from.seq}`;
      const entries = await this.#redis.xrange(this.#key(t, 'usage'), start, '+', 'COUNT', limit);
      for (const [id, fields] of entries) {
        const i = fields.indexOf('r');
        if (i < 0 || i + 1 >= fields.length) continue;
        const record = JSON.parse(fields[i + 1]!) as UsageRecord;
        if (typeof from === 'number' && record.ts < from) continue;
        const dash = id.indexOf('-');
        found.push({ ms: Number(id.slice(0, dash)), seq: Number(id.slice(dash + 1)), tenant: t, record });
      }
    }
    found.sort((a, b) => a.ms - b.ms || a.seq - b.seq || (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
    const page = found.slice(0, limit);
    const last = page[page.length - 1];
    return { records: page.map((f) => f.record), next: last === undefined ? null : { ts: last.ms, seq: last.seq, tenant: last.tenant } };
  }

  async acquireSlot(tenant: string, token: string, max: number, wallMs: number): Promise<boolean | 'unavailable'> {
    if (!this.connected) return 'unavailable';
    try {
      const reply = await this.#eval(this.#scripts.acquireSlot, [this.#key(tenant, 'slots')], [token, max, wallMs, this.#slotTtlMs]);
      if (Number(reply) !== 1) return false;
      this.#slots.set(token, tenant);
      return true;
    } catch {
      return 'unavailable';
    }
  }

  releaseSlot(tenant: string, token: string): void {
    this.#slots.delete(token);
    // A command would start the lazy first connection: never from here. Disconnected, the slot expires without heartbeats.
    if (!this.connected) return;
    this.#redis.zrem(this.#key(tenant, 'slots'), token).catch(() => undefined);
  }

  leaveSlot(_tenant: string, token: string): void {
    // No longer refreshed here: the instance taking the call over refreshes it, or it expires (#slotTtlMs).
    this.#slots.delete(token);
  }

  #refreshSlots(): void {
    // Disconnected, the pipeline is refused at once (no offline queue), harmlessly.
    if (this.#slots.size === 0) return;
    const expires = this.#wall() + this.#slotTtlMs;
    const pipe = this.#redis.pipeline();
    const tenants = new Set<string>();
    // Not XX: a live session's slot is re-added when Redis lost it (a restart, a snapshot older than
    // the TTL). Until 2026-12-06 it was not, and the tenant could open as many sessions again.
    for (const [token, tenant] of this.#slots) {
      pipe.zadd(this.#key(tenant, 'slots'), expires, token);
      tenants.add(tenant);
    }
    // The set's own expiry too: without it a tenant whose sessions outlive it loses every slot.
    for (const tenant of tenants) pipe.pexpire(this.#key(tenant, 'slots'), this.#slotTtlMs * 2);
    pipe.exec().catch(() => undefined);
  }

  /**
   * Why the ledger is not ready, or null. A fixed text: `/readyz` answers anyone on the client port,
   * and the socket error (`connect ECONNREFUSED <host>:<port>`, `ENOTFOUND <name>`) names the
   * ledger's internal address; that text is in the logs ('metering redis error').
   */
  readiness(): string | null {
    if (this.#closed) return 'ledger closed';
    if (!this.connected && this.#o.failMode === 'closed') return 'redis ledger unavailable';
    if (this.#queueFull) return QUEUE_FULL;
    // failMode open keeps serving through an outage (its queue is expected); closed drains the instance.
    if (this.#pending.length > 0 && this.#o.failMode === 'closed') return NOT_WRITTEN;
    return null;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    clearInterval(this.#heartbeat);
    this.holds.close();
    await this.drain(2000);
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    if (this.#pending.length > 0) this.#o.log.error({ pending: this.#pending.length }, 'metering redis: settlements not written at shutdown');
    // Each one whole: with the export file, the only copy left.
    for (const item of this.#pending) this.#o.log.error({ record: item.record }, 'metering redis: settlement not written at shutdown');
    // Disconnected, QUIT is refused (no offline queue): stop the reconnect attempts instead.
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
