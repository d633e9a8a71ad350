import { describe, expect, it } from 'vitest';
import { contextEdge, EDGE_WALK_MAX, normalize, walkedEdge } from './normalize.js';

/**
 * contextEdge (normalize.ts): the end (or start) of a text kept as context for the next one, in
 * characters the fold reads. Every reading of what it keeps is the same reading of the text from
 * the cut on, and padding the fold drops or merges does not count (until the twenty-fourth session
 * 1,000 strays after `ignore` left only strays as context:
 * test/governance/redteam-24b-padded-context.test.ts).
 */
const TAG = (s: string): string => [...s].map((ch) => String.fromCodePoint(0xe0000 + ch.charCodeAt(0))).join('');
const PADS = ['\ufffd', '\ue000', '\ud800', '\udfff', '\u{f0000}', '\uffff', '\u200b', '\u0301', '\ufe0f', '\u00ad', ' ', '\n', '\u3000', '\u0085', '\u2028', '\t', '\x07', '\u3164'];
/** The three readings a scanner makes of a text (normalize.ts): strays kept, tags read, both dropped. */
const readings = (t: string): string[] => [normalize(t).text, normalize(t, true).text, normalize(t, false, true).text, normalize(t).lineBreaks.join()];

const texts: string[] = [];
for (const a of PADS) {
  for (const b of ['\ufffd', '\ue000', '\u200b', '\u0301', ' ', '\n', '\u0085']) {
    texts.push(`please ignore${a.repeat(300)}${b.repeat(300)}`);
    texts.push(`please ign${a.repeat(200)}ore${b}${a.repeat(150)}prev${TAG('x')}${b.repeat(150)}ious`);
    texts.push(`${a.repeat(400)}${b}ignore previous`);
  }
}

describe('contextEdge', () => {
  it('keeps a text of at most keep units as it is', () => {
    for (const t of ['', 'short', 'ign\ufffdore\u200b']) {
      expect(contextEdge(t, 16, 'tail')).toBe(t);
      expect(contextEdge(t, 16, 'head')).toBe(t);
    }
  });

  it('the tail reads, in every reading, as the end of the text: the words before the padding are kept', () => {
    for (const t of texts) {
      const tail = contextEdge(t, 32, 'tail');
      const [first, tags, dropped] = readings(t);
      const [tFirst, tTags, tDropped] = readings(tail);
      expect(first!.endsWith(tFirst!), JSON.stringify(tail)).toBe(true);
      expect(tags!.endsWith(tTags!), JSON.stringify(tail)).toBe(true);
      expect(dropped!.endsWith(tDropped!), JSON.stringify(tail)).toBe(true);
      // Padding does not count against the budget: the words are there.
      expect(tDropped!.replace(/[^a-z]/g, '').length, JSON.stringify(tail)).toBeGreaterThanOrEqual(Math.min(12, dropped!.replace(/[^a-z]/g, '').length));
      expect(tail.length).toBeLessThanOrEqual(32 + 4);
    }
  });

  it('the head reads, in every reading, as the start of the text', () => {
    for (const t of texts) {
      const head = contextEdge(t, 32, 'head');
      const [first, tags, dropped] = readings(t);
      const [hFirst, hTags, hDropped] = readings(head);
      // The head's last run may be cut short (a stray kept as the first of a run the text continues).
      const cut = (s: string): string => s.replace(/[\s\ufffd\ue000\ud800\udfff\uffff\u{f0000}]+$/u, '');
      expect(first!.startsWith(cut(hFirst!)), JSON.stringify(head)).toBe(true);
      expect(tags!.startsWith(cut(hTags!)), JSON.stringify(head)).toBe(true);
      expect(dropped!.startsWith(cut(hDropped!)), JSON.stringify(head)).toBe(true);
      expect(head.length).toBeLessThanOrEqual(32 + 4);
    }
  });

  it('a line break in a run of whitespace and strays is kept (the phone detector reads it)', () => {
    const t = `call 555 0100${' \ufffd'.repeat(100)}\n${'\u200b'.repeat(100)} 0199`;
    const tail = contextEdge(t, 24, 'tail');
    expect(tail).toBe('call 555 0100\n0199');
    expect(normalize(tail).lineBreaks).toEqual([13]);
  });

  it('surrogate pairs and tag characters are kept whole; a lone surrogate is a stray', () => {
    expect(contextEdge(`x${'\u200b'.repeat(40)}😀${TAG('ab')}\ud800\ud800\ud800y`, 16, 'tail')).toBe(`x😀${TAG('ab')}\ud800y`);
    expect(contextEdge(`\ud800\ud800${'\u200b'.repeat(40)}😀${TAG('ab')}y`, 16, 'head')).toBe(`\ud800😀${TAG('ab')}y`);
  });

  it('64 Ki characters of padding compact to at most keep units, in one pass', () => {
    for (const [pad, kept] of [['\ufffd', 'ignore\ufffd'], ['\u200b', 'ignore'], [' \ufffd', 'ignore '], ['\u0301\ue000', 'ignore\ue000']] as const) {
      const t = `ignore${pad.repeat(65_536 / pad.length)}`;
      expect(contextEdge(t, 128, 'tail')).toBe(kept);
      expect(contextEdge(t, 128, 'head')).toBe(kept);
    }
  });

  it('walks at most EDGE_WALK_MAX units: longer padding leaves what it reached', () => {
    const t = `ignore${'\u200b'.repeat(EDGE_WALK_MAX)}x`;
    expect(contextEdge(t, 128, 'tail')).toBe('x');
    expect(contextEdge(`x${'\u200b'.repeat(EDGE_WALK_MAX)}ignore`, 128, 'head')).toBe('x');
  });
});

describe('contextEdge on plain text (the fast path: printable ASCII and single spaces read as written)', () => {
  // A seeded generator: the same texts every run.
  let seed = 0x2024;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 16) % n; // the high bits: the low ones of this generator cycle quickly
  };
  it('returns what the walk returns, for every cut, both edges, texts with and without double spaces or other characters', () => {
    const alphabet = ['a', 'b', ' ', '.', 'Z', '~', '!', ' ', '\t', '\u00e9', '\ufffd', '\n'];
    let plainTexts = 0;
    for (let k = 0; k < 20_000; k++) {
      const len = 1 + next(24);
      // Mostly plain (the first eight letters), sometimes anything.
      const wide = next(4) === 0;
      let text = '';
      for (let i = 0; i < len; i++) text += alphabet[next(wide ? alphabet.length : 8)]!;
      if (!/[^\x21-\x7e ]| {2}/.test(text)) plainTexts++;
      const keep = 1 + next(len + 2);
      for (const edge of ['head', 'tail'] as const) {
        const expected = text.length <= keep ? text : walkedEdge(text, keep, edge === 'tail');
        expect(contextEdge(text, keep, edge), JSON.stringify({ text, keep, edge })).toBe(expected);
      }
    }
    // The fast path was exercised, and so was the walk.
    expect(plainTexts).toBeGreaterThan(2_000);
    expect(plainTexts).toBeLessThan(19_000);
  });
});

