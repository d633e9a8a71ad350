import { describe, expect, it } from 'vitest';
import { LoggedSession } from '../support/fake-session.js';
import { entryOf, policyFrom, wire } from '../policies/support.js';
import type { Verdict } from '../../src/pipeline/filter.js';
import { GuardrailFilter } from '../../src/policies/guardrails.js';

/**
 * One finding, one report. A text the client wrote is judged under two sources: its own (an
 * assistant message's text is `output`, a function call's arguments `tool_call`) and `input` (who
 * typed it decides: content-paths.ts `itemTexts`). A rule listing both sources matched it twice and
 * was reported twice: two `guardrail` reports (two `rtproxy.guardrail` metric increments, two trips
 * in the session summary) and two "guardrail tripped" log lines for one finding. Found 2026-12-05.
 */

type Json = Record<string, unknown>;

async function judge(yaml: string, item: Json): Promise<{ verdict: Verdict; session: LoggedSession; filter: GuardrailFilter }> {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(yaml)));
  const verdict = (await session.fromClient(filter, wire({ type: 'conversation.item.create', event_id: 'evt_c1', item }))) as Verdict;
  return { verdict, session, filter };
}

const rulesOf = (s: LoggedSession) => s.reports.flatMap((r) => (r.kind === 'guardrail' ? [`${r.ruleId}:${r.action}:${r.source}`] : []));
const tripLines = (s: LoggedSession) => s.lines.filter((l) => l['msg'] === 'guardrail tripped').map((l) => String(l['rule']));
const assistantText = (text: string): Json => ({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text }] });

describe('a client-written text judged as two sources is reported once per rule', () => {
  for (const action of ['log', 'redact', 'block'] as const) {
    it(`an assistant message a rule on [input, output] matches (${action}): one report, one log line, one trip`, async () => {
      const yaml = `guardrails:\n  rules: [{ id: wire, sources: [input, output], match: { phrases: [wire the money] }, action: ${action} }]\n`;
      const { verdict, session, filter } = await judge(yaml, assistantText('Please wire the money today.'));
      expect(verdict.kind).toBe(action === 'block' ? 'reject' : action === 'redact' ? 'replace' : 'continue');
      expect(rulesOf(session)).toHaveLength(1);
      expect(rulesOf(session)[0]).toMatch(new RegExp(`^wire:${action}:(input|output)$`));
      expect(tripLines(session)).toEqual(['wire']);
      expect(filter.summary()['guardrailTrips']).toBe(1);
    });
  }

  it("a function call's arguments a rule on [input, tool_call] matches: one report", async () => {
    const yaml = 'guardrails:\n  rules: [{ id: acct, sources: [input, tool_call], match: { phrases: [account 1234] }, action: log }]\n';
    const { session } = await judge(yaml, { type: 'function_call', call_id: 'call_1', name: 'pay', arguments: '{"to":"account 1234"}' });
    expect(rulesOf(session)).toHaveLength(1);
    expect(tripLines(session)).toEqual(['acct']);
  });

  it('two rules, one per source, on the same text: each reported once (the dedupe is per rule, not per text)', async () => {
    const yaml = [
      'guardrails:',
      '  rules:',
      '    - { id: typed, sources: [input], match: { phrases: [wire the money] }, action: log }',
      '    - { id: spoken, sources: [output], match: { phrases: [wire the money] }, action: log }',
      '',
    ].join('\n');
    const { session } = await judge(yaml, assistantText('Please wire the money today.'));
    // Each under the source it matched in (until 2026-12-05 every finding of a client event took the first one's).
    expect(rulesOf(session).sort()).toEqual(['spoken:log:output', 'typed:log:input']);
    expect(tripLines(session).sort()).toEqual(['spoken', 'typed']);
  });
});
