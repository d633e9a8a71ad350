import { describe, expect, it } from 'vitest';
import { findMemberProblem, MAX_CONTROL_DEPTH, parseStrict, DuplicateMemberError } from '../../src/protocol/strict-json.js';

/**
 * The duplicate-member detector behind finding 4 of issue 10 must be exact: every repeated name
 * (however it is spelt) is found, and nothing else is.
 */

const problem = (text: string) => findMemberProblem(Buffer.from(text, 'utf8'));

describe('findMemberProblem', () => {
  it.each([
    ['{"a":1,"a":2}', 'a'],
    ['{"a":1,"\\u0061":2}', 'a'],
    ['{"\\u0061":1,"a":2}', 'a'],
    ['{"":1,"":2}', ''],
    ['{"x":{"a":1,"b":{"c":[1,{"d":1,"d":2}]}}}', 'x.b.c[].d'],
    ['{"k\\"q":1,"k\\u0022q":2}', 'k"q'],
    ['{"\\\\":1,"\\u005c":2}', '\\'],
    ['{"é":1,"\\u00e9":2}', 'é'],
    ['{"😀":1,"\\ud83d\\ude00":2}', '😀'],
    ['{"s":"a\\\\","s":"b"}', 's'],
    ['{"t":"{\\"t\\":1,","t":2}', 't'],
  ])('%s → duplicate at %j', (text, path) => {
    expect(problem(text)).toEqual({ reason: 'duplicate_member', path });
  });

  it.each([
    '{"a":1,"b":2}',
    '{"a":{"a":{"a":1}}}',
    '[{"a":1},{"a":2}]',
    '{"a":[{"b":1},{"b":2}],"b":{"a":1}}',
    '{"s":"\\"a\\":1,\\"a\\":2"}',
    '{"a":"x","A":"y"}',
    '{"k":"\\\\","k2":"\\\\\\""}',
    '{"a:b":1,"a":2,"b":"{\\"a\\":1}"}',
  ])('%s → no problem', (text) => {
    expect(problem(text)).toBeNull();
  });

  it('refuses nesting beyond the bound, and accepts it up to the bound', () => {
    const at = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    expect(problem(at(MAX_CONTROL_DEPTH))).toBeNull();
    expect(problem(at(MAX_CONTROL_DEPTH + 1))?.reason).toBe('too_deep');
  });

  it('parseStrict throws a DuplicateMemberError, and SyntaxError for non-JSON', () => {
    expect(() => parseStrict(Buffer.from('{"a":1,"a":1}'))).toThrow(DuplicateMemberError);
    expect(() => parseStrict(Buffer.from('{"a":1,'))).toThrow(SyntaxError);
    expect(parseStrict(Buffer.from('{"a":[1,{"b":"c"}]}'))).toEqual({ a: [1, { b: 'c' }] });
  });

  it('agrees with a reference parser on 3,000 random documents with adversarial keys', () => {
    // mulberry32: deterministic, good low bits.
    let seed = 0x1234567;
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    // Spellings of a few names: plain, escaped, with quotes and backslashes inside.
    const keys = ['a', '\\u0061', 'b', 'type', 'ty\\u0070e', 'k\\"', 'k\\u0022', '\\\\', '\\u005C', '', 'é', '\\u00e9', 'a:b', '{'];
    const values = ['1', '"x"', '"a\\"b"', '"\\\\"', 'null', 'true', '"{\\"a\\":1}"', '"a,\\"a\\":"', '-1.5e3'];
    const gen = (depth: number): string => {
      const r = rand(depth > 3 ? 2 : 5);
      if (r <= 1) return values[rand(values.length)]!;
      if (r === 2) return `[${Array.from({ length: rand(3) }, () => gen(depth + 1)).join(',')}]`;
      return `{${Array.from({ length: rand(4) }, () => `"${keys[rand(keys.length)]!}" : ${gen(depth + 1)}`).join(' , ')}}`;
    };
    let duplicates = 0;
    for (let i = 0; i < 3000; i++) {
      const text = `{"type":"x","v":${gen(0)}}`;
      const expected = referenceHasDuplicate(text);
      if (expected) duplicates++;
      expect(problem(text) !== null, text).toBe(expected);
    }
    // The generator must actually produce both outcomes.
    expect(duplicates).toBeGreaterThan(100);
    expect(duplicates).toBeLessThan(2900);
  });
});

/** A small recursive-descent JSON reader that reports whether any object repeats a (decoded) name. */
function referenceHasDuplicate(text: string): boolean {
  let i = 0;
  let dup = false;
  const ws = () => {
    while (/\s/.test(text[i] ?? '')) i++;
  };
  const str = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const seen = new Set<string>();
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        const k = str();
        if (seen.has(k)) dup = true;
        seen.add(k);
        ws();
        i++; // :
        value();
        ws();
        if (text[i++] === '}') return;
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i++] === ']') return;
      }
    }
    if (c === '"') {
      str();
      return;
    }
    while (i < text.length && !/[,\]}\s]/.test(text[i]!)) i++;
  };
  JSON.parse(text);
  value();
  return dup;
}
