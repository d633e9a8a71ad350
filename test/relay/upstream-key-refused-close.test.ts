import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { UPSTREAM_CREDENTIALS_MESSAGE } from '../../src/upstream/auth-refusal.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * Regression (2026-12-06): the upstream refusing the *proxy's own* key (rotated, revoked) ended the
 * session with `upstream_rejected` and close 1011. The `openai` SDK's `reconnect: true` treats 1011
 * as recoverable (node_modules/openai/internal/ws.js isRecoverableClose: 1001/1005/1006/1011/1012/
 * 1013/1015) and reconnects up to 5 times per session with a 0.5–8 s backoff: every client of every
 * tenant hammers the upstream with a key it refuses, and nothing on the client side says "stop".
 * OpenAI itself closes such a session with 3000 (not retried). The proxy now closes with its own
 * non-retryable 4101 (not 4001: that says the *tenant's* key is wrong).
 */

const REFUSED_CLOSE = 4101;

/** Every frame the client received, in order, and the close it got. */
async function rawSession(url: string, key: string): Promise<{ frames: string[]; close: { code: number; reason: string } }> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
  const frames: string[] = [];
  ws.on('message', (d: Buffer, binary: boolean) => frames.push(binary ? `<binary ${d.length}>` : d.toString('utf8')));
  ws.on('error', () => undefined);
  const close = await new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
  return { frames, close };
}

/** The proxy's error event for the refusal, as the wire carries it (event_id aside). */
function expectRefusalEvent(frame: string): void {
  const event = JSON.parse(frame) as Record<string, unknown>;
  expect(Object.keys(event)).toEqual(['type', 'event_id', 'error']);
  expect(event['type']).toBe('error');
  expect(event['event_id']).toMatch(/^event_proxy_/);
  expect(event['error']).toStrictEqual({ type: 'server_error', code: 'upstream_rejected', message: UPSTREAM_CREDENTIALS_MESSAGE, param: null, event_id: null });
  // The upstream's text (which names the proxy's key as OpenAI masks it) is not in it.
  expect(frame).not.toContain('invalid_api_key');
  expect(frame).not.toContain('Incorrect API key');
}

describe("the upstream refusing the proxy's own key closes with a code clients do not retry", () => {
  const stops: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  async function refusingUpstream(tls = false): Promise<{ sim: SimulatorHandle; tp: TestProxy }> {
    // The upstream (the simulator, as OpenAI: 101, `error` invalid_api_key, close 3000) expects another key.
    const sim = await startSimulator({ apiKey: 'sk-proj-CURRENTKEY0123456789abcdefghijklmn' });
    stops.push(() => sim.close());
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: sim.url, apiKey: 'sk-proj-ROTATEDOLDKEY9876543210zyxwvutsrqWXYZ' } }, tls });
    stops.push(() => tp.stop());
    return { sim, tp };
  }

  it('error event invalid_api_key from the upstream: exactly one error event upstream_rejected, then close 4101 "upstream_rejected"', async () => {
    const { tp } = await refusingUpstream();
    const { frames, close } = await rawSession(tp.url, tp.key('acme'));
    expect(frames).toHaveLength(1);
    expectRefusalEvent(frames[0]!);
    // Before the fix: { code: 1011, reason: 'upstream_rejected' } (retried by the openai SDK).
    expect(close).toEqual({ code: REFUSED_CLOSE, reason: 'upstream_rejected' });
    expect(tp.logs.some((l) => l['event'] === 'upstream_auth_refused' && l['upstreamCode'] === 'invalid_api_key')).toBe(true);
  });

  it('a close reason naming the refusal mid-session (no error event first): session.created, the error event, then close 4101', async () => {
    const tp = await startTestProxy();
    stops.push(() => tp.stop());
    const ws = new WebSocket(tp.url, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
    const frames: string[] = [];
    ws.on('error', () => undefined);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
    await new Promise<void>((resolve) =>
      ws.on('message', (d: Buffer) => {
        frames.push(d.toString('utf8'));
        if (frames.length === 1) resolve();
      }),
    );
    expect((JSON.parse(frames[0]!) as { type: string }).type).toBe('session.created');
    tp.sim.connections[tp.sim.connections.length - 1]!.closeWith(3000, 'invalid_request_error.invalid_api_key');
    const close = await closed;
    expect(frames).toHaveLength(2);
    expectRefusalEvent(frames[1]!);
    // Before the fix: { code: 1011, reason: 'upstream_rejected' }.
    expect(close).toEqual({ code: REFUSED_CLOSE, reason: 'upstream_rejected' });
  });

  it('the openai SDK with reconnect: true gets the error and a permanent close 4101: it does not reconnect', async () => {
    // The SDK dials wss:// only: the proxy's TLS port with a test CA (as test/relay/clients.test.ts).
    const { sim, tp } = await refusingUpstream(true);
    const client = new OpenAI({ apiKey: tp.key('acme'), baseURL: `https://127.0.0.1:${tp.proxy.tlsPort}/v1` });
    const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', reconnect: true, options: { ca: tp.ca! } }, client);
    // Before the fix the SDK goes on reconnecting: stopped before the proxy and the upstream.
    stops.push(async () => rt.close());
    const seen: string[] = [];
    rt.on('error', (err) => seen.push(`error ${(err as { error?: { code?: string } }).error?.code ?? err.message}`));
    // The first of the two tells: a permanent close, or a reconnect scheduled (what 1011 gets).
    const first = await new Promise<string>((resolve) => {
      rt.on('reconnecting', (e) => resolve(`reconnecting after ${e.closeCode}`));
      rt.on('close', (code: number) => resolve(`close ${code}`));
    });
    // Before the fix: 'reconnecting after 1011' (five more handshakes with the refused key follow).
    expect(first).toBe(`close ${REFUSED_CLOSE}`);
    expect(seen).toEqual(['error upstream_rejected']);
    expect(sim.connections).toHaveLength(1);
  });
});
