import { afterAll, beforeAll } from 'vitest';
import { policyDir } from '../policies/support.js';
import type { TestClient } from '../support/client.js';
import { appendEvents, speechThenSilence, startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Shared set-up of the tests of frames queued behind an asynchronous verdict: a proxy whose policy
 * holds spoken turns for their transcript, and a transcript slow enough that a client's
 * response.create (and everything the client sends after it) waits for the whole test.
 */

/** Starts the held-turn proxy for the file (beforeAll) and stops it (afterAll); `proxy()` reads it. */
export function heldTurnProxy(o: { upstreamMaxBufferedBytes?: number; transcriptionDelayMs: number; timeoutMs: number }): { proxy(): TestProxy } {
  let tp: TestProxy | null = null;
  const held = `
guardrails:
  holdSpokenInput: { enabled: true, timeoutMs: ${o.timeoutMs} }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;
  beforeAll(async () => {
    tp = await startTestProxy({
      tenants: { acme: { policy: 'held' } },
      config: {
        ...(o.upstreamMaxBufferedBytes !== undefined ? { server: { backpressure: { upstreamMaxBufferedBytes: o.upstreamMaxBufferedBytes } } } : {}),
        policies: { dir: policyDir({ 'held.yaml': held }), watch: false },
      },
      simulator: { transcribe: () => 'hello there', timing: { transcriptionDelayMs: o.transcriptionDelayMs } },
    });
  });
  afterAll(async () => {
    await tp?.stop();
  });
  return {
    proxy(): TestProxy {
      if (!tp) throw new Error('the proxy is not started (beforeAll)');
      return tp;
    },
  };
}

/** A session whose spoken turn is held and whose response.create (`evt_queued`) waits behind it: what it sends next is queued. */
export async function queuedBehindHeldTurn(tp: TestProxy): Promise<TestClient> {
  const c = await tp.client({ tenant: 'acme' });
  await c.next('session.created');
  await c.next('session.updated');
  c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
  await c.nth('session.updated', 2);
  for (const e of appendEvents(speechThenSilence(200, 0), 20)) c.send(e);
  c.send({ type: 'input_audio_buffer.commit' });
  c.send({ type: 'response.create', event_id: 'evt_queued' });
  return c;
}
