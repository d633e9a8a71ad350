import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t } from 'uWebSockets.js';
import type { HttpReply, HttpRequestInfo, HttpRoute, ProxyModule } from '../app/module.js';
import type { Config } from '../config/schema.js';
import { ChainTemplate } from '../pipeline/chain.js';
import type { Clock } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import type { TenantResolver } from '../tenants/resolver.js';
import { readClientQuery, undialableModel, upstreamTarget } from '../upstream/dial.js';
import { RelaySession, type ClientSocket, type ClientSocketData } from '../relay/session.js';
import { presentedCredentials } from './auth.js';
import { uws, uwsBinary } from './uws.js';

export interface ProxyServerOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly tenants: TenantResolver;
  readonly modules: readonly ProxyModule[];
  readonly clock: Clock;
}

export interface ListenAddress {
  readonly port: number;
  readonly tlsPort: number | null;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

const OVERSIZE_HEADROOM_BYTES = 16 * 1024 * 1024;

const statusLine = (status: number) => `${status} ${STATUS_TEXT[status] ?? 'Status'}`;

function sendReply(res: HttpResponse, reply: HttpReply, aborted: { value: boolean }): void {
  if (aborted.value) return;
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
    res.end(reply.body);
  });
}

function errorBody(error: ProxyError): string {
  return JSON.stringify({ error: { type: error.type, code: error.code, message: error.message, param: error.param, ...(error.details ? { details: error.details } : {}) } });
}

