import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import type { Verdict } from '../pipeline/filter.js';
import { wire } from '../../test/policies/support.js';
import { ContextTracker, estimateItemTokens, TruncationFilter } from './truncation.js';

const budget = (maxTokens: number, extra: Partial<{ targetRatio: number; keepFirst: number; keepSystem: boolean; keepLast: number }> = {}) => ({
  maxTokens,
  targetRatio: 0.5,
  keepFirst: 0,
  keepSystem: true,
  keepLast: 0,
  ...extra,
});

const text = (id: string, role: string, chars: number) => ({ id, type: 'message', role, status: 'completed', content: [{ type: role === 'assistant' ? 'output_text' : 'input_text', text: 'x'.repeat(chars) }] });

describe('context tracker', () => {
  it('estimates items like the token rates (text chars/4, user audio 10/s, assistant audio 20/s)', () => {
    expect(estimateItemTokens(text('a', 'user', 400), null)).toBe(104);
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, 2000)).toBe(24);
    expect(estimateItemTokens({ type: 'message', role: 'assistant', content: [{ type: 'output_audio' }] }, 2000)).toBe(44);
    expect(estimateItemTokens({ type: 'function_call', name: 'abcd', arguments: '{"a":1}' }, null)).toBe(4 + 1 + 2);
  });

  it('keeps conversation order from previous_item_id', () => {
    const t = new ContextTracker();
    t.upsert(text('b', 'user', 4), undefined);
    t.upsert(text('a', 'user', 4), null);
    t.upsert(text('c', 'user', 4), 'b');
    t.upsert(text('x', 'user', 4), 'a');
    expect(t.ids()).toEqual(['a', 'x', 'b', 'c']);
  });

  it('plans deletes of the oldest items down to the target, never splitting a call from its output', () => {
    const t = new ContextTracker();
    t.upsert(text('sys', 'system', 400), undefined);
    t.upsert(text('u1', 'user', 400), undefined);
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'call_1', name: 'f', arguments: 'x'.repeat(400) }, undefined);
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'call_1', output: 'x'.repeat(400) }, undefined);
    t.upsert(text('a1', 'assistant', 400), undefined);
    t.upsert(text('u2', 'user', 400), undefined);
    expect(t.total()).toBe(6 * 104 + 1);
    const plan = t.plan(budget(500, { targetRatio: 0.7, keepLast: 1 }))!;
    // System pinned; u1 (104) is not enough, and the call goes only with its output.
    expect(plan.itemIds).toEqual(['u1', 'fc', 'fo']);
    expect(plan.tokensAfter).toBeLessThanOrEqual(350);
    expect(t.plan(budget(10_000))).toBeNull();
  });

  it('keeps the pair when the output is pinned by keepLast', () => {
    const t = new ContextTracker();
    t.upsert(text('u1', 'user', 400), undefined);
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(400) }, undefined);
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c', output: 'x'.repeat(40) }, undefined);
    const plan = t.plan(budget(100, { keepLast: 1, targetRatio: 0.1 }))!;
    expect(plan.itemIds).toEqual(['u1']);
  });

  it('calibrates the overhead from usage.input_tokens and output items from output_tokens', () => {
    const t = new ContextTracker();
    t.upsert(text('u1', 'user', 40), undefined); // 14 estimated
    t.upsert(text('a1', 'assistant', 4), undefined);
    t.calibrate(1014, 300, ['a1']);
    expect(t.total()).toBe(1014 + 304);
    t.remove('u1');
    expect(t.total()).toBe(1000 + 304);
  });
});

describe('truncation filter', () => {
  const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });
  const done = (id: string, input: number, output: number, outputIds: string[]) =>
    wire({ type: 'response.done', response: { id, status: 'completed', conversation_id: 'conv_1', output: outputIds.map((o) => ({ id: o })), usage: { input_tokens: input, output_tokens: output } } });

  it('prunes after response.done (so VAD turns start under budget) and reports it', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(1000, { targetRatio: 0.6, keepLast: 2 }), 'test');
    let prev: string | null = null;
    for (let i = 0; i < 6; i++) {
      session.fromServer(f, added(text(`u${i}`, 'user', 400), prev));
      session.fromServer(f, added(text(`a${i}`, 'assistant', 400), `u${i}`));
      prev = `a${i}`;
    }
    session.fromServer(f, done('resp_6', 1300, 100, ['a5']));
    const deletes = session.upstream.map((e) => (e as { item_id?: string }).item_id);
    expect(session.upstream.every((e) => e.type === 'conversation.item.delete')).toBe(true);
    expect(deletes.slice(0, 3)).toEqual(['u0', 'a0', 'u1']);
    const prune = session.reports.find((r) => r.kind === 'prune');
    expect(prune).toMatchObject({ kind: 'prune', tokensBefore: expect.any(Number) });
    if (prune?.kind === 'prune') {
      expect(prune.itemIds).toEqual(deletes);
      expect(prune.tokensAfter).toBeLessThanOrEqual(600);
    }
    // The upstream confirms; nothing is deleted twice.
    for (const id of deletes) session.fromServer(f, wire({ type: 'conversation.item.deleted', item_id: id! }));
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream.length).toBe(deletes.length);
  });

  it('prunes before a client response.create once new items push it over', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(300, { keepLast: 1 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null));
    expect(session.upstream).toEqual([]);
    session.fromServer(f, added(text('u1', 'user', 800), 'u0'));
    expect((session.fromClient(f, wire({ type: 'response.create' })) as Verdict).kind).toBe('continue');
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);
    // Out-of-band responses do not trigger pruning.
    session.fromServer(f, added(text('u2', 'user', 800), 'u1'));
    session.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none' } }));
    expect(session.upstream).toHaveLength(1);
  });

  it('reads a response.done from the conversation view: an out-of-band one neither calibrates nor prunes', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(1000, { keepLast: 1 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null));
    session.fromServer(f, added(text('u1', 'user', 400), 'u0'));
    const before = f.tracker.total();
    // The upstream says this response read 5,000 tokens, but out of band: the conversation is as it was.
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r_oob', status: 'completed', conversation_id: null, output: [], usage: { input_tokens: 5000, output_tokens: 1 } } }));
    expect(f.tracker.total()).toBe(before);
    expect(session.upstream).toEqual([]);
    // The same count in the default conversation calibrates from the view's parsed usage and prunes.
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r_conv', status: 'completed', conversation_id: 'conv_1', output: [], usage: { input_tokens: 5000, output_tokens: 1 } } }));
    expect(session.conversation.response('r_conv')?.usage?.inputTokens).toBe(5000);
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);
  });

  it('does nothing without a budget', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, null, 'test');
    session.fromServer(f, added(text('u0', 'user', 100_000), null));
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream).toEqual([]);
    expect(f.summary()).toEqual({});
  });
});
