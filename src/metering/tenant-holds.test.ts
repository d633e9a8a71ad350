import { describe, expect, it } from 'vitest';
import type { HoldLink, TenantHold } from './hold-link.js';
import type { CapHit } from './ledger.js';
import { TenantAudioHolds } from './tenant-holds.js';

const HIT: CapHit = { cap: 'daily_usd', period: { kind: 'day', key: 'd:x', startsAt: 0, resetsAt: 1 }, limit: 10, spent: 10, reserved: 0 };

describe('TenantAudioHolds', () => {
  it("tells the tenant's other sessions, not the one that found the cap, nor other tenants", () => {
    const holds = new TenantAudioHolds();
    const told: string[] = [];
    const a1 = (): void => void told.push('a1');
    const a2 = (): void => void told.push('a2');
    const b1 = (): void => void told.push('b1');
    holds.join('a', a1);
    const leaveA2 = holds.join('a', a2);
    holds.join('b', b1);
    holds.overCap('a', HIT, a1);
    expect(told).toEqual(['a2']);
    leaveA2();
    holds.overCap('a', HIT, a1);
    expect(told).toEqual(['a2']);
  });

  it('forgets a tenant whose sessions all left', () => {
    const holds = new TenantAudioHolds();
    const leave = holds.join('a', () => undefined);
    expect(holds.size).toBe(1);
    leave();
    leave();
    expect(holds.size).toBe(0);
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
    holds.join('a', a1);
    holds.join('a', () => undefined);
    holds.join('a', () => undefined);
    holds.overCap('a', HIT, a1);
    expect(published).toEqual([{ tenant: 'a', hit: HIT }]);
  });

  it('tells them even with no other session of the tenant here', () => {
    const { link, published } = recordingLink();
    const holds = new TenantAudioHolds(link);
    const only = (): void => undefined;
    holds.join('a', only);
    holds.overCap('a', HIT, only);
    expect(published).toHaveLength(1);
  });

  it('a hold from elsewhere holds every session of the tenant here and is passed on to nobody', () => {
    const { link, published } = recordingLink();
    const holds = new TenantAudioHolds(link);
    const told: string[] = [];
    holds.join('a', () => void told.push('a1'));
    holds.join('a', () => void told.push('a2'));
    holds.join('b', () => void told.push('b1'));
    expect(holds.overCapElsewhere('a', HIT)).toBe(2);
    expect(told).toEqual(['a1', 'a2']);
    expect(holds.overCapElsewhere('c', HIT)).toBe(0);
    expect(published).toEqual([]);
  });
});
