import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RELAY_NODE_FLAGS } from '../../src/server/node-flags.js';
import { whenListening } from '../support/spawned-proxy.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { TestClient } from '../support/client.js';
import { textTurn } from '../metering/support.js';
import { policyDir } from '../policies/support.js';
import { childProcesses } from '../support/procs.js';
import { tempDir } from '../support/temp-dir.js';

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function start(options: Parameters<typeof startTestProxy>[0] = {}): Promise<TestProxy> {
  const tp = await startTestProxy({ ...options, config: { ...options.config, server: { workers: 2, ...options.config?.server } } });
  proxies.push(tp);
  return tp;
}

/** Every admin request has a bound: expect.poll does not bound the call it polls, so a hung request would hang the test. */
const ADMIN_REQUEST_MS = 10_000;

/**
 * One step of a test with its own bound and name: a test that hangs under CI load (the worker-death
 * test did, twice, with every wait in it bounded) then says which step hung instead of only
 * "Test timed out".
 */
async function step<T>(label: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${label}" did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, bound]);
  } finally {
    clearTimeout(timer);
  }
}

async function metrics(tp: TestProxy): Promise<string> {
  const res = await fetch(`${tp.adminUrl}/metrics`, { signal: AbortSignal.timeout(ADMIN_REQUEST_MS) });
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

/** Sessions started per worker, from the merged /metrics. */
async function perWorker(tp: TestProxy, series = 'rtproxy_worker_sessions_started_total'): Promise<[number, number]> {
  const text = await metrics(tp);
  return [sample(text, `${series}{worker="0"}`) ?? 0, sample(text, `${series}{worker="1"}`) ?? 0];
}

/**
 * Opens sessions until both workers hold one; at most `keepOpen` at once (a tenant limit): past it
 * the oldest is closed first (found 2026-12-05: with a limit of 6, six sessions on one worker made
 * the seventh a 429, about one run in thirty).
 */
async function onBothWorkers(tp: TestProxy, max = 40, keepOpen = Infinity): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = 0; i < max; i++) {
    if (clients.length >= keepOpen) {
      const oldest = clients.shift()!;
      oldest.close();
      await oldest.closed;
      await expect.poll(async () => (await perWorker(tp, 'rtproxy_worker_sessions')).reduce((x, y) => x + y, 0), { timeout: 10_000 }).toBe(clients.length);
    }
    const c = await tp.client();
    await c.next('session.created', 15_000);
    clients.push(c);
    const [a, b] = await perWorker(tp, 'rtproxy_worker_sessions');
    if (a > 0 && b > 0) return clients;
  }
  throw new Error(`${max} sessions all landed on one worker`);
}

