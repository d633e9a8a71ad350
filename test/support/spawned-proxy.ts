import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { TestProxy } from './harness.js';
import { tempDir } from './temp-dir.js';

/** What a proxy started as a process printed in its "realtime proxy listening" record. */
export interface Listening {
  readonly port: number;
  /** The TLS listener's port, null without one. */
  readonly tlsPort: number | null;
  /** The admin listener's port (`admin: "host:port"`), null without one. */
  readonly adminPort: number | null;
  /** Everything the process wrote to stdout and stderr so far (keeps growing). */
  output(): string;
  /**
   * Resolves with the output once it matches `pattern`; rejects with what was written after
   * `timeoutMs`. A log line written before an event the client saw may still be in the pipe.
   */
  outputMatching(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

/**
 * Resolves with the listening record of a proxy started as a child process (the CLI logs pino JSON
 * lines), rejects when the process exits first. Both streams are collected for `output()`.
 */
export function whenListening(child: ChildProcess): Promise<Listening> {
  let out = '';
  let pending = '';
  const waiters = new Set<() => void>();
  const outputMatching = (pattern: RegExp, timeoutMs = 5_000): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const check = (): void => {
        if (!pattern.test(out)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(out);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no output matched ${pattern} within ${timeoutMs} ms: ${out}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return new Promise<Listening>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      const text = d.toString();
      out += text;
      for (const check of [...waiters]) check();
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.includes('realtime proxy listening')) continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (record['msg'] !== 'realtime proxy listening' || typeof record['port'] !== 'number') continue;
        const admin = typeof record['admin'] === 'string' ? /:(\d+)$/.exec(record['admin']) : null;
        resolve({
          port: record['port'],
          tlsPort: typeof record['tlsPort'] === 'number' ? record['tlsPort'] : null,
          adminPort: admin ? Number(admin[1]) : null,
          output: () => out,
          outputMatching,
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`proxy exited (${code ?? signal}) before listening: ${out}`)));
  });
}

/**
 * The proxy's CLI as a child process on `configFile`, with the test's environment minus
 * OPENAI_API_KEY (it relays where its config says); `exited` resolves with the signal that ended it.
 */
export function spawnProxy(configFile: string): { child: ChildProcess; exited: Promise<NodeJS.Signals | null> } {
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
  const child = spawn(process.execPath, [bin, '--config', configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  return { child, exited };
}

/**
 * A list to push the test's child processes to: after each test, every one still running is killed
 * (SIGKILL) and waited for, so a failed test leaves no proxy behind. Call at a test file's top level.
 */
export function killedAfterEach(): ChildProcess[] {
  const running: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of running.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
  });
  return running;
}

/**
 * A list to push process-group ids to (a spawnSimulatorProxyGroup child's pid): after each test every
 * process of each group (the primary and any relay worker left behind) is sent SIGKILL. Call at a
 * test file's top level.
 */
export function groupsKilledAfterEach(): number[] {
  const groups: number[] = [];
  afterEach(() => {
    for (const pid of groups.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
  return groups;
}

/**
 * Lists for a test that stops relay workers (SIGSTOP, a hung worker): after each test every pid in
 * `stopped` is sent SIGCONT (a stopped process ignores the SIGTERM of a stop), then every proxy in
 * `proxies` is stopped. Call at a test file's top level.
 */
export function stoppedWorkersResumedAfterEach(): { readonly proxies: TestProxy[]; readonly stopped: number[] } {
  const proxies: TestProxy[] = [];
  const stopped: number[] = [];
  afterEach(async () => {
    for (const pid of stopped.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    await Promise.all(proxies.splice(0).map((p) => p.stop()));
  });
  return { proxies, stopped };
}

/**
 * The CLI (`bin/realtime-proxy.mjs`) started on loopback ports 0 with the simulator upstream, an
 * in-memory ledger and one tenant `acme` holding `key`, in a process group of its own (as a shell
 * gives a job: a signal to `-pid` reaches the primary and its relay workers). OPENAI_API_KEY unset.
 */
export function spawnSimulatorProxyGroup(options: { readonly workers: number; readonly shutdownDrainSec: number; readonly key: string }): ChildProcess {
  const file = join(tempDir('rp-ops-group-'), 'proxy.yaml');
  writeFileSync(
    file,
    [
      `server: { host: 127.0.0.1, port: 0, workers: ${options.workers}, shutdownDrainSec: ${options.shutdownDrainSec} }`,
      'admin: { host: 127.0.0.1, port: 0 }',
      'upstream: { provider: simulator }',
      'metering: { ledger: { kind: sqlite, path: ":memory:" } }',
      'policies: { watch: false }',
      'logging: { level: info }',
      `tenants: { acme: { keys: [{ key: ${options.key} }] } }`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
  return spawn(process.execPath, [bin, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
}
