import { describe, expect, it } from 'vitest';
import { settledWithin } from './bounded.js';

describe('settledWithin', () => {
  it('the answer; or the fallback when it fails or is later than the bound', async () => {
    expect(await settledWithin(Promise.resolve('found'), 1000, 'none')).toBe('found');
    expect(await settledWithin(Promise.reject(new Error('store down')), 1000, 'none')).toBe('none');
    expect(await settledWithin(new Promise<string>(() => undefined), 5, 'none')).toBe('none');
  });
});

describe('settledWithin: a failure settles at once', () => {
  it('a failed answer settles with the fallback at once, before any timer or I/O turn (not at the bound)', async () => {
    const nextTurn = new Promise<string>((resolve) => setImmediate(() => resolve('a loop turn later')));
    expect(await Promise.race([settledWithin(Promise.reject(new Error('store down')), 2_000_000_000, 'none'), nextTurn])).toBe('none');
    expect(await Promise.race([settledWithin(Promise.resolve('found'), 2_000_000_000, 'none'), nextTurn])).toBe('found');
  });
});
