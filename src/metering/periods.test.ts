import { describe, expect, it } from 'vitest';
import { dayPeriod, monthPeriod, PERIOD_GRACE_MS, PeriodClock, periodOf, settlementPeriods } from './periods.js';

const DAY = 86_400_000;

describe('periods', () => {
  it('pads single-digit months and days in keys', () => {
    const t = Date.UTC(2027, 0, 5, 13);
    expect(dayPeriod(t)).toEqual({ kind: 'day', key: 'd:2027-01-05', startsAt: Date.UTC(2027, 0, 5), resetsAt: Date.UTC(2027, 0, 6) });
    expect(monthPeriod(t)).toEqual({ kind: 'month', key: 'm:2027-01', startsAt: Date.UTC(2027, 0, 1), resetsAt: Date.UTC(2027, 1, 1) });
    expect(dayPeriod(Date.UTC(2027, 9, 10)).key).toBe('d:2027-10-10');
  });

  it('a period holds its first instant and ends before the next', () => {
    const midnight = Date.UTC(2027, 2, 1);
    expect(dayPeriod(midnight).key).toBe('d:2027-03-01');
    expect(dayPeriod(midnight - 1).key).toBe('d:2027-02-28');
    expect(monthPeriod(midnight).key).toBe('m:2027-03');
    expect(monthPeriod(midnight - 1)).toEqual({ kind: 'month', key: 'm:2027-02', startsAt: Date.UTC(2027, 1, 1), resetsAt: midnight });
  });

  it('periodOf picks the kind', () => {
    const t = Date.UTC(2027, 5, 15, 8);
    expect(periodOf('day', t)).toEqual(dayPeriod(t));
    expect(periodOf('month', t)).toEqual(monthPeriod(t));
  });

  it('PeriodClock recomputes exactly when an instant leaves the cached day', () => {
    const c = new PeriodClock();
    const start = Date.UTC(2027, 5, 15);
    const a = c.at(start + 1000);
    expect(c.at(start).day).toBe(a.day); // first instant: still cached
    expect(c.at(start + DAY - 1).day).toBe(a.day); // last instant: still cached
    expect(c.at(start + DAY - 1).month).toBe(a.month);
    const next = c.at(start + DAY);
    expect(next.day.key).toBe('d:2027-06-16');
    expect(next.day).not.toBe(a.day);
    const back = c.at(start - 1); // an earlier instant (a late record) recomputes too
    expect(back.day.key).toBe('d:2027-06-14');
    expect(back.month.key).toBe('m:2027-06');
    const monthEnd = c.at(Date.UTC(2027, 6, 1));
    expect(monthEnd.month.key).toBe('m:2027-07');
  });
});

describe('settlementPeriods', () => {
  const recordTs = Date.UTC(2027, 5, 15, 10); // day ends 2027-06-16 00:00, month 2027-07-01 00:00
  const dayEnd = Date.UTC(2027, 5, 16);
  const monthEnd = Date.UTC(2027, 6, 1);

  it('counts a record into its own day and month while both keys live', () => {
    const c = new PeriodClock();
    expect(settlementPeriods(c, recordTs, recordTs)).toEqual({ day: dayPeriod(recordTs), month: monthPeriod(recordTs), late: false });
    // One ms before the day's grace ends: still its own day.
    expect(settlementPeriods(c, recordTs, dayEnd + PERIOD_GRACE_MS - 1)).toEqual({ day: dayPeriod(recordTs), month: monthPeriod(recordTs), late: false });
  });

  it('moves a record to the current day once its day is gone, keeping its month while that lives', () => {
    const c = new PeriodClock();
    const now = dayEnd + PERIOD_GRACE_MS; // exactly when the day key is gone
    const s = settlementPeriods(c, recordTs, now);
    expect(s).toEqual({ day: dayPeriod(now), month: monthPeriod(recordTs), late: true });
    expect(s.day.key).toBe('d:2027-06-17');
  });

  it('moves a record to the current month too once its month is gone', () => {
    const c = new PeriodClock();
    const now = monthEnd + PERIOD_GRACE_MS;
    expect(settlementPeriods(c, recordTs, now)).toEqual({ day: dayPeriod(now), month: monthPeriod(now), late: true });
    expect(settlementPeriods(c, recordTs, now - 1)).toEqual({ day: dayPeriod(now - 1), month: monthPeriod(recordTs), late: true });
  });

  it('a record of a month\'s last day: its day and its month are gone at the same instant', () => {
    // The month's grace ends after the day's for every day of the month; the last day's end is the month's end.
    const lastDay = Date.UTC(2027, 5, 30, 23);
    const c = new PeriodClock();
    const now = monthEnd + PERIOD_GRACE_MS;
    expect(settlementPeriods(c, lastDay, now)).toEqual({ day: dayPeriod(now), month: monthPeriod(now), late: true });
    expect(settlementPeriods(c, lastDay, now - 1)).toEqual({ day: dayPeriod(lastDay), month: monthPeriod(lastDay), late: false });
  });
});
