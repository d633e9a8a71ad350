import { describe, expect, it } from 'vitest';
import { FakeSession } from '../support/fake-session.js';
import { trackerBudget, wire } from './support.js';
import type { Verdict } from '../../src/pipeline/filter.js';
import { TruncationFilter } from '../../src/policies/truncation.js';

/**
 * Adversary: a tenant under a truncation budget puts audio into items itself
 * (`conversation.item.create` or a `response.create`'s own `input`, a user message with an
 * `input_audio` part carrying base64 `audio` and no transcript, as realtime-protocol.md §3.4
 * allows). The estimator sized such a part by its transcript only: 0 tokens, the item 4
 * (ITEM_OVERHEAD), whatever its length. 60 s of 24 kHz PCM16 is ~600 tokens to the model (the
 * proxy's own rate for user audio, 100 ms a token), so a response reads well over `maxTokens`
 * and nothing is pruned for it. Guarantee broken: a response reads at most `maxTokens`
 * (policies/README.md "Truncation", "A response's own input").
 */

const budget = trackerBudget(2_000, { keepLast: 0, keepFirst: 0 });
/** `seconds` of silence as 24 kHz mono PCM16, base64 (what `input_audio.audio` carries). */
const pcm16 = (seconds: number) => Buffer.alloc(seconds * 24_000 * 2).toString('base64');
const spoken = (seconds: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_audio', audio: pcm16(seconds) }] });
const typed = (chars: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(chars) }] });
/**
 * A filter on a session the upstream confirmed in 24 kHz PCM16, the audio these tests carry (until
 * it confirms a format, the filter sizes audio as G.711, the densest: 6× these sizes).
 */
function pcm16Session(): { s: FakeSession; f: TruncationFilter } {
  const s = new FakeSession();
  const f = new TruncationFilter(s, budget, 'test');
  s.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } } }));
  return { s, f };
}

describe('truncation: audio the client puts into items counts toward the budget', () => {
  it("an out-of-band response whose own input is 250 s of audio (~2,500 tokens) is refused under a 2,000 budget", () => {
    const { s, f } = pcm16Session();
    const v = s.fromClient(f, wire({ type: 'response.create', event_id: 'evt_oob', response: { conversation: 'none', input: [spoken(250)] } })) as Verdict;
    expect(v.kind).toBe('reject');
    expect(s.upstream.filter((e) => e.type === 'response.create')).toHaveLength(0);
  });

  it('a created audio item (60 s, ~600 tokens) not yet shown has the response pruned for', () => {
    const { s, f } = pcm16Session();
    // 1,504 tokens in the conversation: under 2,000 alone, over it with the audio.
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...typed(6_000) } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(60) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('old');
  });

  /**
   * The upstream's echo shows the item without its audio (`transcript: null`): the create's size
   * must stay. At the echo the context (1,004 + 604) is under the budget, nothing is pruned; a
   * typed turn of 500 tokens then puts it over, and the response must be pruned for.
   */
  it('the created audio item keeps its size once the upstream shows it without the audio', () => {
    const { s, f } = pcm16Session();
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...typed(4_000) } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(60) }));
    const shown = { id: 'mine', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] };
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: shown }));
    s.fromServer(f, wire({ type: 'conversation.item.done', previous_item_id: 'old', item: shown }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete')).toHaveLength(0);
    s.fromClient(f, wire({ type: 'conversation.item.create', item: typed(2_000) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id'])).toContain('old');
  });
});
