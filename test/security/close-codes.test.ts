import { afterEach, describe, expect, it } from 'vitest';
import { defaultKey, startTestProxy, type TestProxy } from '../support/harness.js';
import { scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';
import { RawClient } from './support.js';

/**
 * Close codes a client acts on: a reader that stops gets 4008 slow_consumer (never 1011, which the
 * openai SDK retries), and the upstream's liveness is judged on its data as well as its pongs.
 */

const auth = { authorization: `Bearer ${defaultKey('acme')}` };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxyTo(url: string, upstream: Record<string, unknown>, server: Record<string, unknown> = {}): Promise<TestProxy> {
  const tp = await startTestProxy({ config: { logging: { level: 'info' }, upstream: { provider: 'openai', url, apiKey: 'sk-x', ...upstream }, server } });
  cleanups.push(() => tp.stop());
  return tp;
}

const delta = (n: number) => JSON.stringify({ type: 'response.output_text.delta', event_id: `e${n}`, delta: 'x'.repeat(64 * 1024) });

describe('close codes', () => {
  it('a client that stops reading gets 4008 slow_consumer even when the upstream ping is due meanwhile (was 1011 upstream_timeout)', async () => {
    // The upstream streams 64 KiB deltas as long as the socket takes them.
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      let n = 0;
      const timer = setInterval(() => {
        for (let i = 0; i < 8 && ws.readyState === ws.OPEN; i++) ws.send(delta(n++));
      }, 5);
      ws.on('close', () => clearInterval(timer));
    });
    cleanups.push(() => up.close());
    // Pings are due every 200 ms and a pong is late after 300 ms: well inside the slow-client grace.
    const tp = await proxyTo(
      up.url,
      { pingIntervalMs: 200, pongTimeoutMs: 300 },
      { backpressure: { highWatermarkBytes: 256 * 1024, lowWatermarkBytes: 64 * 1024, maxBufferedBytes: 64 * 1024 * 1024, slowClientGraceMs: 2000 } },
    );
    const c = new RawClient(tp.url, auth);
    await c.opened;
    await c.waitFor(() => c.frames.length > 0, 3000, 'first frame');
    // Stop reading: the kernel buffers fill, the proxy's send buffer passes the high watermark.
    (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const ended = await new Promise<Record<string, unknown>>((resolve) => {
      const check = setInterval(() => {
        const end = tp.logs.find((l) => l['event'] === 'session_end');
        if (end) {
          clearInterval(check);
          resolve(end);
        }
      }, 20);
    });
    expect(ended['clientCloseCode']).toBe(4008);
    const closing = tp.logs.find((l) => l.msg === 'proxy ends session');
    expect(closing?.['code']).toBe('slow_consumer');
    (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await c.closed).code).toBe(4008);
  }, 20_000);

  it('an upstream that streams data but never answers pings stays up; once it goes silent it is detected', async () => {
    let streaming = true;
    const up = await scriptedUpstream(
      (ws) => {
        ws.send(sessionCreated(1));
        let n = 0;
        const timer = setInterval(() => {
          if (streaming && ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'response.output_text.delta', event_id: `e${n++}`, delta: 'tick' }));
        }, 50);
        ws.on('close', () => clearInterval(timer));
      },
      { autoPong: false },
    );
    cleanups.push(() => up.close());
    const tp = await proxyTo(up.url, { pingIntervalMs: 100, pongTimeoutMs: 300 });
    const c = new RawClient(tp.url, auth);
    await c.opened;
    // Well past several pong timeouts while data flows: the session is alive.
    await c.waitFor(() => c.frames.length >= 40, 10_000, '40 frames');
    expect(tp.proxy.server.sessionCount).toBe(1);
    expect(c.errorCodes()).toEqual([]);
    // Silence: neither data nor pongs. Now the upstream is judged dead.
    streaming = false;
    const closed = await c.closed;
    expect(c.errorCodes()).toEqual(['upstream_timeout']);
    expect(closed.code).toBe(1011);
  }, 20_000);
});
