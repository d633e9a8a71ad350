import type { Logger } from 'pino';
import type { WebSocket as UwsSocket } from 'uWebSockets.js';
import type { Config } from '../config/schema.js';
import { PARSER_VERDICT_FILTER, QUEUED_FRAME_OVERHEAD_BYTES, type ChainTemplate, type ChainSink, type SessionChain } from '../pipeline/chain.js';
import { CLIENT_SECRET_UPDATE, type AdmissionRequest, type AdmissionTicket, type CarriedUsage, type Clock, type CloseInfo, type Direction, type SessionContext } from '../pipeline/filter.js';
import { AudioMeter } from '../pipeline/audio-meter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { Report } from '../pipeline/reports.js';
import { Conversation, type ConversationView, type ItemMark, MAX_RUNNING_RESPONSES, type UpstreamFault, unpredictable } from '../protocol/conversation.js';
import type { ClientEventOf, RealtimeClientEvent, RealtimeServerEvent } from '../protocol/events.js';
import { asObject } from '../protocol/json.js';
import { CloseCode, ProxyError } from '../protocol/errors.js';
import { AUDIO_IN, isInputAudio, isTranslationSession, TRANSLATION_AUDIO_IN, TRANSLATION_CLIENT_TYPES } from '../protocol/events.js';
import { DUPLICATE_KEY, sniffString, sniffType } from '../protocol/sniff.js';
import { DuplicateMemberError, memberProblemError, parseStrict } from '../protocol/strict-json.js';
import type { Tenant } from '../tenants/tenant.js';
import { tenantShareExceeded, type MemoryBudget } from '../server/memory-budget.js';
import { authRefusalOf, authRefusalOfCloseReason, logUpstreamAuthRefused, upstreamAuthRejected, type UpstreamAuthDetail } from '../upstream/auth-refusal.js';
import type { UpstreamTarget } from '../upstream/dial.js';
import { zeroMaskedPayload } from '../upstream/client-frame.js';
import { exceedsJsonDepth } from '../protocol/json-depth.js';
import { isOutputAudio, ResponseTracker } from './responses.js';
import { copyFrame, ownCopy } from './frame-slab.js';
import { ClientLink } from './client-link.js';
import { UpstreamLink } from './upstream-link.js';
import { LazyMap, LazySet } from '../lazy-collections.js';

/** Per-socket data attached to the uWS WebSocket at upgrade. */
export interface ClientSocketData {
  session: RelaySession | null;
  /** Set for browser-style clients whose key failed: they get an error event then a close. */
  refusal: ProxyError | null;
  /** What admission decided, consumed when the socket opens (uWS copies user data: no identity maps). */
  admitted: AdmittedClient | null;
}