function hashKey(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * The uWS front: `ws://` and `wss://` listeners with identical routes, authentication before the
 * upgrade, health and module routes, and a single low-resolution timer for liveness checks.
 */
export class ProxyServer {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #tenants: TenantResolver;
  readonly #modules: readonly ProxyModule[];
  readonly #clock: Clock;
  readonly #template: ChainTemplate;
  readonly #sessions = new Set<RelaySession>();
  readonly #listenSockets: us_listen_socket[] = [];
  readonly #adminKeyHash: Buffer | null;
  #ticker: NodeJS.Timeout | null = null;
  #draining = false;
  #drained: (() => void) | null = null;

  constructor(options: ProxyServerOptions) {
    this.#config = options.config;
    this.#log = options.log;
    this.#tenants = options.tenants;
    this.#modules = options.modules;
    this.#clock = options.clock;
    this.#template = new ChainTemplate(options.modules.flatMap((m) => m.filters));
    const admin = options.config.admin.key;
    this.#adminKeyHash = admin ? (admin.startsWith('sha256:') ? Buffer.from(admin.slice(7), 'hex') : hashKey(admin)) : null;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  get binary(): string {
    return uwsBinary;
  }

  /** Why the proxy is not ready, or null. */
  readiness(): string | null {
    if (this.#draining) return 'draining';
    const up = this.#config.upstream;
    if (!up.apiKey) return 'upstream api key is not configured';
    for (const m of this.#modules) {
      const r = m.readiness?.() ?? null;
      if (r) return `${m.name}: ${r}`;
    }
    return null;
  }

  async listen(): Promise<ListenAddress> {
    const s = this.#config.server;
    const port = await this.#listenOn(this.#configure(uws.App()), s.host, s.port);
    let tlsPort: number | null = null;
    if (s.tls) {
      const app = uws.SSLApp({
        cert_file_name: s.tls.certFile,
        key_file_name: s.tls.keyFile,
        ...(s.tls.passphrase ? { passphrase: s.tls.passphrase } : {}),
      });
      tlsPort = await this.#listenOn(this.#configure(app), s.host, s.tls.port);
    }
    this.#ticker = setInterval(() => {
      const now = this.#clock.now();
      for (const session of this.#sessions) session.tick(now);
    }, 1000);
    this.#ticker.unref();
    return { port, tlsPort };
  }

  #listenOn(app: TemplatedApp, host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      app.listen(host, port, (token) => {
        if (!token) {
          reject(new Error(`cannot listen on ${host}:${port}`));
          return;
        }
        this.#listenSockets.push(token);
        resolve(uws.us_socket_local_port(token));
      });
    });
  }

  #configure(app: TemplatedApp): TemplatedApp {
    const s = this.#config.server;
    app.ws<ClientSocketData>('/*', {
      compression: uws.DISABLED,
      // Headroom above the configured maximum so that an oversize frame gets an error event and the
      // session survives; only frames beyond the headroom make uWS cut the connection.
      maxPayloadLength: s.maxFrameBytes + OVERSIZE_HEADROOM_BYTES,
      idleTimeout: s.idleTimeoutSec,
      sendPingsAutomatically: true,
      maxBackpressure: s.backpressure.maxBufferedBytes,
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => this.#onUpgrade(res, req, context),
      open: (ws) => this.#onOpen(ws),
      message: (ws, message, isBinary) => ws.getUserData().session?.onClientMessage(message, isBinary),
      drain: (ws) => ws.getUserData().session?.onClientDrain(),
      close: (ws, code, message) => {
        const data = ws.getUserData();
        data.session?.onClientClose(code, Buffer.from(message).toString('utf8'));
        data.session = null;
      },
    });
    app.get('/healthz', (res) => {
      res.writeHeader('content-type', 'application/json').end(JSON.stringify({ status: 'ok', uws: uwsBinary }));
    });
    app.get('/readyz', (res) => {
      const why = this.readiness();
      res.writeStatus(statusLine(why ? 503 : 200)).writeHeader('content-type', 'application/json');
      res.end(JSON.stringify(why ? { status: 'not_ready', reason: why } : { status: 'ready', sessions: this.#sessions.size }));
    });
    for (const m of this.#modules) for (const r of m.routes ?? []) this.#route(app, r);
    app.any('/*', (res) => {
      res.writeStatus(statusLine(404)).writeHeader('content-type', 'application/json').end(JSON.stringify({ error: { code: 'not_found' } }));
    });
    return app;
  }

  #route(app: TemplatedApp, route: HttpRoute): void {
    if (route.auth === 'admin' && !this.#adminKeyHash) return;
    const paramNames = route.path.split('/').filter((p) => p.startsWith(':')).map((p) => p.slice(1));
    const handler = (res: HttpResponse, req: HttpRequest) => {
      const aborted = { value: false };
      res.onAborted(() => {
        aborted.value = true;
      });
      const headers = new Map<string, string>();
      req.forEach((k, v) => headers.set(k, v));
      const params: Record<string, string> = {};
      paramNames.forEach((name, i) => (params[name] = decodeURIComponent(req.getParameter(i) ?? '')));
      const info = { method: route.method, path: req.getUrl(), query: new URLSearchParams(req.getQuery() ?? ''), headers };
      if (route.auth === 'admin' && !this.#isAdmin(headers)) {
        sendReply(res, { status: 401, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'invalid_admin_key' } }) }, aborted);
        return;
      }
      const chunks: Buffer[] = [];
      res.onData((chunk, isLast) => {
        chunks.push(Buffer.from(new Uint8Array(chunk)));
        if (!isLast) return;
        const request: HttpRequestInfo = { ...info, body: Buffer.concat(chunks) };
        Promise.resolve()
          .then(() => route.handle(request, params))
          .then(
            (reply) => sendReply(res, reply, aborted),
            (err: unknown) => {
              this.#log.error({ err, path: route.path }, 'route failed');
              sendReply(res, { status: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'internal_error' } }) }, aborted);
            },
          );
      });
    };
    const method = route.method;
    if (method === 'GET') app.get(route.path, handler);
    else if (method === 'POST') app.post(route.path, handler);
    else if (method === 'PUT') app.put(route.path, handler);
    else app.del(route.path, handler);
  }

  #isAdmin(headers: ReadonlyMap<string, string>): boolean {
    const m = /^Bearer\s+(\S+)$/i.exec(headers.get('authorization') ?? '');
    if (!m || !this.#adminKeyHash) return false;
    return timingSafeEqual(hashKey(m[1]!), this.#adminKeyHash);
  }

  #onUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    const aborted = { value: false };
    res.onAborted(() => {
      aborted.value = true;
    });
    // Everything from `req` must be copied now: it is invalid after this callback returns.
    const path = req.getUrl();
    const query = req.getQuery() ?? '';
    const headers = new Map<string, string>();
    req.forEach((k, v) => headers.set(k, v));
    void this.#admitAndUpgrade(res, context, path, query, headers, aborted);
  }

  async #admitAndUpgrade(
    res: HttpResponse,
    context: us_socket_context_t,
    path: string,
    rawQuery: string,
    headers: Map<string, string>,
    aborted: { value: boolean },
  ): Promise<void> {
    const creds = presentedCredentials(headers);
    const refuse = (error: ProxyError) => {
      if (aborted.value) return;
      if (creds.browser) {
        // Browsers cannot read an HTTP status: accept, then send the error event and close.
        this.#upgrade(res, context, headers, creds.protocol, { session: null, refusal: error, admitted: null });
        return;
      }
      sendReply(res, { status: error.httpStatus, headers: { 'content-type': 'application/json' }, body: errorBody(error) }, aborted);
    };
    if (!path.endsWith('/realtime')) {
      sendReply(res, { status: 404, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'not_found', message: 'WebSocket path must end in /realtime' } }) }, aborted);
      return;
    }
    if (this.#draining) return refuse(new ProxyError('server_shutting_down'));
    if (this.#sessions.size >= this.#config.server.maxSessions) return refuse(new ProxyError('overloaded'));
    if (!creds.key) return refuse(new ProxyError('missing_api_key'));
    const tenant = this.#tenants.resolve(creds.key);
    if (!tenant) {
      this.#log.info({ event: 'auth_failed', browser: creds.browser }, 'unknown proxy key');
      return refuse(new ProxyError('invalid_api_key'));
    }
    // Only model, intent and call_id reach the upstream; Azure models map to configured deployments.
    const clientQuery = readClientQuery(rawQuery, this.#config.upstream);
    if (clientQuery instanceof ProxyError) return refuse(clientQuery);
    if (clientQuery.dropped.length > 0) this.#log.debug({ tenant: tenant.id, dropped: clientQuery.dropped }, 'client query parameters not forwarded');
    const { model: requested, query } = clientQuery;
    let decision: ProxyError | { readonly model: string; readonly query: ReadonlyMap<string, string> };
    try {
      decision = await this.#template.admit({ tenant, model: requested, query });
    } catch (err) {
      this.#log.error({ err }, 'admission failed');
      decision = new ProxyError('internal_error', { close: 'internalError' });
    }
    if (!(decision instanceof ProxyError)) decision = undialableModel(this.#config.upstream, decision.model) ?? decision;
    if (decision instanceof ProxyError) {
      this.#log.info({ event: 'session_refused', tenant: tenant.id, model: requested, code: decision.code }, 'session refused');
      return refuse(decision);
    }
    if (aborted.value) return;
    if (creds.betaMarker) this.#log.info({ tenant: tenant.id }, 'client sent the retired beta marker; stripped');
    if (decision.model !== requested) this.#log.info({ tenant: tenant.id, requested, model: decision.model }, 'model rewritten at admission');
    this.#upgrade(res, context, headers, creds.protocol, {
      session: null,
      refusal: null,
      admitted: { tenant, model: decision.model, query: decision.query, headers },
    });
  }

  #upgrade(res: HttpResponse, context: us_socket_context_t, headers: Map<string, string>, protocol: string, data: ClientSocketData): void {
    res.cork(() => {
      res.upgrade(data, headers.get('sec-websocket-key') ?? '', protocol, headers.get('sec-websocket-extensions') ?? '', context);
    });
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
    const id = `rps_${randomBytes(8).toString('hex')}`;
    const log = this.#log.child({ session: id, tenant: pending.tenant.id, model: pending.model });
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
        onEnded: (s) => this.#onSessionEnded(s),
      },
      ws,
    );
    data.session = session;
    this.#sessions.add(session);
    log.info({ event: 'session_start', userAgent: pending.headers.get('user-agent') ?? null }, 'session start');
    session.start();
  }

  #onSessionEnded(session: RelaySession): void {
    this.#sessions.delete(session);
    session.log.info(session.endRecord(), 'session end');
    if (this.#draining && this.#sessions.size === 0) this.#drained?.();
  }

  /**
   * Stops accepting, lets sessions finish for up to `drainMs`, then ends the rest with 1012 and
   * closes the modules.
   */
  async shutdown(drainMs: number): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    for (const token of this.#listenSockets.splice(0)) uws.us_listen_socket_close(token);
    if (this.#sessions.size > 0 && drainMs > 0) {
      this.#log.info({ sessions: this.#sessions.size, drainMs }, 'draining sessions');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const session of [...this.#sessions]) session.close(new ProxyError('server_shutting_down'));
    if (this.#ticker) clearInterval(this.#ticker);
    for (const m of [...this.#modules].reverse()) {
      try {
        await m.close?.();
      } catch (err) {
        this.#log.error({ err, module: m.name }, 'module close failed');
      }
    }
  }
}
