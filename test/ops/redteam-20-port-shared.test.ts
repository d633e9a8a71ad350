import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * An operator starts the proxy while an older instance still runs on the same machine (a forgotten
 * `npm start` in another terminal, a blue/green switch on one host, a process manager restarting
 * before the old process has exited). uWS binds with SO_REUSEPORT, so until 2026-12-07 the second
 * instance bound the same client port (and admin port) without an error, logged "realtime proxy
 * listening", and the kernel split new connections between the two: half the sessions ran under
 * the old config and policies, each instance's SQLite ledger enforced a whole cap (twice the cap in
 * all), and Prometheus scraped either instance at random (counters jumping back and forth).
 *
 * The second instance must refuse to start, naming the port.
 */

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

/** A port free right now on loopback (a configured, non-zero port: uSockets sets SO_REUSEPORT only then). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function outcome(start: Promise<TestProxy>): Promise<string> {
  try {
    proxies.push(await start);
    return 'started';
  } catch (err) {
    return (err as Error).message;
  }
}

const base = { policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } as const;

describe('a second instance on the same port', () => {
  for (const workers of [1, 2]) {
    it(`refuses to start on a client port another instance listens on (server.workers ${workers})`, { timeout: 60_000 }, async () => {
      const port = await freePort();
      proxies.push(await startTestProxy({ config: { ...base, server: { port, workers } } }));
      const second = await outcome(startTestProxy({ config: { ...base, server: { port, workers } } }));
      expect(second).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*another process`));
    });
  }

  it('refuses to start on an admin port another instance listens on', { timeout: 60_000 }, async () => {
    const adminPort = await freePort();
    proxies.push(await startTestProxy({ config: { ...base, admin: { port: adminPort } } }));
    const second = await outcome(startTestProxy({ config: { ...base, admin: { port: adminPort } } }));
    expect(second).toMatch(new RegExp(`127\\.0\\.0\\.1:${adminPort}.*another process`));
  });

  it('starts when the port is free', async () => {
    const port = await freePort();
    expect(await outcome(startTestProxy({ config: { ...base, server: { port } } }))).toBe('started');
  });
});
