import { describe, expect, it } from 'vitest';
import { recentNoon } from '../../test/support/clock.js';
import { firstHit, type Amount } from './ledger.js';
import { dayPeriod, monthPeriod } from './periods.js';

/*
 * firstHit is the one comparison every admission and every in-session "is a cap spent" check
 * goes through (SQLite ledger, metering filter; the Redis script mirrors it). Each cap must read
 * its own period's spend in its own unit, at the exact boundary the mode promises.
 */

const T0 = recentNoon();
const DAY = dayPeriod(T0);
const MONTH = monthPeriod(T0);
const NONE: Amount = { nanos: 0, tokens: 0 };

interface Caps {
  dayNanos?: number;
  monthNanos?: number;
  dayTokens?: number;
  monthTokens?: number;
}

/** Day and month with their own spend, so that a cap reading the other period's spend shows. */
function periods(c: Caps, daySpent: Amount, monthSpent: Amount) {
  return {
    day: { period: DAY, spent: daySpent, capNanos: c.dayNanos ?? null, capTokens: c.dayTokens ?? null },
    month: { period: MONTH, spent: monthSpent, capNanos: c.monthNanos ?? null, capTokens: c.monthTokens ?? null },
  };
}

describe('firstHit', () => {
  it('no caps: nothing is ever over, whatever the spend and the request', () => {
    const { day, month } = periods({}, { nanos: 1e12, tokens: 1e9 }, { nanos: 1e12, tokens: 1e9 });
    expect(firstHit(day, month, { nanos: 1e12, tokens: 1e9 }, { nanos: 1e12, tokens: 1e9 }, 'remaining')).toBeNull();
    expect(firstHit(day, month, { nanos: 1e12, tokens: 1e9 }, { nanos: 1e12, tokens: 1e9 }, 'worst_case')).toBeNull();
  });

  it('remaining mode: over once spent + reserved reaches the cap (equal is over); the request size does not matter', () => {
    const { day, month } = periods({ dayNanos: 100 }, { nanos: 60, tokens: 0 }, { nanos: 60, tokens: 0 });
    expect(firstHit(day, month, { nanos: 39, tokens: 0 }, { nanos: 1_000_000, tokens: 0 }, 'remaining')).toBeNull();
    expect(firstHit(day, month, { nanos: 40, tokens: 0 }, NONE, 'remaining')).toEqual({ cap: 'daily_usd', period: DAY, limit: 100, spent: 60, reserved: 40 });
  });

  it('worst_case mode: granted only when spent + reserved + request fits (equal fits)', () => {
    const { day, month } = periods({ dayNanos: 100 }, { nanos: 60, tokens: 0 }, { nanos: 60, tokens: 0 });
    expect(firstHit(day, month, { nanos: 30, tokens: 0 }, { nanos: 10, tokens: 0 }, 'worst_case')).toBeNull();
    expect(firstHit(day, month, { nanos: 30, tokens: 0 }, { nanos: 11, tokens: 0 }, 'worst_case')).toEqual({ cap: 'daily_usd', period: DAY, limit: 100, spent: 60, reserved: 30 });
    // The request alone over the cap, with nothing spent.
    const empty = periods({ dayNanos: 100 }, NONE, NONE);
    expect(firstHit(empty.day, empty.month, NONE, { nanos: 101, tokens: 0 }, 'worst_case')).toMatchObject({ cap: 'daily_usd', spent: 0, reserved: 0 });
    expect(firstHit(empty.day, empty.month, NONE, { nanos: 100, tokens: 0 }, 'worst_case')).toBeNull();
  });

  it('the monthly cost cap compares the month\'s spend, the daily one the day\'s (regression, issue 16)', () => {
    // Day spend under its cap, month spend at its cap: only the monthly cap is hit.
    const a = periods({ dayNanos: 1000, monthNanos: 5000 }, { nanos: 10, tokens: 0 }, { nanos: 5000, tokens: 0 });
    expect(firstHit(a.day, a.month, NONE, NONE, 'remaining')).toEqual({ cap: 'monthly_usd', period: MONTH, limit: 5000, spent: 5000, reserved: 0 });
    // Month spend high but under its cap; the day's own spend is under the day cap: nothing.
    const b = periods({ dayNanos: 1000, monthNanos: 5000 }, { nanos: 10, tokens: 0 }, { nanos: 4000, tokens: 0 });
    expect(firstHit(b.day, b.month, NONE, NONE, 'remaining')).toBeNull();
    expect(firstHit(b.day, b.month, NONE, { nanos: 990, tokens: 0 }, 'worst_case')).toBeNull();
    expect(firstHit(b.day, b.month, NONE, { nanos: 991, tokens: 0 }, 'worst_case')).toMatchObject({ cap: 'daily_usd', period: DAY, spent: 10 });
  });

  it('token caps read tokens, cost caps read nanos, each in its own period', () => {
    // Huge nanos, few tokens: token caps are not hit by nanos.
    const a = periods({ dayTokens: 100, monthTokens: 1000 }, { nanos: 1e9, tokens: 50 }, { nanos: 1e9, tokens: 500 });
    expect(firstHit(a.day, a.month, { nanos: 1e9, tokens: 49 }, { nanos: 1e9, tokens: 0 }, 'remaining')).toBeNull();
    expect(firstHit(a.day, a.month, { nanos: 0, tokens: 50 }, NONE, 'remaining')).toEqual({ cap: 'daily_tokens', period: DAY, limit: 100, spent: 50, reserved: 50 });
    expect(firstHit(a.day, a.month, NONE, { nanos: 0, tokens: 51 }, 'worst_case')).toEqual({ cap: 'daily_tokens', period: DAY, limit: 100, spent: 50, reserved: 0 });
    // Monthly tokens: the month's token spend, not the day's.
    const b = periods({ monthTokens: 1000 }, { nanos: 0, tokens: 1 }, { nanos: 0, tokens: 1000 });
    expect(firstHit(b.day, b.month, NONE, NONE, 'remaining')).toEqual({ cap: 'monthly_tokens', period: MONTH, limit: 1000, spent: 1000, reserved: 0 });
    const c = periods({ monthTokens: 1000 }, { nanos: 0, tokens: 1000 }, { nanos: 0, tokens: 999 });
    expect(firstHit(c.day, c.month, NONE, NONE, 'remaining')).toBeNull();
    expect(firstHit(c.day, c.month, NONE, { nanos: 0, tokens: 2 }, 'worst_case')).toMatchObject({ cap: 'monthly_tokens', spent: 999 });
    // Cost caps are not hit by tokens.
    const d = periods({ dayNanos: 100, monthNanos: 100 }, { nanos: 0, tokens: 1e6 }, { nanos: 0, tokens: 1e6 });
    expect(firstHit(d.day, d.month, { nanos: 0, tokens: 1e6 }, { nanos: 100, tokens: 1e6 }, 'worst_case')).toBeNull();
  });

  it('several caps spent: the first in the order daily_usd, monthly_usd, daily_tokens, monthly_tokens is reported', () => {
    const all = { dayNanos: 10, monthNanos: 10, dayTokens: 10, monthTokens: 10 };
    const spent = { nanos: 10, tokens: 10 };
    const p = periods(all, spent, spent);
    expect(firstHit(p.day, p.month, NONE, NONE, 'remaining')?.cap).toBe('daily_usd');
    const q = periods({ ...all, dayNanos: 11 }, spent, spent);
    expect(firstHit(q.day, q.month, NONE, NONE, 'remaining')?.cap).toBe('monthly_usd');
    const r = periods({ ...all, dayNanos: 11, monthNanos: 11 }, spent, spent);
    expect(firstHit(r.day, r.month, NONE, NONE, 'remaining')?.cap).toBe('daily_tokens');
    const s = periods({ ...all, dayNanos: 11, monthNanos: 11, dayTokens: 11 }, spent, spent);
    expect(firstHit(s.day, s.month, NONE, NONE, 'remaining')?.cap).toBe('monthly_tokens');
  });

  it('a cap of zero refuses everything, in both modes', () => {
    const p = periods({ monthNanos: 0 }, NONE, NONE);
    expect(firstHit(p.day, p.month, NONE, NONE, 'remaining')).toMatchObject({ cap: 'monthly_usd', limit: 0 });
    expect(firstHit(p.day, p.month, NONE, { nanos: 1, tokens: 0 }, 'worst_case')).toMatchObject({ cap: 'monthly_usd', limit: 0 });
  });
});
