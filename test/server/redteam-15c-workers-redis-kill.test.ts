import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { noonClock } from '../support/clock.js';
import { ADMIN_KEY, spend, usageRecords } from '../metering/support.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';

/*
 * Red team (fifteenth session, ledger): test/server/adversary-workers-kill.test.ts with the Redis
 * ledger. There each relay worker reserves in Redis itself; the primary's LedgerHost (which bills a
 * dead worker's reservations, `worker_lost_estimate`) serves SQLite only. A worker killed while a
 * response runs upstream leaves its reservation in Redis until `reservationTtlSec`, and then it is
 * dropped unbilled: OpenAI billed the response, the ledger never does, and the freed budget can be
 * spent again (README "a relay worker that dies does not make its running responses free"). A
 * tenant whose sessions keep a worker dying gets every running response free, past cap + W.
 */

const clock = noonClock();
let redis: RedisServer;
const proxies: TestProxy[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

describe('red team: a relay worker on the Redis ledger killed mid-response', () => {
  it('bills the running response (at least its reservation) instead of letting the reservation expire free', { timeout: 60_000 }, async () => {
    const tp = await startTestProxy({
      start: { clock },
      tenants: { acme: { limits: { dailyUsd: '1', maxResponseOutputTokens: 4096 } } },
      // The response stays running upstream (response.created sent, first delta 60 s away).
      simulator: { timing: { firstAudioDelayMs: 60_000 } },
      config: {
        server: { workers: 2 },
        admin: { key: ADMIN_KEY },
        // A short TTL so the test sees the reservation's end instead of waiting ten minutes.
        metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: 'wk15c:', commandTimeoutMs: 3000, reservationTtlSec: 3 } },
      },
    });
    proxies.push(tp);
    const c = await tp.client();
    await c.next('session.created', 15_000);
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: a long answer please' }] } });
    c.send({ type: 'response.create', response: {} });
    const created = await c.next('response.created', 15_000);
    expect((created['response'] as { status: string }).status).toBe('in_progress');
    const before = await spend(tp.adminUrl);
    const reservedNanos = Math.round(Number(before.day.reservedUsd) * 1e9);
    expect(reservedNanos).toBeGreaterThan(0);
    expect(before.day.spentNanos).toBe(0);

    const starts = tp.logs.filter((l) => l.msg === 'session start');
    expect(starts).toHaveLength(1);
    process.kill(tp.proxy.workers!.pids[starts[0]!['worker'] as number]!, 'SIGKILL');
    await c.closed;
    // The reservation is gone (billed by whoever handles the death, or expired after its TTL).
    await expect.poll(async () => (await spend(tp.adminUrl)).day.reservedUsd, { timeout: 20_000, interval: 250 }).toBe('0.00');

    const after = await spend(tp.adminUrl);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Actual: spent 0 and no usage record: the response that ran upstream was free.
    expect(after.day.spentNanos).toBeGreaterThanOrEqual(reservedNanos);
    expect(records).toHaveLength(1);
  });
});