/** The admitted request (its ticket carries what admission took to the session: SessionContext.admission). */
export interface AdmittedClient extends AdmissionRequest {
  readonly headers: ReadonlyMap<string, string>;
  /** The governed session config of the client secret the client authenticated with, or null. */
  readonly secretSession: Readonly<Record<string, unknown>> | null;
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
  /** The governed session config of the client secret the client authenticated with (src/calls). */
  readonly secretSession?: Readonly<Record<string, unknown>> | null;
  /** A call's sideband (src/calls): the call's usage toward the per-session limits so far (SessionContext.carried). */
  readonly carried?: CarriedUsage | null;
  /** The admission the session opens with: what it took (a concurrent-session slot) the filters claim (SessionContext.admission). */
  readonly admission?: AdmissionTicket | null;
  /**
   * A call's sideband (src/calls): ends the call when the proxy ends the session (`close`), awaited
   * before the upstream is closed, so a response the call runs meanwhile is still read (and billed).
   * `drain` cancels the running responses and resolves at their response.done (bounded by the
   * linger; never rejects): the hook awaits it before hanging up. Null: nothing to wait for. The
   * caller bounds the wait; a throw or rejection only logs.
   */
  readonly endCallFirst?: (error: ProxyError, drain: () => Promise<void>) => Promise<void> | null;
  /**
   * A client's own socket on a call the proxy governs through its sideband (`?call_id=` with
   * `calls.enabled`): the filters' call-wide actions are the sideband's, so none leaves from here
   * (see sendUpstream).
   */
  readonly watchesGovernedCall?: boolean;
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

/** Injected events whose upstream error is still recognised (oldest forgotten first). */
const MAX_TRACKED_INJECTIONS = 256;

/** An upstream error's code, type or param as logged: a short name, else null (never free text). */
function errorToken(v: unknown): string | null {
  return typeof v === 'string' && /^[\w.[\]-]{1,100}$/.test(v) ? v : null;
}

/** Quote marks an upstream error message may use; an apostrophe between letters is none. */
const QUOTE = /["`\u201c\u201d\u2018\u2019\u00ab\u00bb]|(?<![\p{L}\p{N}])'|'(?![\p{L}\p{N}])/u;
/** Characters of an upstream error message kept in a log. */
export const LOGGED_MESSAGE_CHARS = 200;

/**
 * An upstream error message as logged: cut at its first quote mark (the upstream quotes what it
 * read: values, names, an item's text, which may be the client's words; pairing quotes by guess
 * could show a quoted part, cutting cannot), `…` marking the cut. At most LOGGED_MESSAGE_CHARS.
 */
export function withoutQuoted(message: string): string {
  const at = message.search(QUOTE);
  const kept = at < 0 ? message : `${message.slice(0, at + 1)}…`;
  return kept.length > LOGGED_MESSAGE_CHARS ? `${kept.slice(0, LOGGED_MESSAGE_CHARS - 1)}…` : kept;
}

/** Relay overhead is timed on one frame in 64 per direction (mask of the frame counter). */
const RELAY_SAMPLE_MASK = 63;

/** The event type of a verdict on a client frame the relay refused unread (see #rejectClientFrame). */
const RELAY_REFUSED_EVENT_TYPE = 'unread';

/**
 * Upstream close codes relayed unchanged. 4000 means "bad request" upstream as here; other 4xxx
 * codes would read as the proxy's own (4001 unauthorized … 4008 slow consumer) and are mapped.
 */
const UPSTREAM_CLOSE_PASSTHROUGH = (code: number) =>
  code === 1000 || code === 1001 || code === 1008 || code === 1011 || code === 1012 || code === 1013 || (code >= 3000 && code <= 4000);

/** While lingering, how often to look again whether a filter still deciding on a frame is done. */
const LINGER_RECHECK_MS = 10;

/** Client frames at least this large reserve their size from the global memory budget (and their tenant's share). */
const BUDGETED_FRAME_BYTES = 64 * 1024;

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
  readonly watchesGovernedCall: boolean;
  readonly secretSession: Readonly<Record<string, unknown>> | null;
  readonly carried: CarriedUsage | null;
  readonly admission: AdmissionTicket | null;
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
  readonly #chain: SessionChain;
  readonly #conversation = new Conversation();
  readonly #responses = new ResponseTracker(this.#conversation);
  readonly #onEnded: (s: RelaySession) => void;
  readonly #endCallFirst: ((error: ProxyError, drain: () => Promise<void>) => Promise<void> | null) | null;
  readonly #budget: MemoryBudget | null;
  readonly #client: ClientLink<ClientSocketData>;
  readonly #upstream: UpstreamLink;
  #eventSeq = 0;
  #clientSample = 0;
  #serverSample = 0;
  /** Arrival time of the sampled upstream frame awaiting its flush, or 0. */
  #serverSampleAt = 0;
  /** Events the proxy injected upstream, by event id: upstream errors about them stay here. */
  readonly #injected = new LazyMap<string, { readonly type: string; readonly by: string }>();
  #ended = false;
  /** close() is running or ran: it tears down once (see close). */
  #closing = false;
  /** The proxy's close, decided: what the session ends as (kept while the call is ended first). */
  #closeDecided: CloseInfo | null = null;
  /**
   * Set while the relay keeps the upstream after the client left mid-response (onClientClose):
   * OpenAI bills a response whether or not anyone reads it, so its response.done must still reach
   * the filters (metering). Holds the client's close, reported to the filters when the linger ends.
   */
  #linger: { readonly info: CloseInfo; readonly timer: NodeJS.Timeout; readonly cancelled: Set<string>; checkScheduled: boolean } | null = null;
  /** Who waits for no response to be in flight (`idle`). */
  readonly #idleWaiters = new LazySet<() => void>();
  #closeInfo: CloseInfo | null = null;
  #upstreamCloseCode: number | null = null;
  /** A translation session (`…/realtime/translations`): only its own client events pass (#refusedForSessionKind). */
  readonly #translation: boolean;

  /** `client` null: a session the proxy runs on its own (the sideband of a call, src/calls): no client to relay to. */
  constructor(init: SessionInit, client: ClientSocket | null) {
    this.id = init.id;
    this.tenant = init.tenant;
    this.model = init.model;
    this.query = init.query;
    this.#translation = isTranslationSession(init.query);
    this.callId = init.callId ?? init.query.get('call_id') ?? null;
    this.secretSession = init.secretSession ?? null;
    this.carried = init.carried ?? null;
    this.admission = init.admission ?? null;
    this.clock = init.clock;
    this.startedAt = init.clock.now();
    this.log = init.log;
    this.#config = init.config;
    this.#onEnded = init.onEnded;
    this.#endCallFirst = init.endCallFirst ?? null;
    this.watchesGovernedCall = init.watchesGovernedCall === true;
    this.#budget = init.budget ?? null;
    this.#client = new ClientLink(client, init.config, init.clock, {
      overHigh: () => {
        if (!this.#upstream.pause()) return false;
        this.stats.backpressureEvents++;
        this.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
        return true;
      },
      flushed: () => {
        if (this.#serverSampleAt === 0) return;
        // Socket read → corked write of the batch it arrived in.
        this.report({ kind: 'relay_latency', direction: 'server', ms: this.clock.now() - this.#serverSampleAt });
        this.#serverSampleAt = 0;
      },
      slow: (error) => this.close(error),
      failed: (err) => this.fail('client flush', err),
    });
    this.audio = new AudioMeter((report) => this.report(report));
    this.#chain = init.template.instantiate(this, this);
    this.#upstream = new UpstreamLink(init.target, init.config, init.clock, init.log, {
      opened: (ms) => this.report({ kind: 'upstream_connected', ms }),
      message: (data, isBinary) => this.#onUpstreamMessage(data, isBinary),
      closed: (code, reason) => this.#onUpstreamClose(code, reason),
      failed: (error) => this.close(error),
      callbackFailed: (what, err) => this.fail(what, err),
    });
  }

  get conversation(): ConversationView {
    return this.#conversation;
  }

  markItem(itemId: string, mark: ItemMark): void {
    this.#conversation.mark(itemId, mark);
  }

  get upstreamConnectMs(): number | null {
    return this.#upstream.connectMs;
  }

  get ended(): boolean {
    return this.#ended;
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  start(): void {
    // Filters send what must precede every client event (the locked state) now: it is queued first.
    this.#chain.start();
    if (this.#ended) return;
    // A session opened with a client secret runs the secret's (governed) config from its first event,
    // as OpenAI applies a secret's config when it creates the session: the update is queued before
    // anything the client sends, so a client racing it cannot be answered under another config.
    if (this.secretSession) {
      this.sendUpstream({ type: 'session.update', session: this.secretSession as unknown as ClientEventOf<'session.update'>['session'] }, CLIENT_SECRET_UPDATE);
    }
    this.#upstream.dial();
  }

  /**
   * Code run for this session outside uWS's callbacks (upstream socket callbacks, the server's
   * tick) failed: it ends this session only, never throws.
   */
  fail(what: string, err: unknown): void {
    this.log.error({ err }, `${what} handler failed`);
    try {
      // Lingering (the client is gone or already told): nothing more to wait for.
      if (this.#linger) this.#finish(this.#linger.info, null, '');
      // Closing already (the call being ended first, or a close that threw): end as decided, now.
      else if (this.#closeDecided) this.#finish(this.#closeDecided, this.#closeDecided.code, this.#closeDecided.reason);
      else this.close(new ProxyError('internal_error', { close: 'internalError' }));
    } catch (closeErr) {
      this.log.error({ err: closeErr }, 'session teardown failed');
    }
  }

  /** Bytes this session holds for its sockets (summed into the global memory budget). */
  heldBytes(): number {
    return this.#upstream.heldBytes + this.#chain.queuedBytes('client') + this.#chain.queuedBytes('server') + this.#client.heldBytes();
  }

  /** Bytes the client socket still had to send when the proxy ended it (uWS keeps them until its end timeout). */
  unsentAtEnd(): number {
    return this.#client.unsentAtEnd;
  }

  /** Periodic check from the server's shared timer: upstream liveness and slow clients. */
  tick(now: number): void {
    if (this.#ended) return;
    // A client that drained with no drain event from uWS (ClientLink.tick) must not leave the upstream paused for good.
    if (this.#upstream.paused) this.onClientDrain();
    const slow = this.#client.tick(now);
    if (slow) {
      this.close(slow);
      return;
    }
    const error = this.#upstream.tick(now);
    if (error) this.close(error);
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
    if (message.byteLength >= BUDGETED_FRAME_BYTES && this.#budget) {
      // The global budget, and this tenant's share of it (server.memoryBudgetTenantShare).
      const refused = this.#budget.tryReserveFor(this.tenant.id, message.byteLength);
      if (refused !== null) {
        this.#rejectClientFrame(refused === 'share' ? tenantShareExceeded('frame', this.#budget.tenantLimit) : new ProxyError('memory_budget_exceeded'));
        return;
      }
    }
    // Frames wait behind an async verdict (a held turn, a blocking guardrail): as many bytes as the
    // upstream socket may buffer, no more, each frame's overhead counted with it (see QUEUED_FRAME_OVERHEAD_BYTES).
    if (this.#chain.queued('client') > 0 && this.#chain.queuedBytes('client') + message.byteLength + QUEUED_FRAME_OVERHEAD_BYTES > this.#config.server.backpressure.upstreamMaxBufferedBytes) {
      this.close(new ProxyError('upstream_backpressure', { message: 'Too much data was sent while an earlier event was being checked.' }));
      return;
    }
    // The copy is already an upstream frame; `bytes` is its payload, what the filters see.
    const framed = copyFrame(message);
    // A frame that will wait behind an async verdict gets a buffer of its own: its slab slice would
    // keep the whole 512 KiB slab alive while it waits (see frame-slab.ts ownCopy).
    const bytes = this.#chain.idle('client') ? zeroMaskedPayload(framed) : ownCopy(zeroMaskedPayload(framed));
    const type = sniffType(bytes);
    if (type === DUPLICATE_KEY) {
      this.#rejectClientFrame(new ProxyError('invalid_event', { message: "The event has more than one 'type' member." }));
      return;
    }
    if (type !== AUDIO_IN && exceedsJsonDepth(bytes, this.#config.server.maxJsonDepth)) {
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
      if (this.#refusedForSessionKind(type, bytes, null)) return;
      if (type === 'response.create' && this.#tooManyResponses(bytes, null)) return;
      // One frame in 64: time the synchronous path from the socket read to the upstream write.
      const sampled = (++this.#clientSample & RELAY_SAMPLE_MASK) === 0;
      const t0 = sampled ? this.clock.now() : 0;
      // perf: a type no filter wants (audio, in practice) leaves without a Frame, unless frames queue.
      if (!this.#chain.bypasses('client', type)) this.#chain.fromClient(Frame.fromClient(type, bytes));
      else if (isInputAudio(type)) this.#sendInputAudio(bytes, framed);
      // Another type no filter wants still leaves the way the chain's output does: the view reads
      // it and a response.create gets its event_id (until 2026-12-05 it left unread and unstamped).
      else this.forward('client', Frame.fromClient(type, bytes));
      if (sampled && this.#upstream.open && this.#chain.queued('client') === 0) {
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
    if (this.#refusedForSessionKind(ev['type'], bytes, eventId)) return;
    if (ev['type'] === 'response.create' && this.#tooManyResponses(bytes, eventId)) return;
    this.#chain.fromClient(Frame.fromClient(ev['type'], bytes, ev));
  }

  /**
   * A client `response.create` while MAX_RUNNING_RESPONSES responses run or wait for their
   * `response.created` already, or on their way to it (waiting in the chain behind an asynchronous
   * verdict: a ledger's reservation, a guardrail's): refused here (`too_many_responses`, the session
   * goes on), before a filter reserves anything for it. Past that bound the upstream's next response
   * would end the session as the upstream's fault (`upstream_protocol_violation`), and metering's
   * waiting creates would grow with the client's sending; one more create is the client's to retry.
   */
  #tooManyResponses(bytes: Buffer, eventId: string | null): boolean {
    const inFlight = this.#conversation.activeResponses().length + this.#conversation.awaitingResponses + this.#chain.waiting('client', 'response.create');
    if (inFlight < MAX_RUNNING_RESPONSES) return false;
    const sniffedId = eventId ?? sniffString(bytes, 'event_id');
    this.#rejectClientFrame(
      new ProxyError('too_many_responses', {
        message: `${inFlight} responses are running or starting on this session; the proxy allows ${MAX_RUNNING_RESPONSES} at once. The response.create was not sent upstream.`,
        eventId: typeof sniffedId === 'string' ? sniffedId : null,
        details: { limit: MAX_RUNNING_RESPONSES },
      }),
    );
    return true;
  }

  /**
   * A translation session takes its own client events only (TRANSLATION_CLIENT_TYPES): any other is
   * refused here, before a filter or the upstream sees it (the upstream refuses them too; the proxy
   * is not the weaker check); any other session refuses a translation session's append. Non-fatal,
   * as the upstream's `invalid_value` is.
   */
  #refusedForSessionKind(type: string, bytes: Buffer, eventId: string | null): boolean {
    let message: string;
    if (this.#translation) {
      if (TRANSLATION_CLIENT_TYPES.includes(type)) return false;
      message = `A translation session takes ${TRANSLATION_CLIENT_TYPES.join(', ')} only; '${type.slice(0, 64)}' was not sent upstream.`;
    } else {
      // A translation session's append in any other session: audio no realtime control (metering,
      // the spoken-turn hold, the input audio counters) reads, since they read `input_audio_buffer.append`.
      // Until 2026-12-07 it reached the upstream (test/relay/redteam-19t-translation.test.ts).
      if (type !== TRANSLATION_AUDIO_IN) return false;
      message = `'${TRANSLATION_AUDIO_IN}' is a translation session's event ('/realtime/translations'); use 'input_audio_buffer.append'. It was not sent upstream.`;
    }
    const sniffedId = eventId ?? sniffString(bytes, 'event_id');
    this.stats.rejectedFrames++;
    this.report({ kind: 'verdict', filter: PARSER_VERDICT_FILTER, direction: 'client', eventType: RELAY_REFUSED_EVENT_TYPE, verdict: 'reject', code: 'invalid_event' });
    this.#sendErrorToClient(new ProxyError('invalid_event', { message, param: 'type', eventId: typeof sniffedId === 'string' ? sniffedId : null }));
    return true;
  }

  /**
   * A client frame the relay refuses before any filter sees it (binary, too large, past the memory
   * budget or the tenant's share of it, unparseable): reported as the relay's reject verdict, so
   * rtproxy_verdicts_total{rtproxy_verdict_filter="relay"} and rtproxy_errors_total count it per
   * tenant. Until 2026-12-07 these refusals were counted nowhere (a tenant refused every large frame
   * at its share looked healthy: test/telemetry/redteam-18o-tenant-share-metrics.test.ts). The type is
   * not read (the frame may be 16 MiB or not JSON): RELAY_REFUSED_EVENT_TYPE.
   */
  #rejectClientFrame(error: ProxyError): void {
    this.stats.rejectedFrames++;
    this.report({ kind: 'verdict', filter: PARSER_VERDICT_FILTER, direction: 'client', eventType: RELAY_REFUSED_EVENT_TYPE, verdict: 'reject', code: error.code });
    this.#sendErrorToClient(error);
  }

  /** An input audio append leaving for the upstream: counted here, as it leaves (a filter may have dropped or replaced it). */
  #sendInputAudio(bytes: Buffer, framed: Buffer | null = null): void {
    // While creates wait for their response, an append carrying one's event_id leaves with a fresh one (sniffed, never parsed).
    const restamped = this.#conversation.unambiguousAudio(bytes, this.#freshEventId);
    if (restamped !== null) {
      bytes = restamped;
      framed = null;
    }
    this.audio.input(bytes, this.clock.now());
    this.#sendToUpstream(bytes, framed);
  }

  /** `framed`: `bytes` already framed for the upstream (client frames relayed unchanged, see frame-slab.ts). */
  #sendToUpstream(bytes: Buffer, framed: Buffer | null = null): void {
    const error = this.#upstream.send(bytes, framed);
    if (error) this.close(error);
  }

  // ---- upstream → client -------------------------------------------------------------------

  #onUpstreamMessage(data: Buffer, isBinary: boolean): void {
    // An upstream past a bound of the view is read no more (a call's sideband ends the call first).
    if (this.#ended || this.#conversation.upstreamFault !== null) return;
    this.#upstream.alive();
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
        // While the session lingers (the client gone) nobody hears it: not sent, not counted as sent.
        if (!this.#linger) this.#forwardAudio(data);
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
    if (frame.type === 'error' && this.#refusedCredentials(frame)) return;
    if (frame.type === 'error' && this.#injected.size > 0 && this.#isAboutInjected(frame)) return;
    this.#conversation.observeServer(frame);
    if (this.#conversation.upstreamFault !== null) return this.#endForUpstreamFault(this.#conversation.upstreamFault);
    const tracked = this.#responses.inspect(frame);
    if (tracked) this.#chain.fromServer(tracked);
    if (this.#linger) this.#lingerCheck();
    if (this.#idleWaiters.size > 0 && !this.#responseInFlight()) for (const done of [...this.#idleWaiters]) done();
  }

  /**
   * The upstream went past a bound the conversation view keeps (src/protocol/conversation.ts
   * MAX_RUNNING_RESPONSES, MAX_LISTED_ITEMS, an id past MAX_KEPT_ID_CHARS): the frame that did is
   * not relayed, and the session ends at once (no linger: that upstream is read no more). Ending it
   * rather than forgetting what it started keeps every structure bounded and every response billed
   * once: the responses still running are billed by the close at their reservation (metering's), or
   * at a server-started response's worst case when metering read none of their frames.
   */
  #endForUpstreamFault(fault: UpstreamFault): void {
    this.log.warn({ bound: fault.what, limit: fault.limit }, 'the upstream went past a bound of the conversation view: ending the session');
    this.close(
      new ProxyError('upstream_protocol_violation', {
        message: `The Realtime upstream went past a bound the proxy keeps (${fault.what}: ${fault.limit}); the session was ended.`,
        details: { bound: fault.what, limit: fault.limit },
      }),
    );
  }

  /**
   * Resolves once no response runs or waits for its response.created on this session (the last
   * response.done went through the filters, unless one held it), when the session ends, or after
   * `timeoutMs`. A call's governor waits for it before hanging up (the cancelled responses are billed
   * from their response.done), with the sideband still reading.
   */
  idle(timeoutMs: number): Promise<void> {
    if (this.#ended || !this.#responseInFlight()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#idleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.#idleWaiters.add(done);
    });
  }

  /**
   * The upstream refusing the proxy's own credentials (OpenAI: `error` `invalid_api_key`, then close
   * 3000): the session ends with `upstream_rejected` and a fixed message; the upstream's error (its
   * message names the proxy's key as OpenAI masks it) is logged, never relayed (src/upstream/auth-refusal.ts).
   */
  #refusedCredentials(frame: Frame): boolean {
    let refusal: UpstreamAuthDetail | null;
    try {
      refusal = authRefusalOf(frame.json()['error']);
    } catch {
      return false;
    }
    if (!refusal) return false;
    logUpstreamAuthRefused(this.log, refusal);
    this.close(upstreamAuthRejected(refusal));
    return true;
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
    if (injected.type === 'response.create' && typeof id === 'string') {
      // Its response will never start: the view stops awaiting it, and metering releases the worst
      // case it reserved (the create passed it: SessionChain.inject), which under admission worst_case
      // no timer does. Until 2026-12-06 (15d) a hold create that lost the race with a running response
      // stayed reserved for the session (test/metering/redteam-15d-raced-hold-create.test.ts).
      this.#conversation.observeServer(frame);
      this.report({ kind: 'injected_create_refused', eventId: id });
    }
    // The clear metering sends as the client leaves (Filter.onClientGone): only the filters are left
    // to read a refusal of it (metering stops awaiting the buffer's fate and bills its estimate). Until
    // 2026-12-06 (thirteenth session) it stayed here as a governance failure: the lingering session
    // was ended as the proxy's governance_failed, or lingered to its bound (test/metering/redteam-money-4.test.ts).
    if (injected.type === 'input_audio_buffer.clear' && this.#linger) return false;
    // Logged, reported (a metric label) and shown to the client: a short name only.
    const code = errorToken(body['code']) ?? 'unknown';
    // An item the upstream does not know is already out of the conversation: the delete achieved its end.
    const itemGone = injected.type.startsWith('conversation.item.') && (code.includes('not_found') || (injected.type === 'conversation.item.delete' && body['param'] === 'item_id'));
    // Nothing left to clear is as harmless as a cancel that raced the response's end.
    // A response the proxy creates for a held spoken turn lost a race with the client's own create: that one answers the turn.
    const raced = injected.type === 'response.create' && code === 'conversation_already_has_active_response';
    if (injected.type === 'response.cancel' || injected.type === 'output_audio_buffer.clear' || itemGone || raced) {
      this.log.debug({ code, eventType: injected.type }, 'upstream error about an injected event');
      return true;
    }
    // The message may quote the injected event's content (the client's text): logged up to its first quote.
    const message = typeof body['message'] === 'string' ? withoutQuoted(body['message']) : null;
    const policy = this.#config.upstream.onInjectedEventError;
    this.log.warn(
      { code, type: errorToken(body['type']), param: errorToken(body['param']), eventType: injected.type, by: injected.by, upstreamMessage: message, onInjectedEventError: policy },
      'governance failure: the upstream refused an event the proxy injected',
    );
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
    this.#client.send(bytes);
  }

  onClientDrain(): void {
    if (!this.#client.drained()) return;
    this.#resumeUpstream();
  }

  /** Reads the upstream again, and tells the filters (metering keeps unanswered creates while it is paused). */
  #resumeUpstream(): void {
    if (!this.#upstream.paused) return;
    this.#upstream.resume();
    this.report({ kind: 'backpressure', direction: 'server', state: 'resumed' });
  }

  // ---- ChainSink ---------------------------------------------------------------------------

  forward(direction: Direction, frame: Frame): void {
    if (this.#ended) return;
    if (direction === 'client') {
      // The client left while this frame waited behind an async verdict (a create the spoken-turn
      // hold paused, an asynchronous ledger's admission): not sent (#withheldWhileLingering; metering
      // releases a create it reserved that never started at the close). Until 2026-12-06 (thirteenth
      // session) both went upstream (test/relay/session-core.test.ts). Commits, clears and updates
      // still leave: metering counted them as they passed it and reads their answers.
      if (this.#withheldWhileLingering(frame.type, 'client')) return;
      if (Conversation.stamps(frame.type)) {
        // Creates, item creates, commits and session.updates leave with an event_id of the proxy's: an
        // upstream error naming it is about this event alone (a create's is the key that pairs it with its response).
        const stamped = this.#conversation.stamp(frame, this.#freshEventId);
        this.#conversation.observeClient(stamped.frame, false);
        this.#sendToUpstream(stamped.frame.wireBytes());
        if (stamped.eventId !== null) {
          if (frame.type === 'response.create') this.report({ kind: 'create_sent', eventId: stamped.eventId });
          this.report({ kind: 'stamped', eventType: frame.type, eventId: stamped.eventId, clientEventId: stamped.own });
        }
        return;
      }
      if (isInputAudio(frame.type)) {
        this.#sendInputAudio(frame.wireBytes());
        return;
      }
      // An event carrying the event_id of a create still waiting leaves with a fresh one.
      frame = this.#conversation.unambiguous(frame, this.#freshEventId);
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
    // An error about an event the proxy restamped (stamped, or an event_id collision) names the client's own id.
    if (frame.type === 'error') frame = this.#conversation.forClient(frame);
    this.#sendToClient(frame.bytes);
  }

  /** An output audio delta: dropped if its response is suppressed, else metered and sent. */
  #forwardAudio(bytes: Buffer): void {
    // A translation session's audio belongs to no response: nothing to sniff (or parse) per frame.
    const responseId = this.#translation ? null : this.#responses.audioResponseId(bytes);
    if (responseId !== null && this.#responses.isSuppressed(responseId)) return;
    this.audio.output(responseId, bytes, this.clock.now());
    this.#sendToClient(bytes);
  }

  reject(_direction: Direction, error: ProxyError): void {
    this.stats.rejectedFrames++;
    this.#sendErrorToClient(error);
  }

  stopped(direction: Direction, frame: Frame, refusal: ProxyError | null, injectedBy: string | null): void {
    // A create a filter made and a later one refused (metering, over a cap) is no client create that stood for a turn.
    if (direction === 'client' && injectedBy === null) this.#conversation.clientStopped(frame, refusal);
  }

  // ---- SessionContext ----------------------------------------------------------------------

  nextEventId(): string {
    return `event_proxy_${this.id.slice(-8)}_${(++this.#eventSeq).toString(36)}`;
  }

  /** nextEventId as a value, made once: the audio path hands it on per append (perf: no closure per frame). */
  readonly #freshEventId = (): string => this.nextEventId();

  /**
   * The client left: the linger only reads what runs. A response started now would read the
   * conversation, be billed, and be heard by nobody; input audio would refill the buffer metering
   * cleared. True (logged) for such an event, from the client's frames or a filter's (`by`).
   */
  #withheldWhileLingering(type: string, by: string): boolean {
    if (this.#linger === null || (type !== 'response.create' && type !== AUDIO_IN)) return false;
    this.log.debug({ eventType: type, by }, 'event for a client that left: not sent');
    return true;
  }

  sendUpstream(event: RealtimeClientEvent, by: string): void {
    if (this.#ended) return;
    // A socket attached to a call the proxy governs: the call's sideband runs the same filters on the
    // same server events and takes their call-wide actions (cancels, deletes, relocks, a held turn's
    // answer) once; this socket only suppresses and tells its own client. Until 2026-12-06 each
    // attached socket sent them again: one output rule tripping on a call with three attached sockets
    // sent four response.cancel and four deletes, and the repeats came back as upstream errors on
    // every socket (test/calls/redteam-15b-attached-guardrails.test.ts).
    if (this.watchesGovernedCall) {
      this.log.debug({ eventType: event.type, by }, 'socket attached to a governed call: the sideband sends this');
      return;
    }
    // A response a filter would start now (the spoken-turn hold owes answers).
    if (this.#withheldWhileLingering(event.type, by)) return;
    let payload: RealtimeClientEvent = event;
    let eventId = event.event_id;
    if (eventId === undefined) {
      // Random as well as unique: a client that read the session's counter off a notice cannot send
      // an event with the id of one to come and have the upstream's error about it taken for the proxy's.
      eventId = `${this.nextEventId()}_${unpredictable()}`;
      payload = Object.assign({}, event, { event_id: eventId });
    }
    // Every injected event is tracked, its own event_id or one given here: an upstream error about
    // it is the proxy's, never the client's. Bounded: only recent injections can still draw one.
    if (this.#injected.size >= MAX_TRACKED_INJECTIONS) this.#injected.delete(this.#injected.keys().next().value!);
    this.#injected.set(eventId, { type: event.type, by });
    const frame = Frame.fromEvent(payload);
    // A response the proxy starts goes through the filters after its sender as a client's create
    // would: metering reserves its worst case before it leaves, or refuses it over a cap. Until
    // 2026-12-06 the spoken-turn hold's create went straight upstream, and metering met it only at
    // its response.created, after the upstream had read (and billed) the conversation
    // (test/metering/redteam-15-held-turn.test.ts). The proxy's own session config likewise: metering
    // counts (and clamps) it as it leaves, not at its session.updated; until 2026-12-07 creates sent
    // meanwhile were reserved without the locks' instructions (test/metering/injected-session-update.test.ts).
    if (event.type === 'response.create' || event.type === 'session.update') {
      this.#chain.inject(frame, by);
      return;
    }
    this.forwardInjected(frame, by);
  }

  forwardInjected(frame: Frame, by: string): void {
    if (this.#ended || this.#withheldWhileLingering(frame.type, by)) return;
    this.#conversation.observeClient(frame, true);
    this.#sendToUpstream(frame.wireBytes());
    // Metering keys the create's reservation by the id it left with, as for the client's (no restamp: the id is the proxy's own).
    if (frame.type === 'response.create') {
      const eventId = frame.string('event_id');
      if (eventId !== null) this.report({ kind: 'create_sent', eventId });
    }
    this.report({ kind: 'injected', direction: 'client', eventType: frame.type, by });
  }

  sendClient(event: RealtimeServerEvent, by: string): void {
    if (this.#ended) return;
    this.#sendToClient(JSON.stringify(event));
    this.report({ kind: 'injected', direction: 'server', eventType: event.type, by });
  }

  notify(notice: ProxyError, by: string): void {
    const mode = this.#config.policies.notices;
    if (this.#ended || mode === 'off') return;
    // Until 2026-12-07 always an `error` event: SDK apps without an error listener crashed on a
    // rewritten session.update (test/relay/redteam-19-rewrite-notices.test.ts).
    const event = mode === 'error' ? notice.toEvent(this.nextEventId()) : notice.toNotice(this.nextEventId());
    this.#sendToClient(JSON.stringify(event));
    this.report({ kind: 'injected', direction: 'server', eventType: event.type, by });
  }

  report(report: Report): void {
    this.#chain.report(report);
  }

  setTimer(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      try {
        fn();
      } catch (err) {
        this.fail('timer', err);
      }
    }, ms);
    timer.unref();
    return timer;
  }

  cancelResponse(responseId: string, by: string, notice: ProxyError): void {
    if (this.#ended || !this.#responses.suppress(responseId)) return;
    if (this.#responses.isActive(responseId)) {
      this.sendUpstream({ type: 'response.cancel', response_id: responseId }, by);
    }
    // On a call the audio is already buffered at the browser or phone: stop it playing too.
    if (this.callId !== null) this.sendUpstream({ type: 'output_audio_buffer.clear' }, by);
    // The client sees the response.done (cancelled): a notice says why; a closing one ends the session.
    if (notice.closesSession) this.close(notice);
    else this.notify(notice, by);
  }

  isSuppressed(responseId: string): boolean {
    return this.#responses.isSuppressed(responseId);
  }

  watch(filter: string, direction: Direction, type: string, on: boolean): void {
    this.#chain.watch(filter, direction, type, on);
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
    // Once: the closing error's own flush can report the client slow, which closes again.
    if (this.#ended || this.#closing) return;
    this.#closing = true;
    const code = error.closeCode ?? CloseCode.internalError;
    this.log.info({ code: error.code, closeCode: code }, 'proxy ends session');
    if (this.#client.present) {
      this.#client.send(JSON.stringify(error.toEvent(this.nextEventId())));
      this.#client.flush();
    }
    const info: CloseInfo = { initiator: 'proxy', code, reason: error.closeReason };
    this.#closeDecided = info;
    const first = this.#callEnding(error);
    if (first === null) {
      this.#closeUpstream(info);
      return;
    }
    // A call's sideband: the upstream is read (frames through the filters, metering) until the call
    // ended. A second close meanwhile is a no-op; an upstream close or a failure ends it sooner.
    void first
      .catch((err: unknown) => this.log.error({ err }, 'ending the call before closing its sideband failed'))
      .then(() => {
        if (this.#ended) return;
        try {
          this.#closeUpstream(info);
        } catch (err) {
          // Outside every socket callback: a throw here would be an unhandled rejection.
          this.fail('close', err);
        }
      });
  }

  /** The call ended first (`SessionInit.endCallFirst`), or null: nothing to wait for. Never throws. */
  #callEnding(error: ProxyError): Promise<void> | null {
    if (this.#endCallFirst === null || !this.#upstream.open) return null;
    try {
      return this.#endCallFirst(error, () => this.#drainBeforeHangup());
    } catch (err) {
      this.log.error({ err }, 'ending the call before closing its sideband failed');
      return null;
    }
  }

  /**
   * A call about to be hung up by the proxy: its running responses are cancelled now and their
   * response.done awaited (at most the linger), so they are billed as OpenAI bills them; a hang-up
   * would cut them short and leave them billed at their reservation. Never rejects.
   */
  #drainBeforeHangup(): Promise<void> {
    const lingerMs = this.#lingerMs();
    if (this.#ended || lingerMs === 0 || !this.#responseInFlight()) return Promise.resolve();
    try {
      let cancelled = false;
      for (const id of this.#conversation.activeResponses()) {
        // One a filter stopped (cancelResponse) has its response.cancel upstream already.
        if (!this.#responses.suppress(id)) continue;
        this.sendUpstream({ type: 'response.cancel', response_id: id }, 'relay');
        cancelled = true;
      }
      // The audio already buffered at the browser or phone stops too.
      if (cancelled) this.sendUpstream({ type: 'output_audio_buffer.clear' }, 'relay');
    } catch (err) {
      // Reached from a promise the governor awaits: logged, and the hang-up goes on.
      this.log.error({ err }, 'cancelling the responses before the hang-up failed');
    }
    return this.idle(lingerMs);
  }

  /** The proxy's close, once the call (if any) ended: linger for a running response, else finish. */
  #closeUpstream(info: CloseInfo): void {
    const lingerMs = this.#lingerMs();
    if (lingerMs > 0 && this.#upstream.open && this.#responseInFlight()) {
      // A response is running: the client is closed now, the upstream kept until that response's
      // response.done (billed as OpenAI bills it), as when the client leaves (onClientClose). The
      // linger first: ending the client calls onClientClose back at once, which must find it started.
      // Until 2026-12-06 (thirteenth session) it started a second linger there (a second timer, every
      // running response cancelled twice: a duplicate response.done would have been billed twice).
      this.#startLinger(info, lingerMs);
      this.#client.end(info.code, info.reason);
      this.#client.discard();
      return;
    }
    this.#finish(info, info.code, info.reason);
  }

  /** How long the upstream is kept after the session ends mid-response; 0 without metering. */
  #lingerMs(): number {
    // The linger exists so metering can bill what OpenAI bills; without metering there is nothing to wait for.
    return this.#config.metering.enabled ? this.#config.metering.lingerAfterClientCloseMs : 0;
  }

  // ---- closes ------------------------------------------------------------------------------

  onClientClose(code: number, reason: string): void {
    this.#client.gone(code);
    if (this.#ended || this.#linger) return;
    const info: CloseInfo = { initiator: 'client', code, reason };
    const lingerMs = this.#lingerMs();
    if (lingerMs > 0 && this.#upstream.open) {
      // Filters may ask the upstream what became of what the client sent last (metering: a turn
      // server VAD may still commit and answer) and wait for it as for a running response.
      this.#chain.clientGone();
      if (this.#ended) return;
      if (this.#responseInFlight() || this.#chain.awaitingUpstream()) {
        this.#client.discard();
        this.#startLinger(info, lingerMs);
        return;
      }
    }
    this.#finish(info, null, '');
  }

  /**
   * The client left while a response runs (or a response.create awaits its response.created), or
   * while a filter awaits what the upstream makes of what the client sent last (metering: a turn
   * server VAD may still commit, `Filter.awaitingUpstream`): cancel every response upstream and keep
   * reading the upstream, frames still through the filter chain but to no client, until every
   * response has its response.done (then metering has billed the usage OpenAI bills) and no filter
   * awaits anything, or `lingerMs` passed (metering then bills the reservation's estimate).
   * Then the session ends as the client's close; filters' onClose sees it only then.
   */
  #startLinger(info: CloseInfo, lingerMs: number): void {
    this.#resumeUpstream();
    // A session timer: a throw ends this session (logged), never the process.
    const timer = this.setTimer(lingerMs, () => this.#finish(info, null, ''));
    this.#linger = { info, timer, cancelled: new Set(), checkScheduled: false };
    this.log.debug({ lingerMs }, 'client left mid-response or mid-turn: reading the upstream to no client');
    this.#lingerCancel();
  }

  /** Sends response.cancel once for every running response (new ones included: nobody will read them). */
  #lingerCancel(): void {
    // A client's own socket on a call (`?call_id=`, an app or a supervisor's dashboard; not the
    // proxy's sideband, which ends the call itself): the call's responses are the caller's and go on
    // without this socket. Its linger only reads them (metered when the proxy does not govern the
    // call). Until 2026-12-06 (thirteenth session) a watcher leaving cut the caller's answer off
    // (test/relay/session-core.test.ts).
    if (this.callId !== null && this.#endCallFirst === null) return;
    const linger = this.#linger!;
    const active = this.#conversation.activeResponses();
    // Only the running ones are remembered (at most MAX_RUNNING_RESPONSES + 1): an upstream starting
    // and ending responses all through the linger grew this set with every one until 2026-12-07.
    for (const id of linger.cancelled) if (!active.includes(id)) linger.cancelled.delete(id);
    for (const id of active) {
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
      try {
        this.#lingerCancel();
        if (this.#responseInFlight() || this.#chain.awaitingUpstream()) return;
        // A filter still deciding on a frame (the response.done, say) has not delivered it to the
        // filters after it: look again shortly (a verdict that drops the frame forwards nothing
        // that would call this). Until 2026-12-05 only frames queued behind it were counted.
        if (this.#chain.idle('server')) this.#finish(linger.info, null, '');
        else this.setTimer(LINGER_RECHECK_MS, () => this.#lingerCheck());
      } catch (err) {
        // Outside every uWS and socket callback: a throw here would end the process.
        this.fail('linger check', err);
      }
    });
  }

  /** A response runs upstream, or a response.create sent upstream has not been answered yet. */
  #responseInFlight(): boolean {
    // An upstream at fault is read no more: nothing it runs will be done.
    if (this.#conversation.upstreamFault !== null) return false;
    return this.#conversation.activeResponses().length > 0 || this.#conversation.awaitingResponses > 0;
  }

  #onUpstreamClose(code: number, reason: string): void {
    this.#upstreamCloseCode = code;
    if (this.#ended) return;
    // What the filters still hold back for the client is settled first, as at the end of the
    // upstream's stream: a translation's held transcript reaches the client (or its stopping rule
    // ends the session) before the client hears the upstream ended. Until 2026-12-07 an upstream
    // that closed without `session.closed` took it with it (test/relay/translation-end.test.ts).
    const stopped = this.#chain.upstreamEnded();
    if (stopped !== null) {
      this.close(stopped);
      return;
    }
    // Out now: a close passed on as it came ends the client in this turn, before the batch's flush.
    if (this.#client.present) this.#client.flush();
    // A filter may know why (a call the proxy ended from another process): the client is told that
    // error and its close code instead, once known (bounded by the filter). A client that leaves
    // meanwhile ends the session as its close.
    const why = this.#chain.upstreamClosed(code);
    if (why !== null) {
      void why.then((error) => {
        if (this.#ended) return;
        try {
          if (error) this.#endAfterUpstreamClose(code, reason, error);
          else this.#passUpstreamClose(code, reason);
        } catch (err) {
          // Outside every socket callback: a throw here would be an unhandled rejection.
          this.fail('upstream close', err);
        }
      });
      return;
    }
    this.#passUpstreamClose(code, reason);
  }

  /** The upstream's close, passed on to the client (its code, or an error for one the client must not read as the proxy's). */
  #passUpstreamClose(code: number, reason: string): void {
    // A close naming a refusal of the proxy's credentials (`invalid_request_error.invalid_api_key`) without its error event first.
    const refusal = authRefusalOfCloseReason(reason);
    if (refusal) {
      logUpstreamAuthRefused(this.log, refusal);
      this.#endAfterUpstreamClose(code, reason, upstreamAuthRejected(refusal));
      return;
    }
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
    this.#endAfterUpstreamClose(code, reason, error);
  }

  /** The upstream closed (`code`, `reason`): the client gets `error` at once, then the close it maps to. */
  #endAfterUpstreamClose(code: number, reason: string, error: ProxyError): void {
    if (this.#client.present) {
      this.#client.send(JSON.stringify(error.toEvent(this.nextEventId())));
      this.#client.flush();
    }
    this.#finish({ initiator: 'upstream', code, reason }, error.closeCode ?? CloseCode.internalError, error.closeReason);
  }

  /** Single teardown path: closes whatever is still open, then notifies the filters once. */
  #finish(info: CloseInfo, clientCode: number | null, clientReason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#closeInfo = info;
    if (this.#linger) clearTimeout(this.#linger.timer);
    if (clientCode !== null) this.#client.end(clientCode, clientReason);
    this.#upstream.close();
    this.#chain.close(info);
    for (const done of [...this.#idleWaiters]) done();
    this.#onEnded(this);
  }

  /** The session-end log record (no content, no keys). */
  endRecord(): Record<string, unknown> {
    return {
      event: 'session_end',
      durationMs: Math.round(this.clock.now() - this.startedAt),
      initiator: this.#closeInfo?.initiator ?? null,
      clientCloseCode: this.#client.closeCode,
      // Bytes uWS still had for the client when the proxy ended it (kept until its end timeout).
      clientUnsentBytes: this.#client.unsentAtEnd,
      upstreamCloseCode: this.#upstreamCloseCode,
      upstreamConnectMs: this.#upstream.connectMs === null ? null : Math.round(this.#upstream.connectMs * 10) / 10,
      ...this.stats,
      ...this.#chain.summaries(),
    };
  }
}
