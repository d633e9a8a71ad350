import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { spawnSimulatorProxyGroup, whenListening } from '../support/spawned-proxy.js';

/*
 * The proxy's stdout is a pipe whose reader went away (`realtime-proxy run | head -1`, a log
 * shipper that died) and the proxy is then told to stop (SIGTERM). Its log lines went to pino's
 * default destination (sonic-boom 4), whose exit hook writes what is still buffered synchronously
 * and retries a write failing EPIPE forever: the primary of `workers: 2` hung in process.exit() once
 * its drain ended, its workers gone, still holding its admin port (in most rounds, until 2026-12-07;
 * the relay workers were fixed the same day, src/server/worker.ts). Sessions are open at the signal
 * and close after it, so that the drain's last lines and the exit come close together. The
 * single-process proxy (`workers: 1`) was not seen to hang; it shares the logger and is checked too.
 */

const KEY = 'rpk_ops_closed_stdout_0123456789ab';
const ROUNDS = 3;
const SESSIONS = 4;
/** Polls of the process's pid, 100 ms apart: far beyond its drain once its sessions have closed. */
const POLLS = 200;

const pids: number[] = [];
afterEach(() => {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether the proxy still ran after its stdout's reader closed and it was sent SIGTERM. */
async function stillRunningAfterStop(workers: number): Promise<boolean> {
  const child = spawnSimulatorProxyGroup({ workers, shutdownDrainSec: 30, key: KEY });
  pids.push(child.pid!);
  const listening = await whenListening(child);
  const clients: TestClient[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const c = new TestClient(`ws://127.0.0.1:${listening.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
    await c.next('session.created', 15_000);
    clients.push(c);
  }
  await listening.outputMatching(new RegExp(`("event":"session_start"[^]*){${SESSIONS}}`), 15_000);
  // The reader of the proxy's stdout goes away: its next write fails EPIPE.
  child.stdout!.destroy();
  process.kill(child.pid!, 'SIGTERM');
  // The drain waits for the sessions (30 s bound); their closes end it and the exit follows at once.
  // The pause only lets the drain begin first (a close before it would make the exit come later);
  // nothing is asserted on its length.
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const c of clients) c.ws.close();
  for (let poll = 0; poll < POLLS && running(child.pid!); poll++) await new Promise((resolve) => setTimeout(resolve, 100));
  return running(child.pid!);
}

describe('a proxy whose stdout reader has gone, then signalled', () => {
  it.each([1, 2])('exits (server.workers %i)', { timeout: 120_000 }, async (workers) => {
    const left: boolean[] = [];
    for (let i = 0; i < ROUNDS; i++) left.push(await stillRunningAfterStop(workers));
    expect(left).toEqual(Array.from({ length: ROUNDS }, () => false));
  });
});
