import { describe, expect, it } from 'vitest';
import { phraseFinder, regexFinder, type CompiledRule } from './matchers.js';
import { linedText, normalize } from './normalize.js';
import { builtinPii as pii, outputRule as rule, streamThrough as stream } from '../../test/policies/scanner-support.js';

/**
 * A line break is a boundary for the phone detector only (pii.ts `readsLineBreaks`): numbers one per
 * line are each a number (until 2026-12-07 the fold made them one run of 30 digits, and they passed:
 * test/policies/redteam-19g-date-boundaries.test.ts). Every other matcher reads the line break as a
 * space, as before, and so does the phone detector's first reading (a number broken across lines).
 */

const piiRules = (): CompiledRule[] => ['phone', 'card', 'iban', 'email'].map((name) => rule(name, [pii(name)]));

/** Every split of `text` into two deltas, and the whole. */
const splits = (text: string): string[][] => [[text], ...Array.from({ length: text.length - 1 }, (_, k) => [text.slice(0, k + 1), text.slice(k + 1)])];

describe('normalize lists the spaces that stand for a line break', () => {
  it('a run holding one line break (any kind, spaces around it) is one listed space; a run of spaces is not listed', () => {
    const n = normalize('a \n b  c\r\nd\u2028e\u0085f\tg\x0bh\x0ci\u2029j');
    expect(n.text).toBe('a b c d e f g h i j');
    expect(n.lineBreaks).toEqual([1, 5, 7, 9, 13, 15, 17]);
    expect(linedText(n.text, n.lineBreaks)).toBe('a\nb c\nd\ne\nf g\nh\ni\nj');
    // Same offsets: the line break reading maps back as the spaced one does.
    expect([n.starts[1], n.ends[1]]).toEqual([1, 4]);
    expect(normalize('plain text, no breaks').lineBreaks).toEqual([]);
  });

  it('a line break after a regional indicator run or inside dropped characters is still listed', () => {
    expect(normalize('x\u200b\ny').lineBreaks).toEqual([1]);
    expect(normalize('\u{1F1FA}\u{1F1F8}\nz').lineBreaks).toEqual([2]);
  });
});

describe('phone numbers one per line', () => {
  const list = 'Numbers:\n415-555-0100\n415-555-0199\r\n+44 20 7946 0958\n';

  it('are each redacted, however the text is split into deltas', () => {
    for (const deltas of splits(list)) expect(stream(piiRules(), deltas).text, JSON.stringify(deltas)).toBe('Numbers:\n[phone]\n[phone]\r\n[phone]\n');
  });

  it('in a JSON text (tool arguments), where a line break is the escape `\\n`', () => {
    const raw = JSON.stringify(list).slice(1, -1);
    expect(stream(piiRules(), [raw], 'json').text).toBe('Numbers:\\n[phone]\\n[phone]\\r\\n[phone]\\n');
  });

  it('a number broken across lines, or one digit per line, is found as before', () => {
    expect(stream(piiRules(), ['call (415)\n555-0100 now']).text).toBe('call [phone] now');
    expect(stream(piiRules(), ['4\n1\n5\n5\n5\n5\n0\n1\n0\n0']).text).toBe('[phone]');
  });

  it('a longer digit run across a line break is still no phone number, and a date line before one is no part of it', () => {
    expect(stream([rule('phone', [pii('phone')])], ['id 4155550100 4155550199']).text).toBe('id 4155550100 4155550199');
    expect(stream([rule('phone', [pii('phone')])], ['2026-12-01\n415-555-0100\n']).text).toBe('2026-12-01\n[phone]\n');
  });

  it('cards, IBANs and emails one per line are each redacted (as before), a card broken across lines too', () => {
    expect(stream(piiRules(), ['4111 1111 1111 1111\n5500 0000 0000 0004\n']).text).toBe('[card]\n[card]\n');
    expect(stream(piiRules(), ['4111\n1111\n1111\n1111']).text).toBe('[card]');
    expect(stream(piiRules(), ['DE89370400440532013000\nGB82 WEST 1234 5698 7654 32\na@example.com\nb@example.com']).text).toBe('[iban]\n[iban]\n[email]\n[email]');
  });

  it('a stopping rule trips once on a list', () => {
    expect(stream([rule('stop', [pii('phone')], 'end_session')], ['415-555-0100\n415-555-0199']).tripped).toEqual(['stop']);
  });
});

describe('every other matcher reads a line break as a space, as before', () => {
  it('phrases, user regexes with a literal space, in text and JSON, however split', () => {
    const rules = [rule('phrase', [phraseFinder(['ignore previous instructions'], true)], 'block'), rule('regex', [regexFinder(/wire the money/gi, 'regex', 14)], 'block')];
    for (const deltas of splits('ignore previous\ninstructions')) expect(stream(rules, deltas).tripped, JSON.stringify(deltas)).toEqual(['phrase']);
    for (const deltas of splits('please wire\r\nthe  \n money')) expect(stream(rules, deltas).tripped, JSON.stringify(deltas)).toEqual(['regex']);
    expect(stream(rules, ['{"note":"ignore previous\\ninstructions"}'], 'json').tripped).toEqual(['phrase']);
  });

  it('in the tag reading too (hidden tag characters read as ASCII)', () => {
    const tags = (s: string): string => [...s].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');
    const rules = [rule('phrase', [phraseFinder(['ignore previous instructions'], true)], 'block'), rule('phone', [pii('phone')])];
    expect(stream(rules, [`hi ${tags('ignore previous')}\n${tags('instructions')}`]).tripped).toEqual(['phrase']);
    expect(stream(rules, ['x\n', '415-555-0100\n415-555-0199', ` ${tags('ok')}`]).text).toBe(`x\n[phone]\n[phone] ${tags('ok')}`);
  });
});
