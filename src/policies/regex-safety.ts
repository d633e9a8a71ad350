/**
 * Static screening of user-supplied regular expressions against catastrophic backtracking.
 *
 * V8's irregexp is a backtracking engine, so a pattern like `(a+)+$` or `\w+\w+x` can take
 * exponential or high-polynomial time on a crafted transcript. Policy patterns are parsed into a
 * small AST at load time and refused when they contain a construct that can backtrack
 * super-linearly per start position:
 *
 * 1. backreferences (`\1`, `\k<name>`) and lookarounds (`(?=`, `(?!`, `(?<=`, `(?<!`);
 * 2. nested variable quantifiers: a repeated group (`*`, `+`, `{n,m}` with m > 1) containing any
 *    quantifier whose min differs from its max (`(a+)+`, `(\d\s?)*`, `(x*){2,5}`);
 * 3. quantified alternation whose branches may start with the same character (`(ab|ac)+`) or
 *    may be empty;
 * 4. two unbounded repeats that can consume the same characters with nothing mandatory and
 *    disjoint between them (`\w+\w+`, `\d+\s*\d+`, `.*foo.*`), found by a walk that follows
 *    optional groups and enclosing sequences;
 * 5. patterns that can match the empty string (they would trip on every event).
 *
 * What remains is at most quadratic in the input (one unbounded repeat retried from every start
 * position), and the matcher bounds every input (`maxInputChars`, the streaming window), so the
 * worst case is bounded in absolute terms. The check is conservative: some harmless patterns are
 * refused; rewrite them with bounded repeats (`{1,32}`) or a disjoint separator.
 */

export interface RegexProblem {
  readonly message: string;
}

/** A character set as sorted, disjoint, inclusive code-point ranges. */
export type Ranges = readonly (readonly [number, number])[];

const MAX_CP = 0x10ffff;
/** Repeats with a max above this count as unbounded for the adjacency analysis. */
const LARGE_REPEAT = 32;

type Node = Alternation;
export interface Alternation {
  readonly branches: Sequence[];
}
export interface Sequence {
  readonly items: Quantified[];
}
export interface Quantified {
  readonly atom: Atom;
  readonly min: number;
  readonly max: number;
}
/** `^`/`$` are 'line'; `\b` is 'boundary', `\B` 'notBoundary'. */
export type AssertTest = 'line' | 'boundary' | 'notBoundary';
export type Atom =
  | { readonly kind: 'chars'; readonly set: Ranges }
  | { readonly kind: 'group'; readonly body: Alternation }
  | { readonly kind: 'assert'; readonly test: AssertTest };

class RegexSyntaxProblem extends Error {}

/**
 * A pattern the engine itself refuses: checkRegex has already reported the engine's reason, and
 * maxMatchLength / firstCharTest answer "unknown", so no reason of our own is ever shown.
 */
function malformed(): RegexSyntaxProblem {
  return new RegexSyntaxProblem('malformed pattern');
}

/** Sorts and merges ranges (each with start <= end). */
function normalize(ranges: [number, number][]): Ranges {
  const sorted = ranges.sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

function complement(r: Ranges): Ranges {
  const out: [number, number][] = [];
  let next = 0;
  for (const [a, b] of r) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

/** The sorted, merged union of two range lists. */
export function union(a: Ranges, b: Ranges): Ranges {
  return normalize([...a.map((x) => [x[0], x[1]] as [number, number]), ...b.map((x) => [x[0], x[1]] as [number, number])]);
}

function overlaps(a: Ranges, b: Ranges): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const [a0, a1] = a[i]!;
    const [b0, b1] = b[j]!;
    if (a1 < b0) i++;
    else if (b1 < a0) j++;
    else return true;
  }
  return false;
}

const DIGIT: Ranges = [[0x30, 0x39]];
const WORD: Ranges = normalize([[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]]);
const SPACE: Ranges = normalize([
  [0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a],
  [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff],
]);
const LINE_TERMINATORS: Ranges = normalize([[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]]);
const ANY: Ranges = [[0, MAX_CP]];

/**
 * The two characters outside ASCII that Unicode case folding (the `iu` flags) makes ASCII letters:
 * ſ (U+017F) folds to s, the Kelvin sign K (U+212A) to k. Without `u` the engine folds neither.
 */
const UNICODE_ASCII_FOLDS: readonly (readonly [number, number])[] = [
  [0x17f, 0x73],
  [0x212a, 0x6b],
];

