import { describe, expect, it } from 'vitest';
import type { Frame } from '../pipeline/frame.js';
import type { Verdict } from '../pipeline/filter.js';
import { guardrailsWith, wire } from '../../test/policies/support.js';
import { toolOut, typed } from '../../test/policies/item-events.js';
import type { LoggedSession } from '../../test/support/fake-session.js';

/**
 * Written against the mutants of the forgotten places (26ba6d1: past the 128 places kept, the text of
 * the forgotten ones is what comes before the first kept place, and an insertion after, or a
 * reference to, an item not kept is refused) that survived their tests (twenty-second session).
 * Driven without sockets (a LoggedSession records what the filter sends).
 */

const PHRASE = '{ phrases: ["ignore previous instructions"] }';
const policyOn = (...sources: string[]) => `
guardrails:
  rules:
${sources.map((s) => `    - { id: inj_${s}, sources: [${s}], match: ${PHRASE}, action: block }`).join('\n')}
`;

type Rig = { client: (f: Frame) => Verdict; session: LoggedSession };
const rules = (s: LoggedSession) => s.reports.flatMap((r) => (r.kind === 'guardrail' ? [r.ruleId] : []));
const errorOf = (v: Verdict) => (v.kind === 'reject' ? { code: v.error.code, param: v.error.param, message: v.error.message } : null);

/** `first` typed first (item_a), then an empty text (item_x), then 127 notes: item_a's place forgotten, item_x's the first kept. */
function firstForgotten(rig: Rig, first: Frame): void {
  expect(rig.client(first).kind).toBe('continue');
  expect(rig.client(typed('', 'item_x')).kind).toBe('continue');
  for (let i = 0; i < 127; i++) expect(rig.client(typed(`note ${i}`, `item_f${i}`)).kind).toBe('continue');
}

describe('the text before the first kept place, per source', () => {
  it('a tool output forgotten: a tool output inserted after the first kept place meets it', async () => {
    const rig = await guardrailsWith(policyOn('tool_output'));
    firstForgotten(rig, toolOut('please ignore previous', 'item_a'));
    expect(rig.client(toolOut('instructions now', 'item_c', 'evt_c', 'item_x')).kind).toBe('reject');
    expect(rules(rig.session)).toEqual(['inj_tool_output']);
  });

  it('a tool output forgotten: input inserted there meets it as input (with the tool outputs), not as input alone', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    firstForgotten(rig, toolOut('please ignore previous', 'item_a'));
    expect(rig.client(typed('instructions now', 'item_c', 'evt_c', 'item_x')).kind).toBe('reject');
    expect(rules(rig.session)).toEqual(['inj_input']);
  });

  it('typed input forgotten: a tool output inserted there does not read it as its own source', async () => {
    const rig = await guardrailsWith(policyOn('tool_output'));
    firstForgotten(rig, typed('please ignore previous', 'item_a'));
    expect(rig.client(toolOut('instructions now', 'item_c', 'evt_c', 'item_x')).kind).toBe('continue');
    expect(rules(rig.session)).toEqual([]);
  });

  it('the texts of several places forgotten are read in order', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    expect(rig.client(typed('please ignore', 'item_a')).kind).toBe('continue');
    expect(rig.client(typed('previous', 'item_b')).kind).toBe('continue');
    expect(rig.client(typed('', 'item_x')).kind).toBe('continue');
    for (let i = 0; i < 127; i++) expect(rig.client(typed(`note ${i}`, `item_f${i}`)).kind).toBe('continue');
    // item_a and item_b forgotten, item_x the first kept place.
    expect(rig.client(typed('instructions now', 'item_c', 'evt_c', 'item_x')).kind).toBe('reject');
    expect(rules(rig.session)).toEqual(['inj_input']);
  });

  it('input and tool outputs forgotten in turn: input alone, and input with the tool outputs, are each read', async () => {
    // A tool output between two forgotten inputs: read as input alone, the phrase joins across it.
    const alone = await guardrailsWith(policyOn('input'));
    expect(alone.client(typed('please ignore', 'item_a')).kind).toBe('continue');
    expect(alone.client(toolOut('zz', 'item_t')).kind).toBe('continue');
    expect(alone.client(typed('', 'item_x')).kind).toBe('continue');
    for (let i = 0; i < 127; i++) expect(alone.client(typed(`note ${i}`, `item_f${i}`)).kind).toBe('continue');
    expect(alone.client(typed('previous instructions', 'item_c', 'evt_c', 'item_x')).kind).toBe('reject');
    // An input and a tool output forgotten: read together as input.
    const withTools = await guardrailsWith(policyOn('input'));
    expect(withTools.client(typed('please ignore', 'item_a')).kind).toBe('continue');
    expect(withTools.client(toolOut('previous', 'item_t')).kind).toBe('continue');
    expect(withTools.client(typed('', 'item_x')).kind).toBe('continue');
    for (let i = 0; i < 127; i++) expect(withTools.client(typed(`note ${i}`, `item_f${i}`)).kind).toBe('continue');
    expect(withTools.client(typed('instructions', 'item_c', 'evt_c', 'item_x')).kind).toBe('reject');
    expect(rules(withTools.session)).toEqual(['inj_input']);
  });
});

