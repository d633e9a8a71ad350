import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * With relay workers the calls store lives in the workers (each its own Redis client): their
 * client-port /readyz said 503 `calls: calls store (redis) unavailable` while Redis was down, but
 * the primary's admin /readyz, which had no calls module, said 200. Until 2026-12-07 a load balancer
 * probing the admin port kept the instance in while every mint failed. Now each worker reports its
 * modules' readiness (the same function its own /readyz runs) with every pong.
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
  if (!redis.running) await redis.restart();
});

async function readyz(url: string): Promise<{ status: number; reason: unknown }> {
  const res = await fetch(`${url}/readyz`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, reason: ((await res.json()) as Record<string, unknown>)['reason'] ?? null };
}

describe('relay workers and the calls store', () => {
  it('the admin /readyz is 503 with the workers\' calls store reason while Redis is down, and 200 once it is back', { timeout: 60_000 }, async () => {
    const tp = await startTestProxy({
      config: {
        server: { workers: 2 },
        // Metering off: only the calls store uses Redis, so nothing else on the primary notices it is gone.
        metering: { enabled: false, ledger: { kind: 'redis', url: redis.url, keyPrefix: 'workers-calls:', commandTimeoutMs: 500 } },
        calls: { enabled: true },
      },
    });
    proxies.push(tp);
    await expect.poll(async () => readyz(tp.adminUrl), { timeout: 15_000 }).toEqual({ status: 200, reason: null });

    await redis.stop();
    const workerReason = 'calls: calls store (redis) unavailable';
    // Each worker's client port says it (a new connection each time: the kernel spreads them)...
    await expect.poll(async () => (await Promise.all(Array.from({ length: 6 }, () => readyz(tp.httpUrl)))).every((r) => r.status === 503 && r.reason === workerReason), { timeout: 15_000 }).toBe(true);
    // ...and the admin port carries the same check, naming the workers.
    await expect.poll(async () => readyz(tp.adminUrl), { timeout: 15_000 }).toEqual({ status: 503, reason: `workers: relay worker 0, 1: ${workerReason}` });

    await redis.restart();
    await expect.poll(async () => readyz(tp.adminUrl), { timeout: 20_000 }).toEqual({ status: 200, reason: null });
    expect((await readyz(tp.httpUrl)).status).toBe(200);
  });
});
