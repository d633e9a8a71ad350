import type { Logger } from 'pino';
import type { WebSocket as UwsSocket } from 'uWebSockets.js';
import type WebSocket from 'ws';
import type { Config } from '../config/schema.js';
import type { ChainTemplate, ChainSink, SessionChain } from '../pipeline/chain.js';
import type { Clock, CloseInfo, Direction, SessionContext } from '../pipeline/filter.js';
import { AudioMeter } from '../pipeline/audio-meter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { Report } from '../pipeline/reports.js';
import { Conversation, type ConversationView, type ItemMark } from '../protocol/conversation.js';
import type { RealtimeClientEvent, RealtimeServerEvent } from '../protocol/events.js';
import { asObject } from '../protocol/json.js';
import { CloseCode, ProxyError } from '../protocol/errors.js';
import { AUDIO_IN } from '../protocol/events.js';
import { DUPLICATE_KEY, sniffString, sniffType } from '../protocol/sniff.js';
import { DuplicateMemberError, memberProblemError, parseStrict } from '../protocol/strict-json.js';
import type { Tenant } from '../tenants/tenant.js';
import type { MemoryBudget } from '../server/memory-budget.js';
import { dialUpstream, type UpstreamTarget } from '../upstream/dial.js';
import { exceedsJsonDepth } from '../protocol/json-depth.js';
import { isOutputAudio, ResponseTracker } from './responses.js';
import { MicrotaskCork } from './upstream-cork.js';

/** Per-socket data attached to the uWS WebSocket at upgrade. */
export interface ClientSocketData {
  session: RelaySession | null;
  /** Set for browser-style clients whose key failed: they get an error event then a close. */
  refusal: ProxyError | null;
  /** What admission decided, consumed when the socket opens (uWS copies user data: no identity maps). */
  admitted: AdmittedClient | null;
}

export interface AdmittedClient {
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  readonly headers: ReadonlyMap<string, string>;
}

export type ClientSocket = UwsSocket<ClientSocketData>;

export interface SessionInit {
  readonly id: string;
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  readonly target: UpstreamTarget;
  readonly config: Config;
  readonly template: ChainTemplate;
  readonly clock: Clock;
  readonly log: Logger;
  /** The server's global byte budget; large client frames reserve from it. */
  readonly budget?: MemoryBudget;
  readonly onEnded: (session: RelaySession) => void;
  /**
   * The WebRTC/SIP call this session controls (a `?call_id=` sideband). Default: the query's
   * `call_id`. Cancels then also clear the call's output audio buffer (audio that already reached
   * the browser or phone plays on otherwise).
   */
  readonly callId?: string | null;
}

/** Counters written on the hot path: plain numbers, read at session end and by metrics. */
export interface RelayStats {
  clientFrames: number;
  clientBytes: number;
  serverFrames: number;
  serverBytes: number;
  rejectedFrames: number;
  backpressureEvents: number;
}

/**
 * Client frames are copied out of uWS (it neuters `message` when the callback returns) into
 * slices of a shared slab: one allocation per 512 KiB of traffic instead of one per frame
 * (a fresh 6 KiB Buffer costs more than the relay's whole per-frame work). A slab lives until
 * its last slice is collected; slices are forwarded at once, so slabs turn over quickly.
 */
const SLAB_BYTES = 512 * 1024;
const SLAB_MAX_FRAME = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabOffset = 0;

function copyFrame(message: ArrayBuffer): Buffer {
  const n = message.byteLength;
  if (n > SLAB_MAX_FRAME) {
    const own = Buffer.allocUnsafeSlow(n);
    own.set(new Uint8Array(message));
    return own;
  }
  if (slabOffset + n > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabOffset = 0;
  }
  const buf = slab.subarray(slabOffset, slabOffset + n);
  buf.set(new Uint8Array(message));
  slabOffset = (slabOffset + n + 7) & ~7;
  return buf;
}

/** Options of every upstream send (one object, not one per frame). */
const TEXT_FRAME = { binary: false, compress: false } as const;

/** Injected events whose upstream error is still recognised (oldest forgotten first). */
const MAX_TRACKED_INJECTIONS = 256;

/** Relay overhead is timed on one frame in 64 per direction (mask of the frame counter). */
const RELAY_SAMPLE_MASK = 63;

