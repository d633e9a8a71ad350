/**
 * Red team (seventeenth pass): `server.maxSessions` against upgrades that arrive together.
 *
 * The adversary holds one tenant's key (a tenant with a cost cap, so that admission asks the Redis
 * ledger: an await; a client secret's lookup and a relay worker's ledger over IPC await the same way)
 * and writes 20 upgrades on 20 connections at once. Each upgrade passed the `maxSessions` check
 * before any of them had opened a session, and every one was admitted: 20 sessions (20 upstream
 * connections, 20 × the per-session buffers) at `maxSessions: 2`. The guarantee broken: "the proxy
 * bounds sessions (`maxSessions`)" (README, Security), which the memory budget and the open-files
 * sizing rely on, and which the calls module already keeps for offers in flight.
 */
import type { Socket } from 'node:net';
import { connectRaw, rawUpgrade, upgradeAnswer } from '../support/raw-upgrade.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';

let redis: RedisServer;
let tp: TestProxy | null = null;
const sockets: Socket[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await tp?.stop();
  tp = null;
});




describe('red team: maxSessions holds for upgrades admitted concurrently', () => {
  it('20 upgrades written at once with maxSessions 2 and an asynchronous admission (Redis ledger, a capped tenant): 2 open, 18 get 503, and the places come back', async () => {
    tp = await startTestProxy({
      tenants: { acme: { limits: { dailyUsd: 100 } } },
      config: {
        server: { maxSessions: 2 },
        logging: { level: 'warn' },
        metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: `race${process.pid}:`, commandTimeoutMs: 3000 } },
      },
    });
    const burst = await Promise.all(Array.from({ length: 20 }, () => connectRaw(tp!.port, sockets)));
    const answers = burst.map(async (s) => (await upgradeAnswer(s)).status);
    // All written before the proxy reads any: each admission awaits Redis while the others are read.
    for (const s of burst) s.write(rawUpgrade(tp.key()));
    const statuses = await Promise.all(answers);
    expect(statuses.filter((s) => s === 101)).toHaveLength(2);
    expect(statuses.filter((s) => s === 503)).toHaveLength(18);
    expect(tp.proxy.server.sessionCount).toBe(2);
    expect(tp.proxy.server.sessionsOpen).toBe(2);
    // Nothing stays counted for the refused ones: once the two sessions end, two more are admitted.
    for (const s of burst) s.destroy();
    const deadline = Date.now() + 10_000;
    while (tp.proxy.server.sessionsOpen > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(tp.proxy.server.sessionsOpen).toBe(0);
    const next = await Promise.all(Array.from({ length: 3 }, () => connectRaw(tp!.port, sockets)));
    const nextAnswers = next.map(async (s) => (await upgradeAnswer(s)).status);
    for (const s of next) s.write(rawUpgrade(tp.key()));
    expect((await Promise.all(nextAnswers)).sort()).toEqual([101, 101, 503]);
  });
});
