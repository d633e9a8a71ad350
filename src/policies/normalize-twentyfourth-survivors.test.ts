import { describe, expect, it } from 'vitest';
import { normalize } from './normalize.js';

/**
 * Written against the mutants of normalize's code point reading left open by the twenty-third
 * session (b) and run again in the twenty-fourth (test/mutation/open-survivors.md, "twenty-fourth"):
 * only a high surrogate is joined with the low one after it.
 */
describe('a lone low surrogate after a character that is no high surrogate', () => {
  it.each([
    ['after a fullwidth letter (above the surrogates)', '\uff49\udc00gnore', 'ignore'],
    ['after U+FFFD', 'a\ufffd\udc00b', 'ab'],
    ['after another low surrogate', 'a\udc00\udc01b', 'ab'],
    ['after an ASCII letter (below the surrogates)', 'a\udc00b', 'ab'],
    ['after a letter just below the surrogates (U+D7FB)', '\ud7fb\udc00', '\ud7fb'],
  ])('is a stray of its own, the character before it read as it is: %s', (_name, text, read) => {
    const strays = normalize(text, false, true);
    expect([strays.text, strays.strays]).toEqual([read, true]);
  });
});

describe('a surrogate pair at the first high surrogate (U+D800)', () => {
  it('is one code point: U+10000, a letter, read whole and no stray', () => {
    const read = normalize('\u{10000}x', false, true);
    expect([read.text, read.strays]).toEqual(['\u{10000}x', false]);
  });
});