const within = (r: Ranges, c: number): boolean => r.some(([a, b]) => c >= a && c <= b);

/**
 * ASCII case folding for `i` patterns (enough for the overlap analysis to stay conservative), and
 * with `unicode` (`iu`) ſ ↔ s, S and K ↔ k, K too: until 2026-12-06 a set of `s` missed `ſ` and one
 * of `ſ` missed `s` (firstCharTest: the coarse hold of a pattern starting with `ſ` never held `s`).
 */
function foldCase(r: Ranges, unicode = false): Ranges {
  const extra: [number, number][] = [];
  for (const [a, b] of r) {
    const lo = Math.max(a, 0x41);
    const hi = Math.min(b, 0x5a);
    if (lo <= hi) extra.push([lo + 32, hi + 32]);
    const lo2 = Math.max(a, 0x61);
    const hi2 = Math.min(b, 0x7a);
    if (lo2 <= hi2) extra.push([lo2 - 32, hi2 - 32]);
  }
  if (unicode) {
    for (const [other, lower] of UNICODE_ASCII_FOLDS) {
      if (within(r, other)) extra.push([lower, lower], [lower - 32, lower - 32]);
      if (within(r, lower) || within(r, lower - 32)) extra.push([other, other]);
    }
  }
  return extra.length ? union(r, extra) : r;
}

class Parser {
  readonly #src: string;
  readonly #flags: { ignoreCase: boolean; dotAll: boolean; unicode: boolean };
  #i = 0;
  /** Set by a `\p{…}` / `\P{…}` escape: the class it is in is unknown (see #class). */
  #property = false;

  constructor(src: string, flags: string) {
    this.#src = src;
    this.#flags = { ignoreCase: flags.includes('i'), dotAll: flags.includes('s'), unicode: flags.includes('u') || flags.includes('v') };
  }

  parse(): Node {
    const alt = this.#alternation();
    if (this.#i < this.#src.length) throw malformed();
    return alt;
  }

  #peek(): string | undefined {
    return this.#src[this.#i];
  }

  #alternation(): Alternation {
    const branches: Sequence[] = [this.#sequence()];
    while (this.#peek() === '|') {
      this.#i++;
      branches.push(this.#sequence());
    }
    return { branches };
  }

  #sequence(): Sequence {
    const items: Quantified[] = [];
    for (;;) {
      const c = this.#peek();
      if (c === undefined || c === '|' || c === ')') break;
      const atom = this.#atom();
      const [min, max] = this.#quantifier();
      if ((min !== 1 || max !== 1) && atom.kind === 'assert') throw malformed();
      items.push({ atom, min, max });
    }
    return { items };
  }

  #quantifier(): [number, number] {
    const c = this.#peek();
    let q: [number, number] | null = null;
    if (c === '*') q = [0, Infinity];
    else if (c === '+') q = [1, Infinity];
    else if (c === '?') q = [0, 1];
    if (q) {
      this.#i++;
    } else {
      // `{n}`, `{n,}` or `{n,m}`; anything else (a lone `{` without the u flag) is no quantifier.
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#src.slice(this.#i));
      if (!m) return [1, 1];
      this.#i += m[0].length;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) throw malformed();
      q = [min, max];
    }
    if (this.#peek() === '?') this.#i++; // lazy: same backtracking profile
    return q;
  }

  #chars(set: Ranges): Atom {
    return { kind: 'chars', set: this.#flags.ignoreCase ? foldCase(set, this.#flags.unicode) : set };
  }

  #atom(): Atom {
    const c = this.#src[this.#i++]!;
    switch (c) {
      case '^':
      case '$':
        return { kind: 'assert', test: 'line' };
      case '.':
        return { kind: 'chars', set: this.#flags.dotAll ? ANY : complement(LINE_TERMINATORS) };
      case '(':
        return this.#group();
      case '[':
        return this.#chars(this.#class());
      case '\\':
        return this.#escape();
      case '*':
      case '+':
      case '?':
        throw malformed();
      default: {
        const cp = this.#src.codePointAt(this.#i - 1)!;
        if (cp > 0xffff) this.#i++;
        return this.#chars([[cp, cp]]);
      }
    }
  }

