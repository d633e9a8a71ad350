import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t, WebSocket as UwsWebSocket } from 'uWebSockets.js';
import type { BodyAdmission, HttpReply, HttpRequestHead, HttpRequestInfo, HttpRoute, ProxyModule, SecretGrant } from '../app/module.js';
import type { UpstreamKind } from '../config/compile.js';
import type { Config } from '../config/schema.js';
import { ChainTemplate } from '../pipeline/chain.js';
import type { AdmissionRequest, Clock } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { CLIENT_SECRET_PREFIX, TRANSLATION_SESSION_KEY } from '../protocol/events.js';
import { MAX_KEY_CHARS, sha256Hex, type TenantResolver } from '../tenants/resolver.js';
import { forwardedHeaderProblem, readClientQuery, translationQueryProblem, undialableModel, upstreamTarget } from '../upstream/dial.js';
import { RelaySession, type AdmittedClient, type ClientSocket, type ClientSocketData } from '../relay/session.js';
import { AdminKey } from './admin-key.js';
import { presentedCredentials } from './auth.js';
import { adminRouteTable, CLOSE_NOW_PADDING, copyHeaders, ensurePortFree, Exchange, isLoopbackName, jsonReply, requestSource, safeDecode, statusLine, type RouteTable } from './http.js';
import { BodyBuffer } from './body-buffer.js';
import { LingeringSockets } from './lingering-sockets.js';
import { defaultTenantShare, MemoryBudget, tenantShareExceeded } from './memory-budget.js';
import { RefusalLog } from './refusal-log.js';
import { uws, uwsBinary } from './uws.js';
import { capLogBinding } from '../logging.js';

export interface ProxyServerOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly tenants: TenantResolver;
  readonly modules: readonly ProxyModule[];
  readonly clock: Clock;
  /** Which upstream sessions are relayed to (reported by /readyz). */
  readonly upstream?: UpstreamKind;
  /**
   * False: no client listeners, only the admin listener (the primary of several relay workers,
   * src/server/workers.ts). Default true.
   */
  readonly clientListeners?: boolean;
  /** Sessions held elsewhere (the relay workers, for their primary): the /readyz `sessions`. Default: this process's. */
  readonly openSessions?: () => number;
}

/** Ports to listen on instead of the configured ones (relay workers share a port the primary chose). */
export interface ListenPorts {
  readonly port: number;
  readonly tlsPort: number | null;
}

export interface ListenAddress {
  readonly port: number;
  readonly tlsPort: number | null;
  /** The admin listener (admin API, /metrics), or null when there is none. */
  readonly adminPort: number | null;
}

/** Largest body of a route that declares no limit of its own; the admin API takes small JSON documents. */
const MAX_ADMIN_BODY_BYTES = 1024 * 1024;

/**
 * Bound on a route's asynchronous credential check (a client secret looked up while its body
 * arrives). uWS cuts a request whose body is still arriving after ~12 s, but not one whose body is
 * complete: this bounds the wait then.
 */
const BODY_ADMISSION_TIMEOUT_MS = 10_000;

/**
 * An unauthenticated body must arrive within this plus its length at UNVERIFIED_BODY_MIN_RATE (its
 * declared length, else the route's limit), or it is answered 408 and its slot freed. A genuine one
 * (a webhook of a few KiB) arrives at once; without it, a sender trickling bytes held its slot until
 * uWS's own cut (~10–14 s: uWS only asks for 16 KB/s per 10 s), and 64 of them took every slot.
 */
const UNVERIFIED_BODY_BASE_MS = 5000;
/** Bytes per second (uWS's own floor for a body). */
const UNVERIFIED_BODY_MIN_RATE = 16 * 1024;

/**
 * Every request body of the client port (tenant routes) must arrive within this from its headers, or
 * it is answered 408 and what it holds released; an unauthenticated one may have less (above). A
 * tenant's (or its browsers') stalled bodies otherwise held their bytes until uWS's own cut (~10–14 s,
 * and never for a body trickled at uWS's floor). Admin bodies have no deadline of the proxy's.
 */
const BODY_DEADLINE_MS = 10_000;

const BODY_TIMEOUT = jsonReply(408, { error: { type: 'invalid_request_error', code: 'request_timeout', message: 'The request body did not arrive in time.' } });

const tooLargeReply = (limit: number): HttpReply =>
  jsonReply(413, { error: { type: 'invalid_request_error', code: 'request_too_large', message: `The body exceeds ${limit} bytes.` } });

function errorBody(error: ProxyError): string {
  return JSON.stringify(error.toHttpBody());
}

/**
 * Seconds a client refused while this instance drains is told to wait (Retry-After): none to speak of,
 * another instance (or this one's successor) takes it. Until 2026-12-07 the 503 carried no Retry-After.
 */
export const SHUTDOWN_RETRY_AFTER_SEC = 1;

/** The headers of an HTTP refusal: JSON, and Retry-After on a drain's (as calls_store_unavailable's: src/calls/store-outage.ts). */
function refusalHeaders(error: ProxyError): Record<string, string> {
  if (error.code === 'server_shutting_down') return { 'content-type': 'application/json', 'retry-after': String(SHUTDOWN_RETRY_AFTER_SEC) };
  return { 'content-type': 'application/json' };
}

/**
 * A request whose body length two HTTP parsers could read apart (request smuggling): Content-Length
 * repeated (uWS reads the first, a load balancer in front may read the last, and the bytes between
 * become a request the front end never saw). uWS itself closes most connections with a signed or
 * non-decimal value, or Content-Length beside Transfer-Encoding, before any handler; a repeated header
 * (copied as "2, 41") and a list ("2, 2") pass it. RFC 9112 §6.3: an unrecoverable framing error,
 * refused 400 and the connection closed.
 * Checked on every HTTP request and upgrade, before the handler. Never throws.
 */
function ambiguousFraming(req: HttpRequest): boolean {
  let lengths = 0;
  let bad = false;
  let chunked = false;
  try {
    req.forEach((name, value) => {
      if (name === 'content-length') {
        lengths++;
        if (!/^[0-9]+$/.test(value)) bad = true;
      } else if (name === 'transfer-encoding') chunked = true;
    });
  } catch {
    return true;
  }
  return bad || lengths > 1 || (lengths > 0 && chunked);
}

const AMBIGUOUS_FRAMING: HttpReply = {
  status: 400,
  headers: { 'content-type': 'application/json' },
  body: `${JSON.stringify({ error: { type: 'invalid_request_error', code: 'invalid_request', message: 'The request must carry exactly one Content-Length, a decimal number (and no Transfer-Encoding beside it).', param: null } })}${CLOSE_NOW_PADDING}`,
};

const INTERNAL_ERROR = jsonReply(500, { error: { code: 'internal_error' } });
const NOT_FOUND = jsonReply(404, { error: { code: 'not_found' } });

function remoteAddress(res: HttpResponse): string {
  try {
    return Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
  } catch {
    return 'unknown';
  }
}

