import type { PiiDetector } from './pii.js';

/** Where a text comes from (the policy file's `sources`). */
export type Source = 'input' | 'output' | 'tool_call' | 'tool_output' | 'image';
export const SOURCES: readonly Source[] = ['input', 'output', 'tool_call', 'tool_output', 'image'];

export type Action = 'log' | 'redact' | 'block' | 'cancel_response' | 'end_session';
/** Severity order: the strongest action of the rules that trip on one event wins. */
export const ACTION_RANK: Readonly<Record<Action, number>> = { log: 0, redact: 1, block: 2, cancel_response: 3, end_session: 4 };

/** Finds spans in a text. `find` must be linear-ish in the text (screened patterns, bounded input). */
export interface SpanFinder {
  readonly label: string;
  /** Longest span it can match (Infinity when unknown: the streaming window bounds it). */
  readonly maxLength: number;
  /** Reports matches starting at or after `from` (earlier text is still visible to lookbehinds). */
  find(text: string, onHit: (start: number, end: number, label: string) => void, from?: number): void;
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

/** Longest whitespace run matched between the words of a phrase. */
const MAX_GAP = 8;

/**
 * Phrases as one case-insensitive alternation of literals; whitespace inside a phrase matches a
 * whitespace run (up to 8). Whole-word matching uses single-character lookarounds (linear).
 */
export function phraseFinder(phrases: readonly string[], wholeWords: boolean): SpanFinder {
  const words = [...new Set(phrases.map((p) => p.trim()).filter((p) => p.length > 0))]
    .sort((a, b) => b.length - a.length)
    .map((p) => p.split(/\s+/));
  const body = `(?:${words.map((w) => w.map(escapeRegex).join(`\\s{1,${MAX_GAP}}`)).join('|')})`;
  const source = wholeWords ? `(?<![\\p{L}\\p{N}_])${body}(?![\\p{L}\\p{N}_])` : body;
  const re = new RegExp(source, 'giu');
  const maxLength = Math.max(...words.map((w) => w.join('').length + MAX_GAP * (w.length - 1))) * 2;
  return regexFinder(re, 'phrase', maxLength);
}

/** A finder over a global regex; empty matches are skipped. An optional validator confirms / trims. */
export function regexFinder(
  re: RegExp,
  label: string,
  maxLength: number,
  validate?: (candidate: string) => number,
  prefilter?: (text: string, from: number) => boolean,
): SpanFinder {
  const pattern = re.global ? re : new RegExp(re.source, re.flags + 'g');
  return {
    label,
    maxLength,
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
      }
    },
  };
}

export function piiFinder(d: PiiDetector): SpanFinder {
  return regexFinder(d.pattern, d.name, d.maxLength, d.validate, d.prefilter);
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
}

const NO_HITS: readonly RuleHit[] = Object.freeze([]);

interface Span {
  start: number;
  end: number;
  replacement: string;
}

/**
 * Scans one growing text (a transcript being streamed, or a whole text pushed at once) with a
 * sliding window: each push scans `tail + delta`, where `tail` is the last `windowChars`
 * characters already seen, so a phrase split across deltas still matches while no delta rescans
 * the whole transcript.
 *
 * A match that touches the end of the text so far is not reported until more text (or the end)
 * arrives, because a whole-word boundary or a longer number may still follow. Redaction is eager:
 * every match overlapping the pushed delta is rewritten, settled or not (privacy over precision).
 * Matches longer than the window can be missed while streaming; callers rescan final texts.
 */
export class TextScanner {
  readonly #rules: readonly CompiledRule[];
  readonly #window: number;
  readonly #tripped = new Set<CompiledRule>();
  #tail = '';
  #lastWindow = '';
  #total = 0;
  /** Absolute end offset up to which matches have been settled. */
  #settled = -1;

  constructor(rules: readonly CompiledRule[], windowChars: number) {
    this.#rules = rules;
    this.#window = windowChars;
  }

  get total(): number {
    return this.#total;
  }

  /** The text scanned by the last push (earlier context, then the pushed delta). */
  get recent(): string {
    return this.#lastWindow;
  }

  hasTripped(rule: CompiledRule): boolean {
    return this.#tripped.has(rule);
  }

  push(delta: string, final = false): ScanResult {
    const tail = this.#tail;
    const window = tail.length === 0 ? delta : tail + delta;
    const base = this.#total - tail.length;
    const deltaStart = tail.length;
    const newTotal = this.#total + delta.length;
    let hits: RuleHit[] | null = null;
    let spans: Span[] | null = null;
    for (const rule of this.#rules) {
      const tripped = this.#tripped.has(rule);
      if (tripped && rule.action !== 'redact') continue;
      if (rule.maxChars !== null && !tripped && newTotal > rule.maxChars) {
        this.#tripped.add(rule);
        (hits ??= []).push({ rule, label: 'max_chars', excerpt: null });
        continue;
      }
      for (const finder of rule.finders) {
        // A match that ends in the new text (or was deferred at the old end) starts within
        // maxLength of it: older text is only context.
        const from = finder.maxLength === Infinity ? 0 : Math.max(0, deltaStart - finder.maxLength);
        finder.find(window, (s, e, label) => {
          if (rule.action === 'redact' && e > deltaStart) {
            (spans ??= []).push({ start: Math.max(s, deltaStart) - deltaStart, end: e - deltaStart, replacement: rule.replacement.replace('{type}', label) });
          }
          if (this.#tripped.has(rule)) return;
          if (base + e > this.#settled && (final || e < window.length)) {
            this.#tripped.add(rule);
            (hits ??= []).push({ rule, label, excerpt: rule.logMatches ? window.slice(s, Math.min(e, s + 80)) : null });
          }
        }, from);
      }
    }
    this.#total = newTotal;
    this.#lastWindow = window;
    this.#settled = final ? newTotal : newTotal - 1;
    this.#tail = window.length > this.#window ? window.slice(window.length - this.#window) : window;
    if (spans === null) return { hits: hits ?? NO_HITS, text: delta, redacted: false };
    return { hits: hits ?? NO_HITS, text: applySpans(delta, spans), redacted: true };
  }
}

function applySpans(text: string, spans: Span[]): string {
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  let out = '';
  let pos = 0;
  for (const sp of spans) {
    if (sp.start < pos) {
      // Overlaps the previous span: covered by its replacement.
      pos = Math.max(pos, sp.end);
      continue;
    }
    out += text.slice(pos, sp.start) + sp.replacement;
    pos = sp.end;
  }
  return out + text.slice(pos);
}

/**
 * Evaluates a complete text: one pass when it fits `maxInputChars`, else chunks of that size
 * through the sliding window (so no regex ever runs on more than `maxInputChars + window`).
 */
export function scanText(rules: readonly CompiledRule[], text: string, windowChars: number, maxInputChars: number): ScanResult {
  const scanner = new TextScanner(rules, windowChars);
  if (text.length <= maxInputChars) return scanner.push(text, true);
  const hits: RuleHit[] = [];
  let out = '';
  let redacted = false;
  for (let i = 0; i < text.length; i += maxInputChars) {
    const chunk = text.slice(i, i + maxInputChars);
    const r = scanner.push(chunk, i + maxInputChars >= text.length);
    hits.push(...r.hits);
    out += r.text;
    redacted ||= r.redacted;
  }
  return { hits, text: out, redacted };
}
