import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileStart, profileStop, summarise } from './profile.js';

/**
 * Request/response over the Node IPC channel between the bench orchestrator and its child
 * processes (fake upstream, load generator, relays under test). Each child runs alone, pinned to a
 * core with `taskset`, so its own `process.cpuUsage()` is the cost being measured.
 */

interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly args: unknown;
}

type Reply = { readonly id: number; readonly ok: true; readonly result: unknown } | { readonly id: number; readonly ok: false; readonly error: string };

interface Ready {
  readonly ready: true;
  readonly info: unknown;
}

function isRequest(m: unknown): m is Request {
  return typeof m === 'object' && m !== null && typeof (m as Request).id === 'number' && typeof (m as Request).cmd === 'string';
}

function isReply(m: unknown): m is Reply {
  return typeof m === 'object' && m !== null && typeof (m as Reply).id === 'number' && typeof (m as Reply).ok === 'boolean';
}

function isReady(m: unknown): m is Ready {
  return typeof m === 'object' && m !== null && (m as Ready).ready === true;
}

export type Handler = (args: unknown) => unknown;

/** Process-level figures every child reports. */
export interface ProcStats {
  readonly cpuUserUs: number;
  readonly cpuSystemUs: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly wallMs: number;
}

export function procStats(): ProcStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    wallMs: performance.timeOrigin + performance.now(),
  };
}

function collectGarbage(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/** In a child: answers requests with `handlers` (plus built-in `stats`, `gc`, `exit`) and announces `info`. */
export function serveChild(info: unknown, handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('bench child started without an IPC channel');
  const all: Record<string, Handler> = {
    stats: () => procStats(),
    gc: () => {
      collectGarbage();
      return procStats();
    },
    profileStart: (intervalUs) => profileStart(typeof intervalUs === 'number' ? intervalUs : 200),
    /** Stops the profiler, writes the .cpuprofile to `file`, returns its summary. */
    profileStop: async (file) => {
      const profile = await profileStop();
      if (typeof file === 'string') writeFileSync(file, JSON.stringify(profile));
      return summarise(profile);
    },
    exit: () => {
      // Reply first; exiting on the next turn lets --cpu-prof write its profile.
      setTimeout(() => process.exit(0), 20);
      return null;
    },
    ...handlers,
  };
  process.on('message', (m: unknown) => {
    if (!isRequest(m)) return;
    const h = all[m.cmd];
    if (!h) {
      process.send!({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => h(m.args))
      .then(
        (result) => process.send!({ id: m.id, ok: true, result: result ?? null }),
        (err: unknown) => process.send!({ id: m.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
      );
  });
  // The orchestrator going away must not leave load running.
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true, info });
}

/** The repository root: children run from it so `--import tsx` and relative paths resolve. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface SpawnOptions {
  /** CPU list for `taskset -c` (e.g. '0'); null: no pinning. */
  readonly cpus: string | null;
  readonly nodeArgs?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Where the child's stdout/stderr go: 'inherit', 'ignore', or a file descriptor. */
  readonly stdout?: 'inherit' | 'ignore' | number;
}

let tasksetAvailable: boolean | null = null;
function hasTaskset(): boolean {
  if (tasksetAvailable === null) tasksetAvailable = existsSync('/usr/bin/taskset') || existsSync('/bin/taskset');
  return tasksetAvailable;
}

/** A child process speaking the IPC protocol above. */
export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly ready: Promise<unknown>;
  readonly exited: Promise<number | null>;
  readonly pinned: boolean;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(name: string, script: string, options: SpawnOptions) {
    this.name = name;
    const nodeArgv = ['--import', 'tsx', ...(options.nodeArgs ?? []), script, ...(options.args ?? [])];
    const pin = options.cpus !== null && hasTaskset();
    this.pinned = pin;
    const cmd = pin ? 'taskset' : process.execPath;
    const argv = pin ? ['-c', options.cpus!, process.execPath, ...nodeArgv] : nodeArgv;
    const out = options.stdout ?? 'inherit';
    this.proc = spawn(cmd, argv, { stdio: ['ignore', out, out, 'ipc'], cwd: REPO_ROOT, env: { ...process.env, ...options.env } });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
    this.ready = new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`${name} exited with ${code} before it was ready`));
      this.proc.once('exit', onExit);
      this.proc.on('message', (m: unknown) => {
        if (isReady(m)) {
          this.proc.off('exit', onExit);
          resolve(m.info);
          return;
        }
        if (!isReply(m)) return;
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        if (m.ok) p.resolve(m.result);
        else p.reject(new Error(`${name}: ${m.error}`));
      });
    });
    this.proc.once('exit', () => {
      for (const p of this.#pending.values()) p.reject(new Error(`${name} exited`));
      this.#pending.clear();
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** Sends a command; the caller states the result type it expects from that command. */
  call<T>(cmd: string, args: unknown = null, timeoutMs = 120_000): Promise<T> {
    const id = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, args });
    });
  }

  async stop(timeoutMs = 5000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.call('exit', null, timeoutMs).catch(() => undefined);
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
    if (!done) this.proc.kill('SIGKILL');
  }
}
