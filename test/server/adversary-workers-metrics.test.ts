import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import type { TestClient } from '../support/client.js';

/*
 * Adversarial review of server.workers: the primary's one /metrics sums the workers' series
 * ("counters, histograms and the active-session gauges add"). A counter must never go down while
 * the process that serves it runs: Prometheus reads a decrease as a counter reset and counts the
 * whole value again (rate()/increase() spike). When a worker dies (or misses the 5 s metrics
 * answer) its counters drop out of the sum, so the merged counter decreases with no per-worker
 * label to tell Prometheus which part reset.
 */

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function metrics(tp: TestProxy): Promise<string> {
  const res = await fetch(`${tp.adminUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

const STARTED = 'rtproxy_sessions_started_total{rtproxy_tenant_id="acme",otel_scope_name="realtime-proxy"}';

describe('adversary: merged /metrics when a relay worker dies', () => {
  it('a summed counter never decreases (rtproxy_sessions_started_total) when a worker dies and is replaced', { timeout: 90_000 }, async () => {
    const tp = await startTestProxy({ config: { server: { workers: 2 } } });
    proxies.push(tp);
    const clients: TestClient[] = [];
    for (let i = 0; i < 40; i++) {
      const c = await tp.client();
      await c.next('session.created', 15_000);
      clients.push(c);
      const t = await metrics(tp);
      if ((sample(t, 'rtproxy_worker_sessions{worker="0"}') ?? 0) > 0 && (sample(t, 'rtproxy_worker_sessions{worker="1"}') ?? 0) > 0) break;
    }
    const text = await metrics(tp);
    const w0 = sample(text, 'rtproxy_worker_sessions_started_total{worker="0"}') ?? 0;
    expect(w0).toBeGreaterThan(0);
    const startedBefore = sample(text, STARTED);
    expect(startedBefore).toBe(clients.length);

    const pid = tp.proxy.workers!.pids[0]!;
    process.kill(pid, 'SIGKILL');
    // Scrape while the worker is down and after its replacement is ready.
    await expect.poll(async () => sample(await metrics(tp), 'rtproxy_worker_up{worker="0"}'), { timeout: 10_000 }).toBe(0);
    const whileDown = sample(await metrics(tp), STARTED) ?? 0;
    await expect.poll(async () => (await fetch(`${tp.adminUrl}/readyz`)).status, { timeout: 20_000 }).toBe(200);
    const afterRestart = sample(await metrics(tp), STARTED) ?? 0;
    // Actual: the dead worker's starts vanish from the sum (clients.length → clients.length - w0).
    expect(whileDown).toBeGreaterThanOrEqual(startedBefore!);
    expect(afterRestart).toBeGreaterThanOrEqual(startedBefore!);
  });
});
