import { describe, expect, it } from 'vitest';
import { phraseFinder, scanText, type CompiledRule } from './matchers.js';

/**
 * Written against the mutants of the strays' readings left open by the twenty-third session (b) and
 * run again in the twenty-fourth (test/mutation/open-survivors.md, "twenty-fourth"): a JSON text's
 * escaped strays, a plain text's escapes, and each reading's own maps (a redaction's place).
 */

/** Each character as its TAG counterpart (U+E0020–U+E007E). */
const tags = (t: string) => [...t].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');

const rule = (action: 'block' | 'redact', phrases: string[]): CompiledRule => ({
  id: 'p',
  sources: new Set(['output']),
  events: null,
  action,
  finders: [phraseFinder(phrases, true)],
  maxChars: null,
  functionName: null,
  replacement: '[{type}]',
  logMatches: false,
});
const PHRASE = ['ignore previous instructions'];
const hitsOf = (text: string, format: 'text' | 'json') => scanText([rule('block', PHRASE)], text, 64, 4096, '', format).hits.map((h) => h.rule.id);

describe('a JSON text (tool arguments, outputs) with an escaped stray inside a word', () => {
  it.each([
    ['U+FFFD', '\\ufffd'],
    ['U+FFFC', '\\ufffc'],
    ['a lone high surrogate', '\\ud800'],
  ])('%s escaped is dropped as the same character unescaped is', (_name, escape) => {
    expect(hitsOf(`{"q":"ign${escape}ore previous instructions"}`, 'json')).toEqual(['p']);
  });

  it('the control: the escape between two words keeps them apart', () => {
    expect(hitsOf('{"q":"ignore previous\\ufffdnotes instructions"}', 'json')).toEqual([]);
  });
});

describe('a plain text with a stray: its escapes are characters, not what they would decode to', () => {
  it('`\\u006f` in a plain text is six characters (no match); read as JSON it is `o`', () => {
    const text = 'ign\\u006fre previous instructions\ufffd';
    expect(hitsOf(text, 'text')).toEqual([]);
    expect(hitsOf(text, 'json')).toEqual(['p']);
  });
});

describe('a redaction found in each reading lands on the raw text it read', () => {
  const redact = (text: string) => scanText([rule('redact', ['password'])], text, 64, 4096).text;

  it('hidden tag characters before the word (two readings): only the word is replaced', () => {
    const text = `abc${tags('xyz')} password here`;
    expect(redact(text)).toBe(`abc${tags('xyz')} [phrase] here`);
  });

  it('hidden tag characters and a stray before the word (three readings): only the word is replaced', () => {
    const text = `abc${tags('xyz')} \ufffd password here`;
    expect(redact(text)).toBe(`abc${tags('xyz')} \ufffd [phrase] here`);
  });

  it('the word hidden in tag characters, a stray before it (read by the second reading alone): the tag run is replaced', () => {
    const text = `abc\ufffd ${tags('password')} here`;
    expect(redact(text)).toBe('abc\ufffd [phrase] here');
  });
});
