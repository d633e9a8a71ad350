/**
 * Paired comparison of two relays measured in alternating windows (`npm run bench -- --paired A,B`).
 *
 * Why pairs: this VM's speed drifts by ±15 % within minutes (the same code read 27.7–36.3 µs per
 * event in one half hour), far more than the few per cent one change moves. Two windows run back to
 * back see nearly the same machine, so the ratio within a pair cancels the drift that separate medians
 * keep; alternating the order (AB, BA, AB, …) cancels a drift that is linear within a pair.
 */
import { median } from './histogram.js';

export interface PairedSummary {
  /** Pairs where both windows gave a finite value. */
  readonly pairs: number;
  /** B / A for each pair, in the order measured. */
  readonly ratios: readonly number[];
  /** Median of the ratios: the change B makes (1.05 = 5 % more). */
  readonly medianRatio: number;
  /**
   * A distribution-free interval for the median ratio from the order statistics of the ratios
   * (binomial, two-sided, at least 90 % coverage); null with fewer than 5 pairs (no interval that wide exists).
   */
  readonly interval: readonly [number, number] | null;
  /** Pairs where B read higher than A. */
  readonly bHigher: number;
  /** Two-sided exact sign-test p-value of "B and A read the same" (ties dropped). */
  readonly signTestP: number;
}

/** Two-sided exact binomial sign test: the chance of a split at least as uneven as `k` of `n` under p = ½. */
export function signTestP(k: number, n: number): number {
  if (n === 0) return 1;
  const tail = Math.min(k, n - k);
  let sum = 0;
  for (let i = 0; i <= tail; i++) sum += binomial(n, i);
  return Math.min(1, (2 * sum) / 2 ** n);
}

function binomial(n: number, k: number): number {
  let c = 1;
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
  return c;
}

/**
 * The order statistics (1-based ranks j and n+1-j) bracketing the median of n values with coverage at
 * least `coverage`: P(X_(j) ≤ median ≤ X_(n+1-j)) = 1 − 2·P(Bin(n, ½) < j).
 */
export function medianIntervalRank(n: number, coverage = 0.9): number | null {
  let best: number | null = null;
  let below = 0;
  for (let j = 1; j <= n >> 1; j++) {
    below += binomial(n, j - 1) / 2 ** n;
    if (1 - 2 * below >= coverage) best = j;
    else break;
  }
  return best;
}

export function summarisePairs(a: readonly number[], b: readonly number[]): PairedSummary {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const r = b[i]! / a[i]!;
    if (Number.isFinite(r)) ratios.push(r);
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  const rank = medianIntervalRank(sorted.length);
  const interval: readonly [number, number] | null = rank === null ? null : [sorted[rank - 1]!, sorted[sorted.length - rank]!];
  const bHigher = ratios.filter((r) => r > 1).length;
  const ties = ratios.filter((r) => r === 1).length;
  return {
    pairs: ratios.length,
    ratios,
    medianRatio: median(ratios),
    interval,
    bHigher,
    signTestP: signTestP(bHigher, ratios.length - ties),
  };
}
