import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { connectRaw, rawUpgrade, upgradeAnswer } from '../support/raw-upgrade.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint, OFFER, post, until } from './support.js';

/*
 * The calls' Redis store goes down while the proxy runs (metering off: only calls use Redis). Until
 * 2026-12-07 every calls request then answered 500 `internal_error` and logged an error line each.
 * Now: 503 `calls_store_unavailable`, a fixed message (no Redis error text, no address), Retry-After,
 * the outage logged once; and once Redis is back the same requests succeed.
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const sockets: Socket[] = [];
let proxy: TestProxy | null = null;
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (!redis.running) await redis.restart();
  await proxy?.stop();
  proxy = null;
});

const FIXED = { type: 'server_error', code: 'calls_store_unavailable', message: 'The calls store is unavailable; retry shortly.', param: null };

function expectStoreUnavailable(reply: { status: number; text: string; headers: Headers; json: Record<string, unknown> }, what: string): void {
  expect(reply.status, what).toBe(503);
  expect(reply.headers.get('retry-after'), what).toBe('1');
  expect(reply.json, what).toEqual({ error: FIXED });
  // Nothing of the store's own error reaches the client.
  expect(reply.text, what).not.toContain(String(redis.port));
  expect(reply.text, what).not.toMatch(/ECONNREFUSED|Connection is closed|timed out|MaxRetries/i);
}

it('while the Redis calls store is down: mint, offer, attach, hangup and refer answer 503 calls_store_unavailable, logged once; served again once Redis is back', { timeout: 60_000 }, async () => {
  const tp = await callsProxy({
    tenants: { acme: {} },
    extra: { config: { metering: { enabled: false, ledger: { kind: 'redis', url: redis.url, keyPrefix: 'outage:', commandTimeoutMs: 500 } } } },
  });
  proxy = tp;
  const secret = await mint(tp);
  expect(secret.status).toBe(200);
  const secretValue = secret.json['value'] as string;
  // A call placed before the outage: its hangup and attach need the store's binding.
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime' }));
  const placed = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: tp.key('acme'), body: form });
  expect(placed.status).toBe(201);
  const callId = placed.headers.get('location')!.split('/').at(-1)!;

  await redis.stop();
  expectStoreUnavailable(await mint(tp), 'mint');
  // An offer with a client secret: the secret's lookup fails (answered before the body is used), with CORS.
  const bySecret = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: secretValue, contentType: 'application/sdp', body: OFFER, headers: { origin: 'https://app.example' } });
  expectStoreUnavailable(bySecret, 'offer with a client secret');
  expect(bySecret.headers.get('access-control-allow-origin')).toBe('*');
  // An offer with the tenant key: created upstream, then it cannot be bound, so it is hung up.
  const byKey = new FormData();
  byKey.set('sdp', OFFER);
  byKey.set('session', JSON.stringify({ type: 'realtime' }));
  const unbound = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: tp.key('acme'), body: byKey });
  expect(unbound.status).toBe(503);
  expect(unbound.headers.get('retry-after')).toBe('1');
  expect(unbound.json['error']).toMatchObject({ type: 'server_error', code: 'calls_store_unavailable' });
  expectStoreUnavailable(await post(`${tp.httpUrl}/v1/realtime/calls/${callId}/hangup`, { key: tp.key('acme') }), 'hangup');
  // A transfer needs the call's binding (its owner, its route) too: the same answer, from the same path.
  expectStoreUnavailable(await post(`${tp.httpUrl}/v1/realtime/calls/${callId}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: '{"target_uri":"tel:+14155550100"}' }), 'refer');
  // The sideband a client opens on its call (?call_id=), and a WebSocket opened with the client secret.
  const attach = await connectRaw(tp.port, sockets);
  const attached = upgradeAnswer(attach);
  // A call's sideband names no model (the call has one).
  attach.write(rawUpgrade(tp.key('acme')).replace('?model=gpt-realtime', `?call_id=${callId}`));
  expect(await attached).toEqual({ status: 503, code: 'calls_store_unavailable' });
  const withSecret = await connectRaw(tp.port, sockets);
  const secretAnswer = upgradeAnswer(withSecret);
  withSecret.write(rawUpgrade(secretValue));
  expect(await secretAnswer).toEqual({ status: 503, code: 'calls_store_unavailable' });

  // One error line for the whole outage, with the store's error; no per-request 500 lines.
  const outageLines = tp.logs.filter((l) => l['event'] === 'calls_store_unavailable');
  expect(outageLines).toHaveLength(1);
  expect(tp.logs.filter((l) => l.msg === 'request handler failed' || l.msg === 'client secret lookup failed')).toEqual([]);

  await redis.restart();
  // Redis came back empty (no persistence): a new secret, and an offer with it, are served again.
  await until(async () => (await mint(tp)).status === 200, 'a mint once Redis is back', 20_000);
  const again = await mint(tp);
  expect(again.status).toBe(200);
  const offer = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: again.json['value'] as string, contentType: 'application/sdp', body: OFFER });
  expect(offer.status).toBe(201);
  expect(tp.logs.filter((l) => l['event'] === 'calls_store_available')).toHaveLength(1);
  expect(tp.logs.filter((l) => l['event'] === 'calls_store_unavailable')).toHaveLength(1);
});
