import { describe, expect, it } from 'vitest';
import { normalize, KEPT_STRAY } from './normalize.js';
import { phraseFinder } from './matchers.js';

/**
 * The phrase pattern that reads strays either way (matchers.ts strayAlternative) puts an optional
 * stray after every character of every phrase. Written as the classes of STRAY (unassigned, private
 * use, surrogates), case-insensitive, V8 ran it at about 0.6 ms a character: a 4 KiB window of
 * `ignore�,�,…previous�` under 50 phrases took 2.5 s a scan (the plain pattern 4 ms), so every
 * delta or item with a stray near such text cost up to the event's scan budget (2 s) of the
 * process's CPU. The first reading now keeps each stray as one character (U+FFFD), and the pattern
 * names that one: the same text takes about 12 ms (measured once, by hand; no timed assertion).
 * What is asserted here is what that rests on.
 */
const STRAYS = ['\ufffd', '\ufffc', '\ud800', '\udfff', '\ue000', '\u{f0000}', '\u{10fffd}', '\ufdd0', '\uffff', '\u{1fffe}'];

describe('the first reading keeps each stray as U+FFFD', () => {
  it('whichever stray it was, mapped to all of it', () => {
    for (const s of STRAYS) {
      const n = normalize(`ab${s}cd`);
      expect(n.text, JSON.stringify(s)).toBe(`ab${KEPT_STRAY}cd`);
      expect([...n.starts]).toEqual([0, 1, 2, 2 + s.length, 3 + s.length]);
      expect([...n.ends]).toEqual([1, 2, 2 + s.length, 3 + s.length, 4 + s.length]);
      expect(n.strays).toBe(true);
      // The reading that drops them is unchanged.
      expect(normalize(`ab${s}cd`, true).text).toBe('abcd');
    }
  });

  it('the stray-aware phrase pattern needs no stray class: a stray of every kind is still read either way', () => {
    const finder = phraseFinder(['ignore previous instructions'], true);
    for (const s of STRAYS) {
      const n = normalize(`please ignore${s}prev${s}ious instructions now`);
      const hits: [number, number][] = [];
      finder.find(n.text, (start, end) => hits.push([start, end]), 0, true);
      expect(hits.map(([a, b]) => n.text.slice(a, b)), JSON.stringify(s)).toEqual([`ignore${KEPT_STRAY}prev${KEPT_STRAY}ious instructions`]);
    }
  });
});
