import { describe, expect, it } from 'vitest';
import { exceeds, minOutputLimit, parseOutputLimit } from './limits.js';

/**
 * `max_output_tokens` as clients write it. Metering clamps it against the tenant's cap and rewrites
 * any non-canonical spelling before it goes upstream; the conversation view records it. A value the
 * proxy cannot read must never pass unclamped, and the reason of a refusal reaches the client in
 * the error message (metering/filter.ts), so it is part of the contract.
 */

describe('parseOutputLimit', () => {
  it('absent: undefined, and the same frozen object every time', () => {
    const a = parseOutputLimit(undefined);
    expect(a).toEqual({ kind: 'absent' });
    expect(Object.isFrozen(a)).toBe(true);
    expect(parseOutputLimit(undefined)).toBe(a);
  });

  it('canonical spellings: a safe whole number of at least 1, or the string "inf"', () => {
    expect(parseOutputLimit(1)).toEqual({ kind: 'limit', value: 1, canonical: true });
    expect(parseOutputLimit(4096)).toEqual({ kind: 'limit', value: 4096, canonical: true });
    expect(parseOutputLimit(Number.MAX_SAFE_INTEGER)).toEqual({ kind: 'limit', value: Number.MAX_SAFE_INTEGER, canonical: true });
    expect(parseOutputLimit('inf')).toEqual({ kind: 'limit', value: 'inf', canonical: true });
  });

  it('null resets to the default, which is "inf", and is rewritten', () => {
    expect(parseOutputLimit(null)).toEqual({ kind: 'limit', value: 'inf', canonical: false });
  });

  it('a number too large for a double (1e400 in JSON parses to Infinity) means "inf", rewritten', () => {
    expect(JSON.parse('1e400')).toBe(Number.POSITIVE_INFINITY);
    expect(parseOutputLimit(JSON.parse('1e400'))).toEqual({ kind: 'limit', value: 'inf', canonical: false });
  });

  it('whole numbers beyond 2^53 are limits but not canonical (the proxy rewrites them)', () => {
    expect(parseOutputLimit(2 ** 53)).toEqual({ kind: 'limit', value: 2 ** 53, canonical: false });
    expect(parseOutputLimit(1e300)).toEqual({ kind: 'limit', value: 1e300, canonical: false });
  });

  it('zero, negatives, fractions, NaN and -Infinity are invalid, with the reason the client reads', () => {
    expect(parseOutputLimit(0)).toEqual({ kind: 'invalid', reason: '0 is below 1' });
    expect(parseOutputLimit(-0)).toEqual({ kind: 'invalid', reason: '0 is below 1' });
    expect(parseOutputLimit(-5)).toEqual({ kind: 'invalid', reason: '-5 is below 1' });
    expect(parseOutputLimit(0.5)).toEqual({ kind: 'invalid', reason: '0.5 is not a whole number' });
    expect(parseOutputLimit(1.5)).toEqual({ kind: 'invalid', reason: '1.5 is not a whole number' });
    expect(parseOutputLimit(4096.0001)).toEqual({ kind: 'invalid', reason: '4096.0001 is not a whole number' });
    expect(parseOutputLimit(Number.NaN)).toEqual({ kind: 'invalid', reason: 'NaN is not a whole number' });
    expect(parseOutputLimit(Number.NEGATIVE_INFINITY)).toEqual({ kind: 'invalid', reason: '-Infinity is not a whole number' });
    expect(parseOutputLimit(-1e400)).toEqual({ kind: 'invalid', reason: '-Infinity is not a whole number' });
  });

  it('"inf" in any case or with surrounding whitespace means "inf", rewritten', () => {
    for (const s of ['INF', 'Inf', ' inf', 'inf ', '\tiNf\n', '\u00a0inf']) {
      expect(parseOutputLimit(s), JSON.stringify(s)).toEqual({ kind: 'limit', value: 'inf', canonical: false });
    }
  });

  it('a numeric string is the number it spells, never canonical', () => {
    expect(parseOutputLimit('4096')).toEqual({ kind: 'limit', value: 4096, canonical: false });
    expect(parseOutputLimit(' 4096\n')).toEqual({ kind: 'limit', value: 4096, canonical: false });
    expect(parseOutputLimit('1')).toEqual({ kind: 'limit', value: 1, canonical: false });
    expect(parseOutputLimit('007')).toEqual({ kind: 'limit', value: 7, canonical: false });
    // Up to 15 digits: every such value is a safe integer.
    expect(parseOutputLimit('999999999999999')).toEqual({ kind: 'limit', value: 999_999_999_999_999, canonical: false });
  });

  it('a numeric string of zero is below 1', () => {
    expect(parseOutputLimit('0')).toEqual({ kind: 'invalid', reason: '"0" is below 1' });
    expect(parseOutputLimit(' 000 ')).toEqual({ kind: 'invalid', reason: '"000" is below 1' });
  });

  it('any other string is invalid: signs, fractions, exponents, hex, 16+ digits, digits with text, non-ASCII digits', () => {
    for (const s of ['', ' ', '-5', '+5', '1.0', '1e3', '0x10', '1_000', '1 000', '9999999999999999', '12a', 'a12', '4096\n5', 'infinity', 'in f', '١٢٣', '４０９６']) {
      expect(parseOutputLimit(s), JSON.stringify(s)).toEqual({ kind: 'invalid', reason: `"${s}" is neither a whole number nor "inf"` });
    }
  });

  it('the reason quotes at most 32 characters of a long string (it is echoed to the client)', () => {
    const long = `${'x'.repeat(32)}SECRET${'y'.repeat(10_000)}`;
    const parsed = parseOutputLimit(long);
    expect(parsed).toEqual({ kind: 'invalid', reason: `"${'x'.repeat(32)}" is neither a whole number nor "inf"` });
  });

  it('other types are invalid and named', () => {
    expect(parseOutputLimit(true)).toEqual({ kind: 'invalid', reason: 'a boolean is neither a whole number nor "inf"' });
    expect(parseOutputLimit(false)).toEqual({ kind: 'invalid', reason: 'a boolean is neither a whole number nor "inf"' });
    expect(parseOutputLimit({ value: 5 })).toEqual({ kind: 'invalid', reason: 'a object is neither a whole number nor "inf"' });
    expect(parseOutputLimit([4096])).toEqual({ kind: 'invalid', reason: 'a list is neither a whole number nor "inf"' });
    expect(parseOutputLimit([])).toEqual({ kind: 'invalid', reason: 'a list is neither a whole number nor "inf"' });
    expect(parseOutputLimit(5n)).toEqual({ kind: 'invalid', reason: 'a bigint is neither a whole number nor "inf"' });
  });

  it('every value read from JSON is absent, a limit of at least 1 (or "inf"), or invalid: nothing readable passes as a smaller or odd value', () => {
    const texts = ['0', '1', '-1', '1.5', '1e400', '-1e400', '"1"', '"0"', '"inf"', '"INF"', '" 12 "', 'null', 'true', '[]', '{}', '"abc"', '9007199254740993'];
    for (const t of texts) {
      const p = parseOutputLimit(JSON.parse(t));
      if (p.kind === 'limit') {
        if (p.value !== 'inf') {
          expect(Number.isInteger(p.value), t).toBe(true);
          expect(p.value, t).toBeGreaterThanOrEqual(1);
        }
        // Canonical only when the client wrote exactly what goes upstream.
        if (p.canonical) expect(JSON.stringify(p.value), t).toBe(t);
      } else {
        expect(p.kind, t).toBe('invalid');
      }
    }
  });
});

describe('minOutputLimit', () => {
  it('"inf" is above every number', () => {
    expect(minOutputLimit('inf', 5)).toBe(5);
    expect(minOutputLimit(5, 'inf')).toBe(5);
    expect(minOutputLimit('inf', 'inf')).toBe('inf');
  });

  it('of two numbers, the lower', () => {
    expect(minOutputLimit(3, 5)).toBe(3);
    expect(minOutputLimit(5, 3)).toBe(3);
    expect(minOutputLimit(7, 7)).toBe(7);
  });
});

describe('exceeds', () => {
  it('"inf" exceeds every cap', () => {
    expect(exceeds('inf', Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it('a number exceeds a cap only when strictly above it', () => {
    expect(exceeds(4097, 4096)).toBe(true);
    expect(exceeds(4096, 4096)).toBe(false);
    expect(exceeds(4095, 4096)).toBe(false);
  });
});
