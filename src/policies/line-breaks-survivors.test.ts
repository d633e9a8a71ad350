import { describe, expect, it } from 'vitest';
import { regexFinder, TextScanner, type CompiledRule } from './matchers.js';
import { builtinPii as pii, outputRule as rule, streamThrough as stream } from '../../test/policies/scanner-support.js';

/**
 * Tests for the mutants of the line-break reading (73c5136: normalize.ts's `lineBreaks` and
 * `linedText`, matchers.ts's second reading for `readsLineBreaks` finders; 059a4ab: pii.ts's
 * escaped line breaks) that survived the range run of 2026-12-07 (twentieth session), and of the
 * hold bound's lines (a88e9ca) that run re-indented.
 */

const phone = (): CompiledRule => rule('phone', [pii('phone')]);
const tags = (s: string): string => [...s].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('');

describe('which whitespace is a line break', () => {
  it('a lone carriage return (classic Mac line ends) separates numbers one per line', () => {
    // normalize.ts isLineBreak: `code <= 0x0d` (CR is the last of LF, VT, FF, CR).
    expect(stream([phone()], ['Numbers:\r415-555-0100\r415-555-0199\r']).text).toBe('Numbers:\r[phone]\r[phone]\r');
  });
});

describe('only line-reading detectors see the line breaks', () => {
  it("a user regex anchored to lines (flag m) reads the text as one line: every other matcher sees a space", () => {
    // matchers.ts: `texts(finder.readsLineBreaks === true)`, the lined reading for phone alone.
    const pin = rule('pin', [regexFinder(/^\d{4}$/m, 'regex', 4)], 'block');
    expect(stream([pin], ['PIN:\n1234\nthanks']).tripped).toEqual([]);
    expect(stream([pin], ['1234']).tripped).toEqual(['pin']);
  });
});

describe('the tag reading beside the first (the maps are copied before the second normalize)', () => {
  it('a number after hidden tag characters is redacted where it stands', () => {
    // matchers.ts: `norm.starts.slice()`: the tag reading's normalize reuses the buffers; without the
    // copy the first reading mapped its match with the second's starts (two characters early here).
    expect(stream([phone()], [`${tags('ab')}call 415-555-0100 now`]).text).toBe(`${tags('ab')}call [phone] now`);
  });
});

describe('the hold bound (maxHeldChars)', () => {
  const digits = (): CompiledRule => rule('digits', [regexFinder(/\d+/g, 'digits', Infinity)]);
  const run = (): CompiledRule => rule('run', [regexFinder(/A+/g, 'run', Infinity)]);

  it('a growing match that starts exactly at the bound is not over it', () => {
    // matchers.ts `if (os < floor) overHold = true`: held from the floor is within the bound.
    const s = new TextScanner([digits()], 10, '', 'text', 10);
    const r = s.push('xxxxx1234567890');
    expect(r.overHold).toBeUndefined();
    expect(r.text).toBe('xxxxx');
    // One character before it is.
    expect(new TextScanner([digits()], 10, '', 'text', 10).push('xxxx01234567890').overHold).toBe(true);
  });

  it('a settled redaction that straddles the release point is held whole, not cut in two', () => {
    // matchers.ts `divisible: !settled && os < floor`: only a growing match is cut at the release point.
    const s = new TextScanner([run()], 10, '', 'text', 10);
    const first = s.push('AAAAAAAAAAAAAB');
    const last = s.push('', true);
    expect(first.text + last.text).toBe('[run]B');
  });
});
