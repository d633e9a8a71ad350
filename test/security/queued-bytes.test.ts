import { describe, expect, it } from 'vitest';
import { heldTurnProxy, queuedBehindHeldTurn } from './held-queue.js';

/**
 * Frames that wait behind an asynchronous verdict (here: a client response.create queued while a
 * spoken turn is held for its transcript) have a byte budget: a client that keeps sending while
 * it waits is ended with upstream_backpressure once the queue would pass
 * server.backpressure.upstreamMaxBufferedBytes, instead of growing the proxy's memory for as long
 * as the wait lasts. Every other session goes on.
 */

const LIMIT = 256 * 1024;
// The transcript takes long enough that the queued create waits while the client floods.
const held = heldTurnProxy({ upstreamMaxBufferedBytes: LIMIT, transcriptionDelayMs: 15_000, timeoutMs: 20_000 });

describe('bytes queued behind an asynchronous verdict', () => {
  it('a client flooding while its response.create waits is ended with upstream_backpressure (4008); another session is unaffected', async () => {
    const tp = held.proxy();
    const c = await queuedBehindHeldTurn(tp);
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
