/**
 * Red team (thirteenth session, 2026-12-06): the linger for a client that left with audio in the
 * input buffer (src/metering/filter.ts onClientGone / awaitingUpstream, src/relay/session.ts). An
 * adversary with a tenant key steers what the proxy reads of the upstream after it left. Real
 * sockets: the proxy with metering on a SQLite ledger, a scripted upstream playing OpenAI's part.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence } from '../support/harness.js';
import { meteredProxy, scriptedMeteredProxy, scriptedResponse, scriptedSession, spend, textUsage, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const usage = textUsage;
const VAD = { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 200, create_response: true, interrupt_response: true };
const session = scriptedSession(VAD);
const responseOf = scriptedResponse;

describe('red team 4: a client that clears the input buffer itself, then sends a turn and leaves', () => {
  /*
   * The client sends `input_audio_buffer.clear`, a whole spoken turn after it, and closes at once.
   * The proxy clears the buffer again when the client leaves and lingers until "its" `cleared`. The
   * first `cleared` the upstream sends answers the client's clear, and the turn after it is still in
   * the buffer: server VAD commits it and starts its response (which reads the conversation, billed
   * by OpenAI). Until this session metering took that first `cleared` for its own (the client is
   * gone: "no other clear is on its way"), forgot the turn's audio and speech, stopped awaiting, and
   * the relay closed the upstream: the response and the turn went unread and unbilled.
   */
  it("the client's own clear answered after it left is not taken for the proxy's: the response VAD starts for the turn after it is read, cancelled and billed from its response.done", async () => {
    const received: Array<{ type: string; event_id?: string }> = [];
    let clears = 0;
    const tp = await scriptedMeteredProxy(cleanups, (ws: WebSocket, send) => {
      send({ type: 'session.created', event_id: 'event_s0', session });
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { type: string; event_id?: string; response_id?: string };
        received.push(ev.event_id !== undefined ? { type: ev.type, event_id: ev.event_id } : { type: ev.type });
        if (ev.type === 'input_audio_buffer.clear') {
          clears++;
          // The upstream answers in order, as slowly as it likes: both clears once the second arrived.
          if (clears < 2) return;
          send({ type: 'input_audio_buffer.cleared', event_id: 'event_c1' });
          // The turn appended after the client's clear: server VAD committed it and started its response.
          setTimeout(() => {
            send({ type: 'input_audio_buffer.speech_started', event_id: 'event_v1', audio_start_ms: 100, item_id: 'item_turn' });
            send({ type: 'input_audio_buffer.speech_stopped', event_id: 'event_v2', audio_end_ms: 900, item_id: 'item_turn' });
            send({ type: 'input_audio_buffer.committed', event_id: 'event_v3', previous_item_id: null, item_id: 'item_turn' });
            send({ type: 'response.created', event_id: 'event_r1', response: responseOf('resp_vad', 'in_progress') });
            send({ type: 'input_audio_buffer.cleared', event_id: 'event_c2' });
          }, 50);
        }
        if (ev.type === 'response.cancel') {
          send({ type: 'response.done', event_id: 'event_r2', response: responseOf('resp_vad', 'cancelled', { usage: usage(4_000, 0) }) });
        }
      });
    });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'input_audio_buffer.clear', event_id: 'evt_own_clear' });
    for (const ev of appendEvents(speechThenSilence(800, 300))) c.send(ev);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    // Everything the upstream got but the audio: the client's clear, the proxy's, the cancel of the response VAD started.
    expect(received.filter((e) => e.type !== 'input_audio_buffer.append')).toEqual([
      { type: 'input_audio_buffer.clear', event_id: 'evt_own_clear' },
      { type: 'input_audio_buffer.clear', event_id: expect.stringMatching(/^event_proxy_/) },
      { type: 'response.cancel', event_id: expect.stringMatching(/^event_proxy_/) },
    ]);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['ref'], r['settledBy'], r['estimated']])).toEqual([['response', 'resp_vad', 'response.done', false]]);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(records[0]!['costNanos']);
    expect(records[0]!['costNanos'] as number).toBeGreaterThan(0);
  }, 30_000);
});

