import { describe, expect, it } from 'vitest';
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
