import { join } from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ledgerContract } from '../../test/metering/ledger-contract.js';
import { recentNoon } from '../../test/support/clock.js';
import type { FromWorker, ToWorker } from '../server/worker-protocol.js';
import type { CapHit, Ledger, ReserveRequest, UsageRecord } from './ledger.js';
import { NO_CAPS, type CapSet } from './limits.js';
import { dayPeriod } from './periods.js';
import { isLedgerCall, isLedgerReply, LedgerHost, RemoteLedger, WORKER_LOST_STATUS, type LedgerCall, type LedgerMethod, type LedgerReply } from './remote-ledger.js';
import { SqliteLedger } from './sqlite-ledger.js';
import { tempDir } from '../../test/support/temp-dir.js';

const NOON = recentNoon();
const TIMEOUT = 1000;
const ledgers: SqliteLedger[] = [];
const ports: MessagePort[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const p of ports.splice(0)) p.close();
  await Promise.all(ledgers.splice(0).map((l) => l.close()));
});

function owner(file = ':memory:'): SqliteLedger {
  const l = new SqliteLedger(file, { wall: () => NOON });
  ledgers.push(l);
  return l;
}

/** Only the owner's timers are fake: the channel (a real MessagePort pair) delivers as usual. */
const fakeTimers = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
/** Lets queued microtasks and promise callbacks run (setImmediate is never faked here). */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

interface WireOptions {
  readonly timeoutMs?: number;
  readonly maxPending?: number;
  /** The owner runs the call but its answer is lost on the way back. */
  readonly loseReply?: (c: LedgerCall) => boolean;
}

/**
 * A worker's RemoteLedger and the primary's LedgerHost on the two ends of a real MessageChannel
 * (structured clone, ordered, asynchronous, like the IPC channel), each side filtering messages
 * the way worker.ts and workers.ts do.
 */
function wire(ledger: Ledger, o: WireOptions = {}) {
  const { port1: workerEnd, port2: primaryEnd } = new MessageChannel();
  ports.push(workerEnd, primaryEnd);
  const host = new LedgerHost(ledger);
  const sent: LedgerCall[] = [];
  let connected = true;
  let paused = false;
  const backlog: LedgerCall[] = [];
  const remote: RemoteLedger = new RemoteLedger({
    kind: 'sqlite',
    timeoutMs: o.timeoutMs ?? TIMEOUT,
    ...(o.maxPending === undefined ? {} : { maxPending: o.maxPending }),
    send: (call) => {
      if (!connected) return false;
      sent.push(call);
      workerEnd.postMessage(call);
      return true;
    },
  });
  // worker.ts: ledger replies go to the RemoteLedger; the channel closing disconnects it.
  workerEnd.on('message', (m: unknown) => {
    if (isLedgerReply(m)) remote.onReply(m);
  });
  const closed = new Promise<void>((resolve) =>
    workerEnd.once('close', () => {
      remote.disconnect();
      resolve();
    }),
  );
  // workers.ts: ledger calls go to the host, its answers back to the worker.
  const serve = (c: LedgerCall) =>
    host.handle(c, (r) => {
      if (!o.loseReply?.(c)) primaryEnd.postMessage(r);
    });
  primaryEnd.on('message', (m: unknown) => {
    if (!isLedgerCall(m)) return;
    if (paused) backlog.push(m);
    else serve(m);
  });
  return {
    host,
    remote,
    sent,
    /** The worker has heard that the channel closed. */
    closed,
    /** The owner is busy: calls wait, in order. */
    pause() {
      paused = true;
    },
    /** The owner catches up, in order. */
    resume() {
      paused = false;
      for (const c of backlog.splice(0)) serve(c);
    },
    /** The channel closes; the worker learns it a moment later (its 'close' event). */
    cut() {
      connected = false;
      workerEnd.close();
    },
  };
}

/** A RemoteLedger whose owner is this test: it sees every call and answers by hand. */
function manual(options: { maxPending?: number; timeoutMs?: number; sendFails?: () => boolean } = {}) {
  const sent: LedgerCall[] = [];
  const remote = new RemoteLedger({
    kind: 'redis',
    timeoutMs: options.timeoutMs ?? TIMEOUT,
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
    send: (call) => {
      if (options.sendFails?.()) return false;
      sent.push(structuredClone(call));
      return true;
    },
  });
  const answer = (call: LedgerCall | undefined, value: unknown) => remote.onReply({ t: 'ledger-reply', id: call!.id, ok: true, value });
  return { remote, sent, answer };
}

const caps = { ...NO_CAPS, dayNanos: 1000 };
const usage = (costNanos: number, tenant = 'acme'): UsageRecord => ({ ts: NOON, tenant, session: 's', source: 'response', ref: `resp_${costNanos}`, model: 'gpt-realtime', status: 'completed', costNanos, inputTokens: 1, outputTokens: 1, cachedTokens: 0, totalTokens: 2, input: null, cached: null, output: null, seconds: null, estimated: false, settledBy: 'response.done', fallbackPrice: false });
const reserve = (id: string, nanos: number, c: CapSet = caps, tenant = 'acme'): ReserveRequest => ({ tenant, id, amount: { nanos, tokens: 0 }, caps: c, wallMs: NOON, mode: 'worst_case' });
const spentHit = (spent: number): CapHit => ({ cap: 'daily_usd', period: dayPeriod(NOON), limit: 1000, spent, reserved: 0 });
const call = (method: LedgerMethod, args: unknown[] = [], id = 7): LedgerCall => ({ t: 'ledger', id, method, args });

