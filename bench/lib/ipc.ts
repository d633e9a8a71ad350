import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { heapSampleStart, heapSampleStop, heapSummary, profileStart, profileStop, summarise } from './profile.js';

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
  /** V8's committed heap of the main isolate (heap pages it holds, used or not). */
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /**
   * Pages V8's young generation holds (new space, new large objects). It is an allocation arena:
   * its size follows the allocation rate between two samples, not what the process keeps.
   */
  readonly youngPhysical: number;
  readonly wallMs: number;
}

function youngPhysical(): number {
  let n = 0;
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space' || s.space_name === 'new_large_object_space') n += s.physical_space_size;
  return n;
}

export function procStats(): ProcStats {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    youngPhysical: youngPhysical(),
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

/** Event-loop stalls and GC pauses of a child over one window (where tail latency comes from). */
export interface LoopStats {
  readonly delayP50Ms: number;
  readonly delayP99Ms: number;
  readonly delayMaxMs: number;
  readonly gcCount: number;
  readonly gcTotalMs: number;
  readonly gcMaxMs: number;
  /** Pauses by kind (scavenge, mark-compact, incremental, weak callbacks). */
  readonly gcByKind: Readonly<Record<string, { count: number; totalMs: number; maxMs: number }>>;
}

const GC_KINDS: Record<number, string> = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental', 8: 'weak-callbacks' };

/** The loop monitor's timer interval. */
const LOOP_RESOLUTION_MS = 1;

/**
 * Event-loop stalls over a measurement window. Node's histogram records the interval between its
 * timer's callbacks, the resolution included (an idle loop reads ~10 ms at a 10 ms resolution), so
 * what is reported is the lateness: interval − resolution, the wait an event arriving when the timer
 * was due would have had. At a 1 ms resolution the longest stall is within 1 ms of the longest
 * lateness. The timer runs only between a window's start and its end (`loop` with `true`, then
 * `false`): a 1 ms timer would otherwise wake an idle relay 1,000 times a second.
 */
function loopMonitor(): (start: boolean) => LoopStats | null {
  const delay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  let gc: { kind: string; ms: number }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      // Node puts the GC kind in `detail` (not in the DOM PerformanceEntry type).
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      gc.push({ kind: GC_KINDS[kind] ?? String(kind), ms: e.duration });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const lateness = (ns: number) => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);
  return (start) => {
    if (start) {
      delay.reset();
      delay.enable();
      gc = [];
      return null;
    }
    delay.disable();
    const byKind: Record<string, { count: number; totalMs: number; maxMs: number }> = {};
    for (const g of gc) {
      const k = (byKind[g.kind] ??= { count: 0, totalMs: 0, maxMs: 0 });
      k.count++;
      k.totalMs += g.ms;
      k.maxMs = Math.max(k.maxMs, g.ms);
    }
    // The next window's start clears both.
    return {
      delayP50Ms: lateness(delay.percentile(50)),
      delayP99Ms: lateness(delay.percentile(99)),
      delayMaxMs: lateness(delay.max),
      gcCount: gc.length,
      gcTotalMs: gc.reduce((a, g) => a + g.ms, 0),
      gcMaxMs: gc.reduce((a, g) => Math.max(a, g.ms), 0),
      gcByKind: byKind,
    };
  };
}

