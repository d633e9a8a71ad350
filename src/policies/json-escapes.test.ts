import { describe, expect, it } from 'vitest';
import { decodeJsonEscapes, normalizeJson, openEscapeStart } from './json-escapes.js';

describe('JSON string escapes', () => {
  it('nothing to decode without a backslash', () => {
    expect(decodeJsonEscapes('{"a":"plain"}')).toBeNull();
  });

  it('decodes every escape JSON has, and maps each decoded unit to the sequence it came from', () => {
    const raw = String.raw`{"a":"x\n\t\"\\\/\b\f\r\u0041\ud83d\ude00y"}`;
    const d = decodeJsonEscapes(raw)!;
    expect(d.text).toBe('{"a":"x\n\t"\\/\b\f\rA\ud83d\ude00y"}');
    expect(d.rawStart).toHaveLength(d.text.length);
    for (let i = 0; i < d.text.length; i++) {
      const piece = raw.slice(d.rawStart[i], d.rawEnd[i]);
      // Every piece is one character or one whole escape, and decodes to that unit.
      expect(piece.length === 1 ? piece : (JSON.parse(`"${piece}"`) as string)).toBe(d.text[i]);
    }
  });

  it('agrees with JSON.parse on random strings', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const alphabet = ['a', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u2028', 'é', '\ud83d\ude00', '@', 'u'];
    for (let n = 0; n < 500; n++) {
      let s = '';
      for (let k = 0; k < 12; k++) s += alphabet[Math.floor(random() * alphabet.length)]!;
      const raw = JSON.stringify({ v: s });
      const d = decodeJsonEscapes(raw);
      expect(d === null ? raw : d.text).toBe(`{"v":"${s}"}`);
    }
  });

  it('an escape at the very start or end, and one right after another', () => {
    expect(decodeJsonEscapes('\\nab')!.text).toBe('\nab');
    expect(decodeJsonEscapes('ab\\t')!.text).toBe('ab\t');
    expect(decodeJsonEscapes('\\n\\u0041\\t')!.text).toBe('\nA\t');
  });

  it('malformed escapes stay as they are (a lone backslash, a short or bad \\u)', () => {
    expect(decodeJsonEscapes('a\\')!.text).toBe('a\\');
    expect(decodeJsonEscapes('a\\x')!.text).toBe('a\\x');
    expect(decodeJsonEscapes('a\\u12')!.text).toBe('a\\u12');
    expect(decodeJsonEscapes('a\\u12zz')!.text).toBe('a\\u12zz');
    // The four digits are the ones right after \u, not any elsewhere.
    expect(decodeJsonEscapes('a\\uzzzz 1234')!.text).toBe('a\\uzzzz 1234');
    // Only \u takes four hex digits; the lone backslash maps to itself.
    const d = decodeJsonEscapes('a\\x1234')!;
    expect(d.text).toBe('a\\x1234');
    expect([...d.rawStart]).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect([...d.rawEnd]).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('normalizeJson: the folded decoded text, each unit mapped to whole escapes of the raw one', () => {
    const raw = String.raw`a\u0040\u00c9\n  b`;
    const n = normalizeJson(raw);
    // É folds to E, the newline and spaces to one space.
    expect(n.text).toBe('a@E b');
    expect([...n.starts]).toEqual([0, 1, 7, 13, 17]);
    expect([...n.ends]).toEqual([1, 7, 13, 17, 18]);
    expect(normalizeJson('plain  text').text).toBe('plain text');
  });

  it('openEscapeStart: where an escape cut off at the end starts', () => {
    expect(openEscapeStart('ab')).toBe(2);
    expect(openEscapeStart('ab\\')).toBe(2);
    expect(openEscapeStart('ab\\u')).toBe(2);
    expect(openEscapeStart('ab\\u0')).toBe(2);
    expect(openEscapeStart('ab\\u00e')).toBe(2);
    expect(openEscapeStart('ab\\u00e9')).toBe(8);
    expect(openEscapeStart('ab\\n')).toBe(4);
    expect(openEscapeStart('ab\\uzz')).toBe(6);
    // `\\` is a whole escape; the backslash after it opens another.
    expect(openEscapeStart('ab\\\\')).toBe(4);
    expect(openEscapeStart('ab\\\\\\')).toBe(4);
    expect(openEscapeStart('\\\\\\\\\\u1')).toBe(4);
    expect(openEscapeStart('\\')).toBe(0);
    // A backslash further back than any open escape reaches.
    expect(openEscapeStart('\\nabcdef')).toBe(8);
    expect(openEscapeStart('\\u123')).toBe(0);
    expect(openEscapeStart('x\\u1234')).toBe(7);
    expect(openEscapeStart('')).toBe(0);
    expect(openEscapeStart('u12')).toBe(3);
    // An odd number of other characters before the backslash.
    expect(openEscapeStart('abc\\')).toBe(3);
    expect(openEscapeStart('x\\u00')).toBe(1);
  });
});
