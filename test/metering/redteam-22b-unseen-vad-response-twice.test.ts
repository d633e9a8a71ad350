/**
 * Red team 22b (metering): a server-VAD response the relay read started, and metering did not (its
 * `response.created` queued behind an earlier response's reservation on a stalled Redis), was billed
 * twice at the close: once by its id (#billStartedUnseen, 2026-12-07), and once more as
 * `vad:unread-response` — metering never read the turn's `committed` either, so the audio of that very
 * turn still looked like a turn server VAD would answer unseen (#unreadTurn).
 */
import type WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence } from '../support/harness.js';
import { redisForFile } from './redis-server.js';
import { scriptedMeteredProxy, scriptedResponse, scriptedSession, until, usageRecords } from './support.js';

const file = redisForFile();
const { cleanups } = file;

const VAD = { type: 'server_vad', threshold: 0.5, silence_duration_ms: 200, prefix_padding_ms: 0, create_response: true, interrupt_response: true };

describe('red team 22b: a server-VAD response the relay read and metering did not', () => {
  it('is billed once at the close (by its id), not again as vad:unread-response', async () => {
    let upstream: WebSocket | null = null;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        upstream = ws;
        send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession(VAD) });
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as { type: string };
          if (ev.type !== 'conversation.item.create') return;
          // The text item's response (its reservation waits for Redis, the server direction with it),
          // then the audio turn server VAD committed and the response it started for it.
          send({ type: 'response.created', event_id: 'event_r0', response: scriptedResponse('resp_text', 'in_progress') });
          send({ type: 'input_audio_buffer.speech_started', event_id: 'event_v1', item_id: 'item_turn', audio_start_ms: 0 });
          send({ type: 'input_audio_buffer.speech_stopped', event_id: 'event_v2', item_id: 'item_turn', audio_end_ms: 2_000 });
          send({ type: 'input_audio_buffer.committed', event_id: 'event_v3', item_id: 'item_turn', previous_item_id: null });
          send({ type: 'response.created', event_id: 'event_r1', response: scriptedResponse('resp_turn', 'in_progress') });
          ws.terminate();
        });
      },
      {
        tenants: { acme: { limits: { dailyUsd: 1 } } },
        metering: { ledger: { kind: 'redis', url: file.redis.url, keyPrefix: 'rt22b-vad:', commandTimeoutMs: 1_000 } },
      },
    );
    const c = await tp.client();
    await c.next('session.created');
    expect(upstream).not.toBeNull();
    // One turn of audio, written faster than real time (3 s in one write).
    for (const ev of appendEvents(speechThenSilence(2_000, 1_000))) c.send(ev);
    file.redis.pause();
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    const closed = await c.closed;
    expect(closed.code).not.toBe(1000);
    file.redis.resume();

    const records = async (): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, '?tenant=acme');
    await until(() => tp.logs.some((l) => l.msg === 'session end'), 10_000, 'the session ended');
    await until(async () => (await records()).length >= 2, 10_000, 'both responses billed');
    const responses = (await records()).filter((r) => r['source'] === 'response');
    expect(responses.map((r) => [r['ref'], r['settledBy'], r['estimated']]).sort()).toEqual([
      ['resp_text', 'upstream_drop_estimate', true],
      ['resp_turn', 'upstream_drop_estimate', true],
    ]);
  });
});