/**
 * Upstream close codes relayed unchanged. 4000 means "bad request" upstream as here; other 4xxx
 * codes would read as the proxy's own (4001 unauthorized … 4008 slow consumer) and are mapped.
 */
const UPSTREAM_CLOSE_PASSTHROUGH = (code: number) =>
  code === 1000 || code === 1001 || code === 1008 || code === 1011 || code === 1012 || code === 1013 || (code >= 3000 && code <= 4000);

/** Client frames at least this large reserve their size from the global memory budget. */
const BUDGETED_FRAME_BYTES = 64 * 1024;

/** Audio appends are the bulk of client traffic: one flat string, never parsed, depth 1. */
const AUDIO_APPEND = 'input_audio_buffer.append';

/**
 * One client connection and its upstream connection. Implements the filters' SessionContext (no
 * sockets exposed) and the chain's sink (the only place frames meet sockets).
 */
export class RelaySession implements SessionContext, ChainSink {
  readonly id: string;
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  readonly callId: string | null;
  readonly startedAt: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly stats: RelayStats = {
    clientFrames: 0,
    clientBytes: 0,
    serverFrames: 0,
    serverBytes: 0,
    rejectedFrames: 0,
    backpressureEvents: 0,
  };

  /** Audio accounting for the filters (perf: audio frames reach no filter that does not name them). */
  readonly audio: AudioMeter;
  readonly #config: Config;
  readonly #target: UpstreamTarget;
  readonly #chain: SessionChain;
  readonly #conversation = new Conversation();
  readonly #responses = new ResponseTracker(this.#conversation);
  readonly #onEnded: (s: RelaySession) => void;
  readonly #budget: MemoryBudget | null;
  #client: ClientSocket | null;
  #upstream: WebSocket | null = null;
  #upstreamOpen = false;
  /** perf: upstream writes of one event-loop turn leave in one writev. */
  readonly #upstreamCork = new MicrotaskCork();
  /** Client frames accepted before the upstream opened, in order. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Frames for the client, flushed once per event-loop turn inside one cork. */
  #outbox: Buffer[] = [];
  #flushScheduled = false;
  #upstreamPaused = false;
  #overHighSince = 0;
  #lastPingAt = 0;
  #awaitingPongSince = 0;
  #connectTimer: NodeJS.Timeout | null = null;
  #eventSeq = 0;
  #clientSample = 0;
  #serverSample = 0;
  /** Arrival time of the sampled upstream frame awaiting its flush, or 0. */
  #serverSampleAt = 0;
  /** Events the proxy injected upstream, by event id: upstream errors about them stay here. */
  readonly #injected = new Map<string, { readonly type: string; readonly by: string }>();
  #ended = false;
  /**
   * Set while the relay keeps the upstream after the client left mid-response (onClientClose):
   * OpenAI bills a response whether or not anyone reads it, so its response.done must still reach
   * the filters (metering). Holds the client's close, reported to the filters when the linger ends.
   */
  #linger: { readonly info: CloseInfo; readonly timer: NodeJS.Timeout; readonly cancelled: Set<string>; checkScheduled: boolean } | null = null;
  #closeInfo: CloseInfo | null = null;
  #clientCloseCode: number | null = null;
  #upstreamCloseCode: number | null = null;
  #upstreamConnectMs: number | null = null;

  /** `client` null: a session the proxy runs on its own (the sideband of a call, src/calls): no client to relay to. */
  constructor(init: SessionInit, client: ClientSocket | null) {
    this.id = init.id;
    this.tenant = init.tenant;
    this.model = init.model;
    this.query = init.query;
    this.callId = init.callId ?? init.query.get('call_id') ?? null;
    this.clock = init.clock;
    this.startedAt = init.clock.now();
    this.log = init.log;
    this.#config = init.config;
    this.#target = init.target;
    this.#onEnded = init.onEnded;
    this.#budget = init.budget ?? null;
    this.#client = client;
    this.audio = new AudioMeter((report) => this.report(report));
    this.#chain = init.template.instantiate(this, this);
  }

  get conversation(): ConversationView {
    return this.#conversation;
  }

  markItem(itemId: string, mark: ItemMark): void {
    this.#conversation.mark(itemId, mark);
  }

  get upstreamConnectMs(): number | null {
    return this.#upstreamConnectMs;
  }

