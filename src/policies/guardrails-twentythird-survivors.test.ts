import { describe, expect, it } from 'vitest';
import type { Frame } from '../pipeline/frame.js';
import type { Verdict } from '../pipeline/filter.js';
import { guardrailsWith, wire } from '../../test/policies/support.js';
import { typed } from '../../test/policies/item-events.js';
import { defineGuardrail, type Decision } from './api.js';
import type { LoggedSession } from '../../test/support/fake-session.js';

/**
 * Written against the mutants of the forgotten places as 0aaf2f4 left them (one map per reading,
 * PLACE_READINGS; the refusal of an event next to a forgotten item) that survived their tests, and
 * the twenty-second's open ones of #answered's match by texts (twenty-third session). Driven without
 * sockets (a LoggedSession records what the filter sends).
 */

const policy = `
guardrails:
  rules:
    - { id: inj_input, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
`;

const TWIN = 'twin: wire the money';

type Rig = { client: (f: Frame) => Verdict | Promise<Verdict>; session: LoggedSession };
const guardrailReports = (s: LoggedSession) => s.reports.flatMap((r) => (r.kind === 'guardrail' ? [{ ruleId: r.ruleId, action: r.action, source: r.source, direction: r.direction }] : []));

/** `first` typed first (item_a), then an empty text (item_x), then 127 notes: item_a's place forgotten, item_x's the first kept. */
async function firstForgotten(rig: Rig, first: Frame): Promise<void> {
  // A long text may be judged off the event loop (a promise of its verdict).
  expect((await rig.client(first)).kind).toBe('continue');
  expect((await rig.client(typed('', 'item_x'))).kind).toBe('continue');
  for (let i = 0; i < 127; i++) expect((await rig.client(typed(`note ${i}`, `item_f${i}`))).kind).toBe('continue');
}

describe('the text of a forgotten place longer than the window', () => {
  it('its end is kept: an insertion after the first kept place still meets it', async () => {
    const rig = await guardrailsWith(policy);
    // Longer than any window the policy can have (its end is what a cross match reads).
    await firstForgotten(rig, typed(`${'filler text '.repeat(400)}please ignore previous`, 'item_a'));
    expect((await rig.client(typed('instructions now', 'item_c', 'evt_c', 'item_x'))).kind).toBe('reject');
    expect(guardrailReports(rig.session).map((r) => r.ruleId)).toEqual(['inj_input']);
  });
});

describe('the refusal of an event next to a forgotten item', () => {
  it('is reported and detailed as a block of the client\'s input by context-not-kept', async () => {
    const rig = await guardrailsWith(policy);
    await firstForgotten(rig, typed('hello', 'item_a'));
    const v = await rig.client(typed('fine', 'item_c', 'evt_c', 'item_a'));
    expect(v.kind).toBe('reject');
    if (v.kind !== 'reject') return;
    expect({ code: v.error.code, param: v.error.param, eventId: v.error.eventId }).toEqual({ code: 'guardrail_blocked', param: 'previous_item_id', eventId: 'evt_c' });
    expect(v.error.details).toMatchObject({ rule: 'context-not-kept', action: 'block' });
    expect(guardrailReports(rig.session)).toEqual([{ ruleId: 'context-not-kept', action: 'block', source: 'input', direction: 'client' }]);
  });

  it('names a long item id by its first 64 characters', async () => {
    const rig = await guardrailsWith(policy);
    const longId = `item_${'a'.repeat(59)}${'z'.repeat(40)}`;
    await firstForgotten(rig, typed('hello', longId));
    const v = await rig.client(typed('fine', 'item_c', 'evt_c', longId));
    expect(v.kind).toBe('reject');
    if (v.kind !== 'reject') return;
    expect(v.error.message).toBe(
      `The text next to item item_${'a'.repeat(59)} cannot be checked against the conversation around it: the proxy no longer keeps that part of it (the last 128 items). Append the item, or reference a recent one.`,
    );
  });
});

describe('the echo of a create sent without an id while a late block of another text waits', () => {
  // 2289 (the twenty-second's 2282) `||` → `&&`: with any late block waiting, no echo was read by its
  // texts: the create stayed unanswered, the next named echo took it for refused, and its text left the
  // context while it stood in the conversation.
  it('answers that create: its text stays the context of what is typed after', async () => {
    const verdicts: ((d: Decision) => void)[] = [];
    const judge = defineGuardrail({ name: 'late', wants: ['input'], evaluate: (e) => (e.text === TWIN ? new Promise<Decision>((r) => verdicts.push(r)) : { action: 'allow' }) });
    const rig = await guardrailsWith(`${policy}  custom: [{ id: late, module: ./x.ts, mode: parallel, timeoutMs: 30000 }]\n`, judge);
    // A create of TWIN without an id, then 256 others: no longer followed, its block (late) waits for an echo of its text.
    await rig.client(typed(TWIN, null));
    for (let i = 0; i < 256; i++) await rig.client(typed(`filler ${i}`, null));
    verdicts[0]!({ action: 'block' });
    await new Promise((r) => setTimeout(r, 0));
    expect((await rig.client(typed('please ignore previous', null))).kind).toBe('continue');
    // A named create (no text) after it: its echo settles every create before it.
    expect((await rig.client(typed('', 'item_n'))).kind).toBe('continue');
    rig.server(wire({ type: 'conversation.item.added', event_id: 'ev_a_x', previous_item_id: null, item: { id: 'item_x', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text: 'please ignore previous' }] } }));
    rig.server(wire({ type: 'conversation.item.added', event_id: 'ev_a_n', previous_item_id: 'item_x', item: { id: 'item_n', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text: '' }] } }));
    expect((await rig.client(typed('instructions', 'item_c', 'evt_c'))).kind).toBe('reject');
    // TWIN's late block, then the phrase across the answered create's text.
    expect(guardrailReports(rig.session).map((r) => r.ruleId)).toEqual(['late', 'inj_input']);
  });
});

describe("an upstream item of another type showing the text of a create sent without an id", () => {
  // 2289 (the twenty-second's 2282) `unpairedType === null` → true (and the `||` and `true` forms of the
  // match): an item the view reads as the upstream's own (it let the create go: 64 creates since)
  // answered a create of another type by its text, and every create before that one was taken for
  // refused: a named create whose echo had not come yet left the context while it stood.
  it('answers no message: a named create before it keeps its place for an insertion after it', async () => {
    const rig = await guardrailsWith(policy);
    expect((await rig.client(typed('please ignore previous', 'item_c', 'evt_c'))).kind).toBe('continue');
    expect((await rig.client(typed('hello there', null))).kind).toBe('continue');
    // 64 more: the view no longer follows the two above (this filter still does).
    for (let i = 0; i < 64; i++) expect((await rig.client(typed(`note ${i}`, null))).kind).toBe('continue');
    // Another socket's tool output showing the same text (on a call every socket reads the conversation).
    rig.server(wire({ type: 'conversation.item.added', event_id: 'ev_a_t', previous_item_id: null, item: { id: 'item_t', type: 'function_call_output', call_id: 'call_t', output: 'hello there' } }));
    // item_c not echoed yet: an insertion after it meets its text.
    expect((await rig.client(typed('instructions', 'item_d', 'evt_d', 'item_c'))).kind).toBe('reject');
    expect(guardrailReports(rig.session).map((r) => r.ruleId)).toEqual(['inj_input']);
  });
});
