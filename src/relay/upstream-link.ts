import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import type { Config } from '../config/schema.js';
import type { Clock } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { zeroMaskedTextFrame } from '../upstream/client-frame.js';
import { dialUpstream, maskingIsMoot, type UpstreamTarget } from '../upstream/dial.js';

/** Options of every upstream send (one object, not one per frame). */
const TEXT_FRAME = { binary: false, compress: false } as const;

/** What the upstream connection tells its session. */
export interface UpstreamEvents {
  opened(connectMs: number): void;
  message(data: Buffer, isBinary: boolean): void;
  closed(code: number, reason: string): void;
  /** The connection could not be made or was refused: the session ends with this error. */
  failed(error: ProxyError): void;
  /** A socket callback threw: the session ends (callbacks run outside uWS). */
  callbackFailed(what: string, err: unknown): void;
}

/**
 * A session's connection to the Realtime upstream: the dial with its timeout, frames sent before it
 * opened (queued in order, bounded), one socket write per frame, liveness pings, and reads
 * paused while the client is slow. It owns the socket; the session decides what the events mean.
 */
export class UpstreamLink {
  readonly #target: UpstreamTarget;
  readonly #config: Config;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #events: UpstreamEvents;
  #ws: WebSocket | null = null;
  #open = false;
  #closed = false;
  /**
   * The upstream's TCP/TLS socket once upgraded, when frames may go out with a zero masking key:
   * then each frame is one buffer and one socket write (see client-frame.ts); else `ws` frames it.
   */
  #socket: Duplex | null = null;
  /** Client frames accepted before the upstream opened, in order. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #connectTimer: NodeJS.Timeout | null = null;
  #connectMs: number | null = null;
  #paused = false;
  #lastPingAt = 0;
  #awaitingPongSince = 0;

  constructor(target: UpstreamTarget, config: Config, clock: Clock, log: Logger, events: UpstreamEvents) {
    this.#target = target;
    this.#config = config;
    this.#clock = clock;
    this.#log = log;
    this.#events = events;
  }

  get open(): boolean {
    return this.#open;
  }

  get connectMs(): number | null {
    return this.#connectMs;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Bytes waiting to be written upstream (queued before open, or in the socket's buffer). */
  get heldBytes(): number {
    return this.#pendingBytes + (this.#ws?.bufferedAmount ?? 0);
  }