  get ended(): boolean {
    return this.#ended;
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  start(): void {
    const started = this.clock.now();
    let ws: WebSocket;
    try {
      ws = dialUpstream(this.#target, this.#config.upstream.connectTimeoutMs, this.#config.upstream.validateUtf8);
    } catch (err) {
      // Details (addresses, TLS errors) go to the log, never to the client.
      this.log.error({ err }, 'upstream dial failed');
      this.close(new ProxyError('upstream_unavailable'));
      return;
    }
    this.#upstream = ws;
    this.#connectTimer = setTimeout(() => {
      if (this.#upstreamOpen || this.#ended) return;
      ws.terminate();
      this.close(new ProxyError('upstream_unavailable', { message: `The Realtime upstream did not answer within ${this.#config.upstream.connectTimeoutMs} ms.` }));
    }, this.#config.upstream.connectTimeoutMs);
    ws.on('upgrade', (res) => this.#upstreamCork.attach(res.socket));
    ws.on('open', () => {
      if (this.#connectTimer) clearTimeout(this.#connectTimer);
      this.#upstreamOpen = true;
      this.#upstreamConnectMs = this.clock.now() - started;
      this.report({ kind: 'upstream_connected', ms: this.#upstreamConnectMs });
      const pending = this.#pending;
      this.#pending = [];
      this.#pendingBytes = 0;
      if (pending.length > 0) this.#upstreamCork.hold();
      for (const buf of pending) ws.send(buf, TEXT_FRAME);
    });
    ws.on('message', (data, isBinary) => {
      try {
        this.#onUpstreamMessage(data as Buffer, isBinary);
      } catch (err) {
        this.#callbackFailed('upstream message', err);
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
      this.close(
        new ProxyError('upstream_rejected', {
          message: `The Realtime upstream refused the connection with HTTP ${status}.`,
          close: retryable ? 'tryAgainLater' : 'internalError',
          details: { status },
        }),
      );
    });
    ws.on('error', (err) => {
      if (this.#ended) return;
      if (!this.#upstreamOpen) {
        // The error text names addresses and TLS details: logged, not sent to the client.
        this.log.warn({ err: err.message }, 'upstream connect failed');
        this.close(new ProxyError('upstream_unavailable'));
      } else {
        this.log.warn({ err: err.message }, 'upstream socket error');
      }
    });
    ws.on('close', (code, reason) => {
      try {
        this.#onUpstreamClose(code, reason.toString('utf8'));
      } catch (err) {
        this.#callbackFailed('upstream close', err);
      }
    });
  }

  /** Upstream socket callbacks run outside uWS: a failure ends this session only. */
  #callbackFailed(what: string, err: unknown): void {
    this.log.error({ err }, `${what} handler failed`);
    try {
      this.close(new ProxyError('internal_error', { close: 'internalError' }));
    } catch (closeErr) {
      this.log.error({ err: closeErr }, 'session teardown failed');
    }
  }

  /** Bytes this session holds for its sockets (summed into the global memory budget). */
  heldBytes(): number {
    let n = this.#pendingBytes + this.#chain.queuedBytes('client') + this.#chain.queuedBytes('server');
    for (const b of this.#outbox) n += b.length;
    const up = this.#upstream;
    if (up) n += up.bufferedAmount;
    const client = this.#client;
    if (client) {
      try {
        n += client.getBufferedAmount();
      } catch {
        // Closed in this tick.
      }
    }
    return n;
  }

  /** Periodic check from the server's shared timer: upstream liveness and slow clients. */
  tick(now: number): void {
    if (this.#ended) return;
    const bp = this.#config.server.backpressure;
    if (this.#overHighSince && now - this.#overHighSince > bp.slowClientGraceMs) {
      this.close(new ProxyError('slow_consumer', { message: `The client stayed over ${bp.highWatermarkBytes} buffered bytes for ${bp.slowClientGraceMs} ms.` }));
      return;
    }
    const up = this.#config.upstream;
    if (this.#upstreamPaused && this.#awaitingPongSince) {
      // Reads are paused for a slow client: the pong sits unread in the socket. The wait for it
      // counts from the resume; the slow-client grace bounds the pause.
      this.#awaitingPongSince = now;
    }
    if (this.#upstreamOpen && this.#upstream) {
      if (this.#awaitingPongSince && now - this.#awaitingPongSince > up.pongTimeoutMs) {
        this.#upstream.terminate();
        this.close(new ProxyError('upstream_timeout', { message: `The Realtime upstream did not answer a ping within ${up.pongTimeoutMs} ms.` }));
        return;
      }
      if (!this.#awaitingPongSince && now - this.#lastPingAt >= up.pingIntervalMs) {
        this.#lastPingAt = now;
        this.#awaitingPongSince = now;
        this.#upstream.ping();
      }
    }
  }

  // ---- client → upstream -------------------------------------------------------------------

  onClientMessage(message: ArrayBuffer, isBinary: boolean): void {
    if (this.#ended) return;
    this.stats.clientFrames++;
    this.stats.clientBytes += message.byteLength;
    if (isBinary) {
      this.#rejectClientFrame(new ProxyError('invalid_event', { message: 'Expected a text WebSocket message.' }));
      return;
    }
    if (message.byteLength > this.#config.server.maxFrameBytes) {
      this.#rejectClientFrame(
        new ProxyError('frame_too_large', { message: `The frame has ${message.byteLength} bytes; the maximum is ${this.#config.server.maxFrameBytes}.` }),
      );
      return;
    }
    if (message.byteLength >= BUDGETED_FRAME_BYTES && this.#budget && !this.#budget.tryReserve(message.byteLength)) {
      this.#rejectClientFrame(new ProxyError('memory_budget_exceeded'));
      return;
    }
    // Frames wait behind an async verdict (a held turn, a blocking guardrail): as many bytes as the
    // upstream socket may buffer, no more.
    if (this.#chain.queued('client') > 0 && this.#chain.queuedBytes('client') + message.byteLength > this.#config.server.backpressure.upstreamMaxBufferedBytes) {
      this.close(new ProxyError('upstream_backpressure', { message: 'Too much data was sent while an earlier event was being checked.' }));
      return;
    }
    const bytes = copyFrame(message);
    const type = sniffType(bytes);
    if (type === DUPLICATE_KEY) {
      this.#rejectClientFrame(new ProxyError('invalid_event', { message: "The event has more than one 'type' member." }));
      return;
    }
    if (type !== AUDIO_APPEND && exceedsJsonDepth(bytes, this.#config.server.maxJsonDepth)) {
      const eventId = sniffString(bytes, 'event_id');
      this.#rejectClientFrame(
        new ProxyError('invalid_event', {
          message: `The event nests deeper than ${this.#config.server.maxJsonDepth} levels.`,
          eventId: typeof eventId === 'string' ? eventId : null,
          // The same reason the strict parser reports for parsed frames.
          details: { reason: 'too_deep' },
        }),
      );
      return;
    }
    if (typeof type === 'string' && type.length > 0) {
      // One frame in 64: time the synchronous path from the socket read to the upstream write.
      const sampled = (++this.#clientSample & RELAY_SAMPLE_MASK) === 0;
      const t0 = sampled || type === AUDIO_IN ? this.clock.now() : 0;
      if (type === AUDIO_IN) this.audio.input(bytes, t0);
      // perf: a type no filter wants (audio, in practice) leaves without a Frame, unless frames queue.
      if (this.#chain.bypasses('client', type)) this.#sendToUpstream(bytes);
      else this.#chain.fromClient(Frame.fromClient(type, bytes));
      if (sampled && this.#upstreamOpen && this.#chain.queued('client') === 0) {
        this.report({ kind: 'relay_latency', direction: 'client', ms: this.clock.now() - t0 });
      }
      return;
    }
    // The sniffer could not read it cheaply: let the real parser decide.
    let parsed: unknown;
    try {
      parsed = parseStrict(bytes);
    } catch (err) {
      if (err instanceof DuplicateMemberError) {
        this.#rejectClientFrame(memberProblemError(null, err));
        return;
      }
      this.#rejectClientFrame(new ProxyError('invalid_json', { message: 'The frame is not valid JSON.' }));
      return;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      this.#rejectClientFrame(new ProxyError('invalid_event', { message: 'The event must be a JSON object.' }));
      return;
    }
    const ev = parsed as JsonObject;
    const eventId = typeof ev['event_id'] === 'string' ? ev['event_id'] : null;
    if (typeof ev['type'] !== 'string' || ev['type'].length === 0) {
      this.#rejectClientFrame(new ProxyError('invalid_event', { message: "The 'type' field is missing or not a string.", eventId }));
      return;
    }
    this.#chain.fromClient(Frame.fromClient(ev['type'], bytes, ev));
  }

  #rejectClientFrame(error: ProxyError): void {
    this.stats.rejectedFrames++;
    this.#sendErrorToClient(error);
  }

  #sendToUpstream(bytes: Buffer): void {
    const ws = this.#upstream;
    const limit = this.#config.server.backpressure.upstreamMaxBufferedBytes;
    if (!this.#upstreamOpen || !ws) {
      if (this.#pendingBytes + bytes.length > limit) {
        this.close(new ProxyError('upstream_backpressure', { message: 'Too much data was sent before the upstream connection opened.' }));
        return;
      }
      this.#pending.push(bytes);
      this.#pendingBytes += bytes.length;
      return;
    }
    if (ws.bufferedAmount + bytes.length > limit) {
      this.close(new ProxyError('upstream_backpressure'));
      return;
    }
    this.#upstreamCork.hold();
    ws.send(bytes, TEXT_FRAME);
  }

  // ---- upstream → client -------------------------------------------------------------------

  #onUpstreamMessage(data: Buffer, isBinary: boolean): void {
    if (this.#ended) return;
    // Data proves the upstream alive as well as a pong does (pongs queue behind data).
    this.#awaitingPongSince = 0;
    this.stats.serverFrames++;
    this.stats.serverBytes += data.length;
    if (isBinary) {
      // The Realtime API sends only text frames; a binary one is a protocol error we do not relay.
      this.log.warn({ bytes: data.length }, 'binary frame from upstream dropped');
      return;
    }
    if ((++this.#serverSample & RELAY_SAMPLE_MASK) === 0 && this.#serverSampleAt === 0) this.#serverSampleAt = this.clock.now();
    let frame: Frame;
    const type = sniffType(data);
    if (typeof type === 'string' && type.length > 0) {
      // perf: output audio no filter wants goes straight to the client (suppression still applies).
      if (isOutputAudio(type) && this.#chain.bypasses('server', type)) {
        this.#forwardAudio(data);
        return;
      }
      frame = new Frame(type, data);
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(data.toString('utf8'));
      } catch {
        parsed = null;
      }
      const ev = asObject(parsed);
      if (!ev) {
        // Not a JSON object: no client library can parse it as an event. Dropped, like binary.
        this.log.warn({ bytes: data.length }, 'upstream frame that is not a JSON object dropped');
        return;
      }
      const t = typeof ev['type'] === 'string' ? ev['type'] : '';
      frame = new Frame(t, data, ev);
    }
    if (frame.type === 'error' && this.#injected.size > 0 && this.#isAboutInjected(frame)) return;
    this.#conversation.observeServer(frame);
    const tracked = this.#responses.inspect(frame);
    if (tracked) this.#chain.fromServer(tracked);
    if (this.#linger) this.#lingerCheck();
  }

  /**
   * Upstream errors caused by an event the proxy injected stay here. A racing `response.cancel`
   * or a delete of an item already gone is harmless; any other refusal (a locked session.update,
   * a clamp) means the session is no longer governed as configured: a governance failure.
   */
  #isAboutInjected(frame: Frame): boolean {
    const err = frame.json()['error'];
    const body = asObject(err);
    const id = body?.['event_id'];
    const injected = typeof id === 'string' ? this.#injected.get(id) : undefined;
    if (!body || !injected) return false;
    const code = typeof body['code'] === 'string' ? body['code'] : 'unknown';
    // An item the upstream does not know is already out of the conversation: the delete achieved its end.
    const itemGone = injected.type.startsWith('conversation.item.') && (code.includes('not_found') || (injected.type === 'conversation.item.delete' && body['param'] === 'item_id'));
    // Nothing left to clear is as harmless as a cancel that raced the response's end.
    // A response the proxy creates for a held spoken turn lost a race with the client's own create: that one answers the turn.
    const raced = injected.type === 'response.create' && code === 'conversation_already_has_active_response';
    if (injected.type === 'response.cancel' || injected.type === 'output_audio_buffer.clear' || itemGone || raced) {
      this.log.debug({ code, eventType: injected.type }, 'upstream error about an injected event');
      return true;
    }
    const message = typeof body['message'] === 'string' ? body['message'].slice(0, 300) : '';
    const policy = this.#config.upstream.onInjectedEventError;
    this.log.warn({ code, eventType: injected.type, by: injected.by, upstreamMessage: message, onInjectedEventError: policy }, 'governance failure: the upstream refused an event the proxy injected');
    this.report({ kind: 'injected_error', eventType: injected.type, by: injected.by, code });
    if (policy === 'end_session') {
      this.close(
        new ProxyError('governance_failed', {
          message: `The upstream refused the proxy's ${injected.type} (${code}); the session cannot be governed as configured and was ended.`,
          details: { eventType: injected.type, by: injected.by, upstreamCode: code },
        }),
      );
    }
    return true;
  }

  #sendToClient(bytes: Buffer | string): void {
    if (!this.#client) return;
    this.#outbox.push(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  /** All frames produced in one event-loop turn leave in one cork (one syscall / TLS record batch). */
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const ws = this.#client;
    const out = this.#outbox;
    if (out.length === 0 || !ws) return;
    this.#outbox = [];
    let dropped = false;
    ws.cork(() => {
      for (const buf of out) if (ws.send(buf, false, false) === 2) dropped = true;
    });
    if (this.#serverSampleAt !== 0) {
      // Socket read → corked write of the batch it arrived in.
      this.report({ kind: 'relay_latency', direction: 'server', ms: this.clock.now() - this.#serverSampleAt });
      this.#serverSampleAt = 0;
    }
    if (dropped) {
      this.close(new ProxyError('slow_consumer', { message: 'The client send buffer overflowed.' }));
      return;
    }
    this.#checkClientBackpressure(ws);
  };

  #checkClientBackpressure(ws: ClientSocket): void {
    const bp = this.#config.server.backpressure;
    const buffered = ws.getBufferedAmount();
    if (buffered > bp.maxBufferedBytes) {
      this.close(new ProxyError('slow_consumer', { message: 'The client send buffer exceeded its limit.' }));
      return;
    }
    if (buffered > bp.highWatermarkBytes && !this.#upstreamPaused && this.#upstream) {
      this.#upstreamPaused = true;
      this.#overHighSince = this.clock.now();
      this.stats.backpressureEvents++;
      this.#upstream.pause();
      this.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
    }
  }

  onClientDrain(): void {
    const ws = this.#client;
    if (!ws || !this.#upstreamPaused) return;
    if (ws.getBufferedAmount() <= this.#config.server.backpressure.lowWatermarkBytes) {
      this.#upstreamPaused = false;
      this.#overHighSince = 0;
      this.#upstream?.resume();
      this.report({ kind: 'backpressure', direction: 'server', state: 'resumed' });
    }
  }

  // ---- ChainSink ---------------------------------------------------------------------------

  forward(direction: Direction, frame: Frame): void {
    if (this.#ended) return;
    if (direction === 'client') {
      if (frame.type === 'response.create') {
        // Every create upstream carries its own event_id: the key that pairs it with its response.
        const stamped = this.#conversation.stampCreate(frame, () => this.nextEventId());
        this.#conversation.observeClient(stamped.frame, false);
        this.#sendToUpstream(stamped.frame.wireBytes());
        if (stamped.eventId !== null) this.report({ kind: 'create_sent', eventId: stamped.eventId });
        return;
      }
      this.#conversation.observeClient(frame, false);
      this.#sendToUpstream(frame.wireBytes());
      return;
    }
    if (this.#linger) {
      // The client is gone: the frame went through the filters (metering settles), nobody reads it.
      this.#lingerCheck();
      return;
    }
    if (isOutputAudio(frame.type)) {
      this.#forwardAudio(frame.bytes);
      return;
    }
    if (this.#responses.suppressing) {
      const late = this.#responses.recheck(frame);
      if (late === null) return;
      frame = late;
    }
    this.#sendToClient(frame.bytes);
  }

  /** An output audio delta: dropped if its response is suppressed, else metered and sent. */
  #forwardAudio(bytes: Buffer): void {
    const responseId = this.#responses.audioResponseId(bytes);
    if (responseId !== null && this.#responses.isSuppressed(responseId)) return;
    this.audio.output(responseId, bytes, this.clock.now());
    this.#sendToClient(bytes);
  }

  reject(_direction: Direction, error: ProxyError): void {
    this.stats.rejectedFrames++;
    this.#sendErrorToClient(error);
  }

  // ---- SessionContext ----------------------------------------------------------------------

  nextEventId(): string {
    return `event_proxy_${this.id.slice(-8)}_${(++this.#eventSeq).toString(36)}`;
  }

  sendUpstream(event: RealtimeClientEvent, by: string): void {
    if (this.#ended) return;
    let payload: RealtimeClientEvent = event;
    if (event.event_id === undefined) {
      const eventId = this.nextEventId();
      // Bounded: only recent injections can still draw an error.
      if (this.#injected.size >= MAX_TRACKED_INJECTIONS) this.#injected.delete(this.#injected.keys().next().value!);
      this.#injected.set(eventId, { type: event.type, by });
      payload = Object.assign({}, event, { event_id: eventId });
    }
    const frame = Frame.fromEvent(payload);
    this.#conversation.observeClient(frame, true);
    this.#sendToUpstream(frame.bytes);
    this.report({ kind: 'injected', direction: 'client', eventType: event.type, by });
  }

  sendClient(event: RealtimeServerEvent, by: string): void {
    if (this.#ended) return;
    this.#sendToClient(JSON.stringify(event));
    this.report({ kind: 'injected', direction: 'server', eventType: event.type, by });
  }

  report(report: Report): void {
    this.#chain.report(report);
  }

  cancelResponse(responseId: string, by: string, notice: ProxyError): void {
    if (this.#ended || !this.#responses.suppress(responseId)) return;
    if (this.#responses.isActive(responseId)) {
      this.sendUpstream({ type: 'response.cancel', response_id: responseId }, by);
    }
    // On a call the audio is already buffered at the browser or phone: stop it playing too.
    if (this.callId !== null) this.sendUpstream({ type: 'output_audio_buffer.clear' }, by);
    this.#sendErrorToClient(notice);
  }

  isSuppressed(responseId: string): boolean {
    return this.#responses.isSuppressed(responseId);
  }

  #sendErrorToClient(error: ProxyError): void {
    if (error.closesSession) {
      this.close(error);
      return;
    }
    this.#sendToClient(JSON.stringify(error.toEvent(this.nextEventId())));
  }

  /** Ends the session from the proxy side: error event to the client, then both sockets close. */
  close(error: ProxyError): void {
    if (this.#ended) return;
    const code = error.closeCode ?? CloseCode.internalError;
    this.log.info({ code: error.code, closeCode: code }, 'proxy ends session');
    if (this.#client) {
      this.#sendToClient(JSON.stringify(error.toEvent(this.nextEventId())));
      this.#flush();
    }
    const info: CloseInfo = { initiator: 'proxy', code, reason: error.closeReason };
    const lingerMs = this.#lingerMs();
    if (lingerMs > 0 && this.#upstreamOpen && this.#responseInFlight()) {
      // A response is running: the client is closed now, the upstream kept until that response's
      // response.done (billed as OpenAI bills it), as when the client leaves (onClientClose).
      this.#closeClient(code, error.closeReason);
      this.#startLinger(info, lingerMs);
      return;
    }
    this.#finish(info, code, error.closeReason);
  }

  /** How long the upstream is kept after the session ends mid-response; 0 without metering. */
  #lingerMs(): number {
    // The linger exists so metering can bill what OpenAI bills; without metering there is nothing to wait for.
    return this.#config.metering.enabled ? this.#config.metering.lingerAfterClientCloseMs : 0;
  }

  #closeClient(code: number, reason: string): void {
    const client = this.#client;
    if (!client) return;
    this.#client = null;
    this.#clientCloseCode = code;
    try {
      client.end(code, reason.slice(0, 123));
    } catch {
      // Already closed by the peer in the same tick.
    }
  }

  // ---- closes ------------------------------------------------------------------------------

  onClientClose(code: number, reason: string): void {
    this.#clientCloseCode = code;
    this.#client = null;
    if (this.#ended || this.#linger) return;
    const info: CloseInfo = { initiator: 'client', code, reason };
    const lingerMs = this.#lingerMs();
    if (lingerMs > 0 && this.#upstreamOpen && this.#responseInFlight()) {
      this.#startLinger(info, lingerMs);
      return;
    }
    this.#finish(info, null, '');
  }

  /**
   * The client left while a response runs (or a response.create awaits its response.created):
   * cancel it upstream and keep reading the upstream, frames still through the filter chain but
   * to no client, until every response has its response.done (then metering has billed the
   * usage OpenAI bills) or `lingerMs` passed (metering then bills the reservation's estimate).
   * Then the session ends as the client's close; filters' onClose sees it only then.
   */
  #startLinger(info: CloseInfo, lingerMs: number): void {
    this.#outbox = [];
    this.#overHighSince = 0;
    if (this.#upstreamPaused) {
      this.#upstreamPaused = false;
      this.#upstream?.resume();
    }
    const timer = setTimeout(() => this.#finish(info, null, ''), lingerMs);
    timer.unref();
    this.#linger = { info, timer, cancelled: new Set(), checkScheduled: false };
    this.log.debug({ lingerMs }, 'client left mid-response: waiting for response.done upstream');
    this.#lingerCancel();
  }

  /** Sends response.cancel once for every running response (new ones included: nobody will read them). */
  #lingerCancel(): void {
    const linger = this.#linger!;
    for (const id of this.#conversation.activeResponses()) {
      // A response a filter already stopped (cancelResponse) has its response.cancel upstream.
      if (linger.cancelled.has(id) || this.isSuppressed(id)) continue;
      linger.cancelled.add(id);
      this.sendUpstream({ type: 'response.cancel', response_id: id }, 'relay');
    }
  }

  /** Ends the linger once nothing is in flight and the chain has delivered every frame to the filters. */
  #lingerCheck(): void {
    const linger = this.#linger;
    if (!linger || this.#ended || linger.checkScheduled) return;
    linger.checkScheduled = true;
    // Deferred: this may run inside the chain's own delivery, which must finish first. Metering is
    // first in the upstream→client chain, so a response.done that left the tracker is billed by now
    // unless a frame waits in the queue.
    setImmediate(() => {
      linger.checkScheduled = false;
      if (this.#ended) return;
      this.#lingerCancel();
      if (!this.#responseInFlight() && this.#chain.queued('server') === 0) this.#finish(linger.info, null, '');
    });
  }

  /** A response runs upstream, or a response.create sent upstream has not been answered yet. */
  #responseInFlight(): boolean {
    return this.#conversation.activeResponses().length > 0 || this.#conversation.awaitingResponses > 0;
  }

  #onUpstreamClose(code: number, reason: string): void {
    this.#upstreamCloseCode = code;
    this.#upstreamOpen = false;
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    if (this.#ended) return;
    if (UPSTREAM_CLOSE_PASSTHROUGH(code)) {
      // OpenAI's own error event (if any) has already been relayed: pass its close code on unchanged.
      this.#finish({ initiator: 'upstream', code, reason }, code, reason);
      return;
    }
    // 4001–4999 would read as the proxy's own codes: a distinct non-retryable code, the original in details.
    const application = code > 4000 && code <= 4999;
    this.log.warn({ upstreamCode: code, reason }, 'upstream closed the connection');
    const error = new ProxyError('upstream_closed', {
      message: `The Realtime upstream closed the connection (code ${code}).`,
      details: { upstreamCode: code },
      ...(application ? { close: 'upstreamApplication' as const } : {}),
    });
    if (this.#client) {
      this.#sendToClient(JSON.stringify(error.toEvent(this.nextEventId())));
      this.#flush();
    }
    const mapped = error.closeCode ?? CloseCode.internalError;
    this.#finish({ initiator: 'upstream', code, reason }, mapped, error.closeReason);
  }

  /** Single teardown path: closes whatever is still open, then notifies the filters once. */
  #finish(info: CloseInfo, clientCode: number | null, clientReason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#closeInfo = info;
    if (this.#connectTimer) clearTimeout(this.#connectTimer);
    if (this.#linger) clearTimeout(this.#linger.timer);
    if (clientCode !== null) this.#closeClient(clientCode, clientReason);
    const up = this.#upstream;
    if (up && (up.readyState === up.OPEN || up.readyState === up.CONNECTING)) {
      if (this.#upstreamOpen) up.close(1000);
      else up.terminate();
    }
    this.#pending = [];
    this.#chain.close(info);
    this.#onEnded(this);
  }

  /** The session-end log record (no content, no keys). */
  endRecord(): Record<string, unknown> {
    return {
      event: 'session_end',
      durationMs: Math.round(this.clock.now() - this.startedAt),
      initiator: this.#closeInfo?.initiator ?? null,
      clientCloseCode: this.#clientCloseCode,
      upstreamCloseCode: this.#upstreamCloseCode,
      upstreamConnectMs: this.#upstreamConnectMs === null ? null : Math.round(this.#upstreamConnectMs * 10) / 10,
      ...this.stats,
      ...this.#chain.summaries(),
    };
  }
}
