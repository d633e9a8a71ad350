import { describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { noonClock } from '../support/clock.js';
import { ADMIN_KEY, spend, usageRecords } from '../metering/support.js';
import { redisSuite } from '../metering/redis-suite.js';

/*
 * Adversarial review of server.workers (SQLite ledger in the primary, relay workers over IPC):
 * a relay worker killed (SIGKILL, OOM, a native abort) while one of its sessions' responses runs.
 *
 * The upstream had started the response (`response.created` reached the client): OpenAI bills what
 * it read and generated before the socket dropped. In one process the proxy bills a response whose
 * `response.done` never comes at its reservation (`upstream_drop_estimate`, src/metering/README.md
 * "No response.done"). With workers the primary knows the reservation (LedgerHost tracks it) but
 * `releaseAll()` releases it: the response is never billed, and the tenant may spend the freed
 * budget again. A tenant whose sessions keep crashing a worker (or any crash under load) gets every
 * running response for free, past `cap + W`.
 */

/*
 * The same with the Redis ledger (red team, fifteenth session): each relay worker reserved in Redis
 * itself, and the primary's LedgerHost (which bills a dead worker's reservations) served SQLite only,
 * so a killed worker's reservation expired after `reservationTtlSec`, unbilled. The workers now use the
 * primary's ledger on Redis too. The test sets a 3 s TTL so that an expiry would show within its wait.
 */

const clock = noonClock();
const suite = redisSuite();
const proxies = suite.proxies;

const LEDGERS: readonly { readonly name: string; readonly metering: () => Record<string, unknown> }[] = [
  { name: 'SQLite ledger', metering: () => ({}) },
  { name: 'Redis ledger', metering: () => ({ ledger: { kind: 'redis', url: suite.redis().url, keyPrefix: 'wk15c:', commandTimeoutMs: 3000, reservationTtlSec: 3 } }) },
];

describe.each(LEDGERS)('adversary: a relay worker killed mid-response ($name)', ({ metering }) => {
  it('bills the running response conservatively (at least its reservation) instead of releasing it for free', { timeout: 60_000 }, async () => {
    const tp = await startTestProxy({
      start: { clock },
      tenants: { acme: { limits: { dailyUsd: '1', maxResponseOutputTokens: 4096 } } },
      // The response stays running upstream (response.created sent, first delta 60 s away).
      simulator: { timing: { firstAudioDelayMs: 60_000 } },
      config: { server: { workers: 2 }, admin: { key: ADMIN_KEY }, metering: metering() },
    });
    proxies.push(tp);
    const c = await tp.client();
    await c.next('session.created', 15_000);
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: a long answer please' }] } });
    c.send({ type: 'response.create', response: {} });
    const created = await c.next('response.created', 15_000);
    expect((created['response'] as { status: string }).status).toBe('in_progress');
    // The upstream started it: the simulator sent response.created for this session.
    expect(tp.sim.connections.flatMap((conn) => conn.sent).filter((e) => e.type === 'response.created')).toHaveLength(1);
    // Its worst case is reserved in the primary's ledger.
    const before = await spend(tp.adminUrl);
    const reservedNanos = Math.round(Number(before.day.reservedUsd) * 1e9);
    expect(reservedNanos).toBeGreaterThan(0);
    expect(before.day.spentNanos).toBe(0);

    // Which worker holds the session: the only session start logged.
    const starts = tp.logs.filter((l) => l.msg === 'session start');
    expect(starts).toHaveLength(1);
    const worker = starts[0]!['worker'] as number;
    process.kill(tp.proxy.workers!.pids[worker]!, 'SIGKILL');
    await c.closed;
    // The primary has handled the death once nothing is reserved any more.
    await expect.poll(async () => (await spend(tp.adminUrl)).day.reservedUsd, { timeout: 20_000, interval: 250 }).toBe('0.00');

    const after = await spend(tp.adminUrl);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Single-process parity: the response that ran upstream is billed at its reservation (estimated).
    // Actual: spent 0, no usage record: the reservation was released as if the response never ran.
    expect(after.day.spentNanos).toBeGreaterThanOrEqual(reservedNanos);
    expect(records).toHaveLength(1);
  });
});
