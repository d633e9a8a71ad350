import { describe, expect, it } from 'vitest';
import { firstCharPrefix, phrasePrefix, regexPrefix } from './match-prefix.js';
import { maxMatchLength } from './regex-safety.js';
import { prng } from '../simulator/audio.js';

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
      // Word characters at the edges of their ASCII ranges, and their neighbours.
      { pattern: '\\bq\\w\\b', flags: '', alphabet: ['q', '0', '9', 'a', 'z', 'A', 'Z', '_', '/', ':', '@', '[', '`', '{', ' '] },
      { pattern: '[b-y]{2}', flags: 'i', alphabet: ['a', 'b', 'y', 'z', 'A', 'B', 'Y', 'Z', '@', '[', '`', '{'] },
      // Case closure in both directions: ſ is s and S, the Kelvin sign k and K, ς is σ and Σ.
      { pattern: 'ſk', flags: 'iu', alphabet: ['s', 'S', 'ſ', 'k', 'K', '\u212a'] },
      { pattern: 'σ\\s?ς', flags: 'iu', alphabet: ['σ', 'ς', 'Σ', ' ', 'é'] },
      { pattern: '[À-þ]x', flags: 'iu', alphabet: ['×', 'à', 'À', 'x', 'ÿ', 'Ÿ'] },
      { pattern: 'éx', flags: '', alphabet: ['é', 'É', 'x'] },
    ];
    const random = prng(7);
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

  it('decides no assertion it cannot see: ^ and $ always, \\b and \\B at the window start and the text end', () => {
    expect(hold('^ab', '', 'xxa')).toBe(2);
    expect(hold('ab$', '', 'xa')).toBe(1);
    expect(hold('a$b', '', 'xa')).toBe(1);
    // The window's first character may follow a word character of the stream.
    expect(hold('\\Bab', '', 'ab')).toBe(0);
    expect(hold('\\Bab', '', ' ab')).toBe(3);
    // What follows the text is not known yet.
    expect(hold('ab\\Bc', '', 'xab')).toBe(1);
    expect(hold('ab\\bc', '', 'xab')).toBe(1);
    expect(hold('ab\\b c', '', 'xab')).toBe(1);
    // A line assertion is not a word boundary test, wherever it stands.
    expect(hold('^ab', '', ' a')).toBe(1);
    expect(hold('a$ b', '', 'xa ')).toBe(1);
    // \\b sees A and Z as word characters, @ and [ not.
    for (const before of ['A', 'Z', '0', '9', 'a', 'z', '_']) expect(hold('\\bqa', '', `${before}q`)).toBe(2);
    for (const before of ['@', '[', '/', ':', '`', '{', ' ']) expect(hold('\\bqa', '', `${before}q`)).toBe(1);
  });

  it('follows empty loops without looping, after the start or at it', () => {
    expect(hold('x(?:)*y', '', 'ax')).toBe(1);
    expect(hold('x(?:)*y', '', 'axz')).toBe(3);
    expect(hold('(?:)*xy', '', 'ax')).toBe(1);
  });

  it('looks back at most 4096 characters, even for an unbounded pattern', () => {
    expect(hold('x[a-z]*', '', `x${'a'.repeat(5000)}`)).toBe(5001);
    expect(hold('x[a-z]*', '', `x${'a'.repeat(4095)}`)).toBe(0);
  });

  it('matches C1 controls and U+FFFF like any other character', () => {
    expect(hold('\\x80a', '', 'x\x80')).toBe(1);
    expect(hold('a.c', 'u', 'xa\uffffd')).toBe(4);
    expect(hold('a.c', 'u', 'xa\uffff')).toBe(1);
  });

  it('closes case for small sets only: a set of more than 4096 characters matches anything under i', () => {
    expect(hold('x[\\u0100-\\u10ff]', 'i', 'xa')).toBe(2);
    expect(hold('x[\\u0100-\\u1100]', 'i', 'xa')).toBe(0);
    expect(hold('x[\\u0100-\\u1100]', '', 'xa')).toBe(2);
  });

  it('counts characters beyond U+FFFF as one under u, as two units without it', () => {
    expect(hold('a.b', 'u', 'xa😀')).toBe(1);
    expect(hold('a.c', 'u', 'xa😀d')).toBe(5);
    expect(hold('a.c', 'u', 'xa😀c')).toBe(1);
    expect(hold('a.b', '', 'xa😀')).toBe(4);
    expect(hold('a..b', '', 'xa😀')).toBe(1);
    expect(hold('😀a', 'u', 'x😀')).toBe(1);
  });

  it('is not built for what it cannot follow exactly; the first-character hold stands in', () => {
    expect(regexPrefix('(', '', 10)).toBeNull();
    expect(regexPrefix('😀a', '', 4)).toBeNull();
    expect(regexPrefix('(?:abcdefgh){0,400}x', '', Infinity)).toBeNull();
    // 2,048 states at most: 2,047 characters and the final state.
    expect(regexPrefix('a{2047}', '', Infinity)).not.toBeNull();
    expect(regexPrefix('a{2048}', '', Infinity)).toBeNull();
    // Without u, a class may name a character beyond U+FFFF only if it also takes every surrogate unit.
    expect(regexPrefix('[😀x]a', '', 8)).toBeNull();
    expect(regexPrefix('[😀\\ud800-\\udfff]a', '', 8)).not.toBeNull();
    expect(regexPrefix('[😀\\ud801-\\udfff]a', '', 8)).toBeNull();
    expect(regexPrefix('[😀\\ud800-\\udffe]a', '', 8)).toBeNull();
    expect(regexPrefix('x[^a]', '', 4)).not.toBeNull();
    expect(regexPrefix('\\uffffa', '', 4)).not.toBeNull();
    const coarse = firstCharPrefix((code) => code === 0x78, 4)!;
    expect(coarse.holdStart('abx1')).toBe(2);
    expect(firstCharPrefix(undefined, 4)).toBeNull();
  });
});

