import { createServer as createNetServer, isIPv4, isIPv6 } from 'node:net';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { HttpReply } from '../app/module.js';

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  421: 'Misdirected Request',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export const statusLine = (status: number): string => `${status} ${STATUS_TEXT[status] ?? 'Status'}`;

/** Where a listener's handlers may leave headers every answer of theirs carries (see adminRouteTable). */
const ANSWER_HEADERS = Symbol('answerHeaders');
type TaggedResponse = HttpResponse & { [ANSWER_HEADERS]?: Readonly<Record<string, string>> };

/**
 * What is known about one HTTP exchange across its callbacks: uWS forbids touching a response
 * after it was aborted, answered or upgraded, so every late writer checks `open` first.
 */
export class Exchange {
  aborted = false;
  answered = false;
  /** True while uWS's own upgrade callback runs (the response is corked by uWS then). */
  inUpgradeCallback = false;
  /**
   * True while a request body may still be on its way: a reply then closes the connection, so the
   * rest of the body is never read (uWS would otherwise go on reading and discarding it).
   */
  bodyUnread = false;
  /** Runs once if uWS reports the request aborted (releases what the exchange holds). */
  onAbort: (() => void) | null = null;
  /**
   * Headers every answer to this request carries, the server's own refusals before the route's
   * handler included (HttpRoute.answerHeaders: the calls route's CORS), unless the reply set them.
   */
  routeHeaders: Readonly<Record<string, string>> | null = null;
  /**
   * A HEAD request: the answer is the GET's status and headers, without a body (RFC 9110 §9.3.2; a
   * body after a HEAD answer is read by a kept-alive client as its next answer) and without a
   * Content-Length: this uWS build's `endWithoutBody(n)` with n > 0 leaves the response waiting for n
   * bytes (the next request on the connection then closes it, and a response without an onAborted
   * handler aborts the process), so it is ended with none of the GET's. It closes the connection, as
   * a bodiless 204 does (see reply): `endWithoutBody` buffers what the socket does not take, as `end`
   * does, and until 2026-12-07 a client pipelining `HEAD /healthz` (or a HEAD of any path) without
   * reading made the process hold every answer's head, unbounded (32 MB sent: +89 MB resident;
   * test/security/redteam-21-head-pipelining.test.ts). This build closes only with a reported length
   * (`endWithoutBody(0, true)`: `Content-Length: 0`; without one the answer is dropped unsent).
   */
  headOnly = false;

  constructor(readonly res: HttpResponse) {}

  /** uWS's onAborted: the response must not be touched any more. Never throws. */
  abort(): void {
    this.aborted = true;
    const hook = this.onAbort;
    this.onAbort = null;
    try {
      hook?.();
    } catch {
      // A release hook that fails must not reach uWS.
    }
  }

  get open(): boolean {
    return !this.aborted && !this.answered;
  }

  /** Marks the exchange as taken over (upgraded); later replies are dropped. */
  claim(): boolean {
    if (!this.open) return false;
    this.answered = true;
    return true;
  }

