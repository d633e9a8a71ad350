import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { groupsKilledAfterEach, spawnSimulatorProxyGroup, whenListening } from '../support/spawned-proxy.js';

/*
 * An operator stops the proxy with Ctrl-C (or `kill`), sees "shutting down: … sessions drain", and
 * presses Ctrl-C again (or sends a second `kill`): what every server takes as "stop now". The
 * second signal did nothing, and the proxy went on draining for up to `server.shutdownDrainSec`
 * (until 2026-12-07). It now logs that it exits, kills its relay workers, closes its listeners and
 * exits 1 at once. This test signals the whole process group, as a terminal does.
 */

const KEY = 'rpk_ops_second_0123456789abcdef';
const groups = groupsKilledAfterEach();

function start(workers: number): ChildProcess {
  // A drain far longer than the test: only the second signal can end it.
  const child = spawnSimulatorProxyGroup({ workers, shutdownDrainSec: 3600, key: KEY });
  groups.push(child.pid!);
  return child;
}

/** Whether a process of the group is still there (signal 0 checks without sending). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a second SIGINT/SIGTERM during the drain', () => {
  for (const [workers, first, second] of [
    [1, 'SIGTERM', 'SIGTERM'],
    [2, 'SIGINT', 'SIGINT'],
  ] as const) {
    it(`exits 1 at once, the session cut (server.workers ${workers}, ${first} then ${second})`, { timeout: 60_000 }, async () => {
      const child = start(workers);
      const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
      const listening = await whenListening(child);
      const c = new TestClient(`ws://127.0.0.1:${listening.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
      await c.next('session.created', 15_000);

      process.kill(-child.pid!, first);
      await listening.outputMatching(/shutting down: \/readyz answers 503/, 30_000);
      process.kill(-child.pid!, second);
      expect(await exited).toBe(1);
      expect(listening.output()).toMatch(new RegExp(`"signal":"${second}"[^\\n]*second signal during the drain: exiting now`));
      // The drain did not run on: the session is cut (by the exit, or with its killed worker).
      const closed = await c.closed;
      expect(closed.code).not.toBe(1012);
      // Every process of the group ends (relay workers included), and the port with them.
      while (groupAlive(child.pid!)) await new Promise((resolve) => setTimeout(resolve, 50));
      const refused = await fetch(`http://127.0.0.1:${listening.port}/healthz`).then(
        (r) => `http ${r.status}`,
        (err: Error & { cause?: { code?: string } }) => err.cause?.code ?? err.message,
      );
      expect(refused).toBe('ECONNREFUSED');
    });
  }
});
