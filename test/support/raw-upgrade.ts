import { connect, type Socket } from 'node:net';

/*
 * Upgrades written by hand on plain sockets, for tests that need many written at once (before the
 * proxy reads any) and the HTTP answer of each as the bytes say it.
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
