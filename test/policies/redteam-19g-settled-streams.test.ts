/**
 * Red team 19g (guardrails, governance changes of 2026-12-07): what `#settledStream` and
 * `#dropSettledSegments` call "settled" still matters to the text after it.
 *
 * Since ca3249f, at most 256 streams (and 256 segment contexts) are kept; room is made by dropping
 * the oldest one "whose later text cannot depend on what it saw": a stream with nothing held back and
 * nothing redacted, a segment context whose end cannot begin a match.
 *
 * 1. A stream's context is its seed (the end of the previous answer) as well as its own text, and
 *    "nothing held" only looks at its own text. Adversary (an upstream, or a model that can be made
 *    to stream this way): the previous answer ends with half a card number; the next item's first
 *    delta is empty (or only characters the fold drops, e.g. U+200B), so nothing of it is held while
 *    its context still ends in an open match; 256 other items stream meanwhile and finish, which
 *    drops it and moves the source's context on. Its next delta starts afresh with that new context,
 *    and the second half of the card number is shown in the deltas and the `.done`, which the kept
 *    stream redacts. Guarantee broken: "a stream dropped for room is one whose later text cannot
 *    depend on it" (policies/README.md), and the split-redaction guarantee it protects.
 * 2. A scanner also counts how much its stream has said (`maxChars`). A stream under a `maxChars`
 *    rule holds nothing back, so it is dropped first, and its count starts again from 0: an answer
 *    capped at 40 characters streams 60 to the client (the cap trips only at the `.done`, after the
 *    text is shown). Guarantee broken: the same.
 * 3. (False positive, an honest session) the segment context of a diarized transcript is never
 *    forgotten, also after its `completed`; a context ending in a number ("…is 58213.") can begin a
 *    card or phone number, so it is never dropped. A long honest call in which 256 turns end in a
 *    number (order numbers, amounts, dates) is ended `governance_failed` at the next turn.
 *
 * 4. A streaming custom guardrail sees each delta with the text before it (`event.text`, the
 *    scanner's recent window); it holds nothing, so its stream was always droppable, and the next
 *    delta, started afresh, showed it only the new delta: "wire the" then " money" passed a
 *    streaming guardrail that stops "wire the money" (the `.done` stops it, after every delta was
 *    shown). Fixed: such a stream is not dropped (257 at once end the session, as held ones do).
 *
 * Every byte the client receives is read (raw WebSocket text frames).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import type { TestClient, TestProxy } from '../support/harness.js';
import { defineGuardrail } from '../../src/policies/api.js';
import { clientWithFrames, errorCodes, guardedProxy, showing } from './guarded-proxy.js';
import { guardrailsWith, outDelta, responseCreated } from './support.js';

const POLICY = `
guardrails:
  rules:
    - { id: card-number, sources: [output, input], match: { pii: [card] }, action: redact, replacement: "[card]" }
`;
/** The same with answers capped at 40 characters (a second proxy). */
const CAPPED = `${POLICY}    - { id: short-answers, sources: [output], match: { maxChars: 40 }, action: cancel_response }
`;
/** Streams interleaved with the victim: as many as the filter keeps. */
const OTHERS = 256;

type Send = (e: object) => void;
const assistant = (id: string, status: string, transcript: string | null) => ({ id, object: 'realtime.item', type: 'message', role: 'assistant', status, content: transcript === null ? [] : [{ type: 'output_audio', transcript }] });
const ids = (responseId: string, itemId: string, outputIndex: number) => ({ response_id: responseId, item_id: itemId, output_index: outputIndex, content_index: 0 });
const TRANSCRIPT_DELTA = 'response.output_audio_transcript.delta';
const TRANSCRIPT_DONE = 'response.output_audio_transcript.done';

/** One answer streamed whole, `text`. */
function answer(send: Send, r: string, item: string, text: string): void {
  send({ type: 'response.created', response: { id: r, object: 'realtime.response', status: 'in_progress', output: [] } });
  send({ type: 'response.output_item.added', response_id: r, output_index: 0, item: assistant(item, 'in_progress', null) });
  for (const delta of text.split(/(?<= )/)) send({ type: TRANSCRIPT_DELTA, ...ids(r, item, 0), delta });
  send({ type: TRANSCRIPT_DONE, ...ids(r, item, 0), transcript: text });
  send({ type: 'response.output_item.done', response_id: r, output_index: 0, item: assistant(item, 'completed', text) });
  send({ type: 'response.done', response: { id: r, object: 'realtime.response', status: 'completed', output: [assistant(item, 'completed', text)] } });
}

/**
 * resp_2: the victim item streams `first` (its first deltas), then OTHERS more items each stream
 * "ok. " and finish (their `.done`s move the source's context on), then the victim streams `rest`
 * and finishes.
 */
