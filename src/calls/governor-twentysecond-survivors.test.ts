import { afterEach, describe, expect, it, vi } from 'vitest';
import { answer, governorRig, type RigOptions } from '../../test/calls/governor-rig.js';
import { CallGovernors } from './governor.js';
import { SqliteCallStore, type CallStore } from './store.js';

/*
 * What the mutants of the governor's hang-up outcome (1c7f3e4: a hang-up that never landed withdraws
 * the recorded end reason) showed untested: a 3xx answer to the hang-up, a hang-up given up by
 * shutdown, a store that throws instead of rejecting. On governor.test.ts's rig.
 */
let live: CallGovernors[] = [];
function rig(options: RigOptions = {}) {
  const r = governorRig(options);
  live.push(r.governors);
  return r;
}
afterEach(async () => {
  vi.useRealTimers();
  for (const g of live) await g.close();
  live = [];
});

/** The store `real`, but its amendCall throwing as it is called (no promise). */
function throwingAmend(real: SqliteCallStore): { store: CallStore; calls: unknown[] } {
  const calls: unknown[] = [];
  const store = new Proxy(real, {
    get(target, name) {
      if (name === 'amendCall') {
        return (_callId: string, amendment: { endedByProxy?: unknown }) => {
          calls.push(amendment.endedByProxy);
          throw new Error('store bug');
        };
      }
      const value: unknown = Reflect.get(target, name);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, calls };
}

describe('the end reason after a hang-up that did not land', () => {
  it('a 3xx answer is no hang-up: the reason is withdrawn (a 299 keeps it)', async () => {
    for (const [status, kept] of [[300, false], [302, false], [299, true]] as const) {
      const store = new SqliteCallStore(':memory:');
      const r = rig({ store, control: () => answer(status) });
      const sideband = await r.govern('rtc_1');
      r.governors.capReached('rtc_1', true);
      await vi.waitFor(() => expect(sideband.closedWith).toBe('budget_exceeded'));
      const reason = (await store.getCall('rtc_1', r.wall()))?.endedByProxy;
      expect([status, reason === null ? 'cleared' : reason?.code]).toEqual([status, kept ? 'budget_exceeded' : 'cleared']);
      expect([status, r.lines.filter((l) => l['event'] === 'call_end_reason_withdrawn').map((l) => l['hangup'])]).toEqual([status, kept ? [] : ['refused']]);
    }
  });

  it('a hang-up waiting for its retry at shutdown is given up: the reason withdrawn, logged as given up, no retry sent', async () => {
    vi.useFakeTimers();
    const store = new SqliteCallStore(':memory:');
    const r = rig({ store, control: () => answer(503) });
    const sideband = await r.govern('rtc_1');
    r.governors.capReached('rtc_1', true);
    await vi.advanceTimersByTimeAsync(0);
    expect([r.hangups.length, sideband.closedWith]).toEqual([1, null]);
    await r.governors.close();
    expect(sideband.closedWith).toBe('budget_exceeded');
    expect((await store.getCall('rtc_1', r.wall()))?.endedByProxy).toBeNull();
    expect(r.lines.filter((l) => l['event'] === 'call_end_reason_withdrawn')).toMatchObject([{ call: 'rtc_1', hangup: 'given_up', msg: "call end: the hang-up did not land; its reason is withdrawn from the call's record" }]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(r.hangups).toHaveLength(1);
  });

  it('a store whose amendCall throws: the hang-up goes out, the sideband closes, both writes logged as failed', async () => {
    const { store, calls } = throwingAmend(new SqliteCallStore(':memory:'));
    const r = rig({ store, control: () => answer(404) });
    const sideband = await r.govern('rtc_1');
    r.governors.capReached('rtc_1', true);
    await vi.waitFor(() => expect(sideband.closedWith).toBe('budget_exceeded'));
    expect(r.hangups).toEqual(['hangup:rtc_1']);
    expect(calls).toEqual([{ code: 'budget_exceeded', message: 'The call reached its cost cap and was ended.', closeCode: 4002 }, null]);
    const failures = r.lines.filter((l) => l['call'] === 'rtc_1' && l['err'] === 'store bug').map((l) => String(l['msg']));
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatch(/^call end: the store did not take its reason/);
    expect(failures[1]).toMatch(/^call end: the store did not take the reason's withdrawal/);
  });
});
