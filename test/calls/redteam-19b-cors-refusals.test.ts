import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint, OFFER, placeCall, post } from './support.js';

/**
 * A browser's offer refused by the server itself, before the calls route's handler (413 on a
 * declared length, 503 while draining or overloaded, 408, 431): until 2026-12-07 those answers
 * carried no CORS headers, so the page could not read them and `@openai/agents-realtime` reported
 * `TypeError: Failed to fetch` instead of "Realtime call request failed with status 503: …" (the
 * route's own refusals, 401/429/400, did carry them). Legitimate use: a rolling deploy's drain, a
 * busy proxy, an offer with many candidates past `calls.maxBodyBytes`.
 */
const ORIGIN = 'http://app.example';
let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: {} }, calls: { maxBodyBytes: 512 } });
});
afterAll(async () => {
  await tp?.stop();
});

it('an offer past calls.maxBodyBytes is answered 413 with the CORS headers the page needs to read it', async () => {
  const secret = await mint(tp, 'acme');
  expect(secret.status).toBe(200);
  expect(OFFER.length).toBeGreaterThan(512);
  const res = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: secret.json['value'] as string, contentType: 'application/sdp', body: OFFER, headers: { origin: ORIGIN } });
  expect(res.status).toBe(413);
  expect(res.json['error']).toMatchObject({ code: 'request_too_large' });
  expect(res.headers.get('access-control-allow-origin')).toBe('*');
});

it('the route refusals keep theirs (control)', async () => {
  const res = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: 'ek_proxy_unknown', contentType: 'application/sdp', body: 'v=0\r\n', headers: { origin: ORIGIN } });
  expect(res.status).toBe(401);
  expect(res.headers.get('access-control-allow-origin')).toBe('*');
});

it('an offer during a drain (rolling deploy) is answered 503 server_shutting_down, readable by the page', async () => {
  const draining = await callsProxy({ tenants: { acme: {} } });
  try {
    const secret = await mint(draining, 'acme');
    // A live call keeps the drain going; the page's offer arrives meanwhile.
    const { call } = await placeCall(draining, 'acme');
    const stopped = draining.proxy.shutdown(600_000);
    const res = await post(`${draining.httpUrl}/v1/realtime/calls`, { key: secret.json['value'] as string, contentType: 'application/sdp', body: OFFER, headers: { origin: ORIGIN } });
    expect(res.status).toBe(503);
    expect(res.json['error']).toMatchObject({ code: 'server_shutting_down' });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    call.end();
    await stopped;
  } finally {
    await draining.stop();
  }
});

/**
 * `calls.corsAllowOrigins` is compared with the browser's `Origin` exactly. An operator who writes the
 * app's URL (`https://app.example.com/`, the form a browser's address bar shows) or a path got every
 * preflight refused 403, nothing logged, and the page saw `TypeError: Failed to fetch`. The
 * config is refused at load now, naming the origin form expected.
 */
it('a calls.corsAllowOrigins entry that is not an origin is refused when the config loads', () => {
  const load = (origins: string[]) => () =>
    parseConfig({ upstream: { provider: 'simulator' }, tenants: { acme: { keys: [{ key: 'rpk_test_acme_0123456789abcdef' }] } }, calls: { enabled: true, corsAllowOrigins: origins } }, '(test)', {});
  expect(load(['https://app.example.com/'])).toThrow(/corsAllowOrigins.*https:\/\/app\.example\.com\b/s);
  expect(load(['https://app.example.com/voice'])).toThrow(/corsAllowOrigins/);
  expect(load(['app.example.com'])).toThrow(/corsAllowOrigins/);
  expect(load(['HTTPS://App.Example.com'])).toThrow(/corsAllowOrigins/);
  expect(load(['https://app.example.com', 'http://localhost:5173', '*'])).not.toThrow();
});
