import { afterEach, describe, expect, it } from 'vitest';
import { defaultKey, startTestProxy } from '../support/harness.js';
import { RawClient } from '../security/support.js';
import { scriptedUpstream, sessionCreated } from './support/faulty-upstream.js';

/**
 * A client whose send buffer passes `maxBufferedBytes` ends its session with 4008 (found
 * 2026-12-05 by a helper mutation-testing client-link.ts): the session's close queued its error
 * event and flushed it into the same full buffer, uWS dropped it (its limit is the same), the link
 * reported the client slow again, and close ran again, ~2,600 times until the stack overflowed: the
 * RangeError escaped the flush's microtask (the process ends on that), the session never ended and
 * the client never got 4008. A link that overflowed now queues nothing more, and close runs once.
 */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('client send buffer hard cap', () => {
  it('a client that stops reading while a frame bigger than the cap arrives is closed with 4008, once, and nothing throws', async () => {
    let sendBig!: () => void;
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      // One upstream event bigger than the cap (a long conversation.item.retrieved can carry MBs of audio).
      sendBig = () => ws.send(JSON.stringify({ type: 'response.output_text.delta', event_id: 'big', delta: 'x'.repeat(24 * 1024 * 1024) }));
    });
    cleanups.push(() => up.close());
    const tp = await startTestProxy({
      config: {
        logging: { level: 'info' },
        upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x' },
        server: { backpressure: { highWatermarkBytes: 256 * 1024, lowWatermarkBytes: 64 * 1024, maxBufferedBytes: 4 * 1024 * 1024, slowClientGraceMs: 60_000 } },
      },
    });
    cleanups.push(() => tp.stop());
    const c = new RawClient(tp.url, { authorization: `Bearer ${defaultKey('acme')}` });
    await c.opened;
    await c.waitFor(() => c.frames.length > 0, 5000, 'session.created');
    // The client stops reading.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    sendBig();
    const deadline = Date.now() + 8000;
    while (!tp.logs.some((l) => l['event'] === 'session_end') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(tp.logs.filter((l) => l.msg === 'proxy ends session')).toHaveLength(1);
    expect(tp.logs.find((l) => l['event'] === 'session_end')?.['clientCloseCode']).toBe(4008);
    expect(tp.logs.some((l) => l.msg === 'client flush handler failed')).toBe(false);
  });
});
