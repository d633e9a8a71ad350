import { isUtf8 } from 'node:buffer';

/** An empty payload (shared: nothing can be written into zero bytes). */
const EMPTY = Buffer.alloc(0);

/** Opcodes of RFC 6455 §5.2. */
export const Opcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** What the reader found in the upstream's byte stream. */
export interface FrameReaderEvents {
  /** A whole message (fragments joined). `data` may be a view of a socket chunk: read it now or copy it. */
  message(data: Buffer, isBinary: boolean): void;
  ping(payload: Buffer): void;
  pong(): void;
  /** A close frame: `code` 1005 when it carried none. Nothing after it is read. */
  close(code: number, reason: string): void;
  /** The stream broke the protocol: close the connection with `code` (1002, 1007 or 1009). Nothing more is read. */
  violation(code: 1002 | 1007 | 1009, message: string): void;
}

/** Close codes a peer may send (RFC 6455 §7.4: 1004–1006 and 1015 are reserved, 1016–2999 unassigned). */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * Server-to-client WebSocket frames (RFC 6455) read straight off the socket's chunks: no stream of
 * its own, no per-frame objects beyond the payload view. A frame that lies within one chunk is
 * delivered as a view of it; only frames split across chunks, and fragmented messages, are copied.
 *
 * Hostile input: every length is checked against `maxPayload` as soon as its header is read (a
 * huge length never waits for its bytes), masked frames, reserved bits and opcodes, oversized or
 * fragmented control frames and invalid UTF-8 (when asked) end the stream with `violation`.
 */
export class FrameReader {
  readonly #events: FrameReaderEvents;
  readonly #maxPayload: number;
  readonly #validateUtf8: boolean;
  #chunks: Buffer[] = [];
  /**
   * Bytes of the first chunk already read. perf: an offset instead of a re-sliced first chunk, so a
   * frame within a chunk costs one view (its payload), not three (header skipped, payload, rest).
   */
  #offset = 0;
  /** Bytes buffered and not yet read (the first chunk's from `#offset`). */
  #buffered = 0;
  /** Fragments of the message being assembled, its opcode (0 when none) and size so far. */
  #fragments: Buffer[] = [];
  #fragmentOpcode = 0;
  #fragmentBytes = 0;
  #paused = false;
  #stopped = false;

  constructor(events: FrameReaderEvents, maxPayload: number, validateUtf8: boolean) {
    this.#events = events;
    this.#maxPayload = maxPayload;
    this.#validateUtf8 = validateUtf8;
  }

  /** Bytes received and not yet delivered (bounded: at most one frame's header and payload beyond a chunk). */
  get bufferedBytes(): number {
    return this.#buffered + this.#fragmentBytes;
  }

