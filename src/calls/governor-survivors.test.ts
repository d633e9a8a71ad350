import { afterEach, describe, expect, it } from 'vitest';
import { answer, flush, governorRig, record, tenants, type FakeSideband, type RigOptions } from '../../test/calls/governor-rig.js';
import { ProxyError } from '../protocol/errors.js';
import { CallGovernors } from './governor.js';
import { SqliteCallStore, type CallStore, type ClaimedCall } from './store.js';

/*
 * What the governor's mutation survivors of 2026-12-06 (after commit 54652e0) showed untested: a lapsed
 * call claimed here (admission, refusal, shutdown meanwhile, a sideband already there), a lease lost
 * with or without its binding, the settled tokens' writes (coalesced, never thrown), and the sidebands'
 * ids. On governor.test.ts's rig (test/calls/governor-rig.ts), its SQLite store wrapped where a test
 * holds a store call.
 */
const acme = tenants.get('acme')!;

function rig(options: RigOptions = {}) {
  const r = governorRig(options);
  live.push(r.governors);
  return r;
}

let live: CallGovernors[] = [];
/** Gates a failing test left shut: opened before shutdown waits on what they hold. */
let shut: (() => void)[] = [];
afterEach(async () => {
  for (const open of shut) open();
  shut = [];
  for (const g of live) await g.close();
  live = [];
});


/** A promise the test settles. */
function gate<T = void>() {
  let open!: (v: T) => void;
  const wait = new Promise<T>((r) => (open = r));
  shut.push(() => open(null as T));
  return { wait, open };
}

/** A rig on `store` that admits every taken-over call and records which it admitted. */
function admittingRig(store: CallStore) {
  const admitted: string[] = [];
  const r = rig({
    store,
    admitTakenOver: async (call) => {
      admitted.push(call.callId);
      return null;
    },
  });
  return { r, admitted };
}

/** The store, with some of its methods replaced (the others are the real store's). */
function wrapped(real: CallStore, over: Partial<CallStore>): CallStore {
  const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(real)).filter((k) => k !== 'constructor');
  const base = Object.fromEntries(methods.map((k) => [k, (...args: unknown[]) => (real as unknown as Record<string, (...a: unknown[]) => unknown>)[k]!(...args)]));
  return { ...base, ...over } as unknown as CallStore;
}