  #group(): Atom {
    const rest = this.#src.slice(this.#i);
    if (rest.startsWith('?=') || rest.startsWith('?!') || rest.startsWith('?<=') || rest.startsWith('?<!')) {
      throw new RegexSyntaxProblem('lookaround assertions are not allowed');
    }
    if (rest.startsWith('?:')) this.#i += 2;
    else if (rest.startsWith('?<')) {
      const end = this.#src.indexOf('>', this.#i);
      if (end < 0) throw malformed();
      this.#i = end + 1;
    } else if (rest.startsWith('?')) throw new RegexSyntaxProblem('unsupported group syntax');
    const body = this.#alternation();
    if (this.#peek() !== ')') throw malformed();
    this.#i++;
    return { kind: 'group', body };
  }

  /** One escape inside or outside a class; returns its character set, or null for `\b`/`\B` outside a class. */
  #escapeSet(inClass: boolean): Ranges | null {
    const c = this.#src[this.#i++];
    if (c === undefined) throw malformed();
    switch (c) {
      case 'd':
        return DIGIT;
      case 'D':
        return complement(DIGIT);
      case 'w':
        return WORD;
      case 'W':
        return complement(WORD);
      case 's':
        return SPACE;
      case 'S':
        return complement(SPACE);
      case 'b':
        return inClass ? [[8, 8]] : null;
      case 'B':
        if (inClass) throw new RegexSyntaxProblem('\\B in a class');
        return null;
      case 'n':
        return [[10, 10]];
      case 'r':
        return [[13, 13]];
      case 't':
        return [[9, 9]];
      case 'f':
        return [[12, 12]];
      case 'v':
        return [[11, 11]];
      case '0':
        return [[0, 0]];
      case 'k':
        throw new RegexSyntaxProblem('backreferences are not allowed');
      case 'p':
      case 'P':
        // Unicode property classes: treated as "any character" (conservative).
        this.#property = true;
        if (this.#peek() === '{') {
          const end = this.#src.indexOf('}', this.#i);
          if (end < 0) throw new RegexSyntaxProblem('unterminated \\p{…}');
          this.#i = end + 1;
        }
        return ANY;
      case 'x': {
        const m = /^[0-9a-fA-F]{2}/.exec(this.#src.slice(this.#i));
        if (!m) return [[0x78, 0x78]];
        this.#i += 2;
        const cp = parseInt(m[0], 16);
        return [[cp, cp]];
      }
      case 'u': {
        const rest = this.#src.slice(this.#i);
        const m = /^[0-9a-fA-F]{4}/.exec(rest) ?? /^\{([0-9a-fA-F]{1,6})\}/.exec(rest);
        if (!m) return [[0x75, 0x75]];
        this.#i += m[0].length;
        const cp = parseInt(m[1] ?? m[0], 16);
        return [[cp, cp]];
      }
      case 'c': {
        // A control letter; inside a class (Annex B) also a digit or `_`.
        const l = this.#src[this.#i];
        if (l && (inClass ? /[A-Za-z0-9_]/ : /[A-Za-z]/).test(l)) {
          this.#i++;
          const cp = l.charCodeAt(0) % 32;
          return [[cp, cp]];
        }
        // Otherwise (no u flag) `\c` is a backslash and then a literal `c`: read the `c` again.
        this.#i--;
        return [[0x5c, 0x5c]];
      }
      default: {
        if (/[1-9]/.test(c)) throw new RegexSyntaxProblem('backreferences are not allowed');
        const cp = c.codePointAt(0)!;
        return [[cp, cp]];
      }
    }
  }

  #escape(): Atom {
    const set = this.#escapeSet(false);
    if (set !== null) return this.#chars(set);
    return { kind: 'assert', test: this.#src[this.#i - 1] === 'b' ? 'boundary' : 'notBoundary' };
  }

