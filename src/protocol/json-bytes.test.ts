import { describe, expect, it } from 'vitest';
import { seeded } from '../../test/support/seeded.js';
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, closingQuote, COLON, COMMA, isSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './json-bytes.js';

/**
 * The byte primitives every frame scanner (sniff, strict-json, json-depth) builds on. A scanner
 * that ends a string one quote early or late reads attacker text as structure: these are held to
 * JSON's own grammar (RFC 8259), with JSON.parse as the reference where it applies.
 */

const b = (s: string) => Buffer.from(s, 'utf8');

describe('byte constants', () => {
  it('are the ASCII codes of the JSON structural characters', () => {
    expect([QUOTE, BACKSLASH, COLON, COMMA, OPEN_BRACE, CLOSE_BRACE, OPEN_BRACKET, CLOSE_BRACKET].map((c) => String.fromCharCode(c)).join('')).toBe('"\\:,{}[]');
  });
});

describe('isSpace', () => {
  it('is true for exactly the four JSON whitespace bytes (space, LF, CR, tab)', () => {
    for (const c of [0x20, 0x0a, 0x0d, 0x09]) expect(isSpace(c), `0x${c.toString(16)}`).toBe(true);
    const others = [];
    for (let c = 0; c < 256; c++) if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09 && isSpace(c)) others.push(c);
    expect(others).toEqual([]);
  });

  it('agrees with JSON.parse on which bytes may surround a value (vertical tab, form feed, NBSP are not whitespace)', () => {
    for (let c = 0; c < 256; c++) {
      let accepted = true;
      try {
        JSON.parse(`${String.fromCharCode(c)}1`);
      } catch {
        accepted = false;
      }
      // A leading digit parses anyway; every other accepted prefix is JSON whitespace.
      const digitOrSign = (c >= 0x30 && c <= 0x39) || c === 0x2d;
      if (!digitOrSign) expect(isSpace(c), `0x${c.toString(16)}`).toBe(accepted);
    }
  });
});

describe('closingQuote', () => {
  it('finds the closing quote of a plain string', () => {
    expect(closingQuote(b('"abc"'), 0)).toBe(4);
    expect(closingQuote(b('""'), 0)).toBe(1);
  });

  it('starts at the given opening quote, not at the start of the buffer', () => {
    const buf = b('{"key":"value"}');
    expect(closingQuote(buf, 1)).toBe(5);
    expect(closingQuote(buf, 7)).toBe(13);
    // Quotes before `open` are not candidates.
    expect(closingQuote(b('"a" "bc"'), 4)).toBe(7);
  });

  it('skips a quote escaped by one backslash', () => {
    const s = '"a\\"b"';
    expect(closingQuote(b(s), 0)).toBe(s.length - 1);
    expect(closingQuote(b('x"\\""'), 1)).toBe(4);
  });

  it('stops at a quote after an escaped backslash (an even run of backslashes)', () => {
    expect(closingQuote(b('"a\\\\"'), 0)).toBe(4);
    expect(closingQuote(b('"\\\\"'), 0)).toBe(3);
    expect(closingQuote(b('"\\\\\\\\"x"'), 0)).toBe(5);
  });

  it('skips a quote after an odd run of backslashes (escaped backslashes, then an escaped quote)', () => {
    expect(closingQuote(b('"\\\\\\"x"'), 0)).toBe(6);
    expect(closingQuote(b('"\\\\\\\\\\"x"'), 0)).toBe(8);
    // Several escaped quotes in a row before the real end.
    expect(closingQuote(b('"\\"\\"\\""'), 0)).toBe(7);
  });

  it('counts only the backslashes inside the string: one just before the opening quote does not escape anything', () => {
    // The byte before `open` is a backslash; the empty string still ends at once.
    expect(closingQuote(b('\\""'), 1)).toBe(2);
    expect(closingQuote(b('\\\\""'), 2)).toBe(3);
  });

  it('is -1 for an unterminated string, whatever the escapes', () => {
    expect(closingQuote(b('"abc'), 0)).toBe(-1);
    expect(closingQuote(b('"'), 0)).toBe(-1);
    expect(closingQuote(b('"abc\\"'), 0)).toBe(-1);
    expect(closingQuote(b('"\\"\\"'), 0)).toBe(-1);
    expect(closingQuote(b('x"'), 1)).toBe(-1);
  });

  it('is not fooled by multi-byte UTF-8 (no continuation byte is a quote or a backslash)', () => {
    const s = '"é€😀\\"ü"';
    expect(closingQuote(b(s), 0)).toBe(b(s).length - 1);
  });

  it('agrees with JSON.parse on where every string of a generated corpus ends', () => {
    const next = seeded(1234);
    const alphabet = ['a', '\\\\', '\\"', '"', '\\', 'é', ' ', '[', '}'];
    for (let n = 0; n < 2000; n++) {
      let s = '"';
      const len = next(12);
      for (let k = 0; k < len; k++) s += alphabet[next(alphabet.length)]!;
      const buf = b(s);
      const end = closingQuote(buf, 0);
      // Reference: a forward lexer (a backslash escapes the next byte, whatever it is).
      let ref = -1;
      for (let j = 1; j < buf.length; j++) {
        if (buf[j] === BACKSLASH) j++;
        else if (buf[j] === QUOTE) {
          ref = j;
          break;
        }
      }
      // Where the prefix is valid JSON, JSON.parse agrees that it is one whole string.
      if (ref > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(buf.subarray(0, ref + 1).toString('utf8'));
        } catch {
          parsed = undefined;
        }
        if (parsed !== undefined) expect(typeof parsed, s).toBe('string');
      }
      expect(end, s).toBe(ref);
    }
  });
});
