import { describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { groupsKilledAfterEach, spawnSimulatorProxyGroup, whenListening } from '../support/spawned-proxy.js';

/*
 * An operator stops `npm start` (two relay workers) and reads the `shutting down` line to see how
 * many sessions the drain waits for. The primary took its workers' counts from their last liveness
 * pongs (one a second), so sessions opened in the second before the signal were not in it: the line
 * said `sessions: 0` with sessions open, and a drain looked finished before it began (until
 * 2026-12-07). The primary now asks its workers as the signal comes.
 */

const KEY = 'rpk_ops_drainline_0123456789abcdef';
const SESSIONS = 3;
const groups = groupsKilledAfterEach();

describe('the `shutting down` line with relay workers', () => {
  it('counts the sessions open in the workers as the signal comes', { timeout: 60_000 }, async () => {
    const child = spawnSimulatorProxyGroup({ workers: 2, shutdownDrainSec: 3600, key: KEY });
    groups.push(child.pid!);
    const listening = await whenListening(child);
    const clients: TestClient[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const c = new TestClient(`ws://127.0.0.1:${listening.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
      await c.next('session.created', 15_000);
      clients.push(c);
    }
    // At once: no liveness pong has reported them yet.
    process.kill(child.pid!, 'SIGTERM');
    const output = await listening.outputMatching(/shutting down: \/readyz answers 503[^\n]*\n/, 30_000);
    const line = output.split('\n').find((l) => l.includes('shutting down: /readyz answers 503'))!;
    expect(JSON.parse(line)).toMatchObject({ signal: 'SIGTERM', sessions: SESSIONS, workers: 2 });
    for (const c of clients) c.ws.terminate();
  });
});