async function status(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(ADMIN_REQUEST_MS) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Relay worker processes of `parent` (default: this test process), i.e. its children running src/server/worker. */
function ownWorkers(parent = process.pid): number[] {
  return childProcesses(parent)
    .filter((p) => p.cmdline.includes('server/worker'))
    .map((p) => p.pid);
}

describe('server.workers: 2', () => {
  it('sessions land on both workers, every one works end to end, one /metrics counts them all', { timeout: 60_000 }, async () => {
    const tp = await start();
    expect(tp.proxy.workers?.count).toBe(2);
    expect(ownWorkers().sort()).toEqual([...tp.proxy.workers!.pids].sort());
    // Workers run with the relay's V8 flags (a heap size cannot be set from inside a running process).
    for (const pid of tp.proxy.workers!.pids) expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining([...RELAY_NODE_FLAGS]));
    const clients = await Promise.all(Array.from({ length: 16 }, () => tp.client()));
    await Promise.all(clients.map((c) => c.next('session.created', 15_000)));
    const turns = await Promise.all(clients.map((c) => textTurn(c, 'say: hello from a worker', 15_000)));
    for (const t of turns) {
      expect(t.error).toBeNull();
      expect(t.done?.['response']).toMatchObject({ status: 'completed' });
    }
    // Every session's transcript is its own (no cross-talk between workers' sessions).
    for (const c of clients) {
      const text = c.ofType('response.output_text.done').map((e) => e['text']).join('');
      expect(text).toBe('hello from a worker');
    }
    const text = await metrics(tp);
    const [w0, w1] = await perWorker(tp);
    expect(w0 + w1).toBe(16);
    expect(w0).toBeGreaterThan(0);
    expect(w1).toBeGreaterThan(0);
    // One view: the workers' own series are summed, not listed per worker.
    expect(sample(text, 'rtproxy_sessions_started_total{rtproxy_tenant_id="acme",otel_scope_name="realtime-proxy"}')).toBe(16);
    expect(sample(text, 'rtproxy_sessions_active{rtproxy_tenant_id="acme",otel_scope_name="realtime-proxy"}')).toBe(16);
    expect(text.match(/^# TYPE rtproxy_sessions_started_total /gm)).toHaveLength(1);
    expect(sample(text, 'rtproxy_worker_up{worker="0"}')).toBe(1);
    expect(sample(text, 'rtproxy_worker_up{worker="1"}')).toBe(1);
    // Workers' log lines reach the primary's log output, tagged with their worker.
    const starts = tp.logs.filter((l) => l.msg === 'session start');
    expect(starts).toHaveLength(16);
    expect(new Set(starts.map((l) => l['worker']))).toEqual(new Set([0, 1]));
  });

  it('drain reaches every worker: /readyz 503 on both listeners, new upgrades refused, sessions finish, then every worker exits', { timeout: 60_000 }, async () => {
    const tp = await start();
    const clients = await onBothWorkers(tp);
    expect((await status(`${tp.adminUrl}/readyz`)).status).toBe(200);
    const pids = tp.proxy.workers!.pids;
    const stopped = tp.proxy.shutdown(20_000);
    await expect.poll(async () => (await status(`${tp.adminUrl}/readyz`)).body['reason'], { timeout: 5000 }).toBe('workers: draining');
    // Every worker drains: whichever accepts the connection answers 503 and refuses upgrades.
    await expect.poll(async () => (await Promise.all(Array.from({ length: 8 }, () => status(`${tp.httpUrl}/readyz`)))).map((r) => r.status).join(), { timeout: 5000 }).toBe(Array(8).fill(503).join());
    const late = Array.from({ length: 6 }, () => new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } }));
    expect(await Promise.all(late.map((c) => c.refused))).toEqual(Array(6).fill(503));
    // Sessions in progress still work during the drain, on both workers.
    const turns = await Promise.all(clients.map((c) => textTurn(c, 'say: still here', 15_000)));
    for (const t of turns) expect(t.done?.['response']).toMatchObject({ status: 'completed' });
    for (const c of clients) c.close();
    await stopped;
    for (const pid of pids) expect(() => process.kill(pid!, 0)).toThrow();
  });

  // Its bounded waits (closes 3 s, restart 20 s, new sessions 15 s) add up past 60 s on a loaded machine.
  it('a worker that dies loses only its sessions; its session slots are released and a new worker takes its place', { timeout: 120_000 }, async () => {
    const tp = await step('start', 20_000, start({ tenants: { acme: { limits: { maxConcurrentSessions: 6 } } } }));
    const clients = await step('sessions on both workers', 60_000, onBothWorkers(tp, 40, 5));
    const [open0] = await step('per-worker sessions', 12_000, perWorker(tp, 'rtproxy_worker_sessions'));
    const pid = tp.proxy.workers!.pids[0]!;
    process.kill(pid, 'SIGKILL');
    const closed = await Promise.all(clients.map((c) => Promise.race([c.closed.then(() => true), new Promise((r) => setTimeout(r, 3000, false))])));
    expect(closed.filter(Boolean)).toHaveLength(open0);
    await step('ready again', 25_000, expect.poll(async () => (await status(`${tp.adminUrl}/readyz`)).status, { timeout: 20_000 }).toBe(200));
    expect(tp.proxy.workers!.pids[0]).not.toBe(pid);
    // The dead worker's slots are free again: the tenant's limit counts only the sessions still open.
    const stillOpen = clients.length - open0;
    // The primary frees them when it learns of the death, which can come just after /readyz says 200:
    // an upgrade refused meanwhile is retried (the test used to hang here: a refused tp.client() never settled).
    const admitted = async (): Promise<TestClient> => {
      for (const deadline = Date.now() + 10_000; ; ) {
        try {
          return await tp.client();
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const more: TestClient[] = [];
    for (let k = 0; k < 6 - stillOpen; k++) more.push(await step('a session in a freed slot', 15_000, admitted()));
    await Promise.all(more.map((c) => c.next('session.created', 15_000)));
    // ...and no more: the limit still holds across both workers.
    const extra = Array.from({ length: 4 }, () => new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } }));
    // An admitted session would leave `refused` pending forever: say so instead of timing out.
    const outcome = (c: TestClient) => Promise.race([c.refused, c.opened.then(() => 'admitted', () => 'error')]);
    expect(await step('refusals over the limit', 20_000, Promise.all(extra.map(outcome)))).toEqual(Array(4).fill(429));
    await expect.poll(() => tp.logs.filter((l) => l.msg === 'session refused' && l['code'] === 'concurrent_sessions_exceeded').length).toBe(4);
  });

  it('a policy edit reaches every worker', { timeout: 60_000 }, async () => {
    const version = (n: number, word: string) => `version: ${n}\nguardrails:\n  rules: [{ id: no-${word}, sources: [output], match: { phrases: [${word}] }, action: cancel_response }]\n`;
    const dir = policyDir({ 'live.yaml': version(1, 'apple') });
    const tp = await start({ tenants: { acme: { policy: 'live' } }, config: { policies: { dir, watch: true, watchDebounceMs: 20 } } });
    writeFileSync(join(dir, 'live.yaml'), version(2, 'banana'));
    await expect.poll(() => new Set(tp.logs.filter((l) => l.msg === 'policy reloaded' && l['version'] === '2' && l['worker'] !== undefined).map((l) => l['worker'])).size, { timeout: 10_000 }).toBe(2);
    const clients = await onBothWorkers(tp);
    for (const c of clients) c.say('say: I like banana very much, it is a fine thing to talk about for a while.');
    const done = await Promise.all(clients.map((c) => c.next('response.done', 15_000)));
    expect(done.map((d) => (d['response'] as { status: string }).status)).toEqual(Array(clients.length).fill('cancelled'));
  });

  it('a primary that cannot start (admin port taken) leaves no worker behind', { timeout: 60_000 }, async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(startTestProxy({ config: { server: { workers: 2 }, admin: { port } } })).rejects.toThrow(/cannot listen/);
      await expect.poll(() => ownWorkers(), { timeout: 15_000 }).toEqual([]);
    } finally {
      taken.close();
    }
  });

  it('workers whose primary is killed (SIGKILL: no drain order) end their sessions and exit', { timeout: 90_000 }, async () => {
    const dir = tempDir('rp-orphan-');
    writeFileSync(join(dir, 'proxy.yaml'), 'server: { host: 127.0.0.1, port: 0, workers: 2 }\nadmin: { port: 0 }\nmetering: { ledger: { path: ":memory:" } }\nupstream: { provider: simulator }\ntenants:\n  t:\n    keys: [{ key: rpk_orphan_test_0123456789 }]\n');
    const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
    const primary = spawn(process.execPath, [bin, '--config', join(dir, 'proxy.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const { port } = await whenListening(primary);
    const workers = ownWorkers(primary.pid!);
    expect(workers).toHaveLength(2);
    const c = new TestClient(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: 'Bearer rpk_orphan_test_0123456789' } });
    await c.next('session.created', 15_000);
    primary.kill('SIGKILL');
    // The session's worker ends it (the primary's embedded simulator died with it, too) and every worker exits.
    await c.closed;
    const alive = () => workers.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    await expect.poll(alive, { timeout: 20_000 }).toEqual([]);
  });
});
