import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ADMIN_ANSWER_HEADERS, isLoopbackHost, isLoopbackName, sourceKey } from '../server/http.js';

/** Where the separate listener (`telemetry.metrics.prometheus.port`) listens and what it serves. */
export interface PrometheusListenerOptions {
  readonly host: string;
  /** 0: a port the OS picks (`port` tells which). */
  readonly port: number;
  readonly path: string;
}

const MISDIRECTED_BODY = JSON.stringify({
  error: {
    code: 'misdirected_request',
    message: 'The metrics listener is bound to a loopback address and answers loopback Host names only (localhost, 127.0.0.0/8, [::1]).',
  },
});

/**
 * Bounds of a listener that may face the network (0.0.0.0 by default): scrapers are few and quick,
 * so a few connections at once, a few of them per source, and a request must arrive whole within
 * seconds (Node's defaults, unbounded connections and 60 s / 300 s, let anyone hold sockets open
 * for minutes). Until 2026-12-07 one address could hold all 32 with idle sockets, and no scrape got
 * through (src/telemetry/prometheus-listener.test.ts).
 */
export const PROMETHEUS_MAX_CONNECTIONS = 32;
/** Of PROMETHEUS_MAX_CONNECTIONS, how many one source (an address; IPv6 by its /64: sourceKey) may hold. */
export const PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE = 8;
export const PROMETHEUS_REQUEST_TIMEOUT_MS = 10_000;
/**
 * From a request read to its answer's last byte handed to the OS: the render (up to 5 s with relay
 * workers) and the transfer. A client that reads the answer slowly or not at all loses the
 * connection then; until 2026-12-07 nothing bounded that wait (Node's timeouts cover the request
 * only), and 4 sources of 8 connections each, every one asking once and never reading, kept every
 * scrape out for good (test/telemetry/redteam-17g-prometheus-pipeline.test.ts).
 */
export const PROMETHEUS_ANSWER_DEADLINE_MS = 20_000;
/**
 * How often Node looks for requests past their timeout (a silent connection counts from its
 * accept): its default, 30 s, let a socket that sends nothing stay up to 40 s.
 */
const TIMEOUT_CHECK_INTERVAL_MS = 1000;

/** Every `Host` header the request carried (Node keeps only the first in `headers.host`). */
function hostHeaders(req: IncomingMessage): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') out.push(req.rawHeaders[i + 1]!);
  return out;
}

/**
 * The separate Prometheus listener (`telemetry.metrics.prometheus.port`): `GET <path>` answers the
 * exposition `text()` gives, anything else 404. It follows the admin listener's rule (src/server/http.ts
 * adminRouteTable): bound to a loopback address it answers only requests whose `Host` is a loopback
 * name (isLoopbackHost), any other gets 421 `misdirected_request` and the connection is closed, so a
 * web page whose name is re-pointed to 127.0.0.1 (DNS rebinding) cannot read the metrics from the
 * operator's browser; bound elsewhere it answers any `Host`. Every answer carries
 * ADMIN_ANSWER_HEADERS (`X-Content-Type-Options: nosniff`, …). Used by the single process
 * (TelemetrySdk) and by the primary of several relay workers (the merged exposition).
 */
export class PrometheusListener {
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Listens; rejects when the address cannot be bound (nothing is left listening then). */
  static async start(options: PrometheusListenerOptions, text: () => Promise<string>): Promise<PrometheusListener> {
    const loopbackOnly = isLoopbackName(options.host);
    const answering = new WeakSet<Socket>();
    const server = createServer({ connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS }, (req, res) => {
      if (PrometheusListener.#oneAtATime(req, res, answering)) PrometheusListener.#answer(req, res, options.path, loopbackOnly, text);
    });
    server.maxConnections = PROMETHEUS_MAX_CONNECTIONS;
    const bySource = new Map<string, number>();
    server.on('connection', (socket: Socket) => PrometheusListener.#admit(socket, bySource));
    server.headersTimeout = PROMETHEUS_REQUEST_TIMEOUT_MS;
    server.requestTimeout = PROMETHEUS_REQUEST_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        // Once listening, an error (a failed accept: EMFILE) must not throw out of the process; the
        // listener goes on (Node retries accepting on the next connection).
        server.on('error', () => undefined);
        resolve();
      });
    });
    // Like the OTel exporter's own server: it does not keep the process alive by itself.
    server.unref();
    return new PrometheusListener(server);
  }

  /**
   * Counts an accepted connection in its source's share, or closes it at once when the share is full
   * (as Node closes those past maxConnections). An entry goes when its count reaches 0, so the map
   * holds at most PROMETHEUS_MAX_CONNECTIONS entries.
   */
  static #admit(socket: Socket, bySource: Map<string, number>): void {
    const address = socket.remoteAddress;
    // Gone already (reset before it was accepted): nothing to count.
    if (address === undefined) {
      socket.destroy();
      return;
    }
    const source = sourceKey(address) ?? address;
    const holds = bySource.get(source) ?? 0;
    if (holds >= PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE) {
      socket.destroy();
      return;
    }
    bySource.set(source, holds + 1);
    socket.once('close', () => {
      const left = (bySource.get(source) ?? 1) - 1;
      if (left > 0) bySource.set(source, left);
      else bySource.delete(source);
    });
  }

  /**
   * One answer at a time per connection: a request arriving while its connection's answer is still
   * out (pipelined; Prometheus never pipelines) closes the connection unanswered. Until 2026-12-07
   * Node's parser handed over every request of a packet and each was rendered and its answer
   * buffered behind the unread first: a client writing 64 KiB of `GET /metrics` and reading nothing
   * made ~1,500 expositions wait in memory (test/telemetry/redteam-17g-prometheus-pipeline.test.ts).
   */
  static #oneAtATime(req: IncomingMessage, res: ServerResponse, answering: WeakSet<Socket>): boolean {
    const socket = req.socket;
    if (answering.has(socket)) {
      socket.destroy();
      return false;
    }
    answering.add(socket);
    const deadline = setTimeout(() => socket.destroy(), PROMETHEUS_ANSWER_DEADLINE_MS);
    deadline.unref();
    const done = (): void => {
      clearTimeout(deadline);
      answering.delete(socket);
    };
    res.once('finish', done);
    res.once('close', done);
    return true;
  }

  static #answer(req: IncomingMessage, res: ServerResponse, path: string, loopbackOnly: boolean, text: () => Promise<string>): void {
    for (const [name, value] of Object.entries(ADMIN_ANSWER_HEADERS)) res.setHeader(name, value);
    if (loopbackOnly && !hostHeaders(req).every(isLoopbackHost)) {
      // The connection closes: nothing else of this client is read.
      res.writeHead(421, { 'content-type': 'application/json', connection: 'close' }).end(MISDIRECTED_BODY);
      return;
    }
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== path) {
      res.writeHead(404).end();
      return;
    }
    text().then(
      (body) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body),
      () => res.writeHead(500).end(),
    );
  }

  /** The bound port (the one the OS picked for port 0). */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Stops listening; idle keep-alive connections are closed, a scrape in flight is answered first. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await closed;
  }
}
