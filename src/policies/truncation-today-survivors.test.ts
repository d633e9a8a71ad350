// Survivors of the 2026-12-06 mutation run of src/policies/truncation.ts's changed lines (93c2b2d:
// prompt variables in the instructions share, a refused client create of a held turn re-owed).
import { describe, expect, it } from 'vitest';
import { FakeSession, LoggedSession } from '../../test/support/fake-session.js';
import type { Verdict } from '../pipeline/filter.js';
import { textItem, trackerBudget, wire } from '../../test/policies/support.js';
import { SpokenTurnHold } from './hold.js';
import { promptTokens, TruncationFilter } from './truncation.js';

const kind = (v: unknown) => (v as Verdict).kind;
/** Tools whose JSON is exactly `chars` long (chars / 4 tokens). */
const tools = (chars: number) => [{ type: 'function', name: 'f', description: 'd'.repeat(chars - 65), parameters: {} }];
const update = (session: object) => wire({ type: 'session.update', session: { type: 'realtime', ...session } });
/** A reusable prompt whose one variable `v` is `chars - 1` long: `chars` characters with its name. */
const prompt = (chars: number) => ({ id: 'pmpt_1', variables: { v: 'x'.repeat(chars - 1) } });

describe('promptTokens (survivors)', () => {
  it('an input_text variable whose text is not a string counts as its JSON, like any other value', () => {
    const value = { type: 'input_text', text: ['x'.repeat(40)] }; // JSON: 73 characters
    expect(promptTokens({ id: 'p', variables: { v: value } })).toBe(Math.ceil((1 + 73) / 4));
  });
});

describe('session.created with updates outstanding the view no longer holds: the larger prompt variables of the two (survivors)', () => {
  const b = trackerBudget(2000); // share 500
  const pad = { pad: 'y'.repeat(1_100_000) }; // over MAX_EARLY_UPDATE_BYTES: the view forgets the update

  it('the update sent set more than the session shows: what it set counts', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, b, 'test');
    expect(kind(session.fromClient(f, update({ prompt: prompt(800), metadata: pad })))).toBe('continue'); // 200
    expect(session.conversation.updatesBeforeCreated).toBeNull();
    session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
    expect(session.fromClient(f, update({ tools: tools(1204) }))).toMatchObject({ kind: 'reject', error: { param: 'session.tools', details: { tokens: 501 } } });
    expect(kind(session.fromClient(f, update({ tools: tools(1200) })))).toBe('continue');
  });

  it('the session shows more than the update set: what it shows counts', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, b, 'test');
    expect(kind(session.fromClient(f, update({ prompt: prompt(400), metadata: pad })))).toBe('continue'); // 100
    session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [], prompt: prompt(800) } })); // 200
    expect(session.fromClient(f, update({ tools: tools(1204) }))).toMatchObject({ kind: 'reject', error: { param: 'session.tools', details: { tokens: 501 } } });
  });
});

describe('a client create that stood for a held turn, refused by the budget (survivors)', () => {
  it('the prune made for the proxy\'s own create is logged as trigger "held turn"', () => {
    const s = new LoggedSession();
    const f = new TruncationFilter(s, trackerBudget(150), 'test');
    const hold = new SpokenTurnHold(s, 'policies.guardrails', 1000, () => ({ policy: 'p', policyVersion: 'v1' }));
    const response = (type: string) => s.conversation.observeServer(wire({ type, response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [], conversation_id: 'conv_1', usage: null } }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: textItem('u0', 'user', 400) }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'u0', item: textItem('u1', 'user', 400) }));
    // A turn passed while a response ran; the client's create came as it ended: it stands for the turn.
    response('response.created');
    hold.committed('u1');
    hold.passed('u1');
    response('response.done');
    hold.clientCreate({ type: 'response.create' });
    expect(s.conversation.spokenTurns.clientCreateStands).toBe(true);
    expect(s.fromClient(f, wire({ type: 'response.create', response: { instructions: 'x'.repeat(4000) } }))).toMatchObject({ kind: 'reject', error: { code: 'context_budget_exceeded' } });
    const prunes = s.lines.filter((l) => l.msg === 'conversation pruned to the context budget');
    expect(prunes.map((l) => l['trigger'])).toEqual(['held turn']);
    // The held turn is pinned; the proxy owes it its own create.
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toEqual(['u0']);
    expect(s.upstream.filter((e) => e.type === 'response.create')).toHaveLength(1);
    hold.close();
  });
});
