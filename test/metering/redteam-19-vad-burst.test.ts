/**
 * Red team (metering, nineteenth pass): server-VAD turns written ahead of their answers, against the
 * session token limit (`maxSessionTokens`) and a tenant cap.
 *
 * A client commit is reserved and checked against the session token limit and the tenant's caps
 * before it leaves for the upstream; a turn server VAD commits on its own is not: the proxy learns of
 * it at its `input_audio_buffer.committed`, when the upstream already transcribes it (and, with
 * `create_response`, started its response), and so does every turn in the audio written behind it.
 * Over a cap that `committed` reserved the turn's transcription and, refused, held the session's input
 * audio back; the session token limit held audio only once settled tokens reached it, i.e. at the
 * first transcription's completed event. Measured before the fix (the simulator, a 40,000-character
 * transcription prompt, maxSessionTokens 20,000, 20 turns in one write): 200,160 tokens, every turn
 * transcribed; with the scripted upstream below, turns sent after the first turn's `committed` was
 * read still reached the upstream, all 20 transcribed, 201,200 tokens.
 *
 * What cannot be bounded without parsing audio (src/metering/README.md, "Server-VAD turns written
 * ahead of their answers"): the turns already in the audio written before the proxy reads the first
 * `committed` over the limit. These tests pin what holds: no audio reaches the upstream after that
 * `committed` (one notice), and the total is the limit plus the turns written before it.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestClient } from '../support/harness.js';
import { meteredProxy, scriptedMeteredProxy, spend, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** 40,000 characters: 10,000 text tokens by the simulator's count (chars / 4) on every transcription; 40,000 by the estimate's (one a byte). */
const PROMPT = 'Glossary: '.padEnd(40_000, 'x');
/** One transcription's estimate (src/metering/transcriptions.ts byAudioLength): the prompt at a token a byte, plus 600 ms of audio. */
const ONE_ESTIMATE = 40_000 + 6;
const LIMIT = 20_000;
const TURNS = 20;
/** 200 ms of speech, then 400 ms of silence: a turn for the simulator's server VAD (silence_duration_ms 200). */
const turn = (): Buffer => speechThenSilence(200, 400);
const TURN_BYTES = turn().length;

const turnDetection = (createResponse: boolean) => ({ type: 'server_vad', threshold: 0.5, silence_duration_ms: 200, prefix_padding_ms: 0, create_response: createResponse, interrupt_response: true });
const transcribedVad = (createResponse: boolean) => ({
  type: 'session.update',
  session: {
    type: 'realtime',
    audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'gpt-4o-transcribe', prompt: PROMPT }, turn_detection: turnDetection(createResponse) } },
  },
});

/** `turns` turns, every append sent back to back. */
function speak(c: TestClient, turns: number): void {
  for (let i = 0; i < turns; i++) for (const ev of appendEvents(turn())) c.send(ev);
}

const completed = (c: TestClient): number => c.ofType('conversation.item.input_audio_transcription.completed').length;
const heldNotices = (c: TestClient, code: string): number =>
  c.ofType('error').filter((e) => {
    const err = e['error'] as { code?: string; param?: string };
    return err.code === code && err.param === 'input_audio_buffer.append';
  }).length;
const totalTokens = async (adminUrl: string): Promise<number> => (await usageRecords(adminUrl, '?tenant=acme')).reduce((a, r) => a + (r['totalTokens'] as number), 0);

/**
 * An upstream with server VAD that commits a turn for every TURN_BYTES of audio appended and holds its
 * transcriptions back until `finish` (a transcription model slower than the client): what it
 * transcribes, it bills 10,060 tokens (the prompt's 10,000, 60 of audio).
 */
function slowTranscriber() {
  const turns: string[] = [];
  let finishSocket: (() => void) | null = null;
  const onConnection = (ws: WebSocket, send: (event: Record<string, unknown>) => void): void => {
    let session: Record<string, unknown> = { type: 'realtime', object: 'realtime.session', id: 'sess_vad', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 'inf', tools: [], expires_at: 0 };
    let bytes = 0;
    let billed = 0;
    let n = 0;
    send({ type: 'session.created', event_id: 'event_s0', session });
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as { type: string; session?: Record<string, unknown>; audio?: string };
      if (ev.type === 'session.update') {
        session = { ...session, ...ev.session };
        send({ type: 'session.updated', event_id: `event_u${++n}`, session });
        return;
      }
      if (ev.type !== 'input_audio_buffer.append') return;
      bytes += Buffer.from(ev.audio ?? '', 'base64').length;
      while (bytes >= TURN_BYTES) {
        bytes -= TURN_BYTES;
        const itemId = `item_${turns.length + 1}`;
        const startMs = turns.length * 600;
        turns.push(itemId);
        send({ type: 'input_audio_buffer.speech_started', event_id: `event_v${++n}`, item_id: itemId, audio_start_ms: startMs });
        send({ type: 'input_audio_buffer.speech_stopped', event_id: `event_v${++n}`, item_id: itemId, audio_end_ms: startMs + 400 });
        send({ type: 'input_audio_buffer.committed', event_id: `event_v${++n}`, item_id: itemId, previous_item_id: null });
      }
    });
    finishSocket = () => {
      for (; billed < turns.length; billed++) {
        const usage = { type: 'tokens', input_tokens: 10_060, output_tokens: 0, total_tokens: 10_060, input_token_details: { text_tokens: 10_000, audio_tokens: 60 } };
        send({ type: 'conversation.item.input_audio_transcription.completed', event_id: `event_t${++n}`, item_id: turns[billed], content_index: 0, transcript: 'x', usage });
      }
    };
  };
  return { onConnection, turns, finish: () => finishSocket?.() };
}

