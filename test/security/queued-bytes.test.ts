import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyDir } from '../policies/support.js';
import { appendEvents, speechThenSilence, startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Frames that wait behind an asynchronous verdict (here: a client response.create queued while a
 * spoken turn is held for its transcript) have a byte budget: a client that keeps sending while
 * it waits is ended with upstream_backpressure once the queue would pass
 * server.backpressure.upstreamMaxBufferedBytes, instead of growing the proxy's memory for as long
 * as the wait lasts. Every other session goes on.
 */

const LIMIT = 256 * 1024;
const HELD = `
guardrails:
  holdSpokenInput: { enabled: true, timeoutMs: 20000 }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;

let tp: TestProxy;

beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'held' } },
    config: {
      server: { backpressure: { upstreamMaxBufferedBytes: LIMIT } },
      policies: { dir: policyDir({ 'held.yaml': HELD }), watch: false },
    },
    // The transcript takes long enough that the queued create waits while the client floods.
    simulator: { transcribe: () => 'hello there', timing: { transcriptionDelayMs: 15_000 } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

describe('bytes queued behind an asynchronous verdict', () => {
  it('a client flooding while its response.create waits is ended with upstream_backpressure (4008); another session is unaffected', async () => {
    const c = await tp.client({ tenant: 'acme' });
    await c.next('session.created');
    await c.next('session.updated');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.nth('session.updated', 2);
    for (const e of appendEvents(speechThenSilence(200, 0), 20)) c.send(e);
    c.send({ type: 'input_audio_buffer.commit' });
    c.send({ type: 'response.create', event_id: 'evt_queued' });
    // 32 KiB appends: past LIMIT after a few; the queue would otherwise hold them for 15 s.
    const chunk = { type: 'input_audio_buffer.append', audio: Buffer.alloc(24 * 1024).toString('base64') };
    for (let i = 0; i < 64; i++) c.send(chunk);
    const closed = await c.closed;
    expect(closed.code).toBe(4008);
    const error = c.ofType('error').map((e) => e['error'] as Record<string, unknown>);
    expect(error.at(-1)).toMatchObject({ code: 'upstream_backpressure' });
    expect(String(error.at(-1)!['message'])).toMatch(/while an earlier event was being checked/);

    // The proxy and its other sessions go on.
    const other = await tp.client({ tenant: 'acme' });
    await other.next('session.created');
    other.close();
  });
});