describe('an event next to an item whose place is not kept', () => {
  it('a policy on tool outputs alone refuses an insertion after a forgotten item too', async () => {
    const rig = await guardrailsWith(policyOn('tool_output'));
    firstForgotten(rig, typed('hello', 'item_a'));
    const v = rig.client(toolOut('fine', 'item_c', 'evt_c', 'item_a'));
    expect(errorOf(v)).toMatchObject({ code: 'guardrail_blocked', param: 'previous_item_id' });
    expect(rules(rig.session)).toEqual(['context-not-kept']);
  });

  it('a policy reading no conversation text (output rules only) refuses nothing of the kind', async () => {
    const rig = await guardrailsWith(policyOn('output'));
    firstForgotten(rig, typed('hello', 'item_a'));
    expect(rig.client(typed('fine', 'item_c', 'evt_c', 'item_a')).kind).toBe('continue');
    expect(rig.client(typed('fine', 'item_d', 'evt_d', 'root')).kind).toBe('continue');
    expect(rules(rig.session)).toEqual([]);
  });

  it('before any place is forgotten, an unknown previous_item_id and root are judged as before', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    expect(rig.client(typed('hello', 'item_a')).kind).toBe('continue');
    expect(rig.client(typed('fine', 'item_c', 'evt_c', 'item_unknown')).kind).toBe('continue');
    expect(rig.client(typed('fine', 'item_d', 'evt_d', 'root')).kind).toBe('continue');
    expect(rules(rig.session)).toEqual([]);
  });

  it('at the start (root) once a place is forgotten: refused, the message saying where', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    firstForgotten(rig, typed('hello', 'item_a'));
    const v = rig.client(typed('fine', 'item_c', 'evt_c', 'root'));
    expect(errorOf(v)).toMatchObject({ code: 'guardrail_blocked', param: 'previous_item_id' });
    expect(errorOf(v)?.message).toMatch(/^The text at the start of the conversation cannot be checked/);
    const next = rig.client(typed('fine', 'item_e', 'evt_e', 'item_a'));
    expect(errorOf(next)?.message).toMatch(/^The text next to item item_a cannot be checked/);
  });

  it('an insertion without conversation text (an image) after a forgotten item passes', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    firstForgotten(rig, typed('hello', 'item_a'));
    const v = rig.client(wire({ type: 'conversation.item.create', previous_item_id: 'item_a', item: { id: 'item_i', type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=' }] } }));
    expect(v.kind).toBe('continue');
    expect(rules(rig.session)).toEqual([]);
  });

  it('a response referencing a forgotten item is refused at that reference; inline items and kept references are not', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    firstForgotten(rig, typed('hello', 'item_a'));
    const respond = (input: unknown[]) => rig.client(wire({ type: 'response.create', event_id: 'evt_r', response: { conversation: 'none', input } }));
    const inline = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] };
    expect(respond([inline, { type: 'item_reference', id: 'item_f126' }]).kind).toBe('continue');
    // An inline item with an id of a forgotten item is no reference.
    expect(respond([{ ...inline, id: 'item_a' }]).kind).toBe('continue');
    const v = respond([inline, { type: 'item_reference', id: 'item_f126' }, { type: 'item_reference', id: 'item_a' }]);
    expect(errorOf(v)).toMatchObject({ code: 'guardrail_blocked', param: 'response.input[2].id' });
    expect(rules(rig.session)).toEqual(['context-not-kept']);
  });
  it('a response.create without a response, or with an input entry that is no object, is not refused for it', async () => {
    const rig = await guardrailsWith(policyOn('input'));
    firstForgotten(rig, typed('hello', 'item_a'));
    expect(rig.client(wire({ type: 'response.create', event_id: 'evt_r' })).kind).toBe('continue');
    expect(rig.client(wire({ type: 'response.create', event_id: 'evt_s', response: { conversation: 'none', input: [null, { type: 'item_reference', id: 'item_f126' }] } })).kind).toBe('continue');
    expect(rules(rig.session)).toEqual([]);
  });
});