describe('RemoteLedger + LedgerHost', () => {
  it('two workers reserving against one owner never grant more than the cap together', async () => {
    const l = owner();
    const a = wire(l);
    const b = wire(l);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).remote.reserve(reserve(`r${i}`, 300))));
    expect(results.filter((r) => r.kind === 'ok')).toHaveLength(3);
    expect(results.filter((r) => r.kind === 'over')).toHaveLength(7);
    // Refused for reservations others hold, not for spend: no "cap spent" hint.
    expect(a.remote.knownOver('acme', NOON)).toBeNull();
  });

  it("a worker's usage pages are the owner's: the cursor crosses the wire and the next page follows it", async () => {
    const l = owner();
    const a = wire(l);
    for (const n of [1, 2, 3]) await a.remote.settle(null, usage(n));
    const first = await a.remote.usagePage(null, 0, 2);
    expect(first).toEqual(l.usagePage(null, 0, 2));
    expect(first.records.map((r) => r.ref)).toEqual(['resp_1', 'resp_2']);
    expect((await a.remote.usagePage(null, first.next!, 2)).records.map((r) => r.ref)).toEqual(['resp_3']);
  });

  it('a spent cap becomes a synchronous hint for a second (server-started responses are cancelled before any frame)', async () => {
    const l = owner();
    const a = wire(l);
    expect(await a.remote.reserve(reserve('r1', 900))).toEqual({ kind: 'ok' });
    await a.remote.settle('r1', usage(1000));
    expect((await a.remote.reserve(reserve('r2', 1))).kind).toBe('over');
    expect(a.remote.knownOver('acme', NOON)).toMatchObject({ cap: 'daily_usd', spent: 1000, limit: 1000 });
    expect(a.remote.knownOver('acme', NOON + 999)).toMatchObject({ cap: 'daily_usd', spent: 1000, limit: 1000 });
    expect(a.remote.knownOver('acme', NOON + 1000)).toBeNull();
    // Per tenant: another tenant is not over.
    expect(a.remote.knownOver('beta', NOON)).toBeNull();
  });

  it('a grant lifts the hint at once (a cap raised by the admin counts on the next reserve)', async () => {
    const l = owner();
    const a = wire(l);
    await a.remote.settle(null, usage(1000));
    expect((await a.remote.reserve(reserve('r1', 1))).kind).toBe('over');
    expect(a.remote.knownOver('acme', NOON)).not.toBeNull();
    // Another tenant's grant is not this tenant's.
    expect(await a.remote.reserve(reserve('b1', 1, caps, 'beta'))).toEqual({ kind: 'ok' });
    expect(a.remote.knownOver('acme', NOON)).not.toBeNull();
    expect(await a.remote.reserve(reserve('r2', 1, { ...caps, dayNanos: 5000 }))).toEqual({ kind: 'ok' });
    expect(a.remote.knownOver('acme', NOON)).toBeNull();
  });

  it('an owner that cannot decide does not lift a spent cap; a refusal for reservations alone does not set one', async () => {
    const m = manual();
    const first = m.remote.reserve(reserve('r1', 1));
    m.answer(m.sent[0], { kind: 'over', hit: spentHit(1000) });
    expect(await first).toEqual({ kind: 'over', hit: spentHit(1000) });
    const second = m.remote.reserve(reserve('r2', 1));
    m.answer(m.sent[1], { kind: 'unavailable', reason: 'redis down' });
    expect(await second).toEqual({ kind: 'unavailable', reason: 'redis down' });
    expect(m.remote.knownOver('acme', NOON)).toEqual(spentHit(1000));

    const n = manual();
    const third = n.remote.reserve(reserve('r3', 1));
    n.answer(n.sent[0], { kind: 'over', hit: spentHit(999) });
    expect((await third).kind).toBe('over');
    expect(n.remote.knownOver('acme', NOON)).toBeNull();
  });

  /*
   * A worker that dies: until 2026-12-06 the host released its reservations (releaseAll), so every
   * response it was running, which the upstream bills, was free and its budget spendable again
   * (test/server/adversary-workers-kill.test.ts). Its slots are released; its reservations billed.
   */
  it('a worker that goes away has its session slots released and its reservations billed at their amount, not given back', async () => {
    const l = owner();
    const a = wire(l);
    const b = wire(l);
    expect(await a.remote.reserve(reserve('sess_a:1', 900))).toEqual({ kind: 'ok' });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe(true);
    expect(a.host.held).toEqual({ reservations: 1, slots: 1 });
    expect((await b.remote.reserve(reserve('r2', 900))).kind).toBe('over');
    expect(await b.remote.acquireSlot('acme', 's2', 1, NOON)).toBe(false);
    expect(a.host.workerGone()).toEqual({ billed: 1, costNanos: 900, failed: 0 });
    expect(a.host.held).toEqual({ reservations: 0, slots: 0 });
    // The slot is free; the budget is not: the dead worker's response is spent, nothing is reserved.
    expect(await b.remote.acquireSlot('acme', 's3', 1, NOON)).toBe(true);
    expect((await b.remote.reserve(reserve('r3', 900))).kind).toBe('over'); // was: ok (released for free)
    const day = l.status('acme', caps, NOON).day;
    expect([day.spent.nanos, day.reserved.nanos]).toEqual([900, 0]);
    const [record, ...more] = l.usagePage('acme', 0, 10).records;
    expect(more).toEqual([]);
    expect(record).toMatchObject({ tenant: 'acme', session: 'sess_a', source: 'response', ref: 'sess_a:1', model: 'unknown', status: WORKER_LOST_STATUS, costNanos: 900, totalTokens: 0, estimated: true, settledBy: 'worker_lost_estimate', input: null, output: null });
    expect(record!.ts).toBeGreaterThanOrEqual(NOON);
  });

  it('the host releases every slot and bills every reservation of a gone worker, across tenants, and nothing it had settled or released', async () => {
    const l = owner();
    const a = wire(l);
    const b = wire(l);
    for (const [tenant, token] of [['acme', 's1'], ['acme', 's2'], ['beta', 's1']] as const) {
      expect(await a.remote.acquireSlot(tenant, token, 2, NOON)).toBe(true);
    }
    expect(await a.remote.reserve(reserve('x:1', 300))).toEqual({ kind: 'ok' });
    expect(await a.remote.reserve(reserve('x:2', 400))).toEqual({ kind: 'ok' });
    expect(await a.remote.reserve(reserve('y:1', 600, caps, 'beta'))).toEqual({ kind: 'ok' });
    expect(await a.remote.reserve(reserve('x:3', 100))).toEqual({ kind: 'ok' });
    await a.remote.settle('x:1', usage(250));
    await a.remote.release('acme', 'x:3');
    expect(a.host.held).toEqual({ reservations: 2, slots: 3 });
    expect(a.host.workerGone()).toEqual({ billed: 2, costNanos: 1000, failed: 0 });
    expect(a.host.held).toEqual({ reservations: 0, slots: 0 });
    expect(await b.remote.acquireSlot('acme', 's3', 2, NOON)).toBe(true);
    expect(await b.remote.acquireSlot('acme', 's4', 2, NOON)).toBe(true);
    expect(await b.remote.acquireSlot('beta', 's3', 1, NOON)).toBe(true);
    expect([l.status('acme', caps, NOON).day.spent.nanos, l.status('beta', caps, NOON).day.spent.nanos]).toEqual([650, 600]);
    expect([l.status('acme', caps, NOON).day.reserved.nanos, l.status('beta', caps, NOON).day.reserved.nanos]).toEqual([0, 0]);
    expect(l.usagePage(null, 0, 10).records.map((r) => [r.ref, r.status, r.estimated])).toEqual([
      ['resp_250', 'completed', false],
      ['x:2', WORKER_LOST_STATUS, true],
      ['y:1', WORKER_LOST_STATUS, true],
    ]);
  });

  it("a gone worker's reservation is billed on the worker's clock (its reserve's wall time), not the owner's", async () => {
    const l = owner();
    const a = wire(l);
    const yesterday = NOON - 86_400_000;
    expect(await a.remote.reserve({ ...reserve('s:1', 700), wallMs: yesterday })).toEqual({ kind: 'ok' });
    a.host.workerGone();
    const [record] = l.usagePage('acme', 0, 10).records;
    expect(record!.ts).toBeGreaterThanOrEqual(yesterday);
    expect(record!.ts).toBeLessThan(yesterday + 60_000);
    expect(l.status('acme', caps, yesterday).day.spent.nanos).toBe(700);
    expect(l.status('acme', caps, NOON).day.spent.nanos).toBe(0);
  });

  it('a settle that fails when the worker is gone releases that reservation (it does not block the tenant) and bills the rest', async () => {
    const l = owner();
    let broken = false;
    const flaky: Ledger = new Proxy(l, {
      get(target, prop, receiver) {
        if (prop === 'settle') {
          return (id: string | null, r: UsageRecord) => {
            if (broken && r.tenant === 'beta') throw new Error('disk full');
            return target.settle(id, r);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
    });
    const a = wire(flaky);
    expect(await a.remote.reserve(reserve('x:1', 400))).toEqual({ kind: 'ok' });
    expect(await a.remote.reserve(reserve('y:1', 500, caps, 'beta'))).toEqual({ kind: 'ok' });
    broken = true;
    expect(a.host.workerGone()).toEqual({ billed: 1, costNanos: 400, failed: 1 });
    expect(l.status('acme', caps, NOON).day.spent.nanos).toBe(400);
    expect([l.status('beta', caps, NOON).day.spent.nanos, l.status('beta', caps, NOON).day.reserved.nanos]).toEqual([0, 0]);
  });

  it('a grant that lands after the worker is gone (an asynchronous ledger answering late) is released at once', async () => {
    const l = owner();
    const gates: Array<() => void> = [];
    const late: Ledger = new Proxy(l, {
      get(target, prop, receiver) {
        if (prop === 'reserve' || prop === 'acquireSlot') {
          return (...args: unknown[]) =>
            new Promise((resolve) => gates.push(() => resolve((Reflect.get(target, prop, receiver) as (...a: unknown[]) => unknown).apply(target, args))));
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
      },
    });
    const host = new LedgerHost(late);
    const replies: LedgerReply[] = [];
    host.handle(call('reserve', [reserve('x:1', 900)], 1), (r) => replies.push(r));
    host.handle(call('acquireSlot', ['acme', 's1', 1, NOON], 2), (r) => replies.push(r));
    expect(host.workerGone()).toEqual({ billed: 0, costNanos: 0, failed: 0 });
    for (const open of gates.splice(0)) open();
    await tick();
    expect(replies.map((r) => r.ok)).toEqual([true, true]);
    expect(host.held).toEqual({ reservations: 0, slots: 0 });
    expect(l.status('acme', caps, NOON).day.reserved.nanos).toBe(0);
    expect(l.acquireSlot('acme', 's2', 1)).toBe(true);
    expect(l.usagePage('acme', 0, 10).records).toEqual([]);
  });

  it('the host holds only what was granted and forgets what the worker gave back', async () => {
    const l = owner();
    const a = wire(l);
    expect(await a.remote.reserve(reserve('r1', 900))).toEqual({ kind: 'ok' });
    expect((await a.remote.reserve(reserve('r2', 900))).kind).toBe('over');
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe(true);
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe(true); // the same slot again
    expect(await a.remote.acquireSlot('acme', 's2', 1, NOON)).toBe(false);
    expect(a.host.held).toEqual({ reservations: 1, slots: 1 });
    await a.remote.release('acme', 'r1');
    a.remote.releaseSlot('acme', 's1');
    // releaseSlot wants no answer; the channel is ordered, so an answered call behind it is a barrier.
    expect((await a.remote.status('acme', caps, NOON)).day.reserved.nanos).toBe(0);
    expect(a.host.held).toEqual({ reservations: 0, slots: 0 });
    expect(await a.remote.acquireSlot('acme', 's2', 1, NOON)).toBe(true);
    expect(await a.remote.reserve(reserve('r3', 1000))).toEqual({ kind: 'ok' });
  });

  it('a slot the worker leaves (its call went on elsewhere) is no longer the worker\'s: the host forgets it and does not give it back when the worker goes; an owner whose slots are its own (SQLite) releases it', async () => {
    const l = owner();
    const a = wire(l);
    const b = wire(l);
    expect(await a.remote.acquireSlot('acme', 'hold_call', 1, NOON)).toBe(true);
    expect(await a.remote.acquireSlot('beta', 'kept', 1, NOON)).toBe(true);
    a.remote.leaveSlot('acme', 'hold_call');
    // leaveSlot wants no answer; the channel is ordered, so an answered call behind it is a barrier.
    await a.remote.status('acme', caps, NOON);
    expect(a.host.held).toEqual({ reservations: 0, slots: 1 });
    // The SQLite owner has no slots to leave to another instance: leaving gives it back.
    expect(await b.remote.acquireSlot('acme', 'other', 1, NOON)).toBe(true);
    expect(a.host.workerGone()).toEqual({ billed: 0, costNanos: 0, failed: 0 });
    expect(await b.remote.acquireSlot('beta', 'other', 1, NOON)).toBe(true);
  });

  it('settle bills on the owner and drops the reservation; the host forgets it', async () => {
    const l = owner();
    const a = wire(l);
    await a.remote.reserve(reserve('r1', 500));
    await a.remote.reserve(reserve('r2', 100));
    await a.remote.settle('r1', usage(400));
    expect(a.host.held.reservations).toBe(1);
    await a.remote.settle(null, usage(50));
    expect(a.host.held.reservations).toBe(1);
    const s = await a.remote.status('acme', caps, NOON);
    expect(s.day.spent.nanos).toBe(450);
    expect(s.day.reserved.nanos).toBe(100);
  });

  it('admin calls reach the owner: overrides, spend resets and usage records', async () => {
    const l = owner();
    const a = wire(l);
    await a.remote.settle(null, usage(300));
    await a.remote.settle(null, usage(200, 'beta'));
    await a.remote.setOverride('acme', 'day', { nanos: 5000 });
    expect(l.status('acme', caps, NOON).day.capNanos).toBe(5000);
    expect((await a.remote.status('acme', caps, NOON)).day.capNanos).toBe(5000);
    await a.remote.resetSpend('acme', 'day', NOON);
    expect(l.status('acme', caps, NOON).day.spent.nanos).toBe(0);
    expect(l.status('acme', caps, NOON).month.spent.nanos).toBe(300);
    expect((await a.remote.usagePage('acme', 0, 10)).records.map((r) => r.tenant)).toEqual(['acme']);
    expect((await a.remote.usagePage(null, 0, 1)).records).toHaveLength(1);
    expect((await a.remote.usagePage(null, NOON + 1, 10)).records).toEqual([]);
    expect((await a.remote.usagePage(null, 0, 10)).records.map((r) => r.costNanos)).toEqual([300, 200]);
  });

  it('every wait is bounded: an owner that does not answer makes reserve and acquireSlot unavailable, and the late grant is released', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l);
    a.pause();
    let answered = false;
    const pending = a.remote.reserve(reserve('r1', 600)).finally(() => (answered = true));
    const slot = a.remote.acquireSlot('acme', 's1', 1, NOON);
    await vi.advanceTimersByTimeAsync(TIMEOUT - 1);
    expect(answered).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await pending).toEqual({ kind: 'unavailable', reason: `ledger owner did not answer reserve within ${TIMEOUT} ms`, ownerSilent: true });
    expect(await slot).toBe('unavailable');
    // After the timeout the worker gives back what the owner may still grant (no answer wanted).
    expect(a.sent.slice(2)).toEqual([
      { t: 'ledger', id: 0, method: 'release', args: ['acme', 'r1'] },
      { t: 'ledger', id: 0, method: 'releaseSlot', args: ['acme', 's1'] },
    ]);
    // The owner catches up: it grants, then takes back, in channel order.
    a.resume();
    vi.useRealTimers();
    const s = await a.remote.status('acme', caps, NOON);
    expect(s.day.reserved.nanos).toBe(0);
    expect(a.host.held).toEqual({ reservations: 0, slots: 0 });
    expect(await a.remote.acquireSlot('acme', 's2', 1, NOON)).toBe(true);
  });

  it('a lost answer is a timeout: the grant the worker never saw is released', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l, { loseReply: (c) => (c.method === 'reserve' && (c.args[0] as ReserveRequest).id === 'r1') || (c.method === 'acquireSlot' && c.args[1] === 's1') });
    const pending = a.remote.reserve(reserve('r1', 600));
    const slot = a.remote.acquireSlot('acme', 's1', 1, NOON);
    await vi.advanceTimersByTimeAsync(TIMEOUT);
    expect((await pending).kind).toBe('unavailable');
    expect(await slot).toBe('unavailable');
    vi.useRealTimers();
    expect((await a.remote.status('acme', caps, NOON)).day.reserved.nanos).toBe(0);
    expect(a.host.held).toEqual({ reservations: 0, slots: 0 });
    expect(await a.remote.reserve(reserve('r2', 1000))).toEqual({ kind: 'ok' });
  });

  it('other calls that time out reject with the reason and give nothing back; a late answer is ignored', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l);
    a.pause();
    const status = a.remote.status('acme', caps, NOON);
    const settle = a.remote.settle(null, usage(100));
    const checks = [
      expect(status).rejects.toThrow(new Error(`ledger owner did not answer status within ${TIMEOUT} ms`)),
      expect(settle).rejects.toThrow(new Error(`ledger owner did not answer settle within ${TIMEOUT} ms`)),
    ];
    await vi.advanceTimersByTimeAsync(TIMEOUT);
    await Promise.all(checks);
    expect(a.sent.map((c) => c.method)).toEqual(['status', 'settle']);
    // The owner answers late: the answers are dropped, the settle still counts on the owner.
    a.resume();
    vi.useRealTimers();
    expect((await a.remote.status('acme', caps, NOON)).day.spent.nanos).toBe(100);
  });

  it('an answer in time ends the wait: no late give-back of a grant the worker holds', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l);
    expect(await a.remote.reserve(reserve('r1', 600))).toEqual({ kind: 'ok' });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(TIMEOUT * 2);
    expect(a.sent.map((c) => c.method)).toEqual(['reserve', 'acquireSlot']);
    vi.useRealTimers();
    expect((await a.remote.status('acme', caps, NOON)).day.reserved.nanos).toBe(600);
    expect(await a.remote.acquireSlot('acme', 's2', 1, NOON)).toBe(false);
  });

  it("an owner's error reaches the caller as a rejection with its message; reserve and acquireSlot answer unavailable", async () => {
    const boom = (): never => {
      throw new Error('disk I/O error');
    };
    const failing = {
      kind: 'sqlite',
      synchronous: true,
      reserve: boom,
      acquireSlot: boom,
      status: boom,
      settle: () => Promise.reject(new Error('database is locked')),
      usagePage: () => Promise.reject('busy'),
    } as unknown as Ledger;
    const a = wire(failing);
    expect(await a.remote.reserve(reserve('r1', 1))).toEqual({ kind: 'unavailable', reason: 'disk I/O error' });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe('unavailable');
    await expect(a.remote.status('acme', caps, NOON)).rejects.toThrow(new Error('disk I/O error'));
    await expect(a.remote.settle(null, usage(1))).rejects.toThrow(new Error('database is locked'));
    await expect(a.remote.usagePage(null, 0, 1)).rejects.toThrow(new Error('busy'));
    expect(a.host.held).toEqual({ reservations: 0, slots: 0 });
  });

  it('the host answers every call with an id, exactly, and never a call with id 0', async () => {
    const host = new LedgerHost({
      kind: 'sqlite',
      synchronous: true,
      status: () => ({ tenant: 'acme' }),
      usagePage: () => {
        throw new Error('disk I/O error');
      },
      settle: () => Promise.reject(new Error('database is locked')),
      release: () => Promise.reject(42),
      releaseSlot: () => {
        throw new Error('gone');
      },
    } as unknown as Ledger);
    const replies: LedgerReply[] = [];
    host.handle(call('status', ['acme', NO_CAPS, NOON], 1), (r) => replies.push(r));
    host.handle(call('usagePage', [null, 0, 1], 2), (r) => replies.push(r));
    host.handle(call('settle', [null, usage(1)], 3), (r) => replies.push(r));
    host.handle(call('release', ['acme', 'r1'], 4), (r) => replies.push(r));
    for (const m of ['status', 'usagePage', 'settle', 'release', 'releaseSlot'] as const) host.handle(call(m, [], 0), (r) => replies.push(r));
    await tick();
    expect(replies).toEqual([
      { t: 'ledger-reply', id: 2, ok: false, error: 'disk I/O error' },
      { t: 'ledger-reply', id: 1, ok: true, value: { tenant: 'acme' } },
      { t: 'ledger-reply', id: 3, ok: false, error: 'database is locked' },
      { t: 'ledger-reply', id: 4, ok: false, error: '42' },
    ]);
    expect(replies.every((r) => isLedgerReply(r))).toBe(true);
  });

  it('a closed channel fails every call at once and readiness says so', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l);
    expect(a.remote.readiness()).toBeNull();
    a.pause();
    const pending = a.remote.status('acme', caps, NOON);
    const reserving = a.remote.reserve(reserve('r', 1));
    const slot = a.remote.acquireSlot('acme', 's1', 1, NOON);
    a.remote.disconnect();
    await expect(pending).rejects.toThrow(new Error('ledger owner unreachable'));
    expect(await reserving).toEqual({ kind: 'unavailable', reason: 'ledger owner unreachable', ownerSilent: true });
    expect(await slot).toBe('unavailable');
    // Nothing is left waiting, and nothing more is sent.
    expect(vi.getTimerCount()).toBe(0);
    expect(await a.remote.reserve(reserve('r2', 1))).toEqual({ kind: 'unavailable', reason: 'ledger owner unreachable', ownerSilent: true });
    expect(await a.remote.acquireSlot('acme', 's2', 1, NOON)).toBe('unavailable');
    await expect(a.remote.settle('r2', usage(1))).rejects.toThrow(new Error('ledger owner unreachable'));
    a.remote.releaseSlot('acme', 's1');
    await vi.advanceTimersByTimeAsync(TIMEOUT);
    expect(a.sent.map((c) => c.method)).toEqual(['status', 'reserve', 'acquireSlot']);
    expect(vi.getTimerCount()).toBe(0);
    expect(a.remote.readiness()).toBe('ledger owner unreachable');
  });

  it('close() is a disconnect: waiting calls fail, readiness says unreachable', async () => {
    const l = owner();
    const a = wire(l);
    a.pause();
    const pending = a.remote.usagePage(null, 0, 1);
    await a.remote.close();
    await expect(pending).rejects.toThrow(new Error('ledger owner unreachable'));
    expect(a.remote.readiness()).toBe('ledger owner unreachable');
  });

  it('a channel that closed under the worker fails calls at once, before the worker hears of it', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l, { maxPending: 1 });
    a.cut();
    // The send fails: no wait, no give-back later (nothing reached the owner), no timer left.
    await expect(a.remote.status('acme', caps, NOON)).rejects.toThrow(new Error('ledger owner unreachable'));
    expect(await a.remote.reserve(reserve('r1', 1))).toEqual({ kind: 'unavailable', reason: 'ledger owner unreachable', ownerSilent: true });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe('unavailable');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(TIMEOUT);
    expect(a.sent).toEqual([]);
    // Then the close event arrives.
    await a.closed;
    expect(a.remote.readiness()).toBe('ledger owner unreachable');
  });

  it('a call whose send fails fails at once and leaves nothing behind, even if no close event ever comes', async () => {
    fakeTimers();
    let failing = true;
    const m = manual({ maxPending: 1, sendFails: () => failing });
    await expect(m.remote.status('acme', caps, NOON)).rejects.toThrow(new Error('ledger owner unreachable'));
    expect(await m.remote.reserve(reserve('r1', 1))).toEqual({ kind: 'unavailable', reason: 'ledger owner unreachable', ownerSilent: true });
    expect(await m.remote.acquireSlot('acme', 's1', 1, NOON)).toBe('unavailable');
    expect(vi.getTimerCount()).toBe(0);
    failing = false;
    await vi.advanceTimersByTimeAsync(TIMEOUT);
    // Nothing reached the owner, so nothing is given back; the failed calls took no room.
    expect(m.sent).toEqual([]);
    expect(m.remote.readiness()).toBeNull();
    const s = m.remote.status('acme', caps, NOON);
    m.answer(m.sent[0], 'fine');
    expect(await s).toBe('fine');
  });

  it('a worker waits on at most maxPending calls; beyond it reserve and acquireSlot are unavailable and nothing is sent', async () => {
    fakeTimers();
    const l = owner();
    const a = wire(l, { maxPending: 2 });
    a.pause();
    const first = a.remote.status('acme', caps, NOON);
    const second = a.remote.reserve(reserve('r1', 100));
    await expect(a.remote.status('acme', caps, NOON)).rejects.toThrow(new Error('too many ledger calls waiting for the owner'));
    expect(await a.remote.reserve(reserve('r2', 100))).toEqual({ kind: 'unavailable', reason: 'too many ledger calls waiting for the owner', ownerSilent: true });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe('unavailable');
    expect(a.sent.map((c) => c.method)).toEqual(['status', 'reserve']);
    // Answers free the room.
    a.resume();
    expect((await first).tenant).toBe('acme');
    expect(await second).toEqual({ kind: 'ok' });
    expect(await a.remote.acquireSlot('acme', 's1', 1, NOON)).toBe(true);
    // So do timeouts.
    a.pause();
    const late = [a.remote.usagePage(null, 0, 1), a.remote.usagePage(null, 0, 1)].map((p) => p.catch((e: Error) => e.message));
    await vi.advanceTimersByTimeAsync(TIMEOUT);
    expect(await Promise.all(late)).toEqual([`ledger owner did not answer usagePage within ${TIMEOUT} ms`, `ledger owner did not answer usagePage within ${TIMEOUT} ms`]);
    const again = a.remote.status('acme', caps, NOON);
    a.resume();
    expect((await again).day.reserved.nanos).toBe(100);
  });

  it('by default a worker waits on up to 10 000 calls', async () => {
    fakeTimers();
    const m = manual();
    const waiting = Array.from({ length: 10_000 }, () => m.remote.status('acme', caps, NOON).catch((e: Error) => e.message));
    expect(m.sent).toHaveLength(10_000);
    await expect(m.remote.status('acme', caps, NOON)).rejects.toThrow(new Error('too many ledger calls waiting for the owner'));
    expect(m.sent).toHaveLength(10_000);
    m.remote.disconnect();
    expect(new Set(await Promise.all(waiting))).toEqual(new Set(['ledger owner unreachable']));
  });

  it('answers find their call by id; an answer for no waiting call is ignored', async () => {
    const m = manual();
    const a = m.remote.status('acme', caps, NOON);
    const b = m.remote.usagePage('acme', 0, 5);
    expect(m.sent.map((c) => isLedgerCall(c))).toEqual([true, true]);
    expect(m.sent[0]!.id).not.toBe(m.sent[1]!.id);
    expect(() => m.remote.onReply({ t: 'ledger-reply', id: 0, ok: true, value: 'stray' })).not.toThrow();
    expect(() => m.remote.onReply({ t: 'ledger-reply', id: 123_456, ok: false, error: 'stray' })).not.toThrow();
    m.answer(m.sent[1], ['b']);
    m.answer(m.sent[0], 'a');
    // A second answer for an answered call changes nothing.
    m.remote.onReply({ t: 'ledger-reply', id: m.sent[0]!.id, ok: false, error: 'again' });
    expect(await a).toBe('a');
    expect(await b).toEqual(['b']);
  });

  it('releaseSlot wants no answer and waits on nothing', async () => {
    fakeTimers();
    const m = manual({ maxPending: 1 });
    m.remote.releaseSlot('acme', 's1');
    expect(m.sent).toEqual([{ t: 'ledger', id: 0, method: 'releaseSlot', args: ['acme', 's1'] }]);
    expect(vi.getTimerCount()).toBe(0);
    // It takes no room among the waiting calls.
    const s = m.remote.status('acme', caps, NOON);
    m.answer(m.sent[1], 'ok');
    expect(await s).toBe('ok');
  });

  it('is asynchronous in every call, as the Ledger contract says of a non-synchronous ledger', async () => {
    const m = manual();
    expect(m.remote.synchronous).toBe(false);
    expect(m.remote.kind).toBe('redis');
    const answer = m.remote.status('acme', caps, NOON);
    expect(answer).toBeInstanceOf(Promise);
    m.remote.disconnect();
    await expect(answer).rejects.toThrow(/unreachable/);
  });
});

