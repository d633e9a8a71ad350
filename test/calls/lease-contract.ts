import { expect } from 'vitest';
import { sipRouteKey } from '../../src/calls/sip.js';
import type { CallRecord, CallStore, ClaimedCall } from '../../src/calls/store.js';

/** A SIP call with the route that accepted it: an instance that takes it over judges its transfers by that route (2026-12-07). */
const record = (expiresAtMs: number): CallRecord => ({ tenant: 'acme', model: 'gpt-realtime', kind: 'sip', expiresAtMs, sipRoute: sipRouteKey({ tenant: 'acme', to: '+15551230001' }) });

/**
 * What every call store must do with leases, for two instances `a` and `b` sharing it. `t0` is the
 * proxy wall clock the test starts at (Redis TTLs meet the real clock: derived from Date.now()).
 */
export async function leaseContract(a: CallStore, b: CallStore, t0: number): Promise<void> {
  const expires = t0 + 60_000;
  await a.putCall('rtc_lease', record(expires), { owner: 'gov_a', untilMs: t0 + 1000 }, t0);
  expect(await b.getCall('rtc_lease', t0)).toEqual(record(expires));
  // A live lease is nobody else's to take.
  expect(await b.claimLapsed('gov_b', t0 + 2000, t0 + 999, 10)).toEqual([]);
  expect(await a.renewLeases('gov_a', ['rtc_lease'], t0 + 3000)).toEqual([]);
  expect(await b.claimLapsed('gov_b', t0 + 4000, t0 + 2000, 10)).toEqual([]);
  // Lapsed (instance a stopped renewing): b claims it with its binding, and a learns it lost it.
  const claimed = await b.claimLapsed('gov_b', t0 + 6000, t0 + 3000, 10);
  expect(claimed).toEqual([{ callId: 'rtc_lease', record: record(expires), tokens: 0 }]);
  expect(await a.renewLeases('gov_a', ['rtc_lease'], t0 + 7000)).toEqual(['rtc_lease']);
  expect(await b.renewLeases('gov_b', ['rtc_lease'], t0 + 7000)).toEqual([]);
  // Someone else's release changes nothing.
  await a.releaseCall('rtc_lease', 'gov_a', true);
  expect(await b.renewLeases('gov_b', ['rtc_lease'], t0 + 7000)).toEqual([]);
  // Handed over: claimable at once, long before the lease would have lapsed.
  await b.releaseCall('rtc_lease', 'gov_b', false);
  expect(await a.claimLapsed('gov_a', t0 + 9000, t0 + 3001, 10)).toEqual([{ callId: 'rtc_lease', record: record(expires), tokens: 0 }]);
  // Ended: nobody claims it again, even long after.
  await a.releaseCall('rtc_lease', 'gov_a', true);
  expect(await b.claimLapsed('gov_b', t0 + 30_000, t0 + 20_000, 10)).toEqual([]);
  expect(await a.renewLeases('gov_a', ['rtc_lease'], t0 + 30_000)).toEqual(['rtc_lease']);

  // Two instances sweeping at once never both get a call; the limit bounds one sweep.
  for (let i = 0; i < 5; i++) await a.putCall(`rtc_race_${i}`, record(expires), { owner: 'gov_dead', untilMs: t0 }, t0);
  const [one, two] = await Promise.all([a.claimLapsed('gov_a', t0 + 9000, t0 + 1, 3), b.claimLapsed('gov_b', t0 + 9000, t0 + 1, 3)]);
  const ids = [...one, ...two].map((c) => c.callId);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.sort()).toEqual([0, 1, 2, 3, 4].map((i) => `rtc_race_${i}`));
  expect(Math.max(one.length, two.length)).toBe(3);

  // A binding that expired is not re-claimed.
  await a.putCall('rtc_old', record(t0 + 500), { owner: 'gov_dead', untilMs: t0 }, t0);
  expect((await b.claimLapsed('gov_b', t0 + 9000, t0 + 600, 10)).map((c) => c.callId)).toEqual([]);

  await usageContract(a, b, t0);
}

/**
 * What a call's sidebands used toward the per-session limits survives a takeover: the call's start
 * (in its record) and the settled tokens its governing instance wrote (`recordTokens`), handed to
 * whoever claims it next, never lowered, written only by the lease's owner.
 */
async function usageContract(a: CallStore, b: CallStore, t0: number): Promise<void> {
  const expires = t0 + 60_000;
  const started: CallRecord = { ...record(expires), startedAtMs: t0 - 5000 };
  await a.putCall('rtc_usage', started, { owner: 'gov_a', untilMs: t0 + 1000 }, t0);
  await a.recordTokens('rtc_usage', 'gov_a', 120);
  // Writes may land out of order: a lower count never replaces a higher one.
  await a.recordTokens('rtc_usage', 'gov_a', 90);
  // Not the lease's owner: ignored.
  await b.recordTokens('rtc_usage', 'gov_b', 5000);
  // Lapsed: b claims the call with a's count and the call's start.
  expect(await b.claimLapsed('gov_b', t0 + 6000, t0 + 3000, 10)).toEqual([{ callId: 'rtc_usage', record: started, tokens: 120 }]);
  // a lost it: its late writes are ignored; b counts on.
  await a.recordTokens('rtc_usage', 'gov_a', 4000);
  await b.recordTokens('rtc_usage', 'gov_b', 300);
  // Handed over at b's shutdown: the next claim gets b's count.
  await b.releaseCall('rtc_usage', 'gov_b', false);
  expect(await a.claimLapsed('gov_a', t0 + 9000, t0 + 3001, 10)).toEqual([{ callId: 'rtc_usage', record: started, tokens: 300 }]);
  // Ended: its count goes with its lease (a late write does not bring it back).
  await a.releaseCall('rtc_usage', 'gov_a', true);
  await a.recordTokens('rtc_usage', 'gov_a', 700);
  const mine = async (claims: Promise<ClaimedCall[]>) => (await claims).filter((c) => c.callId === 'rtc_usage');
  expect(await mine(b.claimLapsed('gov_b', t0 + 30_000, t0 + 20_000, 10))).toEqual([]);
  // A call bound anew (same id) starts at zero whatever an earlier binding counted.
  await a.putCall('rtc_usage', started, { owner: 'gov_c', untilMs: t0 }, t0);
  expect(await mine(b.claimLapsed('gov_b', t0 + 9000, t0 + 1, 10))).toEqual([{ callId: 'rtc_usage', record: started, tokens: 0 }]);
}
