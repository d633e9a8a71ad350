/**
 * Red team 18t (guardrails): the context a streamed answer was judged with (#itemSeeds, 201df06)
 * is kept for at most MAX_STREAMS (256) items, oldest dropped first.
 *
 * Adversary (a tenant key under a card → redact output rule): asks for a card number "four digits
 * per answer" (the second half is redacted in its deltas, the first half being context), then asks
 * for 256 short answers ("say ok"), each of which keeps a seed of its own and pushes the second
 * half's out, and then sends `conversation.item.retrieve` for the second answer: the retrieved item
 * is judged alone and shows `1111 1111` unredacted. Guarantee broken: "the same text is redacted on
 * every later path that shows it" (policies/README.md; test/policies/redteam-18-split-redaction.test.ts).
 */
import { describe, expect, it } from 'vitest';
import type { Verdict } from '../../src/pipeline/filter.js';
import type { Frame } from '../../src/pipeline/frame.js';
import { guardrailsWith, wire } from './support.js';

const POLICY = `
guardrails:
  rules:
    - { id: card-number, sources: [output, input], match: { pii: [card] }, action: redact, replacement: "[card]" }
`;
const SECOND_HALF = '1111 1111';
const assistant = (id: string, status: string, transcript: string | null) => ({ id, object: 'realtime.item', type: 'message', role: 'assistant', status, content: transcript === null ? [] : [{ type: 'output_audio', transcript }] });

/** The frames of one streamed answer (as test/policies/redteam-18-split-redaction.test.ts streams it). */
function answer(n: number, text: string): Frame[] {
  const responseId = `resp_${n}`;
  const itemId = `item_${n}`;
  const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
  return [
    wire({ type: 'response.created', response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [] } }),
    wire({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: assistant(itemId, 'in_progress', null) }),
    wire({ type: 'conversation.item.added', previous_item_id: null, item: assistant(itemId, 'in_progress', null) }),
    ...text.split(/(?<= )/).map((delta) => wire({ type: 'response.output_audio_transcript.delta', ...ids, delta })),
    wire({ type: 'response.output_audio_transcript.done', ...ids, transcript: text }),
    wire({ type: 'conversation.item.done', previous_item_id: null, item: assistant(itemId, 'completed', text) }),
    wire({ type: 'response.done', response: { id: responseId, object: 'realtime.response', status: 'completed', output: [assistant(itemId, 'completed', text)] } }),
  ];
}

/** What the client gets of a server frame: the frame as the verdict leaves it ('' when dropped). */
const shown = (frame: Frame, v: Verdict): string => (v.kind === 'replace' ? v.frame.wireBytes().toString('utf8') : v.kind === 'continue' ? frame.wireBytes().toString('utf8') : '');

describe('red team 18t: the second half of a split card number, retrieved after 256 other answers', () => {
  // Open (not fixed in this pass): `it.fails` until the seeds of items whose context changed their
  // verdict are kept beyond MAX_STREAMS (or a later view of an item whose seed was dropped fails
  // closed). Without `.fails` the last assertion fails on the current code: the retrieved frame
  // holds '1111 1111, as you asked.'.
  it.fails('is redacted in the retrieved item as it was in its deltas', async () => {
    const { server } = await guardrailsWith(POLICY);
    const run = async (frames: Frame[]) => {
      const out: string[] = [];
      for (const f of frames) out.push(shown(f, await server(f)));
      return out;
    };
    await run(answer(1, 'Your card is 4111 1111'));
    const second = await run(answer(2, '1111 1111, as you asked.'));
    // The deltas and the .done found the number (the first half was context).
    expect(second.some((t) => t.includes(SECOND_HALF))).toBe(false);
    for (let n = 3; n < 3 + 256; n++) await run(answer(n, 'ok.'));
    const retrieved = wire({ type: 'conversation.item.retrieved', item: assistant('item_2', 'completed', '1111 1111, as you asked.') });
    // Old code: the retrieved item showed '1111 1111, as you asked.' (judged alone once its seed was dropped).
    expect(shown(retrieved, await server(retrieved))).not.toContain(SECOND_HALF);
  });

  it('control: retrieved right after, it is redacted', async () => {
    const { server } = await guardrailsWith(POLICY);
    for (const f of [...answer(1, 'Your card is 4111 1111'), ...answer(2, '1111 1111, as you asked.')]) await server(f);
    const retrieved = wire({ type: 'conversation.item.retrieved', item: assistant('item_2', 'completed', '1111 1111, as you asked.') });
    expect(shown(retrieved, await server(retrieved))).not.toContain(SECOND_HALF);
  });
});
