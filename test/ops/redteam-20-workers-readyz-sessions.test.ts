import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * An operator drains an instance of `npm start` (server.workers auto: two relay workers on two
 * cores) and watches the admin listener's /readyz `sessions` to see when the last session has
 * gone. Until 2026-12-07 that count was the primary's own, which never holds a session: it said 0
 * with sessions open in the workers, and so did the `shutting down` log line, so a drain looked
 * finished before it began.
 */

let tp: TestProxy;
const clients: TestClient[] = [];

beforeAll(async () => {
  tp = await startTestProxy({ config: { server: { workers: 2 }, policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
});

afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await tp?.stop();
});

async function adminReadyzSessions(): Promise<unknown> {
  const res = await fetch(`${tp.adminUrl}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return ((await res.json()) as { sessions?: unknown }).sessions;
}

describe('the admin /readyz with relay workers', () => {
  it('counts the sessions open in the workers', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 3; i++) {
      const c = await tp.client();
      await c.next('session.created', 15_000);
      clients.push(c);
    }
    // Each worker reports its count with its liveness pong (every second).
    await expect.poll(adminReadyzSessions, { timeout: 15_000 }).toBe(3);
    clients.pop()!.close();
    await expect.poll(adminReadyzSessions, { timeout: 15_000 }).toBe(2);
  });
});