  push(chunk: Buffer): void {
    if (this.#stopped) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#read();
  }

  /** Stops delivering after the current message; `resume` goes on from the next one. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#read();
  }

  /** Reads nothing more and drops what was buffered. */
  stop(): void {
    this.#stopped = true;
    this.#chunks = [];
    this.#offset = 0;
    this.#buffered = 0;
    this.#fragments = [];
    this.#fragmentBytes = 0;
  }

  #read(): void {
    while (!this.#paused && !this.#stopped && this.#buffered >= 2) {
      const b0 = this.#byteAt(0);
      const b1 = this.#byteAt(1);
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x70) !== 0) return this.#violate(1002, 'reserved bits set (no extension was negotiated)');
      if ((b1 & 0x80) !== 0) return this.#violate(1002, 'a masked frame from the server');
      const control = opcode >= 0x8;
      if (control) {
        if (opcode > Opcode.pong) return this.#violate(1002, `reserved opcode ${opcode}`);
        if (!fin) return this.#violate(1002, 'a fragmented control frame');
      } else if (opcode > Opcode.binary) {
        return this.#violate(1002, `reserved opcode ${opcode}`);
      } else if (opcode === Opcode.continuation ? this.#fragmentOpcode === 0 : this.#fragmentOpcode !== 0) {
        return this.#violate(1002, opcode === Opcode.continuation ? 'a continuation frame with no message to continue' : 'a new message inside a fragmented one');
      }
      const len7 = b1 & 0x7f;
      let header = 2;
      let length = len7;
      if (len7 === 126) {
        header = 4;
        if (this.#buffered < header) return;
        length = (this.#byteAt(2) << 8) | this.#byteAt(3);
      } else if (len7 === 127) {
        header = 10;
        if (this.#buffered < header) return;
        // Exact below 2^53; anything larger is rounded, and far above any limit either way.
        const high = this.#byteAt(2) * 0x100_0000 + ((this.#byteAt(3) << 16) | (this.#byteAt(4) << 8) | this.#byteAt(5));
        const low = this.#byteAt(6) * 0x100_0000 + ((this.#byteAt(7) << 16) | (this.#byteAt(8) << 8) | this.#byteAt(9));
        length = high * 0x1_0000_0000 + low;
      }
      if (control && length > 125) return this.#violate(1002, 'a control frame above 125 bytes');
      if (!control && this.#fragmentBytes + length > this.#maxPayload) return this.#violate(1009, `a message above ${this.#maxPayload} bytes`);
      if (this.#buffered < header + length) return;
      this.#skip(header);
      const payload = this.#take(length);
      if (control) this.#control(opcode, payload);
      else this.#data(opcode, fin, payload);
    }
  }

  #data(opcode: number, fin: boolean, payload: Buffer): void {
    if (!fin) {
      if (opcode !== Opcode.continuation) this.#fragmentOpcode = opcode;
      this.#fragments.push(payload);
      this.#fragmentBytes += payload.length;
      return;
    }
    let message = payload;
    let messageOpcode = opcode;
    if (opcode === Opcode.continuation) {
      this.#fragments.push(payload);
      message = Buffer.concat(this.#fragments, this.#fragmentBytes + payload.length);
      messageOpcode = this.#fragmentOpcode;
      this.#fragments = [];
      this.#fragmentBytes = 0;
      this.#fragmentOpcode = 0;
    }
    const isBinary = messageOpcode === Opcode.binary;
    if (!isBinary && this.#validateUtf8 && !isUtf8(message)) return this.#violate(1007, 'a text message that is not UTF-8');
    this.#events.message(message, isBinary);
  }

  #control(opcode: number, payload: Buffer): void {
    if (opcode === Opcode.ping) return this.#events.ping(payload);
    if (opcode === Opcode.pong) return this.#events.pong();
    if (payload.length === 1) return this.#violate(1002, 'a close frame with a 1-byte payload');
    const code = payload.length === 0 ? 1005 : payload.readUInt16BE(0);
    if (payload.length > 0 && !isSendableCloseCode(code)) return this.#violate(1002, `close code ${code} is not one a peer may send`);
    const reason = payload.subarray(2);
    if (!isUtf8(reason)) return this.#violate(1007, 'a close reason that is not UTF-8');
    this.stop();
    this.#events.close(code, reason.toString('utf8'));
  }

  #violate(code: 1002 | 1007 | 1009, message: string): void {
    this.stop();
    this.#events.violation(code, message);
  }

  /** The byte `offset` bytes into what is buffered (headers only: at most 10 bytes in). */
  #byteAt(offset: number): number {
    offset += this.#offset;
    for (const chunk of this.#chunks) {
      if (offset < chunk.length) return chunk[offset]!;
      offset -= chunk.length;
    }
    throw new RangeError('read past the buffered bytes');
  }

  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const left = this.#chunks[0]!.length - this.#offset;
      if (n < left) {
        this.#offset += n;
        return;
      }
      this.#chunks.shift();
      this.#offset = 0;
      n -= left;
    }
  }

  /** The next `n` buffered bytes: a view when they lie in one chunk, else a copy. */
  #take(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    const start = this.#offset;
    const left = first.length - start;
    if (n < left) {
      this.#offset = start + n;
      return first.subarray(start, start + n);
    }
    if (n === left) {
      this.#chunks.shift();
      this.#offset = 0;
      return start === 0 ? first : first.subarray(start);
    }
    const out = Buffer.allocUnsafe(n);
    let copied = 0;
    while (copied < n) {
      const chunk = this.#chunks[0]!;
      const from = this.#offset;
      const wanted = n - copied;
      if (wanted < chunk.length - from) {
        chunk.copy(out, copied, from, from + wanted);
        this.#offset = from + wanted;
        copied = n;
      } else {
        chunk.copy(out, copied, from);
        this.#chunks.shift();
        this.#offset = 0;
        copied += chunk.length - from;
      }
    }
    return out;
  }
}
