import { describe, expect, it } from 'vitest';
import { FakeSession } from '../support/fake-session.js';
import { trackerBudget, wire } from './support.js';
import type { Verdict } from '../../src/pipeline/filter.js';
import { TruncationFilter } from '../../src/policies/truncation.js';

/**
 * Adversary: a tenant under a truncation budget creates one large item with an id of its own
 * choosing (`item.id` is the client's to set) and, in the same breath, an out-of-band
 * `response.create` whose `input` is an `item_reference` to that id. The upstream handles the
 * create first, so the response reads the item; the proxy, not having seen it echoed, sized the
 * reference at 0 and relayed a response reading 10,004 tokens under a 2,000 budget.
 * Guarantee broken: "A response's own input" must fit `maxTokens` (policies/README.md "Truncation").
 */
const budget = trackerBudget(2_000, { keepLast: 0, keepFirst: 0 });
const typed = (chars: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(chars) }] });

describe("truncation: a reference to the client's own item not shown yet", () => {
  it('is sized as the create the client sent', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromClient(f, wire({ type: 'conversation.item.create', event_id: 'evt_big', item: { id: 'item_mine', ...typed(40_000) } }));
    const v = s.fromClient(f, wire({ type: 'response.create', event_id: 'evt_oob', response: { conversation: 'none', input: [{ type: 'item_reference', id: 'item_mine' }] } })) as Verdict;
    expect(v.kind).toBe('reject');
    expect(s.upstream.filter((e) => e.type === 'response.create')).toHaveLength(0);
  });
});
