import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { defaultKey, startTestProxy, TestClient, type TestProxy } from '../support/harness.js';
import { forwarder, httpStatusUpstream, resetDuringHandshake, scriptedUpstream, sessionCreated } from './support/faulty-upstream.js';

/**
 * Upstream faults beyond test/relay/failures.test.ts (which covers refused connections, a silent
 * upgrade, HTTP 401, a bad upstream key, a drop mid-response and a hung upstream): each must end
 * in an error event and a clean close for the client within a bounded time, and leave no session
 * behind in the proxy.
 */

const auth = { authorization: `Bearer ${defaultKey('acme')}` };
/** Generous upper bound for "the client learns about it promptly" (functional, not a speed test). */
const BOUND_MS = 3000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxyTo(url: string, upstream: Record<string, unknown> = {}, server: Record<string, unknown> = {}): Promise<TestProxy> {
  const tp = await startTestProxy({ config: { logging: { level: 'warn' }, upstream: { provider: 'openai', url, apiKey: 'sk-x', ...upstream }, server } });
  cleanups.push(() => tp.stop());
  return tp;
}

async function sim(): Promise<SimulatorHandle> {
  const s = await startSimulator();
  cleanups.push(() => s.close());
  return s;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const codeOf = (e: { readonly [k: string]: unknown }) => (e['error'] as { code?: string }).code;

describe('slow upstream', () => {
  it('a 700 ms upgrade inside the connect timeout: frames sent meanwhile arrive in order and the session works', async () => {
    const s = await sim();
    const fwd = await forwarder(s.port, { delayMs: 700 });
    cleanups.push(() => fwd.close());
    const tp = await proxyTo(fwd.url);
    const c = new TestClient(tp.url, { headers: auth });
    await c.opened;
    for (let i = 0; i < 10; i++) c.send({ type: 'conversation.item.create', event_id: `evt_${i}`, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `n${i}` }] } });
    c.send({ type: 'response.create', event_id: 'evt_resp', response: { instructions: 'say: done waiting' } });
    const done = await c.next('response.done', 5000);
    expect((done['response'] as { status: string }).status).toBe('completed');
    // Item creates leave with the proxy's event_ids (Conversation.stamp): the order is read from their text.
    const texts = s.connections[0]!.received
      .filter((r) => r.type === 'conversation.item.create')
      .map((r) => (r.event as { item: { content: { text: string }[] } }).item.content[0]!.text);
    expect(texts).toEqual(Array.from({ length: 10 }, (_, i) => `n${i}`));
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });

  it('a client that floods before the upstream opens is closed with upstream_backpressure (4008), not buffered without bound', async () => {
    const s = await sim();
    const fwd = await forwarder(s.port, { delayMs: 1500 });
    cleanups.push(() => fwd.close());
    const tp = await proxyTo(fwd.url, {}, { backpressure: { upstreamMaxBufferedBytes: 1024 * 1024 } });
    const c = new TestClient(tp.url, { headers: auth });
    await c.opened;
    const t0 = Date.now();
    const chunk = JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(96_000).toString('base64') });
    for (let i = 0; i < 20; i++) c.send(chunk);
    const err = await c.next('error', BOUND_MS);
    expect(codeOf(err)).toBe('upstream_backpressure');
    expect((await c.closed).code).toBe(4008);
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    await until(() => tp.proxy.server.sessionCount === 0, 2000, 'session released');
  });

  it('an upstream that stops reading while the client streams audio: closed with upstream_backpressure (4008)', async () => {
    const s = await sim();
    const fwd = await forwarder(s.port, { stopReadingAfterOpen: true });
    cleanups.push(() => fwd.close());
    const tp = await proxyTo(fwd.url, {}, { backpressure: { upstreamMaxBufferedBytes: 1024 * 1024 } });
    const c = await tp.client();
    await c.next('session.created');
    const chunk = JSON.stringify({ type: 'input_audio_buffer.append', audio: Buffer.alloc(48_000).toString('base64') });
    // Stream until the proxy gives up: kernel buffers absorb a few MiB first, then the cap trips.
    let sent = 0;
    while (c.ws.readyState === c.ws.OPEN && sent < 2000) {
      c.send(chunk);
      sent++;
      if (sent % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const closed = await c.closed;
    expect(closed.code).toBe(4008);
    expect(c.ofType('error').map(codeOf)).toContain('upstream_backpressure');
    await until(() => tp.proxy.server.sessionCount === 0, 2000, 'session released');
  });
});

