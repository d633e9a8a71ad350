import { describe, expect, it } from 'vitest';
import { startTestProxy } from '../support/harness.js';
import { stoppedWorkersResumedAfterEach } from '../support/spawned-proxy.js';

/*
 * Adversarial review of server.workers: a relay worker that hangs (its event loop stuck: a
 * pathological pattern on hostile input, a native deadlock; here SIGSTOP) keeps its SO_REUSEPORT
 * listener in the kernel, so the kernel still hands it about 1/N of the new connections, which are
 * never answered. A single-process proxy in that state stops answering /readyz and the load
 * balancer takes it out; with workers the primary answers /readyz itself and only checks that each
 * worker once said "listening": it stays 200 while /metrics already shows rtproxy_worker_up 0.
 */

const { proxies, stopped } = stoppedWorkersResumedAfterEach();

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text() };
}

describe('adversary: a hung relay worker', () => {
  it('/readyz on the admin listener is not 200 while a worker answers nothing (its /metrics already says worker_up 0)', { timeout: 60_000 }, async () => {
    const tp = await startTestProxy({ config: { server: { workers: 2 } } });
    proxies.push(tp);
    expect((await get(`${tp.adminUrl}/readyz`)).status).toBe(200);
    const pid = tp.proxy.workers!.pids[0]!;
    process.kill(pid, 'SIGSTOP');
    stopped.push(pid);
    // The primary knows: the worker misses its metrics answer (bounded at 5 s).
    await expect.poll(async () => /^rtproxy_worker_up\{worker="0"\} 0$/m.test((await get(`${tp.adminUrl}/metrics`)).text), { timeout: 20_000 }).toBe(true);
    // ...yet it reports the relay ready. Actual: 200.
    const ready = await get(`${tp.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
  });
});
