import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import type { TestClient } from '../support/client.js';
import { noonClock } from '../support/clock.js';
import { ADMIN_KEY, errorCode, spend, textTurn, usageRecords } from '../metering/support.js';

/*
 * Adversarial review of server.workers: caps exact across workers under `admission: worst_case`
 * (never over the cap), with concurrent creates from sessions in both workers. Found sound: the
 * primary runs every reserve on its one event loop.
 */

const clock = noonClock();
const CAP = '0.03';
const CAP_NANOS = Number(CAP) * 1e9;
const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function startedPerWorker(tp: TestProxy): Promise<[number, number]> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const v = (w: number) => Number(/ (\d+)$/.exec(text.split('\n').find((l) => l.startsWith(`rtproxy_worker_sessions_started_total{worker="${w}"}`)) ?? ' 0')![1]);
  return [v(0), v(1)];
}

describe('adversary: caps across relay workers, admission worst_case', () => {
  it('concurrent bursts of creates from sessions in both workers never pass the cap, and nothing stays reserved', { timeout: 120_000 }, async () => {
    const tp = await startTestProxy({
      start: { clock },
      tenants: { acme: { limits: { dailyUsd: CAP, maxResponseOutputTokens: 16 } } },
      config: { server: { workers: 2 }, admin: { key: ADMIN_KEY }, metering: { admission: 'worst_case', inputAllowanceTokens: 50 } },
    });
    proxies.push(tp);
    const clients: TestClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await tp.client();
      await c.next('session.created', 15_000);
      clients.push(c);
      const [a, b] = await startedPerWorker(tp);
      if (a > 0 && b > 0 && clients.length >= 6) break;
    }
    const [a, b] = await startedPerWorker(tp);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    // Every session runs turns until refused with nothing else reserved (sessions in both workers run at once).
    const final: string[] = [];
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 400; i++) {
          const r = await textTurn(c, 'say: ok', 15_000);
          if (!r.error) continue;
          const d = (r.error['error'] as { details?: { reserved?: string } }).details;
          // Refused while other responses hold reservations: try again.
          if (errorCode(r.error) === 'budget_exceeded' && d && Number(d.reserved) > 0) {
            await new Promise((res) => setTimeout(res, 2));
            continue;
          }
          final.push(errorCode(r.error) ?? '');
          return;
        }
      }),
    );
    expect(final).toEqual(Array(clients.length).fill('budget_exceeded'));
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    const total = records.reduce((s, r) => s + (r['costNanos'] as number), 0);
    const s = await spend(tp.adminUrl);
    expect(s.day.spentNanos).toBe(total);
    expect(s.day.reservedUsd).toBe('0.00');
    // worst_case: never over the cap, across both workers.
    expect(total).toBeLessThanOrEqual(CAP_NANOS);
    expect(total).toBeGreaterThan(0);
  });
});