describe('phrase prefixes', () => {
  /**
   * Oracle: p is held when text[p..] is, case-insensitively (the engine decides case), the start of
   * a text the phrase matches: its words in order, each space of the phrase a run of one or more
   * characters that are neither letters nor digits; whole words: not right after a letter or digit
   * (`_` is neither, as in the phrase regex).
   */
  function phraseOracle(phrases: readonly string[], wholeWords: boolean, text: string): number {
    const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const prefixes = (w: string) => `(?:${[...w].map((_, k) => esc([...w].slice(0, k + 1).join(''))).join('|')})`;
    const starts = (words: readonly string[]): string =>
      words.length === 1 ? prefixes(words[0]!) : `(?:${prefixes(words[0]!)}|${esc(words[0]!)}[^\\p{L}\\p{N}]+(?:${starts(words.slice(1))})?)`;
    const patterns = phrases.map((ph) => new RegExp(`^${starts(ph.split(' '))}$`, 'iu'));
    for (let p = 0; p < text.length; p++) {
      if (wholeWords && p > 0 && /[\p{L}\p{N}]/u.test(text[p - 1]!) && /[\p{L}\p{N}]/u.test(text[p]!)) continue;
      const rest = text.slice(p);
      if (patterns.some((re) => re.test(rest))) return p;
    }
    return text.length;
  }

  it('agrees with the engine on generated texts, whole words or not', () => {
    // 'k-9 x' against 'k 9z': a literal separator where another phrase has a space (two paths at once).
    const phrases = ['sko', 'kis σς', 'as your', 'az@', '`9z', 'ǆx', 'a b c', 'k-9 x', 'k 9z'];
    // Word and non-word characters at the edges of their ranges, letters and digits beyond ASCII,
    // characters beyond U+FFFF (two units), case pairs that fold in one direction only.
    const alphabet = ['s', 'k', 'o', 'ſ', '\u212a', 'i', 'I', 'İ', ' ', 'σ', 'ς', 'Σ', 'a', 'y', 'z', 'A', 'Z', '0', '9', '_', '/', ':', '@', '[', '`', '{', 'é', '٣', '·', '😀', 'ǅ', 'Ǆ', 'x', '-', '\ud800'];
    const separators = ['-', ' - ', '…', '/', ', ', '😀', '_', '·', '\u00a0'];
    const random = prng(11);
    for (const wholeWords of [true, false]) {
      const p = phrasePrefix(phrases, wholeWords);
      for (let n = 0; n < 4000; n++) {
        const len = 1 + Math.floor(random() * 5);
        let text = '';
        // Phrase-like texts: a prefix of a phrase after random characters, or random characters alone.
        for (let k = 0; k < len; k++) text += alphabet[Math.floor(random() * alphabet.length)]!;
        if (random() < 0.5) {
          const ph = phrases[Math.floor(random() * phrases.length)]!;
          let start = ph.slice(0, 1 + Math.floor(random() * ph.length));
          // Half of them with another separator run between the words: punctuation, symbols, several.
          if (random() < 0.5) start = start.replaceAll(' ', () => separators[Math.floor(random() * separators.length)]!);
          text += start;
        }
        expect({ text, wholeWords, at: p.holdStart(text) }).toEqual({ text, wholeWords, at: phraseOracle(phrases, wholeWords, text) });
      }
    }
  });

  it('a separator run longer than a match can span is not held (the walk itself does not count runs)', () => {
    // 'a b' spans at most 10 characters (a, 8 separators, b): 'a' and 10 dashes cannot start one.
    expect(phrasePrefix(['a b'], false).holdStart(`a${'-'.repeat(10)}`)).toBe(11);
    expect(phrasePrefix(['a b c'], false).holdStart(`a${'-'.repeat(19)}`)).toBe(20);
    expect(phrasePrefix(['a b'], false).holdStart(`a${'-'.repeat(7)}`)).toBe(0);
  });

  it('a letter beyond U+FFFF is one letter, not two separators, whatever its surrogates', () => {
    // U+10000 (Linear B, a letter: high surrogate D800), U+20000 and U+203FF (CJK: low surrogates DC00 and DFFF).
    for (const letter of ['\ud800\udc00', '\ud840\udc00', '\ud840\udfff']) {
      expect(phrasePrefix(['a b'], false).holdStart(`xa${letter}`)).toBe(4);
      expect(phrasePrefix(['a b'], false).holdStart(`xa ${letter}`)).toBe(5);
    }
    // A high surrogate not followed by a low one is alone: it separates, and the next character is read as itself.
    expect(phrasePrefix(['a b'], false).holdStart('xa\ud800b')).toBe(1);
    expect(phrasePrefix(['a \uf900'], false).holdStart('xa\ud800\uf900')).toBe(1);
    // An emoji is a separator; a lone surrogate may become either, so it can separate.
    expect(phrasePrefix(['a b'], false).holdStart('xa\ud83d\ude00')).toBe(1);
    expect(phrasePrefix(['a b'], false).holdStart('xa\ud83d')).toBe(1);
  });

  it('holds from any character beyond U+FFFF when a phrase has one', () => {
    expect(phrasePrefix(['a😀b'], false).holdStart('xy😀')).toBe(2);
    expect(phrasePrefix(['ab'], false).holdStart('xy😀')).toBe(4);
    expect(phrasePrefix(['a😀b'], false).holdStart('xyz')).toBe(3);
    // Only surrogate units take that shortcut; other characters are walked.
    expect(phrasePrefix(['a😀b'], false).holdStart('ab')).toBe(2);
    expect(phrasePrefix(['a😀b'], false).holdStart('a\ue000')).toBe(2);
    expect(phrasePrefix(['a😀b'], false).holdStart('a\ud800')).toBe(0);
    expect(phrasePrefix(['a😀b'], false).holdStart('a\udfff')).toBe(0);
    // A phrase with characters from U+E000 on has none beyond U+FFFF.
    expect(phrasePrefix(['a\ufffdb'], false).holdStart('a😀')).toBe(3);
  });

  it('folds case across the whole BMP and tells word characters beyond ASCII', () => {
    expect(phrasePrefix(['ａｂ'], false).holdStart('xＡ')).toBe(1);
    expect(phrasePrefix(['ab'], true).holdStart('Ａab')).toBe(3);
    expect(phrasePrefix(['ab'], true).holdStart('·ab')).toBe(1);
    // ASCII punctuation folds to itself: [ is not {, @ is not `.
    expect(phrasePrefix(['a[b'], false).holdStart('xa{')).toBe(3);
    expect(phrasePrefix(['a@b'], false).holdStart('xa`')).toBe(3);
  });
});

