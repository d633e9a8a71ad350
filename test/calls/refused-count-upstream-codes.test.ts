/**
 * `rtproxy_http_refused_total` counts the calls routes' own refusals, by the code each was built
 * with (HttpReply.refusal). Until 2026-12-07 the code was parsed back out of the reply's JSON body,
 * and an upstream answer passed on as it is whose code is also one of the proxy's (OpenAI answers a
 * bad offer 400 `invalid_value`) counted as a refusal of the proxy's.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, OFFER } from './support.js';

const UPSTREAM_REFUSAL = JSON.stringify({ error: { type: 'invalid_request_error', code: 'invalid_value', message: 'Invalid SDP offer.', param: 'sdp' } });

let upstream: ReturnType<typeof createServer>;
let tp: TestProxy;
beforeAll(async () => {
  upstream = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    res.writeHead(400, { 'content-type': 'application/json' }).end(UPSTREAM_REFUSAL);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1/realtime`;
  tp = await callsProxy({ tenants: { acme: {} }, extra: { config: { logging: { level: 'warn' }, upstream: { provider: 'openai', url, apiKey: 'sk-test-upstream', allowCallId: true } } } });
});
afterAll(async () => {
  await tp?.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((resolve) => upstream?.close(() => resolve()));
});

const offer = async (key: string | null): Promise<{ status: number; text: string }> => {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  const res = await fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'POST', headers: { connection: 'close', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: form });
  return { status: res.status, text: await res.text() };
};

describe('rtproxy_http_refused_total and upstream answers', () => {
  it("an upstream 400 passed on is not counted, even with a code that is also the proxy's; the proxy's own refusal is", async () => {
    const relayed = await offer(tp.key('acme'));
    expect([relayed.status, JSON.parse(relayed.text)]).toEqual([400, JSON.parse(UPSTREAM_REFUSAL)]);
    expect((await offer(null)).status).toBe(401);
    const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
    expect(text).toMatch(/^rtproxy_http_refused_total\{[^}]*http_route="\/v1\/realtime\/calls"[^}]*rtproxy_refusal_reason="missing_api_key"[^}]*\} 1\b/m);
    // Old code: rtproxy_http_refused_total{http_route="/v1/realtime/calls",rtproxy_refusal_reason="invalid_value"} 1.
    expect(text).not.toMatch(/rtproxy_refusal_reason="invalid_value"/);
  });
});
