import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { KEY_CACHE_BYTES } from '../../src/tenants/resolver.js';
import { defaultKey, startTestProxy, type TestProxy } from '../support/harness.js';
import { neverAnswers } from '../resilience/support/faulty-upstream.js';
import { RawClient, rawRequest, upgradeRequest } from './support.js';

/**
 * Memory is bounded by design: assertions are on the proxy's own accounting (key cache bytes,
 * the global budget) and on connections being cut, never on wall time or RSS. The RSS figures
 * under the full-size attacks are measured by bench/security.ts and stated in the README.
 */

const auth = { authorization: `Bearer ${defaultKey('acme')}` };
const MiB = 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(config: Parameters<typeof startTestProxy>[0]): Promise<TestProxy> {
  const tp = await startTestProxy(config);
  cleanups.push(() => tp.stop());
  return tp;
}

describe('memory bounds', () => {
  it('a flood of random keys (1,000 connects, 120 KB and 200 B keys) leaves the key cache empty', async () => {
    const tp = await proxy({ config: { logging: { level: 'info' } } });
    const statuses = new Map<string, number>();
    for (let round = 0; round < 10; round++) {
      const batch = Array.from({ length: 100 }, (_, i) => {
        const key = (round + i) % 2 === 0 ? randomBytes(90 * 1024).toString('base64') : randomBytes(150).toString('base64');
        return rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer ${key}`]));
      });
      for (const status of await Promise.all(batch)) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    expect([...statuses.keys()].sort()).toEqual(['HTTP/1.1 401 Unauthorized', 'HTTP/1.1 431 Request Header Fields Too Large']);
    expect(tp.proxy.server.keyCache).toEqual({ keys: 0, bytes: 0 });
    // A valid key is cached, within the cache's byte budget.
    const c = await tp.client();
    await c.next('session.created');
    expect(tp.proxy.server.keyCache.keys).toBe(1);
    expect(tp.proxy.server.keyCache.bytes).toBeLessThanOrEqual(KEY_CACHE_BYTES);
    c.close();
  }, 60_000);

  it('the global budget: past it, large frames get memory_budget_exceeded and new sessions 503; sessions go on', async () => {
    // An upstream that never opens: every client frame waits in the proxy.
    const hung = await neverAnswers();
    cleanups.push(() => hung.close());
    const tp = await proxy({
      config: {
        logging: { level: 'info' },
        upstream: { provider: 'openai', url: hung.url, apiKey: 'sk-x', connectTimeoutMs: 30_000 },
        server: { memoryBudgetBytes: 8 * MiB },
      },
    });
    const c = new RawClient(tp.url, auth);
    await c.opened;
    const frame = JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(3 * MiB) });
    for (let i = 0; i < 4; i++) c.ws.send(frame);
    await c.waitFor(() => c.frames.length >= 2, 5000, 'two refusals');
    expect(c.errorCodes()).toEqual(['memory_budget_exceeded', 'memory_budget_exceeded']);
    // The accounting holds what is really held, re-summed by the server's timer.
    const budget = tp.proxy.server.memoryBudget;
    await c.waitFor(() => budget.used === 2 * (frame.length), 3000, 'the budget re-summed');
    expect(budget.used).toBeLessThanOrEqual(budget.limit);
    // A frame that fills the budget exactly is accepted; then new sessions are refused.
    const overhead = JSON.stringify({ type: 'input_audio_buffer.append', audio: '' }).length;
    c.ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(budget.limit - budget.used - overhead) }));
    await c.waitFor(() => budget.exhausted, 3000, 'budget exhausted');
    const refused = new RawClient(tp.url, auth);
    expect(await refused.refused).toBe(503);
    expect(c.errorCodes()).toHaveLength(2);
    // …and the session that holds the data is still open.
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    c.ws.close();
  }, 30_000);

  it('unfinished fragmented messages are cut once past maxFrameBytes + oversizeHeadroomBytes (1009), not held', async () => {
    const tp = await proxy({ config: { logging: { level: 'info' }, server: { maxFrameBytes: 1 * MiB, oversizeHeadroomBytes: 256 * 1024 } } });
    const clients = Array.from({ length: 5 }, () => new RawClient(tp.url, auth));
    await Promise.all(clients.map((c) => c.opened));
    const fragment = Buffer.alloc(512 * 1024, 0x41);
    for (const c of clients) {
      c.ws.send(Buffer.from('{"type":"input_audio_buffer.append","audio":"'), { fin: false, binary: false });
      // 3 MiB in fragments, never finished: beyond 1.25 MiB uWS drops the connection.
      for (let i = 0; i < 6; i++) c.ws.send(fragment, { fin: false, binary: false });
    }
    const codes = await Promise.all(clients.map((c) => c.closed.then((x) => x.code)));
    for (const code of codes) expect([1006, 1009]).toContain(code);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (tp.proxy.server.sessionCount === 0) {
          clearInterval(check);
          resolve();
        }
      }, 10);
    });
    // A frame between the limit and the headroom gets an error event and the session lives.
    const ok = await tp.client();
    await ok.next('session.created');
    ok.send(`{"type":"input_audio_buffer.append","audio":"${'A'.repeat(1.1 * MiB)}"}`);
    expect((await ok.next('error'))['error']).toMatchObject({ code: 'frame_too_large' });
    ok.close();
  }, 30_000);
});
