import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyDir } from '../policies/support.js';
import { appendEvents, speechThenSilence, startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Red team (a tenant key): tiny frames queued behind an asynchronous verdict.
 *
 * Frames a client sends while an earlier one waits for an asynchronous verdict (here a
 * response.create queued while a spoken turn is held for its transcript) are queued, within
 * `server.backpressure.upstreamMaxBufferedBytes`, and counted in the memory budget. The queue counted
 * each frame's payload only: a 12-byte frame (`{"type":"a"}`) costs ~190 bytes held (its Frame, its
 * slice of the frame slab, its queue slot), so the default 32 MiB let one session hold ~500 MiB while
 * the budget saw 32 MiB. Rule broken: every buffer has a byte budget (and the budget counts what is
 * held). Asserted on bytes: with a 1 MiB limit, 80,000 such frames (960,000 payload bytes, under the
 * limit as it was counted) held ~15 MiB; now each queued frame also counts its overhead, and the
 * session is ended with upstream_backpressure (4008) long before.
 */

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heldBytes(): number {
  gc();
  gc();
  const stats = getHeapStatistics() as ReturnType<typeof getHeapStatistics> & { external_memory: number };
  return stats.used_heap_size + stats.external_memory;
}

const LIMIT = 1024 * 1024;
const TINY = '{"type":"a"}';
const FRAMES = 80_000;
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

describe('red team: tiny frames queued behind an asynchronous verdict', () => {
  it(`${FRAMES} frames of ${TINY.length} bytes while a response.create waits: the session is ended (4008) or holds little more than the limit`, async () => {
    const c = await tp.client({ tenant: 'acme' });
    await c.next('session.created');
    await c.next('session.updated');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.nth('session.updated', 2);
    for (const e of appendEvents(speechThenSilence(200, 0), 20)) c.send(e);
    c.send({ type: 'input_audio_buffer.commit' });
    c.send({ type: 'response.create', event_id: 'evt_queued' });
    const before = heldBytes();
    let closedCode: number | null = null;
    void c.closed.then((closed) => {
      closedCode = closed.code;
    });
    for (let i = 0; i < FRAMES; i++) c.send(TINY);
    // Until the proxy has queued every frame (its budget counts them, resynced each second) or ended the session.
    const budget = tp.proxy.server.memoryBudget;
    while (closedCode === null && budget.used < FRAMES * TINY.length) await new Promise((r) => setTimeout(r, 20));
    const held = heldBytes() - before;
    if (closedCode === null) {
      // Before the fix: ~15 MiB held for a 1 MiB limit, the session going on.
      expect(held).toBeLessThan(4 * LIMIT);
    } else {
      expect(closedCode).toBe(4008);
      const error = c.ofType('error').map((e) => e['error'] as Record<string, unknown>);
      expect(error.at(-1)).toMatchObject({ code: 'upstream_backpressure' });
    }
    // The proxy and its other sessions go on.
    const other = await tp.client({ tenant: 'acme' });
    await other.next('session.created');
    other.close();
  });
});
