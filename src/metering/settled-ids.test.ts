import { describe, expect, it } from 'vitest';
import { MAX_KEPT_ID_CHARS } from '../protocol/json.js';
import { MAX_SETTLED_ID_CHARS, MAX_SETTLED_IDS, SettledIds } from './settled-ids.js';

describe('SettledIds: the responses a session billed', () => {
  it('takes an id once: a second add is refused, and has() knows it', () => {
    const settled = new SettledIds();
    expect(settled.has('resp_1')).toBe(false);
    expect(settled.add('resp_1')).toBe(true);
    expect(settled.has('resp_1')).toBe(true);
    expect(settled.add('resp_1')).toBe(false);
    expect(settled.has('resp_2')).toBe(false);
  });

  it(`keeps the most recent ${MAX_SETTLED_IDS}: the oldest is forgotten first`, () => {
    const settled = new SettledIds();
    for (let i = 0; i <= MAX_SETTLED_IDS; i++) settled.add(`resp_${i}`);
    expect(settled.has('resp_0')).toBe(false);
    expect(settled.has('resp_1')).toBe(true);
    expect(settled.has(`resp_${MAX_SETTLED_IDS}`)).toBe(true);
    // Forgotten, it is taken again (the residual risk), and pushes the next oldest out.
    expect(settled.add('resp_0')).toBe(true);
    expect(settled.has('resp_1')).toBe(false);
  });

  it('keeps ids within a character budget: long ids (the upstream chooses them) are kept as their hash, and fewer of them', () => {
    const settled = new SettledIds();
    const long = (i: number) => `resp_${String(i).padStart(MAX_KEPT_ID_CHARS, '0')}`;
    // Past keptId's bound: kept as a 52-character hash, exact all the same.
    expect(settled.add(long(1))).toBe(true);
    expect(settled.has(long(1))).toBe(true);
    expect(settled.has(long(2))).toBe(false);
    // Ids of 256 characters kept whole: the character budget binds before the count.
    const whole = (i: number) => `r${String(i).padStart(MAX_KEPT_ID_CHARS - 1, '0')}`;
    const fit = Math.floor(MAX_SETTLED_ID_CHARS / MAX_KEPT_ID_CHARS);
    for (let i = 0; i < fit; i++) settled.add(whole(i));
    expect(settled.has(long(1))).toBe(false);
    expect(settled.has(whole(0))).toBe(true);
    settled.add(whole(fit));
    expect(settled.has(whole(0))).toBe(false);
    expect(settled.has(whole(1))).toBe(true);
    expect(settled.has(whole(fit))).toBe(true);
  });
});