// Regression (adversarial review of the matchers, 2026-12-05): a negated class holding a property
// escape was read as no character, so the automaton never held a match that starts with one.
describe('regex prefix: property escapes inside a negated class', () => {
  it('holds a match that starts with [^\\p{L}\\p{N}] while it can still complete', () => {
    const pattern = '[^\\p{L}\\p{N}](I|we) will refund you';
    const p = regexPrefix(pattern, 'iu', maxMatchLength(pattern, 'iu'))!;
    expect(p.holdStart('Good news: I will ref')).toBe(10);
    // Settled: only the last character is held (the class, read as any character, may begin a match there).
    expect(p.holdStart('Good news: I will rest')).toBe(21);
  });

  it('the (?:\\b|_) boundary holds from the word, not from the character before it', () => {
    const pattern = "(?:\\b|_)(I|we)( will| can|['’]ll) (refund|reimburse) you(?:\\b|_)";
    const p = regexPrefix(pattern, 'i', maxMatchLength(pattern, 'i'))!;
    expect(p.holdStart('And I')).toBe(4);
    expect(p.holdStart('And _I wi')).toBe(4);
    expect(p.holdStart('xI wi')).toBe(5);
    expect(p.holdStart('I can tell')).toBe(10);
  });
});

describe('phrase prefixes: separator runs of characters beyond U+FFFF', () => {
  it('a run of emoji is counted in characters, as the phrase regex counts it, not in UTF-16 units', () => {
    // 'alpha bravo' allows 8 separators between its words; 8 emoji are 16 units. Until 2026-12-06 the
    // starts looked at were the last 18 units only, so 'alpha' + 8 emoji + 'brav' (25 units) was not held.
    const p = phrasePrefix(['alpha bravo'], false);
    const emoji = '\u{1F600}'.repeat(8);
    expect(p.holdStart(`say alpha${emoji}brav`)).toBe(4);
    expect(p.holdStart(`say alpha${emoji}`)).toBe(4);
    // Nine are more than a match can span: not held.
    const nine = `say alpha${'\u{1F600}'.repeat(9)}bravo`;
    expect(p.holdStart(nine)).toBe(nine.length);
  });
});
