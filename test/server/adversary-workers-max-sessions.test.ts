import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { TestClient } from '../support/client.js';

/*
 * Adversarial review of server.workers: `server.maxSessions` is "split between the workers, so the
 * totals stay what is configured" (README, All cores). The split is ceil(maxSessions / workers) per
 * worker (src/server/workers.ts), so a total that does not divide evenly is exceeded: 3 over 2
 * workers gives each 2, and the proxy runs 4 sessions; 1 over 2 workers runs 2.
 */

const proxies: TestProxy[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

/** Opens upgrades one at a time until `want` are admitted or `attempts` are used; the admitted stay open. */
async function fill(tp: TestProxy, want: number, attempts: number): Promise<{ admitted: number; refused: number[] }> {
  let admitted = 0;
  const refused: number[] = [];
  for (let i = 0; i < attempts && admitted < want; i++) {
    const c = new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } });
    clients.push(c);
    const outcome = await Promise.race([c.refused, c.opened.then(() => 'admitted' as const, () => 'error' as const)]);
    if (outcome === 'admitted') {
      await c.next('session.created', 15_000);
      admitted++;
    } else if (typeof outcome === 'number') {
      refused.push(outcome);
    }
  }
  return { admitted, refused };
}

describe('adversary: server.maxSessions across relay workers', () => {
  for (const [maxSessions, overshoot] of [
    [3, 4],
    [1, 2],
  ] as const) {
    it(`maxSessions ${maxSessions} with 2 workers admits at most ${maxSessions} sessions in all`, { timeout: 90_000 }, async () => {
      const tp = await startTestProxy({ config: { server: { workers: 2, maxSessions } } });
      proxies.push(tp);
      // Try until the per-worker shares are both full (the kernel spreads connections over the workers).
      const { admitted, refused } = await fill(tp, overshoot, 60);
      // Refusals are the proxy's overload answer.
      expect(new Set(refused)).toEqual(new Set(refused.length > 0 ? [503] : []));
      // Actual: both workers fill their ceil(maxSessions / 2) share: `overshoot` sessions run at once.
      expect(admitted).toBeLessThanOrEqual(maxSessions);
    });
  }

  it('sound: a tenant maxConcurrentSessions of 4 holds under 12 concurrent upgrades spread over both workers', { timeout: 60_000 }, async () => {
    const tp = await startTestProxy({ tenants: { acme: { limits: { maxConcurrentSessions: 4 } } }, config: { server: { workers: 2 } } });
    proxies.push(tp);
    const burst = Array.from({ length: 12 }, () => new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } }));
    clients.push(...burst);
    const outcomes = await Promise.all(burst.map((c) => Promise.race([c.refused, c.opened.then(() => 'admitted' as const, () => 'error' as const)])));
    expect(outcomes.filter((o) => o === 'admitted')).toHaveLength(4);
    expect(outcomes.filter((o) => o === 429)).toHaveLength(8);
    // The upgrades reached both workers (the refusals are logged by the worker that refused).
    await expect.poll(() => tp.logs.filter((l) => l.msg === 'session refused' && l['code'] === 'concurrent_sessions_exceeded').length).toBe(8);
    const workers = new Set([...tp.logs.filter((l) => l.msg === 'session start' || l.msg === 'session refused').map((l) => l['worker'])]);
    expect(workers).toEqual(new Set([0, 1]));
  });
});
