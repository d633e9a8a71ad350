import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { UpstreamTarget } from './dial.js';

/** RFC 6455 §1.3: the server proves it read the key by hashing it with this GUID. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** How an upgrade request ended (exactly one of these, once). */
export interface HandshakeEvents {
  /** 101 with a valid accept: the socket is the caller's, `head` its first bytes already read. */
  upgraded(socket: Socket, head: Buffer): void;
  /** Any other HTTP answer (redirects are not followed). */
  rejected(status: number): void;
  /** No valid answer: connect, TLS or parse error, or a 101 that is not a WebSocket upgrade. */
  failed(err: Error): void;
}

export interface Handshake {
  /** Gives up (a timeout, or the session ended): no event follows. */
  abort(): void;
}

/**
 * The WebSocket opening handshake to the upstream over Node's HTTP client: no extensions and no
 * subprotocol are offered, so a server that answers with one is refused (frames are then plain
 * RFC 6455 frames, read by frame-reader.ts). Throws only on a URL that is not ws:// or wss://.
 * It has no timeout of its own: the caller bounds the wait and calls `abort` (UpstreamLink's
 * connect timer does).
 */
export function requestUpgrade(target: UpstreamTarget, events: HandshakeEvents): Handshake {
  const url = new URL(target.url);
  const secure = url.protocol === 'wss:';
  if (!secure && url.protocol !== 'ws:') throw new Error(`The upstream URL must be ws:// or wss:// (got ${url.protocol}).`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port) || (secure ? 443 : 80);
  const key = randomBytes(16).toString('base64');
  const request = secure ? httpsRequest : httpRequest;
  const req = request({
    host,
    port,
    defaultPort: secure ? 443 : 80,
    path: url.pathname + url.search,
    headers: { ...target.headers, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
    // A socket of its own, never an agent's pool: it becomes the WebSocket's. SNI needs a name, not an address.
    createConnection: () => (secure ? tlsConnect({ host, port, servername: isIP(host) ? '' : host }) : netConnect({ host, port })),
  });
  let settled = false;
  const settle = (): boolean => {
    if (settled) return false;
    settled = true;
    return true;
  };
  req.on('error', (err) => {
    if (settle()) events.failed(err);
  });
  req.on('response', (res: IncomingMessage) => {
    res.resume();
    req.destroy();
    if (settle()) events.rejected(res.statusCode ?? 0);
  });
  req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    if (!settle()) {
      socket.destroy();
      return;
    }
    const problem = upgradeProblem(res, key);
    if (problem !== null) {
      socket.destroy();
      events.failed(new Error(problem));
      return;
    }
    events.upgraded(socket, head);
  });
  req.end();
  return {
    abort: () => {
      settled = true;
      req.destroy();
    },
  };
}

/** Why a 101 answer is not the WebSocket connection that was asked for, or null. */
export function upgradeProblem(res: IncomingMessage, key: string): string | null {
  if (res.statusCode !== 101) return `unexpected status ${res.statusCode}`;
  if (res.headers.upgrade?.toLowerCase() !== 'websocket') return 'the upgrade is not to websocket';
  const expected = createHash('sha1').update(key + ACCEPT_GUID).digest('base64');
  if (res.headers['sec-websocket-accept'] !== expected) return 'invalid Sec-WebSocket-Accept';
  if (res.headers['sec-websocket-extensions'] !== undefined) return 'the server chose an extension that was not offered';
  if (res.headers['sec-websocket-protocol'] !== undefined) return 'the server chose a subprotocol that was not offered';
  return null;
}
