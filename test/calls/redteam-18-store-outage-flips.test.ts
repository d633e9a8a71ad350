/**
 * Red team (18, redsec): the calls store's once-per-outage log (src/calls/store-outage.ts) under a
 * store that fails writes only.
 *
 * A Redis that refuses writes and still serves reads is a common outage: a failover that left the
 * proxy on the demoted primary (READONLY), or `maxmemory` reached with `noeviction` (OOM). Every
 * mint and offer then fails, and OutageGuardedStore took any success as the outage's end. A keyless
 * adversary sends upgrades with made-up `ek_` secrets: each is one store read that succeeds, so
 * every failed write after it is logged as a new outage (an error line) and every read after a
 * failure as the store back (a warn line). The refusal log bounds what keyless upgrades write; these
 * lines were one per request again, as before 2026-12-07, and the log said the store was back while
 * every write still failed. The guarantee: the outage is logged once, not per request (README,
 * Browser and phone calls: calls store outage).
 */
import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { connectRaw, rawUpgrade, upgradeAnswer } from '../support/raw-upgrade.js';
import { closedPort } from '../support/ports.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, mint } from './support.js';

let redis: RedisServer;
let side: Redis | null = null;
let tp: TestProxy | null = null;
const sockets: Socket[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await side?.call('REPLICAOF', 'NO', 'ONE').catch(() => undefined);
  side?.disconnect();
  await tp?.stop();
  await redis?.stop();
});

it('a store refusing writes while reads succeed: ten mints between keyless secret lookups log one outage, not ten', { timeout: 60_000 }, async () => {
  tp = await callsProxy({
    tenants: { acme: {} },
    extra: { config: { metering: { enabled: false, ledger: { kind: 'redis', url: redis.url, keyPrefix: 'flips:', commandTimeoutMs: 2000 } } } },
  });
  expect((await mint(tp)).status).toBe(200);
  // The Redis becomes a replica of a primary that is not there: writes answer READONLY, reads are served.
  side = new Redis(redis.url);
  await side.call('REPLICAOF', '127.0.0.1', String(await closedPort()));
  for (let i = 0; i < 10; i++) {
    expect((await mint(tp)).status).toBe(503);
    // The adversary's keyless upgrade with a made-up secret: one successful store read, refused 401.
    const s = await connectRaw(tp.port, sockets);
    const answer = upgradeAnswer(s);
    s.write(rawUpgrade(`ek_proxy_made_up_${i}`));
    expect((await answer).status).toBe(401);
  }
  expect(tp.logs.filter((l) => l['event'] === 'calls_store_unavailable')).toHaveLength(1);
  expect(tp.logs.filter((l) => l['event'] === 'calls_store_available')).toHaveLength(0);
  // Writable again: the next mint ends the outage, logged once with the calls that failed in it.
  await side.call('REPLICAOF', 'NO', 'ONE');
  expect((await mint(tp)).status).toBe(200);
  const back = tp.logs.filter((l) => l['event'] === 'calls_store_available');
  expect(back).toHaveLength(1);
  expect(back[0]!['failed']).toBe(10);
});
