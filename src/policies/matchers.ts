import type { PiiDetector } from './pii.js';
import { isHangulChar, PHRASE_MAX_GAP, PHRASE_WORD_CHAR, PHRASE_WORD_CHAR_NOT_HANGUL, phrasePrefix, type MatchPrefix } from './match-prefix.js';
import { blackFlagEndsAt, isFlagTagLow, linedText, MAX_FLAG_TAGS, normalize, normalizeText, KEPT_STRAY, type Normalized } from './normalize.js';
import { decodeJsonEscapes, normalizeJson, openEscapeStart } from './json-escapes.js';

/** Where a text comes from (the policy file's `sources`). */
export type Source = 'input' | 'output' | 'tool_call' | 'tool_output' | 'image';

export type Action = 'log' | 'redact' | 'block' | 'cancel_response' | 'end_session';
/** Severity order: the strongest action of the rules that trip on one event wins. */
export const ACTION_RANK: Readonly<Record<Action, number>> = { log: 0, redact: 1, block: 2, cancel_response: 3, end_session: 4 };

/** Finds spans in a text. `find` must be linear-ish in the text (screened patterns, bounded input). */
export interface SpanFinder {
  readonly label: string;
  /** Longest span it can match (Infinity when unknown: the streaming window bounds it). */
  readonly maxLength: number;
  /**
   * Reports matches starting at or after `from` (earlier text is still visible to lookbehinds).
   * `strays`: the text is a reading that keeps strays (normalize.ts STRAY) and has some.
   */
  find(text: string, onHit: (start: number, end: number, label: string) => void, from?: number, strays?: boolean): void;
  /**
   * Where a match could begin that the text so far does not complete yet (text.length when none
   * can): streamed text from there on is held back. Default: `text.length - maxLength`.
   */
  holdStart?(text: string, strays?: boolean): number;
  /**
   * Reads a stray as either nothing or a separator where the text keeps them (`strays`): a match
   * there can be up to twice `maxLength` long (a stray after each of its characters).
   */
  readonly readsStrays?: boolean;
  /**
   * Also given the text with its line breaks kept (normalize.ts `linedText`: a whitespace run holding
   * one is `\n`, not a space), when it has any: matches in both readings count (pii.ts `readsLineBreaks`).
   */
  readonly readsLineBreaks?: boolean;
}

