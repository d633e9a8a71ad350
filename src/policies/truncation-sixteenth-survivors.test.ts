// Survivors of the 2026-12-07 mutation run of src/policies/truncation.ts (the TruncationFilter's
// lines): each test names the mutant it kills and what a client would get wrong under it.
import { describe, expect, it } from 'vitest';
import { type FakeSession, LoggedSession } from '../../test/support/fake-session.js';
import { textItem, trackerBudget, wire } from '../../test/policies/support.js';
import { SpokenTurnHold } from './hold.js';
import { TruncationFilter } from './truncation.js';

const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });
const deletes = (s: FakeSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

describe('a client create that stands for a held turn, let through (survivors)', () => {
  it('569:9 ConditionalExpression (verdict.kind === \'reject\' → true): a create let through is not treated as refused, nothing is pruned for the turn', () => {
    // The client's create has its own small input: it fits and reads no conversation, so it is no
    // prune point. Under the mutant every create let through is handled as refused while it stands
    // for the turn: the client's items are deleted (trigger "held turn") before any response reads them.
    const s = new LoggedSession();
    const f = new TruncationFilter(s, trackerBudget(150), 'test');
    const hold = new SpokenTurnHold(s, 'policies.guardrails', 1000, () => ({ policy: 'p', policyVersion: 'v1' }));
    const response = (type: string) => s.conversation.observeServer(wire({ type, response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [], conversation_id: 'conv_1', usage: null } }));
    s.fromServer(f, added(textItem('u0', 'user', 400), null)); // 104
    s.fromServer(f, added(textItem('u1', 'user', 400), 'u0')); // 104: 208 > 150
    // A turn passed while a response ran; the client's create came as it ended: it stands for the turn.
    response('response.created');
    hold.committed('u1');
    hold.passed('u1');
    response('response.done');
    const clientCreate = { type: 'response.create', response: { input: [textItem('i1', 'user', 40)] } };
    hold.clientCreate(clientCreate);
    expect(s.conversation.spokenTurns.clientCreateStands).toBe(true);
    expect(s.fromClient(f, wire(clientCreate))).toMatchObject({ kind: 'continue' });
    expect(deletes(s)).toEqual([]);
    expect(s.lines.filter((l) => l.msg === 'conversation pruned to the context budget')).toEqual([]);
    hold.close();
  });
});
