/**
 * Operator's red team (18o): what a calls-store outage shows on the instance's own signals, /readyz
 * and /metrics. Both were open findings until 2026-12-07 (see README, Browser and phone calls).
 *
 * 1. A Redis that refuses writes and still serves reads (a failover that left the proxy on the
 *    demoted primary: READONLY; `maxmemory` with `noeviction`: OOM) keeps its connection, so the
 *    calls module's readiness (RedisCallStore.readiness reads the connection status only) said
 *    ready while every mint and offer answered 503 `calls_store_unavailable`: a load balancer kept
 *    the instance in. Now OutageGuardedStore's failing kinds make it not ready, and it probes them
 *    in the background (out of rotation no request would end the outage) until they answer.
 * 2. The mints, offers, hangups and SIP deliveries answered 503 during an outage counted in no
 *    `rtproxy_*` series (only a WebSocket opened with a client secret did, in
 *    rtproxy_upgrades_refused_total): now rtproxy_http_refused_total{http_route,rtproxy_refusal_reason}.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { closedPort } from '../support/ports.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint, post } from './support.js';

let redis: RedisServer;
let side: Redis | null = null;
let tp: TestProxy | null = null;
beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await side?.call('REPLICAOF', 'NO', 'ONE').catch(() => undefined);
  side?.disconnect();
  side = null;
  if (!redis.running) await redis.restart();
  await tp?.stop();
  tp = null;
});
afterAll(async () => {
  await redis?.stop();
});

async function readyz(url: string): Promise<number> {
  return (await fetch(`${url}/readyz`, { headers: { connection: 'close' } })).status;
}

it('a calls store refusing every write (READONLY) makes /readyz say not ready while each mint answers 503', { timeout: 60_000 }, async () => {
  tp = await callsProxy({
    tenants: { acme: {} },
    extra: { config: { metering: { enabled: false, ledger: { kind: 'redis', url: redis.url, keyPrefix: 'ops-ro:', commandTimeoutMs: 2000, failMode: 'closed' } } } },
  });
  expect((await mint(tp)).status).toBe(200);
  expect(await readyz(tp.httpUrl)).toBe(200);
  side = new Redis(redis.url);
  await side.call('REPLICAOF', '127.0.0.1', String(await closedPort()));
  for (let i = 0; i < 3; i++) expect((await mint(tp)).status).toBe(503);
  // The guarantee the README's /readyz gives for a store that lost its connection.
  expect(await readyz(tp.httpUrl)).toBe(503);
  expect(await readyz(tp.adminUrl)).toBe(503);
  // Out of rotation no mint comes: the background probe alone sees the store take writes again.
  await side.call('REPLICAOF', 'NO', 'ONE');
  while ((await readyz(tp.httpUrl)) !== 200) await new Promise((r) => setTimeout(r, 100));
  expect((await mint(tp)).status).toBe(200);
});

it('mints answered 503 calls_store_unavailable while Redis is down count in an rtproxy_* series', { timeout: 60_000 }, async () => {
  tp = await callsProxy({
    tenants: { acme: {} },
    extra: { config: { metering: { enabled: false, ledger: { kind: 'redis', url: redis.url, keyPrefix: 'ops-down:', commandTimeoutMs: 500 } } } },
  });
  expect((await mint(tp)).status).toBe(200);
  await redis.stop();
  for (let i = 0; i < 3; i++) expect((await mint(tp)).status).toBe(503);
  // A refusal the route answers from the headers (its admission, before the body) counts too.
  expect((await post(`${tp.httpUrl}/v1/realtime/client_secrets`, { key: 'sk-not-a-tenant', contentType: 'application/json', body: '{}' })).status).toBe(401);
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  expect(text).toMatch(/^rtproxy_[a-z_]+\{[^}]*"calls_store_unavailable"[^}]*\} 3\b/m);
  expect(text).toMatch(/^rtproxy_http_refused_total\{[^}]*http_route="\/v1\/realtime\/client_secrets"[^}]*rtproxy_refusal_reason="calls_store_unavailable"[^}]*\} 3\b/m);
  expect(text).toMatch(/^rtproxy_http_refused_total\{[^}]*rtproxy_refusal_reason="invalid_api_key"[^}]*\} 1\b/m);
});
