import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { noonClock } from '../support/clock.js';
import { tempDir } from '../support/temp-dir.js';
import { ADMIN_KEY } from '../metering/support.js';
import { HOLD_LIMITS, holdArrived, secondSessionPaysNothing } from '../metering/tenant-holds-support.js';

/*
 * Over-cap audio holds across relay workers (server.workers: 2). A server-VAD response the proxy
 * cancels at `response.created` over a cap is billed for the conversation it read; one session
 * that had one holds the input audio of every session of its tenant in its process
 * (test/metering/redteam-16-sessions-vad-cap.test.ts). Until 2026-12-07 that process was the relay
 * worker: a session of the tenant on the other worker still started, and paid, one more.
 */

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

/** Sessions started per worker, from the merged /metrics. */
async function startedPerWorker(tp: TestProxy): Promise<[number, number]> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const sample = (w: number): number => Number(/ (\d+)$/.exec(text.split('\n').find((l) => l.startsWith(`rtproxy_worker_sessions_started_total{worker="${w}"} `)) ?? ' 0')![1]);
  return [sample(0), sample(1)];
}

/** A session on each worker (others opened on the way are closed): [on worker 0, on worker 1]. */
async function oneOnEachWorker(tp: TestProxy): Promise<[TestClient, TestClient]> {
  const on: Array<TestClient | null> = [null, null];
  let before = await startedPerWorker(tp);
  for (let i = 0; i < 40 && (on[0] === null || on[1] === null); i++) {
    const c = await tp.client();
    await c.next('session.created', 15_000);
    const after = await startedPerWorker(tp);
    const w = after[0] > before[0] ? 0 : 1;
    before = after;
    if (on[w] === null) on[w] = c;
    else c.close();
  }
  if (!on[0] || !on[1]) throw new Error('40 sessions all landed on one worker');
  return [on[0], on[1]];
}

describe('over-cap audio holds across relay workers', () => {
  it.each([
    ['', false],
    [', worker 1 killed and replaced first', true],
  ] as const)('after a session on one worker had its VAD response cancelled over the cap, a session on the other worker speaking pays none%s', { timeout: 120_000 }, async (_name, replaced) => {
    const dir = tempDir('rp-holds-workers-');
    const tp = await startTestProxy({
      start: { clock: noonClock() },
      tenants: { acme: { limits: HOLD_LIMITS } },
      config: {
        server: { workers: 2 },
        admin: { key: ADMIN_KEY },
        logging: { level: 'info' },
        metering: { admission: 'worst_case', ledger: { path: join(dir, 'ledger.sqlite') } },
      },
    });
    proxies.push(tp);
    if (replaced) {
      // The primary passes holds to the workers running now: a replacement gets them like the first.
      const old = tp.proxy.workers!.pids[1]!;
      process.kill(old, 'SIGKILL');
      await expect.poll(() => tp.proxy.workers!.pids[1], { timeout: 30_000 }).not.toBe(old);
      await expect.poll(async () => (await fetch(`${tp.adminUrl}/readyz`, { signal: AbortSignal.timeout(10_000) })).status, { timeout: 30_000, interval: 250 }).toBe(200);
    }
    const [first, second] = await oneOnEachWorker(tp);
    await secondSessionPaysNothing(first, second, tp.adminUrl, () => holdArrived(tp, 1));
  });
});