/** In a child: answers requests with `handlers` (plus built-in `stats`, `gc`, `loop`, `exit`) and announces `info`. */
export function serveChild(info: unknown, handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('bench child started without an IPC channel');
  // What the harness itself runs stays out of the relay's RSS at start: the loop monitor starts
  // with the first window (its first call); profile.ts loads node:inspector with the first profile.
  let loop: ((start: boolean) => LoopStats | null) | null = null;
  const all: Record<string, Handler> = {
    /** `loop` with `true` starts a window; with `false` (or nothing) ends it and returns its stats. */
    loop: (start) => (loop ??= loopMonitor())(start === true),
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
    heapSampleStart: (a) => {
      const o = (a ?? {}) as { interval?: number; promotedOnly?: boolean };
      return heapSampleStart(o.interval ?? 32 * 1024, o.promotedOnly === true);
    },
    heapSampleStop: () => heapSampleStop(),
    heapSummary: () => heapSummary(),
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
  /** The script is compiled JavaScript (bench/lib/compiled.ts): run it on plain node, without tsx. */
  readonly compiled?: boolean;
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
const LOCK_FILE = '/tmp/realtime-proxy-bench.lock';
let lockHeld: Promise<void> | null = null;

function lockHolder(): { pid: number; what: string } | null {
  try {
    const [pid, what] = readFileSync(LOCK_FILE, 'utf8').split('\n');
    return { pid: Number(pid), what: what ?? '' };
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A machine-wide lock for benchmark runs: pinned benchmarks that overlap measure each other (the
 * engineers' module benches and `npm run bench` all use these children), so the first pinned child
 * of a process takes the lock and keeps it until the process exits; others wait. A lock left by a
 * dead process is taken over. Unpinned children (tests) never wait.
 */
export function benchLock(): Promise<void> {
  lockHeld ??= (async () => {
    let announced = false;
    for (;;) {
      try {
        const fd = openSync(LOCK_FILE, 'wx');
        writeSync(fd, `${process.pid}\n${process.argv.slice(1).join(' ')}\n`);
        closeSync(fd);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = lockHolder();
        if (holder?.pid === process.pid) break;
        if (!holder || !alive(holder.pid)) {
          try {
            unlinkSync(LOCK_FILE);
          } catch {
            // Someone else removed it first.
          }
          continue;
        }
        if (!announced) {
          console.error(`bench: waiting for ${LOCK_FILE}, held by pid ${holder.pid} (${holder.what.slice(0, 120)})`);
          announced = true;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    process.once('exit', () => {
      if (lockHolder()?.pid === process.pid) {
        try {
          unlinkSync(LOCK_FILE);
        } catch {
          // Already gone.
        }
      }
    });
  })();
  return lockHeld;
}

/** A child process speaking the IPC protocol above. Pinned children first take the bench lock. */
export class Child {
  readonly name: string;
  readonly ready: Promise<unknown>;
  readonly exited: Promise<number | null>;
  readonly pinned: boolean;
  #proc: ChildProcess | null = null;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(name: string, script: string, options: SpawnOptions) {
    this.name = name;
    const pin = options.cpus !== null && hasTaskset();
    this.pinned = pin;
    let onSpawn: (p: ChildProcess) => void = () => undefined;
    const spawned = new Promise<ChildProcess>((resolve) => (onSpawn = resolve));
    this.exited = spawned.then((proc) => new Promise((resolve) => proc.once('exit', (code) => resolve(code))));
    this.ready = (pin ? benchLock() : Promise.resolve()).then(() => {
      const nodeArgv = [...(options.compiled ? [] : ['--import', 'tsx']), ...(options.nodeArgs ?? []), script, ...(options.args ?? [])];
      const cmd = pin ? 'taskset' : process.execPath;
      const argv = pin ? ['-c', options.cpus!, process.execPath, ...nodeArgv] : nodeArgv;
      const out = options.stdout ?? 'inherit';
      const proc = spawn(cmd, argv, { stdio: ['ignore', out, out, 'ipc'], cwd: REPO_ROOT, env: { ...process.env, ...options.env } });
      this.#proc = proc;
      onSpawn(proc);
      proc.once('exit', () => {
        for (const p of this.#pending.values()) p.reject(new Error(`${name} exited`));
        this.#pending.clear();
      });
      return new Promise<unknown>((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`${name} exited with ${code} before it was ready`));
        proc.once('exit', onExit);
        proc.on('message', (m: unknown) => {
          if (isReady(m)) {
            proc.off('exit', onExit);
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
    });
  }

  /** The process, once spawned (after the bench lock for pinned children). */
  get proc(): ChildProcess {
    if (!this.#proc) throw new Error(`${this.name} is not spawned yet: await ready first`);
    return this.#proc;
  }

  get pid(): number {
    return this.#proc?.pid ?? -1;
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
    const proc = this.#proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    this.call('exit', null, timeoutMs).catch(() => undefined);
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs))]);
    if (!done) proc.kill('SIGKILL');
  }
}
