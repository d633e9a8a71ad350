import { describe, expect, it } from 'vitest';
import type { CapHit } from './ledger.js';
import { OverHints, type OverHint } from './over-hints.js';

/** A spent daily cap whose period resets at `resetsAt` (epoch ms; no calendar involved). */
function hit(resetsAt: number): CapHit {
  return { cap: 'daily_usd', period: { kind: 'day', key: 'd:test', startsAt: resetsAt - 86_400_000, resetsAt }, limit: 100, spent: 100, reserved: 0 };
}

const hint = (until: number, resetsAt: number): OverHint => ({ hit: hit(resetsAt), until });

describe('OverHints (the ledgers knownOver memory)', () => {
  it('a tenant with no hint has none', () => {
    const h = new OverHints();
    expect(h.fresh('t1', 0)).toBeNull();
  });

  it('a hint holds strictly before its deadline and is forgotten from it on', () => {
    const h = new OverHints();
    const x = hint(1_000, 10_000);
    h.set('t1', x);
    expect(h.fresh('t1', 0)).toBe(x);
    expect(h.fresh('t1', 999)).toBe(x);
    expect(h.fresh('t1', 1_000)).toBeNull();
    // Forgotten when read expired: an earlier clock does not bring it back.
    expect(h.fresh('t1', 500)).toBeNull();
  });

  it('a hint ends at its period reset even before its own deadline', () => {
    const h = new OverHints();
    const x = hint(10_000, 2_000);
    h.set('t1', x);
    expect(h.fresh('t1', 1_999)).toBe(x);
    expect(h.fresh('t1', 2_000)).toBeNull();
    expect(h.fresh('t1', 1_000)).toBeNull();
  });

  it('past both the deadline and the reset, no hint', () => {
    const h = new OverHints();
    h.set('t1', hint(1_000, 1_000));
    expect(h.fresh('t1', 5_000)).toBeNull();
  });

  it('hints are per tenant: an expired read of one leaves the others', () => {
    const h = new OverHints();
    const a = hint(1_000, 10_000);
    const b = hint(5_000, 10_000);
    h.set('a', a);
    h.set('b', b);
    expect(h.fresh('a', 2_000)).toBeNull();
    expect(h.fresh('b', 2_000)).toBe(b);
    expect(h.fresh('c', 2_000)).toBeNull();
  });

  it('set replaces the tenant hint; delete lifts it', () => {
    const h = new OverHints();
    const old = hint(1_000, 10_000);
    const newer = hint(3_000, 10_000);
    h.set('t1', old);
    h.set('t1', newer);
    expect(h.fresh('t1', 2_000)).toBe(newer);
    h.delete('t1');
    expect(h.fresh('t1', 0)).toBeNull();
    // Deleting an unknown tenant is harmless.
    h.delete('nobody');
    expect(h.fresh('nobody', 0)).toBeNull();
  });

  it('deleteIfCurrent lifts only the hint it names: a newer answer stands', () => {
    const h = new OverHints();
    const old = hint(5_000, 10_000);
    const newer = hint(5_000, 10_000); // equal fields, another answer
    h.set('t1', old);
    h.set('t1', newer);
    h.deleteIfCurrent('t1', old);
    expect(h.fresh('t1', 0)).toBe(newer);
    h.deleteIfCurrent('t1', newer);
    expect(h.fresh('t1', 0)).toBeNull();
    // Another tenant's identical hint object is not lifted by a call naming this tenant.
    h.set('t2', old);
    h.deleteIfCurrent('t1', old);
    expect(h.fresh('t2', 0)).toBe(old);
  });

  it('keeps extra fields of a richer hint type', () => {
    const h = new OverHints<OverHint & { checking: boolean }>();
    const x = { ...hint(5_000, 10_000), checking: true };
    h.set('t1', x);
    expect(h.fresh('t1', 0)?.checking).toBe(true);
  });
});