/**
 * The first module that is not ready, as `name: reason`, or null. The one check of every /readyz: a
 * single process answers it on both listeners; with relay workers each worker answers it on the
 * client port and reports it to the primary with every pong (src/server/workers.ts), whose admin
 * /readyz carries it. `skip`: modules whose readiness the caller reports otherwise.
 */
export function modulesReadiness(modules: readonly ProxyModule[], skip: ReadonlySet<string> = new Set()): string | null {
  for (const m of modules) {
    if (skip.has(m.name)) continue;
    const r = m.readiness?.() ?? null;
    if (r) return `${m.name}: ${r}`;
  }
  return null;
}

/** After the linger bound, the time a lingering session takes to end (its timer's turn, the close's work). */
const LINGER_END_SLACK_MS = 1000;
/** How often a drain looks whether the modules' calls have ended (they announce no end). */
const DRAIN_POLL_MS = 250;

/**
 * The uWS front: `ws://` and `wss://` listeners for clients (`/…/realtime`, `/healthz`, `/readyz`
 * only), a separate admin listener for module routes (admin API, /metrics), authentication before
 * the upgrade, and a single low-resolution timer for liveness checks and the memory budget.
 *
 * Every uWS callback is total: an exception answers 500 (or ends that one session) and is logged;
 * it never reaches uWS, which would end the process and every session with it.
 */
export class ProxyServer {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #tenants: TenantResolver;
  readonly #modules: readonly ProxyModule[];
  /** Client secrets this proxy minted, when the calls module is on (src/calls). */
  readonly #secretResolver: ((key: string) => Promise<SecretGrant | ProxyError | null>) | null;
  readonly #clock: Clock;
  readonly #template: ChainTemplate;
  readonly #sessions = new Set<RelaySession>();
  /** Client sockets between uWS's open and close callbacks (cork hosts for asynchronous upgrades). */
  readonly #openSockets = new Set<ClientSocket>();
  readonly #listenSockets: us_listen_socket[] = [];
  #adminListenSocket: us_listen_socket | null = null;
  readonly #adminKey: AdminKey | null;
  readonly #upstream: UpstreamKind;
  readonly #budget: MemoryBudget;
  /** Ended client sockets uWS still holds with unsent bytes: in the memory budget until they close. */
  readonly #lingering: LingeringSockets;
  readonly #refusals: RefusalLog;
  readonly #clientListeners: boolean;
  readonly #openSessions: (() => number) | null;
  /** Request bodies being read whose sender is not authenticated yet (bounded by server.maxUnauthenticatedBodies). */
  #unverifiedBodies = 0;
  /**
   * Those bodies by source (src/server/http.ts requestSource), each at most
   * server.maxUnauthenticatedBodiesPerSource; an entry goes when its count reaches 0, so the map
   * never holds more entries than there are slots.
   */
  readonly #unverifiedBySource = new Map<string, number>();
  /** Request bodies refused for memory or slots since the last tick, by reason (logged once a tick). */
  readonly #bodyRefusals = new Map<string, number>();
  #ticker: NodeJS.Timeout | null = null;
  #started = 0;
  #draining = false;
  #drained: (() => void) | null = null;

