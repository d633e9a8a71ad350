import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/**
 * A minimal WebSocket client on a raw TCP socket, for the load generator only. It exists because
 * the generator shares one core with the fake upstream: frames are pre-built once (header and a
 * zero masking key, so the payload goes out unmasked-equivalent and needs no XOR pass) and
 * written with one `socket.write`; incoming frames are cut out of the stream without copies.
 * A zero masking key is valid framing (RFC 6455 §5.3 only asks that it be unpredictable, which a
 * benchmark does not need).
 */

export const OP_CONT = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Header of a masked client frame whose masking key is four zero bytes. */
export function clientHeader(opcode: number, length: number, fin = true): Buffer {
  let header: Buffer;
  if (length < 126) {
    header = Buffer.alloc(6);
    header[1] = 0x80 | length;
  } else if (length < 0x10000) {
    header = Buffer.alloc(8);
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(14);
    header[1] = 0x80 | 127;
    header.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    header.writeUInt32BE(length >>> 0, 6);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  return header;
}

/** A complete client frame (header + payload) ready for `socket.write`. */
export function clientFrame(opcode: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([clientHeader(opcode, body.length), body]);
}

export function closePayload(code: number, reason = ''): Buffer {
  const r = Buffer.from(reason, 'utf8');
  const b = Buffer.allocUnsafe(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/**
 * Cuts server frames out of a byte stream. Payloads are views into the received chunks (valid
 * until the next `push`), so the consumer must read them synchronously.
 */
export class FrameReader {
  #pending: Buffer | null = null;
  #fragments: Buffer[] = [];
  #fragmentOpcode = 0;
  readonly #onFrame: (opcode: number, payload: Buffer) => void;
  readonly #maxPayload: number;

  constructor(onFrame: (opcode: number, payload: Buffer) => void, maxPayload = 64 * 1024 * 1024) {
    this.#onFrame = onFrame;
    this.#maxPayload = maxPayload;
  }

  push(chunk: Buffer): void {
    let buf = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = null;
    let off = 0;
    for (;;) {
      const avail = buf.length - off;
      if (avail < 2) break;
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let len = b1 & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (avail < 4) break;
        len = buf.readUInt16BE(off + 2);
        hdr = 4;
      } else if (len === 127) {
        if (avail < 10) break;
        len = buf.readUInt32BE(off + 2) * 0x100000000 + buf.readUInt32BE(off + 6);
        hdr = 10;
      }
      if (len > this.#maxPayload) throw new Error(`frame of ${len} bytes exceeds the reader limit`);
      const masked = (b1 & 0x80) !== 0;
      const maskOff = off + hdr;
      if (masked) hdr += 4;
      if (avail < hdr + len) break;
      let payload = buf.subarray(off + hdr, off + hdr + len);
      if (masked) {
        // Servers never mask; tolerate it anyway.
        payload = Buffer.from(payload);
        for (let i = 0; i < payload.length; i++) payload[i]! ^= buf[maskOff + (i & 3)]!;
      }
      off += hdr + len;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if (opcode >= 0x8) {
        this.#onFrame(opcode, payload);
        continue;
      }
      if (!fin || opcode === OP_CONT) {
        if (opcode !== OP_CONT) this.#fragmentOpcode = opcode;
        this.#fragments.push(Buffer.from(payload));
        if (!fin) continue;
        const whole = Buffer.concat(this.#fragments);
        this.#fragments = [];
        this.#onFrame(this.#fragmentOpcode, whole);
        continue;
      }
      this.#onFrame(opcode, payload);
    }
    // Socket chunks are never reused by Node, so keeping a view of the tail is safe.
    if (off < buf.length) this.#pending = buf.subarray(off);
  }
}

export interface RawClientHandlers {
  onOpen(): void;
  onText(payload: Buffer): void;
  /** `code` 1006 when the TCP connection ended without a close frame. */
  onClose(code: number, reason: string): void;
  /** The upgrade was refused or the connection failed before it opened. */
  onFail(reason: string, status: number | null): void;
}

export interface RawClientOptions {
  readonly host: string;
  readonly port: number;
  /** Path and query, e.g. `/v1/realtime?model=gpt-realtime`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One WebSocket connection. `write` takes complete pre-built frames. */
export class RawWsClient {
  readonly socket: Socket;
  state: 'connecting' | 'open' | 'closing' | 'closed' = 'connecting';
  readonly #handlers: RawClientHandlers;
  #head: Buffer | null = Buffer.alloc(0);
  readonly #key = randomBytes(16).toString('base64');
  readonly #reader: FrameReader;
  #closeSent = false;
  #closeCode = 1006;
  #closeReason = '';

  constructor(options: RawClientOptions, handlers: RawClientHandlers) {
    this.#handlers = handlers;
    this.#reader = new FrameReader((op, payload) => this.#onFrame(op, payload));
    this.socket = connect({ host: options.host, port: options.port, noDelay: true });
    const lines = [
      `GET ${options.path} HTTP/1.1`,
      `Host: ${options.host}:${options.port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      `Sec-WebSocket-Key: ${this.#key}`,
      'Sec-WebSocket-Version: 13',
    ];
    for (const [k, v] of Object.entries(options.headers ?? {})) lines.push(`${k}: ${v}`);
    this.socket.write(lines.join('\r\n') + '\r\n\r\n');
    this.socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.socket.on('error', (err) => {
      if (this.state === 'connecting') this.#fail(err.message, null);
    });
    this.socket.on('close', () => {
      if (this.state === 'connecting') {
        this.#fail('connection closed before the upgrade', null);
        return;
      }
      if (this.state === 'closed') return;
      this.state = 'closed';
      this.#handlers.onClose(this.#closeCode, this.#closeReason);
    });
  }

  #fail(reason: string, status: number | null): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.destroy();
    this.#handlers.onFail(reason, status);
  }

  #onData(chunk: Buffer): void {
    if (this.#head !== null) {
      const head: Buffer = Buffer.concat([this.#head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        this.#head = head;
        return;
      }
      this.#head = null;
      const text = head.toString('latin1', 0, end);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      if (status !== 101) {
        this.#fail(`upgrade refused with HTTP ${status}`, status);
        return;
      }
      const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text)?.[1];
      const expected = createHash('sha1').update(this.#key + GUID).digest('base64');
      if (accept !== expected) {
        this.#fail('bad Sec-WebSocket-Accept', status);
        return;
      }
      this.state = 'open';
      this.#handlers.onOpen();
      const rest = head.subarray(end + 4);
      if (rest.length > 0 && this.state === 'open') this.#reader.push(rest);
      return;
    }
    if (this.state === 'closed') return;
    this.#reader.push(chunk);
  }

  #onFrame(opcode: number, payload: Buffer): void {
    if (opcode === OP_TEXT) {
      this.#handlers.onText(payload);
    } else if (opcode === OP_PING) {
      this.write(clientFrame(OP_PONG, Buffer.from(payload)));
    } else if (opcode === OP_CLOSE) {
      this.#closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      this.#closeReason = payload.length > 2 ? payload.toString('utf8', 2) : '';
      if (!this.#closeSent) {
        this.#closeSent = true;
        this.write(clientFrame(OP_CLOSE, payload.length >= 2 ? Buffer.from(payload.subarray(0, 2)) : Buffer.alloc(0)));
      }
      this.state = 'closing';
      this.socket.end();
    }
    // Binary frames are not part of the Realtime protocol: ignored.
  }

  /** Writes a complete frame (see `clientFrame`). Returns false when the socket buffers. */
  write(frame: Buffer): boolean {
    if (this.state !== 'open' && this.state !== 'closing') return false;
    return this.socket.write(frame);
  }

  close(code = 1000, reason = ''): void {
    if (this.state !== 'open') {
      if (this.state === 'connecting') this.socket.destroy();
      return;
    }
    this.#closeSent = true;
    this.state = 'closing';
    this.socket.write(clientFrame(OP_CLOSE, closePayload(code, reason)));
    // The server answers with its close frame and ends the TCP connection; do not wait forever.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  /** Drops the TCP connection without a close frame. */
  destroy(): void {
    this.socket.destroy();
  }
}