/**
 * TURNS turns in one write, then a text item the simulator answers in order, after every turn the
 * audio forwarded before it held: once its done is read, every committed is. Returns the turns that
 * reached the upstream (all transcribed, each billed once); the audio behind them was held (one notice `code`).
 */
async function burstAnswered(c: TestClient, code: string): Promise<number> {
  speak(c, TURNS);
  c.send({ type: 'conversation.item.create', item: { id: 'item_sentinel', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'ok' }] } });
  await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id?: string }).id === 'item_sentinel', 10_000, 'the sentinel item');
  const turnsUp = c.ofType('input_audio_buffer.committed').length;
  await until(() => completed(c) >= turnsUp, 10_000, 'their transcriptions');
  expect(turnsUp).toBeGreaterThan(0);
  // Held once (the last turn's trailing silence may be what was held, all 20 turns upstream).
  expect(heldNotices(c, code)).toBeLessThanOrEqual(1);
  if (turnsUp < TURNS) expect(heldNotices(c, code)).toBe(1);
  return turnsUp;
}

describe('red team 19: server-VAD turns written ahead of their answers', () => {
  it('maxSessionTokens 20,000: once a turn\'s committed brings the session to its limit with what is in flight, no further audio reaches the upstream until the transcriptions are billed', async () => {
    const upstream = slowTranscriber();
    const tp = await scriptedMeteredProxy(cleanups, upstream.onConnection, { tenants: { acme: { limits: { maxSessionTokens: LIMIT } } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(transcribedVad(false));
    await c.next('session.updated');
    // One turn; its committed read, its transcription (40,006 tokens by the estimate) still running upstream.
    speak(c, 1);
    await c.next('input_audio_buffer.committed');
    // The client speaks on, 19 turns in one write: before the fix every one reached the upstream.
    speak(c, TURNS - 1);
    await until(() => heldNotices(c, 'token_limit_exceeded') > 0 || upstream.turns.length >= TURNS, 10_000, 'the held audio notice');
    expect(upstream.turns.length, 'turns that reached the upstream').toBe(1);
    expect(heldNotices(c, 'token_limit_exceeded')).toBe(1);

    // The transcription billed (10,060 tokens, under the limit): the hold is lifted, the next turn goes up.
    upstream.finish();
    await until(() => completed(c) >= 1, 10_000, 'the first transcription');
    speak(c, 1);
    await until(() => upstream.turns.length >= 2, 10_000, 'the next turn upstream');
    // Its estimate brings the session to the limit again: held, told once more.
    speak(c, TURNS);
    await until(() => heldNotices(c, 'token_limit_exceeded') > 1 || upstream.turns.length > 2, 10_000, 'the second notice');
    expect(upstream.turns.length).toBe(2);
    upstream.finish();
    await until(() => completed(c) >= 2, 10_000, 'the second transcription');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    // Before the fix: 20 turns of the first two writes transcribed, 201,200 tokens (and 21 more after).
    expect(await totalTokens(tp.adminUrl)).toBe(2 * 10_060);
  });

  it('the simulator, 20 turns in one write under maxSessionTokens 20,000: only the turns upstream before the proxy read the first committed are transcribed', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { maxSessionTokens: LIMIT } } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(transcribedVad(false));
    await c.next('session.updated');
    const turnsUp = await burstAnswered(c, 'token_limit_exceeded');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    // Outside the bound (documented): the turns the upstream had before the proxy read the first
    // committed; how many depends on how fast each side reads (before the fix: all 20, 200,160 tokens).
    expect(await totalTokens(tp.adminUrl)).toBeLessThanOrEqual(LIMIT + turnsUp * ONE_ESTIMATE);
    expect((await usageRecords(tp.adminUrl, '?tenant=acme')).length).toBe(turnsUp);
  });

  it('the simulator, 20 turns in one write over a $0.05 cap: the same bound (the cap plus the turns upstream before the proxy read the first committed)', async () => {
    const CAP_NANOS = 50_000_000;
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: '0.05' } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(transcribedVad(false));
    await c.next('session.updated');
    const turnsUp = await burstAnswered(c, 'budget_exceeded');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    // Each turn's estimate at $2.50 per 1M tokens (gpt-4o-transcribe's text and audio rates by the estimate's rule).
    expect((await spend(tp.adminUrl)).day.spentNanos).toBeLessThanOrEqual(CAP_NANOS + turnsUp * ONE_ESTIMATE * 2_500);
  });
});