export interface CompiledRule {
  readonly id: string;
  readonly sources: ReadonlySet<Source>;
  /** Event types the rule is limited to, or null for every event of its sources. */
  readonly events: ReadonlySet<string> | null;
  readonly action: Action;
  readonly finders: readonly SpanFinder[];
  readonly maxChars: number | null;
  readonly functionName: ((name: string) => boolean) | null;
  /** Redaction text; `{type}` becomes the matcher label (phrase, regex, email, card, …). */
  readonly replacement: string;
  readonly logMatches: boolean;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Phrases as one case-insensitive alternation of literals; whitespace inside a phrase matches a run
 * (up to 8) of characters that are neither letters nor digits, so punctuation between the words
 * does not hide a phrase. Whole-word matching uses single-character lookarounds (linear), with the
 * same idea of a word: letters and digits, but those of scripts written without spaces (Han, kana,
 * Thai, …), which touch the words of a phrase inside such a sentence (`请ignore previous instructions并`). `_` separates words around a phrase as it does inside
 * one (`wire_the_money` is the phrase), so `_wire the money_` (markdown emphasis) and
 * `always_wire_the_money` (a snake_case name) match; until 2026-12-05 the lookarounds counted `_`
 * as a word character and both passed.
 */
export function phraseFinder(phrases: readonly string[], wholeWords: boolean): SpanFinder {
  // Phrases are folded like the text they are matched against (src/policies/normalize.ts).
  const folded = [...new Set(phrases.map((p) => normalizeText(p).trim()).filter((p) => p.length > 0))].sort((a, b) => b.length - a.length);
  const words = folded.map((p) => p.split(/\s+/));
  // Between words, any run of non-letters and non-digits: "wire-the-money" and "wire the… money" are the phrase.
  const alternative = (w: readonly string[]): string => w.map(escapeRegex).join(`[^\\p{L}\\p{N}]{1,${PHRASE_MAX_GAP}}`);
  // A word letter: a letter or digit, not of a script written without spaces, nor Hangul beside an
  // edge that is not (match-prefix.ts UNSPACED_SCRIPTS, PHRASE_WORD_CHAR_NOT_HANGUL).
  const wordBeside = (ch: string): string => (isHangulChar(ch) ? PHRASE_WORD_CHAR : PHRASE_WORD_CHAR_NOT_HANGUL);
  // Phrases grouped by the word letters beside their edges (one group unless some edge is Hangul),
  // each group one alternation between one pair of lookarounds (the longest first within it).
  const groups = new Map<string, (readonly string[])[]>();
  for (const w of words) {
    const text = w.join(' ');
    const key = wholeWords ? `${wordBeside(String.fromCodePoint(text.codePointAt(0)!))}\n${wordBeside([...text.slice(-2)].pop()!)}` : '';
    groups.set(key, [...(groups.get(key) ?? []), w]);
  }
  const pattern = (spell: (w: readonly string[]) => string): RegExp => {
    const source = [...groups].map(([key, group]) => {
      const alts = group.map(spell).join('|');
      if (!wholeWords) return alts;
      const [before, after] = key.split('\n');
      return `(?<!${before!})(?:${alts})(?!${after!})`;
    });
    return new RegExp(`(?:${source.join('|')})`, 'giu');
  };
  const maxLength = Math.max(...words.map((w) => w.join('').length + PHRASE_MAX_GAP * (w.length - 1))) * 2;
  // Normalised text has single spaces: a phrase's prefixes are its words up to case, with separator runs between.
  const hold = phrasePrefix(words.map((w) => w.join(' ')), wholeWords);
  const plain = regexFinder(pattern(alternative), 'phrase', maxLength);
  // perf: the stray-aware pattern only for readings that keep strays (streamed deltas rarely have any).
  const withStrays = regexFinder(pattern(strayAlternative), 'phrase', maxLength * 2);
  return {
    ...plain,
    find: (text, onHit, from, strays) => (strays === true ? withStrays : plain).find(text, onHit, from),
    holdStart: (text, strays) => hold.holdStart(text, strays),
    readsStrays: true,
  };
}

/** A stray as the first reading keeps it (normalize.ts KEPT_STRAY), as a regex source. */
const STRAY_SOURCE = escapeRegex(KEPT_STRAY);
/** A gap between a phrase's words where strays are kept: a stray alone, or separators with a stray beside each. */
const STRAY_GAP = `(?:${STRAY_SOURCE}?(?:[^\\p{L}\\p{N}${STRAY_SOURCE}]${STRAY_SOURCE}?){1,${PHRASE_MAX_GAP}}|${STRAY_SOURCE})`;

/**
 * A phrase's words for a text that keeps strays (normalize.ts STRAY), each stray read as nothing or
 * as a separator: a model reads `ign�ore` as "ignore" and `ignore�previous` as two words, and one
 * text may hold both (`ignore�prev�ious instructions`, which no reading taking every stray one way
 * read whole: until the twenty-fourth session it passed every phrase rule,
 * src/policies/strays-both-ways.test.ts). The first reading keeps at most one stray between two
 * other characters (a run is one, none after whitespace), so a stray is optional between the letters
 * of a word, and a gap is a stray alone or up to PHRASE_MAX_GAP other separators with a stray
 * beside each. Strays, letters and the other separators are disjoint (each character is read one
 * way) and no repeat is unbounded: linear in the text, as the plain pattern.
 */
function strayAlternative(words: readonly string[]): string {
  return words.map((w) => [...w].map(escapeRegex).join(`${STRAY_SOURCE}?`)).join(STRAY_GAP);
}

/** A finder over a global regex; empty matches are skipped. An optional validator confirms / trims. */
export function regexFinder(
  re: RegExp,
  label: string,
  maxLength: number,
  validate?: (candidate: string) => number,
  prefilter?: (text: string, from: number) => boolean,
  hold?: MatchPrefix,
): SpanFinder {
  const pattern = re.global ? re : new RegExp(re.source, re.flags + 'g');
  return {
    label,
    maxLength,
    ...(hold ? { holdStart: (text: string) => hold.holdStart(text) } : {}),
    find(text, onHit, from = 0) {
      if (prefilter && !prefilter(text, from)) return;
      pattern.lastIndex = from;
      for (;;) {
        const m = pattern.exec(text);
        if (m === null) break;
        const s = m.index;
        const matched = m[0];
        if (matched.length === 0) {
          pattern.lastIndex = s + 1;
          continue;
        }
        const len = validate ? validate(matched) : matched.length;
        if (len > 0) onHit(s, s + len, label);
        // A candidate the validator refused or trimmed may hide a match that starts inside it (a card
        // right after another digit run: "ref 1 4111 1111 1111 1111"): looked for again from its next
        // character, or from the end of the part kept. Until 2026-12-07 the finder went on after the
        // whole candidate (test/policies/redteam-18z-card-after-digit.test.ts).
        if (len < matched.length) pattern.lastIndex = len > 0 ? s + len : s + 1;
      }
    },
  };
}

export function piiFinder(d: PiiDetector): SpanFinder {
  const finder = regexFinder(d.pattern, d.name, d.maxLength, d.validate, d.prefilter);
  return { ...finder, ...(d.holdStart ? { holdStart: d.holdStart } : {}), ...(d.readsLineBreaks ? { readsLineBreaks: true } : {}) };
}

export interface RuleHit {
  readonly rule: CompiledRule;
  readonly label: string;
  /** The matched text, only when the rule allows logging it. */
  readonly excerpt: string | null;
}

export interface ScanResult {
  /** Newly tripped rules (each rule trips at most once per scanner). */
  readonly hits: readonly RuleHit[];
  /** The pushed text with redaction rules applied (identical to the input when nothing matched). */
  readonly text: string;
  readonly redacted: boolean;
  /** A match still growing reached past the scanner's `maxHeldChars`: part of it was released (redacted). */
  readonly overHold?: boolean;
}

/**
 * What the scanned text is: `text` as it is read, or `json` (tool arguments and outputs), whose
 * string escapes (`\n`, `\u0040`) are matched as the characters they stand for. A JSON text is
 * released and redacted by whole escape sequences; replacements are written escaped.
 */
export type TextFormat = 'text' | 'json';

const NO_HITS: readonly RuleHit[] = Object.freeze([]);

interface Span {
  start: number;
  end: number;
  replacement: string;
  /** A growing match cut at `maxHeldChars`: released redacted in pieces, never pulled back whole. */
  divisible: boolean;
}

/** One reading of the scanned text, and the index in it of the first character not released yet. */
interface Reading {
  readonly text: string;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly fresh: number;
  /** The earliest original position a growing match may be held from (TextScanner's `maxHeldChars`). */
  readonly floor: number;
  /** Where the text's line breaks were (normalize.ts `lineBreaks`): none, no second reading. */
  readonly lineBreaks: readonly number[];
  /** The reading keeps strays (normalize.ts STRAY) and the text has some (SpanFinder `strays`). */
  readonly strays: boolean;
  /** The same text with its line breaks kept (`linedText`), made on first use; null while not made. */
  lined: string | null;
}

/** Index of the first normalised character that reaches past `ctxLen` in the original (the text not released yet). */
function freshIndex(ends: Int32Array, ctxLen: number): number {
  for (let k = 0; k < ends.length; k++) if (ends[k]! > ctxLen) return k;
  return ends.length;
}

/**
 * A further reading of a text with hidden tag characters or strays (normalize.ts): tags decoded to
 * ASCII (`readTags`) or dropped, strays dropped (`dropStrays`) or kept. A JSON text is read with its
 * escapes decoded first, as `normalizeJson` does (so `\uDB40\uDC69` is a tag `i`).
 */
function strayReading(raw: string, format: TextFormat, readTags: boolean, dropStrays = true): Normalized {
  const decoded = format === 'json' ? decodeJsonEscapes(raw) : null;
  if (decoded === null) return normalize(raw, readTags, dropStrays);
  const norm = normalize(decoded.text, readTags, dropStrays);
  const { starts, ends } = norm;
  for (let k = 0; k < starts.length; k++) {
    starts[k] = decoded.rawStart[starts[k]!]!;
    ends[k] = decoded.rawEnd[ends[k]! - 1]!;
  }
  return norm;
}

/**
 * Scans one growing text (a transcript, text or arguments being streamed, or a whole text pushed
 * at once) and decides how much of it may leave now.
 *
 * Each push scans `context + held + delta`, where `context` is the last `windowChars` characters
 * already released (so a phrase split across deltas, content parts or items still matches) and
 * `held` is text not yet released. Matching runs on the normalised text (src/policies/normalize.ts)
 * and maps back to the original characters. A text with hidden tag characters (U+E0020–U+E007E,
 * "ASCII smuggling") is matched in two readings, tags dropped and tags read as ASCII: a match in
 * either trips, holds and redacts (the tag characters it covers).
 *
 * Hold-back: text that could still be, or complete, a match of a rule whose action is stronger
 * than `log` is not released until it is settled: released text never contains a forbidden match.
 * The hold is at most the longest pattern (`SpanFinder.maxLength`, capped by the window), and
 * shorter where the finder knows better (`holdStart`: phrase prefixes, digit runs, words).
 * A match is settled when text follows it (a whole-word boundary or a longer number may still
 * come) or the stream ends (`final`). Redaction is applied to released text only.
 */
export class TextScanner {
  readonly #rules: readonly CompiledRule[];
  readonly #window: number;
  readonly #tripped = new Set<CompiledRule>();
  /** Released original text (context for matches across pushes), at most `window` characters. */
  #context: string;
  /** Original text received but not released yet. */
  #held = '';
  #lastWindow = '';
  #total = 0;
  /** False until the first push: the context is then only the seed, decided with its own text. */
  #pushed = false;
  readonly #format: TextFormat;
  readonly #maxHeld: number;

