import { describe, expect, it } from 'vitest';
import { divRound, formatUsd, parseDecimal, perMillionToNanosPerToken, usdToNanos } from './money.js';
import { dayPeriod, monthPeriod, PeriodClock } from './periods.js';

describe('money', () => {
  it('parses USD numbers and strings exactly', () => {
    expect(usdToNanos('5')).toBe(5_000_000_000);
    expect(usdToNanos(0.06)).toBe(60_000_000);
    expect(usdToNanos('0.000000001')).toBe(1);
    expect(usdToNanos('12.50')).toBe(12_500_000_000);
    expect(usdToNanos(0.1 + 0.2)).toBeNull(); // 0.30000000000000004 is not a 9-decimal amount
    expect(usdToNanos('0.0000000001')).toBeNull();
    expect(usdToNanos('-1')).toBeNull();
    expect(usdToNanos('1e3')).toBeNull();
  });

  it('accepts zero, trims strings, and keeps the full precision of small numbers', () => {
    expect(usdToNanos(0)).toBe(0);
    expect(usdToNanos('0')).toBe(0);
    expect(usdToNanos(' 5 ')).toBe(5_000_000_000);
    expect(usdToNanos('\t0.25\n')).toBe(250_000_000);
    // Checked against toFixed(scale + 2): a 1-nano amount survives the round trip.
    expect(usdToNanos(0.000000001)).toBe(1);
    expect(usdToNanos(0.000000123)).toBe(123);
    expect(usdToNanos(-0.5)).toBeNull();
    expect(usdToNanos(Number.NaN)).toBeNull();
    expect(usdToNanos(Number.POSITIVE_INFINITY)).toBeNull();
    expect(usdToNanos('')).toBeNull();
    expect(usdToNanos('1.')).toBeNull();
    expect(usdToNanos('.5')).toBeNull();
    expect(usdToNanos('1.5x')).toBeNull();
    expect(usdToNanos('x1.5')).toBeNull();
    // Trailing zeros beyond the scale are not precision.
    expect(usdToNanos('1.0000000000000')).toBe(1_000_000_000);
    expect(parseDecimal('7', 0)).toBe(7);
    expect(parseDecimal('7.0', 0)).toBe(7);
    expect(parseDecimal('7.5', 0)).toBeNull();
    // Beyond the safe-integer range: refused rather than rounded.
    expect(usdToNanos('9007199.254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(usdToNanos('9007199.254740992')).toBeNull();
  });

  it('converts per-1M-token prices to nanos per token', () => {
    expect(perMillionToNanosPerToken('0.06')).toBe(60);
    expect(perMillionToNanosPerToken(32)).toBe(32_000);
    expect(perMillionToNanosPerToken('0.0375')).toBeNull();
    expect(parseDecimal('1.5', 1)).toBe(15);
  });

  it('formats exact decimals', () => {
    expect(formatUsd(0)).toBe('0.00');
    expect(formatUsd(1)).toBe('0.000000001');
    expect(formatUsd(12_500_000_000)).toBe('12.50');
    expect(formatUsd(69_678_400)).toBe('0.0696784');
    expect(formatUsd(-5_000_000)).toBe('-0.005');
    expect(formatUsd(100_000_000)).toBe('0.10');
    expect(formatUsd(120_000_000)).toBe('0.12');
    expect(formatUsd(123_000_000)).toBe('0.123');
    expect(formatUsd(3 * 1_000_000_000)).toBe('3.00');
    expect(formatUsd(-3 * 1_000_000_000)).toBe('-3.00');
  });

  it('rounds rationals half up', () => {
    expect(divRound(5, 2)).toBe(3);
    expect(divRound(4, 3)).toBe(1);
    expect(divRound(750_000, 60_000)).toBe(13);
    expect(divRound(7, 2)).toBe(4); // exactly half: up
    expect(divRound(5, 3)).toBe(2); // above half
    expect(divRound(6, 3)).toBe(2); // exact
    expect(divRound(0, 7)).toBe(0);
    expect(divRound(1, 3)).toBe(0); // below half
  });
});

describe('periods (UTC calendar)', () => {
  it('computes day and month keys and reset times', () => {
    const t = Date.UTC(2026, 10, 30, 23, 59, 59, 999);
    expect(dayPeriod(t)).toEqual({ kind: 'day', key: 'd:2026-11-30', startsAt: Date.UTC(2026, 10, 30), resetsAt: Date.UTC(2026, 11, 1) });
    expect(monthPeriod(t)).toEqual({ kind: 'month', key: 'm:2026-11', startsAt: Date.UTC(2026, 10, 1), resetsAt: Date.UTC(2026, 11, 1) });
    expect(monthPeriod(Date.UTC(2026, 11, 31, 12)).resetsAt).toBe(Date.UTC(2027, 0, 1));
    expect(dayPeriod(Date.UTC(2028, 1, 28, 5)).resetsAt).toBe(Date.UTC(2028, 1, 29));
  });

  it('caches within a day and rolls over at midnight UTC', () => {
    const c = new PeriodClock();
    const a = c.at(Date.UTC(2026, 10, 30, 10));
    expect(c.at(Date.UTC(2026, 10, 30, 20)).day).toBe(a.day);
    const b = c.at(Date.UTC(2026, 11, 1, 0));
    expect(b.day.key).toBe('d:2026-12-01');
    expect(b.month.key).toBe('m:2026-12');
  });
});
