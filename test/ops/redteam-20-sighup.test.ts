import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { killedAfterEach, spawnSimulatorProxyGroup, whenListening } from '../support/spawned-proxy.js';

/*
 * An operator sends SIGHUP, the signal that reloads nginx, HAProxy or Prometheus (`kill -HUP`,
 * `systemctl reload`), or the SSH session that started the proxy in a terminal ends (the kernel
 * sends SIGHUP to the terminal's process group: the primary and its relay workers). The proxy had
 * no handler, so SIGHUP's default action killed it at once: no drain, every session cut with 1006,
 * responses running upstream never billed (until 2026-12-07).
 *
 * The proxy now logs that the config is read only at start and goes on serving; this test sends
 * SIGHUP to the whole process group, as a terminal hang-up does, and the open session then
 * completes a turn.
 */

const KEY = 'rpk_ops_sighup_0123456789abcdef';
const running = killedAfterEach();

function start(workers: number): ChildProcess {
  const child = spawnSimulatorProxyGroup({ workers, shutdownDrainSec: 5, key: KEY });
  running.push(child);
  return child;
}

describe('SIGHUP (kill -HUP, systemctl reload, a closed terminal)', () => {
  for (const workers of [1, 2]) {
    it(`keeps serving, sessions included (server.workers ${workers})`, { timeout: 60_000 }, async () => {
      const child = start(workers);
      const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`exited (${signal ?? code})`)));
      const listening = await whenListening(child);
      const c = new TestClient(`ws://127.0.0.1:${listening.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
      await c.next('session.created', 15_000);

      process.kill(-child.pid!, 'SIGHUP');
      const after = await Promise.race([exited, listening.outputMatching(/"signal":"SIGHUP"/, 30_000).then(() => 'logged')]);
      expect(after).toBe('logged');

      // The session lives on in whichever process holds it, and the proxy still admits.
      c.say('say:Still here.');
      const done = await Promise.race([c.next('response.done', 30_000), c.closed.then((x) => ({ closed: x.code }))]);
      expect(done).toMatchObject({ type: 'response.done', response: { status: 'completed' } });
      const ready = await fetch(`http://127.0.0.1:${listening.port}/readyz`, { signal: AbortSignal.timeout(10_000) });
      expect(ready.status).toBe(200);
      c.close();
      await c.closed;
    });
  }
});