  #class(): Ranges {
    const outer = this.#property;
    this.#property = false;
    try {
      const set = this.#classBody();
      // A class with a property escape in it, negated or not, is any character: the escape is read
      // as any character, and complementing that read `[^\p{L}]` as no character at all (until
      // 2026-12-05): `[^\p{L}]*[^\p{L}]*x` passed the screen as two disjoint repeats and took
      // cubic time on a run of spaces, and streamed text a match of `[^\p{L}](I|we) will…` begins
      // with was not held.
      return this.#property ? ANY : set;
    } finally {
      this.#property ||= outer;
    }
  }

  #classBody(): Ranges {
    let negated = false;
    if (this.#peek() === '^') {
      negated = true;
      this.#i++;
    }
    const parts: [number, number][] = [];
    let first = true;
    for (;;) {
      const c = this.#peek();
      if (c === undefined) throw malformed();
      if (c === ']' && !first) {
        this.#i++;
        break;
      }
      if (c === ']' && first) {
        // `[]` matches nothing, `[^]` anything.
        this.#i++;
        return negated ? ANY : [];
      }
      first = false;
      const lo = this.#classAtom();
      if (this.#peek() === '-' && this.#src[this.#i + 1] !== ']' && this.#src[this.#i + 1] !== undefined && lo.length === 1 && lo[0]![0] === lo[0]![1]) {
        this.#i++;
        const hi = this.#classAtom();
        if (hi.length === 1 && hi[0]![0] === hi[0]![1]) {
          if (hi[0]![0] < lo[0]![0]) throw malformed();
          parts.push([lo[0]![0], hi[0]![0]]);
          continue;
        }
        parts.push([0x2d, 0x2d], ...hi.map((r) => [r[0], r[1]] as [number, number]));
      }
      parts.push(...lo.map((r) => [r[0], r[1]] as [number, number]));
    }
    const set = normalize(parts);
    return negated ? complement(set) : set;
  }

  #classAtom(): Ranges {
    const c = this.#src[this.#i++]!;
    if (c === '\\') return this.#escapeSet(true) ?? [];
    const cp = this.#src.codePointAt(this.#i - 1)!;
    if (cp > 0xffff) this.#i++;
    return [[cp, cp]];
  }
}

const isVariable = (q: Quantified) => q.min !== q.max;
const isRepeat = (q: Quantified) => q.max > 1;
const isUnbounded = (q: Quantified) => q.max > LARGE_REPEAT;

function nullableSeq(s: Sequence): boolean {
  return s.items.every((q) => q.min === 0 || q.atom.kind === 'assert' || (q.atom.kind === 'group' && nullableAlt(q.atom.body)));
}
function nullableAlt(a: Alternation): boolean {
  return a.branches.some(nullableSeq);
}

/** Every character the atom can consume. */
function charsOf(atom: Atom): Ranges {
  if (atom.kind === 'chars') return atom.set;
  if (atom.kind === 'assert') return [];
  let out: Ranges = [];
  for (const b of atom.body.branches) for (const q of b.items) out = union(out, charsOf(q.atom));
  return out;
}

/** Characters that can start a match of the sequence. */
function firstOfSeq(s: Sequence): Ranges {
  let out: Ranges = [];
  for (const q of s.items) {
    if (q.atom.kind === 'assert') continue;
    const f = q.atom.kind === 'chars' ? q.atom.set : firstOfAlt(q.atom.body);
    out = union(out, f);
    const optional = q.min === 0 || (q.atom.kind === 'group' && nullableAlt(q.atom.body));
    if (!optional) break;
  }
  return out;
}
function firstOfAlt(a: Alternation): Ranges {
  let out: Ranges = [];
  for (const b of a.branches) out = union(out, firstOfSeq(b));
  return out;
}

function containsVariableQuantifier(a: Alternation): boolean {
  return a.branches.some((b) => b.items.some((q) => isVariable(q) || (q.atom.kind === 'group' && containsVariableQuantifier(q.atom.body))));
}

function hasAmbiguousAlternation(a: Alternation): boolean {
  if (a.branches.length > 1) {
    if (a.branches.some(nullableSeq)) return true;
    const firsts = a.branches.map(firstOfSeq);
    for (let i = 0; i < firsts.length; i++) for (let j = i + 1; j < firsts.length; j++) if (overlaps(firsts[i]!, firsts[j]!)) return true;
  }
  return a.branches.some((b) => b.items.some((q) => q.atom.kind === 'group' && hasAmbiguousAlternation(q.atom.body)));
}

type ScanResult = 'safe' | 'unsafe' | 'open';

/**
 * After an unbounded repeat over `x`, walks what may follow it. 'safe': a mandatory atom disjoint
 * from `x` always comes before any other unbounded repeat that overlaps `x`; 'unsafe': such a
 * repeat can follow directly; 'open': the sequence ended (the caller continues outward).
 */
function scanSeq(items: readonly Quantified[], from: number, x: Ranges): ScanResult {
  for (let k = from; k < items.length; k++) {
    const q = items[k]!;
    if (q.atom.kind === 'assert') continue;
    const set = charsOf(q.atom);
    if (isUnbounded(q) && overlaps(set, x)) return 'unsafe';
    if (q.atom.kind === 'chars') {
      if (q.min >= 1 && !overlaps(set, x)) return 'safe';
      continue;
    }
    // A group: every branch is walked; a mandatory group is a barrier only if all branches are.
    let allSafe = true;
    for (const b of q.atom.body.branches) {
      const r = scanSeq(b.items, 0, x);
      if (r === 'unsafe') return 'unsafe';
      if (r !== 'safe') allSafe = false;
    }
    if (q.min >= 1 && allSafe) return 'safe';
  }
  return 'open';
}

