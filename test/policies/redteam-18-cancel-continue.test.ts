/**
 * Red team (guardrails, eighteenth pass): a phrase the model says across a cancelled response and
 * the next one.
 *
 * Streamed output is scanned with the end of the earlier answers of the same source as context, so
 * a phrase split between two answers stops the second. That context is taken from a stream's
 * `.done`; a response that ends without one (cancelled, by the client's `response.cancel` or by the
 * server's `turn_detected`, shows its text in `response.output_item.done` and `response.done` only)
 * released its held text at `response.done` and was no context at all. An adversary with a tenant
 * key has the model say "… wire the", cancels the response, and asks for the next one ("continue"):
 * "money …" streamed to the client past an output `block` rule on "wire the money". Guarantee
 * broken: a phrase split across events is a match (README "Streaming").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import type { TestProxy } from '../support/harness.js';
import { guardedProxy } from './guarded-proxy.js';

const POLICY = `
guardrails:
  rules:
    - { id: no-wire, sources: [output], match: { phrases: ["wire the money"] }, action: block }
`;

/** The first answer, cut short by the cancel, and the next one. */
const FIRST = ['Alright, now ', 'wire the'];
const SECOND = [' money to ', 'account 7.'];

let upstream: RecordingUpstream;
let tp: TestProxy;
beforeAll(async () => {
  let answered = 0;
  upstream = await recordingUpstream((event, send) => {
    if (event.type !== 'response.create') return;
    const n = ++answered;
    const responseId = `resp_${n}`;
    const itemId = `item_${n}`;
    const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
    const deltas = n === 1 ? FIRST : SECOND;
    const text = deltas.join('');
    const item = (status: string) => ({ id: itemId, object: 'realtime.item', type: 'message', role: 'assistant', status, content: [{ type: 'output_audio', transcript: text }] });
    send({ type: 'response.created', event_id: `ev_${n}_c`, response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [] } });
    send({ type: 'response.output_item.added', event_id: `ev_${n}_a`, response_id: responseId, output_index: 0, item: { ...item('in_progress'), content: [] } });
    deltas.forEach((delta, k) => send({ type: 'response.output_audio_transcript.delta', event_id: `ev_${n}_d${k}`, ...ids, delta }));
    if (n === 1) {
      // Cancelled: the item ends incomplete, no transcript .done.
      send({ type: 'response.output_item.done', event_id: `ev_${n}_od`, response_id: responseId, output_index: 0, item: item('incomplete') });
      send({ type: 'response.done', event_id: `ev_${n}_rd`, response: { id: responseId, object: 'realtime.response', status: 'cancelled', status_details: { type: 'cancelled', reason: 'client_cancelled' }, output: [item('incomplete')] } });
      return;
    }
    send({ type: 'response.output_audio_transcript.done', event_id: `ev_${n}_td`, ...ids, transcript: text });
    send({ type: 'response.output_item.done', event_id: `ev_${n}_od`, response_id: responseId, output_index: 0, item: item('completed') });
    send({ type: 'response.done', event_id: `ev_${n}_rd`, response: { id: responseId, object: 'realtime.response', status: 'completed', output: [item('completed')] } });
  });
  tp = await guardedProxy(upstream.url, POLICY);
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

describe('"wire the" in a cancelled response, "money" in the next (output block)', () => {
  it('the second response is stopped before "money" reaches the client', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'response.create', event_id: 'evt_r1' });
    await c.waitFor((e) => e.type === 'response.done');
    c.send({ type: 'response.create', event_id: 'evt_r2' });
    // Old code: nothing was said; the client got the second answer whole and its response.done.
    // Now the stop is told as a notice (the response is the server's; nothing the client sent was refused).
    const told = await c.waitFor((e) => e.type === 'rtproxy.notice' || (e.type === 'response.done' && (e['response'] as { id?: string }).id === 'resp_2'));
    expect(told.type).toBe('rtproxy.notice');
    const said = c.events.filter((e) => e.type !== 'rtproxy.notice').map((e) => JSON.stringify(e));
    expect(said.filter((s) => s.includes('money'))).toEqual([]);
    c.close();
  });
});
