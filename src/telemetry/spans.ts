import { SpanKind, type Attributes, type HrTime } from '@opentelemetry/api';
import { finishReason, turnLatencies, type ResponseRecord, type SessionView, type TimedEvent, type ToolRecord, type TurnRecord } from './records.js';
import * as S from './semconv.js';
import { LazyMap } from '../lazy-collections.js';
import { OpenSpan, type SpanRef, type SpanSink } from './span-records.js';

export interface SpanContextInfo {
  readonly sessionId: string;
  readonly tenantId: string;
  readonly model: string;
  readonly serverAddress: string | null;
  readonly serverPort: number | null;
  /** Epoch ms minus proxy-clock ms, fixed at session start: converts proxy times to span times. */
  readonly wallOffset: number;
  /**
   * A translation session: it has no turns (no responses, no speech boundaries: one continuous
   * stream), so its one span, `rtproxy.session.translation`, runs from the upgrade to the close
   * and carries how the session ended (endSession) instead of ending at session.created.
   */
  readonly translation?: boolean;
}

/** How a session ended, for the span that covers it (translation sessions). */
export interface SessionOutcome {
  readonly closeReason: string;
  readonly initiator: 'client' | 'upstream' | 'proxy';
  readonly closeCode: number;
  /** Set when the proxy ended the session (the connect span's rule): the span's status is Error. */
  readonly errorType: string | null;
  readonly inputAudioMs: number;
  readonly outputAudioMs: number;
  readonly costMicros: number;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Writes one session's spans: a short `rtproxy.session.connect` span and, per turn, an
 * `invoke_agent` root (started when the turn opens, so its trace id exists for the logs) whose
 * children are created retroactively with explicit times when the turn closes. Spans are plain
 * records (span-records.ts) handed to the sink as they end.
 */
export class SessionSpans {
  readonly #sink: SpanSink;
  readonly #info: SpanContextInfo;
  #connect: OpenSpan | null = null;
  #connectRef: SpanRef | null = null;
  readonly #roots = new LazyMap<TurnRecord, OpenSpan>();
  /** Turns whose root got the realtime session id at start (made with the first: most idle sessions have no turn). */
  #rootHasSession: WeakSet<TurnRecord> | null = null;
  #realtimeSessionId: string | null = null;

  constructor(sink: SpanSink, info: SpanContextInfo) {
    this.#sink = sink;
    this.#info = info;
  }

  #time(t: number): HrTime {
    const ms = t + this.#info.wallOffset;
    const seconds = Math.floor(ms / 1000);
    return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
  }

  #common(): Attributes {
    const a: Attributes = {
      [S.ATTR_GEN_AI_PROVIDER_NAME]: S.GEN_AI_PROVIDER_OPENAI,
      [S.ATTR_TENANT_ID]: this.#info.tenantId,
      [S.ATTR_SESSION_ID_PROXY]: this.#info.sessionId,
    };
    if (this.#info.model) a[S.ATTR_GEN_AI_REQUEST_MODEL] = this.#info.model;
    if (this.#realtimeSessionId) a[S.ATTR_GEN_AI_REALTIME_SESSION_ID] = this.#realtimeSessionId;
    return a;
  }

  /** Children carry only what is theirs: the turn root holds tenant, session and model. */
  #child(operation: string): Attributes {
    return { [S.ATTR_GEN_AI_OPERATION_NAME]: operation, [S.ATTR_GEN_AI_PROVIDER_NAME]: S.GEN_AI_PROVIDER_OPENAI };
  }

