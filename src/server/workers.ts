import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer as createNetServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { HttpRoute, ProxyModule } from '../app/module.js';
import type { UpstreamKind } from '../config/compile.js';
import type { Config } from '../config/schema.js';
import type { Ledger } from '../metering/ledger.js';
import { isTenantHoldMessage, tenantHoldOf, type TenantHold } from '../metering/hold-link.js';
import { isLedgerCall, LedgerHost } from '../metering/remote-ledger.js';
import { PrometheusListener } from '../telemetry/prometheus-listener.js';
import { CumulativeMerge } from '../telemetry/prometheus-merge.js';
import { resolveSettings } from '../telemetry/settings.js';
import { ensurePortFree } from './http.js';
import { RELAY_NODE_FLAGS } from './node-flags.js';
import { isMessage, type FromWorker, type ToWorker, type WorkerStats } from './worker-protocol.js';

/*
 * All cores: `server.workers: N` runs N relay workers (child processes), each with its own uWS
 * client listener on the same port (SO_REUSEPORT: the kernel spreads connections over them). A
 * session lives in one worker from upgrade to close. The primary (this module, in the process that
 * called startProxy) keeps what must be one: the SQLite ledger (workers reach it over IPC, so caps
 * stay exact), the admin listener, one merged /metrics, readiness and the drain.
 *
 * Processes rather than worker_threads: this uWS build aborts the whole process when a thread that
 * still holds uWS sockets is terminated or the process exits under it, and a crashed worker
 * process takes only its own sessions down (the primary starts a new one).
 */

export interface WorkerPoolOptions {
  readonly count: number;
  /** The compiled config (the embedded simulator's URL already in upstream). */
  readonly config: Config;
  readonly upstream: UpstreamKind;
  readonly baseDir: string;
  readonly log: Logger;
  /** Where workers' log lines go (whole lines): the primary's log destination. */
  readonly logSink: { write(line: string): unknown };
  /** The workers' environment (OTEL_* and the rest, as a single-process proxy reads them). */
  readonly env: NodeJS.ProcessEnv;
  /** The primary's ledger, served to the workers (SQLite or Redis); its `holds` reach the other instances. */
  readonly ledger: Ledger | null;
  readonly wallOffsetMs: number;
}

interface WorkerSlot {
  readonly index: number;
  child: ChildProcess | null;
  host: LedgerHost | null;
  listening: boolean;
  restarts: number;
  /** The ping waiting for its pong (sent at liveness tick `tick`, at `at` ms), or null. */
  ping: { readonly id: number; readonly tick: number; readonly at: number } | null;
  /** A metrics request timed out since the last pong. */
  missedMetrics: boolean;
  /** "not answering" was logged for the current silence. */
  silentLogged: boolean;
  /** The running process's sessions started at its last answered scrape (stands in while it does not answer). */
  started: { readonly child: ChildProcess; readonly value: number } | null;
  /** Why its modules were not ready at its last pong (e.g. its calls store down), or null. */
  notReady: string | null;
  /** The sessions it held at its last pong (0 while it is not running). */
  sessions: number;
}

/** `total` split over `count` workers exactly: the floor each, the remainder one each to the first workers (a share may be 0). */
export function shareOf(total: number, count: number, index: number): number {
  return Math.floor(total / count) + (index < total % count ? 1 : 0);
}

/** A bound for boot, listen and metric answers of a worker. */
const BOOT_TIMEOUT_MS = 60_000;
const METRICS_TIMEOUT_MS = 5000;
/** What a worker answers a question of the primary's (#ask) with. */
type WorkerAnswer = Extract<FromWorker, { readonly t: 'metrics-reply' | 'sessions-reply' }>;

