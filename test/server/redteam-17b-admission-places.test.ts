/**
 * Red team (17b): the places authenticated upgrades hold among `server.maxSessions` while admission
 * awaits (#admitting, added 2026-12-07).
 *
 * The adversary holds the key of a tenant whose admission asks the Redis ledger (a cost cap, one
 * concurrent session). While Redis answers slowly (a failover, a `CLIENT PAUSE`, a stalled link:
 * each command waits up to `commandTimeoutMs`), every upgrade it writes holds a place for that long
 * and is then refused by its own tenant's limits. Two such upgrades at maxSessions 2 refuse every
 * other tenant `overloaded`, including one whose admission never touches the ledger and would have
 * opened at once: one tenant, one concurrent session allowed, keeps the whole proxy shut for as long
 * as it keeps upgrades in flight. Before #admitting such upgrades held nothing.
 */
import type { Socket } from 'node:net';
import { connectRaw, rawUpgrade, upgradeAnswer } from '../support/raw-upgrade.js';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';

let redis: RedisServer;
let tp: TestProxy | null = null;
let side: Redis | null = null;
const sockets: Socket[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  await side?.call('CLIENT', 'UNPAUSE').catch(() => undefined);
  side?.disconnect();
  side = null;
  for (const s of sockets.splice(0)) s.destroy();
  await tp?.stop();
  tp = null;
});




describe('red team 17b: upgrades waiting on a slow ledger and the other tenants', () => {
  it('one tenant limited to one session cannot hold every place while Redis is slow: a ledger-free tenant still opens', async () => {
    tp = await startTestProxy({
      tenants: { capped: { limits: { dailyUsd: 100, maxConcurrentSessions: 1 } }, free: {} },
      config: {
        server: { maxSessions: 2 },
        metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: `places${process.pid}:`, commandTimeoutMs: 3000 } },
      },
    });
    side = new Redis(redis.url);
    // Every script waits (the ledger's reserve is one); reads and the side connection's UNPAUSE run.
    await side.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    const held = await Promise.all([connectRaw(tp.port, sockets), connectRaw(tp.port, sockets)]);
    const heldAnswers = held.map((s) => upgradeAnswer(s).then(({ status, code }) => `${status} ${code}`.trim()));
    for (const s of held) s.write(rawUpgrade(tp.key('capped'), '&x=1'));
    // Both of the capped tenant's upgrades are past the maxSessions check (each logged its dropped
    // parameter on the way to its admission, which waits for Redis).
    const inAdmission = () => tp!.logs.filter((l) => l.msg === 'client query parameters not forwarded').length;
    while (inAdmission() < 2) await new Promise((r) => setTimeout(r, 10));
    expect(tp.proxy.server.sessionCount).toBe(0);
    const other = await connectRaw(tp.port, sockets);
    const otherAnswer = upgradeAnswer(other).then(({ status, code }) => `${status} ${code}`.trim());
    other.write(rawUpgrade(tp.key('free')));
    // Before the fix: 503 overloaded, with no session open at all.
    expect(await otherAnswer).toBe('101');
    await side.call('CLIENT', 'UNPAUSE');
    // The capped tenant gets at most its one session.
    expect((await Promise.all(heldAnswers)).filter((s) => s === '101').length).toBeLessThanOrEqual(1);
  }, 30_000);

  it('an upgrade refused overloaded after its admission gives its tenant\'s concurrent-session slot back at once', async () => {
    tp = await startTestProxy({
      tenants: { capped: { limits: { dailyUsd: 100, maxConcurrentSessions: 1 } }, free: {} },
      config: {
        server: { maxSessions: 1 },
        metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: `withdraw${process.pid}:`, commandTimeoutMs: 3000 } },
      },
    });
    side = new Redis(redis.url);
    await side.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    const first = await connectRaw(tp.port, sockets);
    const firstAnswer = upgradeAnswer(first).then(({ status, code }) => `${status} ${code}`.trim());
    first.write(rawUpgrade(tp.key('capped'), '&x=1'));
    while (tp.logs.filter((l) => l.msg === 'client query parameters not forwarded').length < 1) await new Promise((r) => setTimeout(r, 10));
    // The only place goes to another tenant while the capped tenant's upgrade waits for Redis.
    const other = await connectRaw(tp.port, sockets);
    const otherAnswer = upgradeAnswer(other).then(({ status, code }) => `${status} ${code}`.trim());
    other.write(rawUpgrade(tp.key('free')));
    expect(await otherAnswer).toBe('101');
    await side.call('CLIENT', 'UNPAUSE');
    // Admitted by the ledger (its one slot taken), then refused: the proxy is full.
    expect(await firstAnswer).toBe('503 overloaded');
    other.destroy();
    while (tp.proxy.server.sessionsOpen > 0) await new Promise((r) => setTimeout(r, 10));
    // Before the fix the slot stayed parked for ADMISSION_HANDOFF_MS (30 s): 429 concurrent_sessions_exceeded.
    const again = await connectRaw(tp.port, sockets);
    const againAnswer = upgradeAnswer(again).then(({ status, code }) => `${status} ${code}`.trim());
    again.write(rawUpgrade(tp.key('capped')));
    expect(await againAnswer).toBe('101');
  }, 30_000);
});