describe('a lapsed call claimed here', () => {
  it('admission refused as budget_unavailable or overloaded: governed all the same (live already), not hung up', async () => {
    const refusal: Record<string, ProxyError> = { rtc_ledger: new ProxyError('budget_unavailable'), rtc_busy: new ProxyError('overloaded') };
    const r = rig({ admitTakenOver: async (call) => refusal[call.callId] ?? null });
    await r.orphan('rtc_ledger');
    await r.orphan('rtc_busy');
    await r.governors.sweep();
    await flush();
    expect([...r.sidebands.keys()].sort()).toEqual(['rtc_busy', 'rtc_ledger']);
    expect(r.hangups).toEqual([]);
  });

  it('admission refused otherwise: the hang-up says which refusal (call_hangup why)', async () => {
    const r = rig({ admitTakenOver: async () => new ProxyError('budget_exceeded') });
    await r.orphan('rtc_spent');
    await r.governors.sweep();
    await flush();
    expect(r.hangups).toEqual(['hangup:rtc_spent']);
    expect(r.hangupWhy('rtc_spent')).toEqual(['the re-claimed call was refused admission (budget_exceeded)']);
  });

  it("a tenant no longer configured: the hang-up says so (call_hangup why)", async () => {
    const r = rig();
    await r.orphan('rtc_gone', 'globex');
    await r.governors.sweep();
    await flush();
    expect(r.hangupWhy('rtc_gone')).toEqual(['the call was re-claimed but its tenant is no longer configured']);
  });

  it('claimed while this instance shuts down (the claim in flight): no admission, no sideband, no hang-up; the lease is released for the next instance', async () => {
    const real = new SqliteCallStore(':memory:');
    const held = gate();
    const claims = gate();
    const store = wrapped(real, {
      claimLapsed: async (owner, untilMs, wallMs, limit) => {
        claims.open();
        await held.wait;
        return real.claimLapsed(owner, untilMs, wallMs, limit);
      },
    });
    const { r, admitted } = admittingRig(store);
    await r.orphan('rtc_1');
    const sweep = r.governors.sweep();
    await claims.wait;
    const closing = r.governors.close();
    held.open();
    await sweep;
    await closing;
    expect(admitted).toEqual([]);
    expect(r.sidebands.size).toBe(0);
    expect(r.hangups).toEqual([]);
    expect(await r.claimable()).toEqual(['rtc_1']);
  });

  /** A sweep that claimed orphaned call `callId` and waits on its admission until `admit` answers it. */
  async function sweepWhileAdmitting(callId: string) {
    const admission = gate<ProxyError | null>();
    const asked = gate();
    const r = rig({
      admitTakenOver: () => {
        asked.open();
        return admission.wait;
      },
    });
    await r.orphan(callId);
    const sweep = r.governors.sweep();
    await asked.wait;
    return { r, sweep, admit: (refusal: ProxyError | null) => admission.open(refusal) };
  }

  it('shutdown begins while the claimed call is being admitted: no sideband, no hang-up; the lease is released for the next instance', async () => {
    const { r, sweep, admit } = await sweepWhileAdmitting('rtc_1');
    const closing = r.governors.close();
    admit(null);
    await sweep;
    await closing;
    expect(r.sidebands.size).toBe(0);
    expect(r.hangups).toEqual([]);
    expect(await r.claimable()).toEqual(['rtc_1']);
  });

  it('handed back as lapsed while its sideband here is live (a renewal the store lost): no second admission, the one sideband goes on', async () => {
    const real = new SqliteCallStore(':memory:');
    let handBack: ClaimedCall[] = [];
    const store = wrapped(real, {
      claimLapsed: async (owner, untilMs, wallMs, limit) => [...handBack, ...(await real.claimLapsed(owner, untilMs, wallMs, limit))],
    });
    const { r, admitted } = admittingRig(store);
    const first = await r.govern('rtc_1');
    handBack = [{ callId: 'rtc_1', record: record(), tokens: 0 }];
    await r.governors.sweep();
    await flush();
    expect(admitted).toEqual([]);
    expect(r.all).toEqual([first]);
    expect(first.ended).toBe(false);
    expect(r.hangups).toEqual([]);
  });

  it('started here while its admission ran: that sideband goes on, and the claim neither starts another nor reports a re-attach (call_reattached)', async () => {
    const { r, sweep, admit } = await sweepWhileAdmitting('rtc_1');
    r.start('rtc_1');
    admit(null);
    await sweep;
    expect(r.all).toHaveLength(1);
    expect(r.all[0]!.ended).toBe(false);
    expect(r.lines.filter((l) => l['event'] === 'call_reattached')).toEqual([]);
  });
});

