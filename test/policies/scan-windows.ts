import { vi } from 'vitest';
import { ScanBudget } from '../../src/policies/matchers.js';

/**
 * Scan budgets allow `n` windows in all (counted over every budget from now), then run out: the
 * sliced scan's `scan_time` without timed assertions (restore with `vi.restoreAllMocks`).
 */
export function allowScanWindows(n: number): { used: () => number } {
  let used = 0;
  vi.spyOn(ScanBudget.prototype, 'next').mockImplementation(function (this: ScanBudget) {
    if (used < n) {
      used++;
      return true;
    }
    this.exhausted = true;
    return false;
  });
  return { used: () => used };
}