describe('message guards (the IPC channel carries other messages too)', () => {
  const methods: LedgerMethod[] = ['reserve', 'settle', 'release', 'status', 'setOverride', 'resetSpend', 'usagePage', 'acquireSlot', 'releaseSlot'];

  it('isLedgerCall takes every ledger method and nothing else', () => {
    for (const method of methods) expect(isLedgerCall({ t: 'ledger', id: 1, method, args: [] })).toBe(true);
    expect(isLedgerCall({ t: 'ledger', id: 0, method: 'releaseSlot', args: ['acme', 's'] })).toBe(true);
    const others: unknown[] = [
      null,
      undefined,
      'ledger',
      42,
      [],
      {},
      { t: 'ledger-call', id: 1, method: 'status', args: [] },
      { id: 1, method: 'status', args: [] },
      { t: 'ledger', id: '1', method: 'status', args: [] },
      { t: 'ledger', method: 'status', args: [] },
      { t: 'ledger', id: 1, method: 'close', args: [] },
      { t: 'ledger', id: 1, method: 'knownOver', args: [] },
      // Removed 2026-12-07 (usagePage serves every reader).
      { t: 'ledger', id: 1, method: 'usage', args: [] },
      { t: 'ledger', id: 1, method: '', args: [] },
      { t: 'ledger', id: 1, method: 1, args: [] },
      { t: 'ledger', id: 1, args: [] },
      { t: 'ledger', id: 1, method: 'status', args: {} },
      { t: 'ledger', id: 1, method: 'status' },
      { t: 'ledger-reply', id: 1, ok: true, value: null },
      { t: 'metrics-reply', id: 1, text: '', sessions: 0, sessionsStarted: 0 } satisfies FromWorker,
      { t: 'failed', message: 'boom' } satisfies FromWorker,
    ];
    for (const m of others) expect(isLedgerCall(m), JSON.stringify(m) ?? String(m)).toBe(false);
  });

  it('isLedgerReply takes ledger answers only', () => {
    expect(isLedgerReply({ t: 'ledger-reply', id: 1, ok: true, value: null } satisfies ToWorker)).toBe(true);
    expect(isLedgerReply({ t: 'ledger-reply', id: 2, ok: false, error: 'x' } satisfies ToWorker)).toBe(true);
    const others: unknown[] = [
      null,
      undefined,
      'ledger-reply',
      7,
      {},
      { t: 'ledger', id: 1, method: 'status', args: [] },
      { t: 'ledger-reply', id: '1', ok: true, value: null },
      { t: 'ledger-reply', ok: true, value: null },
      { id: 1, ok: true, value: null },
      { t: 'metrics', id: 1 } satisfies ToWorker,
      { t: 'shutdown', drainMs: 0 } satisfies ToWorker,
    ];
    for (const m of others) expect(isLedgerReply(m), JSON.stringify(m) ?? String(m)).toBe(false);
  });
});

