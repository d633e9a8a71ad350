/**
 * TenantAudioHolds: mutants its own tests left alive (eighteenth session, applied by hand; see
 * test/mutation/open-survivors.md).
 */
import { describe, expect, it } from 'vitest';
import type { CapHit } from './ledger.js';
import type { TenantHold } from './hold-link.js';
import { TenantAudioHolds } from './tenant-holds.js';

const NOW = 1_000_000;
const HIT: CapHit = { cap: 'daily_usd', period: { kind: 'day', key: 'd:x', startsAt: 0, resetsAt: NOW + 86_400_000 }, limit: 10, spent: 10, reserved: 0 };

describe('TenantAudioHolds (survivors)', () => {
  it('a session joining in the same millisecond as its tenant\'s hold starts held', () => {
    const holds = new TenantAudioHolds();
    const finder = (): void => undefined;
    holds.join('a', finder, NOW);
    holds.overCap('a', HIT, finder, NOW);
    const told: CapHit[] = [];
    holds.join('a', (hit) => void told.push(hit), NOW);
    expect(told).toEqual([HIT]);
  });

  it('a session leaving twice, after its tenant was forgotten and joined again, does not unregister the new sessions', () => {
    const holds = new TenantAudioHolds();
    const leaveOld = holds.join('a', () => undefined, NOW);
    leaveOld();
    const told: string[] = [];
    const finder = (): void => undefined;
    holds.join('a', finder, NOW);
    holds.join('a', () => void told.push('new'), NOW);
    leaveOld();
    expect(holds.size).toBe(1);
    holds.overCap('a', HIT, finder, NOW);
    expect(told).toEqual(['new']);
  });
  it('one session leaving keeps its tenant\'s other sessions registered', () => {
    const holds = new TenantAudioHolds();
    const told: string[] = [];
    const finder = (): void => undefined;
    holds.join('a', finder, NOW);
    holds.join('a', () => void told.push('stays'), NOW);
    const leave = holds.join('a', () => void told.push('left'), NOW);
    leave();
    expect(holds.size).toBe(1);
    holds.overCap('a', HIT, finder, NOW);
    expect(told).toEqual(['stays']);
  });

  it('a hold found by a session that has left (its ledger answered late) is still told to the other processes', () => {
    const published: TenantHold[] = [];
    const holds = new TenantAudioHolds({ publish: (h) => void published.push(h), subscribe: () => () => undefined });
    const finder = (): void => undefined;
    holds.join('a', finder, NOW)();
    expect(() => holds.overCap('a', HIT, finder, NOW)).not.toThrow();
    expect(published).toEqual([{ tenant: 'a', hit: HIT }]);
    expect(holds.size).toBe(0);
  });
});
