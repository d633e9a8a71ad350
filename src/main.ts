import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DestinationStream, Logger } from 'pino';
import type { ProxyModule } from './app/module.js';
import { createModules } from './app/modules.js';
import { compileConfig, type UpstreamKind } from './config/compile.js';
import type { Config } from './config/schema.js';
import { createLogger, redactUrl } from './logging.js';
import type { Clock } from './pipeline/filter.js';
import { createDemoModule, logDemoOn } from './demo/index.js';
import { createMeteringModule } from './metering/index.js';
import { createPoliciesModule } from './policies/index.js';
import { ProxyServer } from './server/server.js';
import { WorkerPool } from './server/workers.js';
import type { SimulatorHandle, SimulatorOptions } from './simulator/index.js';
import { TenantResolver } from './tenants/resolver.js';

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
};

export interface StartOptions {
  /** Directory that relative config paths resolve against (the config file's directory). */
  readonly baseDir?: string;
  readonly logDestination?: DestinationStream;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Options for the embedded simulator, when it is used. */
  readonly simulator?: SimulatorOptions;
  /** The config file, named in configuration errors (default: "(config)"). */
  readonly configFile?: string;
  /** Environment for the checks that depend on it (NODE_ENV, OTEL_*); default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface ProxyHandle {
  readonly port: number;
  readonly tlsPort: number | null;
  /** The admin listener (admin API, /metrics) on `config.admin.host`, or null. */
  readonly adminPort: number | null;
  readonly host: string;
  readonly log: Logger;
  readonly config: Config;
  /** The embedded simulator, when the proxy relays to it. */
  readonly simulator: SimulatorHandle | null;
  /** Which upstream the proxy relays to (also reported by /readyz). */
  readonly upstream: UpstreamKind;
  /**
   * With `server.workers` > 1: the admin side only (admin listener, ledger); sessions run in
   * `workers`. Otherwise the whole relay.
   */
  readonly server: ProxyServer;
  /** The relay workers (`server.workers` > 1), or null when this process relays itself. */
  readonly workers: WorkerPool | null;
  shutdown(drainMs?: number): Promise<void>;
}

/** The key the embedded simulator takes, and the proxy sends it (tests check that a request reached it with the proxy's key). */
export const SIMULATOR_KEY = 'sk-simulator-local';

/**
 * Starts the proxy. It first runs the same checks as `check-config` (`compileConfig`: any mistake
 * throws ConfigError naming file, path and fix). With `upstream.provider: simulator`, or `openai`
 * without an API key outside production, the embedded simulator is started on loopback and used
 * as the upstream (logged loudly, and reported by /readyz).
 */
export async function startProxy(input: Config, options: StartOptions = {}): Promise<ProxyHandle> {
  const log = options.logger ?? createLogger(input.logging.level, options.logDestination);
  const clock = options.clock ?? systemClock;
  const baseDir = resolve(options.baseDir ?? process.cwd());
  const compiled = await compileConfig(input, {
    file: options.configFile ?? '(config)',
    baseDir,
    ...(options.env ? { env: options.env } : {}),
    log: log.child({ phase: 'check' }, { level: 'warn' }),
  });
  let config = compiled.config;
  let simulator: SimulatorHandle | null = null;
  if (compiled.upstream.kind === 'simulator') {
    // Loaded only here: a proxy with a real upstream never loads the simulator (nor `ws`, which only it uses).
    const { startSimulator } = await import('./simulator/index.js');
    // No history of events and closed connections (tests ask for it): it would grow with every session.
    simulator = await startSimulator({ keepHistory: false, ...options.simulator, apiKey: SIMULATOR_KEY });
    config = { ...config, upstream: { ...config.upstream, provider: 'simulator', url: simulator.url, apiKey: SIMULATOR_KEY } };
    log.warn(
      { upstream: simulator.url },
      compiled.upstream.reason === 'chosen'
        ? 'upstream.provider is simulator: relaying to the embedded Realtime simulator'
        : 'NO OPENAI_API_KEY SET: relaying to the embedded Realtime simulator, not to OpenAI (refused when NODE_ENV=production)',
    );
  }
  const tenants = new TenantResolver(config);
  if (compiled.workers > 1) {
    return startPrimary({ config, log, tenants, clock, baseDir, simulator, upstream: compiled.upstream, workers: compiled.workers, options });
  }
  let modules: ProxyModule[] = [];
  let server: ProxyServer;
  // The client listener's port once bound (the demo page's default); a request comes only after that.
  let clientPort = config.server.port;
  try {
    // The server exists by the time anything asks (a request): every session counts against maxSessions.
    modules = await createModules({ config, log, tenants, clock, baseDir, sessionsOpen: () => server?.sessionsOpen ?? 0 });
    modules.push(createDemoModule({ config, log, tenants, clock, baseDir }, () => clientPort));
    server = new ProxyServer({ config, log, tenants, modules, clock, upstream: compiled.upstream });
  } catch (err) {
    await simulator?.close();
    throw err;
  }
  const address = await server.listen();
  clientPort = address.port;
  if (config.server.demo) logDemoOn(log, address.adminPort);
  log.info(
    {
      port: address.port,
      tlsPort: address.tlsPort,
      workers: 1,
      uws: server.binary,
      upstream: redactUrl(config.upstream.provider === 'azure' ? config.upstream.azure?.endpoint : config.upstream.url),
      admin: address.adminPort === null ? null : `${config.admin.host}:${address.adminPort}`,
      tenants: tenants.tenants.size,
      filters: modules.flatMap((m) => m.filters.map((f) => f.name)),
    },
    'realtime proxy listening',
  );
  return {
    port: address.port,
    tlsPort: address.tlsPort,
    adminPort: address.adminPort,
    host: config.server.host,
    log,
    config,
    simulator,
    upstream: compiled.upstream,
    server,
    workers: null,
    async shutdown(drainMs = config.server.shutdownDrainSec * 1000) {
      await server.shutdown(drainMs);
      await simulator?.close();
      log.flush?.();
    },
  };
}

