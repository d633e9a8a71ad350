import { describe, expect, it } from 'vitest';
import { dayPeriod, monthPeriod } from './periods.js';
import { UnstoredAmounts } from './unstored-amounts.js';
import { record, T0 } from '../../test/metering/ledger-contract.js';

describe('UnstoredAmounts', () => {
  const day = dayPeriod(T0);
  const month = monthPeriod(T0);

  it('sums per tenant and period, and forgets a sum taken back to zero', () => {
    const u = new UnstoredAmounts();
    const r = record({ costNanos: 7, totalTokens: 3 });
    u.add(r, [day, month]);
    u.add(r, [day]);
    expect(u.of('acme', day)).toEqual({ nanos: 14, tokens: 6 });
    expect(u.of('acme', month)).toEqual({ nanos: 7, tokens: 3 });
    expect(u.of('beta', day)).toEqual({ nanos: 0, tokens: 0 });
    u.add(r, [day], -1);
    u.add(r, [day], -1);
    expect(u.has('acme', day)).toBe(false);
    expect(u.has('acme', month)).toBe(true);
    u.forget('acme', month);
    expect(u.of('acme', month)).toEqual({ nanos: 0, tokens: 0 });
  });
});