/** A bound for a worker's answer to "how many sessions now" (answered at once from its event loop). */
const SESSIONS_TIMEOUT_MS = 1000;
/** Beyond the drain: a worker that has not exited by then is killed. */
const EXIT_GRACE_MS = 10_000;
const RESTART_DELAY_MS = 1000;
/**
 * Liveness: a tick each PING_INTERVAL_MS pings every listening worker over IPC (one ping at a time;
 * the worker answers from its event loop at once). A ping not answered by the UNRESPONSIVE_TICKS-th
 * tick after it (~3 s), or a metrics request that timed out (5 s) with no pong since, makes the worker
 * "not answering": /readyz 503 naming it (a hung worker keeps its SO_REUSEPORT socket and the kernel
 * still hands it ~1/N of the new connections, which nobody answers: the load balancer must take the
 * instance out), rtproxy_worker_up 0, and it is not asked for metrics. A ping not answered by the
 * HUNG_TICKS-th tick (~30 s) gets the worker killed (SIGKILL: a stopped or stuck process acts on
 * nothing else) and replaced like a worker that died.
 *
 * Counted in ticks, not wall time: ticks run on the primary's event loop, so a primary that was
 * itself stalled (SIGSTOP, a long synchronous call) blames no worker for the time it did not run
 * (after a stall one tick fires, then the pongs queued meanwhile are read). 3 s is thousands of times
 * a healthy answer (well under a millisecond; a major GC pause, tens of milliseconds) yet within one
 * readiness-probe period. 30 s lets a worker that is only slow (a huge synchronous policy compile, a
 * machine swapping) recover before its sessions are ended, and bounds how long one hung worker keeps
 * the whole instance out of the load balancer.
 */
const PING_INTERVAL_MS = 1000;
const UNRESPONSIVE_TICKS = 3;
const HUNG_TICKS = 30;

/** The worker entry next to this module: TypeScript sources run through tsx, dist/ as plain JS. */
function workerEntry(): { file: string; execArgv: string[] } {
  const self = new URL(import.meta.url);
  if (self.pathname.endsWith('.ts')) {
    // tsx resolved from here, not from the working directory (the CLI may run anywhere).
    const tsx = pathToFileURL(createRequire(self).resolve('tsx')).href;
    return { file: new URL('./worker.ts', self).pathname, execArgv: [...RELAY_NODE_FLAGS, '--import', tsx] };
  }
  return { file: new URL('./worker.js', self).pathname, execArgv: [...RELAY_NODE_FLAGS] };
}

