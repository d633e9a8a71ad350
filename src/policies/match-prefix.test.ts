import { describe, expect, it } from 'vitest';
import { firstCharPrefix, phrasePrefix, regexPrefix } from './match-prefix.js';
import { maxMatchLength } from './regex-safety.js';

/** Deterministic PRNG (mulberry32): the generated cases are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hold(pattern: string, flags: string, text: string): number {
  const a = regexPrefix(pattern, flags, maxMatchLength(pattern, flags));
  if (a === null) throw new Error(`no automaton for ${pattern}`);
  return a.holdStart(text);
}

/**
 * The engine as oracle: position p is a live start when some completion w (up to `depth`
 * characters of `alphabet`) makes the regex match from p to the end of text + w.
 */
function oracle(pattern: string, flags: string, text: string, alphabet: readonly string[], depth: number): number {
  const re = new RegExp(`(?:${pattern})$`, `${flags}y`);
  const completions: string[] = [''];
  for (let d = 0, layer = ['']; d < depth; d++) {
    layer = layer.flatMap((w) => alphabet.map((c) => w + c));
    completions.push(...layer);
  }
  for (let p = 0; p < text.length; p++) {
    for (const w of completions) {
      re.lastIndex = p;
      if (re.test(text + w)) return p;
    }
  }
  return text.length;
}

describe('regex prefix automaton: where a match could still be under way', () => {
  it('holds only where the text can still become a match (the shipped refund rule)', () => {
    const refund = "\\b(I|we)( will| can|['’]ll) (refund|reimburse) you\\b";
    expect(hold(refund, 'i', 'Sure, here is the answer ')).toBe(25);
    expect(hold(refund, 'i', 'Sure, here is')).toBe(13);
    expect(hold(refund, 'i', 'Sure, I')).toBe(6);
    expect(hold(refund, 'i', 'Sure, I wi')).toBe(6);
    expect(hold(refund, 'i', 'Sure, I will ref')).toBe(6);
    expect(hold(refund, 'i', 'Sure, I will reply')).toBe(18);
    expect(hold(refund, 'i', 'Sure, WE CAN REFUND YOU')).toBe(6);
    // \\b: "we" inside a word cannot start a match; at the window's first character it may.
    expect(hold(refund, 'i', 'answe')).toBe(5);
    expect(hold(refund, 'i', 'we')).toBe(0);
    // The longest match bounds how far back it looks.
    expect(hold('ab', '', `${'x'.repeat(10)}a`)).toBe(10);
  });

  it('agrees with the regex engine on every position of generated texts', () => {
    const cases: { pattern: string; flags: string; alphabet: string[] }[] = [
      { pattern: 'ab?c', flags: '', alphabet: ['a', 'b', 'c', 'x'] },
      { pattern: '\\bx\\d{1,3}\\b', flags: '', alphabet: ['x', '1', ' ', 'y'] },
      { pattern: '(?:foo|fob)z', flags: 'i', alphabet: ['f', 'o', 'b', 'z', 'O'] },
      { pattern: '[a-c]{2}d', flags: '', alphabet: ['a', 'c', 'd', 'e'] },
      { pattern: 'a(?:b|cd)*e', flags: '', alphabet: ['a', 'b', 'c', 'd', 'e'] },
      { pattern: 'k\\Bs', flags: 'iu', alphabet: ['k', 's', '\u212a', 'ſ', ' '] },
      { pattern: 'x[^y]y', flags: '', alphabet: ['x', 'y', 'z', '\u00e9'] },
      { pattern: 'σ\\s?ς', flags: 'iu', alphabet: ['σ', 'ς', 'Σ', ' ', 'a'] },
      { pattern: 'a.b', flags: 's', alphabet: ['a', 'b', '\n', 'c'] },
    ];
    const random = rng(7);
    for (const { pattern, flags, alphabet } of cases) {
      for (let n = 0; n < 300; n++) {
        const len = 1 + Math.floor(random() * 7);
        let text = '';
        for (let k = 0; k < len; k++) text += alphabet[Math.floor(random() * alphabet.length)]!;
        expect({ pattern, text, at: hold(pattern, flags, text) }).toEqual({ pattern, text, at: oracle(pattern, flags, text, alphabet, 3) });
      }
    }
  });

  it('never releases the start of a match: every cut of every generated match is held from its start', () => {
    const refund = "\\b(I|we)( will| can|['’]ll) (refund|reimburse) you\\b";
    const matches = ['I will refund you', "we'll reimburse you", 'WE CAN REFUND YOU', 'I’ll refund you'];
    for (const m of matches) {
      for (const before of ['', 'Sure, ', 'Is it so? ', 'we said: ']) {
        for (let cut = 1; cut <= m.length; cut++) {
          const text = before + m.slice(0, cut);
          expect({ text, at: hold(refund, 'i', text) <= before.length }).toEqual({ text, at: true });
        }
      }
    }
  });

  it('counts characters beyond U+FFFF as one under u, as two units without it', () => {
    expect(hold('a.b', 'u', 'xa😀')).toBe(1);
    expect(hold('a.b', '', 'xa😀')).toBe(4);
    expect(hold('a..b', '', 'xa😀')).toBe(1);
    expect(hold('😀a', 'u', 'x😀')).toBe(1);
  });

  it('is not built for what it cannot follow exactly; the first-character hold stands in', () => {
    expect(regexPrefix('(', '', 10)).toBeNull();
    expect(regexPrefix('😀a', '', 4)).toBeNull();
    expect(regexPrefix('(?:abcdefgh){0,400}x', '', Infinity)).toBeNull();
    const coarse = firstCharPrefix((code) => code === 0x78, 4)!;
    expect(coarse.holdStart('abx1')).toBe(2);
    expect(firstCharPrefix(undefined, 4)).toBeNull();
  });
});

describe('phrase prefixes', () => {
  /** Oracle: p is held when text[p..] is a case-insensitive prefix of a phrase (the engine decides case). */
  function phraseOracle(phrases: readonly string[], wholeWords: boolean, text: string): number {
    for (let p = 0; p < text.length; p++) {
      if (wholeWords && p > 0 && /[\p{L}\p{N}_]/u.test(text[p - 1]!) && /[\p{L}\p{N}_]/u.test(text[p]!)) continue;
      const rest = text.slice(p);
      const escaped = rest.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (phrases.some((ph) => new RegExp(`^${escaped}`, 'iu').test(ph))) return p;
    }
    return text.length;
  }

  it('agrees with the engine on generated texts, whole words or not', () => {
    const phrases = ['sko', 'kis σας', 'as your'];
    const alphabet = ['s', 'k', 'o', 'ſ', '\u212a', 'i', 'I', 'İ', ' ', 'σ', 'ς', 'Σ', 'a', 'y'];
    const random = rng(11);
    for (const wholeWords of [true, false]) {
      const p = phrasePrefix(phrases, wholeWords);
      for (let n = 0; n < 2000; n++) {
        const len = 1 + Math.floor(random() * 8);
        let text = '';
        for (let k = 0; k < len; k++) text += alphabet[Math.floor(random() * alphabet.length)]!;
        expect({ text, wholeWords, at: p.holdStart(text) }).toEqual({ text, wholeWords, at: phraseOracle(phrases, wholeWords, text) });
      }
    }
  });

  it('holds from any character beyond U+FFFF when a phrase has one', () => {
    expect(phrasePrefix(['a😀b'], false).holdStart('xy😀')).toBe(2);
    expect(phrasePrefix(['ab'], false).holdStart('xy😀')).toBe(4);
  });
});