  constructor(options: ProxyServerOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#tenants = options.tenants;
    this.#modules = options.modules;
    const withSecrets = options.modules.find((m) => m.resolveSecret);
    this.#secretResolver = withSecrets?.resolveSecret?.bind(withSecrets) ?? null;
    this.#clock = options.clock;
    this.#template = new ChainTemplate(options.modules.flatMap((m) => m.filters));
    this.#upstream = options.upstream ?? (options.config.upstream.provider === 'simulator' ? { kind: 'simulator', reason: 'chosen' } : { kind: options.config.upstream.provider });
    // Throws a message naming admin.key when the configured key is malformed.
    this.#adminKey = options.config.admin.key ? new AdminKey(options.config.admin.key) : null;
    const s = options.config.server;
    this.#budget = new MemoryBudget(s.memoryBudgetBytes, s.memoryBudgetTenantShare ?? defaultTenantShare(options.tenants.tenants.size), s.maxFrameBytes);
    this.#lingering = new LingeringSockets(options.config.server.idleTimeoutSec);
    this.#refusals = new RefusalLog(options.log, options.config.logging.refusalIntervalSec * 1000, () => options.clock.now());
    this.#clientListeners = options.clientListeners ?? true;
    this.#openSessions = options.openSessions ?? null;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /**
   * Every session this process runs, what `server.maxSessions` bounds: the WebSocket sessions and the
   * modules' own (a call's sidebands). Until 2026-12-06 (thirteenth session) each side counted only its
   * own against the bound, so the process could hold twice `maxSessions`.
   */
  get sessionsOpen(): number {
    let n = this.#sessions.size;
    for (const m of this.#modules) n += m.sessions?.() ?? 0;
    return n;
  }

  /** What the shutdown drain waits for: the WebSocket sessions and the modules' calls it would hang up. */
  #drainingSessions(): number {
    let n = this.#sessions.size;
    for (const m of this.#modules) n += m.drainingSessions?.() ?? 0;
    return n;
  }

  /** Sessions started since boot. */
  get sessionsStarted(): number {
    return this.#started;
  }

  get binary(): string {
    return uwsBinary;
  }

  /** What the key cache holds (it caches valid keys only, within a byte budget). */
  get keyCache(): { readonly keys: number; readonly bytes: number } {
    return { keys: this.#tenants.cachedKeys, bytes: this.#tenants.cachedBytes };
  }

  /** The global memory budget (read by tests and diagnostics). */
  get memoryBudget(): MemoryBudget {
    return this.#budget;
  }

  /** Why the proxy is not ready, or null. */
  readiness(): string | null {
    if (this.#draining) return 'draining';
    const up = this.#config.upstream;
    if (!up.apiKey) return 'upstream api key is not configured';
    return modulesReadiness(this.#modules);
  }

  async listen(ports?: ListenPorts): Promise<ListenAddress> {
    const s = this.#config.server;
    let port = 0;
    let tlsPort: number | null = null;
    if (this.#clientListeners) {
      // A relay worker shares the port its primary checked (ports given); a single process checks its own.
      if (!ports) {
        await ensurePortFree(s.host, s.port);
        if (s.tls) await ensurePortFree(s.host, s.tls.port);
      }
      port = await this.#listenOn(this.#configure(uws.App()), s.host, ports?.port ?? s.port);
      tlsPort = await this.#listenTls(ports?.tlsPort ?? s.tls?.port ?? null);
    }
    let adminPort: number | null = null;
    const admin = this.#config.admin;
    const adminRoutes = this.#modules.flatMap((m) => m.routes ?? []).filter((r) => r.auth !== 'tenant' && (r.auth !== 'admin' || this.#adminKey));
    if (admin.port !== null && adminRoutes.length > 0) {
      await ensurePortFree(admin.host, admin.port);
      const token = await this.#bind(this.#configureAdmin(uws.App(), adminRoutes), admin.host, admin.port);
      this.#adminListenSocket = token;
      adminPort = uws.us_socket_local_port(token);
    }
    this.#ticker = setInterval(() => this.#tick(), 1000);
    this.#ticker.unref();
    return { port, tlsPort, adminPort };
  }

  async #listenTls(port: number | null): Promise<number | null> {
    const s = this.#config.server;
    if (s.tls && port !== null) {
      const app = uws.SSLApp({
        cert_file_name: s.tls.certFile,
        key_file_name: s.tls.keyFile,
        ...(s.tls.passphrase ? { passphrase: s.tls.passphrase } : {}),
      });
      return this.#listenOn(this.#configure(app), s.host, port);
    }
    return null;
  }

  #tick(): void {
    const now = this.#clock.now();
    let held = this.#lingering.held(now);
    /** What each tenant's sessions hold: one entry per tenant with a session holding bytes. */
    const byTenant = new Map<string, number>();
    for (const session of this.#sessions) {
      // One session's failure ends that session only: every other session still gets its deadlines
      // checked, and the memory budget is still resynced (it would keep a stale figure otherwise).
      try {
        session.tick(now);
        const bytes = session.heldBytes();
        held += bytes;
        if (bytes > 0) byTenant.set(session.tenant.id, (byTenant.get(session.tenant.id) ?? 0) + bytes);
      } catch (err) {
        session.fail('tick', err);
      }
    }
    try {
      held -= this.#endOverShareSafely(byTenant);
      this.#budget.resync(held, byTenant);
      this.#refusals.flush();
      if (this.#bodyRefusals.size > 0) {
        this.#log.warn({ event: 'request_body_refused', refused: Object.fromEntries(this.#bodyRefusals), budgetUsed: this.#budget.used, budgetLimit: this.#budget.limit }, 'request bodies refused (memory budget or unauthenticated-body slots full)');
        this.#bodyRefusals.clear();
      }
    } catch (err) {
      this.#log.error({ err }, 'server tick failed');
    }
  }

  /** #endOverShare, whose failure must not skip the resync after it (the budget would keep a stale figure). */
  #endOverShareSafely(byTenant: Map<string, number>): number {
    try {
      return this.#endOverShare(byTenant);
    } catch (err) {
      this.#log.error({ err }, 'ending sessions past their tenant share failed');
      return 0;
    }
  }

  /**
   * Ends the largest sessions of each tenant whose sessions hold more than its share of the budget
   * (MemoryBudget.tenantLimit), until the rest fit: frames under BUDGETED_FRAME_BYTES are counted
   * only here, so a tenant can pass its share between two recounts. Updates `byTenant` (the ended
   * sessions no longer count for their tenant) and returns the bytes the global figure no longer
   * holds (what an ended session still holds goes on counting: lingering or, while it closes, its own).
   */
  #endOverShare(byTenant: Map<string, number>): number {
    const limit = this.#budget.tenantLimit;
    const over = new Set<string>();
    for (const [tenant, bytes] of byTenant) if (bytes > limit) over.add(tenant);
    if (over.size === 0) return 0;
    const candidates: { session: RelaySession; bytes: number }[] = [];
    for (const session of this.#sessions) {
      if (over.has(session.tenant.id)) candidates.push({ session, bytes: session.heldBytes() });
    }
    candidates.sort((a, b) => b.bytes - a.bytes);
    let released = 0;
    for (const { session, bytes } of candidates) {
      const tenant = session.tenant.id;
      const total = byTenant.get(tenant) ?? 0;
      if (total <= limit) continue;
      this.#log.warn({ event: 'tenant_memory_share_exceeded', tenant, session: session.id, sessionBytes: bytes, tenantBytes: total, tenantLimit: limit }, "a tenant's sessions hold more than its share of the memory budget: its largest session is ended");
      try {
        session.close(tenantShareExceeded('recount', limit));
      } catch (err) {
        session.fail('close', err);
      }
      const left = total - bytes;
      if (left > 0) byTenant.set(tenant, left);
      else byTenant.delete(tenant);
      released += bytes - (this.#sessions.has(session) ? session.heldBytes() : session.unsentAtEnd());
    }
    return released;
  }

  async #listenOn(app: TemplatedApp, host: string, port: number): Promise<number> {
    const token = await this.#bind(app, host, port);
    this.#listenSockets.push(token);
    return uws.us_socket_local_port(token);
  }

