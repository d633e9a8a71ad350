import { describe, expect, it } from 'vitest';
import { FakeSession } from '../support/fake-session.js';
import { trackerBudget, wire } from './support.js';
import type { Verdict } from '../../src/pipeline/filter.js';
import { TruncationFilter } from '../../src/policies/truncation.js';

/**
 * Adversary: a client under a truncation budget (maxTokens) sends one large
 * `conversation.item.create`, then 256 one-character ones, then `response.create`, back to back
 * (the upstream accepts every one; none is echoed yet when the create is checked). The filter
 * keeps only the last MAX_PENDING_CREATES (256) pending creates, so the large one is forgotten:
 * the prune for the create counts 256 small items instead of everything about to join, deletes
 * nothing, and the response reads ~13,000 tokens under a 10,000-token budget. Guarantee broken:
 * a response reads at most `maxTokens` of conversation (README "Context truncation").
 */

const budget = trackerBudget(10_000, { keepLast: 0, keepFirst: 0 });
const text = (chars: number) => 'x'.repeat(chars);
const message = (t: string) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: t }] });

describe('truncation: pending creates past the bound still count toward the budget', () => {
  it('a large create followed by 256 small ones is counted when the response is created', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    // 6,000 tokens already in the conversation.
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...message(text(24_000)) } }));
    // 6,000 more, then 256 items of 5 tokens each: 13,280 in all once the upstream adds them.
    const v = s.fromClient(f, wire({ type: 'conversation.item.create', item: message(text(24_000)) })) as Verdict;
    expect(v.kind).toBe('continue');
    for (let i = 0; i < 256; i++) s.fromClient(f, wire({ type: 'conversation.item.create', item: message('k') }));
    s.fromClient(f, wire({ type: 'response.create' }));
    // The only item the filter can delete must go for the response to read within 10,000 tokens.
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('old');
  });

  it('echoes of forgotten creates are not counted twice (nothing pruned once they are in the conversation)', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromClient(f, wire({ type: 'conversation.item.create', item: message(text(24_000)) }));
    for (let i = 0; i < 256; i++) s.fromClient(f, wire({ type: 'conversation.item.create', item: message('k') }));
    // The upstream adds them all: 7,280 tokens, under the budget.
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'big', ...message(text(24_000)) } }));
    for (let i = 0; i < 256; i++) s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: i === 0 ? 'big' : `k${i - 1}`, item: { id: `k${i}`, ...message('k') } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete')).toHaveLength(0);
  });
  /**
   * Adversary: while its response runs, the client creates a large assistant message (pending),
   * then sends an out-of-band response.create (it reads the default conversation all the same).
   * The running response's own output item, an assistant message too, settled the pending create
   * of the same type and role, so the large item was counted nowhere when the second create was checked.
   */
  it("a response's own output item does not settle a client's pending create", () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...message(text(24_000)) } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    s.fromServer(f, wire({ type: 'response.created', response: { id: 'r1', object: 'realtime.response', status: 'in_progress', output: [] } }));
    // 6,000 tokens of the client's, not shown yet.
    s.fromClient(f, wire({ type: 'conversation.item.create', item: { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: text(24_000) }] } }));
    const out = { id: 'out', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
    s.fromServer(f, wire({ type: 'response.output_item.added', response_id: 'r1', output_index: 0, item: out }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: out }));
    s.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none' } }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('old');
  });
  /**
   * Adversary: a small create (forgotten past the bound), a large one, 255 small ones; it waits for
   * the first echo (its small item) and then creates a response. That echo must settle the forgotten
   * create, not the oldest listed one (the large item, still on its way).
   */
  it('the first echo settles the forgotten create, not the large one still on its way', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...message(text(24_000)) } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: message('k') }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: message(text(24_000)) }));
    for (let i = 0; i < 255; i++) s.fromClient(f, wire({ type: 'conversation.item.create', item: message('k') }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: { id: 'k_first', ...message('k') } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('old');
  });
  /**
   * Adversary: the client creates a large user message and speaks at once; server VAD commits the
   * spoken turn, whose echo (a user message too) reaches the proxy before the large item's. That echo
   * settled the large pending create, so a response.create sent then counted it nowhere.
   */
  it("a committed spoken turn's echo does not settle a client's pending create", () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...message(text(24_000)) } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: message(text(24_000)) }));
    s.fromServer(f, wire({ type: 'input_audio_buffer.committed', previous_item_id: 'old', item_id: 'spoken' }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: { id: 'spoken', type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('old');
  });
});
