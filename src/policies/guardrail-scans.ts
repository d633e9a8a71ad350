import type { JsonObject } from '../pipeline/frame.js';
import type { CompiledCustom, CompiledPolicy } from './compile.js';
import type { CustomVerdict } from './custom.js';
import { ACTION_RANK, ScanBudget, scanText, scanTextSliced, TextScanner, type Action, type CompiledRule, type RuleHit, type ScanResult, type Source, type TextFormat } from './matchers.js';

/**
 * How the guardrail filter scans a text: the rules that apply to a source and event, a complete text's
 * scan (at once, or window by window within an event's budget), rescans after a redaction, matches
 * across two texts, and what they found (Evaluation). Moved from guardrails.ts unchanged.
 */

/** The rule id reported for texts over the policy's `maxScanChars`. */
export const SCAN_LIMIT_RULE = 'scan_limit';
/** The rule id of a refusal by `unknownContentEvents: block`. */
export const UNKNOWN_CONTENT_RULE = 'unknown-content-event';

/** One rule or custom guardrail that tripped on an event. */
export interface Finding {
  readonly id: string;
  readonly action: Action;
  readonly label: string;
  readonly excerpt: string | null;
}

/** What the rules and custom guardrails found in one text. */
export class Evaluation {
  readonly findings: Finding[] = [];
  text: string;
  redacted = false;
  /** A custom guardrail replaced the text (the rules scanned the text before it). */
  customRedacted = false;

  constructor(text: string) {
    this.text = text;
  }

  get strongest(): Action | null {
    return strongestOf(this.findings);
  }

  addHits(hits: readonly { rule: CompiledRule; label: string; excerpt: string | null }[]): void {
    for (const h of hits) this.findings.push({ id: h.rule.id, action: h.rule.action, label: h.label, excerpt: h.excerpt });
  }

  /** The scan did not finish within the event's budget (once per text). */
  addScanTime(policy: CompiledPolicy): void {
    if (!this.findings.some((f) => f.id === SCAN_LIMIT_RULE)) this.findings.push(scanLimitFinding(policy, 'scan_time'));
  }

  /**
   * The rules' findings of a scan that finished after the custom guardrails answered: they come
   * first, as when the scan runs at once; a custom redaction's text stays (it replaced the text the rules redacted).
   */
  mergeScan(scan: Evaluation): void {
    this.findings.unshift(...scan.findings);
    if (!this.customRedacted) this.text = scan.text;
    this.redacted ||= scan.redacted;
  }

  addCustom(c: CompiledCustom, v: CustomVerdict): void {
    if (v.action === 'allow') return;
    if (v.action === 'redact') {
      this.text = v.text;
      this.redacted = true;
      this.customRedacted = true;
    }
    this.findings.push({ id: c.id, action: v.action, label: `custom:${v.via}`, excerpt: null });
  }
}

export function strongestOf(findings: readonly Finding[]): Action | null {
  let best: Action | null = null;
  for (const f of findings) if (best === null || ACTION_RANK[f.action] > ACTION_RANK[best]) best = f.action;
  return best;
}

const stops = (a: Action | null): boolean => a !== null && ACTION_RANK[a] >= ACTION_RANK.block;

/** A text being streamed (a content part, an input transcript, function or MCP arguments). */
export interface Stream {
  readonly source: Source;
  readonly policy: CompiledPolicy;
  readonly scanner: TextScanner;
  /** The context its scanner started with (the earlier text of its source): its complete text is judged with it too. */
  readonly seed: string;
  readonly customs: readonly CompiledCustom[];
  readonly responseId: string | null;
  readonly itemId: string;
  readonly deltaType: string;
  /** Ids copied onto a flushed delta. */
  readonly ids: JsonObject;
  /** `#withdrawals` when it started: its scanner's context may have lost a text since. */
  readonly withdrawals: number;
  tripped: boolean;
  /** A growing match passed the scanner's hold bound (reported once, as `scan_limit` / `hold_limit`). */
  overHeld: boolean;
  /** Its deltas were redacted (with `seed`): it is never dropped for room (#settledStream); ended without a `.done`, its context is kept (#keptSeeds) if it changed what its text shows (#seedChanged). */
  redacted: boolean;
  /** Whether the end of what its scanner saw last (its context: seed and own text) could begin a match; learnt when room is needed, forgotten at its next delta. */
  contextOpen: boolean | null;
}

/**
 * Whether the end of `text` could begin (or be part of) a match of a rule that acts, so text after it
 * may be judged differently with it than without (a stream holds that end back).
 */
export function endsOpen(policy: CompiledPolicy, source: Source, eventType: string, text: string): boolean {
  const rules = rulesFor(policy, source, eventType);
  if (rules.length === 0) return false;
  const scanner = new TextScanner(rules, policy.windowChars, '', formatOf(source), streamHoldChars(policy));
  scanner.push(text);
  return scanner.held !== '';
}

/** What a stream's decision needs (a .done without deltas decides for a stream that never started). */
export type StreamOwner = Pick<Stream, 'source' | 'policy' | 'responseId' | 'itemId' | 'tripped'>;

