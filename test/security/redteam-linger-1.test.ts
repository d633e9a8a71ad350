/**
 * Red team (thirteenth session, 2026-12-06): holding resources with the linger for a client that left
 * with audio in the input buffer (src/metering/filter.ts onClientGone, src/relay/session.ts). An
 * adversary with a tenant key connects, sends audio and leaves, again and again, against an upstream
 * that answers slowly or never: each session lingers up to `metering.lingerAfterClientCloseMs`
 * holding its upstream connection. Checked here: a lingering session still counts against
 * `server.maxSessions` and the tenant's `maxConcurrentSessions`, and releases both exactly once when
 * the linger ends. Real proxy, metering on a SQLite ledger, a scripted upstream that answers the
 * proxy's clear only when the test says so.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { TestClient } from '../support/client.js';
import { scriptedMeteredProxy, scriptedSession, until, usageRecords } from '../metering/support.js';

const cleanups: Array<() => Promise<void>> = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const session = scriptedSession({ type: 'server_vad', create_response: true });

/** A scripted upstream that holds each proxy clear until `answer()`; connections and their clears are counted. */
async function slowClearProxy(options: Parameters<typeof scriptedMeteredProxy>[2]) {
  const held: Array<() => void> = [];
  let connections = 0;
  let clears = 0;
  const tp = await scriptedMeteredProxy(
    cleanups,
    (ws: WebSocket, send) => {
      connections++;
      send({ type: 'session.created', event_id: 'event_s0', session });
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { type: string };
        if (ev.type !== 'input_audio_buffer.clear') return;
        clears++;
        held.push(() => send({ type: 'input_audio_buffer.cleared', event_id: `event_c${clears}` }));
      });
    },
    options,
  );
  return { tp, held, connections: () => connections, clears: () => clears };
}

async function attempt(tp: TestProxy): Promise<{ client: TestClient; outcome: number | 'admitted' | 'error' }> {
  const client = new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } });
  clients.push(client);
  const outcome = await Promise.race([client.refused, client.opened.then(() => 'admitted' as const, () => 'error' as const)]);
  return { client, outcome };
}

/** Connects, sends a second of speech and leaves: the proxy clears the buffer upstream and lingers for the answer. */
async function speakAndLeave(tp: TestProxy, how: 'close' | 'reset' = 'close'): Promise<void> {
  const { client, outcome } = await attempt(tp);
  expect(outcome).toBe('admitted');
  await client.next('session.created');
  for (const ev of appendEvents(speechThenSilence(1000, 0))) client.send(ev);
  // A close frame, or the TCP connection dropped without one (a reset).
  if (how === 'close') client.ws.close();
  else client.ws.terminate();
  await client.closed;
}

describe('red team: a lingering session still holds its place', () => {
  const cases = [
    {
      name: 'server.maxSessions 1: while one session lingers for its upstream, the next upgrade is refused (503) and dials nothing; once the linger ends, one more is admitted',
      options: { config: { server: { maxSessions: 1 } } },
      how: 'close' as const,
      refused: 503,
    },
    {
      name: "the tenant's maxConcurrentSessions 1, the client gone by a TCP reset: a lingering session keeps its slot (429 for the next), and gives it back once: after the linger one session is admitted, not two",
      options: { tenants: { acme: { limits: { maxConcurrentSessions: 1 } } } },
      how: 'reset' as const,
      refused: 429,
    },
  ];
  for (const { name, options, how, refused } of cases) {
    it(name, async () => {
      const { tp, held, connections, clears } = await slowClearProxy({ ...options, metering: { lingerAfterClientCloseMs: 60_000 } });
      await speakAndLeave(tp, how);
      await until(() => clears() === 1, 5000, "the proxy's clear");
      expect(tp.proxy.server.sessionCount).toBe(1);
      for (let i = 0; i < 3; i++) expect((await attempt(tp)).outcome).toBe(refused);
      expect(connections()).toBe(1);
      held.shift()!();
      await until(() => tp.proxy.server.sessionCount === 0, 5000, 'the linger ends');
      const next = await attempt(tp);
      expect(next.outcome).toBe('admitted');
      await next.client.next('session.created');
      // Released once: the admitted session fills the one place again.
      expect((await attempt(tp)).outcome).toBe(refused);
      expect(connections()).toBe(2);
    }, 30_000);
  }
});

