import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimConnection } from '../../src/simulator/index.js';
import { appendEvents, speechThenSilence, startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { type Json } from '../governance/support.js';
import { policyDir } from './support.js';

/**
 * `guardrails.holdSpokenInput` without a truncation budget: a client `response.create` the hold let
 * go to stand for a turn that passed (the proxy then owes the turn no response of its own) can still
 * be refused after the hold: by the upstream (the hold reads the upstream's `error` naming the id it
 * left with: the turn is owed the proxy's own create again, since 2026-12-06), or by a filter after
 * the policies, metering. A cap metering refuses over is deliberately not re-owed (policies/README.md,
 * "Holding spoken turns"); an invalid `max_output_tokens` is refused for the create alone, and the
 * turn is answered by the proxy: the chain tells the conversation view of every client frame a filter
 * stopped (`ChainSink.stopped`, src/protocol/spoken-turns.ts). Found 2026-12-06 while moving the
 * hold's state into the view (until then metering told nobody and the turn went unanswered).
 * Real proxy, the simulator as upstream (server VAD, transcription taking TRANSCRIPTION_MS).
 */

const TRANSCRIPTION_MS = 250;
const POLICY = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  holdSpokenInput: { enabled: true, timeoutMs: 5000 }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'held' } },
    config: { policies: { dir: policyDir({ 'held.yaml': POLICY }), watch: false } },
    simulator: { transcribe: () => 'what is the weather like today', timing: { transcriptionDelayMs: TRANSCRIPTION_MS, deltaIntervalMs: 1 } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

async function open(): Promise<{ c: TestClient; conn: SimConnection }> {
  const before = tp.sim.connections.length;
  const c = await tp.client({ tenant: 'acme' });
  await c.next('session.created');
  await c.next('session.updated');
  return { c, conn: tp.sim.connections[before]! };
}

/** Everything the client sent before it has been through the proxy and the upstream (a retrieve answered). */
async function barrier(c: TestClient, itemId: string): Promise<void> {
  const n = c.events.length;
  c.send({ type: 'conversation.item.retrieve', item_id: itemId, event_id: `evt_barrier_${n}` });
  await c.waitFor((e) => (e.type === 'conversation.item.retrieved' || e.type === 'error') && c.events.indexOf(e) >= n, 5000, 'barrier');
}

describe('a held spoken turn whose client response.create the upstream refuses', () => {
  it('an invalid output_modalities: the client gets the upstream\'s error (its own event_id), and the proxy answers the turn with its own create (found 2026-12-06)', async () => {
    const { c, conn } = await open();
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) c.send(e);
    const itemId = String((await c.next('input_audio_buffer.committed'))['item_id']);
    // Sent while the turn is held: paused until it passes, then let go to stand for it.
    c.send({ type: 'response.create', event_id: 'evt_video', response: { output_modalities: ['video'] } });
    const error = await c.waitFor((e) => e.type === 'error', 5000, 'the refusal');
    expect(error['error']).toMatchObject({ code: 'invalid_value', param: 'response.output_modalities', event_id: 'evt_video' });
    // Until 2026-12-06 nothing more: no response ever answered the turn.
    const done = await c.next('response.done');
    expect(done['response']).toMatchObject({ status: 'completed', output: [{ type: 'message', role: 'assistant' }] });
    await barrier(c, itemId);
    const creates = conn.received.filter((e) => e.type === 'response.create').map((e) => e.event as Json);
    expect(creates).toEqual([
      { type: 'response.create', event_id: expect.stringMatching(/^event_proxy_/), response: { output_modalities: ['video'] } },
      { type: 'response.create', event_id: expect.stringMatching(/^event_proxy_/) },
    ]);
    expect(c.ofType('error')).toHaveLength(1);
    c.close();
  });
});

describe('a held spoken turn whose client response.create a filter after the policies refuses', () => {
  it('metering refuses it (max_output_tokens 0): the client gets invalid_value, and the proxy answers the turn with its own create (found 2026-12-06)', async () => {
    const { c, conn } = await open();
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) c.send(e);
    const itemId = String((await c.next('input_audio_buffer.committed'))['item_id']);
    // Sent while the turn is held: paused until it passes, then let go to stand for it.
    c.send({ type: 'response.create', event_id: 'evt_bad', response: { max_output_tokens: 0 } });
    const error = await c.waitFor((e) => e.type === 'error', 5000, 'the refusal');
    expect(error['error']).toMatchObject({ code: 'invalid_value', param: 'response.max_output_tokens', event_id: 'evt_bad' });
    await c.next('conversation.item.input_audio_transcription.completed');
    await barrier(c, itemId);
    // The client's create never reached the upstream: the proxy's own answers the turn.
    expect(conn.received.filter((e) => e.type === 'response.create').map((e) => e.event as Json)).toEqual([{ type: 'response.create', event_id: expect.stringMatching(/^event_proxy_/) }]);
    c.close();
  });

  it('control: the same create with a valid max_output_tokens goes upstream and answers the turn (the proxy sends none)', async () => {
    const { c, conn } = await open();
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) c.send(e);
    const itemId = String((await c.next('input_audio_buffer.committed'))['item_id']);
    c.send({ type: 'response.create', event_id: 'evt_ok', response: { max_output_tokens: 200 } });
    await c.next('response.done');
    await barrier(c, itemId);
    const creates = conn.received.filter((e) => e.type === 'response.create').map((e) => e.event as Json);
    expect(creates).toHaveLength(1);
    expect((creates[0]!['response'] as Json)['max_output_tokens']).toBe(200);
    c.close();
  });
});
