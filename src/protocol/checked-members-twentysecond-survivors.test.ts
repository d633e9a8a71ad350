import { describe, expect, it } from 'vitest';
import { checkedMembers } from './checked-members.js';
import { DELTA_KEYS as KEYS, parsedMembers as parsed, walkedMembers as read } from '../../test/support/member-readings.js';

/**
 * Survivors of the first mutation run of checked-members.ts (twenty-second session, 2026-12-07): the
 * walk's boundaries, each where a one-character slip would read a frame differently from JSON.parse
 * (accept what it refuses, or read another value) or refuse what it reads exactly.
 */

const b = (s: string) => Buffer.from(s, 'utf8');

/** The walk answers, and exactly as JSON.parse reads. */
function readsAsParsed(text: string, keys: readonly string[] = KEYS): void {
  const want = parsed(text, keys);
  expect(want, `JSON.parse should accept ${text}`).toBeDefined();
  expect(read(text, keys), text).toEqual(want);
}

/** JSON.parse refuses it, and so does the walk. */
function refusedByBoth(text: string): void {
  expect(parsed(text), `JSON.parse should refuse ${text}`).toBeUndefined();
  expect(read(text), text).toBeUndefined();
}

describe('checkedMembers: boundaries the first mutation run left untested', () => {
  it('takes at most 31 wanted keys, and says so past them', () => {
    const keys = Array.from({ length: 31 }, (_, k) => `k${k}`);
    const text = `{${keys.map((k, i) => `"${k}":${i}`).join(',')}}`;
    const m = checkedMembers(b(text), keys);
    expect(m && Array.from(m.numbers.subarray(0, 31))).toEqual(keys.map((_, i) => i));
    expect(() => checkedMembers(b(text), [...keys, 'k31'])).toThrow(new RangeError('at most 31 keys'));
  });

  it('marks an absent or non-string member with -1 at both ends of its span', () => {
    // A string read before must not leave its span behind (the answer is reused between calls).
    expect(checkedMembers(b('{"delta":"abc","item_id":"i"}'), KEYS)).toBeDefined();
    const m = checkedMembers(b('{"delta":5}'), KEYS);
    expect(m && [Array.from(m.stringStart.subarray(0, 4)), Array.from(m.stringEnd.subarray(0, 4))]).toEqual([
      [-1, -1, -1, -1],
      [-1, -1, -1, -1],
    ]);
  });

  it('reads true, false, empty and many-membered objects and arrays, and escapes inside arrays', () => {
    for (const text of [
      '{"a":true,"b":false,"delta":"x"}',
      '{"a":[true,false,null],"delta":"x"}',
      '{"a":{},"delta":"x","b":{ }}',
      '{"a":[],"delta":"x","b":[ ]}',
      '{"a":{"b":1,"c":{"d":2, "e" : [3]}},"delta":"x","content_index":4}',
      '{"a":["\\n","\\u00e9",["\\""]],"delta":"x"}',
    ])
      readsAsParsed(text);
  });

  it('refuses a nested object or array closed by the wrong bracket, or a member without its colon or quotes', () => {
    for (const text of [
      '{"a":{"b":1],"delta":"x"}',
      '{"a":{"b":1x,"delta":"x"}',
      '{"a":[1},"delta":"x"}',
      '{"a":[1x,"delta":"x"}',
      '{"a":{"b"x1},"delta":"x"}',
      '{"a":{"b" 1},"delta":"x"}',
      '{"a":{x":1},"delta":"x"}',
      '{"a":{1:2},"delta":"x"}',
    ])
      refusedByBoth(text);
  });

  it('reads \\u escapes with every hex digit, either case, and refuses each character just outside them', () => {
    readsAsParsed('{"note":"\\u0123\\u4567\\u89ab\\ucdef\\uABCD\\uEF00\\u00aA\\u00fF","delta":"x"}');
    // The neighbours of 0-9, A-F and a-f in ASCII, and a quote or a space where a digit belongs.
    for (const c of ['/', ':', '@', 'G', '`', 'g', ' ', '!', '"'])
      refusedByBoth(`{"note":"\\u00${c}0","delta":"x","more":"\\u00${c}0"}`);
  });

  it('reads nesting 63 deep and leaves 64 to the parser, arrays and objects alike', () => {
    const arrays = (d: number) => `{"a":${'['.repeat(d)}${']'.repeat(d)},"delta":"x"}`;
    const objects = (d: number) => `{"a":${'{"b":'.repeat(d - 1)}{}${'}'.repeat(d - 1)},"delta":"x"}`;
    for (const nest of [arrays, objects]) {
      readsAsParsed(nest(63));
      expect(parsed(nest(64))).toBeDefined();
      expect(read(nest(64))).toBeUndefined();
    }
  });
});
