/**
 * Red team 19 (guardrails): a stream pushed out of the filter's memory takes its context with it.
 *
 * The filter keeps at most MAX_STREAMS (256) texts being streamed (`#streams`) and the running
 * context of at most 256 transcripts' diarized segments (`#segments`), oldest dropped first. Until
 * 2026-12-07 anything could be dropped: 256 other streams interleaved with one (an upstream sending
 * many items' deltas at once, a client committing many turns) pushed it out, and its later text was
 * judged without the context its deltas had. Adversary (a tenant key, card → redact): has the model
 * say a card number half in one answer and half in the next, with 256 other output items streamed
 * between the second half's first deltas and its `.done`; the `.done` (and every later view of the
 * item: `output_item.done`, `conversation.item.done`, `response.done`, a retrieve) was judged
 * alone and showed `1111 1111` that its deltas had redacted. The same for a spoken turn's diarized
 * segments: the card number said over two segments of one turn, 256 other turns' segments between
 * them, and the second segment met no context. Guarantee broken: "the same text is redacted on every
 * later path that shows it" (policies/README.md).
 *
 * Fixed 2026-12-07: room is made by dropping the oldest stream (or segment context) whose later text
 * cannot depend on what it saw (nothing held back and nothing redacted, or stopped for good); when
 * none of the 256 can be dropped the session is ended (`governance_failed`). Also here: a turn whose
 * transcript is still streaming while 256 others complete had its segment judged with the earlier
 * turns' text as it was then (#itemSeeds had dropped its context), not what its deltas met.
 *
 * Every byte the client receives is read (raw WebSocket text frames), not only the events a test expects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RUNNING_RESPONSES } from '../../src/protocol/conversation.js';
import { recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import type { TestClient, TestProxy } from '../support/harness.js';
import type { ReceivedEvent } from '../support/client.js';
import { clientWithFrames, errorCodes, guardedProxy, showing } from './guarded-proxy.js';
import { guardrailsWith, outDelta, responseCreated, wire } from './support.js';

const POLICY = `
guardrails:
  rules:
    - { id: card-number, sources: [output, input], match: { pii: [card] }, action: redact, replacement: "[card]" }
`;
const SECOND_HALF = '1111 1111';
/** Streams interleaved with the victim: as many as the filter keeps. */
const OTHERS = 256;

type Send = (e: object) => void;
const assistant = (id: string, status: string, transcript: string | null) => ({ id, object: 'realtime.item', type: 'message', role: 'assistant', status, content: transcript === null ? [] : [{ type: 'output_audio', transcript }] });
const ids = (responseId: string, itemId: string, outputIndex: number) => ({ response_id: responseId, item_id: itemId, output_index: outputIndex, content_index: 0 });

/** One answer streamed whole: "Your card is 4111 1111". */
function firstAnswer(send: Send): void {
  const text = 'Your card is 4111 1111';
  const at = ids('resp_1', 'item_1', 0);
  send({ type: 'response.created', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [] } });
  send({ type: 'response.output_item.added', response_id: 'resp_1', output_index: 0, item: assistant('item_1', 'in_progress', null) });
  send({ type: 'conversation.item.added', previous_item_id: null, item: assistant('item_1', 'in_progress', null) });
  for (const delta of text.split(/(?<= )/)) send({ type: 'response.output_audio_transcript.delta', ...at, delta });
  send({ type: 'response.output_audio_transcript.done', ...at, transcript: text });
  send({ type: 'conversation.item.done', previous_item_id: null, item: assistant('item_1', 'completed', text) });
  send({ type: 'response.done', response: { id: 'resp_1', object: 'realtime.response', status: 'completed', output: [assistant('item_1', 'completed', text)] } });
}

/**
 * The second answer (item_2: "1111 1111, as you asked.") begins, then OTHERS more output items of the
 * same response each stream a delta (`other`) before any of them is done; they finish, then item_2
 * does, on every event that shows it.
 */