const ruleCache = new WeakMap<CompiledPolicy, Map<string, readonly CompiledRule[]>>();

/** The policy's rules for a source, limited to those that apply to `eventType`. Cached per policy. */
export function rulesFor(policy: CompiledPolicy, source: Source, eventType: string): readonly CompiledRule[] {
  let byKey = ruleCache.get(policy);
  if (!byKey) ruleCache.set(policy, (byKey = new Map()));
  const key = `${source}\u0000${eventType}`;
  let rules = byKey.get(key);
  if (!rules) {
    // `a|b`: the rules of either event type (an item a call's browser wrote: the create it was, shown as an item event).
    const types = eventType.split('|');
    rules = (policy.rulesBySource.get(source) ?? []).filter((r) => r.events === null || types.some((type) => r.events!.has(type)));
    byKey.set(key, rules);
  }
  return rules;
}

export const hasSource = (policy: CompiledPolicy, source: Source): boolean => policy.rulesBySource.has(source) || policy.customBySource.has(source);
export const idle = (policy: CompiledPolicy): boolean => policy.rules.length === 0 && policy.custom.length === 0;

/** Tool arguments and outputs are JSON: matched as the tool reads them, escapes decoded. */
const formatOf = (source: Source): TextFormat => (source === 'tool_call' || source === 'tool_output' ? 'json' : 'text');

/** One scan a generator below asks its driver for (`scanText`'s arguments; the policy gives window and chunk sizes). */
interface ScanAsk {
  readonly rules: readonly CompiledRule[];
  readonly text: string;
  readonly seed: string;
  readonly format: TextFormat;
}
/** A scan's answer: null when the event's scanning budget ran out before it (sliced driver only). */
export type ScanSteps<T> = Generator<ScanAsk, T, ScanResult | null>;

/** Runs a scan generator at once (texts of an event no longer than one window in all). */
export function runNow<T>(policy: CompiledPolicy, g: ScanSteps<T>): T {
  for (let r = g.next(); ; ) {
    if (r.done) return r.value;
    const q = r.value;
    r = g.next(scanText(q.rules, q.text, policy.windowChars, policy.maxInputChars, q.seed, q.format));
  }
}

/** Runs a scan generator window by window across macrotasks, within the event's budget. */
export async function runSliced<T>(policy: CompiledPolicy, budget: ScanBudget, g: ScanSteps<T>): Promise<T> {
  for (let r = g.next(); ; ) {
    if (r.done) return r.value;
    const q = r.value;
    r = g.next(budget.exhausted ? null : await scanTextSliced(q.rules, q.text, policy.windowChars, policy.maxInputChars, budget, q.seed, q.format));
  }
}

/**
 * The scanning budget of an event whose texts (those some rule reads) are longer than one window in
 * all, else null (scanned at once, as one window costs). Each text of an event with a budget is
 * scanned in slices, however short: a thousand short parts cost what one long text does.
 */
export function budgetFor(policy: CompiledPolicy, eventType: string, texts: readonly { source: Source; text: string; unknownContent?: string }[]): ScanBudget | null {
  let total = 0;
  for (const t of texts) {
    if (t.unknownContent !== undefined || t.text.length > policy.maxScanChars || rulesFor(policy, t.source, eventType).length === 0) continue;
    total += t.text.length;
    if (total > policy.maxInputChars) return new ScanBudget();
  }
  return null;
}

/**
 * The most streamed text a match still under way is held back for: the window, or `maxInputChars`
 * if larger (the text one scan of a complete text runs on), so a delta's scan stays within
 * window + that + the delta. Only a match of an unbounded pattern (`\d+`, `secret.*`) grows past it.
 */
export const streamHoldChars = (policy: CompiledPolicy): number => Math.max(policy.windowChars, policy.maxInputChars);

/**
 * The finding of a text the scan limits stop, decided by the policy's `overScanLimit` (`block`
 * stops it; `pass_unscanned` logs it): `scan_limit`, a complete text longer than `maxScanChars`;
 * `scan_time`, a scan that did not finish within the event's budget; `hold_limit`, a stream whose
 * match under way grew past `streamHoldChars` (released in pieces, each redacted by a redact rule
 * while its start is in the window).
 */
export const scanLimitFinding = (policy: CompiledPolicy, label: 'scan_limit' | 'scan_time' | 'hold_limit'): Finding => ({
  id: SCAN_LIMIT_RULE,
  action: policy.overScanLimit === 'block' ? 'block' : 'log',
  label,
  excerpt: null,
});

/** Full-text scan of a complete text; with `stream`, rules the stream already reported are not reported again. */
export function scanFinal(policy: CompiledPolicy, source: Source, eventType: string, text: string, stream: Stream | null, functionName: string | null, seed = '', format = formatOf(source)): Evaluation {
  return runNow(policy, scanFinalSteps(policy, source, eventType, text, stream, functionName, seed, format));
}

