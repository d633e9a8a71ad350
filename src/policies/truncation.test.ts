import { describe, expect, it } from 'vitest';
import { FakeSession, LoggedSession } from '../../test/support/fake-session.js';
import { ChainTemplate, type ChainSink } from '../pipeline/chain.js';
import type { FilterFactory, Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import type { Report } from '../pipeline/reports.js';
import type { RealtimeClientEvent } from '../protocol/events.js';
import { policyFrom, textItem, trackerBudget, wire } from '../../test/policies/support.js';
import type { PolicyRegistry } from './registry.js';
import {
  checkPromptPrefix,
  ContextTracker,
  estimateItemTokens,
  INSTRUCTIONS_SHARE,
  instructionsLimit,
  instructionsTokens,
  toolsTokens,
  MAX_PINNED_UNANSWERED_CALLS,
  MAX_REMEMBERED_CALL_ID_CHARS,
  MAX_REMEMBERED_PRUNED_CALLS,
  KEEP_FIRST_SHARE, SYSTEM_SHARE,
  TRUNCATION_FILTER,
  truncationFactory,
  TruncationFilter,
  UNANSWERED_CALLS_SHARE,
} from './truncation.js';

const budget = trackerBudget;

const text = textItem;

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
    // A response with its own input (even an empty one) does not read the conversation: no prune.
    session.fromServer(f, added(text('u2', 'user', 800), 'u1'));
    session.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none', input: [] } }));
    session.fromClient(f, wire({ type: 'response.create', response: { input: [{ type: 'item_reference', id: 'u1' }] } }));
    expect(session.upstream).toHaveLength(1);
    // Out of band without input, it reads the default conversation: pruned like any create.
    session.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none' } }));
    expect(session.upstream).toEqual([
      { type: 'conversation.item.delete', item_id: 'u0' },
      { type: 'conversation.item.delete', item_id: 'u1' },
    ]);
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
    // In the default conversation a count calibrates from the view's parsed usage and prunes.
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r_conv', status: 'completed', conversation_id: 'conv_1', output: [], usage: { input_tokens: 1100, output_tokens: 1 } } }));
    expect(session.conversation.response('r_conv')?.usage?.inputTokens).toBe(1100);
    expect(f.tracker.total()).toBe(1100 - 104);
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
    // 50 tokens, budget 40, target 20: the system message (10) is within half the target.
    // keepFirst within its share of the target too (half of 20): s (10) is pinned, u1 would pass it.
    expect(t.plan(budget(40, { keepFirst: 2 }))!.itemIds).toEqual(['u1', 'u3', 'u4']);
    expect(t.plan(budget(40, { keepFirst: 5 }))!.itemIds).toEqual(['u1', 'u3', 'u4']);
    // Target 40, share 20: both first items fit and stay.
    expect(t.plan(budget(40, { keepFirst: 2, targetRatio: 1 }))!.itemIds).toEqual(['u3']);
    expect(t.plan(budget(40, { keepLast: 2 }))!.itemIds).toEqual(['u1']);
    expect(t.plan(budget(40, { keepSystem: false }))!.itemIds).toEqual(['s', 'u1', 'u3']);
    // Target 0: no system message fits its share; it goes like any item.
    expect(t.plan(budget(10, { targetRatio: 0, keepLast: 2 }))!.itemIds).toEqual(['s', 'u1']);
  });

  it(`pins system messages oldest first while together within ${SYSTEM_SHARE} of the target: exactly at it kept, one token over and that one and every later one may go`, () => {
    expect(SYSTEM_SHARE).toBe(0.5);
    // Budget 200, target 100, the system share 50.
    const conversation = (sizes: number[]) => {
      const t = new ContextTracker();
      sizes.forEach((tokens, k) => t.upsert(text(`s${k + 1}`, 'system', (tokens - 4) * 4), undefined));
      t.upsert(text('u', 'user', 400), undefined); // 104
      return t;
    };
    // 30 + 20 = 50: both pinned; s3 (10), within the share alone, comes after one that does not fit: it goes.
    expect(conversation([30, 20, 60, 10]).plan(budget(200))).toEqual({ itemIds: ['s3', 's4', 'u'], tokensBefore: 224, tokensAfter: 50 });
    // 30 + 21: s2 does not fit, and pinning ends there: s2, s3 may go (oldest first), s1 stays.
    expect(conversation([30, 21, 10]).plan(budget(200))).toBeNull();
    expect(conversation([30, 21, 10, 40]).plan(budget(200))).toEqual({ itemIds: ['s2', 's3', 's4', 'u'], tokensBefore: 205, tokensAfter: 30 });
    // The first system message is not pinned whatever its size: over the share alone, it goes first.
    expect(conversation([51, 10, 50]).plan(budget(200, { keepLast: 1 }))).toEqual({ itemIds: ['s1', 's2', 's3'], tokensBefore: 215, tokensAfter: 104 });
    // Many system messages of any size: what a prune leaves of them is the share (here 50 of 2,000).
    const many = conversation([50, ...Array.from({ length: 20 }, () => 100)]);
    const plan = many.plan(budget(200, { keepLast: 1 }))!;
    expect(plan.itemIds).toEqual(Array.from({ length: 20 }, (_, k) => `s${k + 2}`));
    expect(plan.tokensAfter).toBe(50 + 104);
    // keepFirst has a share of its own (also half the target): s1 (40) is over both (37 of the target
    // 75), so neither pins it, and s2 (10) after it is not pinned either.
    expect(conversation([40, 10]).plan(budget(150, { keepFirst: 1, keepLast: 1 }))).toEqual({ itemIds: ['s1', 's2'], tokensBefore: 154, tokensAfter: 104 });
    // keepSystem: false pins none, whatever their size.
    expect(conversation([10, 10]).plan(budget(110, { keepSystem: false, keepLast: 1 }))!.itemIds).toEqual(['s1', 's2']);
    expect(conversation([10, 10]).plan(budget(110, { keepLast: 1 }))).toBeNull(); // with it, both are within the share (27)
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

  it('an out-of-band response.done does not calibrate but prunes; one without usage (or without a response) still prunes', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(50, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null));
    session.fromServer(f, added(text('u1', 'user', 40), 'u0'));
    expect(session.upstream).toEqual([]);
    // Its usage may be of its own input: not the conversation's. It is a prune point all the same.
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r', conversation_id: null, output: [], usage: { input_tokens: 5000, output_tokens: 1 } } }));
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);
    expect(f.summary()).toEqual({ prunedItems: 1, contextTokensEstimate: 14 });
    session.fromServer(f, added(text('u2', 'user', 400), 'u1'));
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r2', conversation_id: 'conv_1', output: [] } }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0', 'u1', 'u2']);
    session.fromServer(f, added(text('u3', 'user', 400), 'u2'));
    session.fromServer(f, wire({ type: 'response.done' }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0', 'u1', 'u2', 'u3']);
  });

  it('counts a created item as pending until the upstream echoes it (matching type and role)', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(150, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null)); // 104
    session.fromClient(f, wire({ type: 'conversation.item.create', item: text('x', 'user', 200) })); // +54 pending
    session.fromClient(f, wire({ type: 'conversation.item.create' }));
    session.fromClient(f, wire({ type: 'response.create', response: { conversation: 'none', input: [] } }));
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

describe('speech boundaries, edge by edge', () => {
  const audioItem = (id: string, transcript?: string) => ({ id, type: 'message', role: 'user', content: [{ type: 'input_audio', ...(transcript !== undefined ? { transcript } : {}) }] });

  it('an end without a start (or a start without an end) gives no duration', () => {
    const t = new ContextTracker();
    t.upsert(audioItem('u'), null);
    t.speech('u', null, 3000);
    expect(t.total()).toBe(4);
    // A hostile upstream's negative start with no end is not a duration either.
    const v = new ContextTracker();
    v.upsert(audioItem('v'), null);
    v.speech('v', -1000, null);
    expect(v.total()).toBe(4);
  });

  it('a start alone does not resize an item sized from its transcript; a later start keeps the known end', () => {
    const t = new ContextTracker();
    t.upsert(audioItem('u', 'x'.repeat(40)), null); // 4 + 10 × 2
    t.speech('u', 100, null);
    expect(t.total()).toBe(24);
    t.speech('u', 0, 1000);
    expect(t.total()).toBe(4 + 10);
    t.speech('u', 500, null);
    expect(t.total()).toBe(4 + 5);
  });

  it('an empty or backwards span is unknown length: the transcript sizes the item instead', () => {
    const t = new ContextTracker();
    t.upsert(audioItem('u'), null);
    t.speech('u', 700, 700);
    t.transcript('u', 'x'.repeat(40));
    expect(t.total()).toBe(4 + 20);
    const b = new ContextTracker();
    b.upsert(audioItem('b'), null);
    b.speech('b', 900, 200);
    expect(b.total()).toBe(4);
  });
});

