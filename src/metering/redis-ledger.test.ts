import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import pino from 'pino';
import { capturedLog } from '../../test/support/captured-log.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedis, type RedisServer } from '../../test/metering/redis-server.js';
import { caps, NEXT_DAY, record, T0 } from '../../test/metering/ledger-contract.js';
import { utcDate } from '../../test/support/clock.js';
import { NO_CAPS } from './limits.js';
import { dayPeriod, monthPeriod } from './periods.js';
import { heartbeatEveryMs, reconnectDelayMs, RedisLedger } from './redis-ledger.js';
import { keptId } from '../protocol/json.js';

let redis: RedisServer;
let prefix = 0;
const ledgers: RedisLedger[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  // A failed outage test must not leave the next test without its server.
  if (!redis.running) await redis.restart();
  await Promise.all(ledgers.splice(0).map((l) => l.close()));
});

interface LedgerOptions {
  keyPrefix?: string;
  slotTtlMs?: number;
  failMode?: 'open' | 'closed';
  commandTimeoutMs?: number;
  pendingMax?: number;
  reservationTtlSec?: number;
  /** The ledger's wall clock; `null`: none given (the ledger's default, Date.now). */
  wall?: (() => number) | null;
  url?: string;
  connect?: boolean;
  /** The configured tenants, in config order. */
  tenants?: string[];
}

function newLedger(options: LedgerOptions = {}, log: pino.Logger = pino({ level: 'silent' })): RedisLedger {
  const l = new RedisLedger({
    url: options.url ?? redis.url,
    keyPrefix: options.keyPrefix ?? `t${++prefix}:`,
    // Generous: the test process's own event-loop stalls under load count against this timeout.
    commandTimeoutMs: options.commandTimeoutMs ?? 3000,
    reservationTtlSec: options.reservationTtlSec ?? 600,
    usageStreamMaxLen: 10_000,
    pendingMax: options.pendingMax ?? 1000,
    failMode: options.failMode ?? 'closed',
    tenants: options.tenants ?? ['acme', 'beta'],
    log,
    ...(options.slotTtlMs ? { slotTtlMs: options.slotTtlMs } : {}),
    ...(options.wall === null ? {} : { wall: options.wall ?? (() => T0) }),
  });
  ledgers.push(l);
  return l;
}

async function ledger(options: LedgerOptions = {}, log?: pino.Logger): Promise<RedisLedger> {
  const l = newLedger(options, log);
  await l.connect();
  expect(l.connected).toBe(true);
  return l;
}

/** A plain client on the test server, to look at keys the way an operator would. */
async function inspect<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis(redis.url);
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

const over = (nanos: number, wallMs = T0, mode: 'remaining' | 'worst_case' = 'remaining', c = caps({ dayNanos: 1000 })) => ({
  tenant: 'acme',
  id: `r_${Math.random().toString(36).slice(2)}`,
  amount: { nanos, tokens: 0 },
  caps: c,
  wallMs,
  mode,
});

