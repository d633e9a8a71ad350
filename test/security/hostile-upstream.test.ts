import { afterEach, describe, expect, it } from 'vitest';
import { defaultKey, startTestProxy, type TestProxy } from '../support/harness.js';
import { garbageHandshake, hostileFrames, neverAnswers, scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';
import { RawClient } from './support.js';

/**
 * A hostile upstream: garbage, invalid UTF-8, huge frames, odd close codes, never-answering or
 * malformed upgrades. Every byte the client receives is checked: valid UTF-8 JSON events only, a
 * close code it cannot mistake for one of the proxy's own, no upstream addresses or TLS details.
 */

const auth = { authorization: `Bearer ${defaultKey('acme')}` };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxyTo(url: string, upstream: Record<string, unknown> = {}): Promise<TestProxy> {
  const tp = await startTestProxy({ config: { logging: { level: 'debug' }, upstream: { provider: 'openai', url, apiKey: 'sk-x', connectTimeoutMs: 500, ...upstream } } });
  cleanups.push(() => tp.stop());
  return tp;
}

async function scripted(onConnection: Parameters<typeof scriptedUpstream>[0], options?: Parameters<typeof scriptedUpstream>[1]) {
  const up = await scriptedUpstream(onConnection, options);
  cleanups.push(() => up.close());
  return up;
}

/** Every frame the client got is a UTF-8 JSON event (RawClient.events throws otherwise). */
function assertCleanBytes(c: RawClient): void {
  for (const f of c.frames) {
    expect(f.binary).toBe(false);
    expect(Buffer.from(f.data.toString('utf8'), 'utf8').equals(f.data)).toBe(true);
  }
  c.events();
}

describe('hostile upstream', () => {
  it('garbage text and binary frames are not relayed as events the client cannot parse; the session goes on', async () => {
    const up = await scripted((ws) => {
      ws.send(sessionCreated(1));
      hostileFrames.garbage(ws);
      ws.send(JSON.stringify({ type: 'response.output_text.delta', delta: 'after the garbage' }));
    });
    const tp = await proxyTo(up.url);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    await c.waitFor(() => c.frames.some((f) => f.data.toString().includes('after the garbage')), 3000, 'the frame after the garbage');
    assertCleanBytes(c);
    expect(c.frames.map((f) => f.data.toString())).not.toContain('[1,2,3]');
    expect(tp.proxy.server.sessionCount).toBe(1);
    c.ws.close();
  });

  it('invalid UTF-8 from the upstream never reaches the client: the session ends with upstream_closed', async () => {
    const up = await scripted((ws) => {
      ws.send(sessionCreated(1));
      setTimeout(() => hostileFrames.invalidUtf8(ws), 50);
    });
    const tp = await proxyTo(up.url);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    const closed = await c.closed;
    expect(c.errors).toEqual([]);
    assertCleanBytes(c);
    expect(c.errorCodes()).toEqual(['upstream_closed']);
    expect(closed.code).toBe(1011);
  });

  it('upstream close codes 4001–4999 reach the client as 4100 (never as the proxy own 4001–4008); 4000 and 3000 pass unchanged', async () => {
    for (const [upstreamCode, clientCode] of [
      [4001, 4100],
      [4003, 4100],
      [4008, 4100],
      [4321, 4100],
      [4000, 4000],
      [3000, 3000],
    ] as const) {
      const up = await scripted((ws) => {
        ws.send(sessionCreated(1));
        setTimeout(() => hostileFrames.close(ws, upstreamCode, 'from upstream at 10.1.2.3'), 30);
      });
      const tp = await proxyTo(up.url);
      const c = new RawClient(tp.url, auth);
      await c.opened;
      const closed = await c.closed;
      expect(closed.code, `upstream ${upstreamCode}`).toBe(clientCode);
      assertCleanBytes(c);
      if (clientCode === 4100) {
        const err = c.events().find((e) => e.type === 'error')!['error'] as { code: string; details: { upstreamCode: number }; message: string };
        expect(err.code).toBe('upstream_closed');
        expect(err.details.upstreamCode).toBe(upstreamCode);
        expect(err.message).not.toContain('10.1.2.3');
      }
    }
  });

  it('a frame above the upstream payload limit ends the session cleanly (no crash, no partial relay)', async () => {
    const up = await scripted((ws) => {
      ws.send(sessionCreated(1));
      setTimeout(() => hostileFrames.huge(ws, 65 * 1024 * 1024), 30);
    });
    const tp = await proxyTo(up.url);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    const closed = await c.closed;
    assertCleanBytes(c);
    expect(c.frames.every((f) => f.data.length < 1024 * 1024)).toBe(true);
    expect(c.errorCodes()).toEqual(['upstream_closed']);
    expect(closed.code).toBe(1011);
    expect(tp.proxy.server.sessionCount).toBe(0);
  });

  it('a never-answering upgrade and a garbage handshake: upstream_unavailable / upstream_closed without addresses or error text', async () => {
    const hung = await neverAnswers();
    cleanups.push(() => hung.close());
    const garbage = await garbageHandshake('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi');
    cleanups.push(() => garbage.close());
    const refused = await neverAnswers();
    await refused.close(); // nothing listens on this port any more: ECONNREFUSED
    for (const fault of [hung, garbage, refused]) {
      const tp = await proxyTo(fault.url);
      const c = new RawClient(tp.url, auth);
      await c.opened;
      const closed = await c.closed;
      assertCleanBytes(c);
      const text = c.frames.map((f) => f.data.toString('utf8')).join('\n');
      expect(text).not.toContain('127.0.0.1');
      expect(text).not.toContain(String(fault.port));
      expect(text).not.toMatch(/ECONNREFUSED|Unexpected server response|socket hang up/);
      expect([1011, 1013]).toContain(closed.code);
      expect(c.errorCodes()).toHaveLength(1);
    }
  });

  it('a TLS failure dialling the upstream is logged, not shown to the client', async () => {
    const plain = await neverAnswers();
    cleanups.push(() => plain.close());
    const hostile = await garbageHandshake('this is not a TLS server hello\r\n\r\n');
    cleanups.push(() => hostile.close());
    const tp = await proxyTo(`wss://127.0.0.1:${hostile.port}/v1/realtime`);
    const c = new RawClient(tp.url, auth);
    await c.opened;
    await c.closed;
    const text = c.frames.map((f) => f.data.toString('utf8')).join('\n');
    expect(c.errorCodes()).toEqual(['upstream_unavailable']);
    expect(text).not.toMatch(/SSL|TLS|wrong version|127\.0\.0\.1/i);
    expect(tp.logText()).toMatch(/SSL|TLS|wrong version|EPROTO/i);
  });
});
