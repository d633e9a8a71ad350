import { describe, expect, it } from 'vitest';
import { heldTurnProxy, queuedBehindHeldTurn } from './held-queue.js';
import { heldBytes } from './support.js';

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

const LIMIT = 1024 * 1024;
const TINY = '{"type":"a"}';
const FRAMES = 80_000;
// The transcript takes long enough that the queued create waits while the client floods.
const heldProxy = heldTurnProxy({ upstreamMaxBufferedBytes: LIMIT, transcriptionDelayMs: 15_000, timeoutMs: 20_000 });

describe('red team: tiny frames queued behind an asynchronous verdict', () => {
  it(`${FRAMES} frames of ${TINY.length} bytes while a response.create waits: the session is ended (4008) or holds little more than the limit`, async () => {
    const tp = heldProxy.proxy();
    const c = await queuedBehindHeldTurn(tp);
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