describe('a lease lost here', () => {
  it('a store that does not answer whether the call is still bound counts as bound: let go (call_released), never hung up', async () => {
    const real = new SqliteCallStore(':memory:');
    const store = wrapped(real, { getCall: () => Promise.reject(new Error('store down')) });
    const r = rig({ store });
    const s = await r.govern('rtc_1');
    // Another instance holds the lease now.
    await real.putCall('rtc_1', record(), { owner: 'gov_other', untilMs: r.wall() + 60_000 }, r.wall());
    await r.governors.sweep();
    await flush();
    expect(r.hangups).toEqual([]);
    expect(s.ended).toBe(true);
    expect(r.lines.filter((l) => l['event'] === 'call_released').map((l) => [l['call'], l['why']])).toEqual([['rtc_1', 'another instance governs the call now']]);
    expect(s.closedError).toMatchObject({ code: 'server_shutting_down', message: 'This instance stopped governing the call: another instance governs the call now.' });
  });

  it('with its binding (calls.bindingTtlSec): hung up at once, without waiting for running responses; why and close error name the binding', async () => {
    const r = rig();
    const s = await r.govern('rtc_1', 1_000_000 + 60_000);
    // A response runs that never finishes: a drain would wait for it (metering.lingerAfterClientCloseMs).
    s.busy = new Promise(() => undefined);
    r.advance(61_000);
    // The first sweep's claim drops the expired binding's lease; the second finds it lost.
    await r.governors.sweep();
    await r.governors.sweep();
    await flush();
    expect(r.hangups).toEqual(['hangup:rtc_1']);
    expect(s.idleWaits).toEqual([]);
    expect(r.hangupWhy('rtc_1')).toEqual(['the call outlived its binding (calls.bindingTtlSec)']);
    expect(s.closedError).toMatchObject({ code: 'session_duration_exceeded', closeCode: 4002, message: 'The call outlived its binding (calls.bindingTtlSec) and was ended.' });
  });

  it('with its binding while a cap is ending the call (its hang-up in flight): not ended twice; the sideband closes after that hang-up, with the cap\'s error', async () => {
    const answered = gate();
    const r = rig({ control: () => answered.wait.then(() => answer(200)) });
    const s = await r.govern('rtc_1', 1_000_000 + 60_000);
    r.governors.capReached('rtc_1', false);
    await flush();
    expect(r.hangups).toEqual(['hangup:rtc_1']);
    r.advance(61_000);
    await r.governors.sweep();
    await r.governors.sweep();
    await flush();
    expect(s.closedError).toBeNull();
    answered.open();
    await flush();
    expect(s.closedError).toMatchObject({ code: 'budget_exceeded' });
    expect(r.hangups).toEqual(['hangup:rtc_1']);
    expect(r.hangupWhy('rtc_1')).toEqual(['the call reached its cost cap']);
  });

  it('let go (another instance took it) while its sideband lingers, then its binding expires: this instance does not hang it up', async () => {
    const r = rig();
    const s = await r.govern('rtc_1', 1_000_000 + 60_000);
    s.lingers = true;
    await r.store.putCall('rtc_1', record('acme', 1_000_000 + 60_000), { owner: 'gov_other', untilMs: r.wall() + 120_000 }, r.wall());
    await r.governors.sweep();
    expect(s.closedError).toMatchObject({ code: 'server_shutting_down' });
    expect(s.ended).toBe(false);
    r.advance(61_000);
    await r.governors.sweep();
    await r.governors.sweep();
    await flush();
    expect(r.hangups).toEqual([]);
    s.finish();
    await flush();
    expect(r.hangups).toEqual([]);
  });

  it('one whose sideband ended while the renewal was in flight (its binding gone too): the sweep goes on and claims the lapsed calls', async () => {
    const real = new SqliteCallStore(':memory:');
    const held = gate();
    const renewing = gate();
    const store = wrapped(real, {
      renewLeases: async (owner, callIds, untilMs) => {
        renewing.open();
        await held.wait;
        return real.renewLeases(owner, callIds, untilMs);
      },
    });
    const r = rig({ store });
    const s = await r.govern('rtc_1', 1_000_000 + 60_000);
    r.advance(61_000);
    await r.store.putCall('rtc_orphan', record('acme', 10_000_000), { owner: 'gov_dead', untilMs: r.wall() - 1 }, r.wall());
    const sweep = r.governors.sweep();
    await renewing.wait;
    // The call ended (the upstream closed its sideband normally): its lease ends.
    s.endBy(1000);
    await flush();
    held.open();
    await sweep;
    expect([...r.sidebands.keys()].sort()).toEqual(['rtc_1', 'rtc_orphan']);
    expect(r.sidebands.get('rtc_orphan')!.ended).toBe(false);
    expect(r.hangups).toEqual([]);
    expect(r.lines.filter((l) => l['msg'] === 'call leases: the store did not answer (calls stay governed here)')).toEqual([]);
  });
});

