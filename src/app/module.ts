import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Ledger } from '../metering/ledger.js';
import type { Clock, FilterFactory } from '../pipeline/filter.js';
import type { ProxyError } from '../protocol/errors.js';
import type { TenantResolver } from '../tenants/resolver.js';
import type { Tenant } from '../tenants/tenant.js';

/** An HTTP request as the proxy's route handlers see it (copied out of uWS before any await). */
export interface HttpRequestInfo {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Lower-cased header names. */
  readonly headers: ReadonlyMap<string, string>;
  /** Whom the request counts against (src/server/http.ts requestSource); for rate-limited refusal logs. */
  readonly source?: string;
  readonly body: Buffer;
}

/** A request before its body is read: what a route's `admit` decides on. */
export type HttpRequestHead = Omit<HttpRequestInfo, 'body'>;

/**
 * A route's verdict on a request from its headers, before any body byte is buffered:
 * - a reply: refused at once; the body is never read (the connection is closed after the answer);
 * - `authenticated`: the caller presented a valid credential; the body is read up to `maxBodyBytes`;
 * - `unverified`: the credential can only be checked with the body (a webhook signature): the body is
 *   read, holding one of the process's slots for unauthenticated bodies (`server.maxUnauthenticatedBodies`)
 *   until it is complete;
 * - a promise of either (a credential that needs a store lookup, e.g. a client secret): the body is
 *   read as `unverified` while it settles, and a refusal is answered as soon as it does.
 */
export type BodyAdmission = HttpReply | 'authenticated' | 'unverified' | Promise<HttpReply | 'authenticated'>;

export interface HttpReply {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
  /**
   * The proxy's own error code the reply refuses its request with, set where the refusal is built;
   * absent on a success, an upstream answer passed on (OpenAI's codes are not the proxy's) and a
   * reply without a code. A module's count of its refusals reads it (src/calls:
   * `rtproxy_http_refused_total`); it is never sent.
   */
  readonly refusal?: string;
}

export interface HttpRoute {
  /** OPTIONS: CORS preflights of browser-facing routes (src/calls). */
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS';
  /** Exact path, e.g. `/admin/tenants/:id/spend` (`:name` segments are captured into `params`). */
  readonly path: string;
  /**
   * `admin`: requires `Authorization: Bearer <admin key>`; the route is absent when no admin key is set.
   * `none`: admin listener, no authentication (e.g. /metrics).
   * `tenant`: served on the client listener (next to /v1/realtime); the route authenticates the
   * caller itself (tenant key, client secret or webhook signature): `admit` from the headers, before
   * the body is read, and the handler: src/calls.
   */
  readonly auth: 'admin' | 'none' | 'tenant';
  /**
   * Largest request body the route reads (default 1 MiB): a declared Content-Length or received
   * bytes past it answer 413 at once. Bodies are counted against `server.memoryBudgetBytes` while held.
   */
  readonly maxBodyBytes?: number;
  /**
   * The route starts a session (mints a client secret, places or accepts a call): refused with 503
   * `server_shutting_down` while the proxy drains, as a WebSocket upgrade is.
   */
  readonly startsSession?: boolean;
  /**
   * Headers every answer for this route carries, the server's own refusals before `admit` and the
   * handler included (413, 431, 408, 503 draining or overloaded): the calls route's CORS headers, so
   * a browser can read those refusals (until 2026-12-07 it saw an opaque network error). A reply's own
   * header of the same name wins.
   */
  readonly answerHeaders?: (req: HttpRequestHead) => Readonly<Record<string, string>>;
  /**
   * Decides from the headers before the body is read (see BodyAdmission). Default: `authenticated`
   * for `admin` routes (the admin key is checked first), `unverified` otherwise. A throw answers 500.
   */
  admit?(req: HttpRequestHead, params: Readonly<Record<string, string>>): BodyAdmission;
  handle(req: HttpRequestInfo, params: Readonly<Record<string, string>>): HttpReply | Promise<HttpReply>;
}

export interface ModuleDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly tenants: TenantResolver;
  readonly clock: Clock;
  /** Directory that relative paths in the config (policies, data) resolve against. */
  readonly baseDir: string;
  /**
   * The metering ledger to use instead of opening the configured one: a relay worker's view of the
   * primary's ledger (src/metering/remote-ledger.ts). Closing the module does not close it.
   */
  readonly ledger?: Ledger;
  /**
   * Every session this process runs: the server's WebSocket sessions and the modules' own (a call's
   * sidebands, `ProxyModule.sessions`), what `server.maxSessions` bounds. Absent where a module is
   * built alone (tests): the module counts its own.
   */
  readonly sessionsOpen?: () => number;
  /** True in a relay worker (src/server/worker.ts): the primary serves the admin listener and the merged /metrics. */
  readonly relayWorker?: boolean;
}

/**
 * A concern of the proxy (metering, policies, telemetry): its filters, HTTP routes and lifecycle.
 * Built once at boot; `close` runs on shutdown after sessions have drained.
 */
export interface ProxyModule {
  readonly name: string;
  readonly filters: readonly FilterFactory[];
  readonly routes?: readonly HttpRoute[];
  /** Null when ready, otherwise why not (reported by /readyz). */
  readiness?(): string | null;
  /**
   * A WebSocket credential that is no tenant key (a client secret this proxy minted, src/calls): the
   * tenant, model and governed session config it stands for, or null when it stands for none; an
   * error when it cannot tell now (its store is down: `calls_store_unavailable`).
   */
  resolveSecret?(key: string): Promise<SecretGrant | ProxyError | null>;
  /** An upgrade was refused before a session existed (`reason`: an error code or `not_found`). */
  onUpgradeRefused?(reason: string): void;
  /** A module's HTTP route refused a request with one of the proxy's error codes (`route`: its path template). */
  onRequestRefused?(route: string, code: string): void;
  /** What became of the announcement of a SIP call to its tenant's app (src/calls/notify.ts: delivered, failed, dropped). */
  onCallNotified?(tenant: string, outcome: string): void;
  /** What became of a transfer (SIP REFER) a tenant asked for (src/calls: transferred, refused, failed, unconfirmed). */
  onCallTransferred?(tenant: string, outcome: string): void;
  /** Sessions this module runs or is starting beside the server's WebSocket sessions (a call's sidebands, offers on their way upstream): they count against `server.maxSessions`. */
  sessions?(): number;
  /**
   * Of those, the ones the shutdown drain waits for (up to `server.shutdownDrainSec`) beside the
   * server's WebSocket sessions: a call `calls.onShutdown: hangup` would hang up (a call handed over
   * is not waited for).
   */
  drainingSessions?(): number;
  close?(): Promise<void>;
}

export interface SecretGrant {
  readonly tenant: Tenant;
  readonly model: string;
  readonly session: Readonly<Record<string, unknown>>;
}

export const json = (status: number, body: unknown): HttpReply => ({
  status,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
