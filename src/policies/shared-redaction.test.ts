import { describe, expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import { eventTexts, MAX_MERGE_EDITS, mergeRedactions } from './content-paths.js';
import { GuardrailFilter } from './guardrails.js';

/**
 * A text the client writes is judged as its own source and as `input`, through one setter. When
 * both redact it, differently, the text forwarded carries both redactions (found in the third
 * review of 2026-12-05: it was forwarded empty).
 */

type Json = Record<string, unknown>;

const RULES = `
guardrails:
  rules:
    - { id: mail, sources: [tool_output, output, tool_call], match: { pii: [email] }, action: redact }
    - { id: card, sources: [input], match: { pii: [card] }, action: redact }
`;

async function forwarded(item: Json): Promise<Json> {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(RULES)));
  const v = session.fromClient(filter, wire({ type: 'conversation.item.create', event_id: 'evt_1', item }) as Frame) as Verdict;
  if (v.kind !== 'replace') throw new Error(`expected replace, got ${v.kind}`);
  return v.frame.json()['item'] as Json;
}

const TEXT = 'mail jane@example.com card 4111 1111 1111 1111 ok';
const BOTH = 'mail [REDACTED:email] card [REDACTED:card] ok';

describe('a client text redacted by two sources carries both redactions', () => {
  it('a function_call_output (tool_output and input)', async () => {
    const item = await forwarded({ type: 'function_call_output', call_id: 'c1', output: TEXT });
    expect(item['output']).toBe(BOTH);
  });

  it('an assistant message the client writes (output and input)', async () => {
    const item = await forwarded({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: TEXT }] });
    expect(item['content']).toEqual([{ type: 'output_text', text: BOTH }]);
  });

  it('a function_call the client writes (tool_call and input)', async () => {
    const item = await forwarded({ type: 'function_call', call_id: 'c1', name: 'f', arguments: TEXT });
    expect(item['arguments']).toBe(BOTH);
  });
});

describe('the shared setter', () => {
  const texts = (output: string) => eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'c', output } });
  const apply = (writes: readonly [number, string][]): unknown => {
    const ts = texts('a secret and a card');
    expect(ts.map((t) => t.source)).toEqual(['tool_output', 'input']);
    const copy: Json = { item: { type: 'function_call_output', call_id: 'c', output: 'a secret and a card' } };
    for (const [i, text] of writes) ts[i]!.set(copy, text);
    return (copy['item'] as Json)['output'];
  };

  it('merges two different redactions, in either order; a rewrite to the original undoes neither', () => {
    expect(apply([[0, 'a *** and a card'], [1, 'a secret and a ###']])).toBe('a *** and a ###');
    expect(apply([[1, 'a secret and a ###'], [0, 'a *** and a card']])).toBe('a *** and a ###');
    expect(apply([[0, 'a *** and a card'], [1, 'a secret and a card']])).toBe('a *** and a card');
    expect(apply([[0, 'a *** and a card'], [1, 'a *** and a card']])).toBe('a *** and a card');
    expect(apply([[1, 'x']])).toBe('x');
  });
});

describe('mergeRedactions', () => {
  it('keeps each replaced span replaced as its redaction says', () => {
    expect(mergeRedactions('one two three', '[1] two three', 'one two [3]')).toBe('[1] two [3]');
    // An empty replacement, and a replacement at the very end.
    expect(mergeRedactions('one two three', ' two three', 'one two ')).toBe(' two ');
    // Spans next to each other stay two spans.
    expect(mergeRedactions('abcdef', 'XYcdef', 'abZdef')).toBe('XYZdef');
  });

  it('overlapping spans become one, replaced by both replacements (in the order they start, at a tie the first redaction\'s first); a span both replaced alike, once', () => {
    expect(mergeRedactions('call 555 1234 now', 'call [P]34 now', 'call 555 1[Q] now')).toBe('call [P][Q] now');
    expect(mergeRedactions('x secret y other z', 'x [R] y other z', 'x [R] y [S] z')).toBe('x [R] y [S] z');
    expect(mergeRedactions('x secret y', 'x [R] y', 'x [S] y')).toBe('x [R][S] y');
    // A span inside the other's.
    expect(mergeRedactions('a 0123456789 b', 'a [ALL] b', 'a 01[MID]89 b')).toBe('a [ALL][MID] b');
    expect(mergeRedactions('a 0123456789 b', 'a 01[MID]89 b', 'a [ALL] b')).toBe('a [ALL][MID] b');
  });

  it('never forwards a character either redaction removed', () => {
    const original = 'pay jane@example.com 4111 1111 1111 1111 tomorrow';
    const merged = mergeRedactions(original, 'pay [E] 4111 1111 1111 1111 tomorrow', 'pay jane@example.com [C] tomorrow');
    expect(merged).toBe('pay [E] [C] tomorrow');
    expect(merged).not.toMatch(/jane|4111/);
  });

  it('withholds (empties) a text redacted further apart than the diff follows', () => {
    const original = 'x'.repeat(MAX_MERGE_EDITS + 10);
    expect(mergeRedactions(original, 'y'.repeat(MAX_MERGE_EDITS + 10), `${original.slice(1)}z`)).toBe('');
    expect(mergeRedactions(`z${original}`, `z${'y'.repeat(MAX_MERGE_EDITS + 10)}`, original)).toBe('');
    // Just within: merged.
    const n = MAX_MERGE_EDITS / 2;
    expect(mergeRedactions(`${'a'.repeat(n)}b`, `${'c'.repeat(n)}b`, `${'a'.repeat(n)}d`)).toBe(`${'c'.repeat(n)}d`);
  });
});