/** A free port on `host`, for the workers to share (SO_REUSEPORT is only set for a non-zero port). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function once<T extends FromWorker['t']>(child: ChildProcess, type: T | readonly T[], timeoutMs: number): Promise<Extract<FromWorker, { t: T }>> {
  const types: readonly string[] = Array.isArray(type) ? type : [type];
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: unknown) => {
      if (!isMessage<FromWorker>(m) || !types.includes(m.t)) return;
      cleanup();
      resolve(m as Extract<FromWorker, { t: T }>);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`relay worker exited (code ${code}) before ${types.join('/')}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`relay worker did not answer ${types.join('/')} within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export class WorkerPool {
  readonly #o: WorkerPoolOptions;
  readonly #slots: WorkerSlot[];
  readonly #workerConfig: Config;
  readonly #remoteLedger: boolean;
  #port = 0;
  #tlsPort: number | null = null;
  #stopping = false;
  #askSeq = 0;
  /** Questions asked a worker (#ask) and not answered yet, by id. */
  readonly #answerWaits = new Map<number, (answer: WorkerAnswer) => void>();
  #metricsServer: PrometheusListener | null = null;
  #pingSeq = 0;
  /** Liveness ticks so far. */
  #tick = 0;
  #liveness: NodeJS.Timeout | null = null;
  /** The merged /metrics: counters and histograms of workers that are gone or silent carry over. */
  readonly #merge = new CumulativeMerge<ChildProcess>();
  /** Stops passing the holds of other instances (Redis ledger) to the workers. */
  #unsubscribeHolds: (() => void) | null = null;

  private constructor(options: WorkerPoolOptions) {
    this.#o = options;
    this.#slots = Array.from({ length: options.count }, (_, index) => ({ index, child: null, host: null, listening: false, restarts: 0, ping: null, missedMetrics: false, silentLogged: false, started: null, notReady: null, sessions: 0 }));
    const c = options.config;
    // The workers use the primary's ledger, SQLite or Redis alike: the primary then knows what a worker
    // holds and bills a dead worker's running responses (LedgerHost.workerGone). Until 2026-12-06 workers
    // reserved in Redis themselves, and a killed worker's reservations expired unbilled after
    // reservationTtlSec (test/server/adversary-workers-kill.test.ts, its Redis case).
    this.#remoteLedger = c.metering.enabled && options.ledger !== null;
    // Each worker gets its share of the process-wide limits (#configFor), so the totals stay what is configured.
    this.#workerConfig = {
      ...c,
      // The admin API and /metrics are the primary's.
      admin: { ...c.admin, port: null },
      telemetry: { ...c.telemetry, metrics: { ...c.telemetry.metrics, prometheus: { ...c.telemetry.metrics.prometheus, port: null } } },
    };
  }

  /**
   * Worker `index`'s config: its exact share of server.maxSessions and server.memoryBudgetBytes (the
   * shares add up to the configured totals; a worker whose share is 0 refuses every upgrade with 503
   * overloaded, the answer of a worker at capacity).
   */
  #configFor(index: number): Config {
    const s = this.#workerConfig.server;
    const n = this.#slots.length;
    return { ...this.#workerConfig, server: { ...s, maxSessions: shareOf(s.maxSessions, n, index), memoryBudgetBytes: shareOf(s.memoryBudgetBytes, n, index) } };
  }

  /** Boots every worker, then has them listen on one port; throws (after stopping them) when any fails. */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    try {
      await Promise.all(pool.#slots.map((s) => pool.#boot(s)));
      await pool.#listenAll();
      await pool.#serveSeparateMetrics();
      pool.#liveness = setInterval(() => pool.#checkLiveness(), PING_INTERVAL_MS);
      pool.#liveness.unref();
      pool.#unsubscribeHolds = options.ledger?.holds?.subscribe((hold) => pool.#passHold(hold, null)) ?? null;
    } catch (err) {
      await pool.shutdown(0);
      throw err;
    }
    return pool;
  }

  get port(): number {
    return this.#port;
  }

  get tlsPort(): number | null {
    return this.#tlsPort;
  }

  get count(): number {
    return this.#slots.length;
  }

  /** Each worker's process id (null while it is being restarted). */
  get pids(): Array<number | null> {
    return this.#slots.map((s) => s.child?.pid ?? null);
  }

  async #boot(slot: WorkerSlot): Promise<void> {
    const { file, execArgv } = workerEntry();
    const env = { ...this.#o.env };
    // The primary serves the merged /metrics; a worker must not open a Prometheus listener of its own.
    delete env.OTEL_EXPORTER_PROMETHEUS_PORT;
    const child = fork(file, [], { execArgv, env, serialization: 'advanced', stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    slot.child = child;
    slot.listening = false;
    slot.ping = null;
    slot.missedMetrics = false;
    slot.silentLogged = false;
    slot.notReady = null;
    slot.sessions = 0;
    if (child.stdout) {
      // Workers log to stdout; their lines join the primary's log output whole.
      const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
      lines.on('line', (line) => this.#o.logSink.write(`${line}\n`));
    }
    const host = this.#remoteLedger && this.#o.ledger ? new LedgerHost(this.#o.ledger) : null;
    slot.host = host;
    child.on('message', (m: unknown) => this.#onMessage(slot, child, m));
    child.on('error', (err) => this.#o.log.error({ err, worker: slot.index }, 'relay worker error'));
    child.once('exit', (code, signal) => this.#onExit(slot, child, code, signal));
    const built = once(child, ['built', 'failed'], BOOT_TIMEOUT_MS);
    child.send({
      t: 'init',
      index: slot.index,
      config: this.#configFor(slot.index),
      upstream: this.#o.upstream,
      baseDir: this.#o.baseDir,
      logLevel: this.#o.log.level,
      remoteLedger: host !== null,
      wallOffsetMs: this.#o.wallOffsetMs,
    } satisfies ToWorker);
    const r = await built;
    if (r.t === 'failed') throw new Error(`relay worker ${slot.index}: ${r.message}`);
  }

  #onMessage(slot: WorkerSlot, child: ChildProcess, m: unknown): void {
    if (isLedgerCall(m)) {
      // Only the slot's current process reaches its ledger host: a late call from a process already
      // gone (its reservations billed by workerGone) must not act on its replacement's host.
      if (slot.child !== child) return;
      slot.host?.handle(m, (reply) => {
        if (child.connected) child.send(reply satisfies ToWorker);
      });
      return;
    }
    if (isTenantHoldMessage(m)) {
      const hold = tenantHoldOf(m);
      if (hold) this.#passHold(hold, slot);
      return;
    }
    if (isMessage<FromWorker>(m) && m.t === 'pong') {
      if (slot.child !== child || m.id !== slot.ping?.id) return;
      if (slot.silentLogged) this.#o.log.warn({ worker: slot.index }, 'relay worker answering again');
      slot.ping = null;
      slot.missedMetrics = false;
      slot.silentLogged = false;
      slot.notReady = m.notReady ?? null;
      slot.sessions = m.sessions ?? 0;
      return;
    }
    if (isMessage<FromWorker>(m) && (m.t === 'sessions-reply' || m.t === 'metrics-reply')) {
      const wait = this.#answerWaits.get(m.id);
      this.#answerWaits.delete(m.id);
      wait?.(m);
    }
  }

  /**
   * A tenant found over a cap in worker `from` (or, null, in another instance on the Redis ledger):
   * one message to each other running worker, whose sessions of the tenant hold their input audio,
   * and, from a worker, one to the other instances. Only the workers running now get it: a worker
   * that is gone needs none, and one starting has sessions that find the cap themselves.
   */
  #passHold(hold: TenantHold, from: WorkerSlot | null): void {
    const message = { t: 'tenant-hold', tenant: hold.tenant, hit: hold.hit } satisfies ToWorker;
    for (const slot of this.#slots) {
      const child = slot.child;
      if (slot === from || !child?.connected) continue;
      try {
        child.send(message);
      } catch {
        // The channel closed under us: the worker is exiting (its exit handler starts a new one).
      }
    }
    if (from !== null) this.#o.ledger?.holds?.publish(hold);
  }

  #onExit(slot: WorkerSlot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = null;
    // Its counters and histograms stay in /metrics (as last scraped): a sum that drops reads as a reset.
    this.#merge.retire(child);
    slot.started = null;
    slot.ping = null;
    slot.listening = false;
    slot.notReady = null;
    slot.sessions = 0;
    // Its responses and sessions are gone with it: nothing it reserved may stay held.
    // Its slots are released; what it still had reserved is billed at the reservation (estimated,
    // status worker_lost): the upstream bills a response it ran, and the primary cannot tell which ran.
    const lost = slot.host?.workerGone();
    if (lost && lost.billed + lost.failed > 0) this.#o.log.warn({ worker: slot.index, ...lost }, 'relay worker died holding reservations: billed at their reservations (estimated)');
    slot.host = null;
    if (this.#stopping || this.#port === 0) return;
    slot.restarts++;
    this.#o.log.error({ worker: slot.index, code, signal, restarts: slot.restarts }, 'relay worker exited; starting a new one');
    const timer = setTimeout(() => {
      if (this.#stopping) return;
      this.#boot(slot)
        .then(() => this.#listen(slot, this.#port, this.#tlsPort))
        .catch((err: unknown) => {
          this.#o.log.error({ err, worker: slot.index }, 'relay worker restart failed');
          // A worker that booted but could not listen would hold its slot (and /readyz at 503) for
          // good: killed, its exit starts another attempt.
          if (!this.#stopping) slot.child?.kill('SIGKILL');
        });
    }, RESTART_DELAY_MS);
    timer.unref();
  }

  async #listen(slot: WorkerSlot, port: number, tlsPort: number | null): Promise<{ port: number; tlsPort: number | null }> {
    const child = slot.child;
    if (!child) throw new Error(`relay worker ${slot.index} is not running`);
    const answer = once(child, ['listening', 'listen-failed'], BOOT_TIMEOUT_MS);
    child.send({ t: 'listen', port, tlsPort } satisfies ToWorker);
    const r = await answer;
    if (r.t === 'listen-failed') throw new Error(r.message);
    slot.listening = true;
    slot.ping = null;
    slot.missedMetrics = false;
    return { port: r.port, tlsPort: r.tlsPort };
  }

  /**
   * One port for all: a configured port as is; port 0 becomes a free port picked now, after the
   * workers have booted (uSockets sets SO_REUSEPORT only on a non-zero port).
   */
  async #listenAll(): Promise<void> {
    const s = this.#workerConfig.server;
    const [first, ...rest] = this.#slots;
    let chosen: { port: number; tlsPort: number | null } | null = null;
    // A configured port is checked once, before the first worker binds it (the workers share it).
    await ensurePortFree(s.host, s.port);
    if (s.tls) await ensurePortFree(s.host, s.tls.port);
    for (let attempt = 0; chosen === null; attempt++) {
      const port = s.port === 0 ? await freePort(s.host) : s.port;
      const tlsPort = s.tls ? (s.tls.port === 0 ? await freePort(s.host) : s.tls.port) : null;
      try {
        chosen = await this.#listen(first!, port, tlsPort);
      } catch (err) {
        // Someone took the picked port in between: pick again (a configured port fails at once).
        if (attempt >= 4 || (s.port !== 0 && (s.tls === null || s.tls.port !== 0))) throw err;
      }
    }
    this.#port = chosen.port;
    this.#tlsPort = chosen.tlsPort;
    await Promise.all(rest.map((slot) => this.#listen(slot, chosen.port, chosen.tlsPort)));
  }

  /**
   * With `telemetry.metrics.prometheus.port` set, the merged exposition is served there
   * (PrometheusListener, as in one process: loopback Host names only when bound to loopback).
   */
  async #serveSeparateMetrics(): Promise<void> {
    const prom = this.#prometheus();
    if (!prom || prom.port === null) return;
    this.#metricsServer = await PrometheusListener.start({ host: prom.host, port: prom.port, path: prom.path }, () => this.metricsText());
    this.#o.log.info({ host: prom.host, port: this.#metricsServer.port, path: prom.path }, 'prometheus listening');
  }

  #prometheus(): { readonly port: number | null; readonly host: string; readonly path: string } | null {
    const settings = resolveSettings(this.#o.config.telemetry, this.#o.env);
    return settings.enabled && settings.metrics.prometheus.enabled ? settings.metrics.prometheus : null;
  }

  /**
   * The listening workers other than `except` that do not answer, one phrase each. A hung worker
   * still takes about 1/N of the new connections, so every worker's client-port /readyz says so too
   * (sent with each ping): until 2026-12-07 only the admin /readyz did, which no load balancer reaches
   * (test/ops/redteam-20-hung-worker-probe.test.ts).
   */
  #notAnswering(except: WorkerSlot | null): string[] {
    const now = performance.now();
    return this.#slots
      .filter((s) => s !== except && this.#silent(s))
      .map((s) => `relay worker ${s.index} not answering (${s.ping ? `pinged ${Math.floor((now - s.ping.at) / 1000)} s ago` : 'missed its metrics answer'})`);
  }

  /** A listening worker that does not answer: a ping unanswered for UNRESPONSIVE_TICKS ticks, or a missed metrics answer. */
  #silent(slot: WorkerSlot): boolean {
    return slot.listening && (slot.missedMetrics || (slot.ping !== null && this.#tick - slot.ping.tick >= UNRESPONSIVE_TICKS));
  }

  /** Each tick: a ping to every listening worker that answered the last one; the bounds (see PING_INTERVAL_MS). */
  #checkLiveness(): void {
    if (this.#stopping) return;
    this.#tick++;
    for (const slot of this.#slots) {
      const child = slot.child;
      if (!child || !slot.listening) continue;
      if (slot.ping === null) {
        slot.ping = { id: ++this.#pingSeq, tick: this.#tick, at: performance.now() };
        try {
          if (child.connected) child.send({ t: 'ping', id: slot.ping.id, ledger: slot.host?.readiness() ?? null, peers: this.#notAnswering(slot).join('; ') || null } satisfies ToWorker);
        } catch {
          // A closed channel: the worker is exiting (its exit handler starts a new one), or it stays silent.
        }
      }
      const silentMs = Math.round(performance.now() - slot.ping.at);
      if (this.#tick - slot.ping.tick >= HUNG_TICKS) {
        this.#o.log.error({ worker: slot.index, pid: child.pid, silentMs }, 'relay worker hung: killing it; a new one takes its place');
        // Not listening from now on: no second kill, /readyz says "not running" until the new one listens.
        slot.listening = false;
        child.kill('SIGKILL');
      } else if (this.#silent(slot) && !slot.silentLogged) {
        slot.silentLogged = true;
        this.#o.log.error({ worker: slot.index, pid: child.pid, silentMs, missedMetrics: slot.missedMetrics }, 'relay worker not answering: /readyz is 503 until it does');
      }
    }
  }

  /**
   * Why the relay is not ready, or null: draining, a worker not running, one not answering, or one
   * whose modules are not ready (what its own /readyz on the client port says, e.g. its calls store
   * down: until 2026-12-07 the admin /readyz left that out and said ready).
   */
  readiness(): string | null {
    if (this.#stopping) return 'draining';
    const down = this.#slots.filter((s) => !s.listening).map((s) => s.index);
    // Workers with the same reason are named together (every worker's store is down at once).
    const byReason = new Map<string, number[]>();
    for (const s of this.#slots) {
      if (!s.listening || this.#silent(s) || s.notReady === null) continue;
      byReason.set(s.notReady, [...(byReason.get(s.notReady) ?? []), s.index]);
    }
    const reasons = [
      ...(down.length > 0 ? [`relay worker ${down.join(', ')} not running`] : []),
      ...this.#notAnswering(null),
      ...[...byReason].map(([reason, workers]) => `relay worker ${workers.join(', ')}: ${reason}`),
    ];
    return reasons.length > 0 ? reasons.join('; ') : null;
  }

  /** Each worker's sessions (null: it did not answer). */
  async stats(): Promise<Array<({ text: string } & WorkerStats) | null>> {
    return (await this.#scrape()).map((s) => s?.reply ?? null);
  }

  /**
   * Asks every listening worker for its exposition and sessions, each answer bounded by
   * METRICS_TIMEOUT_MS (null: no answer; a worker already known silent is not asked). A worker that
   * misses the bound is "not answering" until its next pong.
   */
  async #scrape(): Promise<Array<{ readonly child: ChildProcess; readonly reply: { text: string } & WorkerStats } | null>> {
    return Promise.all(
      this.#slots.map(async (slot) => {
        const asked = await this.#ask(slot, (id) => ({ t: 'metrics', id }), METRICS_TIMEOUT_MS, () => (slot.missedMetrics = true));
        return asked?.answer.t === 'metrics-reply' ? { child: asked.child, reply: asked.answer } : null;
      }),
    );
  }

  /**
   * Asks one listening worker a question (`question`, with a fresh id) and waits at most `timeoutMs`
   * for its answer: null when the worker is not running, not listening or known silent (not asked),
   * when sending fails, or when the bound passed first (then `missed`, if that worker still runs).
   */
  #ask(slot: WorkerSlot, question: (id: number) => ToWorker, timeoutMs: number, missed?: () => void): Promise<{ readonly child: ChildProcess; readonly answer: WorkerAnswer } | null> {
    return new Promise((resolve) => {
      const child = slot.child;
      if (!child?.connected || !slot.listening || this.#silent(slot)) return resolve(null);
      const id = ++this.#askSeq;
      const timer = setTimeout(() => {
        this.#answerWaits.delete(id);
        if (slot.child === child) missed?.();
        resolve(null);
      }, timeoutMs);
      this.#answerWaits.set(id, (answer) => {
        clearTimeout(timer);
        resolve({ child, answer });
      });
      try {
        child.send(question(id));
      } catch {
        clearTimeout(timer);
        this.#answerWaits.delete(id);
        resolve(null);
      }
    });
  }

  /**
   * The workers' expositions merged into one, plus per-worker series (which worker serves how many
   * sessions). Counters and histograms never decrease: a worker that does not answer contributes its
   * last scraped values, and a worker process that is gone keeps its last values in the sum (its
   * replacement counts from 0 on top); gauges come only from workers that answered.
   */
  async metricsText(): Promise<string> {
    const scraped = await this.#scrape();
    const answers = new Map<ChildProcess, string>();
    const up = this.#slots.map((slot, i) => {
      const s = scraped[i];
      // An answer from a process that has exited since is not counted live: its values are retired.
      if (!s || s.child !== slot.child || this.#silent(slot)) return null;
      answers.set(s.child, s.reply.text);
      slot.started = { child: s.child, value: s.reply.sessionsStarted };
      return s.reply;
    });
    const started = this.#slots.map((slot, i) => up[i]?.sessionsStarted ?? (slot.started && slot.started.child === slot.child ? slot.started.value : null));
    const perWorker = [
      '# HELP rtproxy_worker_up Relay worker running and answering (1) or not (0: not running, not answering its pings, or missed this metrics answer).',
      '# TYPE rtproxy_worker_up gauge',
      ...up.map((s, i) => `rtproxy_worker_up{worker="${i}"} ${s ? 1 : 0}`),
      '# HELP rtproxy_worker_sessions Sessions open now, by relay worker.',
      '# TYPE rtproxy_worker_sessions gauge',
      ...up.flatMap((s, i) => (s ? [`rtproxy_worker_sessions{worker="${i}"} ${s.sessions}`] : [])),
      '# HELP rtproxy_worker_sessions_started_total Sessions started since the worker (process) started, by relay worker.',
      '# TYPE rtproxy_worker_sessions_started_total counter',
      ...started.flatMap((n, i) => (n === null ? [] : [`rtproxy_worker_sessions_started_total{worker="${i}"} ${n}`])),
      '',
    ].join('\n');
    return this.#merge.merge(answers, [perWorker]);
  }

  /**
   * Sessions open in all workers as of their last pongs (at most a second old), without waiting: the
   * admin /readyz and the second signal's log line. Until 2026-12-07 the /readyz said the primary's own count, 0.
   */
  get openSessions(): number {
    return this.#slots.reduce((n, s) => n + s.sessions, 0);
  }

  /**
   * Sessions open in all workers now, each worker asked (it answers at once); one that does not answer
   * within SESSIONS_TIMEOUT_MS, or is not running or known silent, counts as of its last pong. The
   * `shutting down` log line: as of the last pongs it left out the sessions opened in the second before
   * the signal, `sessions: 0` with sessions open (until 2026-12-07,
   * test/ops/redteam-21-shutdown-line-sessions.test.ts).
   */
  async sessionsNow(): Promise<number> {
    const counts = await Promise.all(
      this.#slots.map(async (slot) => {
        const asked = await this.#ask(slot, (id) => ({ t: 'sessions', id }), SESSIONS_TIMEOUT_MS);
        return asked?.answer.t === 'sessions-reply' ? asked.answer.sessions : slot.sessions;
      }),
    );
    return counts.reduce((n, c) => n + c, 0);
  }


  /** Sessions open in all workers now (workers that do not answer count 0). */
  async sessionCount(): Promise<number> {
    return (await this.stats()).reduce((n, s) => n + (s?.sessions ?? 0), 0);
  }

  /**
   * The primary's module: readiness (every worker listening, not draining) and, with Prometheus on
   * the admin listener, the merged /metrics route.
   */
  module(): ProxyModule {
    const prom = this.#prometheus();
    const routes: HttpRoute[] = [];
    if (prom && prom.port === null) {
      routes.push({
        method: 'GET',
        path: prom.path,
        auth: 'none',
        handle: async () => ({ status: 200, headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }, body: await this.metricsText() }),
      });
    }
    return { name: 'workers', filters: [], routes, readiness: () => this.readiness() };
  }

  /**
   * Ends every worker now (SIGKILL), sessions cut: for an exit that cannot wait (a second
   * SIGTERM/SIGINT during the drain, src/cli.ts). A worker left to notice its primary's exit takes up
   * to 5 s (and until 2026-12-07 could hang in its own exit: test/ops/redteam-21-orphaned-worker.test.ts).
   */
  killAll(): void {
    this.#stopping = true;
    for (const slot of this.#slots) slot.child?.kill('SIGKILL');
  }

  /**
   * Every worker drains (503 on /readyz and for new upgrades, sessions finish for up to `drainMs`,
   * then end with 1012, those mid-response after their linger) and exits; one that has not exited
   * `drainMs` + the linger + 10 s later is killed.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.#stopping = true;
    if (this.#liveness) clearInterval(this.#liveness);
    this.#liveness = null;
    this.#unsubscribeHolds?.();
    this.#unsubscribeHolds = null;
    await Promise.all(
      this.#slots.map(async (slot) => {
        const child = slot.child;
        if (!child) return;
        const exited = new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once('exit', () => resolve());
        });
        try {
          if (child.connected) child.send({ t: 'shutdown', drainMs } satisfies ToWorker);
          else child.kill('SIGTERM');
        } catch {
          child.kill('SIGKILL');
        }
        // The worker's sessions closed mid-response linger for their response.done before its ledger closes.
        const metering = this.#o.config.metering;
        const timer = setTimeout(() => child.kill('SIGKILL'), drainMs + EXIT_GRACE_MS + (metering.enabled ? metering.lingerAfterClientCloseMs : 0));
        await exited;
        clearTimeout(timer);
      }),
    );
    const metrics = this.#metricsServer;
    this.#metricsServer = null;
    await metrics?.close();
  }
}