  /**
   * Writes the answer. An answer that keeps the connection is written with `tryEnd`, which writes
   * only what the socket takes: on a connection whose earlier answers are still unsent (a client
   * that pipelines requests and does not read), the rest is sent as the socket drains
   * (#finishWhenWritable) and the answer stays pending meanwhile, so uWS closes the connection at
   * the next pipelined request (it refuses requests behind a pending answer) or at its HTTP timeout.
   * Until 2026-12-06 every answer was written with `end`, which buffers whatever the socket does not
   * take, and uWS went on reading and answering: one unauthenticated connection pipelining
   * `GET /healthz` (or any 404, or keyless upgrades) without reading made the process hold about
   * 7 bytes of answers per byte it sent, unbounded and outside the memory budget (200 MB sent: 1.4 GB
   * resident). An answer that closes the connection (`bodyUnread`) is still ended with `end` (uWS's
   * close-after-flush needs it); so is one without a body (a CORS preflight's 204), which `tryEnd`
   * cannot tell about the socket: it closes the connection too, or pipelined preflights would pile
   * up the same way (a browser opens another connection for the request it preflighted).
   */
  reply(reply: HttpReply): void {
    if (!this.claim()) return;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(reply.status));
      const own = reply.headers ?? {};
      for (const [k, v] of Object.entries(own)) res.writeHeader(k, v);
      // The route's and the listener's own headers, unless already written (a header is never sent twice).
      const names = Object.keys(own).map((n) => n.toLowerCase());
      for (const extra of [this.routeHeaders, (res as TaggedResponse)[ANSWER_HEADERS]]) {
        if (!extra) continue;
        for (const [k, v] of Object.entries(extra)) {
          if (names.includes(k)) continue;
          names.push(k);
          res.writeHeader(k, v);
        }
      }
      // A refusal that closes the connection (bodyUnread) keeps its body: its padding flushes it at once.
      if (this.headOnly && !this.bodyUnread) {
        res.endWithoutBody(0, true);
        return;
      }
      if (this.bodyUnread || reply.body.length === 0) {
        res.end(reply.body, true);
        return;
      }
      const body = typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
      const [, done] = res.tryEnd(body, body.length);
      if (!done) this.#finishWhenWritable(body);
    });
  }

  /** Sends the rest of an answer `tryEnd` could not write at once, as the socket drains. Never throws into uWS. */
  #finishWhenWritable(body: Buffer): void {
    const res = this.res;
    // uWS requires an abort handler on a pending response (it ends the process otherwise).
    res.onAborted(() => this.abort());
    res.onWritable((offset) => {
      if (this.aborted) return true;
      try {
        const [ok, done] = res.tryEnd(body.subarray(offset), body.length);
        return ok || done;
      } catch {
        return true;
      }
    });
  }
}

