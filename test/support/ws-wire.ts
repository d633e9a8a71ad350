import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo, type Socket } from 'node:net';

// `ws`'s own frame encoder and decoder: an implementation independent of src/upstream, so tests
// of the proxy's WebSocket code never check it against itself. @types/ws declares neither.
interface SenderFrameOptions {
  fin: boolean;
  opcode: number;
  rsv1: boolean;
  mask: boolean;
  readOnly: boolean;
  maskBuffer: Buffer;
}
interface WsReceiver {
  write(chunk: Buffer): boolean;
  on(event: 'message', cb: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'ping' | 'pong', cb: (data: Buffer) => void): void;
  on(event: 'conclude', cb: (code: number, reason: Buffer) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
}
const ws = createRequire(import.meta.url)('ws') as {
  Sender: { frame(data: Buffer, options: SenderFrameOptions): Buffer[] };
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => WsReceiver;
};

export interface WireFrame {
  fin?: boolean;
  opcode: number;
  rsv1?: boolean;
  mask?: boolean;
}

/** One WebSocket frame as `ws` encodes it (server frames unmasked unless `mask`). */
export function wireFrame(payload: Buffer | string, o: WireFrame): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat(ws.Sender.frame(data, { fin: o.fin ?? true, opcode: o.opcode, rsv1: o.rsv1 ?? false, mask: o.mask ?? false, readOnly: false, maskBuffer: Buffer.from([1, 2, 3, 4]) }));
}

/** A close frame with `code` and `reason`, as `ws` encodes it (the payload built here, by the RFC's layout). */
export function wireCloseFrame(code: number, reason = ''): Buffer {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return wireFrame(payload, { opcode: 0x8 });
}

/** What a raw upstream read from the proxy after the handshake, decoded by `ws`. */
export interface FromProxy {
  readonly messages: string[];
  readonly pings: string[];
  readonly pongs: string[];
  readonly closes: { code: number; reason: string }[];
  /** A frame `ws` refused (e.g. an unmasked client frame). */
  readonly errors: string[];
}

export interface RawUpstreamConnection {
  readonly socket: Socket;
  readonly fromProxy: FromProxy;
  /** Resolves when the proxy released its socket (see the probe in rawUpstream). */
  readonly socketClosed: Promise<void>;
}

/**
 * An upstream that completes the handshake by hand and then writes whatever bytes the test
 * chooses (`onUpgrade` gets the 101 response to send, possibly with frames behind it). It never
 * closes or answers anything by itself, and keeps writing after the proxy half-closes.
 */
export async function rawUpstream(onUpgrade: (conn: RawUpstreamConnection, response101: string) => void): Promise<{ url: string; connections: RawUpstreamConnection[]; close(): Promise<void> }> {
  const connections: RawUpstreamConnection[] = [];
  // Half-open allowed: the proxy's FIN does not close this side, only the test does.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    let request = '';
    const onData = (d: Buffer): void => {
      request += d.toString('latin1');
      const end = request.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const key = /sec-websocket-key: *(\S+)/i.exec(request)?.[1] ?? '';
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      const fromProxy: FromProxy = { messages: [], pings: [], pongs: [], closes: [], errors: [] };
      const receiver = new ws.Receiver({ isServer: true, maxPayload: 64 * 1024 * 1024 });
      receiver.on('message', (data) => fromProxy.messages.push(data.toString('utf8')));
      receiver.on('ping', (data) => fromProxy.pings.push(data.toString('utf8')));
      receiver.on('pong', (data) => fromProxy.pongs.push(data.toString('utf8')));
      receiver.on('conclude', (code, reason) => fromProxy.closes.push({ code, reason: reason.toString('utf8') }));
      receiver.on('error', (err) => fromProxy.errors.push(err.message));
      const rest = Buffer.from(request.slice(end + 4), 'latin1');
      if (rest.length > 0) receiver.write(rest);
      socket.on('data', (chunk: Buffer) => receiver.write(chunk));
      // After the proxy's FIN this side keeps writing: only a proxy that released its socket
      // answers with a reset, which closes this one (`socketClosed` is that release).
      socket.once('end', () => {
        const probe = setInterval(() => (socket.destroyed ? clearInterval(probe) : socket.write(wireFrame('probe', { opcode: 0x9 }))), 100);
      });
      const conn: RawUpstreamConnection = { socket, fromProxy, socketClosed: new Promise((r) => socket.once('close', () => r())) };
      connections.push(conn);
      onUpgrade(conn, `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/realtime`,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}
