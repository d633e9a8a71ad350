import { describe, expect, it } from 'vitest';
import { medianIntervalRank, signTestP, summarisePairs } from '../../bench/lib/paired.js';

describe('paired bench statistics', () => {
  it('sign test: exact two-sided binomial p', () => {
    expect(signTestP(0, 10)).toBeCloseTo(2 / 1024, 10);
    expect(signTestP(10, 10)).toBeCloseTo(2 / 1024, 10);
    // 2 of 10: P(X ≤ 2) = (1 + 10 + 45) / 1024, doubled.
    expect(signTestP(2, 10)).toBeCloseTo(112 / 1024, 10);
    expect(signTestP(5, 10)).toBe(1);
    expect(signTestP(0, 0)).toBe(1);
  });

  it('median interval: the widest ranks with at least 90 % coverage', () => {
    expect(medianIntervalRank(4)).toBeNull(); // 1 − 2/16 = 0.875
    expect(medianIntervalRank(5)).toBe(1); // 1 − 2/32 = 0.9375
    // n = 12: j = 3 covers 1 − 2·79/4096 = 0.961, j = 4 covers 1 − 2·299/4096 = 0.854.
    expect(medianIntervalRank(12)).toBe(3);
  });

  it('ratios B/A per pair, their median, interval and sign count', () => {
    const a = [10, 20, 30, 40, 50, 60];
    const b = [11, 22, 33, 40, 45, 66];
    const s = summarisePairs(a, b);
    expect(s.ratios).toEqual([1.1, 1.1, 1.1, 1, 0.9, 1.1].map((r, i) => b[i]! / a[i]!));
    expect(s.pairs).toBe(6);
    expect(s.medianRatio).toBeCloseTo(1.1, 10);
    expect(s.bHigher).toBe(4);
    // The tie is dropped: 4 of 5 higher.
    expect(s.signTestP).toBeCloseTo((2 * (1 + 5)) / 32, 10);
    expect(s.interval?.[0]).toBeCloseTo(0.9, 10);
    expect(s.interval?.[1]).toBeCloseTo(1.1, 10);
  });

  it('a window without a value drops its pair', () => {
    const s = summarisePairs([10, Number.NaN, 10], [12, 12, 8]);
    expect(s.pairs).toBe(2);
    expect(s.interval).toBeNull();
  });
});