function interleaved(send: Send, first: readonly string[], rest: readonly string[]): void {
  const r = 'resp_2';
  const text = [...first, ...rest].join('');
  const others = Array.from({ length: OTHERS }, (_, k) => `item_2_${k + 1}`);
  send({ type: 'response.created', response: { id: r, object: 'realtime.response', status: 'in_progress', output: [] } });
  for (const [k, id] of ['item_2', ...others].entries()) send({ type: 'response.output_item.added', response_id: r, output_index: k, item: assistant(id, 'in_progress', null) });
  for (const delta of first) send({ type: TRANSCRIPT_DELTA, ...ids(r, 'item_2', 0), delta });
  others.forEach((id, k) => send({ type: TRANSCRIPT_DELTA, ...ids(r, id, k + 1), delta: 'ok. ' }));
  others.forEach((id, k) => {
    send({ type: TRANSCRIPT_DONE, ...ids(r, id, k + 1), transcript: 'ok. ' });
    send({ type: 'response.output_item.done', response_id: r, output_index: k + 1, item: assistant(id, 'completed', 'ok. ') });
  });
  for (const delta of rest) send({ type: TRANSCRIPT_DELTA, ...ids(r, 'item_2', 0), delta });
  send({ type: TRANSCRIPT_DONE, ...ids(r, 'item_2', 0), transcript: text });
  send({ type: 'response.output_item.done', response_id: r, output_index: 0, item: assistant('item_2', 'completed', text) });
  const output = [assistant('item_2', 'completed', text), ...others.map((id) => assistant(id, 'completed', 'ok. '))];
  send({ type: 'response.done', response: { id: r, object: 'realtime.response', status: 'completed', output } });
}

const userItem = (itemId: string) => ({ id: itemId, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] });

/** `turns` diarized spoken turns, each one segment then `completed` (as a diarizing transcription model sends them). */
function spokenTurns(send: Send, turns: readonly string[]): void {
  turns.forEach((text, n) => {
    const id = `item_t${n}`;
    send({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: id });
    send({ type: 'conversation.item.added', previous_item_id: null, item: userItem(id) });
    send({ type: 'conversation.item.input_audio_transcription.segment', item_id: id, content_index: 0, id: `seg_${n}`, speaker: 'A', start: n, end: n + 1, text });
    send({ type: 'conversation.item.input_audio_transcription.completed', item_id: id, content_index: 0, transcript: text, usage: { type: 'duration', seconds: 1 } });
  });
  // A marker the client waits for: the last event of the script.
  send({ type: 'input_audio_buffer.cleared', event_id: 'marker_end' });
}

let upstream: RecordingUpstream;
let tp: TestProxy;
let capped: TestProxy;
/** What the scripted upstream answers the next `response.create` or `input_audio_buffer.commit` with (set by each test). */
let script: ((send: Send) => void) | null = null;
beforeAll(async () => {
  upstream = await recordingUpstream((event, send) => {
    if (event.type === 'response.create' || event.type === 'input_audio_buffer.commit') {
      script?.(send);
      script = null;
    }
  });
  tp = await guardedProxy(upstream.url, POLICY);
  capped = await guardedProxy(upstream.url, CAPPED);
});
afterAll(async () => {
  await tp?.stop();
  await capped?.stop();
  await upstream?.close();
});

/** A client of the guarded tenant, with every text frame it receives, as received. */
const client = (proxy: TestProxy = tp): Promise<{ c: TestClient; raw: string[] }> => clientWithFrames(proxy);

/** Everything of item_2 the client was streamed (its deltas, in order, and the held text flushed for it). */
const streamedOfVictim = (c: TestClient): string => c.ofType(TRANSCRIPT_DELTA).filter((e) => e['item_id'] === 'item_2').map((e) => String(e['delta'])).join('');
const resp2Done = (e: { type: string; [k: string]: unknown }): boolean => e.type === 'response.done' && (e['response'] as { id?: string }).id === 'resp_2';

describe('red team 19g: a stream whose own text holds nothing, but whose context ends in an open match', () => {
  it('an empty first delta: the second half of a card number split over two answers is redacted in the deltas and the .done', async () => {
    const { c, raw } = await client();
    script = (send) => answer(send, 'resp_1', 'item_1', 'Your card is 4111 1111');
    c.send({ type: 'response.create' });
    await c.waitFor((e) => e.type === 'response.done');
    const from = raw.length;
    script = (send) => interleaved(send, [''], ['1111 ', '1111']);
    c.send({ type: 'response.create' });
    await Promise.race([c.closed, c.waitFor(resp2Done, 20_000)]);
    // Current code: item_2's stream (nothing held: its only text is '') made room for the 257th, the
    // other items' .done moved the context on, and '1111 1111' was streamed and shown on the .done.
    // Kept (or with the session ended), none of it is shown.
    expect(showing(raw.slice(from), '1111 1111')).toEqual([]);
    expect(streamedOfVictim(c)).not.toContain('1111 1111');
    // Fixed: the stream is kept (one of the 256 others, settled, makes room) and the session goes on.
    expect(c.ofType(TRANSCRIPT_DONE).find((e) => e['item_id'] === 'item_2')?.['transcript']).toBe('[card]');
    expect(errorCodes(c)).toEqual([]);
    c.close();
  });
});

