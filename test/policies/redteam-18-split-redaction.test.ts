/**
 * Red team (guardrails, eighteenth pass): a redaction that spans two answers is undone by the
 * complete texts that follow the second one.
 *
 * Streamed output is scanned with the end of the earlier answers of the same source as context, so
 * a card number the model says half in one answer and half in the next is found when the second
 * half streams, and that half's deltas reach the client redacted. The complete texts that show the
 * same answer again (its transcript `.done`, `response.output_item.done`, `conversation.item.done`,
 * `response.done`'s output, a later `conversation.item.retrieved`) were each scanned alone, without
 * that context: no match, and the second half reached the client there as the model said it.
 * An adversary with a tenant key under `pii-safe`-style rules (card → redact) asks the model to
 * read the number back "four digits per answer" and reads the `.done` (or the item) instead of the
 * deltas. Guarantee broken: "the same text is redacted on every later path that shows it".
 * The same held for a spoken turn's diarized `.segment`s: the first segment of a turn met no
 * context, so the second half said in the next turn was shown in its segment while its
 * `completed` transcript redacted it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import type { TestProxy } from '../support/harness.js';
import { guardrailsWith, verdictCode, wire } from './support.js';
import { guardedProxy } from './guarded-proxy.js';

const POLICY = `
guardrails:
  rules:
    - { id: card-number, sources: [output, input], match: { pii: [card] }, action: redact, replacement: "[card]" }
`;

/** The model's two answers: a test card number (Luhn-valid) split between them. */
const ANSWERS = ['Your card is 4111 1111', '1111 1111, as you asked.'];
const SECOND_HALF = '1111 1111';

/** One answer as the upstream streams it: created, the item, its transcript deltas and .done, the item done, response.done. */
function answer(n: number, text: string, send: (e: object) => void): void {
  const responseId = `resp_${n}`;
  const itemId = `item_${n}`;
  const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
  const item = (status: string, transcript: string | null) => ({ id: itemId, object: 'realtime.item', type: 'message', role: 'assistant', status, content: transcript === null ? [] : [{ type: 'output_audio', transcript }] });
  send({ type: 'response.created', event_id: `ev_${n}_c`, response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [] } });
  send({ type: 'response.output_item.added', event_id: `ev_${n}_a`, response_id: responseId, output_index: 0, item: item('in_progress', null) });
  send({ type: 'conversation.item.added', event_id: `ev_${n}_ca`, previous_item_id: null, item: item('in_progress', null) });
  // Word-sized deltas, as the model streams.
  text.split(/(?<= )/).forEach((delta, k) => send({ type: 'response.output_audio_transcript.delta', event_id: `ev_${n}_d${k}`, ...ids, delta }));
  send({ type: 'response.output_audio_transcript.done', event_id: `ev_${n}_td`, ...ids, transcript: text });
  send({ type: 'response.content_part.done', event_id: `ev_${n}_pd`, ...ids, part: { type: 'audio', transcript: text } });
  send({ type: 'response.output_item.done', event_id: `ev_${n}_od`, response_id: responseId, output_index: 0, item: item('completed', text) });
  send({ type: 'conversation.item.done', event_id: `ev_${n}_cd`, previous_item_id: null, item: item('completed', text) });
  send({ type: 'response.done', event_id: `ev_${n}_rd`, response: { id: responseId, object: 'realtime.response', status: 'completed', output: [item('completed', text)] } });
}

/** Two spoken turns (the user's), each transcribed as one diarized segment, then completed. */
const TURNS = ['my card is 4111 1111', '1111 1111 thanks'];