  #server(a: Attributes): void {
    if (this.#info.serverAddress) a[S.ATTR_SERVER_ADDRESS] = this.#info.serverAddress;
    if (this.#info.serverPort !== null) a[S.ATTR_SERVER_PORT] = this.#info.serverPort;
  }

  // ---- session connect ---------------------------------------------------------------------

  startConnect(at: number): void {
    const attrs = this.#common();
    this.#server(attrs);
    this.#connect = new OpenSpan(this.#info.translation ? S.SPAN_SESSION_TRANSLATION : S.SPAN_SESSION_CONNECT, SpanKind.SERVER, this.#time(at), attrs);
    this.#connectRef = this.#connect.ref;
  }

  upstreamConnected(ms: number, at: number): void {
    if (!this.#connect) return;
    this.#connect.setAttribute(S.ATTR_UPSTREAM_CONNECT_MS, round3(ms));
    this.#connect.addEvent(S.EVENT_UPSTREAM_CONNECTED, this.#time(at), { [S.ATTR_UPSTREAM_CONNECT_MS]: round3(ms) });
  }

  /** session.created ends the connect span with the session's configuration. */
  sessionCreated(view: Readonly<SessionView>, at: number): void {
    this.#realtimeSessionId = view.realtimeSessionId;
    const span = this.#connect;
    if (!span) return;
    this.#connect = null;
    if (view.realtimeSessionId) span.setAttribute(S.ATTR_GEN_AI_REALTIME_SESSION_ID, view.realtimeSessionId);
    if (view.model) span.setAttribute(S.ATTR_GEN_AI_RESPONSE_MODEL, view.model);
    // A translation session has no VAD or audio formats to configure (PCM16 24 kHz both ways).
    if (!this.#info.translation) span.setAttributes(sessionConfigAttributes(view));
    span.addEvent(S.EVENT_SESSION_STARTED, this.#time(at), view.realtimeSessionId ? { [S.ATTR_GEN_AI_REALTIME_SESSION_ID]: view.realtimeSessionId } : undefined);
    if (this.#info.translation) {
      this.#connect = span;
      return;
    }
    this.#sink.emit(span.end(this.#time(at)));
  }

  /** An event on the span still open (a translation session's: its guardrail results); none open: dropped. */
  sessionEvent(name: string, at: number, attrs: Attributes): void {
    this.#connect?.addEvent(name, this.#time(at), attrs);
  }

  /** The session's close: the span still open ends with how the session ended (translation sessions). */
  endSession(at: number, outcome: SessionOutcome): void {
    const span = this.#connect;
    if (!span) return;
    const ended: Attributes = {
      [S.ATTR_SESSION_CLOSE_REASON]: outcome.closeReason,
      [S.ATTR_SESSION_CLOSE_INITIATOR]: outcome.initiator,
      [S.ATTR_SESSION_CLOSE_CODE]: outcome.closeCode,
    };
    span.setAttributes({
      ...ended,
      [S.ATTR_SESSION_INPUT_AUDIO_MS]: round3(outcome.inputAudioMs),
      [S.ATTR_SESSION_OUTPUT_AUDIO_MS]: round3(outcome.outputAudioMs),
      [S.ATTR_SESSION_COST_USD]: outcome.costMicros / 1e6,
    });
    span.addEvent(S.EVENT_SESSION_ENDED, this.#time(at), ended);
    this.endConnect(at, outcome.errorType);
  }

  /** The session ended before session.created: the connect span ends with the reason. */
  endConnect(at: number, errorType: string | null): void {
    const span = this.#connect;
    if (!span) return;
    this.#connect = null;
    if (errorType) {
      span.setAttribute(S.ATTR_ERROR_TYPE, errorType);
      span.failed();
    }
    this.#sink.emit(span.end(this.#time(at)));
  }

  // ---- turns -------------------------------------------------------------------------------

  startTurn(turn: TurnRecord): SpanRef {
    const attrs = this.#common();
    attrs[S.ATTR_GEN_AI_OPERATION_NAME] = S.OP_INVOKE_AGENT;
    attrs[S.ATTR_SESSION_ID] = this.#info.sessionId;
    attrs[S.ATTR_TURN_NUMBER] = turn.number;
    attrs[S.ATTR_TURN_INITIATOR] = turn.initiator;
    const root = new OpenSpan(S.SPAN_TURN, SpanKind.INTERNAL, this.#time(turn.openedAt), attrs, null, this.#connectRef ? [this.#connectRef] : []);
    this.#roots.set(turn, root);
    if (this.#realtimeSessionId) (this.#rootHasSession ??= new WeakSet()).add(turn);
    return root;
  }

  contextOf(turn: TurnRecord): SpanRef | null {
    return this.#roots.get(turn) ?? null;
  }

  finishTurn(turn: TurnRecord): void {
    const root = this.#roots.get(turn);
    if (!root) return;
    this.#roots.delete(turn);
    const end = turn.endedAt ?? turn.lastAt;
    if (turn.speechStartAt !== null) this.#userSpeech(turn, root, end);
    for (const r of turn.responses) this.#inference(turn, r, root, end);
    for (const tool of turn.tools) this.#tool(tool, root, end);

    const lat = turnLatencies(turn);
    const a: Attributes = {
      [S.ATTR_TURN_ANCHOR]: turn.anchor,
      [S.ATTR_GEN_AI_AGENT_INVOCATION_END_REASON]: turn.endReason ?? 'completed',
      [S.ATTR_TURN_RESPONSES]: turn.responses.length,
      [S.ATTR_TURN_INTERRUPTED]: turn.interruption !== null,
      [S.ATTR_TURN_OUTPUT_AUDIO_MS]: round3(turn.outputAudioMs),
      // The full session configuration is on the connect span; the turn keeps what explains it.
      [S.ATTR_VAD_TYPE]: turn.session.vadType,
    };
    if (this.#realtimeSessionId && !this.#rootHasSession?.has(turn)) a[S.ATTR_GEN_AI_REALTIME_SESSION_ID] = this.#realtimeSessionId;
    if (turn.outOfBand) a[S.ATTR_RESPONSE_OUT_OF_BAND] = true;
    if (lat.responseLatencyMs !== null) a[S.ATTR_TURN_RESPONSE_LATENCY] = lat.responseLatencyMs / 1000;
    if (lat.voiceToVoiceMs !== null) a[S.ATTR_TURN_VOICE_TO_VOICE_LATENCY] = lat.voiceToVoiceMs / 1000;
    if (lat.timeToFirstTextMs !== null) a[S.ATTR_TURN_TIME_TO_FIRST_TEXT] = lat.timeToFirstTextMs / 1000;
    if (turn.interruption) a[S.ATTR_TURN_INTERRUPTION_KIND] = turn.interruption;
    if (turn.playedAudioMs !== null) a[S.ATTR_TURN_PLAYED_AUDIO_MS] = turn.playedAudioMs;
    if (turn.costMicros > 0) a[S.ATTR_TURN_COST_USD] = turn.costMicros / 1e6;
    if (turn.guardrailAction) a[S.ATTR_GUARDRAIL_ACTION] = turn.guardrailAction;
    if (turn.inputText !== null) {
      a[S.ATTR_PII_INPUT_TRANSCRIPT] = turn.inputText;
      a[S.ATTR_GEN_AI_INPUT_MESSAGES] = JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: turn.inputText }] }]);
    }
    if (turn.endReason === 'failed' || turn.endReason === 'timeout') {
      a[S.ATTR_ERROR_TYPE] = turn.errorType ?? turn.endReason;
      root.failed();
    }
    root.setAttributes(a);
    this.#events(root, turn.events);
    this.#sink.emit(root.end(this.#time(end)));
  }

  #userSpeech(turn: TurnRecord, parent: SpanRef, turnEnd: number): void {
    const start = turn.speechStartAt ?? turn.openedAt;
    const end = turn.speechEndAt ?? turn.userEndAt ?? turnEnd;
    const a = this.#child(S.OP_USER_SPEECH);
    if (turn.audioStartMs !== null) a[S.ATTR_AUDIO_START_MS] = turn.audioStartMs;
    if (turn.audioEndMs !== null) a[S.ATTR_AUDIO_END_MS] = turn.audioEndMs;
    const span = new OpenSpan(S.SPAN_USER_SPEECH, SpanKind.INTERNAL, this.#time(start), a, parent);
    this.#sink.emit(span.end(this.#time(Math.max(start, end))));
  }

  #inference(turn: TurnRecord, r: ResponseRecord, parent: SpanRef, turnEnd: number): void {
    // The generation is anchored where the model's work began for the user: the request, or for
    // a VAD-created first response the end of the user's speech.
    const first = turn.responses[0] === r;
    const start = r.requestedAt ?? (first && turn.userEndAt !== null ? Math.min(turn.userEndAt, r.createdAt) : r.createdAt);
    const end = r.doneAt ?? turnEnd;
    const a = this.#child(S.OP_REALTIME_INFERENCE);
    if (this.#info.model) a[S.ATTR_GEN_AI_REQUEST_MODEL] = this.#info.model;
    this.#server(a);
    a[S.ATTR_GEN_AI_RESPONSE_ID] = r.id;
    if (turn.session.model) a[S.ATTR_GEN_AI_RESPONSE_MODEL] = turn.session.model;
    a[S.ATTR_GEN_AI_OUTPUT_TYPE] = r.outputModalities.includes('audio') || r.outputAudioMs > 0 ? 'speech' : 'text';
    if (r.maxOutputTokens !== null) a[S.ATTR_GEN_AI_REQUEST_MAX_TOKENS] = r.maxOutputTokens;
    const reason = finishReason(r);
    if (reason) a[S.ATTR_GEN_AI_RESPONSE_FINISH_REASONS] = [reason];
    a[S.ATTR_RESPONSE_STATUS] = r.status;
    a[S.ATTR_RESPONSE_TRIGGER] = r.trigger;
    if (r.outOfBand) a[S.ATTR_RESPONSE_OUT_OF_BAND] = true;
    a[S.ATTR_RESPONSE_OUTPUT_AUDIO_MS] = round3(r.outputAudioMs);
    if (r.doneAt !== null) a[S.ATTR_RESPONSE_DURATION] = (r.doneAt - r.createdAt) / 1000;
    if (r.firstAudioAt !== null) a[S.ATTR_RESPONSE_TIME_TO_FIRST_AUDIO] = (r.firstAudioAt - r.createdAt) / 1000;
    if (r.firstTextAt !== null) a[S.ATTR_RESPONSE_TIME_TO_FIRST_TEXT] = (r.firstTextAt - r.createdAt) / 1000;
    if (r.costMicros !== null) a[S.ATTR_RESPONSE_COST_USD] = r.costMicros / 1e6;
    if (r.cancelledBy) a[S.ATTR_RESPONSE_CANCELLED_BY] = r.cancelledBy;
    else if (r.clientCancelled) a[S.ATTR_RESPONSE_CANCELLED_BY] = 'client';
    const u = r.usage;
    if (u) {
      a[S.ATTR_GEN_AI_USAGE_INPUT_TOKENS] = u.input;
      a[S.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] = u.output;
      a[S.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = u.cached;
      // Per-modality subsets only when present (absent = 0): fewer attributes per span.
      if (u.inputText > 0) a[S.ATTR_GEN_AI_USAGE_TEXT_INPUT_TOKENS] = u.inputText;
      if (u.inputAudio > 0) a[S.ATTR_GEN_AI_USAGE_AUDIO_INPUT_TOKENS] = u.inputAudio;
      if (u.inputImage > 0) a[S.ATTR_GEN_AI_USAGE_IMAGE_INPUT_TOKENS] = u.inputImage;
      if (u.cachedAudio > 0) a[S.ATTR_GEN_AI_USAGE_AUDIO_CACHE_READ_INPUT_TOKENS] = u.cachedAudio;
      if (u.outputText > 0) a[S.ATTR_GEN_AI_USAGE_TEXT_OUTPUT_TOKENS] = u.outputText;
      if (u.outputAudio > 0) a[S.ATTR_GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS] = u.outputAudio;
    }
    if (r.outputText !== null) {
      a[S.ATTR_PII_OUTPUT_TRANSCRIPT] = r.outputText;
      a[S.ATTR_GEN_AI_OUTPUT_MESSAGES] = JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: r.outputText }] }]);
    }
    const span = new OpenSpan(S.spanInference(this.#info.model), SpanKind.CLIENT, this.#time(start), a, parent);
    if (r.status === 'failed') {
      span.setAttribute(S.ATTR_ERROR_TYPE, r.errorType ?? 'failed');
      span.failed();
    }
    span.addEvent(S.EVENT_RESPONSE_CREATED, this.#time(r.createdAt));
    if (r.firstAudioAt !== null) span.addEvent(S.EVENT_FIRST_AUDIO, this.#time(r.firstAudioAt));
    if (r.firstTextAt !== null) span.addEvent(S.EVENT_FIRST_TEXT, this.#time(r.firstTextAt));
    this.#events(span, r.events);
    this.#sink.emit(span.end(this.#time(Math.max(start, end))));
  }

  #tool(tool: ToolRecord, parent: SpanRef, turnEnd: number): void {
    const a = this.#child(S.OP_EXECUTE_TOOL);
    a[S.ATTR_GEN_AI_TOOL_NAME] = tool.name;
    a[S.ATTR_GEN_AI_TOOL_CALL_ID] = tool.callId;
    a[S.ATTR_GEN_AI_TOOL_TYPE] = 'function';
    a[S.ATTR_TOOL_EXECUTOR] = 'client';
    a[S.ATTR_TOOL_OUTCOME] = tool.end === null ? 'no_output' : 'output';
    const span = new OpenSpan(S.spanTool(tool.name), SpanKind.INTERNAL, this.#time(tool.start), a, parent);
    this.#sink.emit(span.end(this.#time(Math.max(tool.start, tool.end ?? turnEnd))));
  }

  #events(span: OpenSpan, events: readonly TimedEvent[]): void {
    for (const e of events) span.addEvent(e.name, this.#time(e.t), e.attrs);
  }

  /** Ends whatever is still open (the tracker closes turns first; this is a safety net). */
  close(at: number): void {
    this.endConnect(at, null);
    for (const span of this.#roots.values()) this.#sink.emit(span.end(this.#time(at)));
    this.#roots.clear();
  }
}

export function sessionConfigAttributes(view: Readonly<SessionView>): Attributes {
  return {
    [S.ATTR_VAD_TYPE]: view.vadType,
    [S.ATTR_VAD_SILENCE_MS]: view.silenceMs,
    [S.ATTR_VAD_INTERRUPT_RESPONSE]: view.interruptResponse,
    [S.ATTR_AUDIO_INPUT_FORMAT]: view.inputFormat,
    [S.ATTR_AUDIO_OUTPUT_FORMAT]: view.outputFormat,
  };
}