/** `scanFinal` within an event's budget (see `budgetFor`): a scan cut short gets `scan_time` (scanLimitFinding). */
export function scanFinalSliced(policy: CompiledPolicy, budget: ScanBudget, source: Source, eventType: string, text: string, stream: Stream | null, functionName: string | null, seed = '', format = formatOf(source)): Promise<Evaluation> {
  return runSliced(policy, budget, scanFinalSteps(policy, source, eventType, text, stream, functionName, seed, format));
}

export function* scanFinalSteps(policy: CompiledPolicy, source: Source, eventType: string, text: string, stream: Stream | null, functionName: string | null, seed: string, format: TextFormat): ScanSteps<Evaluation> {
  const rules = rulesFor(policy, source, eventType);
  const e = new Evaluation(text);
  if (text.length > policy.maxScanChars && (rules.length > 0 || (policy.customBySource.get(source)?.length ?? 0) > 0)) {
    // One event may not hold the event loop (and every other tenant) for a scan of unbounded length.
    e.findings.push(scanLimitFinding(policy, 'scan_limit'));
    return e;
  }
  if (rules.length === 0) return e;
  const r = yield { rules, text, seed, format };
  if (r === null) {
    e.findings.push(scanLimitFinding(policy, 'scan_time'));
    return e;
  }
  e.text = r.text;
  e.redacted = r.redacted;
  let hits = r.hits;
  if (r.redacted) {
    const more = yield* rescanSteps(policy, rules, e, (id) => r.hits.some((h) => h.rule.id === id), seed, format);
    if (more === null) {
      e.addHits(hits);
      e.findings.push(scanLimitFinding(policy, 'scan_time'));
      return e;
    }
    hits = [...hits, ...more];
  }
  const fresh = stream ? hits.filter((h) => !stream.scanner.hasTripped(h.rule)) : hits;
  e.addHits(fresh);
  if (functionName !== null) {
    for (const rule of rules) {
      if (rule.functionName && rule.functionName(functionName) && !fresh.some((h) => h.rule === rule) && !stream?.scanner.hasTripped(rule)) {
        e.findings.push({ id: rule.id, action: rule.action, label: 'function', excerpt: rule.logMatches ? functionName : null });
      }
    }
  }
  return e;
}

/** Rescans of a redacted text at most (a replacement may make another rule's match, and so on). */
const MAX_RESCANS = 4;

/**
 * Every rule scanned the original text, so a replacement can join the words around it into a
 * match ("wire the jane@example.com money" → "wire the *** money"). The redacted text is scanned
 * again while a rescan still redacts (at most MAX_RESCANS times: a replacement can make another
 * rule's match, "aaa" → "bbb" → "ccc"; until 2026-12-05 one rescan, and a block rule's match made
 * by the second redaction went upstream): the hits of rules not hit before are returned (labelled
 * `after_redaction`), and each further redaction is applied to `e.text`. A policy whose
 * replacements still change the text after that is a loop of its own making: the last text goes on.
 * As steps (see `runNow`, `runSliced`): null when the event's budget ran out (the rescans did not finish).
 */
export function* rescanSteps(policy: CompiledPolicy, rules: readonly CompiledRule[], e: Evaluation, hitBefore: (ruleId: string) => boolean, seed: string, format: TextFormat, label = 'after_redaction'): ScanSteps<RuleHit[] | null> {
  const found: RuleHit[] = [];
  for (let pass = 0; pass < MAX_RESCANS && rules.length > 0 && e.text.length <= policy.maxScanChars; pass++) {
    const again = yield { rules, text: e.text, seed, format };
    if (again === null) return null;
    for (const h of again.hits) if (!hitBefore(h.rule.id) && !found.some((f) => f.rule === h.rule)) found.push({ ...h, label: `${h.label}:${label}` });
    if (!again.redacted || again.text === e.text) break;
    e.text = again.text;
  }
  return found;
}

/**
 * Matches that span `seed` (the end of another text) and `text`: rules stronger than `redact`
 * that `text` does not trip alone.
 */
export function crossHits(policy: CompiledPolicy, source: Source, eventType: string, seed: string, text: string, label: string, format = formatOf(source)): RuleHit[] {
  return runNow(policy, crossSteps(policy, source, eventType, seed, text, label, format))!;
}

/** `crossHits` as steps: null when the budget ran out. */
export function* crossSteps(policy: CompiledPolicy, source: Source, eventType: string, seed: string, text: string, label: string, format = formatOf(source)): ScanSteps<RuleHit[] | null> {
  const rules = rulesFor(policy, source, eventType).filter((r) => stops(r.action));
  if (rules.length === 0 || text.length > policy.maxScanChars) return [];
  const joined = yield { rules, text, seed, format };
  if (joined === null) return null;
  if (joined.hits.length === 0) return [];
  const alone = yield { rules, text, seed: '', format };
  if (alone === null) return null;
  return joined.hits.filter((h) => !alone.hits.some((a) => a.rule === h.rule)).map((h) => ({ ...h, label: `${h.label}:${label}` }));
}

// Exported here, not at their declarations: test/mutation/equivalent.json matches those lines as written.
export { formatOf, stops };