class Checker {
  readonly problems: string[] = [];

  /** `outer`: the enclosing sequences' remaining items, innermost first, for the adjacency walk. */
  alt(a: Alternation, outer: readonly { items: readonly Quantified[]; from: number }[]): void {
    for (const b of a.branches) this.seq(b, outer);
  }

  seq(s: Sequence, outer: readonly { items: readonly Quantified[]; from: number }[]): void {
    s.items.forEach((q, i) => {
      if (q.atom.kind === 'group') {
        if (isRepeat(q) && containsVariableQuantifier(q.atom.body)) this.problems.push('nested quantifier (a repeated group contains a variable quantifier)');
        if (isRepeat(q) && hasAmbiguousAlternation(q.atom.body)) this.problems.push('repeated alternation whose branches can start with the same character or be empty');
        this.alt(q.atom.body, [{ items: s.items, from: i + 1 }, ...outer]);
      }
      if (isUnbounded(q) && q.atom.kind !== 'assert') {
        const x = charsOf(q.atom);
        let r = scanSeq(s.items, i + 1, x);
        for (let o = 0; r === 'open' && o < outer.length; o++) r = scanSeq(outer[o]!.items, outer[o]!.from, x);
        if (r === 'unsafe') this.problems.push('two unbounded repeats can match the same characters back to back (e.g. \\w+\\w+ or .*x.*)');
      }
    });
  }
}

const ALLOWED_FLAGS = /^[imsu]*$/;

/** Returns the reasons a pattern is refused (empty when it is acceptable). */
export function checkRegex(pattern: string, flags = ''): string[] {
  if (!ALLOWED_FLAGS.test(flags)) return [`unsupported flags "${flags}" (allowed: i, m, s, u)`];
  try {
    new RegExp(pattern, flags);
  } catch (err) {
    return [`invalid regular expression: ${(err as Error).message}`];
  }
  let ast: Node;
  try {
    ast = new Parser(pattern, flags).parse();
  } catch (err) {
    if (err instanceof RegexSyntaxProblem) return [err.message];
    throw err;
  }
  const checker = new Checker();
  checker.alt(ast, []);
  if (nullableAlt(ast)) checker.problems.push('the pattern can match the empty string');
  return [...new Set(checker.problems)];
}

function maxLenAlt(a: Alternation, unitsPerChar: number): number {
  let best = 0;
  for (const b of a.branches) {
    let sum = 0;
    for (const q of b.items) {
      if (q.max === 0) continue;
      const one = q.atom.kind === 'assert' ? 0 : q.atom.kind === 'chars' ? unitsPerChar : maxLenAlt(q.atom.body, unitsPerChar);
      if (one === 0) continue;
      if (q.max === Infinity || one === Infinity) return Infinity;
      sum += one * q.max;
    }
    best = Math.max(best, sum);
  }
  return best;
}

/** The pattern's syntax tree (character sets case-folded for ASCII under `i`), or null when it does not parse. */
export function parseRegex(pattern: string, flags: string): Alternation | null {
  try {
    return new Parser(pattern, flags).parse();
  } catch {
    return null;
  }
}

/**
 * The longest text (UTF-16 units) a pattern can match, or Infinity when a repeat is unbounded.
 * Lets the streaming scanner skip text that can only be context for new matches.
 */
export function maxMatchLength(pattern: string, flags = ''): number {
  const ast = parseRegex(pattern, flags);
  // Any character may be two UTF-16 units (a surrogate pair): count two per character.
  return ast === null ? Infinity : maxLenAlt(ast, 2);
}

/**
 * A test for the characters a match of the pattern can start with (null when unknown), so the
 * streaming scanner holds back text only from a position where a match could begin.
 */
export function firstCharTest(pattern: string, flags = ''): ((code: number) => boolean) | null {
  const ast = parseRegex(pattern, flags);
  if (ast === null) return null;
  const first = firstOfAlt(ast);
  if (first.length === 0) return null;
  return (code) => {
    for (const [a, b] of first) if (code >= a && code <= b) return true;
    return false;
  };
}
