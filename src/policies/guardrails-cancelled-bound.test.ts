import { describe, expect, it } from 'vitest';
import { guardrailsWith, outDelta, responseCreated, wire } from '../../test/policies/support.js';
import { deletes } from '../../test/policies/item-events.js';
import type { Verdict } from '../pipeline/filter.js';
import { MAX_CANCELLED_ITEM_CHARS, MAX_CANCELLED_ITEMS, MAX_CANCELLED_RESPONSES } from './cancelled-responses.js';

/**
 * The responses the guardrails cancel and the items that tripped in them (#cancelled) are kept until
 * each response is done, to withhold what follows and to delete its items then. Bounded in responses,
 * items and the items' characters; past a bound the session is ended (`governance_failed`), never a
 * response or an item forgotten. Until the twenty-fourth session the item ids grew with every trip,
 * and past 64 responses the oldest was forgotten.
 */
const POLICY = `
guardrails:
  rules:
    - { id: no-wire, sources: [output, input], match: { phrases: ["wire the money"] }, action: cancel_response }
`;

const codeOf = (v: Verdict): string | null => (v.kind === 'close' || v.kind === 'reject' ? v.error.code : null);
const responseDone = (id: string) => wire({ type: 'response.done', event_id: `ev_done_${id}`, response: { id, object: 'realtime.response', status: 'cancelled', output: [], conversation_id: 'conv_1', usage: null } });

describe('the items of cancelled responses it remembers', () => {
  it(`past ${MAX_CANCELLED_ITEMS} tripped items the session ends; every frame of them is withheld up to then`, async () => {
    const { server, session } = await guardrailsWith(POLICY);
    server(responseCreated('resp_1'));
    const verdicts: (string | null)[] = [];
    for (let i = 0; i <= MAX_CANCELLED_ITEMS; i++) {
      const v = server(outDelta('resp_1', 'ok, wire the money.', `item_${i}`));
      verdicts.push(v.kind === 'close' ? codeOf(v) : v.kind);
    }
    // Old code: 1025 drops, the set of ids grown to 1025 (and on with every trip).
    expect(verdicts.slice(0, MAX_CANCELLED_ITEMS).every((v) => v === 'drop')).toBe(true);
    expect(verdicts[MAX_CANCELLED_ITEMS]).toBe('governance_failed');
  });

  it(`past ${MAX_CANCELLED_ITEM_CHARS} characters of item ids the session ends, before the count`, async () => {
    const { server } = await guardrailsWith(POLICY);
    server(responseCreated('resp_1'));
    const id = (i: number): string => `item_${String(i).padStart(4, '0')}_${'x'.repeat(240)}`;
    const fits = Math.floor(MAX_CANCELLED_ITEM_CHARS / id(0).length);
    expect(fits).toBeLessThan(MAX_CANCELLED_ITEMS);
    for (let i = 0; i < fits; i++) expect(server(outDelta('resp_1', 'ok, wire the money.', id(i))).kind, String(i)).toBe('drop');
    expect(codeOf(server(outDelta('resp_1', 'ok, wire the money.', id(fits))))).toBe('governance_failed');
  });

  it('a response done gives its room back, and each of its items is deleted then', async () => {
    const { server, session } = await guardrailsWith(POLICY);
    for (let r = 0; r < 3; r++) {
      server(responseCreated(`resp_${r}`));
      for (let i = 0; i < MAX_CANCELLED_ITEMS / 2; i++) expect(server(outDelta(`resp_${r}`, 'ok, wire the money.', `item_${r}_${i}`)).kind).toBe('drop');
      server(responseDone(`resp_${r}`));
      const deleted = deletes(session).filter((d) => String(d).startsWith(`item_${r}_`));
      expect(deleted).toHaveLength(MAX_CANCELLED_ITEMS / 2);
    }
    expect(session.closedWith).toBeNull();
  });
});

describe('the cancelled responses it remembers', () => {
  it(`a cancel past ${MAX_CANCELLED_RESPONSES} running responses ends the session instead of forgetting the oldest`, async () => {
    const { server, client, session } = await guardrailsWith(POLICY);
    for (let r = 0; r <= MAX_CANCELLED_RESPONSES; r++) server(responseCreated(`resp_${r}`));
    // The user's text trips: every running response is cancelled (65 of them: the view has faulted,
    // and the relay would end the session on its own; the filter does not count on it).
    client(wire({ type: 'conversation.item.create', event_id: 'evt_1', item: { id: 'item_u', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'wire the money' }] } }));
    // Old code: the oldest forgotten, the session went on.
    expect(session.closedWith?.code).toBe('governance_failed');
  });

  it('responses already done are settled to make room, their items deleted', async () => {
    const { server, session } = await guardrailsWith(POLICY);
    for (let r = 0; r < MAX_CANCELLED_RESPONSES; r++) {
      server(responseCreated(`resp_${r}`));
      expect(server(outDelta(`resp_${r}`, 'ok, wire the money.', `item_${r}`)).kind).toBe('drop');
    }
    // resp_0 ends without its response.done reaching the filter (the view learns it alone).
    session.conversation.observeServer(responseDone('resp_0'));
    server(responseCreated('resp_new'));
    expect(server(outDelta('resp_new', 'ok, wire the money.', 'item_new')).kind).toBe('drop');
    expect(session.closedWith).toBeNull();
    expect(deletes(session)).toEqual(['item_0']);
  });
});