describe('red team 4: an upstream that refuses the clear the proxy sent when the client left', () => {
  /*
   * Metering stops awaiting the buffer's fate when the upstream refuses its clear (an `error` naming
   * the clear's event_id: src/metering/filter-linger.test.ts), and the close bills the estimate as
   * the client's leaving. Through the relay the error never reached it: an error about an event the
   * proxy injected stays in the relay, as a governance failure (`onInjectedEventError: end_session`
   * by default), so the session ended as the proxy's 4003 governance_failed, a benign refusal counted
   * and logged as the session being ungoverned, and the estimate billed as a session the proxy ended.
   */
  it("the refusal reaches metering: no governance failure, the session ends as the client's close, the estimate billed as the client gone", async () => {
    const received: Array<{ type: string; event_id?: string }> = [];
    const tp = await scriptedMeteredProxy(cleanups, (ws: WebSocket, send) => {
      send({ type: 'session.created', event_id: 'event_s0', session });
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { type: string; event_id?: string };
        received.push(ev.event_id !== undefined ? { type: ev.type, event_id: ev.event_id } : { type: ev.type });
        if (ev.type === 'input_audio_buffer.clear') {
          send({ type: 'error', event_id: 'event_e1', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'The buffer could not be cleared.', param: null, event_id: ev.event_id } });
        }
      });
    });
    const c = await tp.client();
    await c.next('session.created');
    // A second of speech, sent at once (faster than real time), no turn committed: the proxy clears it as the client leaves.
    for (const ev of appendEvents(speechThenSilence(1000, 0))) c.send(ev);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    expect(received.filter((e) => e.type !== 'input_audio_buffer.append')).toEqual([{ type: 'input_audio_buffer.clear', event_id: expect.stringMatching(/^event_proxy_/) }]);
    expect(tp.logs.filter((l) => String(l.msg).startsWith('governance failure'))).toEqual([]);
    const end = tp.logs.find((l) => l['event'] === 'session_end')!;
    expect([end['initiator'], end['clientCloseCode']]).toEqual(['client', 1005]);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.length).toBeGreaterThan(0);
    expect(records.map((r) => [r['settledBy'], r['estimated']])).toEqual(records.map(() => ['client_gone_estimate', true]));
  }, 30_000);
});

describe('red team 4: a whole turn, then the client\'s own clear, sent with the close', () => {
  /*
   * The same turn sent with the close is read and billed (red team 3: the proxy clears the buffer and
   * lingers). A client that ends its burst with `input_audio_buffer.clear` of its own: metering reads
   * the buffer empty from that clear on, so when the client leaves nothing is in it, no clear is sent
   * and the relay does not linger. The upstream reads the turn's audio before the clear: server VAD
   * commits it and starts its response (the simulator as OpenAI), which the proxy never reads, and
   * the close estimates nothing (the buffer was cleared). Until this session: nothing billed.
   */
  it("the turn VAD committed before the client's clear is read: its response is cancelled and billed from its response.done", async () => {
    const tp = await meteredProxy(cleanups, { simulator: { timing: { firstAudioDelayMs: 2_000 } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: { type: 'server_vad' } } } } });
    await c.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(1000, 800))) c.send(ev);
    c.send({ type: 'input_audio_buffer.clear', event_id: 'evt_own_clear' });
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    // The upstream's VAD committed the turn and started its response before it read the client's clear.
    const sent = upstream.sent.map((e) => e.type).filter((t) => t.startsWith('input_audio_buffer.') || t === 'response.created' || t === 'response.done');
    expect(sent.slice(0, 4)).toEqual(['input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'response.created']);
    const responseId = upstream.sent.find((e) => e.type === 'response.created')!.responseId;
    // After the client's audio and clear: the proxy's clear, and the cancel of the response VAD started.
    expect(upstream.received.map((e) => e.type).filter((t) => t !== 'input_audio_buffer.append')).toEqual(['session.update', 'input_audio_buffer.clear', 'input_audio_buffer.clear', 'response.cancel']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['ref'], r['settledBy'], r['estimated']])).toEqual([['response', responseId, 'response.done', false]]);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(records[0]!['costNanos']);
  }, 30_000);
});
