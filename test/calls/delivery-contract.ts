import { expect } from 'vitest';
import type { CallStore } from '../../src/calls/store.js';

/**
 * What every call store must do with webhook ids, for two instances `a` and `b` sharing it: an id
 * is claimed (in progress) by one delivery at a time, its outcome is known to both, and only the
 * claim's own holder forgets it. `t0` is the proxy wall clock the test starts at. Found 2026-12-05:
 * the store knew only "seen", so a redelivery to `b` while `a` was still handling it was a duplicate.
 */
export async function deliveryContract(a: CallStore, b: CallStore, t0: number): Promise<void> {
  const lease = 60_000;
  const ttl = 600_000;
  expect(await a.claimDelivery('wh_c', 'tok_a', lease, t0)).toBe('claimed');
  // In progress on a: b does not know its outcome (not a duplicate), and may not take it.
  expect(await b.claimDelivery('wh_c', 'tok_b', lease, t0 + 1)).toBe('in_progress');
  expect(await a.claimDelivery('wh_c', 'tok_a2', lease, t0 + 1)).toBe('in_progress');
  // Only the claim's holder forgets it.
  await b.forgetDelivery('wh_c', 'tok_b');
  expect(await b.claimDelivery('wh_c', 'tok_b', lease, t0 + 2)).toBe('in_progress');
  // a's handling failed: forgotten, b's redelivery takes it.
  await a.forgetDelivery('wh_c', 'tok_a');
  expect(await b.claimDelivery('wh_c', 'tok_b', lease, t0 + 3)).toBe('claimed');
  // A stale forget (a's old claim) leaves b's claim alone.
  await a.forgetDelivery('wh_c', 'tok_a');
  expect(await a.claimDelivery('wh_c', 'tok_a3', lease, t0 + 4)).toBe('in_progress');
  // Handled on b: a duplicate everywhere, and no forget undoes it.
  await b.deliveryHandled('wh_c', ttl, t0 + 5);
  expect(await a.claimDelivery('wh_c', 'tok_a4', lease, t0 + 6)).toBe('handled');
  await b.forgetDelivery('wh_c', 'tok_b');
  await a.forgetDelivery('wh_c', 'tok_a4');
  await b.forgetDelivery('wh_never_seen', 'tok_b');
  expect(await b.claimDelivery('wh_c', 'tok_b2', lease, t0 + 7)).toBe('handled');
  // Handled wins over a claim taken over meanwhile (a handled delivery is final).
  expect(await a.claimDelivery('wh_d', 'tok_a', lease, t0)).toBe('claimed');
  await b.deliveryHandled('wh_d', ttl, t0 + 1);
  expect(await a.claimDelivery('wh_d', 'tok_a5', lease, t0 + 2)).toBe('handled');
  // Concurrent first deliveries on both: exactly one claims it.
  const claims = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).claimDelivery('wh_race', `tok_${i}`, lease, t0)));
  expect(claims.filter((c) => c === 'claimed')).toHaveLength(1);
  expect(claims.filter((c) => c === 'in_progress')).toHaveLength(7);
}