describe('items learned over several events', () => {
  it('a system role that arrives only with the item update pins it; a role-less update keeps the known role', () => {
    const t = new ContextTracker();
    // s: 8 tokens, u: 14; budget 21 (target 21, the system share 10).
    t.upsert({ id: 's', type: 'message', status: 'completed', content: [{ type: 'input_text', text: 'x'.repeat(16) }] }, null);
    t.upsert(text('u', 'user', 40), 's');
    expect(t.plan(budget(21, { targetRatio: 1 }))!.itemIds).toEqual(['s']);
    t.upsert(text('s', 'system', 16), null);
    expect(t.plan(budget(21, { targetRatio: 1 }))!.itemIds).toEqual(['u']);
    t.upsert({ id: 's', type: 'message', status: 'completed', content: [{ type: 'input_text', text: 'x'.repeat(16) }] }, null);
    expect(t.plan(budget(21, { targetRatio: 1 }))!.itemIds).toEqual(['u']);
  });

  it('a call id that arrives only with the item update still ties the call to its output', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'fc', type: 'function_call', name: 'f', arguments: '' }, null);
    t.upsert(text('u', 'user', 40), 'fc');
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c1', output: 'x'.repeat(40) }, 'u');
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c1', name: 'f', arguments: '' }, null);
    // The output is pinned as the last item: its call stays with it.
    expect(t.plan(budget(10, { targetRatio: 0, keepLast: 1 }))!.itemIds).toEqual(['u']);
    t.upsert({ id: 'fc', type: 'function_call', name: 'f', arguments: '' }, null);
    expect(t.plan(budget(10, { targetRatio: 0, keepLast: 1 }))!.itemIds).toEqual(['u']);
  });

  it('an item with neither output nor text costs only its framing', () => {
    expect(estimateItemTokens({ type: 'function_call_output' }, null)).toBe(4);
    expect(estimateItemTokens({ type: 'message', role: 'user', content: [{ type: 'input_text' }] }, null)).toBe(4);
  });
});

describe('the prune plan, against any conversation', () => {
  /** Deterministic PRNG (mulberry32): the same conversations on every run. */
  function rng(seed: number) {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /**
   * `maxItems`: conversations of 2 to maxItems + 1 items; `callShare`, `outputShare`: the shares of
   * function calls and of outputs among them (longer conversations with more calls than outputs
   * hold more unanswered calls than are pinned).
   */
  function planProperty(seed: number, maxItems: number, callShare: number, outputShare: number): void {
    const random = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    for (let run = 0; run < 200; run++) {
      const t = new ContextTracker();
      const items: { id: string; type: string; role: string | null; callId: string | null; status: string; tokens: number; byModel: boolean }[] = [];
      const n = 2 + Math.floor(random() * maxItems);
      let calls = 0;
      for (let k = 0; k < n; k++) {
        const id = `i${k}`;
        const status = random() < 0.1 ? 'in_progress' : 'completed';
        const chars = Math.floor(random() * 200);
        let item: Record<string, unknown>;
        const kind = random();
        if (kind < callShare) item = { id, type: 'function_call', call_id: `c${++calls}`, name: 'f', arguments: 'x'.repeat(chars), status };
        else if (kind < callShare + outputShare && calls > 0) item = { id, type: 'function_call_output', call_id: `c${1 + Math.floor(random() * calls)}`, output: 'x'.repeat(chars) };
        else if (kind < callShare + outputShare + 0.05) item = { id, type: 'message', role: 'user', call_id: calls > 0 ? `c${calls}` : 'c0', status, content: [{ type: 'input_text', text: 'x'.repeat(chars) }] };
        else item = { ...text(id, pick(['user', 'assistant', 'system']), chars), status };
        const provenance = pick(['model', 'model', 'client', 'server'] as const);
        t.upsert(item, k === 0 ? null : `i${k - 1}`, provenance);
        items.push({
          id,
          type: item['type'] as string,
          role: (item['role'] as string | undefined) ?? null,
          callId: (item['call_id'] as string | undefined) ?? null,
          status: (item['status'] as string | undefined) ?? 'completed',
          tokens: estimateItemTokens(item, null),
          byModel: provenance === 'model',
        });
      }
      const total = items.reduce((s, i) => s + i.tokens, 0);
      expect(t.total()).toBe(total);
      const b = budget(1 + Math.floor(random() * total * 1.2), { targetRatio: pick([0.1, 0.5, 0.75, 1]), keepFirst: pick([0, 0, 1, 2]), keepLast: pick([0, 1, 2, 3]), keepSystem: random() < 0.7 });
      const pending = pick([0, 0, 25]);
      const pendingCalls = new Set<string>(calls > 0 && random() < 0.3 ? [`c${1 + Math.floor(random() * calls)}`] : []);
      const plan = t.plan(b, pending, pendingCalls);
      const before = total + pending;
      const target = Math.floor(b.maxTokens * b.targetRatio);
      const isCall = (i: (typeof items)[number]) => i.callId !== null && (i.type === 'function_call' || i.type === 'function_call_output');
      const groupOf = (i: (typeof items)[number]) => (isCall(i) ? items.filter((j) => isCall(j) && j.callId === i.callId) : [i]);
      // A call group whose output is pending is kept whole: in pendingCalls, or none in the
      // conversation and among the MAX_PINNED_UNANSWERED_CALLS most recent such calls (by the place of the group's first item).
      const unanswered = (i: (typeof items)[number]) =>
        isCall(i) && !pendingCalls.has(i.callId!) && groupOf(i).some((g) => g.type === 'function_call') && !groupOf(i).some((g) => g.type === 'function_call_output');
      const unansweredCalls = [...new Set(items.filter(unanswered).map((i) => i.callId!))];
      // Newest first: the newest whatever its size when the model made it (each of its call items),
      // then (and a newest the model did not make) while within the count and, with those pinned
      // so far, within the share of the target.
      const recent = new Set<string>();
      let recentTokens = 0;
      for (const callId of [...unansweredCalls].reverse()) {
        const group = items.filter((i) => isCall(i) && i.callId === callId);
        const tokens = group.reduce((sum, i) => sum + i.tokens, 0);
        const newestByModel = recent.size === 0 && group.every((i) => i.type !== 'function_call' || i.byModel);
        if (!newestByModel && (recent.size >= MAX_PINNED_UNANSWERED_CALLS || recentTokens + tokens > Math.floor(Math.floor(b.maxTokens * b.targetRatio) * UNANSWERED_CALLS_SHARE))) break;
        recent.add(callId);
        recentTokens += tokens;
      }
      const awaited = (i: (typeof items)[number]) => isCall(i) && (pendingCalls.has(i.callId!) || (unanswered(i) && recent.has(i.callId!)));
      // System messages (keepSystem): the oldest, while together within their share of the target.
      const systemPinned = new Set<(typeof items)[number]>();
      let systemTokens = 0;
      for (const i of b.keepSystem ? items.filter((j) => j.role === 'system') : []) {
        if (systemTokens + i.tokens > Math.floor(Math.floor(b.maxTokens * b.targetRatio) * SYSTEM_SHARE)) break;
        systemPinned.add(i);
        systemTokens += i.tokens;
      }
      // The first keepFirst: oldest first, while together within their share of the target.
      const firstPinned = new Set<(typeof items)[number]>();
      let firstTokens = 0;
      for (const i of items.slice(0, b.keepFirst)) {
        if (firstTokens + i.tokens > Math.floor(Math.floor(b.maxTokens * b.targetRatio) * KEEP_FIRST_SHARE)) break;
        firstPinned.add(i);
        firstTokens += i.tokens;
      }
      const pinned = (i: (typeof items)[number]) => {
        const idx = items.indexOf(i);
        return firstPinned.has(i) || idx >= items.length - b.keepLast || systemPinned.has(i) || i.status === 'in_progress' || awaited(i);
      };
      const deletable = (i: (typeof items)[number]) => !groupOf(i).some(pinned);
      const context = JSON.stringify({ run, items, b, pending, pendingCalls: [...pendingCalls] });
      if (before <= b.maxTokens) {
        expect(plan, context).toBeNull();
        continue;
      }
      // What stays pinned for the session's life (keepFirst, the system share; no overhead here)
      // over maxTokens: nothing until what may go exceeds maxTokens − target.
      const lasting = items.filter((i) => firstPinned.has(i) || systemPinned.has(i)).reduce((sum, i) => sum + i.tokens, 0);
      const prunable = items.filter(deletable).reduce((sum, i) => sum + i.tokens, 0);
      if (lasting > b.maxTokens && prunable <= b.maxTokens - target) {
        expect(plan, context).toBeNull();
        continue;
      }
      if (plan === null) {
        // Over budget with nothing deleted: only when every item is pinned (or tied to a pinned one).
        expect(items.some(deletable), context).toBe(false);
        continue;
      }
      const deleted = items.filter((i) => plan.itemIds.includes(i.id));
      // In conversation order, each once, never a pinned item, never half a call.
      expect(plan.itemIds, context).toEqual(deleted.map((i) => i.id));
      for (const i of deleted) {
        expect(pinned(i), context).toBe(false);
        for (const g of groupOf(i)) expect(plan.itemIds, context).toContain(g.id);
      }
      // Exact accounting: what the report says is what is left.
      expect(plan.tokensBefore, context).toBe(before);
      expect(plan.tokensAfter, context).toBe(before - deleted.reduce((s, i) => s + i.tokens, 0));
      // Down to the target, unless nothing deletable is left.
      const kept = items.filter((i) => !plan.itemIds.includes(i.id));
      if (plan.tokensAfter > target) expect(kept.some(deletable), context).toBe(false);
      // Oldest first: nothing deletable is kept before the newest deletion…
      const newest = Math.max(...deleted.map((i) => items.indexOf(groupOf(i)[0]!)));
      for (const i of kept.filter((k) => items.indexOf(k) < newest)) expect(deletable(i), context).toBe(false);
      // …and it stops once under the target: without the newest group the context was still over it.
      const newestGroup = groupOf(items[newest]!);
      expect(plan.tokensAfter + newestGroup.reduce((s, i) => s + i.tokens, 0), context).toBeGreaterThan(target);
    }
  }

  it('stays within budget, deletes oldest first, never a pinned item, never half a call, and counts each item once', () => {
    planProperty(16, 12, 0.2, 0.15);
  });

  it('the same with many calls, most never answered: only the most recent unanswered calls are pinned', () => {
    planProperty(61, 40, 0.5, 0.1);
  });

  it('a call and its output are counted once, so the plan does not stop short of the target', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c1', name: 'f', arguments: 'x'.repeat(36) }, null); // 14
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c1', output: 'x'.repeat(24) }, 'fc'); // 10
    t.upsert(text('u1', 'user', 24), 'fo'); // 10
    t.upsert(text('u2', 'user', 24), 'u1'); // 10
    expect(t.plan(budget(40, { targetRatio: 0.25 }))).toEqual({ itemIds: ['fc', 'fo', 'u1'], tokensBefore: 44, tokensAfter: 10 });
  });

  it('a message that carries a call id is not deleted with the call', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'm', type: 'message', role: 'user', call_id: 'c1', content: [{ type: 'input_text', text: 'x'.repeat(24) }] }, null); // 10
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c1', name: 'f', arguments: 'x'.repeat(36) }, 'm'); // 14
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c1', output: 'x'.repeat(24) }, 'fc'); // 10
    expect(t.plan(budget(30, { targetRatio: 0.8 }))).toEqual({ itemIds: ['m'], tokensBefore: 34, tokensAfter: 24 });
  });
});