interface PrimaryStart {
  readonly config: Config;
  readonly log: Logger;
  readonly tenants: TenantResolver;
  readonly clock: Clock;
  readonly baseDir: string;
  readonly simulator: SimulatorHandle | null;
  readonly upstream: UpstreamKind;
  readonly workers: number;
  readonly options: StartOptions;
}

/**
 * `server.workers` > 1: this process becomes the primary. It owns the ledger (served to the
 * workers, SQLite or Redis), the admin listener (admin API, merged /metrics, /readyz over all
 * workers) and the drain; the relay workers (src/server/workers.ts) share the client port.
 */
async function startPrimary(p: PrimaryStart): Promise<ProxyHandle> {
  const { config, log, tenants, clock, baseDir, simulator } = p;
  const deps = { config, log, tenants, clock, baseDir };
  const modules: ProxyModule[] = [];
  let pool: WorkerPool | null = null;
  let server: ProxyServer;
  let address: Awaited<ReturnType<ProxyServer['listen']>>;
  try {
    modules.push(await createPoliciesModule(deps));
    const metering = await createMeteringModule(deps);
    modules.push(metering);
    // The admin listener is the primary's: so is the demo page (until 2026-12-06 it was built in the
    // workers only, and /demo answered 404 under `npm start` on any machine with more than one core).
    // Its page's client port is the workers' (bound before the admin listener serves anything).
    modules.push(createDemoModule(deps, () => pool?.port ?? config.server.port));
    pool = await WorkerPool.start({
      count: p.workers,
      config,
      upstream: p.upstream,
      baseDir,
      log,
      logSink: p.options.logDestination ?? process.stdout,
      env: process.env,
      ledger: metering.ledger,
      wallOffsetMs: p.options.clock ? Math.round(clock.wall() - Date.now()) : 0,
    });
    modules.unshift(pool.module());
    const relay = pool;
    server = new ProxyServer({ config, log, tenants, modules, clock, upstream: p.upstream, clientListeners: false, openSessions: () => relay.openSessions });
    address = await server.listen();
  } catch (err) {
    // Nothing half-started stays behind: workers exit, the ledger closes, the simulator stops.
    await pool?.shutdown(0);
    await Promise.allSettled(modules.map((m) => m.close?.()));
    await simulator?.close();
    throw err;
  }
  const workers = pool;
  if (config.server.demo) logDemoOn(log, address.adminPort);
  log.info(
    {
      port: workers.port,
      tlsPort: workers.tlsPort,
      workers: workers.count,
      uws: server.binary,
      upstream: redactUrl(config.upstream.provider === 'azure' ? config.upstream.azure?.endpoint : config.upstream.url),
      admin: address.adminPort === null ? null : `${config.admin.host}:${address.adminPort}`,
      tenants: tenants.tenants.size,
    },
    'realtime proxy listening',
  );
  return {
    port: workers.port,
    tlsPort: workers.tlsPort,
    adminPort: address.adminPort,
    host: config.server.host,
    log,
    config,
    simulator,
    upstream: p.upstream,
    server,
    workers,
    async shutdown(drainMs = config.server.shutdownDrainSec * 1000) {
      await workers.shutdown(drainMs);
      // Then the admin listener and the modules: the ledger closes after the last worker has settled.
      await server.shutdown(0);
      await simulator?.close();
      log.flush?.();
    },
  };
}

export { configBaseDir } from './config/load.js';
