import { piiFinder, TextScanner, type Action, type CompiledRule, type SpanFinder, type TextFormat } from '../../src/policies/matchers.js';
import { BUILTIN_PII } from '../../src/policies/pii.js';

/** A rule on output text with `finders`, redacting as `[{type}]` unless `action` says otherwise. */
export function outputRule(id: string, finders: SpanFinder[], action: Action = 'redact'): CompiledRule {
  return { id, sources: new Set(['output']), events: null, action, finders, maxChars: null, functionName: null, replacement: '[{type}]', logMatches: false };
}

/** The finder of the built-in PII detector `name` (pii.ts). */
export const builtinPii = (name: string): SpanFinder => piiFinder(BUILTIN_PII.find((d) => d.name === name)!);

/** The text released by a scanner (window 256) fed `deltas` (the last push final), and the rules it tripped. */
export function streamThrough(rules: readonly CompiledRule[], deltas: readonly string[], format: TextFormat = 'text'): { text: string; tripped: string[] } {
  const s = new TextScanner(rules, 256, '', format);
  let text = '';
  const tripped: string[] = [];
  deltas.forEach((d, k) => {
    const r = s.push(d, k === deltas.length - 1);
    text += r.text;
    tripped.push(...r.hits.map((h) => h.rule.id));
  });
  return { text, tripped };
}