describe('truncation filter, the client and the upstream in between', () => {
  const added = (item: object, prev: string | null, type = 'conversation.item.added') => wire({ type, previous_item_id: prev, item });
  const create = (item: object) => wire({ type: 'conversation.item.create', item });
  const responseCreate = () => wire({ type: 'response.create' });

  it('an echoed item settles the pending item of its own type and role, not another', () => {
    // Pending: a big assistant message and a small user message; the upstream echoes the user one.
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(200, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 40), null)); // 14
    session.fromClient(f, create(text('x', 'assistant', 400))); // +104 pending
    session.fromClient(f, create(text('y', 'user', 40))); // +14 pending
    session.fromServer(f, added(text('y', 'user', 40), 'u0'));
    // Left pending: the assistant message (104) + tracked 28 = 132: under 200.
    session.fromClient(f, responseCreate());
    expect(session.upstream).toEqual([]);
    // The assistant one echoes too: 132 tracked, nothing pending.
    session.fromServer(f, added(text('x', 'assistant', 400), 'y'));
    session.fromClient(f, responseCreate());
    expect(session.upstream).toEqual([]);
    expect(f.tracker.total()).toBe(132);
  });

  it('an echo of a message with the same role but another type does not settle it', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(200, { targetRatio: 0.5, keepLast: 1 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 40), null)); // 14
    session.fromClient(f, create({ type: 'function_call_output', call_id: 'c', output: 'x'.repeat(400) })); // +104 pending, no role
    session.fromClient(f, create({ type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(40) })); // +15 pending, no role
    session.fromServer(f, added({ id: 'fc', type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(40) }, 'u0'));
    // Settled: the call (15). Still pending: its output (104). 29 + 104 = 133: under budget.
    session.fromClient(f, responseCreate());
    expect(session.upstream).toEqual([]);
    // Another 74 tokens tip it over (the output still counts as pending: 133 + 74 = 207 > 200); the newest item is kept,
    // and so is the call: its output is on its way upstream (deleting the call would leave the output without it).
    session.fromServer(f, added(text('u1', 'user', 280), 'fc'));
    session.fromClient(f, responseCreate());
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0']);
  });

  it('an item shown twice (added, then created or done) settles one pending item, not two', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(150, { targetRatio: 0.5 }), 'test');
    session.fromClient(f, create(text('a', 'user', 200))); // 54
    session.fromClient(f, create(text('b', 'user', 200))); // 54
    session.fromServer(f, added(text('a', 'user', 200), null));
    session.fromServer(f, added(text('a', 'user', 200), null, 'conversation.item.created'));
    session.fromServer(f, added(text('a', 'user', 200), null, 'conversation.item.done'));
    // `b` is still pending: 54 tracked + 54 pending = 108, plus 50 more puts it over.
    session.fromServer(f, added(text('c', 'assistant', 184), 'a')); // 50
    session.fromClient(f, responseCreate());
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['a', 'c']);
  });

  it('a call is never deleted while its output is pending: not answered yet, or answered and not echoed yet', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(100, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 40), null)); // 14
    // The model's call (a response's output item): the newest unanswered call, kept whatever its size.
    const fc = { id: 'fc', type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(400) };
    session.fromServer(f, wire({ type: 'response.output_item.added', response_id: 'r1', output_index: 0, item: fc }));
    session.fromServer(f, added(fc, 'u0')); // 105
    // Right after the call's response.done: the client is running the function; only the message goes.
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r1', conversation_id: 'conv_1', output: [] } }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0']);
    // The output and a response.create back to back: the output is not echoed yet, the call stays.
    session.fromClient(f, create({ type: 'function_call_output', call_id: 'c', output: 'x'.repeat(40) }));
    session.fromClient(f, responseCreate());
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0']);
    // Another call's output pending does not hold this one: the echo pairs by call_id.
    session.fromServer(f, added({ id: 'fo', type: 'function_call_output', call_id: 'c', output: 'x'.repeat(40) }, 'fc'));
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r2', conversation_id: 'conv_1', output: [] } }));
    // Answered and echoed: the call and its output go together.
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0', 'fc', 'fo']);
  });

  it('an output echoed for another call does not settle the pending output of this one', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(400) }, null);
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c', output: '' }, 'fc');
    t.upsert(text('u', 'user', 400), 'fo');
    expect(t.plan(budget(100, { targetRatio: 0 }), 0, new Set(['c']))!.itemIds).toEqual(['u']);
    expect(t.plan(budget(100, { targetRatio: 0 }), 0, new Set(['other']))!.itemIds).toEqual(['fc', 'fo', 'u']);
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(100, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added({ id: 'fc', type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(400) }, null));
    session.fromClient(f, create({ type: 'function_call_output', call_id: 'c', output: 'x' }));
    session.fromClient(f, create({ type: 'function_call_output', call_id: 'd', output: 'x' }));
    session.fromServer(f, added({ id: 'fd', type: 'function_call_output', call_id: 'd', output: 'x' }, 'fc'));
    session.fromClient(f, responseCreate());
    // fd (its call unknown) may go; fc waits for its own output.
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['fd']);
  });

  it('items the client creates with no response.create are pruned when their echo pushes the total over budget (not a response\'s own items)', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(250, { targetRatio: 0.5, keepLast: 1 }), 'test');
    // The server's own items (a response's output, or anything the client did not create) wait for a prune point.
    session.fromServer(f, added(text('s0', 'user', 400), null)); // 104
    session.fromServer(f, added(text('s1', 'user', 400), 's0')); // 104
    session.fromServer(f, added(text('s2', 'user', 400), 's1')); // 104
    expect(session.upstream).toEqual([]);
    // A client item's echo: 416 > 250, pruned down to 125 at once (server VAD may answer the next spoken turn with no client event).
    session.fromClient(f, create(text('c0', 'user', 400)));
    session.fromServer(f, added(text('c0', 'user', 400), 's2'));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['s0', 's1', 's2']);
    expect(session.reports.filter((r) => r.kind === 'prune')).toHaveLength(1);
    // While a response runs, its response.done is the prune point.
    session.fromServer(f, wire({ type: 'response.created', response: { id: 'r1', conversation_id: 'conv_1', status: 'in_progress', output: [] } }));
    session.fromClient(f, create(text('c1', 'user', 800)));
    session.fromServer(f, added(text('c1', 'user', 800), 'c0'));
    expect(session.upstream).toHaveLength(3);
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r1', conversation_id: 'conv_1', status: 'completed', output: [] } }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['s0', 's1', 's2', 'c0']);
  });

  it('a committed spoken turn sized by its transcript is pruned for before the hold\'s own response.create', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(150, { targetRatio: 0.5, keepLast: 1 }), 'test');
    session.fromServer(f, added(text('s0', 'user', 400), null)); // 104
    session.fromServer(f, wire({ type: 'input_audio_buffer.committed', item_id: 'turn', previous_item_id: 's0' }));
    session.fromServer(f, added({ id: 'turn', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, 's0')); // 4
    expect(session.upstream).toEqual([]);
    // The transcript sizes it (the hold decides the turn on it, then creates the response, skipping the chain).
    session.fromServer(f, wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'turn', content_index: 0, transcript: 'x'.repeat(200) }));
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 's0' }]);
  });

  it('prunes in conversation order (previous_item_id), not in arrival order', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(50, { targetRatio: 1, keepFirst: 1 }), 'test');
    session.fromServer(f, added(text('a', 'user', 80), null)); // 24
    session.fromServer(f, added(text('b', 'user', 80), 'a'));
    session.fromServer(f, added(text('c', 'user', 80), 'a')); // between a and b
    expect(f.tracker.ids()).toEqual(['a', 'c', 'b']);
    session.fromClient(f, responseCreate());
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'c' }]);
  });

  it('without a budget, even a response.done over any size changes nothing', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, null, 'test');
    session.fromServer(f, added(text('u0', 'user', 100_000), null));
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r', conversation_id: 'conv_1', output: [], usage: { input_tokens: 90_000, output_tokens: 1 } } }));
    expect(session.upstream).toEqual([]);
    expect(f.tracker.size).toBe(0);
  });

  it('a truncation without a numeric audio_end_ms changes no size', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(100_000), 'test');
    session.fromServer(f, added({ id: 'a', type: 'message', role: 'assistant', content: [{ type: 'output_audio', transcript: 'x'.repeat(40) }] }, null)); // 4 + 30
    session.fromServer(f, wire({ type: 'conversation.item.truncated', item_id: 'a', content_index: 0, audio_end_ms: '100' }));
    session.fromServer(f, wire({ type: 'conversation.item.truncated', content_index: 0, audio_end_ms: 100 }));
    expect(f.tracker.total()).toBe(34);
  });

  it('the operator log names the policy, the trigger, the items and the tokens of each prune', () => {
    const session = new LoggedSession();
    const { lines } = session;
    const f = new TruncationFilter(session, budget(100, { targetRatio: 0.5, keepLast: 1 }), 'support');
    session.fromServer(f, added(text('u0', 'user', 400), null));
    session.fromServer(f, added(text('u1', 'user', 40), 'u0'));
    session.fromClient(f, responseCreate());
    session.fromServer(f, added(text('u2', 'user', 400), 'u1'));
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r', conversation_id: 'conv_1', output: [] } }));
    expect(lines.map(({ policy, trigger, items, tokensBefore, tokensAfter, maxTokens, msg }) => ({ policy, trigger, items, tokensBefore, tokensAfter, maxTokens, msg }))).toEqual([
      { policy: 'support', trigger: 'response.create', items: 1, tokensBefore: 118, tokensAfter: 14, maxTokens: 100, msg: 'conversation pruned to the context budget' },
      { policy: 'support', trigger: 'response.done', items: 1, tokensBefore: 118, tokensAfter: 104, maxTokens: 100, msg: 'conversation pruned to the context budget' },
    ]);
  });
});

