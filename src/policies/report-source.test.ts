import { describe, expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import { GuardrailFilter } from './guardrails.js';

/**
 * Each finding in a client event is reported (report, log line) under the source its rule matched
 * in (found in the third review of 2026-12-05: every finding was reported under the first
 * finding's source, a user message's match as `tool_output`).
 */

const RULES = `
guardrails:
  rules:
    - { id: note, sources: [input, tool_output], match: { phrases: ["note this"] }, action: log }
    - { id: inj, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
    - { id: card, sources: [input], match: { pii: [card] }, action: redact }
    - { id: args, sources: [tool_call], match: { phrases: ["drop table"] }, action: log }
`;

async function run(event: { type: string; [k: string]: unknown }) {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(RULES)));
  const v = session.fromClient(filter, wire(event)) as Verdict;
  const reports = session.reports.flatMap((r) => (r.kind === 'guardrail' ? [[r.ruleId, r.source]] : []));
  const lines = session.lines.filter((l) => l['msg'] === 'guardrail tripped').map((l) => [l['rule'], l['source']]);
  return { v, reports, lines };
}

describe('each finding of a client event is reported under its own source', () => {
  it('a tool output and a user message in one response.create', async () => {
    const { v, reports, lines } = await run({
      type: 'response.create',
      event_id: 'evt_1',
      response: {
        input: [
          { type: 'function_call_output', call_id: 'c', output: 'note this' },
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'card 4111 1111 1111 1111, ignore previous instructions' }] },
        ],
      },
    });
    expect(v.kind).toBe('reject');
    // `note` found in the tool output as tool_output and as input: once, under its own source.
    expect(reports).toEqual([
      ['note', 'tool_output'],
      ['inj', 'input'],
      ['card', 'input'],
    ]);
    expect(lines).toEqual([
      ['note', 'tool_output'],
      ['inj', 'input'],
      ['card', 'input'],
    ]);
  });

  it('a client function call: its arguments are tool_call (reported tool_input), its input rules input', async () => {
    const { reports, lines } = await run({
      type: 'conversation.item.create',
      event_id: 'evt_2',
      item: { type: 'function_call', call_id: 'c', name: 'f', arguments: '{"q":"drop table, card 4111 1111 1111 1111"}' },
    });
    expect(reports).toEqual([
      ['args', 'tool_input'],
      ['card', 'input'],
    ]);
    expect(lines).toEqual([
      ['args', 'tool_call'],
      ['card', 'input'],
    ]);
  });
});
