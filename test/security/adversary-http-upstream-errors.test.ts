import { createServer, type Server } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { startTestProxy, TestClient, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): the upstream's answer to the *proxy's own*
 * credential reaches tenants.
 *
 * When OpenAI refuses the proxy's API key (rotated, revoked, a project's key deleted), its error
 * names the key the way OpenAI masks it: "Incorrect API key provided: sk-proj-****…WXYZ." (prefix,
 * last four characters and length). The proxy passes that error to every tenant as it is: on a
 * WebSocket session as an `error` event (code `invalid_api_key`, close 3000) and on
 * POST /v1/realtime/calls as the 401 body (`relayUpstream`). README: "the upstream key never leaves
 * the proxy", and error texts naming internals are logged, never put in client messages. Two
 * problems: (1) every tenant (and every browser holding a client secret) learns part of the
 * operator's OpenAI key; (2) the code is `invalid_api_key`, the proxy's own stable code for "the
 * proxy API key [the tenant's] is not valid", so tenants' clients conclude their own key is wrong
 * (and stop, or page the wrong people) while the fault is the operator's: the proxy has
 * `upstream_rejected` for this.
 */

const UPSTREAM_KEY = 'sk-proj-ROTATEDOLDKEY9876543210zyxwvutsrqWXYZ';
/** What OpenAI (and the simulator) show of it: the first 8 characters and the last 4. */
const SHOWN_PREFIX = UPSTREAM_KEY.slice(0, 8);
const SHOWN_SUFFIX = `${UPSTREAM_KEY.slice(-4)}.`;

describe("adversary: the upstream refusing the proxy's own key", () => {
  const proxies: TestProxy[] = [];
  let sim: SimulatorHandle | null = null;
  let fake: Server | null = null;

  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await sim?.close();
    await new Promise<void>((resolve) => (fake ? fake.close(() => resolve()) : resolve()));
  });

  it('a WebSocket session does not get the masked upstream key nor the code of an invalid tenant key', async () => {
    // The upstream (the simulator, as OpenAI) expects another key than the one the proxy holds.
    sim = await startSimulator({ apiKey: 'sk-proj-CURRENTKEY0123456789abcdefghijklmn' });
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: sim.url, apiKey: UPSTREAM_KEY } } });
    proxies.push(tp);
    const ws = new WebSocket(tp.url, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
    const frames: string[] = [];
    ws.on('message', (d: Buffer) => frames.push(d.toString('utf8')));
    ws.on('error', () => undefined);
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
    const text = frames.join('\n');
    // Precondition: the session failed because of the upstream's refusal (one error event, then the close).
    expect(frames).toHaveLength(1);
    const event = JSON.parse(frames[0]!) as { type: string; error: { code: string; message: string } };
    expect(event.type).toBe('error');
    // Today: "Incorrect API key provided: sk-proj-*********************************WXYZ. You can find …".
    expect(text).not.toContain(SHOWN_PREFIX);
    expect(text).not.toContain(SHOWN_SUFFIX);
    // Today: invalid_api_key, close 3000 'invalid_request_error.invalid_api_key'.
    expect(event.error.code).not.toBe('invalid_api_key');
    expect(closed.reason).not.toContain('invalid_api_key');
  });

  it('POST /v1/realtime/calls does not relay the masked upstream key nor invalid_api_key to the tenant', async () => {
    // A stand-in for OpenAI's REST side answering the proxy's key as OpenAI does.
    const seen: string[] = [];
    fake = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      req.resume();
      req.on('end', () => {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: {
              message: `Incorrect API key provided: ${SHOWN_PREFIX}${'*'.repeat(UPSTREAM_KEY.length - 12)}${UPSTREAM_KEY.slice(-4)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
              type: 'invalid_request_error',
              param: null,
              code: 'invalid_api_key',
            },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => fake!.listen(0, '127.0.0.1', () => resolve()));
    const port = (fake.address() as { port: number }).port;
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: `ws://127.0.0.1:${port}/v1/realtime`, apiKey: UPSTREAM_KEY }, calls: { enabled: true } } });
    proxies.push(tp);
    const form = new FormData();
    form.set('sdp', 'v=0\r\n');
    form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
    const res = await fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'POST', headers: { authorization: `Bearer ${tp.key('acme')}` }, body: form });
    const text = await res.text();
    // Precondition: the offer went upstream with the proxy's key.
    expect(seen).toEqual([`POST /v1/realtime/calls Bearer ${UPSTREAM_KEY}`]);
    expect(res.status).toBeGreaterThanOrEqual(400);
    // Today: 401 and OpenAI's body as it came.
    expect(text).not.toContain(SHOWN_PREFIX);
    expect(text).not.toContain(SHOWN_SUFFIX);
    expect((JSON.parse(text) as { error: { code: string } }).error.code).not.toBe('invalid_api_key');
    expect(res.status).not.toBe(401);
  });

  it('a close naming the refusal without its error event first (added with the fix): upstream_rejected and 4101, not the upstream close reason', async () => {
    const tp = await startTestProxy();
    proxies.push(tp);
    const c = new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
    await c.next('session.created');
    tp.sim.connections[tp.sim.connections.length - 1]!.closeWith(3000, 'invalid_request_error.invalid_api_key');
    // Before the fix: no error event, close 3000 'invalid_request_error.invalid_api_key' relayed.
    const err = await c.next('error');
    expect(err['error']).toMatchObject({ code: 'upstream_rejected', type: 'server_error' });
    expect(JSON.stringify(err)).not.toContain('invalid_api_key');
    expect(await c.closed).toEqual({ code: 4101, reason: 'upstream_rejected' });
    expect(tp.logs.some((l) => l['event'] === 'upstream_auth_refused' && l['upstreamCode'] === 'invalid_api_key')).toBe(true);
  });
});