describe('truncation through the filter chain (as the relay runs it)', () => {
  const BUDGET = 'truncation:\n  budget: { maxTokens: 1000, targetRatio: 0.5, keepFirst: 0, keepLast: 0 }\n';

  class Sink implements ChainSink {
    readonly forwarded: string[] = [];
    forward(direction: 'client' | 'server', frame: Frame): void {
      this.forwarded.push(`${direction}:${frame.type}`);
    }
    forwardInjected(frame: Frame, by: string): void {
      this.forwarded.push(`injected by ${by}:${frame.type}`);
    }
    reject(): void {
      throw new Error('no frame may be refused');
    }
    close(): void {
      throw new Error('no session may be closed');
    }
    stopped(): void {}
  }

  async function setup(yaml: string, session = new FakeSession()) {
    const policy = await policyFrom(yaml);
    const registry = { resolve: () => ({ current: policy, name: 'support' }) } as unknown as PolicyRegistry;
    const reports: Report[] = [];
    const observer: FilterFactory = { name: 'observer', wants: {}, create: () => ({ onReport: (r) => void reports.push(r) }) };
    const factory = truncationFactory(registry);
    const sink = new Sink();
    const chain = new ChainTemplate([factory, observer]).instantiate(session, sink);
    const estimate = () => chain.summaries()['contextTokensEstimate'];
    return {
      session,
      sink,
      reports,
      chain,
      factory,
      estimate,
      server: (event: { type: string; [k: string]: unknown }) => {
        const frame = wire(event);
        session.conversation.observeServer(frame);
        chain.fromServer(frame);
      },
      client: (event: { type: string; [k: string]: unknown }) => chain.fromClient(wire(event)),
    };
  }

  it('every event that changes the conversation reaches the pruner, and every frame is forwarded', async () => {
    const { server, client, estimate, session, sink, factory } = await setup(BUDGET);
    expect(factory.name).toBe(TRUNCATION_FILTER);
    expect(TRUNCATION_FILTER).toBe('policies.truncation');
    server({ type: 'input_audio_buffer.speech_started', item_id: 'u', audio_start_ms: 1000 });
    server({ type: 'input_audio_buffer.speech_stopped', item_id: 'u', audio_end_ms: 4000 });
    server({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'u', type: 'message', role: 'user', content: [{ type: 'input_audio' }] } });
    expect(estimate()).toBe(4 + 30);
    server({ type: 'conversation.item.created', previous_item_id: 'u', item: { id: 'w', type: 'message', role: 'user', content: [{ type: 'input_audio' }] } });
    server({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'w', content_index: 0, transcript: 'x'.repeat(80) });
    expect(estimate()).toBe(34 + 4 + 40);
    server({ type: 'conversation.item.added', previous_item_id: 'w', item: { id: 'a', type: 'message', role: 'assistant', status: 'in_progress', content: [] } });
    server({ type: 'conversation.item.done', previous_item_id: 'w', item: { id: 'a', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_audio', transcript: 'x'.repeat(400) }] } });
    expect(estimate()).toBe(78 + 304);
    server({ type: 'conversation.item.truncated', item_id: 'a', content_index: 0, audio_end_ms: 1000 });
    expect(estimate()).toBe(78 + 24);
    server({ type: 'conversation.item.deleted', item_id: 'u' });
    expect(estimate()).toBe(44 + 24);
    expect(session.upstream).toEqual([]);
    // A created item counts before its echo: the response.create that follows prunes first.
    client({ type: 'conversation.item.create', item: text('big', 'user', 4000) }); // 1004 pending
    client({ type: 'response.create' });
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['w', 'a']);
    server({ type: 'conversation.item.added', previous_item_id: 'a', item: text('big', 'user', 4000) });
    expect(estimate()).toBe(1004);
    // response.done calibrates from usage and prunes again (only `big` is there, and it is unpinned).
    server({ type: 'response.done', response: { id: 'r1', status: 'completed', conversation_id: 'conv_1', output: [], usage: { input_tokens: 1500, output_tokens: 0 } } });
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['w', 'a', 'big']);
    expect(sink.forwarded.filter((f) => f.startsWith('client:'))).toEqual(['client:conversation.item.create', 'client:response.create']);
    expect(sink.forwarded.filter((f) => f.startsWith('server:'))).toHaveLength(11);
  });

  it('a policy without a budget never prunes', async () => {
    const { server, client, session, chain } = await setup('description: no budget\n');
    server({ type: 'conversation.item.added', previous_item_id: null, item: text('u', 'user', 100_000) });
    client({ type: 'response.create' });
    expect(session.upstream).toEqual([]);
    expect(chain.summaries()).toEqual({});
  });

  it('fails open: when pruning itself fails, the response.create still goes through and the failure is reported', async () => {
    class Broken extends FakeSession {
      override sendUpstream(_event: RealtimeClientEvent): void {
        throw new Error('socket gone');
      }
    }
    const { server, client, sink, reports } = await setup(BUDGET, new Broken());
    server({ type: 'conversation.item.added', previous_item_id: null, item: text('u', 'user', 8000) });
    client({ type: 'response.create' });
    expect(sink.forwarded.at(-1)).toBe('client:response.create');
    expect(reports).toContainEqual({ kind: 'filter_error', filter: 'policies.truncation', direction: 'client', eventType: 'response.create' });
  });
});

describe('pending items, against a hostile upstream', () => {
  const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });

  it('an echo without an id settles nothing: the created item still counts', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(100, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 40), null)); // 14
    session.fromClient(f, wire({ type: 'conversation.item.create', item: text('x', 'user', 400) })); // 104 pending
    session.fromServer(f, added({ type: 'message', role: 'user', content: [] }, 'u0'));
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);
  });

  it('an echo settles the pending item of its own role: the other one still counts', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(100, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 40), null)); // 14
    session.fromClient(f, wire({ type: 'conversation.item.create', item: text('x', 'assistant', 400) })); // 104 pending
    session.fromClient(f, wire({ type: 'conversation.item.create', item: text('y', 'user', 40) })); // 14 pending
    session.fromServer(f, added(text('y', 'user', 40), null)); // at the start of the conversation
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['y', 'u0']);
  });
});

