import { describe, expect, it } from 'vitest';
import { ChannelHoldLink, HoldReceivers, tenantHoldOf, type TenantHold, type TenantHoldMessage } from './hold-link.js';
import type { CapHit } from './ledger.js';

const HIT: CapHit = { cap: 'daily_usd', period: { kind: 'day', key: 'd:2026-12-07', startsAt: 1, resetsAt: 2 }, limit: 10, spent: 10, reserved: 0 };

describe('tenantHoldOf', () => {
  it('rebuilds a hold field by field, dropping anything else', () => {
    const m = { t: 'tenant-hold', tenant: 'acme', extra: 1, hit: { ...HIT, extra: 'x', period: { ...HIT.period, extra: 'y' } } };
    expect(tenantHoldOf(m)).toEqual({ tenant: 'acme', hit: HIT });
  });

  it.each([
    ['not an object', 'acme'],
    ['no tenant', { hit: HIT }],
    ['an empty tenant', { tenant: '', hit: HIT }],
    ['a huge tenant', { tenant: 'x'.repeat(257), hit: HIT }],
    ['an unknown cap', { tenant: 'acme', hit: { ...HIT, cap: 'hourly_usd' } }],
    ['a limit that is not a number', { tenant: 'acme', hit: { ...HIT, limit: '10' } }],
    ['a non-finite spend', { tenant: 'acme', hit: { ...HIT, spent: Number.POSITIVE_INFINITY } }],
    ['no period', { tenant: 'acme', hit: { ...HIT, period: null } }],
    ['an unknown period kind', { tenant: 'acme', hit: { ...HIT, period: { ...HIT.period, kind: 'week' } } }],
    ['a period without its end', { tenant: 'acme', hit: { ...HIT, period: { kind: 'day', key: 'd:x', startsAt: 1 } } }],
  ])('refuses %s', (_name, m) => {
    expect(tenantHoldOf(m)).toBeNull();
  });
});

describe('HoldReceivers', () => {
  it('a receiver that throws does not keep the others from the hold; one removed gets nothing', () => {
    const r = new HoldReceivers();
    const got: string[] = [];
    r.add(() => {
      throw new Error('closing');
    });
    const off = r.add(() => void got.push('gone'));
    r.add((h) => void got.push(h.tenant));
    off();
    r.deliver({ tenant: 'acme', hit: HIT });
    expect(got).toEqual(['acme']);
    expect(r.size).toBe(2);
  });
});

describe('ChannelHoldLink', () => {
  it('sends its holds on the channel and hands the checked holds it receives to its subscribers', () => {
    const sent: TenantHoldMessage[] = [];
    const link = new ChannelHoldLink((m) => {
      sent.push(m);
      return true;
    });
    link.publish({ tenant: 'acme', hit: HIT });
    expect(sent).toEqual([{ t: 'tenant-hold', tenant: 'acme', hit: HIT }]);
    const got: TenantHold[] = [];
    link.subscribe((h) => void got.push(h));
    link.receive({ t: 'tenant-hold', tenant: 'acme', hit: HIT });
    link.receive({ t: 'tenant-hold', tenant: 'acme', hit: { ...HIT, cap: 'nope' } });
    expect(got).toEqual([{ tenant: 'acme', hit: HIT }]);
  });

  it('a closed channel is not an error', () => {
    const link = new ChannelHoldLink(() => false);
    expect(() => link.publish({ tenant: 'acme', hit: HIT })).not.toThrow();
  });
});
