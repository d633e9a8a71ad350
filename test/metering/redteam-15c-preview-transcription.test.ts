import type { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { appendEvents } from '../support/harness.js';
import { errorCode, meteredProxy, until, usageRecords } from './support.js';

/*
 * Red team, fifteenth session (protocol variants). On the Azure preview protocol
 * (`upstream.azure.apiVersion`) the session is beta-shaped: input transcription is the top-level
 * `input_audio_transcription`, not GA's `audio.input.transcription`. Metering read only the GA
 * member, so a tenant on that upstream who turned transcription on the beta way was metered as if
 * it had none:
 * - an adversary commits audio and leaves before the transcription's completed event: the upstream
 *   bills the transcription, the proxy billed nothing (the GA endpoint bills it by the committed
 *   audio length: test/metering/leaks.test.ts);
 * - a transcription model without a price was not refused (the GA shape gets `unknown_model_price`);
 * - the same through the preview's transcription session (`?intent=transcription`,
 *   `transcription_session.update`), which metering did not read at all.
 * Guarantee broken: every upstream charge is metered (and priced) whatever the protocol dialled.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, unknown>;

/** An Azure preview upstream: beta-shaped session, commits answered, transcriptions never completed. */
function previewUpstream(ws: WebSocket): void {
  let seq = 0;
  const send = (e: Json) => ws.send(JSON.stringify({ event_id: `event_pv_${++seq}`, ...e }));
  let session: Json = {
    object: 'realtime.session',
    id: 'sess_preview',
    model: 'gpt-realtime',
    modalities: ['audio', 'text'],
    input_audio_format: 'pcm16',
    output_audio_format: 'pcm16',
    input_audio_transcription: null,
    turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 200, create_response: true, interrupt_response: true },
    max_response_output_tokens: 'inf',
    tools: [],
  };
  send({ type: 'session.created', session });
  ws.on('message', (data) => {
    const ev = JSON.parse(String(data)) as Json;
    if (ev['type'] === 'session.update') {
      session = { ...session, ...(ev['session'] as Json) };
      send({ type: 'session.updated', session });
    } else if (ev['type'] === 'transcription_session.update') {
      send({ type: 'transcription_session.updated', session: { object: 'realtime.transcription_session', input_audio_format: 'pcm16', turn_detection: null, ...(ev['session'] as Json) } });
    } else if (ev['type'] === 'input_audio_buffer.commit') {
      const itemId = `item_pv_${++seq}`;
      send({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });
      send({ type: 'conversation.item.created', previous_item_id: null, item: { id: itemId, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] } });
    }
  });
}

async function previewProxy() {
  const up = await scriptedUpstream((ws) => previewUpstream(ws));
  cleanups.push(() => up.close());
  const endpoint = new URL(up.url).origin.replace(/^ws/, 'http');
  return meteredProxy(cleanups, {
    config: { upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } },
  });
}

describe('Azure preview protocol: input transcription set in the beta shape is metered', () => {
  it('a client that commits one second of audio and leaves is billed its transcription (estimated, by the audio length)', async () => {
    const tp = await previewProxy();
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { input_audio_transcription: { model: 'whisper-1' }, turn_detection: null } });
    await c.next('session.updated');
    for (const ev of appendEvents(Buffer.alloc(48_000))) c.send(ev);
    c.send({ type: 'input_audio_buffer.commit' });
    const committed = await c.next('input_audio_buffer.committed');
    c.ws.terminate();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Before the fix: [] (the transcription OpenAI/Azure bills was free).
    expect(records.map((r) => [r['source'], r['ref'], r['model'], r['estimated']])).toEqual([['transcription', committed['item_id'], 'whisper-1', true]]);
    // One second at whisper-1's $0.006/min is 100,000 nanos; at most the wire size of the appends.
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(100_000);
    expect(records[0]!['costNanos'] as number).toBeLessThan(110_000);
  });

  it('a transcription model with no price is refused, as in the GA shape', async () => {
    const tp = await previewProxy();
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', event_id: 'evt_tx', session: { input_audio_transcription: { model: 'unpriced-transcriber' } } });
    const answer = await c.waitFor((e) => e.type === 'session.updated' || e.type === 'error', 5000, 'session.updated or error');
    // Before the fix: session.updated (the upstream transcribed at a model the proxy has no price for).
    expect(errorCode(answer)).toBe('unknown_model_price');
    expect((answer['error'] as Json)['param']).toBe('session.input_audio_transcription.model');
  });

  it('a beta transcription session (?intent=transcription): the model is priced, and a transcription left unfinished is billed', async () => {
    const tp = await previewProxy();
    const refused = await tp.client({ query: 'intent=transcription' });
    await refused.next('session.created');
    refused.send({ type: 'transcription_session.update', session: { input_audio_transcription: { model: 'unpriced-transcriber' } } });
    const answer = await refused.waitFor((e) => e.type === 'transcription_session.updated' || e.type === 'error', 5000, 'transcription_session.updated or error');
    // Before the fix: transcription_session.updated.
    expect(errorCode(answer)).toBe('unknown_model_price');
    refused.ws.terminate();

    const c = await tp.client({ query: 'intent=transcription' });
    await c.next('session.created');
    c.send({ type: 'transcription_session.update', session: { input_audio_format: 'g711_ulaw', input_audio_transcription: { model: 'whisper-1' }, turn_detection: null } });
    await c.next('transcription_session.updated');
    // One second of G.711 (8,000 bytes): as PCM16 it would read as 167 ms.
    for (const ev of appendEvents(Buffer.alloc(8_000))) c.send(ev);
    c.send({ type: 'input_audio_buffer.commit' });
    const committed = await c.next('input_audio_buffer.committed');
    c.ws.terminate();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Before the fix: [] (free).
    expect(records.map((r) => [r['source'], r['ref'], r['model'], r['estimated']])).toEqual([['transcription', committed['item_id'], 'whisper-1', true]]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(100_000);
  });
});
