import { performance } from 'node:perf_hooks';
import type { ProxyModule } from '../app/module.js';
import { createModules } from '../app/modules.js';
import { createLogger } from '../logging.js';
import { isTenantHoldMessage } from '../metering/hold-link.js';
import { isLedgerReply, RemoteLedger } from '../metering/remote-ledger.js';
import type { Clock } from '../pipeline/filter.js';
import type { TelemetryModule } from '../telemetry/index.js';
import { TenantResolver } from '../tenants/resolver.js';
import { installProcessFaultHandlers } from './process-faults.js';
import { modulesReadiness, ProxyServer } from './server.js';
import { isMessage, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol.js';

/*
 * A relay worker: a child process of the primary (src/server/workers.ts) running the whole relay
 * (uWS client listeners on the shared port, filters, sessions) with no admin listener. Its ledger
 * is the primary's (RemoteLedger, SQLite or Redis alike), and over-cap audio holds reach the other
 * workers through the primary too. It exits when told to shut down, and on its own when the
 * primary goes away.
 */

/** False only when the channel to the primary is closed (process.send's false also means "queued behind a backlog"). */
const send = (m: FromWorker): boolean => {
  if (!process.connected || !process.send) return false;
  try {
    process.send(m);
    return true;
  } catch {
    return false;
  }
};

/**
 * Modules whose readiness the primary reports itself: a worker's metering is the primary's ledger
 * (RemoteLedger, whose readiness the primary sends with each ping), and `workers` is the primary's
 * view of the other workers (sent with each ping too; echoed back it would never clear).
 */
const REPORTED_BY_PRIMARY: ReadonlySet<string> = new Set(['metering', 'workers']);

/** How long a worker whose primary is gone may take to close its sessions and modules. */
const ORPHAN_EXIT_MS = 5000;

/**
 * The primary is gone: nobody reads this worker's output or exit code. process.exit() was seen to
 * hang here (exit handlers writing to the dead primary's stdout pipe), so the worker kills itself.
 */
function orphanExit(): void {
  process.kill(process.pid, 'SIGKILL');
}

let server: ProxyServer | null = null;
let modules: ProxyModule[] = [];
let ledger: RemoteLedger | null = null;
let stopping = false;
/** The other workers the primary found not answering, as of its last ping (null: none). */
let peersNotAnswering: string | null = null;

async function boot(init: WorkerInit): Promise<void> {
  const config = init.config;
  // Its stdout is the pipe the primary reads (its lines join the primary's output); a line written
  // after the primary has gone is dropped, and the channel's close then ends the worker.
  const log = createLogger(init.logLevel).child({ worker: init.index });
  installProcessFaultHandlers(log);
  const offset = init.wallOffsetMs;
  const clock: Clock = { now: () => performance.now(), wall: offset === 0 ? () => Date.now() : () => Date.now() + offset };
  const tenants = new TenantResolver(config);
  if (init.remoteLedger) {
    ledger = new RemoteLedger({ send, sendHold: send, kind: config.metering.ledger.kind, timeoutMs: Math.max(5000, config.metering.ledger.commandTimeoutMs) });
  }
  // The server exists by the time anything asks (a request): every session counts against maxSessions.
  modules = await createModules({ config, log, tenants, clock, baseDir: init.baseDir, ...(ledger ? { ledger } : {}), sessionsOpen: () => server?.sessionsOpen ?? 0, relayWorker: true });
  // The client-port /readyz a load balancer probes says so when another worker is hung: that worker
  // still takes about 1/N of the new connections (the primary names it with each ping).
  modules.push({ name: 'workers', filters: [], readiness: () => peersNotAnswering });
  server = new ProxyServer({ config, log, tenants, modules, clock, upstream: init.upstream });
}

async function metricsText(): Promise<string> {
  const telemetry = modules.find((m) => m.name === 'telemetry') as TelemetryModule | undefined;
  return (await telemetry?.sdk?.metricsText()) ?? '';
}

async function shutdown(drainMs: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    if (server) await server.shutdown(drainMs);
    else await Promise.allSettled(modules.map((m) => m.close?.()));
  } finally {
    if (process.connected) {
      send({ t: 'drained' });
      process.exit(0);
    } else {
      orphanExit();
    }
  }
}

function onMessage(m: unknown): void {
  if (isLedgerReply(m)) {
    ledger?.onReply(m);
    return;
  }
  // A tenant found over a cap in another worker or instance: this worker's sessions of it hold their audio.
  if (isTenantHoldMessage(m)) {
    ledger?.holds.receive(m);
    return;
  }
  if (!isMessage<ToWorker>(m)) return;
  switch (m.t) {
    case 'init':
      boot(m).then(
        () => send({ t: 'built' }),
        (err: unknown) => {
          send({ t: 'failed', message: err instanceof Error ? err.message : String(err) });
          process.exit(1);
        },
      );
      return;
    case 'listen':
      if (!server) return;
      server.listen({ port: m.port, tlsPort: m.tlsPort }).then(
        (a) => send({ t: 'listening', port: a.port, tlsPort: a.tlsPort }),
        (err: unknown) => send({ t: 'listen-failed', message: err instanceof Error ? err.message : String(err) }),
      );
      return;
    case 'metrics':
      metricsText().then(
        (text) => send({ t: 'metrics-reply', id: m.id, text, sessions: server?.sessionCount ?? 0, sessionsStarted: server?.sessionsStarted ?? 0 }),
        () => send({ t: 'metrics-reply', id: m.id, text: '', sessions: server?.sessionCount ?? 0, sessionsStarted: server?.sessionsStarted ?? 0 }),
      );
      return;
    case 'ping':
      // Answered even while draining: a worker that drains is alive (the primary's /readyz says draining).
      peersNotAnswering = m.peers ?? null;
      send({ t: 'pong', id: m.id, notReady: modulesReadiness(modules, REPORTED_BY_PRIMARY), sessions: server?.sessionCount ?? 0 });
      ledger?.ownerReadiness(m.ledger ?? null);
      return;
    case 'sessions':
      send({ t: 'sessions-reply', id: m.id, sessions: server?.sessionCount ?? 0 });
      return;
    case 'shutdown':
      void shutdown(m.drainMs);
      return;
    default:
      return;
  }
}

process.on('message', onMessage);
// The primary is gone (crashed or killed): no ledger, no drain orders; end the sessions and exit.
process.on('disconnect', () => {
  ledger?.disconnect();
  // Bounded: a module that hangs on close (an exporter whose endpoint is gone) must not leave an orphan.
  setTimeout(orphanExit, ORPHAN_EXIT_MS);
  void shutdown(0);
});
// SIGTERM/SIGINT reach the whole process group from a terminal: while the primary is there it
// orders the drain, so the worker does not act on the signal itself; without it, the signal ends it.
const onSignal = () => {
  if (!process.connected) void shutdown(0);
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
// A closed terminal sends SIGHUP to the whole group: the primary ignores it (src/cli.ts), so the
// worker does too (its default action ended the worker and its sessions until 2026-12-07).
process.on('SIGHUP', onSignal);
