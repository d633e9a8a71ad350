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

describe('token estimates, item by item', () => {
  it('per item type', () => {
    expect(estimateItemTokens({ type: 'function_call_output', output: 'x'.repeat(9) }, null)).toBe(4 + 3);
    expect(estimateItemTokens({ type: 'function_call' }, null)).toBe(4);
    const other = { type: 'mcp_call', id: 'i', name: 'n' };
    expect(estimateItemTokens(other, null)).toBe(4 + Math.ceil(JSON.stringify(other).length / 4));
    expect(estimateItemTokens({ type: 'message', role: 'user' }, null)).toBe(4);
    expect(estimateItemTokens({ type: 'message', role: 'user', content: ['x', null, { type: 'input_text', text: '' }] }, null)).toBe(4);
  });

  it('audio parts: from the duration when known (rounded up), else from the transcript (×2 user, ×3 assistant)', () => {
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, 150)).toBe(4 + 2);
    expect(estimateItemTokens({ type: 'message', role: 'assistant', content: [{ type: 'audio' }] }, 150)).toBe(4 + 3);
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: 'x'.repeat(5) }] }, null)).toBe(4 + 2 * 2);
    expect(estimateItemTokens({ type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'x'.repeat(5) }] }, null)).toBe(4 + 2 * 3);
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, null)).toBe(4);
  });

  it('images cost a fixed amount; text parts fall back to a transcript', () => {
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:...' }] }, null)).toBe(4 + 255);
    expect(estimateItemTokens({ type: 'message', role: 'assistant', content: [{ type: 'output_text', transcript: 'x'.repeat(8) }] }, null)).toBe(4 + 2);
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'abcde' }, { type: 'input_text', text: 'f' }] }, null)).toBe(4 + 2 + 1);
  });
});