describe('upstream refusing or breaking the handshake', () => {
  for (const status of [429, 503]) {
    it(`HTTP ${status} on the upgrade: upstream_rejected with the retryable close 1013`, async () => {
      const up = await httpStatusUpstream(status);
      cleanups.push(() => up.close());
      const tp = await proxyTo(up.url);
      const t0 = Date.now();
      const c = new TestClient(tp.url, { headers: auth });
      const err = await c.next('error', BOUND_MS);
      expect(err['error']).toMatchObject({ code: 'upstream_rejected', details: { status } });
      expect((await c.closed).code).toBe(1013);
      expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    });
  }

  it('a TCP reset during the handshake: upstream_unavailable, close 1013', async () => {
    const up = await resetDuringHandshake();
    cleanups.push(() => up.close());
    const tp = await proxyTo(up.url);
    const t0 = Date.now();
    const c = new TestClient(tp.url, { headers: auth });
    expect(codeOf(await c.next('error', BOUND_MS))).toBe('upstream_unavailable');
    expect((await c.closed).code).toBe(1013);
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    await until(() => tp.proxy.server.sessionCount === 0, 2000, 'session released');
  });

  it('an upstream that drops right after the upgrade, before session.created: upstream_closed, close 1011', async () => {
    const up = await scriptedUpstream((ws) => ws.terminate());
    cleanups.push(() => up.close());
    const tp = await proxyTo(up.url);
    const c = new TestClient(tp.url, { headers: auth });
    expect(codeOf(await c.next('error', BOUND_MS))).toBe('upstream_closed');
    expect((await c.closed).code).toBe(1011);
  });
});

describe('upstream failing mid-session', () => {
  for (const [code, reason] of [
    [1011, 'server_error'],
    [4000, 'invalid_request_error'],
  ] as const) {
    it(`an upstream close ${code} in the middle of a response reaches the client as ${code}`, async () => {
      const up = await scriptedUpstream((ws, n) => {
        ws.send(sessionCreated(n));
        ws.on('message', (data) => {
          if (!String(data).includes('"response.create"')) return;
          ws.send(JSON.stringify({ type: 'response.created', event_id: 'e1', response: { object: 'realtime.response', id: 'resp_1', status: 'in_progress', output: [], usage: null } }));
          ws.send(JSON.stringify({ type: 'response.output_audio.delta', event_id: 'e2', response_id: 'resp_1', item_id: 'item_1', output_index: 0, content_index: 0, delta: 'AAAA' }));
          ws.send(JSON.stringify({ type: 'error', event_id: 'e3', error: { type: 'server_error', code: reason, message: 'upstream failure', param: null, event_id: null } }));
          ws.close(code, reason);
        });
      });
      cleanups.push(() => up.close());
      const tp = await proxyTo(up.url);
      const c = await tp.client();
      await c.next('session.created');
      const t0 = Date.now();
      c.send({ type: 'response.create' });
      const closed = await c.closed;
      expect(closed).toEqual({ code, reason });
      expect(Date.now() - t0).toBeLessThan(BOUND_MS);
      // The upstream's own error event was relayed before the close.
      expect(c.ofType('error').map(codeOf)).toEqual([reason]);
      expect(c.ofType('response.output_audio.delta')).toHaveLength(1);
      await until(() => tp.proxy.server.sessionCount === 0, 2000, 'session released');
    });
  }

  it('a binary frame from the upstream is dropped and the session goes on', async () => {
    const up = await scriptedUpstream((ws, n) => {
      ws.send(sessionCreated(n));
      ws.send(Buffer.from([1, 2, 3, 4]), { binary: true });
      ws.send(JSON.stringify({ type: 'rate_limits.updated', event_id: 'e9', rate_limits: [] }));
    });
    cleanups.push(() => up.close());
    const tp = await proxyTo(up.url);
    const c = await tp.client();
    await c.next('rate_limits.updated');
    expect(c.events.map((e) => e.type)).toEqual(['session.created', 'rate_limits.updated']);
    expect(tp.proxy.server.sessionCount).toBe(1);
    c.close();
  });

  it('an upstream that dies under 50 open sessions: every client gets upstream_closed and close 1011, no session leaks', async () => {
    const s = await sim();
    const fwd = await forwarder(s.port);
    const tp = await proxyTo(fwd.url);
    const clients = await Promise.all(Array.from({ length: 50 }, () => tp.client()));
    await Promise.all(clients.map((c) => c.next('session.created')));
    clients.forEach((c, i) => c.say(`say: ${'a long answer that is still streaming when the upstream dies '.repeat(4)} ${i}`));
    // Setting up, not what is tested: 50 streaming responses may take a while on a loaded CI machine
    // (once past the 5 s default when other suites ran beside it).
    await Promise.all(clients.map((c) => c.next('response.output_audio.delta', 30_000)));
    const t0 = Date.now();
    await fwd.close();
    const closes = await Promise.all(clients.map((c) => c.closed));
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    expect(new Set(closes.map((x) => x.code))).toEqual(new Set([1011]));
    for (const c of clients) expect(c.ofType('error').map(codeOf)).toContain('upstream_closed');
    await until(() => tp.proxy.server.sessionCount === 0, 2000, 'sessions released');
  }, 60_000);
});
