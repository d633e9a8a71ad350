import { describe, expect, it } from 'vitest';
import { startTestProxy } from '../support/harness.js';
import { stoppedWorkersResumedAfterEach } from '../support/spawned-proxy.js';

/*
 * The shipped Kubernetes Deployment (deploy/kubernetes) probes readiness on the client port
 * (`httpGet: { path: /readyz, port: ws }`), as any load balancer in front of the proxy does: the
 * admin listener is loopback-only. With `server.workers` > 1 that /readyz is answered by whichever
 * relay worker the kernel hands the probe's connection to. A hung worker (its event loop stuck)
 * keeps its SO_REUSEPORT socket and receives about 1/N of the new connections, which are never
 * answered. The README says its silence makes /readyz 503 "so the load balancer takes the
 * instance out", but until 2026-12-07 only the primary's admin /readyz said so: every probe that
 * reached a healthy worker answered 200, so the instance stayed in rotation for the 30 s until the
 * primary killed the worker, and the probe flapped meanwhile.
 *
 * Each probe here is a new connection (`Connection: close`), as kubelet's are; probes that reach the
 * stopped worker get no answer, so the test keeps probing until one is answered.
 */

const { proxies, stopped } = stoppedWorkersResumedAfterEach();

/** One probe on a fresh connection: its status, or null when it was not answered within the probe's own timeout. */
async function probe(url: string): Promise<{ status: number; body: string } | null> {
  try {
    const res = await fetch(url, { headers: { connection: 'close', 'user-agent': 'kube-probe/1.31' }, signal: AbortSignal.timeout(1000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return null;
  }
}

/** The first answered probe of up to `attempts` (the kernel spreads new connections over the workers). */
async function answeredProbe(url: string, attempts = 40): Promise<{ status: number; body: string }> {
  for (let i = 0; i < attempts; i++) {
    const r = await probe(url);
    if (r) return r;
  }
  throw new Error(`no probe of ${attempts} was answered`);
}

describe('a hung relay worker and the client-port /readyz (kubelet, load balancers)', () => {
  it('every worker that answers says 503 while another worker is not answering', { timeout: 90_000 }, async () => {
    const tp = await startTestProxy({ config: { server: { workers: 2 }, policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
    proxies.push(tp);
    expect((await answeredProbe(`${tp.httpUrl}/readyz`)).status).toBe(200);
    const pid = tp.proxy.workers!.pids[0]!;
    process.kill(pid, 'SIGSTOP');
    stopped.push(pid);
    // The primary notices (its admin /readyz, covered by test/server/adversary-workers-hung.test.ts).
    await expect.poll(async () => (await fetch(`${tp.adminUrl}/readyz`, { signal: AbortSignal.timeout(5000) })).status, { timeout: 20_000 }).toBe(503);
    // A load balancer probing the client port must see it too.
    await expect.poll(async () => (await answeredProbe(`${tp.httpUrl}/readyz`)).status, { timeout: 10_000 }).toBe(503);
    const seen = await answeredProbe(`${tp.httpUrl}/readyz`);
    expect(seen.status).toBe(503);
    expect(seen.body).toContain('relay worker 0 not answering');
    // Resumed before the primary kills it (30 s): every worker says ready again, nothing stuck.
    process.kill(pid, 'SIGCONT');
    await expect.poll(async () => (await fetch(`${tp.adminUrl}/readyz`, { signal: AbortSignal.timeout(5000) })).status, { timeout: 20_000 }).toBe(200);
    await expect.poll(async () => (await answeredProbe(`${tp.httpUrl}/readyz`)).status, { timeout: 10_000 }).toBe(200);
  });
});
