import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Clock } from '../pipeline/filter.js';
import { QUEUED_FRAME_OVERHEAD_BYTES } from '../pipeline/chain.js';
import { ProxyError } from '../protocol/errors.js';
import { clientFrame, closePayload, zeroMaskedTextFrame } from '../upstream/client-frame.js';
import { authRefusalOf, logUpstreamAuthRefused, upstreamAuthRejected } from '../upstream/auth-refusal.js';
import { maskingIsMoot, type UpstreamTarget } from '../upstream/dial.js';
import { FrameReader, Opcode } from '../upstream/frame-reader.js';
import { ownCopy } from './frame-slab.js';
import { requestUpgrade, type Handshake } from '../upstream/handshake.js';

/** conversation.item.retrieved carries whole audio items. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** How long a closing connection waits for the upstream's close frame and FIN before it is destroyed. */
const CLOSE_WAIT_MS = 2_000;
const EMPTY = Buffer.alloc(0);

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
 * opened (queued in order, bounded), one socket write per frame, liveness pings, reads paused
 * while the client is slow, and the close handshake. It owns the socket and speaks RFC 6455 on it
 * itself (handshake.ts, frame-reader.ts, client-frame.ts): no WebSocket library object, stream or
 * event emitter sits between the socket and the session. The session decides what events mean.
 */
export class UpstreamLink {
  readonly #target: UpstreamTarget;
  readonly #config: Config;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #events: UpstreamEvents;
  /** Frames go out with a zero masking key (client-frame.ts): over TLS or to loopback. */
  readonly #zeroMask: boolean;
  #handshake: Handshake | null = null;
  #socket: Socket | null = null;
  #reader: FrameReader | null = null;
  #open = false;
  /** The session closed this link: nothing more is sent or delivered. */
  #closed = false;
  #closeFrameSent = false;
  /** The upstream's close frame, reported when the socket closes. */
  #closeReceived: { code: number; reason: string } | null = null;
  /** `closed` or `failed` went to the session (once). */
  #reported = false;
  /** Client frames accepted before the upstream opened, in order. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #connectTimer: NodeJS.Timeout | null = null;
  #closeTimer: NodeJS.Timeout | null = null;
  #connectMs: number | null = null;
  #paused = false;
  #resumeScheduled = false;
  #lastPingAt = 0;
  #awaitingPongSince = 0;

  constructor(target: UpstreamTarget, config: Config, clock: Clock, log: Logger, events: UpstreamEvents) {
    this.#target = target;
    this.#config = config;
    this.#clock = clock;
    this.#log = log;
    this.#events = events;
    this.#zeroMask = maskingIsMoot(target.url);
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

  /** Bytes held for this connection: queued before open, in the socket's write buffer, read but not yet delivered. */
  get heldBytes(): number {
    return this.#pendingBytes + (this.#socket?.writableLength ?? 0) + (this.#reader?.bufferedBytes ?? 0);
  }

