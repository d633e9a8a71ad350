import type { WebSocket as UwsSocket } from 'uWebSockets.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';

/** What the client connection tells its session. */
export interface ClientLinkEvents {
  /** The client's send buffer passed the high watermark: stop reading upstream; true when that paused it now. */
  overHigh(): boolean;
  /** A batch left in one cork (the relay latency sample ends here). */
  flushed(): void;
  /** The client cannot keep up: the session ends with this error (reported once per link). */
  slow(error: ProxyError): void;
  /** A socket call threw during a flush (it runs on a microtask, outside any uWS callback). */
  failed(err: unknown): void;
}

/** uWS send results. */
const SENT = 1;
const DROPPED = 2;

/**
 * A session's connection to its client (a uWS socket, or none for a session the proxy runs on its
 * own): frames for the client leave once per event-loop turn (several inside one cork), and a client that
 * stays behind is detected (hard buffer cap, high watermark with a grace period).
 */
export class ClientLink<D> {
  readonly #config: Config;
  readonly #clock: Clock;
  readonly #events: ClientLinkEvents;
  #ws: UwsSocket<D> | null;
  /** Frames for the client, flushed once per event-loop turn inside one cork. */
  #outbox: Buffer[] = [];
  #flushScheduled = false;
  #overHighSince = 0;
  #closeCode: number | null = null;
  /**
   * The client fell behind past the hard cap (or uWS dropped a frame): nothing more is queued for
   * it, so the session's own closing error cannot overflow again and report again (each report
   * closes the session, whose error event would be flushed into the same full buffer).
   */
  #overflowed = false;
  /** Bytes the socket still had to send when the proxy ended it (uWS keeps them a while: LingeringSockets). */
  #unsentAtEnd = 0;

  constructor(ws: UwsSocket<D> | null, config: Config, clock: Clock, events: ClientLinkEvents) {
    this.#ws = ws;
    this.#config = config;
    this.#clock = clock;
    this.#events = events;
  }

  /** True while there is a client to send to. */
  get present(): boolean {
    return this.#ws !== null;
  }

  /** The close code the client connection ended with (sent or received), or null. */
  get closeCode(): number | null {
    return this.#closeCode;
  }

  /** Bytes waiting for the client (queued for the next flush, or in the socket's buffer). */
  heldBytes(): number {
    let n = this.#buffered();
    for (const b of this.#outbox) n += b.length;
    return n;
  }

  send(bytes: Buffer | string): void {
    if (!this.#ws || this.#overflowed) return;
    this.#outbox.push(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** All frames produced in one event-loop turn leave together (one syscall / TLS record batch). */
  readonly flush = (): void => {
    this.#flushScheduled = false;
    const ws = this.#ws;
    const out = this.#outbox;
    if (out.length === 0 || !ws) return;
    this.#outbox = [];
    try {
      this.#write(ws, out);
    } catch (err) {
      this.#events.failed(err);
    }
  };

  #write(ws: UwsSocket<D>, out: Buffer[]): void {
    let dropped = false;
    // uWS answers a send 1 (written), 0 (written, backpressure building up) or 2 (dropped).
    let unwritten = true;
    if (out.length === 1) {
      // perf: one frame (an audio delta, in practice) is one write corked or not, and the cork call
      // with its closure cost more than the send. Uncorked, 1 means uWS wrote it all: nothing is
      // buffered. Inside a cork every send answers 1 and the write happens at uncork, so a batch
      // always checks the buffer afterwards. (A flush inside the client's own uWS callback is corked
      // by uWS: a buffer left by that uncork makes the next send answer 0, and uWS's own limit drops.)
      const status = ws.send(out[0]!, false, false);
      dropped = status === DROPPED;
      unwritten = status !== SENT;
    } else {
      ws.cork(() => {
        for (const buf of out) if (ws.send(buf, false, false) === DROPPED) dropped = true;
      });
    }
    this.#events.flushed();
    if (dropped) {
      this.#overflow(new ProxyError('slow_consumer', { message: 'The client send buffer overflowed.' }));
      return;
    }
    if (unwritten) this.#checkBackpressure(ws);
  }

  #overflow(error: ProxyError): void {
    if (this.#overflowed) return;
    this.#overflowed = true;
    this.#outbox = [];
    this.#events.slow(error);
  }

  #checkBackpressure(ws: UwsSocket<D>): void {
    const bp = this.#config.server.backpressure;
    const buffered = ws.getBufferedAmount();
    if (buffered > bp.maxBufferedBytes) {
      this.#overflow(new ProxyError('slow_consumer', { message: 'The client send buffer exceeded its limit.' }));
      return;
    }
    if (buffered > bp.highWatermarkBytes && this.#events.overHigh()) this.#overHighSince = this.#clock.now();
  }

  /** uWS drained the socket: true when it is below the low watermark (reading upstream may resume). */
  drained(): boolean {
    const ws = this.#ws;
    if (!ws || ws.getBufferedAmount() > this.#config.server.backpressure.lowWatermarkBytes) return false;
    this.#overHighSince = 0;
    return true;
  }

  /**
   * A client over the high watermark for longer than the grace: the error to end the session with.
   * The buffer is read again first: one back at or under the high watermark did not stay over it,
   * and its grace stops (uWS reports a drain only when its own writable event empties the buffer, not
   * when the kernel takes the backlog during a later send: until 2026-12-06 such a client was ended
   * as slow with 0 to 57 KiB buffered, found by test/resilience/slow-client-linger.test.ts).
   */
  tick(now: number): ProxyError | null {
    const since = this.#overHighSince;
    const bp = this.#config.server.backpressure;
    if (!since) {
      // uWS also writes on its own (a pong for every client ping, its own pings): a client that pings
      // and never reads fills its buffer while the proxy sends nothing, and no send of the proxy's
      // starts the grace. Until 2026-12-06 such a session held maxBufferedBytes for good and a few
      // of them filled the memory budget (test/security/redteam-15-pong-backlog.test.ts).
      if (this.#ws === null || this.#overflowed || this.#buffered() <= bp.highWatermarkBytes) return null;
      this.#events.overHigh();
      this.#overHighSince = now;
      return null;
    }
    if (this.#buffered() <= bp.highWatermarkBytes) {
      this.#overHighSince = 0;
      return null;
    }
    if (now - since > bp.slowClientGraceMs) {
      return new ProxyError('slow_consumer', { message: `The client stayed over ${bp.highWatermarkBytes} buffered bytes for ${bp.slowClientGraceMs} ms.` });
    }
    return null;
  }

  /** What uWS holds for the client (0 without a socket, or one closed in this tick). */
  #buffered(): number {
    const ws = this.#ws;
    if (!ws) return 0;
    try {
      return ws.getBufferedAmount();
    } catch {
      return 0;
    }
  }

  /** Nobody will read what is queued (the client left): drop it and forget the slow-client clock. */
  discard(): void {
    this.#outbox = [];
    this.#overHighSince = 0;
  }

  /** Closes the client connection from the proxy side. */
  end(code: number, reason: string): void {
    const ws = this.#ws;
    if (!ws) return;
    this.#unsentAtEnd = this.#buffered();
    this.#ws = null;
    this.#closeCode = code;
    try {
      ws.end(code, reason.slice(0, 123));
    } catch {
      // Already closed by the peer in the same tick.
    }
  }

  /** What the socket still had to send when the proxy ended it (0 when the client closed first). */
  get unsentAtEnd(): number {
    return this.#unsentAtEnd;
  }

  /** The client closed (uWS close callback): the socket is gone. */
  gone(code: number): void {
    this.#closeCode = code;
    this.#ws = null;
  }
}