describe('unanswered function calls: pinned while the client may still answer, not for good', () => {
  const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });
  /** 14 tokens. */
  const call = (n: number | string, id = `fc${n}`) => ({ id, type: 'function_call', call_id: `c${n}`, name: 'f', arguments: 'x'.repeat(36) });
  const output = (n: number | string, id = `fo${n}`, chars = 24) => ({ id, type: 'function_call_output', call_id: `c${n}`, output: 'x'.repeat(chars) });
  const calls = (t: ContextTracker, from: number, to: number) => {
    for (let n = from; n <= to; n++) t.upsert(call(n), undefined);
  };
  /**
   * A message in progress (pinned whatever its size and place) of SYS tokens, over the budget of
   * `everything` (SYS + 100) by itself and over its target (half that): every plan under it deletes
   * all it may, while 8 calls of 14 tokens (112) fit within the share of the target the unanswered
   * calls may take (276). (Until 2026-12-06 a system message: those are pinned within a share now.)
   */
  const SYS = 1004;
  const sys = () => ({ ...text('sys', 'user', 4000), status: 'in_progress' });
  const everything = budget(SYS + 100, { targetRatio: 0.5 });
  /** A tracker holding the message in progress. */
  const tracker = () => {
    const t = new ContextTracker();
    t.upsert(sys(), null);
    return t;
  };

  it(`keeps the ${MAX_PINNED_UNANSWERED_CALLS} most recent unanswered calls; one more and the oldest goes, oldest first`, () => {
    expect(MAX_PINNED_UNANSWERED_CALLS).toBe(8);
    const t = tracker();
    t.upsert(text('m', 'user', 24), null);
    calls(t, 1, 8);
    // Exactly at the bound: every unanswered call is pinned, only the message goes.
    expect(t.plan(everything)).toEqual({ itemIds: ['m'], tokensBefore: SYS + 10 + 8 * 14, tokensAfter: SYS + 8 * 14 });
    // One over: the oldest call is deleted like any item, in conversation order.
    t.upsert(call(9), undefined);
    expect(t.plan(everything)!.itemIds).toEqual(['m', 'fc1']);
    calls(t, 10, 11);
    expect(t.plan(everything)!.itemIds).toEqual(['m', 'fc1', 'fc2', 'fc3']);
    // Oldest first, and no further than the target: with room for all but the oldest, only it goes.
    expect(t.plan(budget(SYS + 10 + 11 * 14 - 1, { targetRatio: 1 }))!.itemIds).toEqual(['m']);
    expect(t.plan(budget(SYS + 11 * 14 - 1, { targetRatio: 1 }))!.itemIds).toEqual(['m', 'fc1']);
  });

  it('"most recent" is the place in the conversation, not the order of arrival', () => {
    const t = tracker();
    calls(t, 1, 8);
    t.upsert(call(0), null); // arrives last, placed first: the oldest
    expect(t.plan(everything)!.itemIds).toEqual(['fc0']);
  });

  it('a call whose output the client has sent is always kept, and takes no place among the unanswered ones', () => {
    const t = tracker();
    t.upsert(text('m', 'user', 24), null);
    calls(t, 1, 9);
    // c1's output is on its way: kept, and c2…c9 are the 8 most recent unanswered.
    expect(t.plan(everything, 0, new Set(['c1']))!.itemIds).toEqual(['m']);
    // c9's output is on its way: c1…c8 are the 8 unanswered, all kept.
    expect(t.plan(everything, 0, new Set(['c9']))!.itemIds).toEqual(['m']);
    // Another call's output pending keeps nothing here.
    expect(t.plan(everything, 0, new Set(['c10']))!.itemIds).toEqual(['m', 'fc1']);
  });

  it('an answered call is not unanswered: it takes no place, and goes with its output', () => {
    const t = tracker();
    t.upsert(text('m', 'user', 24), null);
    calls(t, 1, 10);
    t.upsert(output(5), undefined);
    // c5 answered: of the other 9 unanswered, the oldest (c1) goes; c5 goes with its output.
    expect(t.plan(everything)!.itemIds).toEqual(['m', 'fc1', 'fc5', 'fo5']);
  });

  it('a call with several outputs goes with all of them; an output without its call is no unanswered call', () => {
    const t = tracker();
    calls(t, 1, 10);
    t.upsert(output(3, 'fo3a'), undefined);
    t.upsert(output(3, 'fo3b'), undefined);
    t.upsert(output('x'), undefined); // its call unknown
    // Unanswered: c1, c2, c4…c10 (9): c1 goes; c3 with both its outputs; the lone output too.
    expect(t.plan(everything)!.itemIds).toEqual(['fc1', 'fc3', 'fo3a', 'fo3b', 'fox']);
  });

  it('two call items with one call id are one unanswered call (one place), deleted together', () => {
    const t = tracker();
    t.upsert(call(1, 'fc1a'), undefined);
    t.upsert(call(1, 'fc1b'), undefined);
    calls(t, 2, 9);
    expect(t.plan(everything)!.itemIds).toEqual(['fc1a', 'fc1b']);
    const u = tracker();
    calls(u, 1, 7);
    u.upsert(call(1, 'again'), undefined);
    // 7 calls, one of them twice: 7 unanswered, all kept.
    expect(u.plan(everything)).toBeNull();
  });

  it('unansweredCall: the call id of a function_call with no output in the conversation, else null', () => {
    const t = tracker();
    t.upsert(call(1), undefined);
    t.upsert(call(2), undefined);
    t.upsert(output(2), undefined);
    t.upsert({ id: 'nocall', type: 'function_call', name: 'f', arguments: '' }, undefined);
    t.upsert({ id: 'm', type: 'message', role: 'user', call_id: 'c1', content: [] }, undefined);
    t.upsert({ id: 'other', type: 'message', role: 'user', call_id: 'c3', content: [] }, undefined);
    t.upsert(call(3), undefined);
    expect(t.unansweredCall('fc1')).toBe('c1');
    expect(t.unansweredCall('fc2')).toBeNull();
    expect(t.unansweredCall('fo2')).toBeNull();
    expect(t.unansweredCall('nocall')).toBeNull();
    expect(t.unansweredCall('m')).toBeNull();
    expect(t.unansweredCall('missing')).toBeNull();
    // A message carrying the call id is no output.
    expect(t.unansweredCall('fc3')).toBe('c3');
  });

  /** A filter whose conversation holds the message in progress and `n` unanswered calls c1…cn, pruned after a response.done (budget SYS + 100: the oldest n − 8 go). */
  function pruned(n: number, maxTokens = 100) {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(SYS + maxTokens, { targetRatio: 0.5 }), 'test');
    session.fromServer(f, added(sys(), null));
    let prev: string | null = 'sys';
    for (let k = 1; k <= n; k++) {
      session.fromServer(f, added(call(k), prev));
      prev = `fc${k}`;
    }
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r1', conversation_id: 'conv_1', output: [] } }));
    return { session, f };
  }
  const outputCreate = (n: number | string, eventId: string, chars = 24) => wire({ type: 'conversation.item.create', event_id: eventId, item: { type: 'function_call_output', call_id: `c${n}`, output: 'x'.repeat(chars) } });

  it('a late output for a call the proxy deleted unanswered is refused (function_call_pruned, its event_id echoed), and never counts as pending', () => {
    const { session, f } = pruned(9, 120);
    expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'fc1' }]);
    session.fromServer(f, wire({ type: 'conversation.item.deleted', item_id: 'fc1' }));
    session.fromServer(f, added(text('u', 'user', 4), 'fc9')); // SYS + 8 × 14 + 5 = SYS + 117: under SYS + 120
    const v = session.fromClient(f, outputCreate(1, 'evt_late', 400)) as Verdict;
    expect(v.kind).toBe('reject');
    if (v.kind !== 'reject') return;
    expect(v.error.code).toBe('function_call_pruned');
    expect(v.error.toEvent('event_proxy_1')).toEqual({
      type: 'error',
      event_id: 'event_proxy_1',
      error: {
        type: 'invalid_request_error',
        code: 'function_call_pruned',
        message: 'The function call this output answers was deleted from the conversation to keep it within the context budget; the output was not relayed.',
        param: 'item.call_id',
        event_id: 'evt_late',
        details: { call_id: 'c1' },
      },
    });
    expect(v.error.closesSession).toBe(false);
    // Refused again on a retry (without an event_id: none echoed).
    expect(session.fromClient(f, wire({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'c1', output: 'x' } }))).toMatchObject({ kind: 'reject', error: { code: 'function_call_pruned', eventId: null } });
    // The refused output's 104 tokens are not pending: a response.create finds the context under budget.
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream).toHaveLength(1);
    // An output for a kept call goes through, and counts until echoed: now over budget, u goes.
    expect((session.fromClient(f, outputCreate(2, 'evt_ok', 400)) as Verdict).kind).toBe('continue');
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['fc1', 'u']);
  });

  it('only outputs are refused, only for calls deleted unanswered', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, everything, 'test');
    session.fromServer(f, added(sys(), null));
    session.fromServer(f, added(call('a'), 'sys'));
    session.fromServer(f, added(output('a'), 'fca'));
    let prev = 'foa';
    for (let k = 1; k <= 9; k++) {
      session.fromServer(f, added(call(k), prev));
      prev = `fc${k}`;
    }
    session.fromServer(f, wire({ type: 'response.done', response: { id: 'r1', conversation_id: 'conv_1', output: [] } }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['fca', 'foa', 'fc1']);
    // The answered call went with its output: another output for it is the upstream's business.
    expect((session.fromClient(f, outputCreate('a', 'e1')) as Verdict).kind).toBe('continue');
    // Other items naming the deleted call's id are not outputs.
    expect((session.fromClient(f, wire({ type: 'conversation.item.create', item: { id: 'm', type: 'message', role: 'user', call_id: 'c1', content: [] } })) as Verdict).kind).toBe('continue');
    expect((session.fromClient(f, wire({ type: 'conversation.item.create', item: call(1, 'again') })) as Verdict).kind).toBe('continue');
    expect((session.fromClient(f, wire({ type: 'conversation.item.create' })) as Verdict).kind).toBe('continue');
    expect(session.fromClient(f, outputCreate(1, 'e2'))).toMatchObject({ kind: 'reject' });
  });

  it('a call created again with the id of a deleted one can be answered: its echo, not another item naming the id, forgets the deletion', () => {
    const { session, f } = pruned(10);
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['fc1', 'fc2']);
    // A message carrying c1, and another call's echo: c1 is still refused.
    session.fromServer(f, added({ id: 'm', type: 'message', role: 'user', call_id: 'c1', content: [] }, 'fc10'));
    session.fromServer(f, added(call(11), 'm'));
    expect(session.fromClient(f, outputCreate(1, 'e1'))).toMatchObject({ kind: 'reject' });
    // The client puts the call back (history replay): the upstream echoes it, its output goes through.
    session.fromServer(f, added(call(1, 'fc1_again'), 'fc11'));
    expect((session.fromClient(f, outputCreate(1, 'e2')) as Verdict).kind).toBe('continue');
    expect(session.fromClient(f, outputCreate(2, 'e3'))).toMatchObject({ kind: 'reject' });
  });

  it(`remembers the most recent ${MAX_REMEMBERED_PRUNED_CALLS} deleted calls, each id of at most ${MAX_REMEMBERED_CALL_ID_CHARS} characters`, () => {
    expect(MAX_REMEMBERED_PRUNED_CALLS).toBe(256);
    const { session, f } = pruned(MAX_REMEMBERED_PRUNED_CALLS + 1 + MAX_PINNED_UNANSWERED_CALLS);
    expect(session.upstream).toHaveLength(MAX_REMEMBERED_PRUNED_CALLS + 1);
    // The oldest is forgotten: its output is relayed (the upstream decides); the next is still refused.
    expect((session.fromClient(f, outputCreate(1, 'e1')) as Verdict).kind).toBe('continue');
    expect(session.fromClient(f, outputCreate(2, 'e2'))).toMatchObject({ kind: 'reject' });
    expect(session.fromClient(f, outputCreate(MAX_REMEMBERED_PRUNED_CALLS + 1, 'e3'))).toMatchObject({ kind: 'reject' });
    // Ids: up to the bound remembered, longer ones not.
    const long = new FakeSession();
    const g = new TruncationFilter(long, everything, 'test');
    long.fromServer(g, added(sys(), null));
    const atBound = 'y'.repeat(MAX_REMEMBERED_CALL_ID_CHARS - 1);
    const over = 'z'.repeat(MAX_REMEMBERED_CALL_ID_CHARS);
    long.fromServer(g, added(call(atBound, 'fa'), 'sys')); // call id `c${atBound}`: exactly the bound
    long.fromServer(g, added(call(over, 'fb'), 'fa')); // one over
    let prev = 'fb';
    for (let k = 1; k <= MAX_PINNED_UNANSWERED_CALLS; k++) {
      long.fromServer(g, added(call(k), prev));
      prev = `fc${k}`;
    }
    long.fromServer(g, wire({ type: 'response.done', response: { id: 'r1', conversation_id: 'conv_1', output: [] } }));
    expect(long.upstream.map((e) => e['item_id'])).toEqual(['fa', 'fb']);
    expect(long.fromClient(g, outputCreate(atBound, 'e4'))).toMatchObject({ kind: 'reject' });
    expect((long.fromClient(g, outputCreate(over, 'e5')) as Verdict).kind).toBe('continue');
  });

  /** A call of `tokens` tokens (4 framing + 1 name + arguments). */
  const sized = (n: number, tokens: number) => ({ ...call(n), arguments: 'x'.repeat((tokens - 5) * 4) });

  it(`older unanswered calls are pinned only while, with the newest, they stay within ${UNANSWERED_CALLS_SHARE} of the target: exactly at it kept, one token over and the oldest go`, () => {
    expect(UNANSWERED_CALLS_SHARE).toBe(0.5);
    // everything: target 552, share 276.
    const at = tracker();
    at.upsert(sized(1, 10), undefined);
    at.upsert(sized(2, 76), undefined);
    at.upsert(sized(3, 100), undefined);
    at.upsert(sized(4, 100), undefined);
    // 100 + 100 + 76 = 276: exactly the share, all three kept; c1 is the fourth, and no more fits.
    expect(at.plan(everything)).toEqual({ itemIds: ['fc1'], tokensBefore: SYS + 286, tokensAfter: SYS + 276 });
    const over = tracker();
    over.upsert(sized(1, 10), undefined);
    over.upsert(sized(2, 77), undefined);
    over.upsert(sized(3, 100), undefined);
    over.upsert(sized(4, 100), undefined);
    // 277: c2 does not fit, and pinning ends there: c1, small enough to fit, goes too (a kept
    // unanswered call is never older than a deleted one).
    expect(over.plan(everything)).toEqual({ itemIds: ['fc1', 'fc2'], tokensBefore: SYS + 287, tokensAfter: SYS + 200 });
    // The count still bounds small calls: 9 of 12 tokens (108, within the share), the oldest goes.
    const small = tracker();
    for (let n = 1; n <= 9; n++) small.upsert(sized(n, 12), undefined);
    expect(small.plan(everything)!.itemIds).toEqual(['fc1']);
  });

  it('the newest unanswered call, when the model made it, is kept whatever its size (even alone over the budget); no older one is, and later items go before it', () => {
    const t = new ContextTracker();
    t.upsert(call(1), undefined); // 14
    t.upsert(call(2), undefined); // 14
    t.upsert(sized(3, 500), undefined, 'model');
    t.upsert(text('m', 'user', 24), undefined); // 10, after the call
    // Budget 100 (target 50, share 25): the 500-token call stays; the rest goes, the message after it too.
    expect(t.plan(budget(100, { targetRatio: 0.5 }))).toEqual({ itemIds: ['fc1', 'fc2', 'm'], tokensBefore: 538, tokensAfter: 500 });
    // Within the budget but over the share by itself (target 39, share 19): the newest keeps no
    // older call, though deleting that one is enough to get under the target.
    const u = new ContextTracker();
    u.upsert(call(1), undefined);
    u.upsert(sized(2, 26), undefined, 'model');
    expect(u.plan(budget(39, { targetRatio: 1 }))).toEqual({ itemIds: ['fc1'], tokensBefore: 40, tokensAfter: 26 });
  });

  it('the newest unanswered call the client created (or of unknown origin) is held to the share like the older ones: exactly at it kept, one token over it goes, and so do the older ones', () => {
    expect(SYSTEM_SHARE).toBe(0.5);
    // Budget 100, target 50, share 25.
    for (const provenance of ['client', 'proxy', 'server', undefined] as const) {
      const at = new ContextTracker();
      at.upsert(text('m', 'user', 200), undefined); // 54
      at.upsert(sized(1, 10), undefined, 'model');
      at.upsert(sized(2, 25), undefined, provenance);
      // 89, under the budget: nothing; a message of 30 more takes it over. c2 alone is the share:
      // kept, and the message after it goes before it.
      expect(at.plan(budget(100))).toBeNull();
      at.upsert(text('n', 'user', 104), undefined);
      expect(at.plan(budget(100))).toEqual({ itemIds: ['m', 'fc1', 'n'], tokensBefore: 119, tokensAfter: 25 });
      const over = new ContextTracker();
      over.upsert(text('m', 'user', 200), undefined);
      over.upsert(sized(1, 10), undefined, 'model');
      over.upsert(sized(2, 26), undefined, provenance);
      over.upsert(text('n', 'user', 104), undefined);
      // c2 (26) does not fit: pinning ends there, the model's c1 goes too (never older than a deleted one).
      expect(over.plan(budget(100))).toEqual({ itemIds: ['m', 'fc1', 'fc2'], tokensBefore: 120, tokensAfter: 30 });
    }
  });

  it('a call is the model\'s by its latest known provenance, and only when every call item of its id is', () => {
    const t = new ContextTracker();
    t.upsert(sized(1, 500), undefined); // seen first without provenance (an echo before the view knew)
    t.upsert(sized(1, 500), undefined, 'model');
    expect(t.plan(budget(100))).toBeNull(); // alone over the budget, nothing else: kept
    t.upsert(sized(1, 500), undefined); // no provenance: the known one stays
    expect(t.plan(budget(100))).toBeNull();
    t.upsert(sized(1, 500), undefined, 'client');
    expect(t.plan(budget(100))!.itemIds).toEqual(['fc1']);
    // Two call items of one id, one the model's, one the client's: held to the share.
    const u = new ContextTracker();
    u.upsert(sized(1, 300), undefined, 'model');
    u.upsert({ ...sized(1, 300), id: 'fc1b' }, undefined, 'client');
    expect(u.plan(budget(100))!.itemIds).toEqual(['fc1', 'fc1b']);
  });

  it('a call whose output is on its way is kept whatever its size and takes neither place nor tokens from the unanswered ones', () => {
    const t = tracker();
    t.upsert(text('m', 'user', 24), undefined);
    t.upsert(sized(1, 100), undefined);
    t.upsert(sized(2, 150), undefined);
    t.upsert(sized(3, 2000), undefined, 'model');
    // c3 answered (not echoed yet): c2 is the newest unanswered, c1 fits with it (250 ≤ 276).
    expect(t.plan(everything, 0, new Set(['c3']))!.itemIds).toEqual(['m']);
    // Not answered: c3 is the newest, kept alone; c2 and c1 go.
    expect(t.plan(everything)!.itemIds).toEqual(['m', 'fc1', 'fc2']);
    // c1 answered: kept; c3 newest alone: c2 goes.
    expect(t.plan(everything, 0, new Set(['c1']))!.itemIds).toEqual(['m', 'fc2']);
  });

  describe('a response.create with its own input', () => {
    const responseWith = (input: unknown, eventId?: string) => wire({ type: 'response.create', ...(eventId ? { event_id: eventId } : {}), response: { conversation: 'none', input } });
    const out = (n: number | string) => ({ type: 'function_call_output', call_id: `c${n}`, output: '{}' });

    it('carrying the output of a call the proxy deleted unanswered, without that call: refused (function_call_pruned at its index, event_id echoed)', () => {
      const { session, f } = pruned(9); // c1 deleted
      const v = session.fromClient(f, responseWith([text('u', 'user', 4), out(2), out(1)], 'evt_oob')) as Verdict;
      expect(v.kind).toBe('reject');
      if (v.kind !== 'reject') return;
      expect(v.error.toEvent('event_proxy_1')).toEqual({
        type: 'error',
        event_id: 'event_proxy_1',
        error: {
          type: 'invalid_request_error',
          code: 'function_call_pruned',
          message: 'The function call this output answers was deleted from the conversation to keep it within the context budget; the output was not relayed.',
          param: 'response.input[2].call_id',
          event_id: 'evt_oob',
          details: { call_id: 'c1' },
        },
      });
      expect(v.error.closesSession).toBe(false);
      // Without an event_id: none echoed. In the conversation (no `conversation`): the same.
      expect(session.fromClient(f, responseWith([out(1)]))).toMatchObject({ kind: 'reject', error: { code: 'function_call_pruned', eventId: null, param: 'response.input[0].call_id' } });
      expect(session.fromClient(f, wire({ type: 'response.create', response: { input: [out(1)] } }))).toMatchObject({ kind: 'reject', error: { param: 'response.input[0].call_id' } });
      // Nothing sent upstream by any of them (an input response prunes nothing).
      expect(session.upstream.map((e) => e['item_id'])).toEqual(['fc1']);
    });

    it('relayed when the input carries the call too (anywhere in it), when the call was kept or never seen, and when the input is no list of items', () => {
      const { session, f } = pruned(9);
      const cont = (frame: Frame) => (session.fromClient(f, frame) as Verdict).kind;
      expect(cont(responseWith([call(1, 'x1'), out(1)]))).toBe('continue');
      expect(cont(responseWith([out(1), call(1, 'x1')]))).toBe('continue');
      expect(cont(responseWith([out(2), out(99), { type: 'item_reference', id: 'fc1' }]))).toBe('continue');
      // Another call's id with it does not stand for c1's; a message naming c1 is no call.
      expect(session.fromClient(f, responseWith([call(2, 'x2'), { type: 'message', role: 'user', call_id: 'c1', content: [] }, out(1)]))).toMatchObject({ kind: 'reject', error: { param: 'response.input[2].call_id' } });
      // A function_call without a call_id is no call of c1; an output without a call_id or of another type is no output.
      expect(session.fromClient(f, responseWith([{ type: 'function_call', name: 'f', arguments: '' }, out(1)]))).toMatchObject({ kind: 'reject', error: { param: 'response.input[1].call_id' } });
      expect(cont(responseWith([{ type: 'function_call_output', output: '{}' }, { type: 'message', call_id: 'c1' }, null, 'c1']))).toBe('continue');
      expect(cont(responseWith('c1'))).toBe('continue');
      expect(cont(responseWith({ 0: out(1) }))).toBe('continue');
      expect(cont(responseWith(null))).toBe('continue');
      expect(session.upstream.map((e) => e['item_id'])).toEqual(['fc1']);
    });
  });
});

