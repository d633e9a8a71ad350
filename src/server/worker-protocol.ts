import type { UpstreamKind } from '../config/compile.js';
import type { Config } from '../config/schema.js';
import type { TenantHoldMessage } from '../metering/hold-link.js';
import type { LedgerCall, LedgerReply } from '../metering/remote-ledger.js';

/*
 * Messages between the primary and its relay workers (child processes, IPC with the structured
 * clone serialization). Nothing on the relay hot path crosses: a session lives in one worker from
 * upgrade to close. The channel carries boot, ledger calls, over-cap audio holds (one per tenant
 * per hold, either way: src/metering/hold-link.ts), metric snapshots, liveness pings (the primary's
 * check that a worker's event loop still runs) and shutdown.
 */

export interface WorkerInit {
  readonly t: 'init';
  readonly index: number;
  /** The compiled config as this worker runs it (admin listener off, its share of maxSessions and memoryBudgetBytes). */
  readonly config: Config;
  readonly upstream: UpstreamKind;
  readonly baseDir: string;
  /** The primary logger's level (a silent embedder's proxy has silent workers). */
  readonly logLevel: string;
  /** Use the primary's ledger (RemoteLedger) instead of opening the configured one. */
  readonly remoteLedger: boolean;
  /** The proxy clock's wall time minus Date.now() (tests run on a fixed day). */
  readonly wallOffsetMs: number;
}

export type ToWorker =
  | WorkerInit
  | { readonly t: 'listen'; readonly port: number; readonly tlsPort: number | null }
  | { readonly t: 'metrics'; readonly id: number }
  /**
   * Answered with a pong of the same id at once (src/server/workers.ts: the liveness check). `ledger`:
   * why the primary's ledger the worker uses is not ready (usage records its file refused), or null:
   * the worker's own /readyz says so, as the client port is where a load balancer asks. `peers`: the
   * other workers not answering (a hung one still takes 1/N of the connections), or null: the
   * worker's /readyz says that too.
   */
  | { readonly t: 'ping'; readonly id: number; readonly ledger?: string | null; readonly peers?: string | null }
  /** Answered with a `sessions-reply` of the same id at once: the sessions it holds now (the `shutting down` log line). */
  | { readonly t: 'sessions'; readonly id: number }
  | { readonly t: 'shutdown'; readonly drainMs: number }
  | LedgerReply
  | TenantHoldMessage;

export interface WorkerStats {
  readonly sessions: number;
  readonly sessionsStarted: number;
}

export type FromWorker =
  | { readonly t: 'built' }
  | { readonly t: 'failed'; readonly message: string }
  | { readonly t: 'listening'; readonly port: number; readonly tlsPort: number | null }
  | { readonly t: 'listen-failed'; readonly message: string }
  | ({ readonly t: 'metrics-reply'; readonly id: number; readonly text: string } & WorkerStats)
  /**
   * `notReady`: why this worker's own modules are not ready (server.ts modulesReadiness, e.g. `calls:
   * calls store (redis) unavailable`), or null; the primary's admin /readyz carries it. `sessions`:
   * the sessions it holds now (the admin /readyz `sessions`, the second signal's log line).
   */
  | { readonly t: 'pong'; readonly id: number; readonly notReady?: string | null; readonly sessions?: number }
  | { readonly t: 'sessions-reply'; readonly id: number; readonly sessions: number }
  | { readonly t: 'drained' }
  | LedgerCall
  | TenantHoldMessage;

export function isMessage<T extends { readonly t: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string';
}