  /**
   * `seed`: earlier text of the same conversation (a previous item), context only.
   * `maxHeldChars`: the most text a match still growing is held back for (streams; a complete text
   * is bounded by its own length and scan budget). Every finite match fits the window, so only a
   * match of an unbounded pattern (`\d+`, `.*`) reaches it: past it the text is released in pieces
   * (each piece redacted) and the push reports `overHold`, for the caller to apply `overScanLimit`.
   * Until 2026-12-07 there was no bound: a stream of digits under a `\d+` rule was held whole and
   * re-normalised and re-scanned on every delta, memory growing with the stream and CPU with its
   * square (test/policies/redteam-16-unbounded-hold.test.ts).
   */
  constructor(rules: readonly CompiledRule[], windowChars: number, seed = '', format: TextFormat = 'text', maxHeldChars = Infinity) {
    this.#rules = rules;
    this.#maxHeld = maxHeldChars;
    this.#window = windowChars;
    this.#format = format;
    this.#context = seed.length > windowChars ? seed.slice(seed.length - windowChars) : seed;
  }

  get total(): number {
    return this.#total;
  }

  /** The text scanned by the last push (released context, held text, then the pushed delta). */
  get recent(): string {
    return this.#lastWindow;
  }

  /** Text received but not released (it is released by a later push, or never after a trip). */
  get held(): string {
    return this.#held;
  }

