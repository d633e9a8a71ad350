import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, placeCall, say, types, until } from './support.js';

/*
 * Adversary review (2026-12-05): a call's lease row expires with its binding (calls.bindingTtlSec).
 * A call still running past that (a bindingTtlSec shorter than a session, which the config
 * accepts: any positive number) has its lease dropped at the next sweep; the sweep after finds
 * the lease gone, takes it as "another instance governs the call now" and lets the sideband go
 * without a hang-up. Nobody claims it (its binding expired): the call runs on unmetered and
 * unguarded, against "a call the proxy cannot govern does not go on".
 */
const LEASE_SEC = 3;
let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: {} }, calls: { bindingTtlSec: 2, leaseSec: LEASE_SEC } });
});
afterAll(async () => {
  await tp?.stop();
});

describe('adversary: a call that outlives its binding', () => {
  it('is never let go ungoverned: it stays governed (its responses are guarded and metered) or it is hung up', async () => {
    const { call } = await placeCall(tp, 'acme');
    // Past the binding's expiry and several sweeps (every leaseSec/3).
    await until(() => tp.logs.some((l) => l['event'] === 'call_released') || call.control.some((c) => c.action === 'hangup'), 'a sweep decides about the call', 6 * LEASE_SEC * 1000).catch(() => undefined);
    const hungUp = call.control.some((c) => c.action === 'hangup');
    const released = tp.logs.filter((l) => l['event'] === 'call_released');
    if (!hungUp) {
      expect(released).toEqual([]);
      // Still governed: a response on the call is read by the proxy's sideband.
      say(call, 'say: still governed?');
      await until(() => types(call).includes('response.done'), 'the response');
      expect(call.state).toBe('active');
    }
    expect(hungUp || released.length === 0).toBe(true);
  }, 40_000);
});