describe('context tracker, state by state', () => {
  it('size, has, ids; items without an id are ignored; unknown previous ids append', () => {
    const t = new ContextTracker();
    t.upsert({ type: 'message', role: 'user', content: [] }, undefined);
    expect(t.size).toBe(0);
    t.upsert(text('a', 'user', 4), undefined);
    t.upsert(text('b', 'user', 4), 'no-such-item');
    expect(t.size).toBe(2);
    expect(t.has('a')).toBe(true);
    expect(t.has('z')).toBe(false);
    expect(t.ids()).toEqual(['a', 'b']);
    expect(t.total()).toBe(10);
  });

  it('an update re-estimates an item (until usage measured it) and keeps its place', () => {
    const t = new ContextTracker();
    t.upsert(text('a', 'user', 4), null);
    t.upsert(text('b', 'assistant', 4), 'a');
    t.upsert({ ...text('a', 'user', 40), status: 'in_progress' }, 'b');
    expect(t.ids()).toEqual(['a', 'b']);
    expect(t.total()).toBe(14 + 5);
    t.calibrate(14, 50, ['b']);
    t.upsert(text('b', 'assistant', 400), 'a');
    expect(t.total()).toBe(14 + 4 + 50);
    // The in_progress status from the update pins `a`.
    expect(t.plan(budget(10, { targetRatio: 0 }))!.itemIds).toEqual(['b']);
  });

  it('remove answers whether the item was there and forgets its audio', () => {
    const t = new ContextTracker();
    t.upsert(text('a', 'user', 4), null);
    t.upsert(text('b', 'user', 4), 'a');
    expect(t.remove('a')).toBe(true);
    expect(t.remove('a')).toBe(false);
    expect(t.ids()).toEqual(['b']);
    t.speech('b', 0, 1000);
    expect(t.total()).toBe(4 + 10);
    t.remove('b');
    t.upsert({ id: 'b', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, null);
    expect(t.total()).toBe(4);
  });

  it('speech boundaries size a user audio item once both are known and ordered', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'u', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, null);
    t.speech('u', 200, null);
    expect(t.total()).toBe(4);
    t.speech('u', null, 200);
    expect(t.total()).toBe(4); // end not after start: unknown length
    t.speech('u', null, 1250);
    expect(t.total()).toBe(4 + 11);
    // Boundaries seen before the item: applied when it arrives.
    t.speech('v', 0, 500);
    t.upsert({ id: 'v', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, 'u');
    expect(t.total()).toBe(4 + 11 + 4 + 5);
    // A transcript does not override a known duration.
    t.transcript('v', 'x'.repeat(400));
    expect(t.total()).toBe(4 + 11 + 4 + 5);
  });

  it('a transcript sizes an audio item of unknown length; a measured item keeps its size', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'u', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, null);
    t.transcript('u', 'x'.repeat(40));
    expect(t.total()).toBe(4 + 20);
    t.transcript('nobody', 'x');
    t.calibrate(0, 7, ['u']);
    t.transcript('u', 'x'.repeat(4000));
    t.speech('u', 0, 100_000);
    expect(t.total()).toBe(4 + 7);
  });

  it('truncation caps assistant audio at the heard part and marks the item measured', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'a', type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'x'.repeat(400) }] }, null);
    expect(t.total()).toBe(4 + 300);
    t.truncated('a', 1010);
    expect(t.total()).toBe(4 + 21);
    t.truncated('a', 100_000); // never grows
    expect(t.total()).toBe(4 + 21);
    t.upsert({ id: 'a', type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'x'.repeat(4000) }] }, null);
    expect(t.total()).toBe(4 + 21);
    t.truncated('nobody', 10);
    expect(t.size).toBe(1);
  });

  it('calibration: overhead never negative, output share at least 1, no output tokens no change', () => {
    const t = new ContextTracker();
    t.upsert(text('u', 'user', 400), null); // 104
    t.upsert(text('a', 'assistant', 40), 'u'); // 14
    t.upsert(text('b', 'assistant', 40), 'a'); // 14
    t.calibrate(50, 0, ['a', 'b']);
    expect(t.total()).toBe(104 + 14 + 14); // overhead max(0, 50 - 104) = 0; sizes kept
    t.calibrate(200, 5, ['a', 'b']);
    expect(t.total()).toBe(200 + (4 + 3) * 2); // round(5 / 2) = 3 each
    t.calibrate(200, 1, ['a', 'b', 'ghost']);
    expect(t.total()).toBe(200 + (4 + 1) * 2); // max(1, round(1 / 2))
    t.calibrate(300, 9, []);
    expect(t.total()).toBe(300 - 104 - 10 + 104 + 10);
  });

  it('plans nothing at or under the budget, and exactly down to the floor of maxTokens × targetRatio', () => {
    const t = new ContextTracker();
    for (let i = 0; i < 5; i++) t.upsert(text(`u${i}`, 'user', 24), i === 0 ? null : `u${i - 1}`); // 10 each
    expect(t.plan(budget(50))).toBeNull();
    expect(t.plan(budget(49, { targetRatio: 0.61 }))).toEqual({ itemIds: ['u0', 'u1', 'u2'], tokensBefore: 50, tokensAfter: 20 }); // target floor(29.89) = 29
    expect(t.plan(budget(49, { targetRatio: 0.62 }))).toEqual({ itemIds: ['u0', 'u1'], tokensBefore: 50, tokensAfter: 30 }); // target 30
    expect(t.plan(budget(49, { targetRatio: 0.62 }), 5)).toEqual({ itemIds: ['u0', 'u1', 'u2'], tokensBefore: 55, tokensAfter: 25 });
    expect(t.plan(budget(45), 0)!.tokensBefore).toBe(50);
  });

  it('pins the first keepFirst, the last keepLast, system messages (when asked) and items in progress', () => {
    const t = new ContextTracker();
    t.upsert(text('s', 'system', 24), null);
    t.upsert(text('u1', 'user', 24), 's');
    t.upsert({ ...text('u2', 'user', 24), status: 'in_progress' }, 'u1');
    t.upsert(text('u3', 'user', 24), 'u2');
    t.upsert(text('u4', 'user', 24), 'u3');
    expect(t.plan(budget(10, { targetRatio: 0, keepFirst: 2 }))!.itemIds).toEqual(['u3', 'u4']);
    expect(t.plan(budget(10, { targetRatio: 0, keepLast: 2 }))!.itemIds).toEqual(['u1']);
    expect(t.plan(budget(10, { targetRatio: 0, keepSystem: false }))!.itemIds).toEqual(['s', 'u1', 'u3', 'u4']);
    expect(t.plan(budget(10, { targetRatio: 0, keepFirst: 5 }))).toBeNull();
  });

  it('deletes a call with its output (and not a call group whose id is shared by other item types)', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c1', name: 'f', arguments: 'x'.repeat(36) }, null); // 4+1+9
    t.upsert(text('u', 'user', 24), 'fc');
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c1', output: 'x'.repeat(24) }, 'u'); // 10
    t.upsert({ id: 'm', type: 'message', role: 'user', call_id: 'c1', content: [{ type: 'input_text', text: 'x'.repeat(24) }] }, 'fo');
    const plan = t.plan(budget(40, { targetRatio: 0.5 }))!;
    expect(plan.itemIds).toEqual(['fc', 'fo']);
    expect(plan.tokensAfter).toBe(44 - 24);
  });
});

