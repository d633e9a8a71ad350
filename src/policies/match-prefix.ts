import { KEPT_STRAY } from './normalize.js';
import { parseRegex, union, type Alternation, type AssertTest, type Atom, type Quantified, type Ranges, type Sequence } from './regex-safety.js';

/**
 * How much streamed text a matcher must hold back: the earliest position from which the text so
 * far is the beginning of a match that later text could complete or extend.
 *
 * Regexes: a Thompson NFA built from the parsed pattern (regex-safety.ts) runs over the tail of the
 * normalised text, a thread starting at every position; the threads still alive at the end are
 * text that could yet become a match, and the earliest of their starts is where holding begins.
 * Without it the scanner held everything from the first character a match can start with (for
 * `\b(I|we) will refund you\b`, every word starting with "i" or "w" held the sentence behind it).
 *
 * It may hold too much, never too little: `^` and `$` always pass, `\b` and `\B` pass where a
 * neighbour is unknown (before the window, after the text), `\p{…}` is any character, and under `i`
 * a character matches when it or a simple case variant of it is in the set's case closure (sets
 * too large to close match anything). Holding too much delays text; holding too little would
 * release the start of a forbidden match.
 */
export interface MatchPrefix {
  /**
   * The earliest position (UTF-16 index) where a match could still be under way; `text.length` when
   * none. `strays`: the text keeps strays (normalize.ts STRAY) and the matcher reads them either way (phrases).
   */
  holdStart(text: string, strays?: boolean): number;
}

/** Longest tail examined (the streaming window is at most this long: policies/schema.ts). */
const MAX_TAIL = 4096;
/** States per pattern; a pattern that expands past this (large counted repeats) keeps the coarse hold. */
const MAX_STATES = 2048;
/** Code points a case-insensitive set is closed over; larger sets match anything. */
const MAX_CLOSURE = 4096;

const CHAR = 0;
const SPLIT = 1;
const ASSERT = 2;
const MATCH = 3;

type BuildState =
  | { kind: typeof CHAR; set: CharSet; next: number }
  | { kind: typeof SPLIT; outs: number[] }
  | { kind: typeof ASSERT; test: AssertTest; next: number }
  | { kind: typeof MATCH };

/** A character set: an ASCII bitmap, the rest as sorted ranges. */
class CharSet {
  readonly #ascii = new Uint32Array(4);
  readonly #ranges: Ranges;
  readonly #ignoreCase: boolean;
  readonly #any: boolean;

  constructor(ranges: Ranges, ignoreCase: boolean) {
    let closed = ranges;
    let any = false;
    if (ignoreCase) {
      let size = 0;
      for (const [a, b] of ranges) size += b - a + 1;
      if (size > MAX_CLOSURE) any = true;
      else {
        const extra: [number, number][] = [];
        for (const [a, b] of ranges) for (let cp = a; cp <= b; cp++) for (const v of caseVariants(cp)) if (v !== cp) extra.push([v, v]);
        closed = union(ranges, extra);
      }
    }
    this.#ranges = closed;
    this.#ignoreCase = ignoreCase;
    this.#any = any;
    for (const [a, b] of closed) for (let cp = a; cp <= Math.min(b, 127); cp++) this.#ascii[cp >>> 5]! |= 1 << (cp & 31);
  }

  /** Whether a code point above U+FFFF (other than through the surrogate range) is in the set. */
  hasAstralOnly(): boolean {
    const coversSurrogates = this.#any || this.#ranges.some(([a, b]) => a <= 0xd800 && b >= 0xdfff);
    return !coversSurrogates && this.#ranges.some(([, b]) => b > 0xffff);
  }

  addTo(other: Uint32Array): void {
    for (let k = 0; k < 4; k++) other[k]! |= this.#ascii[k]!;
  }