// The Ledger contract, kept by a worker's RemoteLedger over the channel to the owner's SQLite ledger.
const dir = tempDir('rp-remote-contract-');
ledgerContract({
  name: 'sqlite through a worker (RemoteLedger over a MessageChannel)',
  sharedReservations: false,
  async open(store) {
    return wire(owner(join(dir, `${store}.sqlite`))).remote;
  },
});

const capsOf1000 = { ...NO_CAPS, dayNanos: 1000 };
const usageOf = (costNanos: number): UsageRecord => ({ ts: NOON, tenant: 'acme', session: 's', source: 'response', ref: `resp_${costNanos}`, model: 'gpt-realtime', status: 'completed', costNanos, inputTokens: 1, outputTokens: 1, cachedTokens: 0, totalTokens: 2, input: null, cached: null, output: null, seconds: null, estimated: false, settledBy: 'response.done', fallbackPrice: false });
const reserveOf = (id: string, nanos: number): ReserveRequest => ({ tenant: 'acme', id, amount: { nanos, tokens: 0 }, caps: capsOf1000, wallMs: NOON, mode: 'worst_case' });

/** A worker's RemoteLedger and an owner that can be made slow (calls wait in order, then run). */
function slowOwner() {
  const ledger = owner();
  const host = new LedgerHost(ledger);
  let slow = false;
  const backlog: LedgerCall[] = [];
  const serve = (c: LedgerCall) => host.handle(c, (r: LedgerReply) => queueMicrotask(() => remote.onReply(structuredClone(r))));
  const remote: RemoteLedger = new RemoteLedger({
    kind: 'sqlite',
    timeoutMs: 60_000,
    maxPending: 2,
    send: (call) => {
      const c = structuredClone(call);
      if (slow) backlog.push(c);
      else queueMicrotask(() => serve(c));
      return true;
    },
  });
  return {
    ledger,
    remote,
    slow: () => (slow = true),
    catchUp: () => {
      slow = false;
      for (const c of backlog.splice(0)) serve(c);
    },
  };
}