describe(`instructions and tools: within ${INSTRUCTIONS_SHARE} of the target together`, () => {
  // maxTokens 2,000 × 0.5: target 1,000, share 500.
  const b = budget(2000);
  const none = { instructions: 0, tools: 0 };
  const tools = (chars: number) => [{ type: 'function', name: 'f', description: 'd'.repeat(chars - 65), parameters: {} }];

  it('estimates instructions as text (chars / 4, rounded up) and tools as their JSON; none for anything else', () => {
    expect(instructionsLimit(b)).toBe(500);
    expect(instructionsLimit(budget(2001, { targetRatio: 0.7 }))).toBe(700);
    expect(instructionsTokens('x'.repeat(2001))).toBe(501);
    expect(instructionsTokens(null)).toBe(0);
    expect(instructionsTokens(42)).toBe(0);
    expect(JSON.stringify(tools(400))).toHaveLength(400);
    expect(toolsTokens(tools(400))).toBe(100);
    expect(toolsTokens([])).toBe(0);
    expect(toolsTokens(null)).toBe(0);
    expect(toolsTokens({ 0: tools(400)[0] })).toBe(0);
  });

  it('exactly at the share passes; one token over is refused with context_budget_exceeded, param naming the field under its event, event_id echoed', () => {
    expect(checkPromptPrefix(b, none, { instructions: 'x'.repeat(2000) }, 'session', 'evt_1')).toBeNull();
    const over = checkPromptPrefix(b, none, { instructions: 'x'.repeat(2001) }, 'session', 'evt_1')!;
    expect(over.toEvent('event_proxy_1')).toEqual({
      type: 'error',
      event_id: 'event_proxy_1',
      error: {
        type: 'invalid_request_error',
        code: 'context_budget_exceeded',
        message: 'The instructions, tools and prompt variables a response would read exceed their share of the context budget.',
        param: 'session.instructions',
        event_id: 'evt_1',
        details: { tokens: 501, limit: 500 },
      },
    });
    expect(over.closesSession).toBe(false);
    expect(over.httpStatus).toBe(400);
  });

  it('tools count with the instructions: the session\'s for what the event does not set, the event\'s for what it sets', () => {
    const current = { instructions: 400, tools: 0 };
    expect(checkPromptPrefix(b, current, { tools: tools(400) }, 'session', null)).toBeNull();
    expect(checkPromptPrefix(b, current, { tools: tools(404) }, 'session', null)).toMatchObject({ param: 'session.tools', details: { tokens: 501, limit: 500 } });
    // Both set: the larger names the param.
    expect(checkPromptPrefix(b, none, { instructions: 'x'.repeat(1200), tools: tools(804) }, 'session', null)).toMatchObject({ param: 'session.instructions', details: { tokens: 501 } });
    expect(checkPromptPrefix(b, none, { instructions: 'x'.repeat(800), tools: tools(1204) }, 'session', null)).toMatchObject({ param: 'session.tools', details: { tokens: 501 } });
    // Setting neither (a voice, null-free) is never refused.
    expect(checkPromptPrefix(b, { instructions: 5000, tools: 5000 }, { voice: 'marin' }, 'session', null)).toBeNull();
  });

  it('a response.create\'s own instructions replace the session\'s, its own tools the session\'s (each on its own)', () => {
    const session = { instructions: 400, tools: 100 };
    // Own instructions of 10 with the session's 100 of tools: 110.
    expect(checkPromptPrefix(b, session, { instructions: 'x'.repeat(40) }, 'response', null)).toBeNull();
    // Own tools of 101 with the session's 400 of instructions: 501.
    expect(checkPromptPrefix(b, session, { tools: tools(404) }, 'response', 'evt_r')).toMatchObject({ param: 'response.tools', eventId: 'evt_r', details: { tokens: 501 } });
    // Own instructions "" clear the session's for this response: the tools fit.
    expect(checkPromptPrefix(b, session, { instructions: '', tools: tools(2000) }, 'response', null)).toBeNull();
  });

  it('an event that keeps or lowers what the session reads is never refused, even over the share (the operator\'s locked instructions)', () => {
    const locked = { instructions: 3000, tools: 0 };
    expect(checkPromptPrefix(b, locked, { instructions: 'x'.repeat(12_000) }, 'session', null)).toBeNull();
    expect(checkPromptPrefix(b, locked, { instructions: 'x'.repeat(12_000 - 68), tools: tools(68) }, 'session', null)).toBeNull();
    // More than it reads now: refused.
    expect(checkPromptPrefix(b, locked, { tools: tools(68) }, 'session', null)).toMatchObject({ param: 'session.tools', details: { tokens: 3017 } });
    // The param names the field the event changes: the locked instructions it carries as they are are not its doing.
    expect(checkPromptPrefix(b, locked, { instructions: 'x'.repeat(12_000), tools: tools(68) }, 'session', null)).toMatchObject({ param: 'session.tools', details: { tokens: 3017 } });
  });

  describe('the filter', () => {
    const update = (session: object, eventId = 'evt_u') => wire({ type: 'session.update', event_id: eventId, session: { type: 'realtime', ...session } });
    const updated = (session: object) => wire({ type: 'session.updated', session: { type: 'realtime', ...session } });

    it('refuses a session.update over the share and counts one it lets through before the upstream answers it', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, b, 'test');
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: 'x'.repeat(400), tools: [] } }));
      expect(session.fromClient(f, update({ instructions: 'x'.repeat(2001) }))).toMatchObject({ kind: 'reject', error: { code: 'context_budget_exceeded', param: 'session.instructions', eventId: 'evt_u' } });
      // The session's 100 tokens of instructions with 400 of tools: at the share.
      expect((session.fromClient(f, update({ tools: tools(1600) })) as Verdict).kind).toBe('continue');
      // Not answered yet: instructions of 101 now would be 501 with those tools.
      expect(session.fromClient(f, update({ instructions: 'x'.repeat(404) }))).toMatchObject({ kind: 'reject', error: { param: 'session.instructions', details: { tokens: 501 } } });
      // A session.updated while another update is unanswered does not undo what that one sets.
      expect((session.fromClient(f, update({ instructions: 'x'.repeat(400) })) as Verdict).kind).toBe('continue');
      session.fromServer(f, updated({ instructions: 'x'.repeat(400), tools: tools(1600) }));
      expect(session.fromClient(f, update({ tools: tools(1604) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });
      // Every update answered: what the upstream shows is what counts.
      session.fromServer(f, updated({ instructions: 'x'.repeat(400), tools: [] }));
      expect((session.fromClient(f, update({ instructions: 'x'.repeat(2000) })) as Verdict).kind).toBe('continue');
      // A transcription session has neither.
      expect((session.fromClient(f, wire({ type: 'session.update', session: { type: 'transcription', instructions: 'x'.repeat(9000) } })) as Verdict).kind).toBe('continue');
    });

    it('session.created counts what went upstream before it (the locked state, a client secret\'s config, early updates)', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, b, 'test');
      // The proxy's own start update (skips the chain; the view records it), then session.created without it.
      session.conversation.observeClient(wire({ type: 'session.update', session: { type: 'realtime', tools: tools(1600) } }), true);
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
      expect(session.fromClient(f, update({ instructions: 'x'.repeat(404) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });
      expect((session.fromClient(f, update({ instructions: 'x'.repeat(400) })) as Verdict).kind).toBe('continue');
    });

    it('refuses a response.create over the share before pruning for it; without a budget nothing is checked', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(200, { keepLast: 1 }), 'test');
      session.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: text('u0', 'user', 400) }));
      session.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'u0', item: text('u1', 'user', 400) }));
      // Limit 50: its own instructions of 51 tokens.
      expect(session.fromClient(f, wire({ type: 'response.create', event_id: 'evt_r', response: { instructions: 'x'.repeat(204) } }))).toMatchObject({
        kind: 'reject',
        error: { code: 'context_budget_exceeded', param: 'response.instructions', eventId: 'evt_r', details: { tokens: 51, limit: 50 } },
      });
      expect(session.upstream).toEqual([]);
      expect((session.fromClient(f, wire({ type: 'response.create', response: { instructions: 'x'.repeat(200) } })) as Verdict).kind).toBe('continue');
      expect(session.upstream).toEqual([{ type: 'conversation.item.delete', item_id: 'u0' }]);

      const free = new FakeSession();
      const g = new TruncationFilter(free, null, 'test');
      expect((free.fromClient(g, update({ instructions: 'x'.repeat(100_000), tools: tools(100_000) })) as Verdict).kind).toBe('continue');
      expect((free.fromClient(g, wire({ type: 'response.create', response: { instructions: 'x'.repeat(100_000) } })) as Verdict).kind).toBe('continue');
    });
  });
});

