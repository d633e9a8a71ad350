import { describe, expect, it } from 'vitest';
import type { HoldLink, TenantHold } from './hold-link.js';
import type { CapHit } from './ledger.js';
import { AUDIO_RECHECK_MS, TenantAudioHolds } from './tenant-holds.js';

/** The clock the holds are told; the hit's period runs well past it. */
const NOW = 1_000_000;
const HIT: CapHit = { cap: 'daily_usd', period: { kind: 'day', key: 'd:x', startsAt: 0, resetsAt: NOW + 86_400_000 }, limit: 10, spent: 10, reserved: 0 };

describe('TenantAudioHolds', () => {
  it("tells the tenant's other sessions, not the one that found the cap, nor other tenants", () => {
    const holds = new TenantAudioHolds();
    const told: string[] = [];
    const a1 = (): void => void told.push('a1');
    const a2 = (): void => void told.push('a2');
    const b1 = (): void => void told.push('b1');
    holds.join('a', a1, NOW);
    const leaveA2 = holds.join('a', a2, NOW);
    holds.join('b', b1, NOW);
    holds.overCap('a', HIT, a1, NOW);
    expect(told).toEqual(['a2']);
    leaveA2();
    holds.overCap('a', HIT, a1, NOW);
    expect(told).toEqual(['a2']);
  });

  it('forgets a tenant whose sessions all left', () => {
    const holds = new TenantAudioHolds();
    const leave = holds.join('a', () => undefined, NOW);
    expect(holds.size).toBe(1);
    leave();
    leave();
    expect(holds.size).toBe(0);
  });
});

describe('TenantAudioHolds: a session joining after a hold', () => {
  function recorder(): { told: CapHit[]; hold: (hit: CapHit) => void } {
    const told: CapHit[] = [];
    return { told, hold: (hit) => void told.push(hit) };
  }

  it('starts held by the latest hold of its tenant (found here or elsewhere) within a recheck period, not by another tenant\'s', () => {
    const holds = new TenantAudioHolds();
    const finder = (): void => undefined;
    holds.join('a', finder, NOW);
    holds.join('b', () => undefined, NOW);
    holds.overCap('a', HIT, finder, NOW);
    const late = recorder();
    holds.join('a', late.hold, NOW + AUDIO_RECHECK_MS - 1);
    expect(late.told).toEqual([HIT]);
    const otherTenant = recorder();
    holds.join('b', otherTenant.hold, NOW + 1);
    expect(otherTenant.told).toEqual([]);

    const monthly: CapHit = { ...HIT, cap: 'monthly_usd' };
    expect(holds.overCapElsewhere('b', monthly, NOW + 2)).toBe(2);
    const lateB = recorder();
    holds.join('b', lateB.hold, NOW + 3);
    expect(lateB.told).toEqual([monthly]);
  });

  it('is not held once a recheck period has passed, the hold\'s period is over, or the clock went back', () => {
    const holds = new TenantAudioHolds();
    const finder = (): void => undefined;
    holds.join('a', finder, NOW);
    holds.overCap('a', HIT, finder, NOW);
    const tooLate = recorder();
    holds.join('a', tooLate.hold, NOW + AUDIO_RECHECK_MS);
    expect(tooLate.told).toEqual([]);
    // Forgotten once stale: a clock back within the period does not bring it back.
    const after = recorder();
    holds.join('a', after.hold, NOW + 1);
    expect(after.told).toEqual([]);

    holds.overCap('a', HIT, finder, NOW);
    const backwards = recorder();
    holds.join('a', backwards.hold, NOW - 1);
    expect(backwards.told).toEqual([]);

    const endingPeriod: CapHit = { ...HIT, period: { ...HIT.period, resetsAt: NOW + 10 } };
    holds.overCap('a', endingPeriod, finder, NOW);
    const nextPeriod = recorder();
    holds.join('a', nextPeriod.hold, NOW + 10);
    expect(nextPeriod.told).toEqual([]);
  });

  it("is forgotten with the tenant's last session, and not kept for a tenant with no session here", () => {
    const holds = new TenantAudioHolds();
    const finder = (): void => undefined;
    const leave = holds.join('a', finder, NOW);
    holds.overCap('a', HIT, finder, NOW);
    leave();
    expect(holds.size).toBe(0);
    const rejoined = recorder();
    holds.join('a', rejoined.hold, NOW + 1);
    expect(rejoined.told).toEqual([]);

    expect(holds.overCapElsewhere('c', HIT, NOW)).toBe(0);
    expect(holds.size).toBe(1);
    const first = recorder();
    holds.join('c', first.hold, NOW + 1);
    expect(first.told).toEqual([]);
  });
});

describe('TenantAudioHolds with a link to the other processes', () => {
  function recordingLink(): { link: HoldLink; published: TenantHold[] } {
    const published: TenantHold[] = [];
    return { link: { publish: (h) => void published.push(h), subscribe: () => () => undefined }, published };
  }

  it('tells the other processes once per hold, however many sessions it holds here', () => {
    const { link, published } = recordingLink();
    const holds = new TenantAudioHolds(link);
    const a1 = (): void => undefined;
    holds.join('a', a1, NOW);
    holds.join('a', () => undefined, NOW);
    holds.join('a', () => undefined, NOW);
    holds.overCap('a', HIT, a1, NOW);
    expect(published).toEqual([{ tenant: 'a', hit: HIT }]);
  });

  it('tells them even with no other session of the tenant here', () => {
    const { link, published } = recordingLink();
    const holds = new TenantAudioHolds(link);
    const only = (): void => undefined;
    holds.join('a', only, NOW);
    holds.overCap('a', HIT, only, NOW);
    expect(published).toHaveLength(1);
  });

  it('a hold from elsewhere holds every session of the tenant here and is passed on to nobody', () => {
    const { link, published } = recordingLink();
    const holds = new TenantAudioHolds(link);
    const told: string[] = [];
    holds.join('a', () => void told.push('a1'), NOW);
    holds.join('a', () => void told.push('a2'), NOW);
    holds.join('b', () => void told.push('b1'), NOW);
    expect(holds.overCapElsewhere('a', HIT, NOW)).toBe(2);
    expect(told).toEqual(['a1', 'a2']);
    expect(holds.overCapElsewhere('c', HIT, NOW)).toBe(0);
    expect(published).toEqual([]);
  });
});