  hasTripped(rule: CompiledRule): boolean {
    return this.#tripped.has(rule);
  }

  push(delta: string, final = false): ScanResult {
    const context = this.#context;
    const ctxLen = context.length;
    const full = context + this.#held + delta;
    // A character cut off at the end (an escape of a JSON text, the high half of a surrogate pair)
    // is held and not scanned yet: the next delta says what it is. (A JSON context cut mid-escape
    // misreads at most its first characters.)
    const scanEnd = final ? full.length : Math.max(ctxLen, openCharStart(full, this.#format));
    const scanned = scanEnd < full.length ? full.slice(0, scanEnd) : full;
    const norm = this.#format === 'json' ? normalizeJson(scanned) : normalize(scanned);
    const reading = (n: Normalized, copy: boolean, strays: boolean): Reading => ({
      text: n.text,
      // The maps are normalize's shared buffers: every reading's but the last made are copied.
      starts: copy ? n.starts.slice() : n.starts,
      ends: copy ? n.ends.slice() : n.ends,
      fresh: freshIndex(n.ends, ctxLen),
      floor: this.#holdFloor(n.starts, full.length),
      lineBreaks: n.lineBreaks,
      lined: null,
      strays,
    });
    let readings: readonly Reading[];
    if (!norm.hiddenTags && !norm.strays) readings = [reading(norm, false, false)];
    else {
      // The first reading drops tags and keeps strays (the phrase matcher reads each either way).
      const first = reading(norm, true, norm.strays);
      const tags = strayReading(scanned, this.#format, true);
      // Tags in one word and a stray in another: neither of these two has both words whole, a third
      // reading drops both (until the twenty-third pass `ign<TAG>ore previous instruc<U+FFFD>tions`
      // passed: test/governance/redteam-23b-tags-and-strays.test.ts).
      if (!(norm.hiddenTags && norm.strays)) readings = [first, reading(tags, false, false)];
      else {
        const second = reading(tags, true, false);
        const both = reading(strayReading(scanned, this.#format, false), true, false);
        // And a fourth reads the tags and keeps the strays: words in tag characters with a stray
        // alone between them (`<TAGS ignore>�<TAGS previous instructions>`) are the phrase only there
        // (until the twenty-fourth session it passed: src/policies/strays-both-ways.test.ts).
        readings = [first, second, both, reading(strayReading(scanned, this.#format, true, false), false, true)];
      }
    }
    const newTotal = this.#total + delta.length;
    let hits: RuleHit[] | null = null;
    let spans: Span[] | null = null;
    let holdFrom = final ? full.length : Infinity;
    let overHold = false;
    // The finder loop's state for `onHit` (set before each `find`).
    let holds = false;
    let hitRule: CompiledRule = this.#rules[0]!;
    let hitStarts: Int32Array = norm.starts;
    let hitEnds: Int32Array = norm.ends;
    let hitFloor = 0;
    let hitTextLength = 0;
    const onHit = (s: number, e: number, label: string): void => {
      const rule = hitRule;
      const os = hitStarts[s]!;
      const oe = hitEnds[e - 1]!;
      // Released text is only context. A log match ending right where it ends was released unsettled
      // (nothing holds for log rules, and a word may go on): the text after it decides it now.
      if (oe < ctxLen || (oe === ctxLen && !(rule.action === 'log' && this.#pushed))) return;
      const settled = final || e < hitTextLength;
      if (rule.action === 'redact') (spans ??= []).push({ start: Math.max(os, ctxLen), end: oe, replacement: this.#replacement(rule, label), divisible: !settled && os < hitFloor });
      if (!settled) {
        if (!holds) return;
        if (os < hitFloor) overHold = true;
        holdFrom = Math.min(holdFrom, Math.max(os, ctxLen, hitFloor));
        return;
      }
      if (this.#tripped.has(rule)) return;
      this.#tripped.add(rule);
      (hits ??= []).push({ rule, label, excerpt: rule.logMatches ? full.slice(os, Math.min(oe, os + 80)) : null });
    };
    for (const rule of this.#rules) {
      const tripped = this.#tripped.has(rule);
      if (tripped && rule.action !== 'redact') continue;
      if (rule.maxChars !== null && !tripped && newTotal > rule.maxChars) {
        this.#tripped.add(rule);
        (hits ??= []).push({ rule, label: 'max_chars', excerpt: null });
        continue;
      }
      holds = !final && rule.action !== 'log';
      hitRule = rule;
      for (const finder of rule.finders) {
        for (const r of readings) {
          hitStarts = r.starts;
          hitEnds = r.ends;
          hitFloor = r.floor;
          const { starts, fresh: normFresh, floor } = r;
          // A line-reading detector sees the text twice when it has line breaks (same length, same maps).
          const lined = finder.readsLineBreaks === true && r.lineBreaks.length > 0 ? (r.lined ??= linedText(r.text, r.lineBreaks)) : null;
          for (let reading = 0; reading < (lined === null ? 1 : 2); reading++) {
            const text = reading === 0 ? r.text : lined!;
            hitTextLength = text.length;
            // A finder reading strays either way matches up to twice its maxLength where they are kept.
            const doubled = r.strays && finder.readsStrays === true;
            const reach = doubled ? finder.maxLength * 2 : finder.maxLength;
            // A match that ends in fresh text starts within its reach of it: older text is only context.
            const from = reach === Infinity ? 0 : Math.max(0, normFresh - reach);
            // perf: one callback per push, reading the loop's state from the variables above (a
            // closure per finder and reading allocated ~0.9 KB per transcript delta).
            finder.find(text, onHit, from, r.strays);
            if (holds) {
              const cap = doubled ? reach : Math.min(reach, this.#window);
              let hs = finder.holdStart ? finder.holdStart(text, r.strays) : text.length - cap;
              hs = Math.max(hs, text.length - cap, normFresh);
              if (hs < text.length) {
                // A possible match is bounded in folded characters; characters the fold drops
                // (combining marks, format characters) or merges (whitespace runs) are not: "ignore
                // prev" and then endless combining marks was held whole until 2026-12-07.
                if (starts[hs]! < floor) overHold = true;
                holdFrom = Math.min(holdFrom, Math.max(starts[hs]!, floor));
              }
            }
          }
        }
      }
    }
    if (holdFrom > scanEnd) holdFrom = scanEnd;
    // A redaction straddling the release point is held whole; one of a growing unbounded match is
    // cut there instead (its released part is redacted now, the rest when it is released).
    if (spans !== null) {
      for (let changed = true; changed; ) {
        changed = false;
        for (const sp of spans as Span[]) {
          if (!sp.divisible && sp.start < holdFrom && sp.end > holdFrom) {
            holdFrom = sp.start;
            changed = true;
          }
        }
      }
      for (const sp of spans as Span[]) if (sp.divisible && sp.start < holdFrom && sp.end > holdFrom) sp.end = holdFrom;
    }
    const released = full.slice(ctxLen, holdFrom);
    this.#held = full.slice(holdFrom);
    const ctx = context + released;
    this.#context = ctx.length > this.#window ? ctx.slice(ctx.length - this.#window) : ctx;
    this.#total = newTotal;
    this.#lastWindow = full;
    this.#pushed = true;
    const mine = spans === null ? null : (spans as Span[]).filter((sp) => sp.end <= holdFrom).map((sp) => ({ ...sp, start: sp.start - ctxLen, end: sp.end - ctxLen }));
    // `overHold` only when set: results compare equal to those of a scanner without the bound.
    const over = overHold ? { overHold } : null;
    if (mine === null || mine.length === 0) return { hits: hits ?? NO_HITS, text: released, redacted: false, ...over };
    return { hits: hits ?? NO_HITS, text: applySpans(released, mergeSpans(mine)), redacted: true, ...over };
  }

  /**
   * The first original position of a normalised character that starts within the last
   * `maxHeldChars` of `full` (0 when unbounded or the text is shorter): a growing match is held
   * from there at most. Normalised starts, so a cut falls between whole characters (and whole JSON escapes).
   */
  #holdFloor(starts: Int32Array, fullLength: number): number {
    const limit = fullLength - this.#maxHeld;
    if (limit <= 0) return 0;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! < limit) lo = mid + 1;
      else hi = mid;
    }
    return lo < starts.length ? starts[lo]! : fullLength;
  }

  #replacement(rule: CompiledRule, label: string): string {
    const text = rule.replacement.replace('{type}', label);
    return this.#format === 'json' ? JSON.stringify(text).slice(1, -1) : text;
  }
}

/** A `\uD800`–`\uDBFF` escape (the high half of a surrogate pair) at the end of a JSON text. */
const HIGH_SURROGATE_ESCAPE = /\\u[dD][89abAB][0-9a-fA-F]{2}$/;

/**
 * Where a character cut off at the end of streamed `raw` starts, or `raw.length` when it ends on a
 * whole one: a high surrogate whose low half comes with the next delta (read alone it is no letter
 * and no digit, so the text before it looked settled: a card number in mathematical digits, `𝟒𝟏𝟏𝟏…`,
 * split inside its last digit released the first fifteen; found 2026-12-05), and in a JSON text an
 * escape cut off (`\u00`, json-escapes.ts) or a whole `\uD835` escape whose pair is still to come.
 * (A combining mark or other character dropped by the fold that starts the next delta needs no
 * hold: it joins the character before it, and a match ending at the end of the text is never settled.)
 * A subdivision flag under way (🏴 and up to 7 tag letters or digits: normalize.ts) is held from its
 * 🏴 too: until its CANCEL TAG comes, its tag letters read as text (a Texas flag cut after `us`, with
 * `tx` in the next delta, would settle a match of `us` in the tag reading).
 */
export function openCharStart(raw: string, format: TextFormat): number {
  let end = raw.length;
  if (format === 'json') {
    // `…\uD835\uDF` holds the whole pair: the cut escape, then the high half before it.
    end = openEscapeStart(raw);
    if (HIGH_SURROGATE_ESCAPE.test(raw.slice(Math.max(0, end - 6), end))) {
      // An escape only after an even run of backslashes (else it is `\\` and then text).
      let run = 0;
      for (let j = end - 7; j >= 0 && raw[j] === '\\'; j--) run++;
      if (run % 2 === 0) return end - 6;
    }
  }
  const last = end > 0 ? raw.charCodeAt(end - 1) : 0;
  const cut = last >= 0xd800 && last <= 0xdbff ? end - 1 : end;
  return openFlagStart(raw, cut);
}

/** Where a subdivision flag that `raw[0, end)` ends inside starts (its 🏴), else `end`. */
function openFlagStart(raw: string, end: number): number {
  let j = end;
  for (let count = 0; j >= 2 && raw.charCodeAt(j - 2) === 0xdb40; count++) {
    if (count === MAX_FLAG_TAGS || !isFlagTagLow(raw.charCodeAt(j - 1))) return end;
    j -= 2;
  }
  return blackFlagEndsAt(raw, j) ? j - 2 : end;
}

/** Sorted, and a span overlapping the previous one is covered by its replacement (the previous one grows). */
function mergeSpans(spans: Span[]): Span[] {
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Span[] = [];
  for (const sp of spans) {
    const last = out[out.length - 1];
    if (last !== undefined && sp.start < last.end) last.end = Math.max(last.end, sp.end);
    else out.push({ ...sp });
  }
  return out;
}

function applySpans(text: string, merged: readonly Span[]): string {
  let out = '';
  let pos = 0;
  for (const sp of merged) {
    out += text.slice(pos, sp.start) + sp.replacement;
    pos = sp.end;
  }
  return out + text.slice(pos);
}

/**
 * Evaluates a complete text: one pass when it fits `maxInputChars`, else chunks of that size
 * through the sliding window (so no regex ever runs on more than `maxInputChars + window`).
 * Synchronous: for texts no longer than `maxInputChars` (one window); longer ones go through
 * `scanTextSliced`, which yields the event loop between windows.
 */
export function scanText(rules: readonly CompiledRule[], text: string, windowChars: number, maxInputChars: number, seed = '', format: TextFormat = 'text'): ScanResult {
  const scanner = new TextScanner(rules, windowChars, seed, format);
  if (text.length <= maxInputChars) return scanner.push(text, true);
  const hits: RuleHit[] = [];
  let out = '';
  let redacted = false;
  for (let i = 0; i < text.length; i += maxInputChars) {
    const r = scanner.push(text.slice(i, i + maxInputChars), i + maxInputChars >= text.length);
    hits.push(...r.hits);
    out += r.text;
    redacted ||= r.redacted;
  }
  return { hits, text: out, redacted };
}

/** Longest run of scanning windows one macrotask does before it yields the event loop (ms). */
export const SCAN_SLICE_MS = 4;
/**
 * Scanning time one event may take in all (its texts, their rescans), summed over its slices as
 * the process's CPU time (so a host busy with other processes does not make it run out sooner):
 * past it the rest is not scanned and the event gets the policy's `overScanLimit` (rule
 * `scan_limit`, label `scan_time`).
 */
export const SCAN_BUDGET_MS = 2_000;

/** The process's CPU time so far, in ms (user and system, every thread: GC helpers count too). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * The scanning time of one event, shared by its texts: `limitMs` of CPU in all, run in slices of
 * `sliceMs` (wall time) with the event loop yielded (`setImmediate`) between them, so other
 * sessions' frames and timers run while a long text is scanned window by window.
 */
export class ScanBudget {
  spentMs = 0;
  exhausted = false;
  #sliceStart = performance.now();
  #cpuStart = cpuMs();

  constructor(
    readonly limitMs = SCAN_BUDGET_MS,
    readonly sliceMs = SCAN_SLICE_MS,
  ) {}

  /**
   * Call before a window: true at once while the slice lasts, else a Promise of true after one
   * yield (`setImmediate`); false once the budget is spent. One scan at a time may use a budget
   * (concurrent ones would each queue a yield, and Node runs every queued one in one pass).
   */
  next(): boolean | Promise<boolean> {
    if (this.exhausted) return false;
    if (performance.now() - this.#sliceStart < this.sliceMs) return true;
    this.spentMs += cpuMs() - this.#cpuStart;
    if (this.spentMs >= this.limitMs) {
      this.exhausted = true;
      return false;
    }
    return new Promise<boolean>((resolve) =>
      setImmediate(() => {
        this.#sliceStart = performance.now();
        this.#cpuStart = cpuMs();
        resolve(true);
      }),
    );
  }
}

/**
 * `scanText` for a text longer than one window, window by window across macrotasks: each task
 * runs windows for at most `budget.sliceMs` (plus the window it is in), so a screened pattern's
 * quadratic cost is paid per window (`maxInputChars + 2 × window` characters), never per text.
 * Same result as `scanText`; null when the budget ran out first (the rest was not scanned).
 */
export async function scanTextSliced(
  rules: readonly CompiledRule[],
  text: string,
  windowChars: number,
  maxInputChars: number,
  budget: ScanBudget,
  seed = '',
  format: TextFormat = 'text',
): Promise<ScanResult | null> {
  const scanner = new TextScanner(rules, windowChars, seed, format);
  const hits: RuleHit[] = [];
  let out = '';
  let redacted = false;
  for (let i = 0; i < text.length || i === 0; i += maxInputChars) {
    const go = budget.next();
    if (!(go === true || (go !== false && (await go)))) return null;
    const r = scanner.push(text.slice(i, i + maxInputChars), i + maxInputChars >= text.length);
    hits.push(...r.hits);
    out += r.text;
    redacted ||= r.redacted;
  }
  return { hits, text: out, redacted };
}
