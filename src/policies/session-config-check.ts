import type { GuardrailEvent } from './api.js';
import type { JsonObject } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import type { CompiledPolicy } from './compile.js';
import { eventTexts, malformedError, type ContentText } from './content-paths.js';
import { runCustom, type CustomSessionInfo } from './custom.js';
import { UNKNOWN_CONTENT_RULE, Evaluation, strongestOf, stops, rulesFor, budgetFor, scanFinal, scanFinalSliced, type Finding } from './guardrail-scans.js';

/**
 * The guardrail decision a session config meets outside a WebSocket (a client secret minted, a
 * WebRTC or SIP call created): the texts a `session.update` carries (instructions, prompt
 * variables, tools, the input transcription's prompt and keywords) through the same rules and the
 * policy's custom guardrails, as in `#clientTexts`; a member of another shape is refused
 * (`invalid_request`, HTTP 400), whatever the policy. Every custom guardrail is waited for, `parallel` ones too (bounded by its
 * `timeoutMs`): a config has no session a late verdict could still reach. Redactions are applied
 * to `session` in place. `info.sessionId` is empty: no session exists yet.
 */
export async function checkSessionConfig(policy: CompiledPolicy, session: JsonObject, info: CustomSessionInfo): Promise<{ findings: readonly Finding[]; refusal: ProxyError | null }> {
  const ev: JsonObject = { session };
  const findings: Finding[] = [];
  // In the texts' order (the first of the strongest findings names the refusal).
  const evaluations: ({ t: ContentText; e: Evaluation; customsDone: Promise<void> | null } | Finding)[] = [];
  const texts = eventTexts('session.update', ev);
  // A member the table cannot read is refused whatever the policy, as a WebSocket session.update is
  // (there `invalid_event`): HTTP 400 `invalid_request`, the member's path as `param`, `details.reason`
  // `invalid_type`. Until 2026-12-06 it was unknown content here: let through unless the policy blocked that.
  const malformed = malformedError(texts, null, 'invalid_request');
  if (malformed) return { findings, refusal: malformed };
  // Longer than one window in all: scanned window by window across macrotasks, within one budget (as on a WebSocket).
  const budget = budgetFor(policy, 'session.update', texts);
  for (const t of texts) {
    if (t.unknownContent !== undefined) {
      if (policy.unknownContentEvents === 'block') evaluations.push({ id: UNKNOWN_CONTENT_RULE, action: 'block', label: t.unknownContent, excerpt: null });
      continue;
    }
    const customs = policy.customBySource.get(t.source) ?? [];
    // A text no rule and no custom guardrail looks at is neither scanned nor limited.
    if (rulesFor(policy, t.source, 'session.update').length === 0 && customs.length === 0) continue;
    const e = budget === null ? scanFinal(policy, t.source, 'session.update', t.text, null, null) : await scanFinalSliced(policy, budget, t.source, 'session.update', t.text, null, null);
    // Over the scan limit custom code does not run (the scan_limit finding decides), as on a WebSocket.
    const event: GuardrailEvent = { source: t.source, eventType: 'session.update', text: t.text, delta: null, final: true, responseId: null, itemId: null, functionName: t.functionName };
    const run = customs.length > 0 && t.text.length <= policy.maxScanChars;
    // Every text's guardrails at once, as a session.update's are: the wait is the slowest one's, not their sum.
    const customsDone = run ? Promise.all(customs.map((c) => runCustom(c, event, info, new Map()))).then((verdicts) => verdicts.forEach((v, i) => e.addCustom(customs[i]!, v))) : null;
    evaluations.push({ t, e, customsDone });
  }
  for (const entry of evaluations) {
    if (!('t' in entry)) {
      findings.push(entry);
      continue;
    }
    const { t, e, customsDone } = entry;
    if (customsDone) await customsDone;
    findings.push(...e.findings);
    // Unchanged when nothing was redacted.
    t.set(ev, e.text);
  }
  const stop = findings.find((f) => stops(f.action) && f.action === strongestOf(findings));
  const refusal = stop
    ? new ProxyError('guardrail_blocked', { message: `The session config was refused by guardrail rule "${stop.id}" (policy ${policy.name}).`, param: 'session', close: null, details: { policy: policy.name, rule: stop.id } })
    : null;
  return { findings, refusal };
}
