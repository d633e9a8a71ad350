import { describe, expect, it } from 'vitest';
import { checkRegex, maxMatchLength } from './regex-safety.js';

describe('regex safety', () => {
  it.each([
    ['refund(s)?'],
    ['\\b(?:acme|globex)\\b'],
    ['[A-Z]{2}\\d{2}[A-Z0-9]{10,30}'],
    ['\\d+(\\.\\d+)?'],
    ['\\w+@\\w+\\.com'],
    ['^order #\\d{6}$'],
    ['(foo|bar)+baz'],
    ['kill (yourself|urself)'],
    ['.*password'],
    ['\\d{3}-\\d{2}-\\d{4}'],
    ['[^\\s@]+@[^\\s@.]+\\.[a-z]{2,}'],
    ['(?<word>alpha)beta'],
    ['\\p{Lu}{2}'],
  ])('accepts %s', (pattern) => {
    expect(checkRegex(pattern)).toEqual([]);
  });

  it.each([
    ['(a+)+$', /nested quantifier/],
    ['(\\w+\\s?)*x', /nested quantifier/],
    ['(x*){2,5}', /nested quantifier/],
    ['(ab|ac)+', /repeated alternation/],
    ['(a|)+', /repeated alternation|nested|empty/],
    ['\\w+\\w+x', /unbounded repeats/],
    ['\\d+\\s*\\d+', /unbounded repeats/],
    ['.*secret.*', /unbounded repeats/],
    ['(\\d+)\\d+', /unbounded repeats/],
    ['(a)\\1', /backreference/],
    ['(?<n>a)\\k<n>', /backreference/],
    ['foo(?=bar)', /lookaround/],
    ['(?<!x)foo', /lookaround/],
    ['a*', /empty string/],
    ['(', /invalid regular expression/],
  ])('refuses %s', (pattern, reason) => {
    const problems = checkRegex(pattern);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('; ')).toMatch(reason);
  });

  it('applies case folding when looking for overlaps', () => {
    expect(checkRegex('[a-z]+[A-Z]+', 'i').join()).toMatch(/unbounded repeats/);
    expect(checkRegex('[a-z]+[A-Z]+')).toEqual([]);
  });

  it('refuses unknown flags', () => {
    expect(checkRegex('abc', 'g')[0]).toMatch(/unsupported flags/);
  });

  it('bounds the longest match (two UTF-16 units per character), Infinity when unbounded', () => {
    expect(maxMatchLength('abc')).toBe(6);
    expect(maxMatchLength('\\b(I|we) (will|can) refund\\b')).toBe(2 * (2 + 1 + 4 + 1 + 6));
    expect(maxMatchLength('\\d{3}-\\d{2,4}')).toBe(2 * 8);
    expect(maxMatchLength('x\\d+')).toBe(Infinity);
  });
});
