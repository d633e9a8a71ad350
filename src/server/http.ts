import { isIPv4, isIPv6 } from 'node:net';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
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
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export const statusLine = (status: number): string => `${status} ${STATUS_TEXT[status] ?? 'Status'}`;

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

  reply(reply: HttpReply): void {
    if (!this.claim()) return;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(reply.status));
      for (const [k, v] of Object.entries(reply.headers ?? {})) res.writeHeader(k, v);
      res.end(reply.body, this.bodyUnread);
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