export const jsonReply = (status: number, body: unknown): HttpReply => ({ status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Headers that carry a credential: a request that repeats one is ambiguous and refused. */
const SINGLE_VALUED = new Set(['authorization', 'api-key', 'sec-websocket-key']);

export interface CopiedHeaders {
  /** Lower-cased names; values of repeated non-credential headers are joined with `, ` (RFC 9110). */
  readonly headers: Map<string, string>;
  /** Credential headers that appeared more than once. */
  readonly duplicated: string[];
  /** Bytes of all names and values. */
  readonly bytes: number;
}

/**
 * Copies the request headers out of uWS (they are invalid after the callback returns). Never throws;
 * repeated credential headers are reported instead of letting the last one win.
 */
export function copyHeaders(req: HttpRequest): CopiedHeaders {
  const headers = new Map<string, string>();
  const duplicated: string[] = [];
  let bytes = 0;
  req.forEach((name, value) => {
    bytes += name.length + value.length + 4;
    const previous = headers.get(name);
    if (previous === undefined) {
      headers.set(name, value);
      return;
    }
    if (SINGLE_VALUED.has(name)) {
      if (!duplicated.includes(name)) duplicated.push(name);
      return;
    }
    headers.set(name, `${previous}, ${value}`);
  });
  return { headers, duplicated, bytes };
}

/** `decodeURIComponent` that answers null for malformed input instead of throwing `URIError`. */
export function safeDecode(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

/** The colon-separated groups of one side of an IPv6 '::' (none for an empty or missing side). */
const groupsOf = (side: string | undefined): string[] => (side ? side.split(':') : []);

/** The 8 groups of an IPv6 address (valid per `isIPv6`, so at most one '::'), as numbers; an embedded IPv4 tail becomes two groups. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const dot = text.lastIndexOf(':');
  const tail = text.slice(dot + 1);
  if (isIPv4(tail)) {
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, dot + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [before, after] = text.split('::');
  const left = groupsOf(before);
  const right = groupsOf(after);
  // No '::': eight groups already (an empty fill).
  const zeros = Array.from({ length: 8 - left.length - right.length }, () => '0');
  return [...left, ...zeros, ...right].map((g) => parseInt(g, 16));
}

/**
 * Whom a request counts against in per-source shares: an IPv4 address as it is (an IPv4-mapped IPv6
 * one too), an IPv6 address by its /64 (one host is commonly given a whole /64, so its addresses
 * are one sender). Null for anything that is not an IP address. Never throws.
 */
export function sourceKey(address: string): string | null {
  const a = address.trim();
  if (isIPv4(a)) return a;
  // A zone index (fe80::1%eth0) names an interface, not a sender.
  const bare = a.split('%', 1)[0]!;
  if (!isIPv6(bare)) return null;
  const g = ipv6Groups(bare);
  if (g.slice(0, 5).every((n) => n === 0) && g[5] === 0xffff) return `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  return `${g
    .slice(0, 4)
    .map((n) => n.toString(16))
    .join(':')}::/64`;
}

/**
 * The source of a request: the connection's address, or with `forwardedForHops` = N trusted proxies in
 * front, the Nth entry from the right of X-Forwarded-For (the address the outermost trusted proxy saw;
 * entries left of it are the client's own claims). The connection's address when the header has
 * fewer entries or that entry is not an address. Never throws.
 */
export function requestSource(connection: string, headers: ReadonlyMap<string, string>, forwardedForHops: number): string {
  const own = sourceKey(connection) ?? connection.slice(0, 64);
  if (forwardedForHops <= 0) return own;
  const header = headers.get('x-forwarded-for');
  if (header === undefined) return own;
  const entries = header.split(',');
  if (entries.length < forwardedForHops) return own;
  return sourceKey(entries[entries.length - forwardedForHops]!) ?? own;
}

/** Whether an IPv6 address (valid per `isIPv6`) is a loopback one: ::1, or an IPv4-mapped 127.0.0.0/8 address. */
function isLoopbackIPv6(address: string): boolean {
  const g = ipv6Groups(address);
  if (g.slice(0, 7).every((n) => n === 0) && g[7] === 1) return true;
  return g.slice(0, 5).every((n) => n === 0) && g[5] === 0xffff && g[6]! >> 8 === 127;
}

/**
 * Whether a host name or address is a loopback one: `localhost` (any case), an IPv4 address in
 * 127.0.0.0/8, or the IPv6 loopback (`::1` in any spelling, bracketed or not; an IPv4-mapped
 * 127.0.0.0/8 address). Anything else (other names, `0.0.0.0`, `::`, zone indexes) is not. Never throws.
 */
export function isLoopbackName(name: string): boolean {
  const n = name.toLowerCase();
  if (n === 'localhost') return true;
  if (isIPv4(n)) return n.startsWith('127.');
  const bare = n.startsWith('[') && n.endsWith(']') ? n.slice(1, -1) : n;
  return isIPv6(bare) && isLoopbackIPv6(bare);
}

/**
 * Whether a `Host` header names this machine by a loopback name (`localhost`, 127.0.0.0/8, `[::1]`),
 * with or without a port; also true for an absent (empty) one, which no browser sends. Never throws.
 */
export function isLoopbackHost(host: string): boolean {
  if (host === '') return true;
  const m = host.startsWith('[') ? /^(\[[^\]]*\])(?::\d{0,5})?$/.exec(host) : /^([^:]*)(?::\d{0,5})?$/.exec(host);
  return m !== null && isLoopbackName(m[1]!);
}

/**
 * Headers every answer of the admin listener carries (the demo page, /metrics, the admin API, errors):
 * none of it is to be framed, content-sniffed, or named in a Referer.
 */
export const ADMIN_ANSWER_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/**
 * Padding that puts an answer past uWS's 16 KiB cork buffer, so it is written to the socket at once
 * and a closing answer stops uWS's parser there: a request smuggled behind it (two Content-Lengths)
 * is not served (found 2026-12-06; see Server's framing refusal). JSON allows trailing whitespace.
 */
export const CLOSE_NOW_PADDING = ' '.repeat(17 * 1024);

const MISDIRECTED: HttpReply = {
  status: 421,
  headers: { 'content-type': 'application/json' },
  body: `${JSON.stringify({
    error: {
      code: 'misdirected_request',
      message: 'The admin listener is bound to a loopback address and answers loopback Host names only (localhost, 127.0.0.0/8, [::1]).',
    },
  })}${CLOSE_NOW_PADDING}`,
};

/** The registering methods of a uWS app that the routes of a listener are added with. */
export type RouteTable = Pick<TemplatedApp, 'get' | 'head' | 'post' | 'put' | 'options' | 'del' | 'any'>;

type Handler = (res: HttpResponse, req: HttpRequest) => void;

/**
 * Whether every `Host` header of a request is a loopback name (isLoopbackHost; none at all counts as
 * loopback, as an absent one does). `getHeader` reads only the first: until 2026-12-06 a request with
 * `Host: localhost` and a second, foreign `Host` was served by the admin listener (the metrics
 * listener already checked every one). Never throws (false if the headers cannot be read).
 */
function everyHostIsLoopback(req: HttpRequest): boolean {
  let loopback = true;
  try {
    req.forEach((name, value) => {
      if (name === 'host' && !isLoopbackHost(value)) loopback = false;
    });
  } catch {
    return false;
  }
  return loopback;
}

/**
 * The admin listener's route table: every handler added through it answers with
 * ADMIN_ANSWER_HEADERS and, when the listener is bound to a loopback address (`loopbackOnly`), is
 * reached only by requests whose every `Host` is a loopback name (isLoopbackHost); others are answered 421
 * `misdirected_request` (the connection closed, any body unread). A web page whose name an attacker
 * re-points to 127.0.0.1 after it loaded (DNS rebinding) sends its own name as Host: without this
 * check it could read `/metrics` and `/demo`, which need no key there, from the operator's browser.
 * A listener bound elsewhere answers any Host (the operator's network controls decide who reaches it).
 */
export function adminRouteTable(app: TemplatedApp, loopbackOnly: boolean): RouteTable {
  const guarded =
    (handler: Handler): Handler =>
    (res, req) => {
      (res as TaggedResponse)[ANSWER_HEADERS] = ADMIN_ANSWER_HEADERS;
      if (!loopbackOnly || everyHostIsLoopback(req)) return handler(res, req);
      try {
        const exchange = new Exchange(res);
        exchange.bodyUnread = true;
        exchange.reply(MISDIRECTED);
      } catch {
        try {
          res.close();
        } catch {
          // Already gone.
        }
      }
    };
  return {
    get: (pattern, handler) => app.get(pattern, guarded(handler)),
    head: (pattern, handler) => app.head(pattern, guarded(handler)),
    post: (pattern, handler) => app.post(pattern, guarded(handler)),
    put: (pattern, handler) => app.put(pattern, guarded(handler)),
    options: (pattern, handler) => app.options(pattern, guarded(handler)),
    del: (pattern, handler) => app.del(pattern, guarded(handler)),
    any: (pattern, handler) => app.any(pattern, guarded(handler)),
  };
}

/**
 * Refuses when another process listens on `host:port`. uWS binds a configured port with
 * SO_REUSEPORT, and the kernel lets a second such socket share it: until 2026-12-07 a second
 * instance (an old one not yet stopped) started without an error and took about half of the new
 * connections, under its own config, policies and ledger (test/ops/redteam-20-port-shared.test.ts).
 * A plain bind (Node's, without SO_REUSEPORT) is refused there with EADDRINUSE. Port 0 is always
 * free; other bind errors are left to uWS's own listen to report.
 */
export function ensurePortFree(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        reject(new Error(`cannot listen on ${host}:${port}: another process is listening there (this instance would share its connections: SO_REUSEPORT); stop it or choose another port`));
      } else {
        resolve();
      }
    });
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}