describe('a budget that cannot be met is not chased', () => {
  const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });
  const done = (id: string, input: number) => wire({ type: 'response.done', response: { id, status: 'completed', conversation_id: 'conv_1', output: [], usage: { input_tokens: input, output_tokens: 0 } } });

  it('with the overhead (instructions, tools) over maxTokens, nothing goes until what may go exceeds maxTokens − target; then all of it, and again only after as much', () => {
    const session = new FakeSession();
    // maxTokens 1,000, target 500: the room between prunes is 500.
    const f = new TruncationFilter(session, budget(1000, { keepLast: 1 }), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null)); // 104
    // The response read 1,500: an overhead of 1,396, over the budget by itself.
    session.fromServer(f, done('r1', 1500));
    let prev = 'u0';
    for (const n of [1, 2, 3]) {
      session.fromServer(f, added(text(`u${n}`, 'user', 400), prev));
      prev = `u${n}`;
    }
    // u0…u2 may go (312): not more than the room. Nothing is deleted at any prune point.
    session.fromClient(f, wire({ type: 'response.create' }));
    session.fromServer(f, done('r2', 1396 + 4 * 104));
    expect(session.upstream).toEqual([]);
    // u0…u4 may go (520, over 500): all of them, oldest first.
    for (const n of [4, 5]) {
      session.fromServer(f, added(text(`u${n}`, 'user', 400), prev));
      prev = `u${n}`;
    }
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream.map((e) => e['item_id'])).toEqual(['u0', 'u1', 'u2', 'u3', 'u4']);
    // u5 and a new u6: 104 may go. Nothing more.
    session.fromServer(f, added(text('u6', 'user', 400), prev));
    session.fromClient(f, wire({ type: 'response.create' }));
    expect(session.upstream).toHaveLength(5);
  });

  it('at exactly maxTokens the overhead still lets the budget be met: what may go goes at once', () => {
    const t = new ContextTracker();
    t.upsert(text('u0', 'user', 40), null); // 14
    t.upsert(text('u1', 'user', 40), 'u0'); // 14
    t.calibrate(1000 + 28, 0, []); // overhead 1,000
    expect(t.plan(budget(1000))).toEqual({ itemIds: ['u0', 'u1'], tokensBefore: 1028, tokensAfter: 1000 });
    t.calibrate(1001 + 28, 0, []); // overhead 1,001: over; 28 may go, not over the room of 500
    expect(t.plan(budget(1000))).toBeNull();
  });

  it(`keepFirst pins the first items oldest first while together within ${KEEP_FIRST_SHARE} of the target: a client's first item as large as a frame is not pinned (2026-12-06)`, () => {
    expect(KEEP_FIRST_SHARE).toBe(0.5);
    // Budget 1,000, target 500, the share 250. The client's first item: 40,000 characters (10,004 tokens).
    const t = new ContextTracker();
    t.upsert(text('huge', 'user', 40_000), null);
    t.upsert(text('u1', 'user', 40), 'huge');
    // Until 2026-12-06: null (pinned whatever its size), and every later response read 10,000 tokens.
    expect(t.plan(budget(1000, { keepFirst: 1, keepLast: 1 }))).toEqual({ itemIds: ['huge'], tokensBefore: 10_018, tokensAfter: 14 });
    // Exactly at the share: pinned; one token over: not.
    const at = new ContextTracker();
    at.upsert(text('f', 'user', (250 - 4) * 4), null); // 250
    at.upsert(text('u1', 'user', (300 - 4) * 4), 'f'); // 300
    at.upsert(text('u2', 'user', (500 - 4) * 4), 'u1'); // 500
    expect(at.plan(budget(1000, { keepFirst: 1, keepLast: 0 }))!.itemIds).toEqual(['u1', 'u2']);
    // keepFirst past the end of the conversation (over budget with items about to join it): every item that fits is pinned.
    const few = new ContextTracker();
    few.upsert(text('f', 'user', 24), null); // 10
    expect(few.plan(budget(40, { keepFirst: 5, keepLast: 0 }), 100)).toBeNull();
    const over = new ContextTracker();
    over.upsert(text('f', 'user', (251 - 4) * 4), null);
    over.upsert(text('u1', 'user', (300 - 4) * 4), 'f');
    over.upsert(text('u2', 'user', (500 - 4) * 4), 'u1');
    expect(over.plan(budget(1000, { keepFirst: 1, keepLast: 0 }))!.itemIds).toEqual(['f', 'u1']);
  });

  it('keepFirst and the system share stay for good and count; the latest keepLast, items in progress and awaited calls only for a while and do not', () => {
    // The first item within its share (≤ 250 of the target 500) counts: with an overhead of 800, 1,004 stay.
    const first = new ContextTracker();
    first.upsert(text('f', 'user', 800), null); // 204: keepFirst 1
    first.upsert(text('u1', 'user', 40), 'f');
    first.upsert(text('u2', 'user', 40), 'u1');
    first.calibrate(800 + 204 + 28, 0, []);
    expect(first.plan(budget(1000, { keepFirst: 1 }))).toBeNull();
    // The same item pinned as the latest: u1 and u2 go as before (the item will be deletable later).
    const last = new ContextTracker();
    last.upsert(text('u1', 'user', 40), null);
    last.upsert(text('u2', 'user', 40), 'u1');
    last.upsert(text('l', 'user', 4000), 'u2');
    expect(last.plan(budget(1000, { keepLast: 1 }))!.itemIds).toEqual(['u1', 'u2']);
    // A system message within its share (≤ 250 of the target 500) counts: with an overhead of 800, 1,004 stay.
    const sys = new ContextTracker();
    sys.upsert(text('s', 'system', 800), null); // 204
    sys.upsert(text('u1', 'user', 40), 's');
    sys.calibrate(800 + 204 + 14, 0, []);
    expect(sys.plan(budget(1000))).toBeNull();
    expect(sys.plan(budget(1000, { keepSystem: false }))!.itemIds).toEqual(['s', 'u1']);
  });
});