describe('red team: every linger is bounded', () => {
  /*
   * The upstream commits the turn the client left behind, starts its response, answers the proxy's
   * clear, then streams output deltas without end and never sends the response.done, even after the
   * cancel. The linger ends at metering.lingerAfterClientCloseMs all the same, and the response is
   * billed at its reservation (estimated, as the client gone).
   */
  it('an upstream streaming deltas without end after the cancel: the session still ends at the bound, the response billed at its estimate, nothing sent but the clear and one cancel', async () => {
    const received: string[] = [];
    let deltas = 0;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws: WebSocket, send) => {
        send({ type: 'session.created', event_id: 'event_s0', session });
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as { type: string };
          received.push(ev.type);
          if (ev.type !== 'input_audio_buffer.clear') return;
          send({ type: 'input_audio_buffer.committed', event_id: 'event_v1', previous_item_id: null, item_id: 'item_turn' });
          send({ type: 'response.created', event_id: 'event_r1', response: { object: 'realtime.response', id: 'resp_endless', status: 'in_progress', status_details: null, output: [], conversation_id: 'conv_1', output_modalities: ['text'], max_output_tokens: 'inf', metadata: null, usage: null } });
          send({ type: 'input_audio_buffer.cleared', event_id: 'event_c1' });
          const timer = setInterval(() => {
            if (ws.readyState !== ws.OPEN) return clearInterval(timer);
            send({ type: 'response.output_text.delta', event_id: `event_d${++deltas}`, response_id: 'resp_endless', item_id: 'item_out', output_index: 0, content_index: 0, delta: 'x'.repeat(1000) });
          }, 2);
          ws.once('close', () => clearInterval(timer));
        });
      },
      { metering: { lingerAfterClientCloseMs: 400 } },
    );
    await speakAndLeave(tp);
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'the linger ends at its bound');
    expect(deltas).toBeGreaterThan(0);
    expect(received.filter((t) => t !== 'input_audio_buffer.append')).toEqual(['input_audio_buffer.clear', 'response.cancel']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.filter((r) => r['source'] === 'response').map((r) => [r['ref'], r['settledBy'], r['estimated']])).toEqual([['resp_endless', 'client_gone_estimate', true]]);
  }, 30_000);
});

describe('red team: a transcription session (?intent=transcription) holds no linger for a response that never comes', () => {
  /*
   * Server VAD's `create_response` is on by default in a realtime session, so metering awaits the
   * response due for every turn VAD commits (#vadResponseDue) until a conversation response.created.
   * A transcription session starts no response: after its first turn the response stayed "due" for
   * the session's life, and every client leaving after a turn, with nothing in flight, kept its
   * upstream, its `maxSessions` place and its tenant slot for the whole lingerAfterClientCloseMs.
   */
  it('the client leaves after a transcribed turn, nothing in the buffer: the session ends at once, nothing sent upstream after the audio', async () => {
    const received: string[] = [];
    let upstreamClosed = false;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws: WebSocket, send) => {
        send({
          type: 'session.created',
          event_id: 'event_s0',
          session: { type: 'transcription', object: 'realtime.transcription_session', id: 'sess_tx', expires_at: 0, audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, turn_detection: { type: 'server_vad' } } } },
        });
        ws.on('close', () => (upstreamClosed = true));
        let turned = false;
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as { type: string };
          received.push(ev.type);
          if (ev.type !== 'input_audio_buffer.append' || turned) return;
          turned = true;
          // The turn, committed and transcribed, as a transcription session answers it.
          send({ type: 'input_audio_buffer.speech_started', event_id: 'event_v1', audio_start_ms: 0, item_id: 'item_tx' });
          send({ type: 'input_audio_buffer.speech_stopped', event_id: 'event_v2', audio_end_ms: 900, item_id: 'item_tx' });
          send({ type: 'input_audio_buffer.committed', event_id: 'event_v3', previous_item_id: null, item_id: 'item_tx' });
          send({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'event_t1', item_id: 'item_tx', content_index: 0, transcript: 'hello', usage: { type: 'duration', seconds: 1 } });
        });
      },
      { metering: { lingerAfterClientCloseMs: 60_000 } },
    );
    const c = await tp.client({ query: 'intent=transcription' });
    await c.next('session.created');
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(4_800).toString('base64') });
    await c.next('conversation.item.input_audio_transcription.completed');
    c.ws.close();
    await until(() => upstreamClosed, 10_000, 'the upstream closed (no linger)');
    expect(received).toEqual(['input_audio_buffer.append']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['ref'], r['settledBy']])).toEqual([['transcription', 'item_tx', 'transcription.completed']]);
  }, 30_000);
});
