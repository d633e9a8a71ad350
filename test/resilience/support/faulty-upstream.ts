import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** A TCP listener on loopback; `url` is the Realtime URL a proxy would dial. */
export interface TcpFault {
  readonly port: number;
  readonly url: string;
  readonly sockets: Set<Socket>;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function track(server: Server, port: number): TcpFault {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  return {
    port,
    url: `ws://127.0.0.1:${port}/v1/realtime`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Forwards each connection to `targetPort` after `delayMs` (a slow network or a slow upstream
 * accept); with `stopReadingAfterOpen`, stops reading from the proxy once the upgrade went through
 * (an upstream that no longer consumes: TCP backpressure builds up on the proxy).
 */
export async function forwarder(targetPort: number, options: { delayMs?: number; stopReadingAfterOpen?: boolean } = {}): Promise<TcpFault> {
  const server = createServer((client) => {
    client.pause();
    setTimeout(() => {
      const up = connect({ host: '127.0.0.1', port: targetPort });
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
      up.on('close', () => client.destroy());
      client.on('close', () => up.destroy());
      up.pipe(client);
      if (!options.stopReadingAfterOpen) {
        client.pipe(up);
        client.resume();
        return;
      }
      // Relay the upgrade request only, then stop reading from the proxy for good.
      client.once('data', (head: Buffer) => {
        up.write(head);
        client.pause();
      });
      client.resume();
    }, options.delayMs ?? 0);
  });
  const port = await listen(server);
  return track(server, port);
}

/** Accepts TCP, then resets it as soon as the upgrade request arrives. */
export async function resetDuringHandshake(): Promise<TcpFault> {
  const server = createServer((s) => {
    s.once('data', () => s.resetAndDestroy());
  });
  const port = await listen(server);
  return track(server, port);
}

/** Answers the upgrade with `status` (and a JSON error body), like a rate-limited or failing upstream. */
export async function httpStatusUpstream(status: number): Promise<TcpFault> {
  const server = createServer((s) => {
    s.once('data', () => {
      const body = JSON.stringify({ error: { code: status === 429 ? 'rate_limit_exceeded' : 'server_error', message: `HTTP ${status}` } });
      s.end(`HTTP/1.1 ${status} Status\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
  });
  const port = await listen(server);
  return track(server, port);
}

/** A `ws` upstream whose behaviour per connection the test scripts (frames, closes, binary). */
export interface ScriptedUpstream {
  readonly url: string;
  readonly connections: WebSocket[];
  close(): Promise<void>;
}

export interface ScriptedUpstreamOptions {
  /** false: never answer pings (an upstream whose liveness only its data shows). Default true. */
  readonly autoPong?: boolean;
}

export async function scriptedUpstream(onConnection: (ws: WebSocket, n: number) => void, options: ScriptedUpstreamOptions = {}): Promise<ScriptedUpstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, autoPong: options.autoPong ?? true, maxPayload: 256 * 1024 * 1024 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const connections: WebSocket[] = [];
  wss.on('connection', (ws) => {
    connections.push(ws);
    ws.on('error', () => undefined);
    onConnection(ws, connections.length);
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/realtime`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of connections) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

export function sessionCreated(n: number): string {
  return JSON.stringify({
    type: 'session.created',
    event_id: `event_fault_${n}`,
    session: { type: 'realtime', object: 'realtime.session', id: `sess_fault_${n}`, model: 'gpt-realtime', output_modalities: ['audio'], expires_at: 0 },
  });
}

/** Accepts TCP and reads the upgrade request, then never answers (a hung upstream). */
export async function neverAnswers(): Promise<TcpFault> {
  const server = createServer((s) => s.resume());
  const port = await listen(server);
  return track(server, port);
}

/** Answers the upgrade with a fixed byte string (not HTTP, or a half response). */
export async function garbageHandshake(reply: Buffer | string): Promise<TcpFault> {
  const server = createServer((s) => {
    s.once('data', () => s.end(reply));
  });
  const port = await listen(server);
  return track(server, port);
}

/**
 * Hostile frames an upstream can send after a good handshake. Each sends `session.created` first
 * (so the client is mid-session), then the fault.
 */
export const hostileFrames = {
  /** Text that is not JSON, then JSON that is not an event, then a binary frame. */
  garbage(ws: WebSocket): void {
    ws.send('this is not json', { binary: false });
    ws.send('[1,2,3]', { binary: false });
    ws.send(Buffer.from([0, 1, 2, 3]), { binary: true });
  },
  /** A text frame whose bytes are not UTF-8 (compliant clients must fail the connection on it). */
  invalidUtf8(ws: WebSocket): void {
    ws.send(Buffer.concat([Buffer.from('{"type":"response.output_text.delta","delta":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]), { binary: false });
  },
  /** One text frame of `bytes` bytes (a valid event with a huge delta). */
  huge(ws: WebSocket, bytes: number): void {
    const head = '{"type":"response.output_text.delta","delta":"';
    ws.send(head + 'x'.repeat(Math.max(0, bytes - head.length - 2)) + '"}', { binary: false });
  },
  /** Closes with an arbitrary (possibly reserved-looking) close code. */
  close(ws: WebSocket, code: number, reason = ''): void {
    ws.close(code, reason);
  },
};
