/**
 * Operator's red team (18o): what a calls-store outage shows on the instance's own signals, /readyz
 * and /metrics. Both tests are open findings (it.fails): see README, Browser and phone calls.
 *
 * 1. A Redis that refuses writes and still serves reads (a failover that left the proxy on the
 *    demoted primary: READONLY; `maxmemory` with `noeviction`: OOM) keeps its connection, so the
 *    calls module's readiness (RedisCallStore.readiness reads the connection status only) says
 *    ready while every mint and offer answers 503 `calls_store_unavailable`: a load balancer keeps
 *    the instance in. OutageGuardedStore knows (its failing kinds) but its readiness() only asks the
 *    store. A hung Redis (commands past commandTimeoutMs on a live connection) is the same.
 * 2. The mints, offers, hangups and SIP deliveries answered 503 during an outage count in no
 *    `rtproxy_*` series (only a WebSocket opened with a client secret does, in
 *    rtproxy_upgrades_refused_total): the outage is visible in one log line and nowhere on a dashboard.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { closedPort } from '../support/ports.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint } from './support.js';

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

it.fails('a calls store refusing every write (READONLY) makes /readyz say not ready while each mint answers 503', { timeout: 60_000 }, async () => {
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
});

it.fails('mints answered 503 calls_store_unavailable while Redis is down count in an rtproxy_* series', { timeout: 60_000 }, async () => {
  tp = await callsProxy({
    tenants: { acme: {} },
    extra: { config: { metering: { enabled: false, ledger: { kind: 'redis', url: redis.url, keyPrefix: 'ops-down:', commandTimeoutMs: 500 } } } },
  });
  expect((await mint(tp)).status).toBe(200);
  await redis.stop();
  for (let i = 0; i < 3; i++) expect((await mint(tp)).status).toBe(503);
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  expect(text).toMatch(/^rtproxy_[a-z_]+\{[^}]*"calls_store_unavailable"[^}]*\} 3\b/m);
});
