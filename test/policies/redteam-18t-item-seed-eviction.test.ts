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
 *
 * Fixed 2026-12-07: an item's context is kept beyond them (#keptSeeds) when its text was redacted
 * with it and not alone (most answers need none); past 256 such items the session is ended
 * (`governance_failed`) rather than a later view judged alone.
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

/** The frames of one streamed answer (as test/policies/redteam-18-split-redaction.test.ts streams it); `done: false`, deltas then response.done only (as a cancelled one may end). */
function answer(n: number, text: string, done = true): Frame[] {
  const responseId = `resp_${n}`;
  const itemId = `item_${n}`;
  const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
  return [
    wire({ type: 'response.created', response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [] } }),
    wire({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: assistant(itemId, 'in_progress', null) }),
    wire({ type: 'conversation.item.added', previous_item_id: null, item: assistant(itemId, 'in_progress', null) }),
    ...text.split(/(?<= )/).map((delta) => wire({ type: 'response.output_audio_transcript.delta', ...ids, delta })),
    ...(done ? [wire({ type: 'response.output_audio_transcript.done', ...ids, transcript: text }), wire({ type: 'conversation.item.done', previous_item_id: null, item: assistant(itemId, 'completed', text) })] : []),
    wire({ type: 'response.done', response: { id: responseId, object: 'realtime.response', status: 'completed', output: [assistant(itemId, 'completed', text)] } }),
  ];
}

/** What the client gets of a server frame: the frame as the verdict leaves it ('' when dropped). */
const shown = (frame: Frame, v: Verdict): string => (v.kind === 'replace' ? v.frame.wireBytes().toString('utf8') : v.kind === 'continue' ? frame.wireBytes().toString('utf8') : '');

/** A guardrail filter on POLICY, and `run`: what the client gets of each frame, failing on a close verdict. */
async function session() {
  const { server } = await guardrailsWith(POLICY);
  const run = async (frames: Frame[]) => {
    const out: string[] = [];
    for (const f of frames) {
      const v = await server(f);
      expect(v.kind === 'close' ? v.error.code : 'open').toBe('open');
      out.push(shown(f, v));
    }
    return out;
  };
  return { server, run };
}

const retrieveSecond = () => wire({ type: 'conversation.item.retrieved', item: assistant('item_2', 'completed', '1111 1111, as you asked.') });

describe('red team 18t: the second half of a split card number, retrieved after 256 other answers', () => {
  it('is redacted in the retrieved item as it was in its deltas', async () => {
    const { server, run } = await session();
    await run(answer(1, 'Your card is 4111 1111'));
    const second = await run(answer(2, '1111 1111, as you asked.'));
    // The deltas and the .done found the number (the first half was context).
    expect(second.some((t) => t.includes(SECOND_HALF))).toBe(false);
    // Each short answer goes on (none keeps a context: their verdict is theirs alone).
    for (let n = 3; n < 3 + 256; n++) await run(answer(n, 'ok.'));
    const retrieved = retrieveSecond();
    // Old code: the retrieved item showed '1111 1111, as you asked.' (judged alone once its seed was dropped).
    expect(shown(retrieved, await server(retrieved))).not.toContain(SECOND_HALF);
  });

  it('an answer ended without its .done (deltas, then response.done) keeps its context too', async () => {
    const { server, run } = await session();
    await run(answer(1, 'Your card is 4111 1111'));
    const second = await run(answer(2, '1111 1111, as you asked.', false));
    expect(second.some((t) => t.includes(SECOND_HALF))).toBe(false);
    for (let n = 3; n < 3 + 256; n++) await run(answer(n, 'ok.'));
    const retrieved = retrieveSecond();
    expect(shown(retrieved, await server(retrieved))).not.toContain(SECOND_HALF);
  });

  it('answers redacted alone as with their context keep none: 300 whole card numbers, the session goes on', async () => {
    const { run } = await session();
    for (let n = 1; n <= 300; n++) {
      const out = await run(answer(n, 'Card 4111 1111 1111 1111.'));
      expect(out.some((t) => t.includes('4111'))).toBe(false);
    }
  });

  it('answers ended without their .done, redacted alone as with their context, keep none: 300 whole card numbers, the session goes on', async () => {
    const { run } = await session();
    // Until 2026-12-07 each kept its context (its deltas were redacted), and the 257th ended the session.
    for (let n = 1; n <= 300; n++) {
      const out = await run(answer(n, 'Card 4111 1111 1111 1111.', false));
      expect(out.some((t) => t.includes('4111'))).toBe(false);
    }
  });

  it('past 256 answers whose redaction needed the answer before, the session is ended (governance_failed)', async () => {
    const { server, run } = await session();
    for (let pair = 0; pair < 256; pair++) {
      await run(answer(2 * pair + 1, 'Your card is 4111 1111'));
      await run(answer(2 * pair + 2, '1111 1111, as you asked.'));
    }
    await run(answer(513, 'Your card is 4111 1111'));
    const verdicts: Verdict[] = [];
    for (const f of answer(514, '1111 1111, as you asked.')) verdicts.push(await server(f));
    // Its deltas are redacted as before; its .done finds no room for the context its later views need.
    const done = answer(514, '1111 1111, as you asked.').findIndex((f) => f.type === 'response.output_audio_transcript.done');
    expect(verdicts.slice(0, done).map((v) => v.kind)).not.toContain('close');
    const ended = verdicts[done]!;
    expect(ended.kind === 'close' ? ended.error.code : ended.kind).toBe('governance_failed');
  });

  it('a spoken turn keeps its context too: its late diarized segment, after 256 answers, is redacted as its transcript was', async () => {
    const { server, run } = await session();
    const completed = (itemId: string, transcript: string) => wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: 0, transcript });
    await run([completed('item_u1', 'my card is 4111 1111')]);
    const [second] = await run([completed('item_u2', '1111 1111 thanks')]);
    expect(second).not.toContain(SECOND_HALF);
    for (let n = 3; n < 3 + 256; n++) await run(answer(n, 'ok.'));
    const segment = wire({ type: 'conversation.item.input_audio_transcription.segment', item_id: 'item_u2', content_index: 0, id: 'seg_1', speaker: 'A', start: 0, end: 1, text: '1111 1111 thanks' });
    expect(shown(segment, await server(segment))).not.toContain(SECOND_HALF);
  });

  it('control: retrieved right after, it is redacted', async () => {
    const { server } = await guardrailsWith(POLICY);
    for (const f of [...answer(1, 'Your card is 4111 1111'), ...answer(2, '1111 1111, as you asked.')]) await server(f);
    const retrieved = wire({ type: 'conversation.item.retrieved', item: assistant('item_2', 'completed', '1111 1111, as you asked.') });
    expect(shown(retrieved, await server(retrieved))).not.toContain(SECOND_HALF);
  });
});
