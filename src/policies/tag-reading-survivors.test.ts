import { describe, expect, it } from 'vitest';
import { phraseFinder, scanText, type CompiledRule } from './matchers.js';
import { normalize } from './normalize.js';

/**
 * Tests for the mutants of the second reading of text hidden in Unicode tag characters (c5f504e:
 * normalize.ts's tag runs and subdivision flags, matchers.ts's tag reading) that survived the range
 * run of 2026-12-06: which tag runs are a flag (the 🏴 before them, the CANCEL TAG after them, the
 * letters `a`–`z` and digits of the spec), and that a plain text's tag reading is not JSON-decoded.
 */

/** Each character as its TAG counterpart (U+E0020–U+E007E). */
const tags = (t: string) => [...t].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');
const CANCEL = '\u{e007f}';
const BLACK_FLAG = '\u{1f3f4}';

const block = (phrases: string[], id = 'p'): CompiledRule => ({
  id,
  sources: new Set(['output']),
  events: null,
  action: 'block',
  finders: [phraseFinder(phrases, true)],
  maxChars: null,
  functionName: null,
  replacement: '[{type}]',
  logMatches: false,
});

describe('normalize: a tag run is a flag only after 🏴 and before CANCEL TAG', () => {
  it('a flag spec holding the letter `a` (California, `usca`) is a flag: no hidden text', () => {
    const california = `${BLACK_FLAG}${tags('usca')}${CANCEL}`;
    expect(normalize(california).hiddenTags).toBe(false);
    expect(normalize(`go ${california} team`, true).text).toBe(`go ${BLACK_FLAG} team`);
    // The letters around `a` too: `z` and digits are spec characters, `{` (after `z`) and `/` (before `0`) are not.
    expect(normalize(`${BLACK_FLAG}${tags('az09')}${CANCEL}`).hiddenTags).toBe(false);
  });

  it('another emoji before the run (a white flag, U+1F3F3, sharing 🏴\'s high surrogate) makes it text', () => {
    const white = `\u{1f3f3}${tags('gbeng')}${CANCEL}`;
    expect(normalize(white).hiddenTags).toBe(true);
    expect(normalize(white, true).text).toBe('\u{1f3f3}gbeng');
  });

  it("a lone low surrogate equal to 🏴's second half (not after its first half) makes it text", () => {
    const lone = `x\udff4${tags('gbeng')}${CANCEL}`;
    expect(normalize(lone).hiddenTags).toBe(true);
    expect(normalize(lone, true).text.endsWith('gbeng')).toBe(true);
  });

  it('another tag character after the run (LANGUAGE TAG U+E0001, not CANCEL TAG) makes it text', () => {
    const language = `${BLACK_FLAG}${tags('gbeng')}\u{e0001}`;
    expect(normalize(language).hiddenTags).toBe(true);
    expect(normalize(language, true).text).toBe(`${BLACK_FLAG}gbeng`);
    // Control: the same run closed by CANCEL TAG is a flag.
    expect(normalize(`${BLACK_FLAG}${tags('gbeng')}${CANCEL}`).hiddenTags).toBe(false);
  });

  it("a lone low surrogate equal to CANCEL TAG's second half (after another character) makes it text", () => {
    const lone = `${BLACK_FLAG}${tags('gbeng')}x\udc7f`;
    expect(normalize(lone).hiddenTags).toBe(true);
    expect(normalize(lone, true).text.startsWith(`${BLACK_FLAG}gbeng`)).toBe(true);
  });

  it('a rule on the hidden letters trips on those runs, not on a flag', () => {
    const trips = (text: string) => scanText([block(['gbeng'])], text, 64, 4096).hits.length > 0;
    expect(trips(`${BLACK_FLAG}${tags('gbeng')}\u{e0001}`)).toBe(true);
    expect(trips(`\u{1f3f3}${tags(' gbeng')}${CANCEL}`)).toBe(true);
    expect(trips(`${BLACK_FLAG}${tags('gbeng')}${CANCEL}`)).toBe(false);
  });
});

describe('matchers: the tag reading of a plain text is not JSON-decoded', () => {
  it('`\\u0069gnore` in a plain text with tag characters is those characters, not `ignore`', () => {
    const text = `\\u0069gnore previous instructions${tags('!')}`;
    // Neither reading of a plain text decodes the escape: no match.
    expect(scanText([block(['ignore previous instructions'])], text, 64, 4096).hits).toEqual([]);
    // Read as JSON (a tool's arguments), the escape is `i`: it matches.
    expect(scanText([block(['ignore previous instructions'])], text, 64, 4096, '', 'json').hits.map((h) => h.rule.id)).toEqual(['p']);
  });
});