/**
 * maxPending bounded every call, settle and release included (found 2026-12-05 by a helper's
 * mutation work): a settle made while the owner was behind was refused locally and never sent (its
 * cost never reached the cap), a release left its reservation held until the worker exited.
 */
describe('RemoteLedger at maxPending: settle and release still go', () => {
  it('a settle made while the owner is behind still bills the owner', async () => {
    const w = slowOwner();
    expect(await w.remote.reserve(reserveOf('r1', 500))).toEqual({ kind: 'ok' });
    w.slow();
    const backlog = [w.remote.status('acme', capsOf1000, NOON), w.remote.status('acme', capsOf1000, NOON)];
    // The response ends while the owner is behind: the filter settles it (and only logs a failure).
    const settled = w.remote.settle('r1', usageOf(900)).catch((e: Error) => e.message);
    w.catchUp();
    await Promise.all(backlog);
    await settled;
    const s = w.ledger.status('acme', capsOf1000, NOON);
    expect(s.day.spent.nanos).toBe(900); // actual: 0 — the cost never reached the cap
    expect(s.day.reserved.nanos).toBe(0); // actual: 500 — held until the worker exits
  });

  it('a release made while the owner is behind still frees the reservation', async () => {
    const w = slowOwner();
    expect(await w.remote.reserve(reserveOf('r1', 900))).toEqual({ kind: 'ok' });
    w.slow();
    const backlog = [w.remote.status('acme', capsOf1000, NOON), w.remote.status('acme', capsOf1000, NOON)];
    const released = w.remote.release('acme', 'r1').catch((e: Error) => e.message);
    w.catchUp();
    await Promise.all(backlog);
    await released;
    // The tenant has spent nothing: its next response must be admitted.
    expect(await w.remote.reserve(reserveOf('r2', 900))).toEqual({ kind: 'ok' }); // actual: over (r1 still held)
  });
});