describe('mergeRedactions against spans known in advance', () => {
  // Deterministic pseudo-random cases (no clock, no Math.random): an original of distinct
  // characters, so the spans a diff recovers are the spans that were replaced.
  let seed = 12345;
  // mulberry32
  const rand = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % n;
  };
  const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
  type Span = { start: number; end: number; text: string };
  const spans = (len: number): Span[] => {
    const out: Span[] = [];
    let pos = rand(3);
    while (pos < len) {
      const end = Math.min(len, pos + rand(4));
      out.push({ start: pos, end, text: rand(4) === 0 ? '' : 'XYZW'.slice(0, 1 + rand(4)) });
      pos = end + 1 + rand(5);
    }
    return out.filter((sp) => sp.start < sp.end || sp.text !== '');
  };
  const apply = (text: string, ss: readonly Span[]): string => {
    let out = '';
    let pos = 0;
    for (const sp of ss) {
      out += text.slice(pos, sp.start) + sp.text;
      pos = sp.end;
    }
    return out + text.slice(pos);
  };
  /** The expected merge: spans joined where one starts inside or at the end of another. */
  const expected = (text: string, a: readonly Span[], b: readonly Span[]): string => {
    const all = [...a, ...b].sort((x, y) => x.start - y.start);
    const merged: Span[] = [];
    const seen: Set<string>[] = [];
    for (const sp of all) {
      const last = merged[merged.length - 1];
      const id = `${sp.start}:${sp.end}:${sp.text}`;
      if (last !== undefined && sp.start <= last.end) {
        last.end = Math.max(last.end, sp.end);
        if (!seen[seen.length - 1]!.has(id)) last.text += sp.text;
        seen[seen.length - 1]!.add(id);
      } else {
        merged.push({ ...sp });
        seen.push(new Set([id]));
      }
    }
    return apply(text, merged);
  };

  it('merges 500 random pairs of redactions exactly', () => {
    let checked = 0;
    for (let run = 0; run < 500; run++) {
      const chars = [...ALPHABET];
      for (let i = chars.length - 1; i > 0; i--) {
        const j = rand(i + 1);
        [chars[i], chars[j]] = [chars[j]!, chars[i]!];
      }
      const original = chars.slice(0, 1 + rand(chars.length)).join('');
      const a = spans(original.length);
      const b = spans(original.length);
      const ra = apply(original, a);
      const rb = apply(original, b);
      if (ra === original || rb === original) continue;
      expect(mergeRedactions(original, ra, rb), `${original} | ${ra} | ${rb}`).toBe(expected(original, a, b));
      checked++;
    }
    expect(checked).toBeGreaterThan(300);
  });

  it('edge cases: a redaction at either end, one text a prefix or suffix of the other', () => {
    expect(mergeRedactions('xabc', 'xab', 'Yabc')).toBe('Yab');
    expect(mergeRedactions('abcx', 'bcx', 'abcY')).toBe('bcY');
    expect(mergeRedactions('ab ab', 'ab ab ab', 'xb ab')).toBe('xb ab ab');
    expect(mergeRedactions('aa', 'aaa', 'ba')).toBe('baa');
    // Two alike insertions at one place are written once.
    expect(mergeRedactions('one two', 'one [s]two', 'one [s]two!')).toBe('one [s]two!');
  });

  it('withholds the text when only the second redaction is too far from the original', () => {
    const original = 'x'.repeat(MAX_MERGE_EDITS + 10);
    expect(mergeRedactions(original, `${original.slice(1)}z`, 'y'.repeat(MAX_MERGE_EDITS + 10))).toBe('');
  });

  it('a first write is taken as it is, however far from the original', () => {
    const output = 'x'.repeat(MAX_MERGE_EDITS + 10);
    const [own] = eventTexts('conversation.item.create', { type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'c', output } });
    const copy: Json = { item: { type: 'function_call_output', call_id: 'c', output } };
    own!.set(copy, 'y'.repeat(MAX_MERGE_EDITS + 10));
    expect((copy['item'] as Json)['output']).toBe('y'.repeat(MAX_MERGE_EDITS + 10));
  });
});