  has(cp: number): boolean {
    if (this.#any) return true;
    if (cp < 128) return (this.#ascii[cp >>> 5]! & (1 << (cp & 31))) !== 0;
    if (inRanges(this.#ranges, cp)) return true;
    if (!this.#ignoreCase) return false;
    for (const v of caseVariants(cp)) if (v !== cp && inRanges(this.#ranges, v)) return true;
    return false;
  }

  /** Whether some character above ASCII may be in the set (under `i`: the long s and Kelvin sign are s and k). */
  get beyondAscii(): boolean {
    return this.#any || this.#ignoreCase || this.#ranges.some(([, b]) => b >= 128);
  }
}

function inRanges(ranges: Ranges, cp: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const [a, b] = ranges[mid]!;
    if (cp < a) hi = mid - 1;
    else if (cp > b) lo = mid + 1;
    else return true;
  }
  return false;
}

/** The code point's simple case variants (single code points only), itself included. */
function caseVariants(cp: number): number[] {
  const ch = String.fromCodePoint(cp);
  const out = [cp];
  const lower = ch.toLowerCase();
  const upper = ch.toUpperCase();
  for (const v of [lower, upper, upper.toLowerCase(), lower.toUpperCase()]) {
    const c = v.codePointAt(0)!;
    if (v.length === String.fromCodePoint(c).length && !out.includes(c)) out.push(c);
  }
  return out;
}

class TooLarge extends Error {}

class Builder {
  readonly states: BuildState[] = [];
  readonly #ignoreCase: boolean;
  /** One set per distinct class: repeats and alternatives share them. */
  readonly #sets = new Map<string, CharSet>();

  constructor(ignoreCase: boolean) {
    this.#ignoreCase = ignoreCase;
  }

  add(s: BuildState): number {
    if (this.states.length >= MAX_STATES) throw new TooLarge();
    this.states.push(s);
    return this.states.length - 1;
  }

  alt(a: Alternation, next: number): number {
    if (a.branches.length === 1) return this.seq(a.branches[0]!, next);
    return this.add({ kind: SPLIT, outs: a.branches.map((b) => this.seq(b, next)) });
  }

  seq(s: Sequence, next: number): number {
    let at = next;
    for (let k = s.items.length - 1; k >= 0; k--) at = this.quantified(s.items[k]!, at);
    return at;
  }

  quantified(q: Quantified, next: number): number {
    let at = next;
    if (q.max === Infinity) {
      const loop: { kind: typeof SPLIT; outs: number[] } = { kind: SPLIT, outs: [] };
      at = this.add(loop);
      loop.outs.push(this.atom(q.atom, at), next);
    } else {
      // Optional copies, each able to skip to what follows the repeat.
      for (let k = q.min; k < q.max; k++) at = this.add({ kind: SPLIT, outs: [this.atom(q.atom, at), next] });
    }
    for (let k = 0; k < q.min; k++) at = this.atom(q.atom, at);
    return at;
  }

  atom(a: Atom, next: number): number {
    if (a.kind === 'group') return this.alt(a.body, next);
    if (a.kind === 'assert') return this.add({ kind: ASSERT, test: a.test, next });
    const key = JSON.stringify(a.set);
    let set = this.#sets.get(key);
    if (!set) this.#sets.set(key, (set = new CharSet(a.set, this.#ignoreCase)));
    return this.add({ kind: CHAR, set, next });
  }
}

/** `\w` as `\b` sees it, for the characters normalised text can hold. */
function isWordUnit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
/** Characters `\w` includes under `iu` besides ASCII (long s, Kelvin sign): a boundary next to one is not decided here. */
const isUnsureWordUnit = (c: number): boolean => c === 0x17f || c === 0x212a;

class Nfa implements MatchPrefix {
  readonly #kind: Uint8Array;
  readonly #next: Int32Array;
  readonly #outs: readonly (readonly number[])[];
  readonly #sets: readonly (CharSet | null)[];
  readonly #tests: readonly (AssertTest | null)[];
  readonly #start: number;
  readonly #unicode: boolean;
  readonly #maxUnits: number;
  /** Characters that can begin a match (ASCII bitmap; `#firstBeyondAscii` for the rest). */
  readonly #firstAscii = new Uint32Array(4);
  readonly #firstBeyondAscii: boolean;
  // Scratch, reused by every call (calls never interleave).
  readonly #listA: Int32Array;
  readonly #startsA: Int32Array;
  readonly #listB: Int32Array;
  readonly #startsB: Int32Array;
  /** States reached in the current step (cleared through `#touched`, which lists them). */
  readonly #mark: Uint8Array;
  readonly #touched: Int32Array;
  #touchedLen = 0;
  readonly #stack: Int32Array;

  constructor(b: Builder, start: number, unicode: boolean, maxUnits: number) {
    const n = b.states.length;
    this.#kind = new Uint8Array(n);
    this.#next = new Int32Array(n).fill(-1);
    const outs: (readonly number[])[] = [];
    const sets: (CharSet | null)[] = [];
    const tests: (AssertTest | null)[] = [];
    b.states.forEach((s, i) => {
      this.#kind[i] = s.kind;
      outs.push(s.kind === SPLIT ? s.outs : []);
      sets.push(s.kind === CHAR ? s.set : null);
      tests.push(s.kind === ASSERT ? s.test : null);
      if (s.kind === CHAR || s.kind === ASSERT) this.#next[i] = s.next;
    });
    this.#outs = outs;
    this.#sets = sets;
    this.#tests = tests;
    this.#start = start;
    this.#unicode = unicode;
    this.#maxUnits = maxUnits;
    this.#listA = new Int32Array(n);
    this.#startsA = new Int32Array(n);
    this.#listB = new Int32Array(n);
    this.#startsB = new Int32Array(n);
    this.#mark = new Uint8Array(n);
    this.#touched = new Int32Array(n);
    // The closure's stack: a popped split pushes its outs, an assertion replaces itself with its next,
    // so at most 1 + all split outs are pending at once.
    let bound = 1;
    for (const o of outs) bound += o.length;
    this.#stack = new Int32Array(bound);
    // First characters: every set reachable from the start without consuming (assertions ignored).
    let beyond = false;
    const seen = new Set<number>();
    const todo = [start];
    while (todo.length > 0) {
      const s = todo.pop()!;
      if (seen.has(s)) continue;
      seen.add(s);
      const k = this.#kind[s]!;
      if (k === CHAR) {
        sets[s]!.addTo(this.#firstAscii);
        beyond ||= sets[s]!.beyondAscii;
      } else if (k === SPLIT) todo.push(...outs[s]!);
      else if (k === ASSERT) todo.push(this.#next[s]!);
    }
    this.#firstBeyondAscii = beyond;
  }

  holdStart(text: string): number {
    const n = text.length;
    const from = Math.max(0, n - Math.min(this.#maxUnits, MAX_TAIL));
    let list = this.#listA;
    let starts = this.#startsA;
    let other = this.#listB;
    let otherStarts = this.#startsB;
    this.#clearMarks();
    let len = 0;
    for (let i = from; i < n; ) {
      const cp = this.#unicode ? text.codePointAt(i)! : text.charCodeAt(i);
      const width = cp > 0xffff ? 2 : 1;
      // Threads are kept in order of their start, so the first to reach a state has the earliest start.
      if (this.#canStart(cp)) len = this.#closure(this.#start, i, i, text, list, starts, len);
      this.#clearMarks();
      if (len === 0) {
        i += width;
        continue;
      }
      let nextLen = 0;
      for (let k = 0; k < len; k++) {
        const s = list[k]!;
        if (this.#kind[s] === CHAR && this.#sets[s]!.has(cp)) nextLen = this.#closure(this.#next[s]!, i + width, starts[k]!, text, other, otherStarts, nextLen);
      }
      const swapList = list;
      list = other;
      other = swapList;
      const swapStarts = starts;
      starts = otherStarts;
      otherStarts = swapStarts;
      len = nextLen;
      i += width;
    }
    return len > 0 ? starts[0]! : n;
  }

  #clearMarks(): void {
    for (let k = 0; k < this.#touchedLen; k++) this.#mark[this.#touched[k]!] = 0;
    this.#touchedLen = 0;
  }

  #canStart(cp: number): boolean {
    return cp < 128 ? (this.#firstAscii[cp >>> 5]! & (1 << (cp & 31))) !== 0 : this.#firstBeyondAscii;
  }

  /** Adds the states reachable from `s` without consuming (assertions checked at `at`) to `list`. */
  #closure(s: number, at: number, start: number, text: string, list: Int32Array, starts: Int32Array, len: number): number {
    const stack = this.#stack;
    const mark = this.#mark;
    let top = 0;
    stack[top++] = s;
    while (top > 0) {
      const q = stack[--top]!;
      if (mark[q] === 1) continue;
      mark[q] = 1;
      this.#touched[this.#touchedLen++] = q;
      const k = this.#kind[q]!;
      if (k === SPLIT) {
        const outs = this.#outs[q]!;
        for (let o = outs.length - 1; o >= 0; o--) if (mark[outs[o]!] !== 1) stack[top++] = outs[o]!;
      } else if (k === ASSERT) {
        if (assertionMayHold(this.#tests[q]!, text, at)) stack[top++] = this.#next[q]!;
      } else {
        list[len] = q;
        starts[len++] = start;
      }
    }
    return len;
  }
}

function assertionMayHold(test: AssertTest, text: string, at: number): boolean {
  if (test === 'line' || at === 0 || at >= text.length) return true;
  const before = text.charCodeAt(at - 1);
  const after = text.charCodeAt(at);
  if (isUnsureWordUnit(before) || isUnsureWordUnit(after)) return true;
  const boundary = isWordUnit(before) !== isWordUnit(after);
  return test === 'boundary' ? boundary : !boundary;
}

/**
 * The automaton for a policy pattern, or null when it cannot be built (the pattern does not parse,
 * expands past the state budget, or without the `u` flag names characters beyond U+FFFF, which
 * that mode matches as two units): the caller keeps its coarser hold.
 * `maxUnits`: the longest match in UTF-16 units (Infinity when unbounded).
 */
export function regexPrefix(pattern: string, flags: string, maxUnits: number): MatchPrefix | null {
  const ast = parseRegex(pattern, flags);
  if (ast === null) return null;
  const unicode = flags.includes('u') || flags.includes('v');
  const b = new Builder(flags.includes('i'));
  let start: number;
  try {
    start = b.alt(ast, b.add({ kind: MATCH }));
  } catch (err) {
    if (err instanceof TooLarge) return null;
    throw err;
  }
  if (!unicode && b.states.some((s) => s.kind === CHAR && s.set.hasAstralOnly())) return null;
  return new Nfa(b, start, unicode, maxUnits);
}

/** Longest run of separators matched between a phrase's words (the phrase regex in src/policies/matchers.ts). */
export const PHRASE_MAX_GAP = 8;

/**
 * Phrases (src/policies/matchers.ts): the text they are matched against is normalised and a
 * phrase's words are separated in it by any run of characters that are neither letters nor digits
 * (space, punctuation, symbols: "wire-the-money", "wire the… money"), so a phrase is its folded
 * words joined by separator edges. A trie of the phrases; a start whose walk reaches the end of the
 * text while some path is still inside the trie is held. (The run's length bound is not followed:
 * holding a longer run is only more cautious.)
 */
export function phrasePrefix(phrases: readonly string[], wholeWords: boolean): MatchPrefix {
  const root: TrieNode = new Map();
  /** Nodes reached through a separator edge: another separator unit stays there. */
  const inSeparator = new Set<TrieNode>();
  let longest = 0;
  /** The same where strays are kept: one after each character of a phrase, and beside each separator of a gap. */
  let longestWithStrays = 0;
  let astral = false;
  // Folded ASCII units a phrase starts with: most positions are ruled out without the trie.
  const firstAscii = new Uint32Array(4);
  for (const p of phrases) {
    // The longest text a match of it can span, in characters: each space a run of up to PHRASE_MAX_GAP separators.
    const gaps = p.split(' ').length - 1;
    longest = Math.max(longest, p.length + (PHRASE_MAX_GAP - 1) * gaps);
    longestWithStrays = Math.max(longestWithStrays, 2 * (p.length + PHRASE_MAX_GAP * gaps));
    let node = root;
    for (let i = 0; i < p.length; i++) {
      const unit = p.charCodeAt(i);
      const c = unit === 32 ? SEPARATOR : foldUnit(unit);
      if (i === 0 && c >= 0 && c < 128) firstAscii[c >>> 5]! |= 1 << (c & 31);
      astral ||= c >= 0xd800 && c <= 0xdfff;
      let child = node.get(c);
      if (!child) node.set(c, (child = new Map()));
      if (c === SEPARATOR) inSeparator.add(child);
      node = child;
    }
  }
  return {
    holdStart(text, strays = false) {
      const n = text.length;
      for (let p = startsFrom(text, strays ? longestWithStrays : longest); p < n; p++) {
        // A whole-word phrase cannot start inside a word.
        if (wholeWords && p > 0 && isPhraseWordUnit(text, p - 1) && isPhraseWordUnit(text, p) && isHangulAt(text, p - 1) === isHangulAt(text, p)) continue;
        // An ASCII unit folds to ASCII: only phrases with an ASCII (folded) first unit can start there.
        const first = foldUnit(text.charCodeAt(p));
        if (first < 128 && (firstAscii[first >>> 5]! & (1 << (first & 31))) === 0) continue;
        if (walks(root, inSeparator, astral, text, p, strays)) return p;
      }
      return n;
    },
  };
}

/**
 * Where the last `chars` characters of `text` start, a surrogate pair counting as one: the phrase
 * regex counts separators in characters, so a run of 8 emoji is 16 units (until 2026-12-06 the last
 * `chars` units were looked at, and a phrase split by emoji was released before it matched).
 */
function startsFrom(text: string, chars: number): number {
  let start = text.length;
  for (let k = 0; k < chars && start > 0; k++) {
    start--;
    const c = text.charCodeAt(start);
    if (c >= 0xdc00 && c <= 0xdfff && start > 0) {
      const high = text.charCodeAt(start - 1);
      if (high >= 0xd800 && high <= 0xdbff) start--;
    }
  }
  return start;
}

/** The unit a stray is in a reading that keeps them (normalize.ts KEPT_STRAY). */
const STRAY_UNIT = KEPT_STRAY.charCodeAt(0);

/** The trie edge of a run of separators (no UTF-16 unit is negative). */
const SEPARATOR = -1;

/**
 * Whether some path through the trie from `root` takes all of `text` from `p` (then p can still
 * start a match). `strays`: a stray after the first character is also read as nothing (the walk
 * stays where it is), as the phrase pattern reads it (matchers.ts strayAlternative); until the
 * twenty-fourth session `ignore�prev�` at the end of a delta was released, the walk ending at the
 * stray inside `prev`.
 */
function walks(root: TrieNode, inSeparator: ReadonlySet<TrieNode>, astral: boolean, text: string, p: number, strays: boolean): boolean {
  const n = text.length;
  // Several paths only where a phrase has a literal separator character where another has a space.
  let states: TrieNode[] = [root];
  for (let i = p; i < n; ) {
    const c = text.charCodeAt(i);
    // Characters beyond U+FFFF have case variants this walk does not know: phrases holding some are held from any.
    if (astral && isSurrogate(c)) return true;
    // A surrogate pair is one character (a lone surrogate, one unit).
    const low = i + 1 < n ? text.charCodeAt(i + 1) : 0;
    const width = c >= 0xd800 && c <= 0xdbff && low >= 0xdc00 && low <= 0xdfff ? 2 : 1;
    const separator = isSeparatorAt(text, i, width);
    const nothing = strays && i > p && c === STRAY_UNIT;
    i += width;
    const next: TrieNode[] = [];
    const add = (node: TrieNode | undefined): void => {
      if (node !== undefined && !next.includes(node)) next.push(node);
    };
    for (const node of states) {
      if (nothing) add(node);
      if (width === 1) add(node.get(foldUnit(c)));
      if (!separator) continue;
      if (inSeparator.has(node)) add(node);
      add(node.get(SEPARATOR));
    }
    if (next.length === 0) return false;
    states = next;
  }
  return true;
}

/** Tested on one character (one unit, or a surrogate pair). */
const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;
/** Whether the character at `i` (`width` units) is neither a letter nor a digit: it can separate a phrase's words. */
function isSeparatorAt(text: string, i: number, width: number): boolean {
  const c = text.charCodeAt(i);
  if (c < 128) return !((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122));
  // A lone surrogate (a pair split at the end of the text) is neither: it can separate.
  return !LETTER_OR_DIGIT.test(text.slice(i, i + width));
}

const isSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdfff;

type TrieNode = Map<number, TrieNode>;

/** Folded units above ASCII, filled on first use (0: not yet); 128 KiB once, whatever the text. */
let folds: Uint16Array | null = null;
/** Case-insensitive key of a UTF-16 unit: the smallest of its simple case variants. */
function foldUnit(c: number): number {
  if (c < 128) return c >= 97 && c <= 122 ? c - 32 : c;
  if (c >= 0xd800 && c <= 0xdfff) return c;
  folds ??= new Uint16Array(0x10000);
  let f = folds[c]!;
  if (f === 0) folds[c] = f = Math.min(...caseVariants(c).filter((v) => v <= 0xffff));
  return f;
}

/**
 * Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar; by
 * Script_Extensions, so `ー` and `々` count). Their letters end a word for the phrase lookarounds: a
 * Latin phrase inside such a sentence (`请ignore previous instructions并…`) is the phrase, and a phrase
 * in such a script matches between its neighbours. Until the fifteenth red-team pass's second round
 * they were word letters, and both passed every phrase rule (test/policies/redteam-15b-unspaced-scripts.test.ts).
 */
export const UNSPACED_SCRIPTS = '\\p{scx=Han}\\p{scx=Hiragana}\\p{scx=Katakana}\\p{scx=Thai}\\p{scx=Lao}\\p{scx=Khmer}\\p{scx=Myanmar}';
/** A letter or digit that is part of a word for a phrase (regex source: one character). */
export const PHRASE_WORD_CHAR = `(?:(?![${UNSPACED_SCRIPTS}])[\\p{L}\\p{N}])`;
/**
 * Hangul. Korean puts spaces between words, but its particles join a loanword written in Latin
 * (`instructions를`, "instructions" as an object): next to a phrase edge that is not Hangul, a
 * Hangul letter ends the word; a Hangul edge keeps `PHRASE_WORD_CHAR` (a Korean phrase still ends
 * where its word does).
 */
const HANGUL = '\\p{scx=Hangul}';
/** A word letter next to a phrase edge that is not Hangul (regex source: one character). */
export const PHRASE_WORD_CHAR_NOT_HANGUL = `(?:(?![${UNSPACED_SCRIPTS}${HANGUL}])[\\p{L}\\p{N}])`;
/** Whether the phrase edge `ch` (a folded character) is Hangul: which word letters are beside it. */
export const isHangulChar = (ch: string): boolean => HANGUL_CHAR.test(ch);
const HANGUL_CHAR = new RegExp(`^[${HANGUL}]$`, 'u');
const WORD_CHAR = new RegExp(`^${PHRASE_WORD_CHAR}$`, 'u');
/**
 * Whether the unit at `i` is surely part of a word as the phrase regex's lookarounds see it: a
 * letter or a digit not of a script without spaces (`_` is not: it separates words,
 * src/policies/matchers.ts); a surrogate: not sure. Where Hangul meets another letter a phrase can
 * start (`isHangulAt` differs).
 */
const isHangulAt = (text: string, i: number): boolean => text.charCodeAt(i) >= 0x1100 && HANGUL_CHAR.test(text[i]!);
function isPhraseWordUnit(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  if (c >= 0xd800 && c <= 0xdfff) return false;
  return WORD_CHAR.test(text[i]!);
}

/**
 * The coarse hold for a pattern the automaton cannot take: from the earliest character (within the
 * longest match) that can start a match. `startsWith` sees the character and the one before it.
 */
export function firstCharPrefix(startsWith: ((code: number, previous: number) => boolean) | undefined, maxUnits: number): MatchPrefix | null {
  if (!startsWith) return null;
  return {
    holdStart(text) {
      const n = text.length;
      for (let p = Math.max(0, n - Math.min(maxUnits, MAX_TAIL)); p < n; p++) if (startsWith(text.charCodeAt(p), p > 0 ? text.charCodeAt(p - 1) : 32)) return p;
      return n;
    },
  };
}
