import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { trackerBudget, wire } from '../../test/policies/support.js';
import { TruncationFilter } from './truncation.js';

/**
 * Written against the mutants of truncation.ts 813–858 (the session shown, the pending creates
 * settled) that survived their tests in the twenty-fourth session (test/mutation/open-survivors.md,
 * "twenty-fourth"). Since fd6cc36 a create settled by the wrong echo gives that echo its size (a
 * floor), so what red team 16b checked (the create counted nowhere) no longer shows: the harm is now
 * the create counted twice once its own echo comes, and items pruned that fit.
 */

const budget = trackerBudget(10_000, { keepLast: 0, keepFirst: 0 });
const text = (chars: number) => 'x'.repeat(chars);
const deletes = (s: FakeSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

describe("a client's pending create is settled by its own echo only", () => {
  // 858: `provenance === 'model' || spoken` → false, `&& spoken`, `'model'` → ''.
  it("not by a running response's output item: 6,000 + 3,000 tokens fit 10,000, nothing pruned", () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', type: 'message', role: 'user', content: [{ type: 'input_text', text: text(12_000) }] } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    s.fromServer(f, wire({ type: 'response.created', response: { id: 'r1', object: 'realtime.response', status: 'in_progress', output: [] } }));
    // The client's assistant message (6,000 tokens), not shown yet; the response's own output is shown first.
    const big = { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: text(24_000) }] };
    s.fromClient(f, wire({ type: 'conversation.item.create', item: big }));
    const out = { id: 'out', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
    s.fromServer(f, wire({ type: 'response.output_item.added', response_id: 'r1', output_index: 0, item: out }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: out }));
    s.fromServer(f, wire({ type: 'response.done', response: { id: 'r1', object: 'realtime.response', status: 'completed', output: [out] } }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'out', item: { id: 'big', ...big } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deletes(s)).toEqual([]);
  });

  it("not by a committed spoken turn's echo: 6,000 + 3,000 tokens fit 10,000, nothing pruned", () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    const typed = (chars: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: text(chars) }] });
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...typed(12_000) } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: typed(24_000) }));
    s.fromServer(f, wire({ type: 'input_audio_buffer.committed', previous_item_id: 'old', item_id: 'spoken' }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: { id: 'spoken', type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] } }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'spoken', item: { id: 'big', ...typed(24_000) } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deletes(s)).toEqual([]);
  });
});

describe('the input audio format confirmed', () => {
  // 815: `confirmed !== null` → true (or `=== null`). A session.updated that names no input format
  // (the upstream showing part of the session) does not undo the PCM16 confirmed before: the same
  // bytes are still read as PCM16 (a sixth of G.711's tokens, the default until a format is confirmed).
  it('stays when a later session.updated names none', () => {
    const s = new FakeSession();
    const f = new TruncationFilter(s, trackerBudget(2_000, { keepLast: 0, keepFirst: 0 }), 'test');
    s.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } } }));
    s.fromServer(f, wire({ type: 'session.updated', session: { type: 'realtime', instructions: 'x' } }));
    // 1,504 tokens in the conversation: 60 s of G.711-sized bytes (480,000) fit 2,000 read as PCM16 (~104 tokens), not as G.711 (~604).
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', type: 'message', role: 'user', content: [{ type: 'input_text', text: text(6_000) }] } }));
    const minute = Buffer.alloc(60 * 8_000, 0xff).toString('base64');
    s.fromClient(f, wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: minute }] } }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deletes(s)).toEqual([]);
  });
});
