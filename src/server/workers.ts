import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { createServer as createNetServer } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { HttpRoute, ProxyModule } from '../app/module.js';
import type { UpstreamKind } from '../config/compile.js';
import type { Config } from '../config/schema.js';
import type { Ledger } from '../metering/ledger.js';
import { isLedgerCall, LedgerHost } from '../metering/remote-ledger.js';
import { mergePrometheusText } from '../telemetry/prometheus-merge.js';
import { resolveSettings } from '../telemetry/settings.js';
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
  /** The primary's ledger, served to workers when it is SQLite (Redis: workers connect themselves). */
  readonly ledger: Ledger | null;
  readonly wallOffsetMs: number;
}

interface WorkerSlot {
  readonly index: number;
  child: ChildProcess | null;
  host: LedgerHost | null;
  listening: boolean;
  restarts: number;
}

/** A bound for boot, listen and metric answers of a worker. */
const BOOT_TIMEOUT_MS = 60_000;
const METRICS_TIMEOUT_MS = 5000;
/** Beyond the drain: a worker that has not exited by then is killed. */
const EXIT_GRACE_MS = 10_000;
const RESTART_DELAY_MS = 1000;

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
  #metricSeq = 0;
  readonly #metricWaits = new Map<number, (r: { text: string } & WorkerStats) => void>();
  #metricsServer: Server | null = null;

  private constructor(options: WorkerPoolOptions) {
    this.#o = options;
    this.#slots = Array.from({ length: options.count }, (_, index) => ({ index, child: null, host: null, listening: false, restarts: 0 }));
    const c = options.config;
    this.#remoteLedger = c.metering.enabled && c.metering.ledger.kind === 'sqlite' && options.ledger !== null;
    // Each worker gets its share of the process-wide limits, so the totals stay what is configured.
    this.#workerConfig = {
      ...c,
      server: {
        ...c.server,
        maxSessions: Math.max(1, Math.ceil(c.server.maxSessions / options.count)),
        memoryBudgetBytes: Math.max(1, Math.floor(c.server.memoryBudgetBytes / options.count)),
      },
      // The admin API and /metrics are the primary's.
      admin: { ...c.admin, port: null },
      telemetry: { ...c.telemetry, metrics: { ...c.telemetry.metrics, prometheus: { ...c.telemetry.metrics.prometheus, port: null } } },
    };
  }

  /** Boots every worker, then has them listen on one port; throws (after stopping them) when any fails. */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    try {
      await Promise.all(pool.#slots.map((s) => pool.#boot(s)));
      await pool.#listenAll();
      await pool.#serveSeparateMetrics();
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
      config: this.#workerConfig,
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
      slot.host?.handle(m, (reply) => {
        if (child.connected) child.send(reply satisfies ToWorker);
      });
      return;
    }
    if (isMessage<FromWorker>(m) && m.t === 'metrics-reply') {
      const wait = this.#metricWaits.get(m.id);
      this.#metricWaits.delete(m.id);
      wait?.(m);
    }
  }

  #onExit(slot: WorkerSlot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = null;
    slot.listening = false;
    // Its responses and sessions are gone with it: nothing it reserved may stay held.
    slot.host?.releaseAll();
    slot.host = null;
    if (this.#stopping || this.#port === 0) return;
    slot.restarts++;
    this.#o.log.error({ worker: slot.index, code, signal, restarts: slot.restarts }, 'relay worker exited; starting a new one');
    const timer = setTimeout(() => {
      if (this.#stopping) return;
      this.#boot(slot)
        .then(() => this.#listen(slot, this.#port, this.#tlsPort))
        .catch((err: unknown) => this.#o.log.error({ err, worker: slot.index }, 'relay worker restart failed'));
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

  /** With `telemetry.metrics.prometheus.port` set, the merged exposition is served there. */
  async #serveSeparateMetrics(): Promise<void> {
    const prom = this.#prometheus();
    if (!prom || prom.port === null) return;
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== prom.path) {
        res.writeHead(404).end();
        return;
      }
      this.metricsText().then(
        (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(prom.port ?? 0, prom.host, () => resolve());
    });
    this.#metricsServer = server;
  }

  #prometheus(): { readonly port: number | null; readonly host: string; readonly path: string } | null {
    const settings = resolveSettings(this.#o.config.telemetry, this.#o.env);
    return settings.enabled && settings.metrics.prometheus.enabled ? settings.metrics.prometheus : null;
  }

  /** Why the relay is not ready, or null: draining, or a worker not running. */
  readiness(): string | null {
    if (this.#stopping) return 'draining';
    const down = this.#slots.filter((s) => !s.listening).map((s) => s.index);
    return down.length > 0 ? `relay worker ${down.join(', ')} not running` : null;
  }

  /** Each worker's sessions (null: it did not answer). */
  async stats(): Promise<Array<({ text: string } & WorkerStats) | null>> {
    return Promise.all(
      this.#slots.map(
        (slot) =>
          new Promise<({ text: string } & WorkerStats) | null>((resolve) => {
            const child = slot.child;
            if (!child?.connected || !slot.listening) return resolve(null);
            const id = ++this.#metricSeq;
            const timer = setTimeout(() => {
              this.#metricWaits.delete(id);
              resolve(null);
            }, METRICS_TIMEOUT_MS);
            this.#metricWaits.set(id, (r) => {
              clearTimeout(timer);
              resolve(r);
            });
            try {
              child.send({ t: 'metrics', id } satisfies ToWorker);
            } catch {
              clearTimeout(timer);
              this.#metricWaits.delete(id);
              resolve(null);
            }
          }),
      ),
    );
  }

  /** The workers' expositions merged into one, plus per-worker series (which worker serves how many sessions). */
  async metricsText(): Promise<string> {
    const stats = await this.stats();
    const perWorker = [
      '# HELP rtproxy_worker_up Relay worker answering (1) or not (0).',
      '# TYPE rtproxy_worker_up gauge',
      ...stats.map((s, i) => `rtproxy_worker_up{worker="${i}"} ${s ? 1 : 0}`),
      '# HELP rtproxy_worker_sessions Sessions open now, by relay worker.',
      '# TYPE rtproxy_worker_sessions gauge',
      ...stats.flatMap((s, i) => (s ? [`rtproxy_worker_sessions{worker="${i}"} ${s.sessions}`] : [])),
      '# HELP rtproxy_worker_sessions_started_total Sessions started since the worker started, by relay worker.',
      '# TYPE rtproxy_worker_sessions_started_total counter',
      ...stats.flatMap((s, i) => (s ? [`rtproxy_worker_sessions_started_total{worker="${i}"} ${s.sessionsStarted}`] : [])),
      '',
    ].join('\n');
    return mergePrometheusText([...stats.map((s) => s?.text ?? ''), perWorker]);
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
   * Every worker drains (503 on /readyz and for new upgrades, sessions finish for up to `drainMs`,
   * then end with 1012) and exits; one that has not exited `drainMs` + 10 s later is killed.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.#stopping = true;
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
        const timer = setTimeout(() => child.kill('SIGKILL'), drainMs + EXIT_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
    if (this.#metricsServer) await new Promise<void>((resolve) => this.#metricsServer!.close(() => resolve()));
    this.#metricsServer = null;
  }
}
