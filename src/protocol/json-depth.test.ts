import { describe, expect, it } from 'vitest';
import { seeded } from '../../test/support/seeded.js';
import { exceedsJsonDepth } from './json-depth.js';

/**
 * The relay refuses a client event nested deeper than server.maxJsonDepth before anything parses,
 * clones or serialises it (session.ts). The scan must count exactly the nesting JSON.parse would
 * build: brackets inside strings (escaped quotes included) are text, not structure.
 */

const b = (s: string) => Buffer.from(s, 'utf8');
const deep = (n: number, open = '[', close = ']') => `${open.repeat(n)}${close.repeat(n)}`;

/** Nesting depth of a parsed JSON value (the reference). */
function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v !== null && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

describe('exceedsJsonDepth', () => {
  it('allows nesting exactly at the limit and refuses one level more, for arrays and objects alike', () => {
    expect(exceedsJsonDepth(b(deep(4)), 4)).toBe(false);
    expect(exceedsJsonDepth(b(deep(5)), 4)).toBe(true);
    const obj = (n: number): string => (n === 0 ? '1' : `{"a":${obj(n - 1)}}`);
    expect(exceedsJsonDepth(b(obj(4)), 4)).toBe(false);
    expect(exceedsJsonDepth(b(obj(5)), 4)).toBe(true);
    // Mixed: [{[{ ... }]}]
    expect(exceedsJsonDepth(b('[{"a":[{"b":[]}]}]'), 5)).toBe(false);
    expect(exceedsJsonDepth(b('[{"a":[{"b":[]}]}]'), 4)).toBe(true);
  });

  it('a scalar or an empty document has depth 0', () => {
    expect(exceedsJsonDepth(b('"x"'), 0)).toBe(false);
    expect(exceedsJsonDepth(b('123'), 0)).toBe(false);
    expect(exceedsJsonDepth(b(''), 0)).toBe(false);
    expect(exceedsJsonDepth(b('{}'), 0)).toBe(true);
    expect(exceedsJsonDepth(b('[]'), 0)).toBe(true);
  });

  it('counts depth, not the number of containers: siblings close what they open', () => {
    const siblings = (o: string, c: string) => `[${Array.from({ length: 200 }, () => `${o}${c}`).join(',')}]`;
    expect(exceedsJsonDepth(b(siblings('[', ']')), 2)).toBe(false);
    expect(exceedsJsonDepth(b(siblings('{', '}')), 2)).toBe(false);
    expect(exceedsJsonDepth(b(`{"a":${siblings('{', '}')},"b":${siblings('[', ']')}}`), 3)).toBe(false);
    expect(exceedsJsonDepth(b(`{"a":${siblings('{', '}')},"b":${siblings('[', ']')}}`), 2)).toBe(true);
  });

  it('brackets inside strings are text: an event whose text looks deep is not refused', () => {
    const text = JSON.stringify({ type: 'conversation.item.create', item: { content: [{ type: 'input_text', text: deep(500) + '{'.repeat(500) }] } });
    expect(exceedsJsonDepth(b(text), 4)).toBe(false);
    expect(exceedsJsonDepth(b(text), 3)).toBe(true);
    // Brackets in member names too.
    expect(exceedsJsonDepth(b(`{"${'['.repeat(50)}":1}`), 1)).toBe(false);
  });

  it('an escaped quote does not end a string: the brackets after it are still text', () => {
    // "say \"[[[[\" then {{{{": all one string.
    const text = JSON.stringify({ t: 'say "[[[[" then {{{{' });
    expect(text).toContain('\\"');
    expect(exceedsJsonDepth(b(text), 1)).toBe(false);
    // An escaped backslash before the quote does end the string: what follows is structure.
    const structure = `{"t":"x\\\\","v":${deep(3)}}`;
    expect(depthOf(JSON.parse(structure))).toBe(4);
    expect(exceedsJsonDepth(b(structure), 3)).toBe(true);
    expect(exceedsJsonDepth(b(structure), 4)).toBe(false);
  });

  it('a hostile document deep after a string full of escapes is still refused', () => {
    const hostile = `{"a":"\\\\\\"]]]]}}}}\\\\","b":${deep(100)}}`;
    expect(depthOf(JSON.parse(hostile))).toBe(101);
    expect(exceedsJsonDepth(b(hostile), 100)).toBe(true);
    expect(exceedsJsonDepth(b(hostile), 101)).toBe(false);
  });

  it('refuses deep nesting that comes before an unterminated string (the scan stops at the limit)', () => {
    expect(exceedsJsonDepth(b(`${'['.repeat(10)}"unterminated`), 5)).toBe(true);
  });

  it('answers false for an unterminated string once the depth so far is within the limit (the parser reports it)', () => {
    expect(exceedsJsonDepth(b('[["abc'), 5)).toBe(false);
    expect(exceedsJsonDepth(b('"'), 0)).toBe(false);
    // Everything after the open quote is string: brackets there are never counted.
    expect(exceedsJsonDepth(b(`["${'['.repeat(10)}`), 5)).toBe(false);
  });

  it('skips multi-byte UTF-8 and huge numbers and unicode escapes as plain bytes', () => {
    const text = `{"é€😀\\u005b\\u007b":[1e999999,-0.0e-5,123456789012345678901234567890],"x":"\\u0022["}`;
    expect(depthOf(JSON.parse(text))).toBe(2);
    expect(exceedsJsonDepth(b(text), 2)).toBe(false);
    expect(exceedsJsonDepth(b(text), 1)).toBe(true);
  });

  it('reads only the bytes of the view it is given (a Uint8Array slice of a larger buffer)', () => {
    const whole = b(`${'['.repeat(20)}[[1]]${']'.repeat(20)}`);
    const view = new Uint8Array(whole.buffer, whole.byteOffset + 20, 5);
    expect(Buffer.from(view).toString()).toBe('[[1]]');
    expect(exceedsJsonDepth(view, 2)).toBe(false);
    expect(exceedsJsonDepth(view, 1)).toBe(true);
    // A plain Uint8Array (not a Buffer) over its own memory.
    expect(exceedsJsonDepth(new Uint8Array(b(deep(3))), 3)).toBe(false);
    expect(exceedsJsonDepth(new Uint8Array(b(deep(3))), 2)).toBe(true);
    // A view whose bytes after its end would close a string it opens.
    const tail = b('["ab"]');
    const cut = new Uint8Array(tail.buffer, tail.byteOffset, 3);
    expect(exceedsJsonDepth(cut, 0)).toBe(true);
    expect(exceedsJsonDepth(cut, 1)).toBe(false);
  });

  it('a Buffer that is a slice of a larger pool is read within its bounds', () => {
    const pool = b(`${'{'.repeat(30)}[[]]`);
    const slice = pool.subarray(30);
    expect(exceedsJsonDepth(slice, 2)).toBe(false);
    expect(exceedsJsonDepth(slice, 1)).toBe(true);
  });

  it('agrees with the depth JSON.parse builds, on generated documents with hostile strings', () => {
    const next = seeded(42);
    const strings = ['', '[', ']', '{', '}', '\\"', '\\\\', '\\u005b', '"[[', 'é'];
    const gen = (d: number): unknown => {
      const k = next(d > 0 ? 5 : 3);
      if (k === 0) return next(1000);
      if (k === 1) return Array.from({ length: 1 + next(3) }, () => strings[next(strings.length)]).join('');
      if (k === 2) return null;
      if (k === 3) return Array.from({ length: next(3) }, () => gen(d - 1));
      const o: Record<string, unknown> = {};
      for (let i = next(3); i > 0; i--) o[`${strings[next(strings.length)]}${i}`] = gen(d - 1);
      return o;
    };
    let refusedSome = false;
    let allowedSome = false;
    for (let n = 0; n < 500; n++) {
      const v = gen(1 + next(8));
      const text = JSON.stringify(v);
      const depth = depthOf(v);
      for (const max of [depth - 1, depth, depth + 1]) {
        if (max < 0) continue;
        const refused = exceedsJsonDepth(b(text), max);
        expect(refused, `${text} at ${max}`).toBe(depth > max);
        if (refused) refusedSome = true;
        else allowedSome = true;
      }
    }
    expect(refusedSome && allowedSome).toBe(true);
  });

  it('refuses a very deep document without recursion (no stack overflow)', () => {
    expect(exceedsJsonDepth(b(deep(1_000_000)), 64)).toBe(true);
    expect(exceedsJsonDepth(b(`[${'"x",'.repeat(100_000)}1]`), 1)).toBe(false);
  });
});
