import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { childProcesses } from '../support/procs.js';
import { spawnSimulatorProxyGroup, whenListening } from '../support/spawned-proxy.js';

/*
 * The primary of `server.workers: 2` is told to stop (SIGTERM: the workers drain) and is then
 * killed mid-drain (SIGKILL from a process manager whose stop timeout ran out, the OOM killer). A
 * relay worker whose drain ended just as its primary went away (its last sessions ended before it
 * read the IPC channel's close) called process.exit(0), and pino's exit hook wrote the worker's last
 * log lines to the dead primary's pipe: sonic-boom 4 retries a write that fails EPIPE forever
 * (flushSync), so the worker hung in its own exit, orphaned, still holding the client port, its 5 s
 * orphan bound never firing (until 2026-12-07; seen once in two or three runs of
 * redteam-20-second-signal without its killAll). The workers are stopped (SIGSTOP) while their
 * clients close and the primary is killed, so that they read the clients' closes before the
 * channel's: every worker met that order, and hung, before the fix.
 */

const KEY = 'rpk_ops_orphan_0123456789abcdef';
const ROUNDS = 2;
const SESSIONS = 8;
/** Polls of the workers' pids, 100 ms apart: far beyond the worker's 5 s bound once its primary is gone. */
const POLLS = 300;

const pids: number[] = [];
afterEach(() => {
  // The group's primary and any worker left behind (reparented, it is no longer the primary's child).
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** Whether `pid` still runs (a zombie, exited and not yet reaped by its new parent, does not). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function round(): Promise<number[]> {
  const child = spawnSimulatorProxyGroup({ workers: 2, shutdownDrainSec: 60, key: KEY });
  pids.push(child.pid!);
  const listening = await whenListening(child);
  const workers = childProcesses(child.pid!)
    .filter((p) => p.cmdline.includes('worker'))
    .map((p) => p.pid);
  pids.push(...workers);
  const clients: TestClient[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const c = new TestClient(`ws://127.0.0.1:${listening.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
    await c.next('session.created', 15_000);
    clients.push(c);
  }
  // Every worker holding a session has begun its drain (one holding none exits at once, its primary there).
  const started = await listening.outputMatching(new RegExp(`("event":"session_start"[^]*){${SESSIONS}}`), 15_000);
  const holding = new Set(
    started
      .split('\n')
      .filter((line) => line.includes('"event":"session_start"'))
      .map((line) => (JSON.parse(line) as { worker?: number }).worker),
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid!, 'SIGTERM');
  await listening.outputMatching(new RegExp(`("msg":"draining sessions"[^]*){${holding.size}}`), 30_000);
  for (const pid of workers) process.kill(pid, 'SIGSTOP');
  for (const c of clients) c.ws.close();
  // The close frames reach the stopped workers' sockets before the primary's death closes its own.
  await new Promise((resolve) => setTimeout(resolve, 200));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
  for (const pid of workers) process.kill(pid, 'SIGCONT');
  let alive = workers;
  for (let poll = 0; poll < POLLS && alive.length > 0; poll++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    alive = alive.filter(running);
  }
  return alive;
}

describe('a relay worker whose primary is killed mid-drain', () => {
  it('exits on its own (server.workers 2, SIGTERM then SIGKILL to the primary)', { timeout: 300_000 }, async () => {
    const left: number[][] = [];
    for (let i = 0; i < ROUNDS; i++) left.push(await round());
    expect(left).toEqual(Array.from({ length: ROUNDS }, () => []));
  });
});
