import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Ledger } from '../metering/ledger.js';
import type { Clock, FilterFactory } from '../pipeline/filter.js';
import type { TenantResolver } from '../tenants/resolver.js';
import type { Tenant } from '../tenants/tenant.js';

/** An HTTP request as the proxy's route handlers see it (copied out of uWS before any await). */
export interface HttpRequestInfo {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Lower-cased header names. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

export interface HttpReply {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: string | Buffer;
}

export interface HttpRoute {
  /** OPTIONS: CORS preflights of browser-facing routes (src/calls). */
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS';
  /** Exact path, e.g. `/admin/tenants/:id/spend` (`:name` segments are captured into `params`). */
  readonly path: string;
  /**
   * `admin`: requires `Authorization: Bearer <admin key>`; the route is absent when no admin key is set.
   * `none`: admin listener, no authentication (e.g. /metrics).
   * `tenant`: served on the client listener (next to /v1/realtime); the handler authenticates the
   * caller itself (tenant key, client secret or webhook signature): src/calls.
   */
  readonly auth: 'admin' | 'none' | 'tenant';
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
   * tenant, model and governed session config it stands for, or null when it stands for none.
   */
  resolveSecret?(key: string): Promise<SecretGrant | null>;
  /** An upgrade was refused before a session existed (`reason`: an error code or `not_found`). */
  onUpgradeRefused?(reason: string): void;
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
