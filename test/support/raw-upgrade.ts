import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/*
 * Requests written by hand on plain sockets: upgrades, for tests that need many written at once
 * (before the proxy reads any) and the HTTP answer of each as the bytes say it; and floods of
 * pipelined requests whose answers are never read.
 */

/** A connection to the proxy on loopback, kept in `sockets` (the test destroys them after). */
export function connectRaw(port: number, sockets: Socket[]): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
    sockets.push(s);
  });
}

/** A WebSocket upgrade request for the Realtime path with `key`; `extraQuery` is appended to the query. */
export function rawUpgrade(key: string, extraQuery = ''): string {
  return (
    `GET /v1/realtime?model=gpt-realtime${extraQuery} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${key}\r\n\r\n`
  );
}

/**
 * The answer to the upgrade written on `s`: its status (0 when the connection ended without one) and,
 * for a refusal, the `code` of its JSON error body ('' when none came).
 */
export function upgradeAnswer(s: Socket): Promise<{ readonly status: number; readonly code: string }> {
  return new Promise((resolve) => {
    let head = '';
    const done = () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), code: /"code":"([a-z_]+)"/.exec(head)?.[1] ?? '' });
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n') && (head.startsWith('HTTP/1.1 101') || head.includes('}}'))) done();
    });
    s.once('close', done);
    s.once('error', done);
  });
}

/** Well above what loopback socket buffers (client send + proxy receive) can hold. */
export const FLOOD_BYTES = 32 * 1024 * 1024;

export interface Flood {
  /** The proxy closed (reset) the connection before the client could hand over all FLOOD_BYTES. */
  readonly cut: boolean;
  readonly sent: number;
}

/**
 * Writes `request` back to back on one connection (respecting the socket's own backpressure) and
 * never reads. Resolves when the proxy closed the connection, or once every byte was handed to the
 * kernel and a last small write still went through (the connection was not cut). `tls`: over TLS
 * (the test certificate is not verified).
 */
export function pipelineWithoutReading(port: number, request: string, options: { readonly tls?: boolean } = {}): Promise<Flood> {
  return new Promise((resolve) => {
    const socket: Socket = options.tls === true ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : connect(port, '127.0.0.1');
    socket.pause();
    const batch = request.repeat(Math.ceil((64 * 1024) / request.length));
    let sent = 0;
    let settled = false;
    const settle = (cut: boolean) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ cut, sent });
    };
    socket.on('error', () => settle(true));
    socket.on('close', () => settle(true));
    const pump = () => {
      while (sent < FLOOD_BYTES) {
        sent += batch.length;
        if (!socket.write(batch)) {
          socket.once('drain', pump);
          return;
        }
      }
      // Everything went out: one more write, flushed, proves the connection was still open then.
      socket.write(request, (err) => settle(err !== undefined && err !== null));
    };
    socket.on(options.tls === true ? 'secureConnect' : 'connect', pump);
  });
}