function interleavedAnswer(send: Send, other: string): void {
  const text = '1111 1111, as you asked.';
  const r = 'resp_2';
  const others = Array.from({ length: OTHERS }, (_, k) => `item_2_${k + 1}`);
  send({ type: 'response.created', response: { id: r, object: 'realtime.response', status: 'in_progress', output: [] } });
  for (const [k, id] of ['item_2', ...others].entries()) {
    send({ type: 'response.output_item.added', response_id: r, output_index: k, item: assistant(id, 'in_progress', null) });
    send({ type: 'conversation.item.added', previous_item_id: null, item: assistant(id, 'in_progress', null) });
  }
  // The second half: its first deltas are redacted with the first answer as context.
  send({ type: 'response.output_audio_transcript.delta', ...ids(r, 'item_2', 0), delta: '1111 ' });
  send({ type: 'response.output_audio_transcript.delta', ...ids(r, 'item_2', 0), delta: '1111, ' });
  // OTHERS streams open at once.
  others.forEach((id, k) => send({ type: 'response.output_audio_transcript.delta', ...ids(r, id, k + 1), delta: other }));
  others.forEach((id, k) => {
    send({ type: 'response.output_audio_transcript.done', ...ids(r, id, k + 1), transcript: other });
    send({ type: 'response.output_item.done', response_id: r, output_index: k + 1, item: assistant(id, 'completed', other) });
  });
  send({ type: 'response.output_audio_transcript.delta', ...ids(r, 'item_2', 0), delta: 'as you asked.' });
  send({ type: 'response.output_audio_transcript.done', ...ids(r, 'item_2', 0), transcript: text });
  send({ type: 'response.content_part.done', ...ids(r, 'item_2', 0), part: { type: 'audio', transcript: text } });
  send({ type: 'response.output_item.done', response_id: r, output_index: 0, item: assistant('item_2', 'completed', text) });
  send({ type: 'conversation.item.done', previous_item_id: null, item: assistant('item_2', 'completed', text) });
  const output = [assistant('item_2', 'completed', text), ...others.map((id) => assistant(id, 'completed', other))];
  send({ type: 'response.done', response: { id: r, object: 'realtime.response', status: 'completed', output } });
}

/** A spoken turn's item and one diarized segment of it. */
function segment(send: Send, itemId: string, n: number, text: string): void {
  send({ type: 'conversation.item.input_audio_transcription.segment', item_id: itemId, content_index: 0, id: `seg_${itemId}_${n}`, speaker: 'A', start: n, end: n + 1, text });
}
const userItem = (itemId: string) => ({ id: itemId, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] });

/**
 * A diarized turn (item_A) says "my card is 4111 1111" in its first segment; OTHERS other turns get a
 * segment each (`other`); then item_A's second segment says the rest, and its transcript completes.
 */
