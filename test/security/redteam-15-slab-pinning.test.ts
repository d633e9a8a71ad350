import { describe, expect, it } from 'vitest';
import { heldTurnProxy, queuedBehindHeldTurn } from './held-queue.js';
import { heldBytes } from './support.js';

/**
 * Red team (a tenant key, two sessions): queued tiny frames pinning the shared frame slab.
 *
 * Client frames are copied into slices of a process-wide 512 KiB slab (src/relay/frame-slab.ts); a
 * slab is freed once its last slice is. A frame queued behind an asynchronous verdict (here: while a
 * spoken turn is held for its transcript) kept its slice, so each queued 12-byte frame could keep a
 * whole slab alive: the attacker sends one tiny frame on the held session, then ~1 MiB of frames on a
 * second session (refused at once as invalid JSON, so nothing of them is kept or counted), and
 * repeats. 48 rounds pinned ~24 MiB while the queue (and the memory budget) counted 48 frames; the
 * pinned total grows with the traffic for as long as the verdict waits. Rule broken: every buffer
 * has a byte budget. Asserted on bytes: memory held once the rounds are done, against what they
 * queue. (The frames other sessions relay at once are not held: only queued ones pin.)
 */

const ROUNDS = 48;
/** Per round, on the second session: more than one slab (512 KiB) of frames, each under the slab's 64 KiB frame cap. */
const FILLERS_PER_ROUND = 18;
const FILLER = `{${'x'.repeat(60 * 1024)}`;
// The transcript never comes while the test runs: the held session's create (and what follows it) waits.
const heldProxy = heldTurnProxy({ transcriptionDelayMs: 30_000, timeoutMs: 30_000 });

describe('red team: queued frames and the shared frame slab', () => {
  it(`${ROUNDS} tiny frames queued between ~1 MiB of another session's traffic each hold little more than they count`, async () => {
    const tp = heldProxy.proxy();
    const held = await queuedBehindHeldTurn(tp);
    const filler = await tp.client({ tenant: 'acme' });
    await filler.next('session.created');
    // A first round, so that the slab in use and the error path are warm before measuring.
    for (let i = 0; i < FILLERS_PER_ROUND; i++) filler.send(FILLER);
    await filler.nth('error', FILLERS_PER_ROUND);
    const before = heldBytes();
    for (let round = 1; round <= ROUNDS; round++) {
      held.send('{"type":"a"}');
      for (let i = 0; i < FILLERS_PER_ROUND; i++) filler.send(FILLER);
      // Each filler is refused (invalid_json): its error says the proxy read it and let it go.
      await filler.nth('error', (round + 1) * FILLERS_PER_ROUND, 15_000);
    }
    expect(held.ofType('error')).toEqual([]);
    const grown = heldBytes() - before;
    // Before the fix: ~24 MiB (a slab per queued frame). The frames queued count 48 × 268 bytes.
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  });
});