describe('redis ledger (backend-specific; the shared contract is test/metering/ledger-contract-redis.test.ts)', () => {
  it('a settlement written after its period key expired counts into the current period and keeps its own timestamp', async () => {
    const { log, lines } = capturedLog();
    const a = await ledger({}, log);
    const threeDaysAgo = T0 - 3 * 86_400_000;
    await a.settle(null, record({ ref: 'late', ts: threeDaysAgo, costNanos: 4_000 }));
    expect(lines).toEqual([expect.objectContaining({ level: 40, msg: 'metering: late settlement counted into the current period', ref: 'late', recordTs: threeDaysAgo })]);
    const s = await a.status('acme', NO_CAPS, T0);
    expect(s.day.spent.nanos).toBe(4_000);
    const rows = (await a.usagePage('acme', 0, 10)).records;
    expect(rows.map((r) => [r.ref, r.ts])).toEqual([['late', threeDaysAgo]]);
  });

  it('counts concurrent-session slots across instances; a dead instance\'s slots expire', async () => {
    const a = await ledger({ keyPrefix: 'shared4:', slotTtlMs: 200 });
    const b = await ledger({ keyPrefix: 'shared4:', slotTtlMs: 200 });
    expect(await a.acquireSlot('acme', 's1', 2, T0)).toBe(true);
    expect(await b.acquireSlot('acme', 's2', 2, T0)).toBe(true);
    expect(await b.acquireSlot('acme', 's3', 2, T0)).toBe(false);
    b.releaseSlot('acme', 's2');
    // The release is fire-and-forget: the slot frees once Redis has run it (bounded wait).
    await vi.waitFor(async () => expect(await b.acquireSlot('acme', 's3', 2, T0)).toBe(true), { timeout: 5000, interval: 10 });
    // s1's owner stops heartbeating (wall is frozen at T0 in these ledgers, so jump past the TTL):
    expect(await b.acquireSlot('acme', 's4', 2, T0 + 1000)).toBe(true);
  });

  it('a settle whose reply is lost (timeout) is retried and billed exactly once', async () => {
    const l = new RedisLedger({
      url: redis.url,
      keyPrefix: `t${++prefix}:`,
      commandTimeoutMs: 150,
      reservationTtlSec: 600,
      usageStreamMaxLen: 1000,
      pendingMax: 1000,
      failMode: 'closed',
      tenants: ['acme'],
      log: pino({ level: 'silent' }),
      wall: () => T0,
    });
    ledgers.push(l);
    await l.connect();
    const admin = new Redis(redis.url);
    try {
      await l.settle(null, record({ ref: 'warm', costNanos: 1 })); // loads the script (EVALSHA hits)
      // Writes (scripts included) wait on the server while the client's 150 ms timeout fires; the
      // paused write then runs, and so would every retry without the duplicate check.
      await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
      await l.settle(null, record({ ref: 'once' }));
      expect(l.pendingCount).toBe(1);
      expect(await l.drain(5000)).toBe(true);
      // A write of our own waits out the pause: any paused duplicate has run by the time it returns.
      await admin.call('SET', 'probe:after-pause', '1');
      expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(1_000_001);
      expect((await l.usagePage('acme', 0, 10)).records).toHaveLength(2);
    } finally {
      admin.disconnect();
    }
  });

  it('a hashed ref (keptId of an over-long id: a NUL and its SHA-256) whose settle reply is lost is billed once, listed as it was', async () => {
    const l = await ledger({ commandTimeoutMs: 150, tenants: ['acme'] });
    const ref = keptId(`resp_${'z'.repeat(1024)}`);
    expect(ref.startsWith('\u0000sha256:')).toBe(true);
    const admin = new Redis(redis.url);
    try {
      await l.settle(null, record({ ref: 'warm', costNanos: 1 }));
      // As above: the paused write runs after the client's timeout, and the retry must find it by its key.
      await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
      await l.settle(null, record({ ref }));
      expect(l.pendingCount).toBe(1);
      expect(await l.drain(5000)).toBe(true);
      await admin.call('SET', 'probe:after-pause', '1');
      expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(1_000_001);
      expect((await l.usagePage('acme', 0, 10)).records.map((r) => r.ref)).toEqual(['warm', ref]);
    } finally {
      admin.disconnect();
    }
  });

  // The outage tests stop and restart the file's one redis-server (same port, empty dataset).
  it('Redis stopped: reserve reports unavailable, settlements queue and are written after it returns (once)', async () => {
    const { log, lines } = capturedLog();
    const l = await ledger({ commandTimeoutMs: 300, keyPrefix: 'down:' }, log);
    await l.settle(null, record({ ref: 'before' }));
    // A first connection is not a recovery.
    expect(lines).toEqual([]);
    await redis.stop(true);
    await vi.waitFor(() => expect(l.connected).toBe(false), { timeout: 5000, interval: 10 });
    // A fixed text: /readyz answers anyone on the client port; the socket error (the address) is logged.
    expect(l.readiness()).toBe('redis ledger unavailable');
    const r = await l.reserve({ tenant: 'acme', id: 'x', amount: { nanos: 1, tokens: 1 }, caps: caps({ dayNanos: 100 }), wallMs: T0, mode: 'remaining' });
    expect(r.kind).toBe('unavailable');
    await expect(l.status('acme', NO_CAPS, T0)).rejects.toThrow();
    expect(await l.acquireSlot('acme', 's', 1, T0)).toBe('unavailable');
    l.releaseSlot('acme', 's'); // no throw: a slot of a dead connection expires on its own
    await l.settle(null, record({ ref: 'during-1', costNanos: 7 }));
    await l.settle(null, record({ ref: 'during-2', costNanos: 11 }));
    expect(l.pendingCount).toBe(2);
    // The operator is told (reconnect attempts fail while the server is down).
    await vi.waitFor(() => expect(lines.some((x) => x['msg'] === 'metering redis error')).toBe(true), { timeout: 5000, interval: 10 });
    await redis.restart(); // an empty dataset: the test server keeps nothing
    await vi.waitFor(() => expect(l.connected && l.pendingCount === 0).toBe(true), { timeout: 8000, interval: 20 });
    const s = await l.status('acme', NO_CAPS, T0);
    expect(s.day.spent.nanos).toBe(18);
    expect((await l.usagePage('acme', 0, 10)).records.map((u) => u.ref)).toEqual(['during-1', 'during-2']);
    expect(l.readiness()).toBeNull();
    // The operator sees the outage once per distinct error, and the recovery.
    const errors = lines.filter((x) => x['msg'] === 'metering redis error');
    expect(errors.every((x) => x['level'] === 40 && typeof x['err'] === 'string')).toBe(true);
    for (let i = 1; i < errors.length; i++) expect(errors[i]!['err']).not.toBe(errors[i - 1]!['err']);
    expect(lines.some((x) => x['msg'] === 'metering redis reconnected' && x['level'] === 30)).toBe(true);
  });

  it('the settle queue is bounded without losing money: at pendingMax reservations are refused (even failMode open), past twice that a body is dropped and its amount still counts; the rest is written once when Redis is back', async () => {
    const { log, lines } = capturedLog();
    const l = await ledger({ commandTimeoutMs: 300, pendingMax: 2, failMode: 'open' }, log);
    const spendKey = `t${prefix}:{acme}:spend:${dayPeriod(T0).key}`;
    await redis.stop(true);
    await vi.waitFor(() => expect(l.connected).toBe(false), { timeout: 5000, interval: 10 });
    await l.settle(null, record({ ref: 'q1', costNanos: 1000, totalTokens: 1 }));
    // failMode open serves through an outage: a queue below its bound keeps the instance ready.
    expect(l.readiness()).toBeNull();
    await l.settle(null, record({ ref: 'q2', costNanos: 20, totalTokens: 2 }));
    // At the bound: no new spend, whatever failMode says (the filter never runs a queueFull refusal open).
    expect(await l.reserve(over(1))).toEqual({ kind: 'unavailable', reason: 'redis ledger: usage records not written (queue full)', queueFull: true });
    expect(l.readiness()).toBe('redis ledger: usage records not written (queue full)');
    // Responses granted before (and tenants without caps) still settle: kept up to twice the bound.
    await l.settle(null, record({ ref: 'q3', costNanos: 300, totalTokens: 3, tenant: 'beta' }));
    await l.settle(null, record({ ref: 'q4', costNanos: 4000, totalTokens: 4 }));
    expect(l.pendingCount).toBe(4);
    // Past that the body goes (logged whole), the amount stays.
    await l.settle(null, record({ ref: 'q5', costNanos: 50_000, totalTokens: 5 }));
    expect(l.pendingCount).toBe(4);
    expect(lines.filter((x) => x['level'] === 50).map((x) => x['msg'])).toEqual([
      'metering redis: settlement not written; queued in memory and retried, counted as spent here until written',
      'metering redis settle queue full: new reservations refused until Redis takes the queue',
      'metering redis settle queue full: record not kept (its amount still counts as spent here)',
    ]);
    expect(lines.find((x) => x['ref'] === 'q5')).toMatchObject({ tenant: 'acme', dropped: 1, record: expect.objectContaining({ ref: 'q5', costNanos: 50_000 }) });
    await redis.restart(); // an empty dataset
    await vi.waitFor(() => expect(l.connected && l.pendingCount === 0).toBe(true), { timeout: 8000, interval: 20 });
    expect(l.readiness()).toBeNull();
    expect(lines.some((x) => x['msg'] === 'metering redis: queued settlements written' && x['level'] === 30)).toBe(true);
    // Every kept record written once, in order; Redis holds their sum, this instance adds the dropped one.
    expect((await l.usagePage('acme', 0, 10)).records.map((u) => u.ref)).toEqual(['q1', 'q2', 'q4']);
    expect((await l.usagePage('beta', 0, 10)).records.map((u) => u.ref)).toEqual(['q3']);
    expect(await inspect((r) => r.hgetall(spendKey))).toEqual({ nanos: '5020', tokens: '7' });
    const acme = await l.status('acme', NO_CAPS, T0);
    expect(acme.day.spent).toEqual({ nanos: 55_020, tokens: 12 });
    expect(acme.month.spent).toEqual({ nanos: 55_020, tokens: 12 });
    expect((await l.status('beta', NO_CAPS, T0)).day.spent).toEqual({ nanos: 300, tokens: 3 });
    // The cap counts the dropped amount: spent 55 020 of a 55 020 cap refuses, a nano more admits.
    expect(await l.reserve(over(1, T0, 'remaining', caps({ dayNanos: 55_020 })))).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', spent: 55_020 } });
    expect(await l.reserve(over(1, T0, 'remaining', caps({ monthTokens: 12 })))).toMatchObject({ kind: 'over', hit: { cap: 'monthly_tokens', spent: 12 } });
    expect((await l.reserve(over(1, T0, 'remaining', caps({ dayNanos: 55_021 })))).kind).toBe('ok');
    // A reset of the day forgives it here too; the month still counts it.
    await l.resetSpend('acme', 'day', T0);
    const reset = await l.status('acme', NO_CAPS, T0);
    expect(reset.day.spent).toEqual({ nanos: 0, tokens: 0 });
    expect(reset.month.spent).toEqual({ nanos: 55_020, tokens: 12 });
  });

  it('Redis up but refusing writes: a queued settlement makes the instance not ready; at pendingMax reservations are refused until the queue is written', async () => {
    const { log, lines } = capturedLog();
    const l = await ledger({ pendingMax: 2 }, log);
    const usageKey = `t${prefix}:{acme}:usage`;
    // A foreign value under the usage stream's key makes the write fail while Redis is up.
    await inspect((r) => r.set(usageKey, 'not a stream'));
    await l.settle(null, record({ ref: 's1', costNanos: 600, totalTokens: 1 }));
    expect(l.connected).toBe(true);
    // A fixed text; the error is in the log.
    expect(l.readiness()).toBe('redis ledger: usage records not written');
    expect(lines.filter((x) => x['level'] === 50)).toEqual([expect.objectContaining({ msg: 'metering redis: settlement not written; queued in memory and retried, counted as spent here until written', err: expect.stringMatching(/WRONGTYPE/) })]);
    expect((await l.reserve(over(400, T0, 'worst_case'))).kind).toBe('ok');
    await l.settle(null, record({ ref: 's2', costNanos: 1, totalTokens: 1 }));
    // Redis would answer, and 601 + 400 reserved is under no cap here: refused by the bound alone.
    expect(await l.reserve(over(0, T0, 'remaining', NO_CAPS))).toMatchObject({ kind: 'unavailable', queueFull: true });
    expect(l.readiness()).toBe('redis ledger: usage records not written (queue full)');
    await inspect((r) => r.del(usageKey));
    expect(await l.drain(5000)).toBe(true);
    expect(l.readiness()).toBeNull();
    expect((await l.reserve(over(0, T0, 'remaining', NO_CAPS))).kind).toBe('ok');
    expect((await l.status('acme', NO_CAPS, T0)).day.spent).toEqual({ nanos: 601, tokens: 2 });
    expect((await l.usagePage('acme', 0, 10)).records.map((u) => u.ref)).toEqual(['s1', 's2']);
  });

  it('a spend reset while a settlement is still queued is refused (it would count again once written), and taken once the queue is written', async () => {
    const { log } = capturedLog();
    const l = await ledger({}, log);
    const usageKey = `t${prefix}:{acme}:usage`;
    await l.settle(null, record({ ref: 'w1', costNanos: 300, totalTokens: 1 }));
    await inspect((r) => r.set(usageKey, 'not a stream'));
    await l.settle(null, record({ ref: 'q1', costNanos: 600, totalTokens: 1 }));
    expect(l.readiness()).toBe('redis ledger: usage records not written');
    await expect(l.resetSpend('acme', 'day', T0)).rejects.toThrow(/not written yet/);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent).toEqual({ nanos: 900, tokens: 2 });
    await inspect((r) => r.del(usageKey));
    expect(await l.drain(5000)).toBe(true);
    await l.resetSpend('acme', 'day', T0);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent).toEqual({ nanos: 0, tokens: 0 });
  });

  it('starts without Redis (not ready, fail-closed) and connects once it appears; fail-open stays ready', async () => {
    await redis.stop(true);
    const l = newLedger({ commandTimeoutMs: 500, keyPrefix: 'late:' });
    const open = newLedger({ commandTimeoutMs: 500, failMode: 'open' });
    await Promise.all([l.connect(300), open.connect(300)]);
    expect(l.connected).toBe(false);
    expect(l.readiness()).toBe('redis ledger unavailable');
    expect(open.readiness()).toBeNull();
    expect(await l.acquireSlot('acme', 's', 1, T0)).toBe('unavailable');
    expect(await l.reserve(over(1))).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/.+/) });
    await redis.restart();
    await vi.waitFor(() => expect(l.connected).toBe(true), { timeout: 8000, interval: 20 });
    expect(await l.acquireSlot('acme', 's', 1, T0)).toBe(true);
    expect(l.readiness()).toBeNull();
    await l.close();
    expect(l.readiness()).toBe('ledger closed');
    await l.close(); // twice is harmless
  });

  it('closing with Redis down waits (bounded) for the queue, then logs what was not written', async () => {
    const { log, lines } = capturedLog();
    const l = await ledger({ commandTimeoutMs: 300 }, log);
    await redis.stop(true);
    await vi.waitFor(() => expect(l.connected).toBe(false), { timeout: 5000, interval: 10 });
    await l.settle(null, record());
    expect(await l.drain(100)).toBe(false);
    await l.close();
    await l.close(); // a second close does nothing (no second wait, no second report)
    expect(lines.filter((x) => x['level'] === 50)).toEqual([
      expect.objectContaining({ msg: 'metering redis: settlement not written; queued in memory and retried, counted as spent here until written' }),
      expect.objectContaining({ msg: 'metering redis: settlements not written at shutdown', pending: 1 }),
      // Whole: with the export file, the only copy left.
      expect.objectContaining({ msg: 'metering redis: settlement not written at shutdown', record: expect.objectContaining({ ref: record().ref }) }),
    ]);
    expect(l.readiness()).toBe('ledger closed');
    await redis.restart();
  });

  it('a refusal because spend is at the cap is remembered (knownOver) for 30 s at most, and never past the period', async () => {
    const a = await ledger();
    await a.settle(null, record({ costNanos: 1000 }));
    const r = await a.reserve(over(1));
    expect(r).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', limit: 1000, spent: 1000, reserved: 0 } });
    const hit = r.kind === 'over' ? r.hit : null;
    expect(hit!.period).toEqual(dayPeriod(T0));
    expect(a.knownOver('acme', T0)).toEqual(hit);
    expect(a.knownOver('beta', T0)).toBeNull();
    expect(a.knownOver('acme', T0 + 29_999)).toEqual(hit);
    expect(a.knownOver('acme', T0 + 30_000)).toBeNull();
    // Expired hints are dropped, not just hidden.
    expect(a.knownOver('acme', T0)).toBeNull();

    // Near midnight the period's end comes first.
    const b = await ledger();
    await b.settle(null, record({ costNanos: 1000 }));
    expect((await b.reserve(over(1, NEXT_DAY - 10_000))).kind).toBe('over');
    expect(b.knownOver('acme', NEXT_DAY - 1)).toMatchObject({ cap: 'daily_usd' });
    expect(b.knownOver('acme', NEXT_DAY)).toBeNull();

    // A monthly refusal names the month.
    const m = await ledger();
    await m.settle(null, record({ costNanos: 1000 }));
    const mr = await m.reserve(over(1, T0, 'remaining', caps({ monthNanos: 1000 })));
    expect(mr).toMatchObject({ kind: 'over', hit: { cap: 'monthly_usd', period: monthPeriod(T0) } });
    expect(m.knownOver('acme', T0)).toMatchObject({ cap: 'monthly_usd', period: monthPeriod(T0) });
  });

  it('a refusal caused by reservations alone is not remembered; a grant, an override or a reset forgets the hint', async () => {
    const a = await ledger();
    expect((await a.reserve(over(1000, T0, 'worst_case'))).kind).toBe('ok');
    expect(await a.reserve(over(1, T0, 'worst_case'))).toMatchObject({ kind: 'over', hit: { spent: 0, reserved: 1000 } });
    expect(a.knownOver('acme', T0)).toBeNull();

    const b = await ledger();
    await b.settle(null, record({ costNanos: 1000 }));
    const hinted = async () => {
      expect((await b.reserve(over(1))).kind).toBe('over');
      expect(b.knownOver('acme', T0)).not.toBeNull();
    };
    await hinted();
    // The same cap set again: the hint is gone at once (the next reserve decides).
    await b.setOverride('acme', 'day', { nanos: 1000 });
    expect(b.knownOver('acme', T0)).toBeNull();
    await hinted();
    await b.resetSpend('acme', 'month', T0);
    expect(b.knownOver('acme', T0)).toBeNull();
    await hinted();
    await b.setOverride('acme', 'day', { nanos: 5000 });
    expect((await b.reserve(over(1))).kind).toBe('ok');
    expect(b.knownOver('acme', T0)).toBeNull();
  });

  it('a hint is re-checked when used: an override raised or a reset on another instance lifts it, in the right unit and period', async () => {
    const store = `hint${++prefix}:`;
    const a = await ledger({ keyPrefix: store });
    const b = await ledger({ keyPrefix: store });
    /** Replies come in order on a's connection: after one of our own, any re-check sent before it is done. */
    const settled = async () => {
      await a.status('acme', NO_CAPS, T0);
      await new Promise((r) => setImmediate(r));
    };
    /** Uses the hint (starting a re-check on current data), waits for that re-check, reads the hint. */
    const used = async (cap: string | null) => {
      await settled(); // an earlier re-check (started by the last read) is done, so a new one starts
      a.knownOver('acme', T0);
      await settled();
      expect(a.knownOver('acme', T0)?.cap ?? null).toBe(cap);
    };
    await a.settle(null, record({ costNanos: 1000, totalTokens: 100 }));

    // Daily cost cap: a token override or a month override does not lift it; a day cost override does.
    expect((await a.reserve(over(1))).kind).toBe('over');
    await b.setOverride('acme', 'day', { tokens: 1_000_000 });
    await b.setOverride('acme', 'month', { nanos: 1_000_000 });
    await used('daily_usd');
    await b.setOverride('acme', 'day', { nanos: 1000 });
    await used('daily_usd');
    await b.setOverride('acme', 'day', { nanos: 1001 });
    await used(null);

    // Monthly token cap: lifted by the month's token override only.
    await b.setOverride('acme', 'day', { nanos: null, tokens: null });
    await b.setOverride('acme', 'month', { nanos: null });
    expect(await a.reserve(over(0, T0, 'remaining', caps({ monthTokens: 100 })))).toMatchObject({ kind: 'over', hit: { cap: 'monthly_tokens' } });
    await b.setOverride('acme', 'day', { tokens: 1_000_000 });
    await b.setOverride('acme', 'month', { nanos: 1_000_000 });
    await used('monthly_tokens');
    await b.setOverride('acme', 'month', { tokens: 101 });
    await used(null);

    // A reset of the period on another instance lifts it too.
    await b.setOverride('acme', 'month', { nanos: null, tokens: null });
    expect((await a.reserve(over(1))).kind).toBe('over');
    await b.resetSpend('acme', 'month', T0);
    await used('daily_usd');
    await b.resetSpend('acme', 'day', T0);
    await used(null);
  });

  it('a queued settlement counts as spent until written, and is then billed exactly once', async () => {
    const l = await ledger();
    const usageKey = `t${prefix}:{acme}:usage`;
    // A foreign value under the usage stream's key makes the write fail while Redis is up.
    await inspect((r) => r.set(usageKey, 'not a stream'));
    await l.settle(null, record({ ref: 'queued', costNanos: 600, totalTokens: 60 }));
    expect(l.connected).toBe(true);
    expect(l.pendingCount).toBe(1);
    const s = await l.status('acme', NO_CAPS, T0);
    expect(s.day.spent).toEqual({ nanos: 600, tokens: 60 });
    expect(s.month.spent).toEqual({ nanos: 600, tokens: 60 });
    expect((await l.status('beta', NO_CAPS, T0)).day.spent).toEqual({ nanos: 0, tokens: 0 });
    // Tokens alone (a free model) count too.
    await inspect((r) => r.set(`t${prefix}:{beta}:usage`, 'not a stream'));
    await l.settle(null, record({ ref: 'free', tenant: 'beta', costNanos: 0, totalTokens: 5 }));
    expect((await l.status('beta', NO_CAPS, T0)).day.spent).toEqual({ nanos: 0, tokens: 5 });
    await inspect((r) => r.del(`t${prefix}:{beta}:usage`));
    // Admission sees it: 600 queued + 400 fits a 1000 cap, 401 does not; tokens alike.
    expect((await l.reserve(over(400, T0, 'worst_case'))).kind).toBe('ok');
    expect(await l.reserve(over(1, T0, 'worst_case'))).toMatchObject({ kind: 'over', hit: { cap: 'daily_usd', spent: 600, reserved: 400 } });
    expect(await l.reserve({ ...over(0, T0, 'worst_case', caps({ dayTokens: 100 })), amount: { nanos: 0, tokens: 41 } })).toMatchObject({ kind: 'over', hit: { cap: 'daily_tokens', spent: 60 } });
    // A later settlement queues behind it (order is kept).
    await l.settle(null, record({ ref: 'behind', costNanos: 1, totalTokens: 1 }));
    expect(l.pendingCount).toBe(3);
    await inspect((r) => r.del(usageKey));
    expect(await l.drain(5000)).toBe(true);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent).toEqual({ nanos: 601, tokens: 61 });
    expect((await l.status('beta', NO_CAPS, T0)).day.spent).toEqual({ nanos: 0, tokens: 5 });
    expect((await l.usagePage('acme', 0, 10)).records.map((u) => u.ref)).toEqual(['queued', 'behind']);
  });

  it('period keys expire a day after their period ends; a reset keeps that expiry', async () => {
    const l = await ledger();
    await l.settle(null, record());
    const day = dayPeriod(T0);
    const month = monthPeriod(T0);
    const dayKey = `t${prefix}:{acme}:spend:${day.key}`;
    const monthKey = `t${prefix}:{acme}:spend:${month.key}`;
    expect(await inspect((r) => r.call('EXPIRETIME', dayKey))).toBe(Math.floor(day.resetsAt / 1000) + 86_400);
    expect(await inspect((r) => r.call('EXPIRETIME', monthKey))).toBe(Math.floor(month.resetsAt / 1000) + 86_400);
    await l.resetSpend('acme', 'day', T0);
    await l.resetSpend('acme', 'month', T0);
    expect(await inspect((r) => r.hgetall(dayKey))).toEqual({ nanos: '0', tokens: '0' });
    expect(await inspect((r) => r.hgetall(monthKey))).toEqual({ nanos: '0', tokens: '0' });
    expect(await inspect((r) => r.call('EXPIRETIME', dayKey))).toBe(Math.floor(day.resetsAt / 1000) + 86_400);
    expect(await inspect((r) => r.call('EXPIRETIME', monthKey))).toBe(Math.floor(month.resetsAt / 1000) + 86_400);
    // A reset of a period nothing was spent in creates its key with the same expiry.
    const other = await ledger();
    await other.resetSpend('beta', 'day', T0);
    expect(await inspect((r) => r.call('EXPIRETIME', `t${prefix}:{beta}:spend:${day.key}`))).toBe(Math.floor(day.resetsAt / 1000) + 86_400);
  });

  it('a reservation nobody settles or releases (instance died) expires after reservationTtlSec', async () => {
    const l = await ledger({ reservationTtlSec: 60 });
    expect((await l.reserve({ ...over(500), amount: { nanos: 500, tokens: 5 } })).kind).toBe('ok');
    expect((await l.status('acme', NO_CAPS, T0 + 59_999)).day.reserved).toEqual({ nanos: 500, tokens: 5 });
    expect((await l.status('acme', NO_CAPS, T0 + 60_000)).day.reserved).toEqual({ nanos: 0, tokens: 0 });
    // Its keys expire in Redis too (nothing of a dead instance stays forever).
    const pttl = await inspect((r) => r.pttl(`t${prefix}:{acme}:resv`));
    expect(pttl).toBeGreaterThan(50_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await inspect((r) => r.pttl(`t${prefix}:{acme}:resvx`))).toBeLessThanOrEqual(60_000);
    // Reserving again under the same id replaces, never adds.
    const again = await ledger();
    const req = { ...over(300), id: 'same' };
    expect((await again.reserve(req)).kind).toBe('ok');
    expect((await again.reserve(req)).kind).toBe('ok');
    expect((await again.status('acme', NO_CAPS, T0)).day.reserved.nanos).toBe(300);
  });

  it('usage: all tenants merged in stream order (record time; a late record where it was written), paged, since filters on the record time, foreign stream entries ignored', async () => {
    const l = await ledger();
    await l.settle(null, record({ ref: 'x1', ts: T0 + 5000 }));
    // Older than the stream's last entry: its entry id is clamped up, its ts stays. Pages go by entry
    // id (the only order XRANGE pages exactly), so it comes after x1. Until 2026-12-07 pages were
    // sorted by record time after each stream's first `limit` entries were read, which with a late
    // record could leave out one that sorted earlier.
    await l.settle(null, record({ ref: 'x0', ts: T0 }));
    await l.settle(null, record({ ref: 'b', tenant: 'beta', ts: T0 + 1000 }));
    await inspect(async (r) => {
      await r.xadd(`t${prefix}:{acme}:usage`, '*', 'k', 'r');
      await r.xadd(`t${prefix}:{acme}:usage`, '*', 'other', 'x');
    });
    expect((await l.usagePage(null, 0, 10)).records.map((u) => u.ref)).toEqual(['b', 'x1', 'x0']);
    expect((await l.usagePage(null, 0, 2)).records.map((u) => u.ref)).toEqual(['b', 'x1']);
    expect((await l.usagePage(null, -5, 10)).records.map((u) => u.ref)).toEqual(['b', 'x1', 'x0']);
    expect((await l.usagePage('acme', T0 + 1, 10)).records.map((u) => u.ref)).toEqual(['x1']);
    expect((await l.usagePage('acme', T0, 10)).records.map((u) => u.ref)).toEqual(['x1', 'x0']);
    expect((await l.usagePage('acme', 0, 10)).records[1]).toEqual(record({ ref: 'x0', ts: T0 }));
    // The cursor after x1 (whose entry id is later than x0's record time) still reaches x0.
    const first = await l.usagePage('acme', 0, 1);
    expect(first.records.map((u) => u.ref)).toEqual(['x1']);
    expect((await l.usagePage('acme', first.next!, 10)).records.map((u) => u.ref)).toEqual(['x0']);
  });

  it('a live instance keeps its session slots, and the slot set, alive by heartbeat', async () => {
    let wall = T0;
    const store = `hb${++prefix}:`;
    const key = (t: string) => `${store}{${t}}:slots`;
    const a = await ledger({ keyPrefix: store, slotTtlMs: 3000, wall: () => wall });
    const b = await ledger({ keyPrefix: store, slotTtlMs: 3000 });
    expect(await a.acquireSlot('acme', 's1', 1, T0)).toBe(true);
    const pttl = await inspect((r) => r.pttl(key('acme')));
    expect(pttl).toBeGreaterThan(3000);
    expect(pttl).toBeLessThanOrEqual(6000);
    // Regression: heartbeats refreshed the members but not the set's expiry, so a tenant whose
    // sessions outlived 2 × slotTtlMs lost every slot and the concurrent-session cap stopped counting.
    await inspect((r) => r.persist(key('acme')));
    wall = T0 + 5000;
    // The heartbeat (every second at this TTL) pushes s1's expiry to a's clock + TTL.
    await vi.waitFor(async () => expect(await inspect((r) => r.zscore(key('acme'), 's1'))).toBe(String(T0 + 8000)), { timeout: 5000, interval: 50 });
    const refreshed = await inspect((r) => r.pttl(key('acme')));
    // Twice the slot TTL from the last beat (one a second): well above one TTL.
    expect(refreshed).toBeGreaterThan(3000);
    expect(refreshed).toBeLessThanOrEqual(6000);
    expect(await b.acquireSlot('acme', 's2', 1, T0 + 5000)).toBe(false);
    a.releaseSlot('acme', 's1');
    await vi.waitFor(async () => expect(await b.acquireSlot('acme', 's2', 1, T0 + 5000)).toBe(true), { timeout: 5000, interval: 10 });
    // A released slot is not brought back by a later heartbeat (s3 shows that one has run).
    expect(await a.acquireSlot('beta', 's3', 1, T0 + 5000)).toBe(true);
    wall = T0 + 6000;
    await vi.waitFor(async () => expect(await inspect((r) => r.zscore(key('beta'), 's3'))).toBe(String(T0 + 9000)), { timeout: 5000, interval: 50 });
    expect(await inspect((r) => r.zscore(key('acme'), 's1'))).toBeNull();
  });
  it('Redis up but refusing the ledger (ACL): releases and settlements are retried until it accepts; admission fails closed', async () => {
    const user = `ledger${++prefix}`;
    const store = `acl${prefix}:`;
    await inspect((r) => r.call('ACL', 'SETUSER', user, 'on', '>secret-pass', '~*', '&*', '+@all'));
    const { log, lines } = capturedLog();
    const l = await ledger({ keyPrefix: store, url: redis.url.replace('redis://', `redis://${user}:secret-pass@`), pendingMax: 2 }, log);
    const resv = `${store}{acme}:resv`;
    for (const id of ['r1', 'r2', 'r3']) expect((await l.reserve({ ...over(100), id, amount: { nanos: 100, tokens: 1 } })).kind).toBe('ok');
    await inspect((r) => r.call('ACL', 'SETUSER', user, '-evalsha', '-eval'));
    try {
      // Connected, but every script is refused.
      expect(l.connected).toBe(true);
      // The server's own message, as it is (the operator reads it: logged once; clients get a fixed reason).
      expect(await l.reserve(over(1))).toMatchObject({ kind: 'unavailable', reason: expect.stringMatching(/^NOPERM /) });
      expect((await l.reserve(over(1))).kind).toBe('unavailable');
      expect(lines.filter((x) => x['msg'] === 'metering redis: reserve failed')).toEqual([expect.objectContaining({ level: 40, err: expect.stringMatching(/^NOPERM /) })]);
      expect(await l.acquireSlot('acme', 's1', 5, T0)).toBe('unavailable');
      await expect(l.status('acme', NO_CAPS, T0)).rejects.toThrow(/NOPERM/);
      // Three releases with room for two: the third reservation is left to its TTL.
      for (const id of ['r1', 'r2', 'r3']) await l.release('acme', id);
      // A late settlement (its day long gone) queues too.
      await l.settle(null, record({ ref: 'late', ts: T0 - 3 * 86_400_000, costNanos: 9 }));
      expect(l.pendingCount).toBe(1);
      expect(await inspect((r) => r.hget(resv, '#n'))).toBe('300');
    } finally {
      await inspect((r) => r.call('ACL', 'SETUSER', user, '+@all'));
    }
    // Retried on the flush timer: no reconnect happens here.
    await vi.waitFor(async () => expect(await inspect((r) => r.hget(resv, '#n'))).toBe('100'), { timeout: 5000, interval: 20 });
    await vi.waitFor(() => expect(l.pendingCount).toBe(0), { timeout: 5000, interval: 20 });
    expect(await inspect((r) => r.hkeys(resv))).toEqual(expect.arrayContaining(['r3']));
    expect((await l.status('acme', NO_CAPS, T0)).day).toMatchObject({ spent: { nanos: 9 }, reserved: { nanos: 100, tokens: 1 } });
    // The late settlement is reported once, however many attempts it took.
    expect(lines.filter((x) => x['msg'] === 'metering: late settlement counted into the current period')).toEqual([
      expect.objectContaining({ level: 40, tenant: 'acme', ref: 'late', recordTs: T0 - 3 * 86_400_000, countedIn: dayPeriod(T0).key }),
    ]);
  });

  it('a refused write is retried on the timer until it is accepted, a release alone as well as a settlement alone', async () => {
    const user = `retry${++prefix}`;
    const store = `retry${prefix}:`;
    await inspect((r) => r.call('ACL', 'SETUSER', user, 'on', '>secret-pass', '~*', '&*', '+@all'));
    const l = await ledger({ keyPrefix: store, url: redis.url.replace('redis://', `redis://${user}:secret-pass@`) });
    const resv = `${store}{acme}:resv`;
    /** Script calls the server refused for this user so far (ACL LOG counts them). */
    const refused = () =>
      inspect(async (r) => {
        const log = (await r.call('ACL', 'LOG')) as unknown[][];
        return log.reduce((n, entry) => {
          const e = Object.fromEntries(Array.from({ length: entry.length / 2 }, (_, i) => [String(entry[2 * i]), entry[2 * i + 1]]));
          return e['username'] === user ? n + Number(e['count']) : n;
        }, 0);
      });
    const deny = async () => inspect((r) => r.call('ACL', 'SETUSER', user, '-evalsha', '-eval'));
    const allow = async () => inspect((r) => r.call('ACL', 'SETUSER', user, '+@all'));
    expect((await l.reserve({ ...over(100), id: 'r1', amount: { nanos: 100, tokens: 1 } })).kind).toBe('ok');
    // An earlier record in the stream: a retry's duplicate check must not take it for the retried one.
    await l.settle(null, record({ ref: 'accepted', costNanos: 1 }));

    // A release alone: refused at once and by the first retry, then accepted by a later one.
    await deny();
    const base = await refused();
    await l.release('acme', 'r1');
    await vi.waitFor(async () => expect(await refused()).toBeGreaterThanOrEqual(base + 2), { timeout: 5000, interval: 20 });
    expect(await inspect((r) => r.hget(resv, '#n'))).toBe('100');
    await allow();
    await vi.waitFor(async () => expect(await inspect((r) => r.hget(resv, '#n'))).toBe('0'), { timeout: 5000, interval: 20 });

    // A settlement alone, likewise.
    await deny();
    const base2 = await refused();
    await l.settle(null, record({ ref: 'refused', costNanos: 33 }));
    expect(l.pendingCount).toBe(1);
    await vi.waitFor(async () => expect(await refused()).toBeGreaterThanOrEqual(base2 + 2), { timeout: 5000, interval: 20 });
    expect(l.pendingCount).toBe(1);
    await allow();
    await vi.waitFor(() => expect(l.pendingCount).toBe(0), { timeout: 5000, interval: 20 });
    expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(34);
    expect((await l.usagePage('acme', 0, 10)).records.map((u) => u.ref)).toEqual(['accepted', 'refused']);
  });

  it('two flushes at once (a drain beside the retry timer) write each queued settlement exactly once, in order', async () => {
    const l = await ledger();
    const usageKey = `t${prefix}:{acme}:usage`;
    await inspect((r) => r.set(usageKey, 'not a stream'));
    for (const [ref, costNanos] of [['q1', 1], ['q2', 20], ['q3', 300]] as const) await l.settle(null, record({ ref, costNanos }));
    expect(l.pendingCount).toBe(3);
    await inspect((r) => r.del(usageKey));
    expect(await Promise.all([l.drain(5000), l.drain(5000), l.drain(5000)])).toEqual([true, true, true]);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(321);
    expect((await l.usagePage('acme', 0, 10)).records.map((u) => u.ref)).toEqual(['q1', 'q2', 'q3']);
  });

  it('drain waits without blocking: Redis coming back meanwhile gets the queue written', async () => {
    const l = await ledger({ commandTimeoutMs: 300 });
    await redis.stop(true);
    await vi.waitFor(() => expect(l.connected).toBe(false), { timeout: 5000, interval: 10 });
    await l.settle(null, record({ ref: 'waiting', costNanos: 44 }));
    const drained = l.drain(10_000);
    await redis.restart();
    expect(await drained).toBe(true);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(44);
  });

  it('settling or releasing a reservation leaves nothing of it in Redis', async () => {
    const l = await ledger();
    const resv = `t${prefix}:{acme}:resv`;
    const resvx = `t${prefix}:{acme}:resvx`;
    for (const id of ['a', 'b']) expect((await l.reserve({ ...over(100), id, amount: { nanos: 100, tokens: 2 } })).kind).toBe('ok');
    expect(await inspect((r) => r.zrange(resvx, 0, -1))).toEqual(['a', 'b']);
    await l.release('acme', 'a');
    await l.settle('b', record({ ref: 'b', costNanos: 90 }));
    expect(await inspect((r) => r.hgetall(resv))).toEqual({ '#n': '0', '#t': '0' });
    expect(await inspect((r) => r.exists(resvx))).toBe(0);
    expect((await l.status('acme', NO_CAPS, T0)).day).toMatchObject({ spent: { nanos: 90 }, reserved: { nanos: 0, tokens: 0 } });
  });

  it('while earlier settlements wait, a new one queues behind them even when Redis would take it', async () => {
    const l = await ledger();
    const usageKey = `t${prefix}:{acme}:usage`;
    await inspect((r) => r.set(usageKey, 'not a stream'));
    await l.settle(null, record({ ref: 'stuck', costNanos: 5 }));
    await l.settle(null, record({ ref: 'fine', tenant: 'beta', costNanos: 7 }));
    expect(l.pendingCount).toBe(2);
    expect(await inspect((r) => r.exists(`t${prefix}:{beta}:usage`))).toBe(0);
    await inspect((r) => r.del(usageKey));
    expect(await l.drain(5000)).toBe(true);
    expect((await l.usagePage(null, 0, 10)).records.map((u) => u.ref)).toEqual(['stuck', 'fine']);
  });

  it('scripts are sent once, then called by their hash', async () => {
    const l = await ledger();
    await l.settle(null, record({ ref: 'first' }));
    const calls = async (): Promise<{ eval: number; evalsha: number }> => {
      const info = await inspect((r) => r.info('commandstats'));
      const count = (cmd: string) => Number(new RegExp(`^cmdstat_${cmd}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
      return { eval: count('eval'), evalsha: count('evalsha') };
    };
    const before = await calls();
    for (const ref of ['r1', 'r2', 'r3']) await l.settle(null, record({ ref }));
    const after = await calls();
    expect(after.evalsha - before.evalsha).toBe(3);
    expect(after.eval - before.eval).toBe(0);
  });

  it('connect() waits a bounded time for a server that does not answer, and close() leaves no connection behind', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket)); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as AddressInfo).port;
      const l = newLedger({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 20_000 });
      // Generous bound: the command timeout (20 s) is what an unbounded wait would take.
      const waited = await Promise.race([l.connect(200).then(() => 'returned'), new Promise((r) => setTimeout(() => r('still waiting'), 10_000))]);
      expect(waited).toBe('returned');
      expect(l.connected).toBe(false);
    } finally {
      silent.close();
      for (const socket of sockets) socket.destroy();
    }
    const clients = () => inspect(async (r) => (String(await r.call('CLIENT', 'LIST')).match(/^id=/gm) ?? []).length);
    const { log, lines } = capturedLog();
    const base = await clients();
    const l = await ledger({}, log);
    expect(await clients()).toBe(base + 1);
    await l.close();
    await vi.waitFor(async () => expect(await clients()).toBe(base), { timeout: 5000, interval: 20 });
    // A clean shutdown reports nothing.
    expect(lines).toEqual([]);
  });

  it('before connect(): admission and slots are unavailable (with the reason), settlements queue, readiness says unavailable', async () => {
    const l = newLedger();
    expect(l.connected).toBe(false);
    expect(await l.reserve(over(1))).toEqual({ kind: 'unavailable', reason: 'redis not connected' });
    expect(await l.acquireSlot('acme', 's1', 1, T0)).toBe('unavailable');
    l.releaseSlot('acme', 's1');
    // None of it started the connection: that is connect()'s job.
    expect(l.readiness()).toBe('redis ledger unavailable');
    await l.settle(null, record({ ref: 'early', costNanos: 5 }));
    expect(l.pendingCount).toBe(1);
    await l.connect();
    expect(l.connected).toBe(true);
    expect(await l.drain(5000)).toBe(true);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(5);
  });

  it('without slotTtlMs a session slot lives 60 s without a heartbeat (its set twice that)', async () => {
    const l = await ledger();
    expect(await l.acquireSlot('acme', 's1', 1, T0)).toBe(true);
    const key = `t${prefix}:{acme}:slots`;
    expect(await inspect((r) => r.zscore(key, 's1'))).toBe(String(T0 + 60_000));
    const pttl = await inspect((r) => r.pttl(key));
    expect(pttl).toBeGreaterThan(60_000);
    expect(pttl).toBeLessThanOrEqual(120_000);
    // A second instance sees the slot until then, and not after.
    const b = await ledger({ keyPrefix: `t${prefix}:` });
    expect(await b.acquireSlot('acme', 's2', 1, T0 + 59_999)).toBe(false);
    expect(await b.acquireSlot('acme', 's2', 1, T0 + 60_000)).toBe(true);
  });

  it('settlements are dated by the ledger\'s wall clock: a record from a closed day counts into the wall\'s day', async () => {
    // Past the day's grace (one day after it ends), at 01:00: still T0's month (month keys keep a day's grace too).
    const later = NEXT_DAY + 86_400_000 + 3_600_000;
    const l = await ledger({ wall: () => later });
    await l.settle(null, record({ ref: 'yesterday', costNanos: 70 }));
    expect((await l.status('acme', NO_CAPS, later)).day.spent.nanos).toBe(70);
    expect((await l.status('acme', NO_CAPS, T0)).day.spent.nanos).toBe(0);
    expect((await l.status('acme', NO_CAPS, T0)).month.spent.nanos).toBe(70);
    // Without a wall clock the system time dates it (the day may roll over while the test runs).
    const { log, lines } = capturedLog();
    const system = await ledger({ wall: null }, log);
    const before = `d:${utcDate(Date.now())}`;
    await system.settle(null, record({ ref: 'old', ts: Date.now() - 3 * 86_400_000, costNanos: 9 }));
    const after = `d:${utcDate(Date.now())}`;
    const late = lines.filter((x) => x['msg'] === 'metering: late settlement counted into the current period');
    expect(late).toHaveLength(1);
    expect([before, after]).toContain(late[0]!['countedIn']);
    expect((await system.status('acme', NO_CAPS, Date.parse(`${String(late[0]!['countedIn']).slice(2)}T12:00:00Z`))).day.spent.nanos).toBe(9);
  });

  it('Redis stopped: admin reads and writes fail at once instead of waiting for a reconnect', async () => {
    const l = await ledger({ commandTimeoutMs: 300 });
    await redis.stop(true);
    await vi.waitFor(() => expect(l.connected).toBe(false), { timeout: 5000, interval: 10 });
    const notQueued = /enableOfflineQueue/;
    await expect(l.status('acme', NO_CAPS, T0)).rejects.toThrow(notQueued);
    await expect(l.setOverride('acme', 'day', { nanos: 5 })).rejects.toThrow(notQueued);
    await expect(l.resetSpend('acme', 'day', T0)).rejects.toThrow(notQueued);
    await expect(l.usagePage('acme', 0, 10)).rejects.toThrow(notQueued);
    await redis.restart();
    await vi.waitFor(() => expect(l.connected).toBe(true), { timeout: 8000, interval: 20 });
    // Nothing of it ran later.
    expect((await l.status('acme', NO_CAPS, T0)).day.override).toEqual({ nanos: null, tokens: null });
  });
});

describe('timing policies', () => {
  it('heartbeats session slots three times per slot TTL, at most once a second', () => {
    expect([200, 3000, 3002, 6000, 60_000].map(heartbeatEveryMs)).toEqual([1000, 1000, 1000, 2000, 20_000]);
  });

  it('waits 100 ms after the first failed attempt, doubling up to 2 s, and never more', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50, 5000].map(reconnectDelayMs)).toEqual([100, 200, 400, 800, 1600, 2000, 2000, 2000, 2000]);
  });
});

describe('redis ledger: usage pages', () => {
  it('the cursor orders tenants by name, not config order: records sharing one entry id in two streams come once each', async () => {
    // Each tenant's stream numbers its own entries, so `T0-0` is in both: the tenant breaks the tie.
    const l = await ledger({ tenants: ['beta', 'acme'] });
    for (const [i, tenant] of ['acme', 'beta', 'acme', 'beta'].entries()) await l.settle(null, record({ tenant, ref: `r${i}` }));
    const seen: string[] = [];
    let page = await l.usagePage(null, 0, 1);
    for (let pages = 0; page.records.length > 0 && pages < 10; pages++) {
      seen.push(...page.records.map((r) => r.ref));
      page = await l.usagePage(null, page.next!, 1);
    }
    expect(seen).toEqual(['r0', 'r1', 'r2', 'r3']);
  });
});