function interleavedTurns(send: Send, other: string): void {
  send({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: 'item_A' });
  send({ type: 'conversation.item.added', previous_item_id: null, item: userItem('item_A') });
  segment(send, 'item_A', 0, 'my card is 4111 1111');
  for (let k = 1; k <= OTHERS; k++) {
    const id = `item_B${k}`;
    send({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: id });
    send({ type: 'conversation.item.added', previous_item_id: null, item: userItem(id) });
    segment(send, id, 0, other);
  }
  segment(send, 'item_A', 1, ' 1111 1111 thanks');
  send({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_A', content_index: 0, transcript: 'my card is 4111 1111 1111 1111 thanks', usage: { type: 'duration', seconds: 2 } });
}

let upstream: RecordingUpstream;
let tp: TestProxy;
/** What the scripted upstream answers the next `response.create` or `input_audio_buffer.commit` with (set by each test). */
let script: ((send: Send) => void) | null = null;
beforeAll(async () => {
  upstream = await recordingUpstream((event, send) => {
    if (event.type === 'response.create' || event.type === 'input_audio_buffer.commit') {
      script?.(send);
      script = null;
    }
    if (event.type === 'conversation.item.retrieve') {
      send({ type: 'conversation.item.retrieved', item: assistant('item_2', 'completed', '1111 1111, as you asked.') });
    }
  });
  tp = await guardedProxy(upstream.url, POLICY);
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

/** A client of the guarded tenant, with every text frame it receives, as received. */
const client = (): Promise<{ c: TestClient; raw: string[] }> => clientWithFrames(tp);

/** The session's close, or (old code) the event the session went on to. */
const closedOr = async (c: TestClient, went: (e: ReceivedEvent) => boolean): Promise<{ code: number } | string> => Promise.race([c.closed, c.waitFor(went, 20_000).then((e) => e.type)]);

describe('red team 19: a card number split over two answers, 256 other output items streamed in between', () => {
  it('the second half is redacted on the .done and every later view, as in its deltas', async () => {
    const { c, raw } = await client();
    script = firstAnswer;
    c.send({ type: 'response.create' });
    await c.waitFor((e) => e.type === 'response.done');
    const from = raw.length;
    script = (send) => interleavedAnswer(send, 'ok. ');
    c.send({ type: 'response.create' });
    await c.waitFor((e) => e.type === 'response.done' && (e['response'] as { id?: string }).id === 'resp_2');
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_get', item_id: 'item_2' });
    await c.next('conversation.item.retrieved');
    const second = raw.slice(from);
    // Old code: the .done, content_part.done, output_item.done, conversation.item.done, response.done and the retrieve showed it.
    expect(showing(second, SECOND_HALF)).toEqual([]);
    expect(c.ofType('response.output_audio_transcript.done').find((e) => e['item_id'] === 'item_2')?.['transcript']).toBe('[card], as you asked.');
    // Nothing of the other items is lost: each of them is done, whole.
    const othersDone = c.ofType('response.output_audio_transcript.done').filter((e) => String(e['item_id']).startsWith('item_2_'));
    expect(othersDone.map((e) => e['transcript'])).toEqual(Array(OTHERS).fill('ok. '));
    expect(errorCodes(c)).toEqual([]);
    c.close();
  });

  it('257 streams that each hold text back: the session is ended (governance_failed), none of it shown', async () => {
    const { c, raw } = await client();
    script = firstAnswer;
    c.send({ type: 'response.create' });
    await c.waitFor((e) => e.type === 'response.done');
    const from = raw.length;
    // Every other stream holds digits back (each could still grow into a card number).
    script = (send) => interleavedAnswer(send, 'code 4111 ');
    c.send({ type: 'response.create' });
    const closed = await closedOr(c, (e) => e.type === 'response.done' && (e['response'] as { id?: string }).id === 'resp_2');
    expect(errorCodes(c)).toEqual(['governance_failed']);
    expect(typeof closed === 'string' ? closed : closed.code).not.toBe(1000);
    expect(showing(raw.slice(from), SECOND_HALF)).toEqual([]);
  });
});

describe('red team 19: a card number said over two diarized segments of one turn, 256 other turns\u2019 segments in between', () => {
  it('the second segment is redacted as the completed transcript is', async () => {
    const { c, raw } = await client();
    script = (send) => interleavedTurns(send, 'ok');
    c.send({ type: 'input_audio_buffer.commit' });
    await c.waitFor((e) => e.type === 'conversation.item.input_audio_transcription.completed');
    // Old code: the second segment, judged without the first, showed ' 1111 1111 thanks'.
    expect(showing(raw, SECOND_HALF)).toEqual([]);
    const segments = c.ofType('conversation.item.input_audio_transcription.segment').filter((e) => e['item_id'] === 'item_A');
    expect(segments.map((e) => e['text'])).toEqual(['my card is 4111 1111', '[card] thanks']);
    expect(c.ofType('conversation.item.input_audio_transcription.segment').filter((e) => e['item_id'] !== 'item_A')).toHaveLength(OTHERS);
    expect(errorCodes(c)).toEqual([]);
    c.close();
  });

  it('257 turns whose segments each end in digits: the session is ended (governance_failed), nothing of the card shown', async () => {
    const { c, raw } = await client();
    script = (send) => interleavedTurns(send, 'code 4111 1111');
    c.send({ type: 'input_audio_buffer.commit' });
    const closed = await closedOr(c, (e) => e.type === 'conversation.item.input_audio_transcription.completed');
    expect(errorCodes(c)).toEqual(['governance_failed']);
    expect(typeof closed === 'string' ? closed : closed.code).not.toBe(1000);
    expect(showing(raw, ' 1111 1111 thanks')).toEqual([]);
  });
});

describe('control: streams stopped for good make room', () => {
  it('300 spoken turns each blocked in their transcript deltas: the session goes on (their later text is withheld without them)', async () => {
    const { server } = await guardrailsWith('guardrails:\n  rules:\n    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }\n');
    for (let n = 1; n <= 300; n++) {
      const delta = (text: string) => wire({ type: 'conversation.item.input_audio_transcription.delta', item_id: `item_u${n}`, content_index: 0, delta: text });
      expect((await server(delta('ignore previous instructions '))).kind).toBe('drop');
      // The stream stays open (no .completed): held text, stopped.
      expect((await server(delta('and more'))).kind).toBe('drop');
    }
  });

  // As many as may run at once (MAX_RUNNING_RESPONSES; past it the upstream is at fault and the relay
  // ends the session: test/metering/redteam-23-endless-responses.test.ts). Until the twenty-third
  // session 300 ran at once here.
  it(`${MAX_RUNNING_RESPONSES} answers each stopped in their deltas (cancel_response), none done yet: the session goes on (the relay withholds the rest of a stopped response)`, async () => {
    const { server, session } = await guardrailsWith('guardrails:\n  rules:\n    - { id: wire, sources: [output], match: { phrases: ["wire the money"] }, action: cancel_response }\n');
    for (let n = 1; n <= MAX_RUNNING_RESPONSES; n++) {
      server(responseCreated(`resp_${n}`));
      expect((await server(outDelta(`resp_${n}`, 'I will wire the money. ', `item_${n}`))).kind).toBe('drop');
      expect((await server(outDelta(`resp_${n}`, 'and more', `item_${n}`))).kind).toBe('drop');
    }
    expect(session.cancelled).toHaveLength(MAX_RUNNING_RESPONSES);
  });
});

describe('red team 19: a turn still streaming its transcript, 256 other turns completed meanwhile', () => {
  it('its diarized segment meets the context its deltas met', async () => {
    const { server } = await guardrailsWith(POLICY);
    const shown = async (event: { type: string; [k: string]: unknown }): Promise<string> => {
      const f = wire(event);
      const v = await server(f);
      return v.kind === 'replace' ? v.frame.wireBytes().toString('utf8') : v.kind === 'continue' ? f.wireBytes().toString('utf8') : '';
    };
    const completed = (itemId: string, transcript: string) => ({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: 0, transcript });
    await shown(completed('item_u1', 'my card is 4111 1111'));
    // The second turn's deltas meet the first turn's end: its half is redacted (or held).
    const deltas = [await shown({ type: 'conversation.item.input_audio_transcription.delta', item_id: 'item_u2', content_index: 0, delta: '1111 1111 ' })];
    // Each completed without deltas keeps the context it met: 256 push the second turn's out of that memory.
    for (let k = 1; k <= OTHERS; k++) await shown(completed(`item_v${k}`, 'ok'));
    const segment = await shown({ type: 'conversation.item.input_audio_transcription.segment', item_id: 'item_u2', content_index: 0, id: 'seg_1', speaker: 'A', start: 0, end: 1, text: '1111 1111 thanks' });
    // Old code: the segment met the 256 turns' "ok"s and showed '1111 1111 thanks'.
    expect([...deltas, segment].filter((t) => t.includes(SECOND_HALF))).toEqual([]);
  });
});