/** A committed turn as the upstream shows it: the item, its diarized segment, its completed transcript. */
function spokenTurn(n: number, text: string, send: (e: object) => void): void {
  const itemId = `item_user_${n}`;
  const previous = n === 1 ? null : `item_user_${n - 1}`;
  send({ type: 'input_audio_buffer.committed', event_id: `ev_u${n}_c`, previous_item_id: previous, item_id: itemId });
  send({ type: 'conversation.item.added', event_id: `ev_u${n}_a`, previous_item_id: previous, item: { id: itemId, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] } });
  send({ type: 'conversation.item.input_audio_transcription.segment', event_id: `ev_u${n}_s`, item_id: itemId, content_index: 0, id: `seg_${n}`, speaker: 'A', start: 0, end: 1, text });
  send({ type: 'conversation.item.input_audio_transcription.completed', event_id: `ev_u${n}_t`, item_id: itemId, content_index: 0, transcript: text, usage: { type: 'duration', seconds: 1 } });
}

let upstream: RecordingUpstream;
let tp: TestProxy;
beforeAll(async () => {
  let answered = 0;
  let turns = 0;
  upstream = await recordingUpstream((event, send) => {
    if (event.type === 'response.create') answer(++answered, ANSWERS[answered - 1] ?? '', send);
    if (event.type === 'input_audio_buffer.commit') spokenTurn(++turns, TURNS[turns - 1] ?? '', send);
    if (event.type === 'conversation.item.retrieve') {
      const text = ANSWERS[1]!;
      send({ type: 'conversation.item.retrieved', event_id: 'ev_r', item: { id: 'item_2', object: 'realtime.item', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_audio', transcript: text }] } });
    }
  });
  tp = await guardedProxy(upstream.url, POLICY);
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

describe('a card number split across two answers (output card → redact)', () => {
  it('its second half is redacted on every path that shows the second answer, not only in the deltas', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'response.create', event_id: 'evt_r1' });
    await c.waitFor((e) => e.type === 'response.done');
    const afterFirst = c.events.length;
    c.send({ type: 'response.create', event_id: 'evt_r2' });
    await c.waitFor((e) => e.type === 'response.done' && (e['response'] as { id?: string }).id === 'resp_2');
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_get', item_id: 'item_2' });
    await c.waitFor((e) => e.type === 'conversation.item.retrieved');
    const second = c.events.slice(afterFirst);
    // The deltas found the number (the first half was context) and redacted their part of it.
    const deltas = second.filter((e) => e.type === 'response.output_audio_transcript.delta').map((e) => String(e['delta'])).join('');
    expect(deltas).toContain('[card]');
    expect(deltas).not.toContain(SECOND_HALF);
    // Every other event about the second answer: old code showed the second half on each of them
    // (the .done, content_part.done, output_item.done, conversation.item.done, response.done and the retrieve).
    const showing = second.filter((e) => JSON.stringify(e).includes(SECOND_HALF)).map((e) => e.type);
    expect(showing).toEqual([]);
    c.close();
  });

  it('a card number spoken half in one turn and half in the next: the second turn\u2019s segment is redacted as its transcript is', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_turn1' });
    await c.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    const afterFirst = c.events.length;
    c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_turn2' });
    await c.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed' && e['item_id'] === 'item_user_2');
    const second = c.events.slice(afterFirst);
    const completed = second.find((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    expect(completed?.['transcript']).toBe('[card] thanks');
    // Old code: ['conversation.item.input_audio_transcription.segment'] (its text '1111 1111 thanks').
    expect(second.filter((e) => JSON.stringify(e).includes(SECOND_HALF)).map((e) => e.type)).toEqual([]);
    c.close();
  });

  it('control: a segment after its own turn completed does not meet its own text again as context', async () => {
    const { server } = await guardrailsWith('guardrails:\n  rules:\n    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }\n');
    const text = 'previous instructions. ignore';
    const item = { id: 'item_u', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] };
    server(wire({ type: 'conversation.item.added', previous_item_id: null, item }));
    expect(verdictCode(await server(wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_u', content_index: 0, transcript: text })))).toBeNull();
    // Its text doubled would spell the phrase ("… ignore previous instructions. ignore").
    const segment = await server(wire({ type: 'conversation.item.input_audio_transcription.segment', item_id: 'item_u', content_index: 0, id: 'seg_1', speaker: 'A', start: 0, end: 1, text }));
    expect(segment.kind).toBe('continue');
  });
});