describe('truncation filter, event by event', () => {
  const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });

  it('tracks deletes, truncations, transcripts and speech from the upstream', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(100_000), 'test');
    session.fromServer(f, wire({ type: 'input_audio_buffer.speech_started', item_id: 'u', audio_start_ms: 0 }));
    session.fromServer(f, wire({ type: 'input_audio_buffer.speech_stopped', item_id: 'u', audio_end_ms: 2000 }));
    session.fromServer(f, added({ id: 'u', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, null));
    expect(f.tracker.total()).toBe(4 + 20);
    session.fromServer(f, added({ id: 'w', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, 'u'));
    session.fromServer(f, wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'w', transcript: 'x'.repeat(8) }));
    expect(f.tracker.total()).toBe(24 + 4 + 4);
    session.fromServer(f, wire({ type: 'conversation.item.created', previous_item_id: 'w', item: { id: 'a', type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'x'.repeat(400) }] } }));
    session.fromServer(f, wire({ type: 'conversation.item.truncated', item_id: 'a', content_index: 0, audio_end_ms: 500 }));
    expect(f.tracker.total()).toBe(32 + 4 + 10);
    session.fromServer(f, wire({ type: 'conversation.item.deleted', item_id: 'u' }));
    expect(f.tracker.ids()).toEqual(['w', 'a']);
    session.fromServer(f, wire({ type: 'conversation.item.done', previous_item_id: null, item: text('s', 'system', 4) }));
    expect(f.tracker.ids()).toEqual(['s', 'w', 'a']);
    // Malformed events change nothing.
    session.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null }));
    session.fromServer(f, wire({ type: 'conversation.item.deleted' }));
    session.fromServer(f, wire({ type: 'conversation.item.truncated', item_id: 'a', audio_end_ms: 'soon' }));
    session.fromServer(f, wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'w' }));
    expect(f.tracker.ids()).toEqual(['s', 'w', 'a']);
    expect(f.summary()).toEqual({ prunedItems: 0, contextTokensEstimate: f.tracker.total() });
  });

  it('an out-of-band response.done neither calibrates nor prunes; one without usage still prunes', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(50, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null));
    session.fromServer(f, added(text('u1', 'user', 40), 'u0'));
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r', conversation_id: null, output: [], usage: { input_tokens: 5000, output_tokens: 1 } } }));
    expect(session.upstream).toEqual([]);
    expect(f.tracker.total()).toBe(104 + 14);
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r2', conversation_id: 'conv_1', output: [] } }));
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);
    expect(f.summary()).toEqual({ prunedItems: 1, contextTokensEstimate: 14 });
    session.fromServer(f, wire({ type: 'response.done' }));
    expect(session.upstream).toHaveLength(1);
  });

  it('counts a created item as pending until the upstream echoes it (matching type and role)', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(150, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null)); // 104
    session.fromClient(f, wire({ type: 'conversation.item.create', item: text('x', 'user', 200) })); // +54 pending
    session.fromClient(f, wire({ type: 'conversation.item.create' }));
    session.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none' } }));
    expect(session.upstream).toEqual([]);
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);
    // The echo settles the pending item: it is counted once, not twice.
    session.fromServer(f, added(text('u1', 'user', 200), null));
    expect(f.tracker.total()).toBe(54);
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream).toHaveLength(1);
    expect(session.reports.filter((r) => r.kind === 'prune')).toHaveLength(1);
  });
});