  #bind(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
    return new Promise((resolve, reject) => {
      app.listen(host, port, (token) => {
        if (!token) reject(new Error(`cannot listen on ${host}:${port}`));
        else resolve(token);
      });
    });
  }

  // ---- guards ------------------------------------------------------------------------------

  /** An HTTP handler that cannot throw into uWS: a failure answers 500 and is logged. */
  #total(name: string, handler: (exchange: Exchange, req: HttpRequest) => void): (res: HttpResponse, req: HttpRequest) => void {
    return (res, req) => {
      const exchange = new Exchange(res);
      try {
        res.onAborted(() => exchange.abort());
        exchange.headOnly = req.getMethod().toLowerCase() === 'head';
        if (ambiguousFraming(req)) {
          this.#refuseFraming(exchange);
          return;
        }
        handler(exchange, req);
      } catch (err) {
        this.#failed(exchange, name, err);
      }
    };
  }

  /**
   * Answers 400 to a request with ambiguous framing (see ambiguousFraming) and closes the connection.
   * uWS goes on parsing the bytes it already read after the handler returns, and a reply that asks
   * to close takes effect only once the answer left: an answer still in uWS's cork buffer (16 KiB)
   * let the smuggled request behind the first length be served, and its answer reset the close
   * (found 2026-12-06). So this answer is padded past the cork buffer: it is written to the socket at
   * once, uWS closes it, and the parser stops there. (If the socket cannot take it at once, a client
   * not reading earlier answers on a kept-alive connection, uWS closes after flushing instead.)
   */
  #refuseFraming(exchange: Exchange): void {
    exchange.bodyUnread = true;
    exchange.reply(AMBIGUOUS_FRAMING);
  }

  #failed(exchange: Exchange, name: string, err: unknown): void {
    this.#log.error({ err, handler: name }, 'request handler failed');
    try {
      exchange.reply(INTERNAL_ERROR);
    } catch {
      try {
        exchange.res.close();
      } catch {
        // Already gone.
      }
    }
  }

  /** A WebSocket callback that cannot throw into uWS: a failure ends that one session. */
  #guardWs<A extends unknown[]>(name: string, fn: (ws: ClientSocket, ...args: A) => void): (ws: ClientSocket, ...args: A) => void {
    // Called with at most two arguments after the socket, and passed on as they are: no rest
    // parameter or spread (an array per client message on the relay's path).
    const call = fn as unknown as (ws: ClientSocket, a: unknown, b: unknown) => void;
    const guarded = (ws: ClientSocket, a: unknown, b: unknown): void => {
      try {
        call(ws, a, b);
      } catch (err) {
        this.#log.error({ err, handler: name }, 'websocket handler failed');
        let session: RelaySession | null = null;
        try {
          session = ws.getUserData().session;
        } catch {
          // The socket is closed already.
        }
        try {
          if (session && !session.ended) session.close(new ProxyError('internal_error', { close: 'internalError' }));
          else if (name !== 'close') ws.end(1011, 'internal_error');
        } catch {
          // Closing failed too: the socket is gone.
        }
      }
    };
    return guarded as unknown as (ws: ClientSocket, ...args: A) => void;
  }

  // ---- client listener ---------------------------------------------------------------------

  #configure(app: TemplatedApp): TemplatedApp {
    const s = this.#config.server;
    app.ws<ClientSocketData>('/*', {
      compression: uws.DISABLED,
      // Headroom above the configured maximum so that an oversize frame gets an error event and the
      // session survives; frames beyond it make uWS cut the connection (1009). The headroom also
      // bounds the partially received message uWS holds per connection.
      maxPayloadLength: s.maxFrameBytes + s.oversizeHeadroomBytes,
      idleTimeout: s.idleTimeoutSec,
      sendPingsAutomatically: true,
      maxBackpressure: s.backpressure.maxBufferedBytes,
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => {
        const exchange = new Exchange(res);
        try {
          res.onAborted(() => {
            exchange.aborted = true;
          });
          exchange.inUpgradeCallback = true;
          this.#onUpgrade(exchange, req, context);
        } catch (err) {
          this.#failed(exchange, 'upgrade', err);
        } finally {
          exchange.inUpgradeCallback = false;
        }
      },
      open: this.#guardWs('open', (ws) => {
        this.#openSockets.add(ws);
        this.#onOpen(ws);
      }),
      message: this.#guardWs('message', (ws: ClientSocket, message: ArrayBuffer, isBinary: boolean) => ws.getUserData().session?.onClientMessage(message, isBinary)),
      drain: this.#guardWs('drain', (ws) => ws.getUserData().session?.onClientDrain()),
      close: this.#guardWs('close', (ws: UwsWebSocket<ClientSocketData>, code: number, message: ArrayBuffer) => {
        this.#openSockets.delete(ws);
        const data = ws.getUserData();
        const session = data.session;
        data.session = null;
        session?.onClientClose(code, Buffer.from(message).toString('utf8'));
      }),
    });
    this.#health(app);
    // Tenant-facing HTTP routes (client secrets, calls, SIP webhook: src/calls) live next to /v1/realtime.
    for (const m of this.#modules) for (const r of m.routes ?? []) if (r.auth === 'tenant') this.#route(app, r);
    app.any('/*', this.#total('not_found', (exchange) => exchange.reply(NOT_FOUND)));
    return app;
  }

  #health(app: RouteTable): void {
    const healthz = (exchange: Exchange) => exchange.reply(jsonReply(200, { status: 'ok', uws: uwsBinary }));
    const readyz = (exchange: Exchange) => {
      const why = this.readiness();
      const upstream = this.#upstream.kind === 'simulator' ? { upstream: 'simulator', simulator: this.#upstream.reason } : { upstream: this.#upstream.kind };
      const sessions = this.#openSessions ? this.#openSessions() : this.#sessions.size;
      exchange.reply(jsonReply(why ? 503 : 200, why ? { status: 'not_ready', reason: why, ...upstream, sessions } : { status: 'ready', ...upstream, sessions }));
    };
    app.get('/healthz', this.#total('healthz', healthz));
    app.get('/readyz', this.#total('readyz', readyz));
    // HEAD probes (Azure Front Door's default, uptime monitors) get the GET's status without its body
    // (#total marks every HEAD exchange): until 2026-12-07 they fell through to the catch-all 404
    // `not_found`, body included, and every instance was marked down.
    app.head('/healthz', this.#total('healthz', healthz));
    app.head('/readyz', this.#total('readyz', readyz));
  }

  // ---- admin listener ----------------------------------------------------------------------

  #configureAdmin(app: TemplatedApp, routes: readonly HttpRoute[]): TemplatedApp {
    // Every answer carries nosniff/DENY/no-referrer; bound to loopback, only loopback Host names are
    // answered (DNS rebinding: src/server/http.ts adminRouteTable).
    const table = adminRouteTable(app, isLoopbackName(this.#config.admin.host));
    this.#health(table);
    for (const r of routes) this.#route(table, r);
    table.any('/*', this.#total('not_found', (exchange) => exchange.reply(NOT_FOUND)));
    return app;
  }

  #route(app: RouteTable, route: HttpRoute): void {
    const paramCount = route.path.split('/').filter((p) => p.startsWith(':')).length;
    const paramNames = route.path.split('/').filter((p) => p.startsWith(':')).map((p) => p.slice(1));
    const handler = this.#total(route.path, (exchange, req) => {
      // Until the body has been read, every answer closes the connection (the body is not read on).
      exchange.bodyUnread = true;
      const { headers, duplicated, bytes } = copyHeaders(req);
      const rawParams = Array.from({ length: paramCount }, (_, i) => req.getParameter(i) ?? '');
      const source = requestSource(remoteAddress(exchange.res), headers, this.#config.server.forwardedForHops);
      const info = { method: route.method, path: req.getUrl(), query: new URLSearchParams(req.getQuery() ?? ''), headers, source };
      // From here every answer carries the route's own headers (CORS: a browser reads a 413 or a 503 too).
      if (route.answerHeaders) exchange.routeHeaders = route.answerHeaders(info);
      if (bytes > this.#config.server.maxHeaderBytes) return exchange.reply(jsonReply(431, { error: { code: 'headers_too_large' } }));
      if (duplicated.length > 0) return exchange.reply(jsonReply(400, { error: { code: 'invalid_request', message: `Repeated ${duplicated.join(', ')} header.` } }));
      // A new call or secret while draining is refused as an upgrade is (until 2026-12-06 it was served, and the drain's end hung it up).
      if (route.startsSession && this.#draining) {
        const shuttingDown = new ProxyError('server_shutting_down', { close: null });
        return exchange.reply({ status: shuttingDown.httpStatus, headers: refusalHeaders(shuttingDown), body: errorBody(shuttingDown) });
      }
      // Two carriers of a tenant key (Authorization and api-key, ...): ambiguous like a repeated header.
      if (route.auth === 'tenant' && presentedCredentials(headers).ambiguous) {
        return exchange.reply(jsonReply(400, { error: { type: 'invalid_request_error', code: 'invalid_request', message: 'More than one API key was presented; send exactly one.' } }));
      }
      if (route.auth === 'admin' && !this.#adminKey?.matches(headers.get('authorization'))) {
        return exchange.reply(jsonReply(401, { error: { code: 'invalid_admin_key' } }));
      }
      const params: Record<string, string> = Object.create(null) as Record<string, string>;
      for (let i = 0; i < paramNames.length; i++) {
        const decoded = safeDecode(rawParams[i]!);
        if (decoded === null) return exchange.reply(jsonReply(400, { error: { code: 'invalid_request', message: 'Malformed percent-encoding in the path.' } }));
        params[paramNames[i]!] = decoded;
      }
      this.#readBody(exchange, route, info, params);
    });
    const method = route.method;
    if (method === 'GET') app.get(route.path, handler);
    else if (method === 'POST') app.post(route.path, handler);
    else if (method === 'PUT') app.put(route.path, handler);
    else if (method === 'OPTIONS') app.options(route.path, handler);
    else app.del(route.path, handler);
  }

  /** Request bodies being read whose sender is not authenticated yet (read by tests and diagnostics). */
  get unverifiedBodies(): number {
    return this.#unverifiedBodies;
  }

  /** Those bodies by source (read by tests and diagnostics). */
  get unverifiedBodiesBySource(): ReadonlyMap<string, number> {
    return this.#unverifiedBySource;
  }

  /**
   * Reads a route's request body, bounded before anything is buffered: the route decides from the
   * headers first (a refusal is answered at once and closes the connection, the body unread); a
   * declared or received length past the route's limit answers 413; every buffered byte is held in
   * the memory budget until the request ends (503 `overloaded` when it is full); a body whose sender
   * is not authenticated yet takes one of `server.maxUnauthenticatedBodies` slots until it is
   * complete or its credential checked (503 `overloaded` when none is free, or when its source holds
   * its share, `maxUnauthenticatedBodiesPerSource`), and must arrive by a deadline from its length
   * (408 past it). Once its sender is authenticated, a tenant-route body's bytes count in its tenant's
   * share of the budget (MemoryBudget.ownerShare, a quarter; 503 `overloaded` past it), and every
   * tenant-route body must arrive within BODY_DEADLINE_MS (408). Called inside the uWS handler (onData must be attached there, and the remote
   * address read); everything it registers is guarded.
   */
  #readBody(exchange: Exchange, route: HttpRoute, head: HttpRequestHead, params: Readonly<Record<string, string>>): void {
    const limit = route.maxBodyBytes ?? MAX_ADMIN_BODY_BYTES;
    const admission: BodyAdmission = route.admit ? route.admit(head, params) : route.auth === 'admin' ? 'authenticated' : 'unverified';
    if (typeof admission === 'object' && !(admission instanceof Promise)) return exchange.reply(admission);
    const declared = head.headers.get('content-length');
    const length = declared === undefined ? 0 : Number(declared);
    if (Number.isFinite(length) && length > limit) return exchange.reply(tooLargeReply(limit));
    const expectsBody = head.headers.has('transfer-encoding') || length !== 0;
    const budget = this.#budget;
    const counted = (reason: string) => this.#bodyRefusals.set(reason, (this.#bodyRefusals.get(reason) ?? 0) + 1);
    const refusedFor = (reason: string, message: string): HttpReply => {
      counted(reason);
      return { status: 503, headers: { 'content-type': 'application/json' }, body: errorBody(new ProxyError('overloaded', { message })) };
    };
    /** The source whose share this request's slot counts in, while it holds one. */
    let slot: string | null = null;
    const key = route.auth === 'tenant' ? presentedCredentials(head.headers).key : null;
    /**
     * Whose share of the memory budget (MemoryBudget.ownerShare) this body's bytes count in once its
     * sender is authenticated: its tenant. Null before that (an unauthenticated body is bounded by its
     * slot), and for admin bodies.
     */
    let owner: string | null = admission === 'authenticated' && route.auth === 'tenant' ? this.#keyOwner(key) : null;
    if (admission !== 'authenticated' && expectsBody) {
      const s = this.#config.server;
      if (this.#unverifiedBodies >= s.maxUnauthenticatedBodies) {
        return exchange.reply(refusedFor('unauthenticated_bodies', 'The proxy is reading too many request bodies from unauthenticated senders; retry shortly.'));
      }
      const source = head.source ?? requestSource(remoteAddress(exchange.res), head.headers, s.forwardedForHops);
      const holds = this.#unverifiedBySource.get(source) ?? 0;
      if (holds >= s.maxUnauthenticatedBodiesPerSource) {
        return exchange.reply(refusedFor('unauthenticated_bodies_per_source', 'This sender has too many request bodies being read before authentication; retry shortly.'));
      }
      slot = source;
      this.#unverifiedBodies++;
      this.#unverifiedBySource.set(source, holds + 1);
    }
    // Whether the handler may have the body once it is complete: at once, unless a credential check is pending.
    let admitted = !(admission instanceof Promise);
    let held = 0;
    let timer: NodeJS.Timeout | null = null;
    /** Bounds how long an unauthenticated body may take to arrive (see UNVERIFIED_BODY_BASE_MS). */
    let slowTimer: NodeJS.Timeout | null = null;
    /** Bounds how long any tenant-route body may take to arrive (BODY_DEADLINE_MS). */
    let deadline: NodeJS.Timeout | null = null;
    const clearDeadline = () => {
      if (deadline) clearTimeout(deadline);
      deadline = null;
    };
    // One growing buffer, not a Buffer per chunk: see BodyBuffer (one-byte chunks cost ~100 bytes each).
    const received = new BodyBuffer(Number.isFinite(length) && length > 0 ? length : limit);
    let body: Buffer | null = null;
    const leaveSlot = () => {
      if (slowTimer) clearTimeout(slowTimer);
      slowTimer = null;
      if (slot === null) return;
      const left = (this.#unverifiedBySource.get(slot) ?? 1) - 1;
      if (left > 0) this.#unverifiedBySource.set(slot, left);
      else this.#unverifiedBySource.delete(slot);
      slot = null;
      this.#unverifiedBodies--;
    };
    /** Gives back everything this request holds; idempotent. */
    const settle = () => {
      leaveSlot();
      clearDeadline();
      if (timer) clearTimeout(timer);
      timer = null;
      if (owner !== null) budget.releaseFor(owner, held);
      else budget.release(held);
      held = 0;
      received.clear();
    };
    const refuse = (reply: HttpReply) => {
      exchange.reply(reply);
      settle();
    };
    const fail = (err: unknown) => {
      this.#failed(exchange, route.path, err);
      settle();
    };
    // Once the body is complete and the sender admitted: the handler, then everything is released.
    const run = () => {
      if (body === null || !admitted || !exchange.open) return;
      leaveSlot();
      exchange.onAbort = null;
      const request: HttpRequestInfo = { ...head, body };
      Promise.resolve()
        .then(() => route.handle(request, params))
        .then((reply) => exchange.reply(reply))
        .catch((err: unknown) => this.#failed(exchange, route.path, err))
        .finally(settle);
    };
    exchange.onAbort = settle;
    const shareFull = () => refusedFor('tenant_body_share', "This tenant's request bodies hold its share of the proxy's memory budget; retry shortly.");
    if (route.auth !== 'admin' && expectsBody) {
      deadline = setTimeout(() => {
        deadline = null;
        try {
          if (body !== null) return;
          counted('body_timeout');
          if (exchange.open) refuse(BODY_TIMEOUT);
          else settle();
        } catch (err) {
          fail(err);
        }
      }, BODY_DEADLINE_MS);
      deadline.unref();
    }
    if (slot !== null) {
      const expected = Number.isFinite(length) && length > 0 ? length : limit;
      slowTimer = setTimeout(() => {
        slowTimer = null;
        try {
          // A complete body waiting for its credential check is bounded by that check's own timer.
          if (slot === null || body !== null) return;
          counted('unauthenticated_body_timeout');
          if (exchange.open) refuse(BODY_TIMEOUT);
          else settle();
        } catch (err) {
          fail(err);
        }
      }, UNVERIFIED_BODY_BASE_MS + Math.ceil((expected * 1000) / UNVERIFIED_BODY_MIN_RATE));
      slowTimer.unref();
    }
    if (admission instanceof Promise) {
      timer = setTimeout(() => {
        timer = null;
        try {
          if (exchange.open) refuse(refusedFor('credential_check_timeout', 'The credential could not be checked in time; retry shortly.'));
          else settle();
        } catch (err) {
          fail(err);
        }
      }, BODY_ADMISSION_TIMEOUT_MS);
      timer.unref();
      admission
        .then(async (verdict) => {
          // Refused meanwhile (413, budget, timeout) or aborted: already released.
          if (!exchange.open || verdict !== 'authenticated') {
            if (timer) clearTimeout(timer);
            timer = null;
            if (exchange.open && verdict !== 'authenticated') refuse(verdict);
            return;
          }
          // Its tenant (a client secret's: looked up within the same bound as the check itself).
          const tenant = await this.#bodyOwner(key);
          if (timer) clearTimeout(timer);
          timer = null;
          if (!exchange.open) return;
          if (tenant !== null) {
            // What arrived while the credential was checked counts in the tenant's share from now on.
            if (!budget.assign(tenant, held)) return refuse(shareFull());
            owner = tenant;
          }
          admitted = true;
          leaveSlot();
          run();
        })
        .catch((err: unknown) => {
          if (exchange.open) fail(err);
          else settle();
        });
    }
    exchange.res.onData((chunk, isLast) => {
      try {
        if (!exchange.open || body !== null) return;
        const n = chunk.byteLength;
        if (received.length + n > limit) return refuse(tooLargeReply(limit));
        if (n > 0) {
          // Admin bodies (admin key checked, at most 1 MiB) are counted but never refused for memory.
          if (route.auth === 'admin') budget.hold(n);
          else if (owner !== null) {
            const full = budget.tryHoldFor(owner, n);
            if (full === 'share') return refuse(shareFull());
            if (full === 'budget') return refuse(refusedFor('memory_budget', 'The proxy is at its memory budget; retry shortly.'));
          } else if (!budget.tryHold(n)) return refuse(refusedFor('memory_budget', 'The proxy is at its memory budget; retry shortly.'));
          held += n;
          received.append(chunk);
        }
        if (!isLast) return;
        clearDeadline();
        exchange.bodyUnread = false;
        body = received.take();
        run();
      } catch (err) {
        fail(err);
      }
    });
  }

  /** The tenant of a tenant key (from the key cache), else the key's digest (a credential the proxy cannot place: its own share); null without a key. */
  #keyOwner(key: string | null): string | null {
    if (!key) return null;
    const tenant = key.length <= MAX_KEY_CHARS ? this.#tenants.resolve(key) : null;
    return tenant ? `tenant:${tenant.id}` : `credential:${sha256Hex(key)}`;
  }

  /** As #keyOwner, and for a client secret the tenant it was minted for (looked up; never throws). */
  async #bodyOwner(key: string | null): Promise<string | null> {
    const owner = this.#keyOwner(key);
    if (!key || owner?.startsWith('tenant:') || !this.#secretResolver || !key.startsWith(CLIENT_SECRET_PREFIX) || key.length > MAX_KEY_CHARS) return owner;
    try {
      const grant = await this.#secretResolver(key);
      return grant && !(grant instanceof ProxyError) ? `tenant:${grant.tenant.id}` : owner;
    } catch (err) {
      this.#log.error({ err }, 'client secret lookup failed (body share)');
      return owner;
    }
  }

  // ---- upgrades ----------------------------------------------------------------------------

  #onUpgrade(exchange: Exchange, req: HttpRequest, context: us_socket_context_t): void {
    // Everything from `req` must be copied now: it is invalid after this callback returns.
    const path = req.getUrl();
    const query = req.getQuery() ?? '';
    const copied = copyHeaders(req);
    const source = remoteAddress(exchange.res);
    if (ambiguousFraming(req)) {
      // Before any key is looked at.
      this.#refused('invalid_request', source);
      this.#refuseFraming(exchange);
      return;
    }
    this.#admitAndUpgrade(exchange, context, path, query, copied, source).catch((err: unknown) => this.#failed(exchange, 'upgrade', err));
  }

  #refused(reason: string, source: string, extra?: Readonly<Record<string, unknown>>): void {
    this.#refusals.refused(reason, source, extra);
    for (const m of this.#modules) {
      try {
        m.onUpgradeRefused?.(reason);
      } catch (err) {
        this.#log.error({ err, module: m.name }, 'refusal hook failed');
      }
    }
  }

  async #admitAndUpgrade(
    exchange: Exchange,
    context: us_socket_context_t,
    path: string,
    rawQuery: string,
    copied: ReturnType<typeof copyHeaders>,
    source: string,
  ): Promise<void> {
    const headers = copied.headers;
    const creds = presentedCredentials(headers);
    const refuse = (error: ProxyError, extra?: Readonly<Record<string, unknown>>) => {
      this.#refused(error.code, source, extra);
      if (!exchange.open) return;
      if (creds.browser) {
        // Browsers cannot read an HTTP status: accept, then send the error event and close.
        this.#upgrade(exchange, context, headers, creds.protocol, { session: null, refusal: error, admitted: null });
        return;
      }
      exchange.reply({ status: error.httpStatus, headers: refusalHeaders(error), body: errorBody(error) });
    };
    // Translation sessions (`openai`'s OpenAIRealtimeTranslationWS) open at `…/realtime/translations`:
    // governed as every session is, dialled at the upstream's translations endpoint.
    const translation = path.endsWith('/realtime/translations');
    if (!path.endsWith('/realtime') && !translation) {
      this.#refused('not_found', source);
      exchange.reply(jsonReply(404, { error: { code: 'not_found', message: 'WebSocket path must end in /realtime or /realtime/translations' } }));
      return;
    }
    if (copied.bytes > this.#config.server.maxHeaderBytes) return refuse(new ProxyError('headers_too_large', { message: `The request headers exceed ${this.#config.server.maxHeaderBytes} bytes.` }));
    if (copied.duplicated.length > 0) {
      return refuse(new ProxyError('invalid_request', { message: `The ${copied.duplicated.join(', ')} header appears more than once.` }));
    }
    // Two carriers of a key (Authorization and api-key, a header and a subprotocol, two subprotocols):
    // ambiguous like a repeated header, so refused instead of letting one of them win.
    if (creds.ambiguous) {
      return refuse(new ProxyError('invalid_request', { message: 'More than one API key was presented (Authorization, api-key, openai-insecure-api-key subprotocol); send exactly one.' }));
    }
    // A header value the upstream request cannot carry is the client's bad request, not an upstream outage.
    const badHeader = forwardedHeaderProblem(headers);
    if (badHeader) return refuse(badHeader);
    if (this.#draining) return refuse(new ProxyError('server_shutting_down'));
    if (this.sessionsOpen >= this.#config.server.maxSessions) return refuse(new ProxyError('overloaded'));
    if (this.#budget.exhausted) return refuse(new ProxyError('overloaded', { message: 'The proxy is at its memory budget; retry shortly.' }));
    if (!creds.key) return refuse(new ProxyError('missing_api_key'));
    // Over-long keys are not hashed, looked up or cached: no proxy key is that long.
    const short = creds.key.length <= MAX_KEY_CHARS;
    let tenant = short ? this.#tenants.resolve(creds.key) : null;
    // A client secret this proxy minted (a browser's short-lived credential): its tenant, model and config.
    const grant = short && !tenant && creds.key.startsWith(CLIENT_SECRET_PREFIX) ? await this.#secretGrant(creds.key) : null;
    if (grant instanceof ProxyError) return refuse(grant, { browser: creds.browser });
    tenant ??= grant?.tenant ?? null;
    if (!tenant) return refuse(new ProxyError('invalid_api_key'), { browser: creds.browser });
    // The secret's lookup may have awaited: checked again here, and once more after admission (below).
    if (this.sessionsOpen >= this.#config.server.maxSessions) return refuse(new ProxyError('overloaded'));
    // This tenant's sessions hold their share of the memory budget: its new sessions would add to
    // it (429, the tenant's own limit; other tenants still open). Checked before admission takes a slot.
    if (this.#budget.tenantExhausted(tenant.id)) return refuse(tenantShareExceeded('upgrade', this.#budget.tenantLimit), { browser: creds.browser });
    // Only model, intent and call_id reach the upstream; Azure models map to configured deployments.
    const readQuery = readClientQuery(rawQuery, this.#config.upstream);
    if (readQuery instanceof ProxyError) return refuse(readQuery);
    const translationProblem = translation ? translationQueryProblem(this.#config.upstream, readQuery.query) : null;
    if (translationProblem) return refuse(translationProblem);
    // A translation session: marked in its query (every filter and the dial read it there).
    const clientQuery = translation ? { ...readQuery, query: new Map([...readQuery.query, [TRANSLATION_SESSION_KEY, '1']]) } : readQuery;
    // A client secret's minted config is a realtime session's: it opens no translation session.
    if (grant && translation) {
      return refuse(new ProxyError('invalid_request', { message: 'A client secret cannot open a translation session; use the tenant key.' }), { browser: creds.browser });
    }
    if (clientQuery.dropped.length > 0) this.#log.debug({ tenant: tenant.id, dropped: clientQuery.dropped }, 'client query parameters not forwarded');
    // A client secret opens the session it was minted for, nothing else: attaching to a call (the
    // owner's tenant key only, unmetered there: the call's sideband meters it) or a transcription
    // session would leave its minted config behind. (Until 2026-12-05 a secret attached to calls.)
    const notForSecret = grant ? (['call_id', 'intent'] as const).find((name) => clientQuery.query.has(name)) : undefined;
    if (notForSecret) {
      return refuse(new ProxyError('invalid_request', { message: `A client secret cannot open a session with '${notForSecret}'; use the tenant key.`, param: notForSecret }), { browser: creds.browser });
    }
    // A secret's session runs the model it was minted for, whatever the URL says.
    const requested = grant ? grant.model : clientQuery.model;
    const query = grant ? new Map([...clientQuery.query, ['model', grant.model]]) : clientQuery.query;
    // What admission took for this upgrade goes with its ticket (decision.ticket): to the session it
    // opens, or back through withdraw on every way out below (a refusal or a throw inside admission
    // gives it back there). Until 2026-12-07 withdraw gave back any slot of the tenant, another
    // upgrade's included (test/metering/redteam-18-slot-ticket.test.ts).
    let decision: ProxyError | AdmissionRequest;
    try {
      // Not awaited when every check answered synchronously: the upgrade then happens inside
      // uWS's upgrade callback (see #upgrade for why that matters).
      const admitted = this.#template.admit({ tenant, model: requested, query });
      decision = admitted instanceof Promise ? await admitted : admitted;
    } catch (err) {
      this.#log.error({ err }, 'admission failed');
      decision = new ProxyError('internal_error', { close: 'internalError' });
    }
    const refuseAdmission = (error: ProxyError) => {
      this.#log.info({ event: 'session_refused', tenant: tenant.id, model: requested, code: error.code }, 'session refused');
      refuse(error);
    };
    if (decision instanceof ProxyError) return refuseAdmission(decision);
    const undialable = undialableModel(this.#config.upstream, decision.model);
    if (undialable) {
      this.#template.withdraw(decision);
      return refuseAdmission(undialable);
    }
    if (!exchange.open) {
      this.#template.withdraw(decision);
      return;
    }
    // The place among `maxSessions` is taken here, in the same synchronous step as the open (uWS calls
    // #onOpen inside res.upgrade): admission may have awaited (the Redis ledger, a relay worker's
    // ledger over IPC, a secret's lookup), and every upgrade read meanwhile passed the check before
    // it. Until 2026-12-07 nothing counted them: 20 upgrades of one capped tenant written at once on
    // the Redis ledger opened 20 sessions at maxSessions 2 (test/server/redteam-17-admission-race.test.ts).
    // Later that day a place was held from before admission instead, and a tenant allowed one session
    // kept every other tenant out with upgrades waiting on a slow Redis
    // (test/server/redteam-17b-admission-places.test.ts). What admission took for a refused one (a
    // concurrent-session slot) goes back at once, as for an upgrade whose client left meanwhile.
    if (this.sessionsOpen >= this.#config.server.maxSessions) {
      this.#template.withdraw(decision);
      return refuseAdmission(new ProxyError('overloaded'));
    }
    if (creds.betaMarker) this.#log.info({ tenant: tenant.id }, 'client sent the retired beta marker; stripped');
    if (decision.model !== requested) this.#log.info({ tenant: tenant.id, requested, model: decision.model }, 'model rewritten at admission');
    this.#upgrade(exchange, context, headers, creds.protocol, {
      session: null,
      refusal: null,
      admitted: { tenant, model: decision.model, query: decision.query, ticket: decision.ticket, headers, secretSession: grant?.session ?? null },
    });
  }

  /** What a client secret stands for: refused when unknown or expired, or when the store cannot answer. */
  async #secretGrant(key: string): Promise<SecretGrant | ProxyError | null> {
    if (!this.#secretResolver) return null;
    try {
      return (await this.#secretResolver(key)) ?? new ProxyError('invalid_client_secret');
    } catch (err) {
      this.#log.error({ err }, 'client secret lookup failed');
      return new ProxyError('internal_error', { message: 'The client secret could not be checked; retry shortly.', close: 'internalError' });
    }
  }

  /**
   * Completes the upgrade. Inside uWS's upgrade callback the response is already corked. After an
   * await (asynchronous admission, e.g. the Redis ledger) it is not, and `res.cork(() =>
   * res.upgrade())` is unsafe in this uWS build: the socket is reallocated in place into a
   * WebSocket, and cork's epilogue then reads the HTTP state from WebSocket memory and may shut
   * the new socket down (about 1 upgrade in 100 closed with 1006 right after open; uWS upstream
   * fixed this later). So the 101 is written inside the cork of another open client socket, which
   * satisfies uWS's "writes inside a cork" rule without corking this response; with no other
   * socket open it is written uncorked (uWS prints one warning line to stderr).
   */
  #upgrade(exchange: Exchange, context: us_socket_context_t, headers: Map<string, string>, protocol: string, data: ClientSocketData): void {
    if (!exchange.claim()) {
      // Answered or gone meanwhile: no session opens with this admission.
      if (data.admitted) this.#template.withdraw(data.admitted);
      return;
    }
    const res = exchange.res;
    const upgrade = () => res.upgrade(data, headers.get('sec-websocket-key') ?? '', protocol, headers.get('sec-websocket-extensions') ?? '', context);
    if (exchange.inUpgradeCallback) {
      res.cork(upgrade);
      return;
    }
    const host = this.#corkHost();
    if (host) host.cork(upgrade);
    else upgrade();
  }

  /** Any open client socket, to cork under (see #upgrade). */
  #corkHost(): ClientSocket | null {
    for (const ws of this.#openSockets) return ws;
    return null;
  }

  #onOpen(ws: ClientSocket): void {
    const data = ws.getUserData();
    if (data.refusal) {
      const error = data.refusal;
      ws.cork(() => {
        ws.send(JSON.stringify(error.toEvent(`event_proxy_${randomBytes(4).toString('hex')}`)), false);
        ws.end(error.closeCode ?? 4000, error.closeReason);
      });
      return;
    }
    const pending = data.admitted;
    if (!pending) {
      ws.end(1011, 'internal_error');
      return;
    }
    data.admitted = null;
    try {
      this.#openSession(ws, data, pending);
    } catch (err) {
      // A session that could not be made gives back what its admission took (nothing, once a filter claimed it).
      this.#template.withdraw(pending);
      throw err;
    }
  }

  #openSession(ws: ClientSocket, data: ClientSocketData, pending: AdmittedClient): void {
    const id = `rps_${randomBytes(8).toString('hex')}`;
    const log = this.#log.child({ session: id, tenant: pending.tenant.id, model: capLogBinding(pending.model) });
    const session = new RelaySession(
      {
        id,
        tenant: pending.tenant,
        model: pending.model,
        query: pending.query,
        target: upstreamTarget(this.#config.upstream, pending.query, pending.headers),
        config: this.#config,
        template: this.#template,
        clock: this.#clock,
        log,
        budget: this.#budget,
        secretSession: pending.secretSession,
        watchesGovernedCall: this.#config.calls.enabled && pending.query.has('call_id'),
        admission: pending.ticket,
        onEnded: (s) => this.#onSessionEnded(s),
      },
      ws,
    );
    data.session = session;
    this.#sessions.add(session);
    this.#started++;
    log.info({ event: 'session_start', userAgent: pending.headers.get('user-agent')?.slice(0, 256) ?? null }, 'session start');
    session.start();
  }

  #onSessionEnded(session: RelaySession): void {
    this.#sessions.delete(session);
    // Summed into the budget from the next tick on, as the session's own bytes were until then.
    this.#lingering.add(session.unsentAtEnd(), this.#clock.now());
    session.log.info(session.endRecord(), 'session end');
    if (this.#draining) this.#drained?.();
  }

  /**
   * Resolves when the last session has ended (see #onSessionEnded), or after `ms`. With `calls` too,
   * when the modules' calls the drain waits for have ended as well (they announce no end: looked at
   * every DRAIN_POLL_MS while draining).
   */
  #sessionsEnded(ms: number, calls = false): Promise<void> {
    return new Promise<void>((resolve) => {
      let poll: NodeJS.Timeout | null = null;
      const done = () => {
        clearTimeout(timer);
        if (poll) clearInterval(poll);
        this.#drained = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (calls) poll = setInterval(() => this.#drained?.(), DRAIN_POLL_MS);
      this.#drained = () => {
        if (this.#sessions.size > 0 || (calls && this.#drainingSessions() > 0)) return;
        done();
      };
    });
  }

  /**
   * Closes the client and admin listeners now, without draining: for an exit that cannot wait (a
   * second SIGTERM/SIGINT during the drain, src/cli.ts). Open connections are left to the exit.
   */
  closeListeners(): void {
    for (const token of this.#listenSockets.splice(0)) uws.us_listen_socket_close(token);
    if (this.#adminListenSocket) uws.us_listen_socket_close(this.#adminListenSocket);
    this.#adminListenSocket = null;
  }

  /**
   * Stops admitting, lets sessions finish for up to `drainMs`, then ends the rest with 1012 and,
   * once those mid-response have billed it (at most `metering.lingerAfterClientCloseMs`), closes the modules. The client listeners stay open while sessions drain, so that /readyz
   * answers 503 (load balancers take the instance out) and new upgrades get a 503
   * `server_shutting_down` instead of a refused connection; they close once the last session has
   * ended.
   */
  async shutdown(drainMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    // Calls a shutdown would hang up drain too: until 2026-12-06 only WebSocket sessions did, and an
    // instance governing calls alone hung every one up at SIGTERM and closed its listeners at once.
    if (this.#drainingSessions() > 0 && drainMs > 0) {
      this.#log.info({ sessions: this.#sessions.size, calls: this.#drainingSessions() - this.#sessions.size, drainMs }, 'draining sessions');
      await this.#sessionsEnded(drainMs, true);
    }
    for (const session of [...this.#sessions]) session.close(new ProxyError('server_shutting_down'));
    // A session closed mid-response lingers for that response's response.done (cancelled, billed as
    // OpenAI bills it): the modules (metering's ledger) close once those lingers ended, at most the
    // linger bound later. Until 2026-12-06 (thirteenth session) they closed at once, and every response
    // running when the drain ended was read after the ledger closed: "settle failed", never in the
    // tenant's spend (test/security/redteam-linger-2.test.ts).
    if (this.#sessions.size > 0 && this.#config.metering.enabled) await this.#sessionsEnded(this.#config.metering.lingerAfterClientCloseMs + LINGER_END_SLACK_MS);
    for (const token of this.#listenSockets.splice(0)) uws.us_listen_socket_close(token);
    if (this.#ticker) clearInterval(this.#ticker);
    this.#refusals.flush(true);
    // The admin listener (metrics, admin API) stays up through the drain.
    if (this.#adminListenSocket) uws.us_listen_socket_close(this.#adminListenSocket);
    this.#adminListenSocket = null;
    for (const m of [...this.#modules].reverse()) {
      try {
        await m.close?.();
      } catch (err) {
        this.#log.error({ err, module: m.name }, 'module close failed');
      }
    }
  }
}