describe('red team 19g: a stream under a maxChars rule holds nothing, and its count starts again when dropped', () => {
  it('an answer capped at 40 characters streams no more than 40 to the client', async () => {
    const { c } = await client(capped);
    const half = 'abcdefghij abcdefghij abcdefghij ';
    script = (send) => interleaved(send, [half], [half]);
    c.send({ type: 'response.create' });
    await Promise.race([c.closed, c.waitFor(resp2Done, 20_000)]);
    // Current code: 66 characters of item_2 reached the client (the second 33 judged as a new stream's first).
    expect(streamedOfVictim(c).length).toBeLessThanOrEqual(40);
    c.close();
  });
});

describe('red team 19g (false positive): an honest diarized call whose turns often end in a number', () => {
  it('600 turns, every other ending in an order number: the session goes on and every segment reaches the client', async () => {
    const { c, raw } = await client();
    const turns = Array.from({ length: 600 }, (_, n) => (n % 2 === 0 ? `My order number is ${58_000 + n}.` : 'Thanks, that helps.'));
    script = (send) => spokenTurns(send, turns);
    c.send({ type: 'input_audio_buffer.commit' });
    await Promise.race([c.closed, c.waitFor((e) => e.type === 'input_audio_buffer.cleared', 20_000)]);
    // Current code: at turn 512 (the 257th ending in a number) the session was ended governance_failed.
    expect(errorCodes(c)).toEqual([]);
    const segments = raw.filter((f) => f.includes('"conversation.item.input_audio_transcription.segment"'));
    expect(segments).toHaveLength(600);
    c.close();
  });

  it('the fix\'s other half: a late segment of a completed transcript whose context made room is withheld, not judged without it', async () => {
    const { c, raw } = await client();
    const numbered = Array.from({ length: 300 }, (_, n) => `My order number is ${58_000 + n}.`);
    script = (send) => {
      spokenTurns(send, ['my card is 4111 1111', ...numbered]);
      // A segment of the first turn after its transcript completed (and 300 others did).
      send({ type: 'conversation.item.input_audio_transcription.segment', item_id: 'item_t0', content_index: 0, id: 'seg_late', speaker: 'A', start: 0, end: 1, text: ' 1111 1111 thanks' });
      send({ type: 'input_audio_buffer.cleared', event_id: 'marker_late' });
    };
    c.send({ type: 'input_audio_buffer.commit' });
    await Promise.race([c.closed, c.waitFor((e) => e.type === 'input_audio_buffer.cleared' && e['event_id'] === 'marker_late', 20_000)]);
    expect(errorCodes(c)).toEqual([]);
    // Without the withholding it met the last turns' text and showed ' 1111 1111 thanks'.
    expect(showing(raw, '1111 1111 thanks')).toEqual([]);
    c.close();
  });
});

describe('red team 19g: a streaming custom guardrail sees the text before each delta', () => {
  it('"wire the", 256 other streams, then " money": the delta that completes it is stopped', async () => {
    const stopsWire = defineGuardrail({ name: 'wire', wants: ['output'], streaming: true, evaluate: (e) => (e.text.includes('wire the money') ? { action: 'cancel_response' } : { action: 'allow' }) });
    const { server } = await guardrailsWith('guardrails:\n  custom: [{ id: wire, module: ./wire.ts }]\n', stopsWire);
    server(responseCreated('resp_1'));
    expect((await server(outDelta('resp_1', 'I will wire the', 'item_v'))).kind).toBe('continue');
    const opened: string[] = [];
    for (let k = 0; k < OTHERS; k++) opened.push((await server(outDelta('resp_1', 'ok. ', `item_o${k}`))).kind);
    // Fixed: none of the 257 can be dropped (each has a streaming guardrail), so the 257th ends the session.
    expect(opened.slice(0, -1).every((k) => k === 'continue')).toBe(true);
    // Current code: item_v's stream made room for the 257th and ' money.' met nothing before it (continue).
    const completing = opened.at(-1) === 'close' ? 'ended' : (await server(outDelta('resp_1', ' money.', 'item_v'))).kind;
    expect(completing).not.toBe('continue');
    expect(opened.at(-1)).toBe('close');
  });
});