describe("a call's settled tokens, written to the store", () => {
  function counting(real: CallStore, hold = false) {
    const writes: number[] = [];
    let inFlight = 0;
    let most = 0;
    const pending: (() => void)[] = [];
    const store = wrapped(real, {
      recordTokens: (callId, owner, tokens) => {
        writes.push(tokens);
        most = Math.max(most, ++inFlight);
        const land = () => real.recordTokens(callId, owner, tokens).finally(() => inFlight--);
        if (!hold) return land();
        return new Promise<void>((resolve) => pending.push(() => void land().then(resolve)));
      },
    });
    return { store, writes, pending, most: () => most };
  }

  it('a settle that adds nothing to the count written (the same count, or a lower one) writes nothing', async () => {
    const real = new SqliteCallStore(':memory:');
    const c = counting(real);
    const r = rig({ store: c.store });
    const s = await r.govern('rtc_1');
    s.init.carried.settled(100);
    await flush();
    s.init.carried.settled(100);
    s.init.carried.settled(90);
    await flush();
    s.init.carried.settled(100);
    await flush();
    expect(c.writes).toEqual([100]);
    s.init.carried.settled(120);
    await flush();
    expect(c.writes).toEqual([100, 120]);
  });

  it('a store whose recordTokens throws: the settle does not throw (it runs inside metering), the failure is logged, the next settle writes', async () => {
    const real = new SqliteCallStore(':memory:');
    let throws = true;
    const store = wrapped(real, {
      recordTokens: (callId, owner, tokens) => {
        if (throws) throw new Error('store gone');
        return real.recordTokens(callId, owner, tokens);
      },
    });
    const r = rig({ store, onShutdown: 'handover' });
    const s = await r.govern('rtc_1');
    expect(() => s.init.carried.settled(10)).not.toThrow();
    await flush();
    expect(r.lines.some((l) => l['call'] === 'rtc_1' && l['err'] === 'store gone')).toBe(true);
    throws = false;
    s.init.carried.settled(15);
    await r.governors.close();
    expect((await real.claimLapsed('gov_next', r.wall() + 30_000, r.wall(), 10)).map((c) => [c.callId, c.tokens])).toEqual([['rtc_1', 15]]);
  });

  it("a new sideband of the call here waits for the earlier sideband's write in flight: one write at a time per call, the latest count after it", async () => {
    const real = new SqliteCallStore(':memory:');
    const c = counting(real, true);
    const r = rig({ store: c.store, onShutdown: 'handover' });
    const first = await r.govern('rtc_1');
    first.init.carried.settled(100);
    // The sideband drops (hung up) while its write is in flight; the call is governed here again.
    first.endBy(1006);
    await flush();
    await real.putCall('rtc_1', record(), r.governors.lease(), r.wall());
    r.governors.start({ callId: 'rtc_1', tenant: acme, model: 'gpt-realtime', kind: 'webrtc', usage: { startedAtMs: r.wall(), tokens: 100 } });
    const second = r.sidebands.get('rtc_1')!;
    expect(second).not.toBe(first);
    second.init.carried.settled(150);
    await flush();
    expect(c.writes).toEqual([100]);
    c.pending.shift()!();
    await flush();
    expect(c.writes).toEqual([100, 150]);
    c.pending.shift()!();
    await flush();
    expect(c.most()).toBe(1);
  });

  it("an ended call's count is forgotten once its last write lands, not kept for the instance's life", async () => {
    const real = new SqliteCallStore(':memory:');
    const c = counting(real, true);
    const r = rig({ store: c.store, onShutdown: 'handover' });
    const s = await r.govern('rtc_1');
    s.init.carried.settled(100);
    await flush();
    expect(r.governors.trackedTokenCounts).toBe(1);
    // The sideband ends while its write is in flight: the count stays until the write lands.
    s.endBy(1006);
    await flush();
    expect(r.governors.trackedTokenCounts).toBe(1);
    c.pending.shift()!();
    await flush();
    expect(c.writes).toEqual([100]);
    expect(r.governors.trackedTokenCounts).toBe(0);
    // A call that ends with nothing in flight is forgotten at once.
    const t = await r.govern('rtc_2');
    t.init.carried.settled(10);
    await flush();
    c.pending.shift()!();
    await flush();
    expect(r.governors.trackedTokenCounts).toBe(1);
    t.endBy(1006);
    await flush();
    expect(r.governors.trackedTokenCounts).toBe(0);
  });
});

describe('sidebands and shutdown', () => {
  it("each sideband has its own id: one call's sideband ending leaves the other governed", async () => {
    const r = rig();
    const a = r.start('rtc_a');
    const b = r.start('rtc_b');
    expect(a.id).toMatch(/^rpc_[0-9a-f]{16}$/);
    expect(b.id).not.toBe(a.id);
    (a as FakeSideband).endBy(1000);
    expect(r.governors.governs(a.id)).toBe(false);
    expect(r.governors.governs(b.id)).toBe(true);
  });

  it('without openSideband, start before the filter chain is ready throws and governs nothing', () => {
    const r = rig({ relay: true });
    expect(() => r.start('rtc_1')).toThrow('calls: the filter chain is not ready');
    expect(r.governors.size).toBe(0);
  });

  it('handover: call_released says "handed over at shutdown"; shutdown waits for every lingering sideband, not only the first to end', async () => {
    const r = rig({ onShutdown: 'handover' });
    const a = await r.govern('rtc_a');
    const b = await r.govern('rtc_b');
    a.lingers = true;
    b.lingers = true;
    let closed = false;
    const closing = r.governors.close().then(() => (closed = true));
    await flush();
    expect(r.lines.filter((l) => l['event'] === 'call_released').map((l) => [l['call'], l['why']])).toEqual([
      ['rtc_a', 'handed over at shutdown'],
      ['rtc_b', 'handed over at shutdown'],
    ]);
    a.finish();
    // rtc_a's lease is released once it ended: by then a shutdown that stopped waiting would be done.
    await expect.poll(() => r.claimable()).toEqual(['rtc_a']);
    for (let i = 0; i < 5; i++) await flush();
    expect(closed).toBe(false);
    b.finish();
    await closing;
    expect(closed).toBe(true);
    expect(await r.claimable()).toEqual(['rtc_b']);
  });
});