  dial(): void {
    const up = this.#config.upstream;
    const started = this.#clock.now();
    let ws: WebSocket;
    try {
      ws = dialUpstream(this.#target, up.connectTimeoutMs, up.validateUtf8);
    } catch (err) {
      // Details (addresses, TLS errors) go to the log, never to the client.
      this.#log.error({ err }, 'upstream dial failed');
      this.#events.failed(new ProxyError('upstream_unavailable'));
      return;
    }
    this.#ws = ws;
    this.#connectTimer = setTimeout(() => {
      if (this.#open || this.#closed) return;
      ws.terminate();
      this.#events.failed(new ProxyError('upstream_unavailable', { message: `The Realtime upstream did not answer within ${up.connectTimeoutMs} ms.` }));
    }, up.connectTimeoutMs);
    const zeroMask = maskingIsMoot(this.#target.url);
    ws.on('upgrade', (res) => {
      if (zeroMask) this.#socket = res.socket;
    });
    ws.on('open', () => {
      if (this.#connectTimer) clearTimeout(this.#connectTimer);
      this.#open = true;
      this.#connectMs = this.#clock.now() - started;
      this.#events.opened(this.#connectMs);
      const pending = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      // What the client sent while the upstream was dialled leaves in one write.
      const socket = this.#socket;
      socket?.cork();
      for (const buf of pending) this.#write(ws, buf);
      socket?.uncork();
    });
    ws.on('message', (data, isBinary) => {
      try {
        this.#events.message(data as Buffer, isBinary);
      } catch (err) {
        this.#events.callbackFailed('upstream message', err);
      }
    });
    ws.on('pong', () => {
      this.#awaitingPongSince = 0;
    });
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      ws.terminate();
      const retryable = status === 429 || status >= 500;
      this.#events.failed(
        new ProxyError('upstream_rejected', {
          message: `The Realtime upstream refused the connection with HTTP ${status}.`,
          close: retryable ? 'tryAgainLater' : 'internalError',
          details: { status },
        }),
      );
    });
    ws.on('error', (err) => {
      if (this.#closed) return;
      if (!this.#open) {
        // The error text names addresses and TLS details: logged, not sent to the client.
        this.#log.warn({ err: err.message }, 'upstream connect failed');
        this.#events.failed(new ProxyError('upstream_unavailable'));
      } else {
        this.#log.warn({ err: err.message }, 'upstream socket error');
      }
    });
    ws.on('close', (code, reason) => {
      this.#open = false;
      if (this.#connectTimer) clearTimeout(this.#connectTimer);
      try {
        this.#events.closed(code, reason.toString('utf8'));
      } catch (err) {
        this.#events.callbackFailed('upstream close', err);
      }
    });
  }

  /**
   * Sends (or queues until open) one frame; an error when the bounded buffer would overflow.
   * `framed`: the same payload already framed as a zero-masked text frame, written as it is when
   * the connection writes such frames itself.
   */
  send(bytes: Buffer, framed: Buffer | null = null): ProxyError | null {
    const ws = this.#ws;
    const limit = this.#config.server.backpressure.upstreamMaxBufferedBytes;
    if (!this.#open || !ws) {
      if (this.#pendingBytes + bytes.length > limit) {
        return new ProxyError('upstream_backpressure', { message: 'Too much data was sent before the upstream connection opened.' });
      }
      this.#pending.push(bytes);
      this.#pendingBytes += bytes.length;
      return null;
    }
    if (ws.bufferedAmount + bytes.length > limit) return new ProxyError('upstream_backpressure');
    this.#write(ws, bytes, framed);
    return null;
  }

  #write(ws: WebSocket, bytes: Buffer, framed: Buffer | null = null): void {
    const socket = this.#socket;
    // `ws` sends only from its own state (no compression, no Blobs here), so its pings and close
    // frames and these writes go to the socket in call order.
    if (socket !== null && ws.readyState === ws.OPEN && !socket.destroyed) socket.write(framed ?? zeroMaskedTextFrame(bytes));
    else ws.send(bytes, TEXT_FRAME);
  }

  /** Data proves the upstream alive as well as a pong does (pongs queue behind data). */
  alive(): void {
    this.#awaitingPongSince = 0;
  }

  /** Stops reading (the client is slow); true when this call paused it. */
  pause(): boolean {
    const ws = this.#ws;
    if (this.#paused || !ws) return false;
    this.#paused = true;
    ws.pause();
    return true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#ws?.resume();
  }

  /** Liveness from the server's shared timer: pings, and an error when a ping went unanswered. */
  tick(now: number): ProxyError | null {
    const up = this.#config.upstream;
    if (this.#paused && this.#awaitingPongSince) {
      // Reads are paused for a slow client: the pong sits unread in the socket. The wait for it
      // counts from the resume; the slow-client grace bounds the pause.
      this.#awaitingPongSince = now;
    }
    const ws = this.#ws;
    if (!this.#open || !ws) return null;
    if (this.#awaitingPongSince && now - this.#awaitingPongSince > up.pongTimeoutMs) {
      ws.terminate();
      return new ProxyError('upstream_timeout', { message: `The Realtime upstream did not answer a ping within ${up.pongTimeoutMs} ms.` });
    }
    if (!this.#awaitingPongSince && now - this.#lastPingAt >= up.pingIntervalMs) {
      this.#lastPingAt = now;
      this.#awaitingPongSince = now;
      ws.ping();
    }
    return null;
  }

  /** Closes the connection (politely once open) and drops what was queued. */
  close(): void {
    this.#closed = true;
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    const ws = this.#ws;
    if (ws && (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING)) {
      if (this.#open) ws.close(1000);
      else ws.terminate();
    }
    this.#pending = [];
    this.#pendingBytes = 0;
  }
}