  dial(): void {
    const up = this.#config.upstream;
    const started = this.#clock.now();
    try {
      this.#handshake = requestUpgrade(this.#target, {
        upgraded: (socket, head) => {
          // Runs in an HTTP client callback: a failure ends this session only.
          try {
            this.#upgraded(socket, head, started);
          } catch (err) {
            this.#events.callbackFailed('upstream open', err);
          }
        },
        rejected: (status) => {
          // 401/403: the proxy's own key refused (the tenant's never reaches the upstream): not
          // retryable by the client, and the same answer as a refusal after the upgrade.
          const refusal = authRefusalOf(null, status);
          if (refusal !== null) {
            logUpstreamAuthRefused(this.#log, refusal);
            this.#fail(upstreamAuthRejected(refusal));
            return;
          }
          const retryable = status === 429 || status >= 500;
          this.#fail(
            new ProxyError('upstream_rejected', {
              message: `The Realtime upstream refused the connection with HTTP ${status}.`,
              close: retryable ? 'tryAgainLater' : 'internalError',
              details: { status },
            }),
          );
        },
        failed: (err) => {
          // The error text names addresses and TLS details: logged, not sent to the client.
          this.#log.warn({ err: err.message }, 'upstream connect failed');
          this.#fail(new ProxyError('upstream_unavailable'));
        },
      });
    } catch (err) {
      this.#log.error({ err }, 'upstream dial failed');
      this.#fail(new ProxyError('upstream_unavailable'));
      return;
    }
    this.#connectTimer = setTimeout(() => {
      this.#handshake?.abort();
      this.#fail(new ProxyError('upstream_unavailable', { message: `The Realtime upstream did not answer within ${up.connectTimeoutMs} ms.` }));
    }, up.connectTimeoutMs);
  }

  /** Cleared and let go: a session holds the cleared timer (and its closure) for its whole life otherwise. */
  #stopConnectTimer(): void {
    if (this.#connectTimer === null) return;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = null;
  }

  /** The dial ended without a connection (reported once; the session ends with `error`). */
  #fail(error: ProxyError): void {
    this.#stopConnectTimer();
    this.#handshake = null;
    if (this.#reported || this.#closed) return;
    this.#reported = true;
    try {
      this.#events.failed(error);
    } catch (err) {
      this.#events.callbackFailed('upstream dial', err);
    }
  }

  #upgraded(socket: Socket, head: Buffer, started: number): void {
    this.#stopConnectTimer();
    // The request (and its response) would live as long as the session otherwise.
    this.#handshake = null;
    if (this.#closed || this.#reported) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.setTimeout(0);
    const reader = new FrameReader(
      {
        message: (data, isBinary) => {
          if (!this.#closed) this.#events.message(data, isBinary);
        },
        ping: (payload) => this.#writeControl(Opcode.pong, payload),
        pong: () => {
          this.#awaitingPongSince = 0;
        },
        close: (code, reason) => this.#closeFrameReceived(code, reason),
        violation: (code, message) => {
          this.#log.warn({ closeCode: code, violation: message }, 'upstream broke the WebSocket protocol');
          this.#closing(code);
          // Nothing more will be read: the upstream gets the close frame and the end of the stream.
          socket.end();
          this.#report(1006, '');
        },
      },
      MAX_MESSAGE_BYTES,
      this.#config.upstream.validateUtf8,
    );
    this.#reader = reader;
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        this.#events.callbackFailed('upstream message', err);
      }
    });
    socket.on('error', (err) => this.#log.warn({ err: err.message }, 'upstream socket error'));
    socket.on('close', () => {
      if (this.#closeTimer) clearTimeout(this.#closeTimer);
      reader.stop();
      // Without a close frame (or when the protocol broke) it is an abnormal closure, as RFC 6455 names it.
      const received = this.#closeReceived;
      this.#report(received?.code ?? 1006, received?.reason ?? '');
    });
    if (this.#paused) {
      socket.pause();
      reader.pause();
    }
    this.#open = true;
    this.#connectMs = this.#clock.now() - started;
    this.#events.opened(this.#connectMs);
    if (this.#closed) return;
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    // What the client sent while the upstream was dialled leaves in one write.
    socket.cork();
    for (const buf of pending) this.#write(socket, buf, null);
    socket.uncork();
    if (head.length > 0) reader.push(head);
  }

  /**
   * The session hears of the connection's end once: when the socket closes (with the upstream's close
   * code if a close frame came, else 1006), or at once when the upstream broke the protocol.
   */
  #report(code: number, reason: string): void {
    this.#open = false;
    if (this.#reported) return;
    this.#reported = true;
    try {
      this.#events.closed(code, reason);
    } catch (err) {
      this.#events.callbackFailed('upstream close', err);
    }
  }

  #closeFrameReceived(code: number, reason: string): void {
    this.#closeReceived = { code, reason };
    // The upstream began the closing handshake (or answered ours): echo its code; with both close
    // frames out the handshake is done on this side. The session hears of it when the socket
    // closes, after the frames read before the close frame went through its chain.
    this.#closing(code === 1005 ? null : code);
    this.#socket?.end();
  }

  /** Sends a close frame (once) and bounds the wait for the upstream to finish the close (then the socket is destroyed). */
  #closing(code: number | null): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#open = false;
    if (!this.#closeFrameSent) {
      this.#closeFrameSent = true;
      this.#writeControl(Opcode.close, code === null ? EMPTY : closePayload(code));
    }
    if (this.#closeTimer || socket.destroyed) return;
    this.#closeTimer = setTimeout(() => socket.destroy(), CLOSE_WAIT_MS);
    this.#closeTimer.unref();
  }

  #writeControl(opcode: number, payload: Buffer): void {
    const socket = this.#socket;
    if (!socket || socket.destroyed || !socket.writable) return;
    // Nothing follows a close frame (RFC 6455 §5.5.1); #closing sends it once.
    if (this.#closeFrameSent && opcode !== Opcode.close) return;
    socket.write(clientFrame(opcode, payload, this.#zeroMask));
  }

  /**
   * Sends (or queues until open) one frame; an error when the bounded buffer would overflow.
   * `framed`: the same payload already framed as a zero-masked text frame, written as it is when
   * the connection writes such frames itself.
   */
  send(bytes: Buffer, framed: Buffer | null = null): ProxyError | null {
    if (this.#closed) return null;
    const socket = this.#socket;
    const limit = this.#config.server.backpressure.upstreamMaxBufferedBytes;
    if (!this.#open || !socket) {
      // Each waiting frame counts its overhead too (QUEUED_FRAME_OVERHEAD_BYTES): tiny frames cost more than their bytes.
      const cost = bytes.length + QUEUED_FRAME_OVERHEAD_BYTES;
      if (this.#pendingBytes + cost > limit) {
        return new ProxyError('upstream_backpressure', { message: 'Too much data was sent before the upstream connection opened.' });
      }
      // Its own copy: a frame-slab slice kept until the upstream opens would keep its whole slab (frame-slab.ts).
      this.#pending.push(ownCopy(bytes));
      this.#pendingBytes += cost;
      return null;
    }
    if (socket.writableLength + bytes.length > limit) return new ProxyError('upstream_backpressure');
    this.#write(socket, bytes, framed);
    return null;
  }

  /**
   * One write per frame, at once. Gathering a loop turn's frames per link into one write (a
   * `setImmediate` per turn: uWS drains microtasks after each message callback) was tried on
   * 2026-12-07: no CPU gain paced, and client → upstream p99 at 500 paced sessions doubled (16.8 →
   * 33.6 ms: every frame of a burst waited for the whole poll phase); reverted (bench/history.md).
   */
  #write(socket: Socket, bytes: Buffer, framed: Buffer | null): void {
    if (socket.destroyed) return;
    socket.write(this.#zeroMask ? (framed ?? zeroMaskedTextFrame(bytes)) : clientFrame(Opcode.text, bytes, false));
  }

  /** Data proves the upstream alive as well as a pong does (pongs queue behind data). */
  alive(): void {
    this.#awaitingPongSince = 0;
  }

  /** Stops reading (the client is slow); true when this call paused it. */
  pause(): boolean {
    if (this.#paused || this.#closed) return false;
    this.#paused = true;
    this.#socket?.pause();
    this.#reader?.pause();
    return true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#socket?.resume();
    // Frames already read wait in the reader: delivered on the next turn, never inside the caller.
    if (this.#resumeScheduled) return;
    this.#resumeScheduled = true;
    setImmediate(() => {
      this.#resumeScheduled = false;
      if (this.#paused) return;
      try {
        this.#reader?.resume();
      } catch (err) {
        this.#events.callbackFailed('upstream message', err);
      }
    });
  }

  /** Liveness from the server's shared timer: pings, and an error when a ping went unanswered. */
  tick(now: number): ProxyError | null {
    const up = this.#config.upstream;
    if (this.#paused && this.#awaitingPongSince) {
      // Reads are paused for a slow client: the pong sits unread in the socket. The wait for it
      // counts from the resume; the slow-client grace bounds the pause.
      this.#awaitingPongSince = now;
    }
    const socket = this.#socket;
    if (!this.#open || !socket) return null;
    if (this.#awaitingPongSince && now - this.#awaitingPongSince > up.pongTimeoutMs) {
      socket.destroy();
      return new ProxyError('upstream_timeout', { message: `The Realtime upstream did not answer a ping within ${up.pongTimeoutMs} ms.` });
    }
    if (!this.#awaitingPongSince && now - this.#lastPingAt >= up.pingIntervalMs) {
      this.#lastPingAt = now;
      this.#awaitingPongSince = now;
      this.#writeControl(Opcode.ping, EMPTY);
    }
    return null;
  }

  /** Closes the connection (politely once open) and drops what was queued. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopConnectTimer();
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#socket === null) {
      this.#handshake?.abort();
      return;
    }
    this.#closing(1000);
  }
}
