import type { Attributes } from '@opentelemetry/api';
import type { Frame, JsonObject } from '../pipeline/frame.js';
import type { Report } from '../pipeline/reports.js';
import { AudioMeter, type AudioCounters } from '../pipeline/audio-meter.js';
import type { ConversationView, ResponseView } from '../protocol/conversation.js';
import type { ResponseTokens } from '../protocol/usage.js';
import { asArray, asBoolean, asNumber, asObject, asString } from '../protocol/json.js';
import {
  pushEvent,
  type Anchor,
  type EndReason,
  type Initiator,
  type InterruptionKind,
  type ResponseRecord,
  type ResponseStatus,
  type SessionView,
  type ToolRecord,
  type TurnRecord,
  type Usage,
} from './records.js';
import { LazyMap } from '../lazy-collections.js';
import { audioFormatOf, PCM16_BYTES_PER_MS, statedAudioFormat } from '../protocol/audio-format.js';
import { clipSpanString, SPAN_STRING_LIMIT } from './span-records.js';

/** Where the tracker delivers what it learns. Called synchronously from the frame handlers. */
export interface TurnSink {
  turnOpened(turn: TurnRecord): void;
  /** A response finished (`response.done`), or was abandoned when its turn was force-closed. */
  responseDone(response: ResponseRecord): void;
  /** The turn is over: every child record is final. */
  turnClosed(turn: TurnRecord): void;
  sessionConfigured(view: Readonly<SessionView>, first: boolean, at: number): void;
  upstreamError(code: string, at: number): void;
}

export interface Scheduler {
  set(ms: number, fn: () => void): unknown;
  clear(handle: unknown): void;
}

export const realScheduler: Scheduler = {
  set(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface TrackerOptions {
  readonly maxTurnMs: number;
  readonly waitForPlayback: boolean;
  readonly truncateGraceMs: number;
  /** Content capture: null = never keep transcripts; otherwise a redactor applied before keeping. */
  readonly capture: ((text: string) => string) | null;
}


/**
 * What the tracker keeps of one client `response.create`: the moment it was sent and what the
 * turn machine did with it. Which response answers it is the conversation view's pairing
 * (`ResponseView.createEventId`); this record is only the timing the view does not hold.
 */
interface CreateTiming {
  readonly t: number;
  /** The client asked for an out-of-band response (`conversation: "none"`). */
  readonly outOfBand: boolean;
  /** The agent-initiated turn this request opened, if it did. */
  turn: TurnRecord | null;
  /** The client cancelled before the response was created. */
  cancelled: boolean;
}

/** The tracker's own state of an open turn (dropped when it closes). */
interface TurnTimers {
  max: unknown;
  wait: unknown;
  /** Item ids mapped to this turn in `#items` (at most MAX_ITEMS_PER_TURN). */
  items: number;
  /**
   * What the turn's bounds left out, by kind: the attributes of one `rtproxy.turn.dropped` event on
   * the turn, counted in place (null until something is dropped).
   */
  dropped: Record<string, number> | null;
}

const TEXT_DELTA_TYPES = new Set([
  'response.output_text.delta',
  'response.text.delta',
  'response.output_audio_transcript.delta',
  'response.audio_transcript.delta',
]);
const TEXT_DONE_TYPES: Readonly<Record<string, string>> = {
  'response.output_text.done': 'text',
  'response.text.done': 'text',
  'response.output_audio_transcript.done': 'transcript',
  'response.audio_transcript.done': 'transcript',
};
/** Creates sent upstream and not answered yet (a create the upstream never answers ages out). */
const MAX_CREATES = 16;
/** Early first-audio and usage reports, and records of done responses awaiting late usage. */
const MAX_EARLY = 16;
const MAX_EARLY_USAGE = 64;
/** Records of running responses (each belongs to an open turn; more than a handful is hostile). */
const MAX_RUNNING = 256;
const MAX_DONE = 256;
/**
 * Per turn, what upstream events add records to and the records live until the turn closes (up to
 * the turn cap, 120 s): tool calls (each a record and a span), responses (each a record and an
 * inference span), item ids. A turn rarely has more than a few of each; past these a hostile
 * upstream's extra ones are only counted (`rtproxy.turn.dropped`). Until 2026-12-05 any number of
 * function calls per turn each kept a record and a span.
 */
const MAX_TOOLS_PER_TURN = 64;
const MAX_RESPONSES_PER_TURN = 64;
const MAX_ITEMS_PER_TURN = 128;
/**
 * Turns open at once that wait on no running response (done and waiting for playback, waiting for
 * a tool's output, …): past this the oldest of them (not the current) is closed, with its outcome
 * when it only waited for playback, else as at its cap. Turns whose responses still run (each
 * out-of-band response.created opens one) are bounded by MAX_RUNNING instead (see #makeRoom).
 */
const MAX_OPEN_TURNS = 32;
/**
 * Longest response, item or call id the tracker keeps (as a map key, on records): OpenAI's are a
 * few dozen characters. A longer one is not tracked, so a hostile upstream's megabyte ids are not
 * kept alive by the tracker's maps.
 */
const MAX_ID_CHARS = SPAN_STRING_LIMIT;
/** `output_modalities` kept of a response (read for `audio` only; the upstream may send any array). */
const MAX_MODALITIES = 4;
const GUARDRAIL_SEVERITY: Readonly<Record<string, number>> = { log: 1, redact: 2, block: 3, cancel_response: 4, end_session: 5 };

/** The first few distinct `output_modalities` (clipped): a hostile array of any length is not copied. */
function modalities(raw: unknown): string[] {
  const out: string[] = [];
  for (const m of asArray(raw) ?? []) {
    if (out.length >= MAX_MODALITIES) break;
    if (typeof m !== 'string') continue;
    const v = clipSpanString(m);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

/** The conversation view's usage of a response (src/protocol/usage.ts parses it) as a telemetry record. */
function usageRecord(t: ResponseTokens | null): Usage | null {
  if (!t) return null;
  return {
    input: t.inputTokens,
    output: t.outputTokens,
    inputText: t.input.text,
    inputAudio: t.input.audio,
    inputImage: t.input.image,
    cached: t.cachedTokens,
    cachedText: t.cached.text,
    cachedAudio: t.cached.audio,
    cachedImage: t.cached.image,
    outputText: t.output.text,
    outputAudio: t.output.audio,
  };
}

/** The attributes of a `gen_ai.guardrail.result` span event (a turn's, or a translation session's span). */
export function guardrailAttributes(report: Extract<Report, { kind: 'guardrail' }>): Attributes {
  return {
    'gen_ai.guardrail.component.name': 'rtproxy',
    'gen_ai.guardrail.policy.id': report.policyId,
    'gen_ai.guardrail.policy.version': report.policyVersion,
    'gen_ai.guardrail.result.type': report.action,
    'gen_ai.guardrail.source': report.source,
    'rtproxy.guardrail.action': report.action,
    'rtproxy.guardrail.rule.id': report.ruleId,
    'rtproxy.guardrail.decision_ms': report.decisionMs,
  };
}

/**
 * The per-session turn state machine. It is fed every frame except audio (client frames as sent,
 * server frames as forwarded) and the session's reports, and turns them into turn / response /
 * tool records with proxy-clock timestamps. It knows nothing about OpenTelemetry: the sink does.
 *
 * Audio frames never reach it: the relay counts them (`AudioCounters`, read here at response and
 * session-format boundaries) and reports the two moments that matter, the first audio of each
 * response and the first input after push-to-talk idle. Every event it reads is a boundary
 * event, parsed once (the parse is cached on the Frame and shared with other filters).
 */
export class TurnTracker {
  // Audio formats in effect, and the totals at the last format change (ms = base + bytes since / rate).
  #inBytesPerMs = PCM16_BYTES_PER_MS;
  #outBytesPerMs = PCM16_BYTES_PER_MS;
  #inMsBase = 0;
  #inBytesBase = 0;
  #outMsBase = 0;
  #outBytesBase = 0;
  #pushToTalk = false;
  readonly session: SessionView = {
    realtimeSessionId: null,
    model: null,
    vadType: 'server_vad',
    silenceMs: 0,
    interruptResponse: true,
    inputFormat: 'pcm16',
    outputFormat: 'pcm16',
    inputBytesPerMs: PCM16_BYTES_PER_MS,
    outputBytesPerMs: PCM16_BYTES_PER_MS,
  };

  readonly #sink: TurnSink;
  /** The relay core's view of the protocol (responses, usage): read here, never re-derived. */
  readonly #conversation: ConversationView;
  readonly #opts: TrackerOptions;
  readonly #scheduler: Scheduler;
  readonly #now: () => number;
  readonly #audio: AudioCounters;
  /** First-audio reports for responses not seen yet (their response.created still queued). */
  readonly #firstAudioEarly = new LazyMap<string, number>();
  /** Turns not yet closed, oldest first (rarely more than two). */
  readonly #open: TurnRecord[] = [];
  readonly #timers = new LazyMap<TurnRecord, TurnTimers>();
  #current: TurnRecord | null = null;
  /**
   * Span and timing records of running responses, by response id (between response.created and
   * response.done, or until their turn is force-closed, while the view may still count them
   * active). Which responses run, and their kind, is the view's.
   */
  readonly #running = new LazyMap<string, ResponseRecord>();
  /**
   * The client `response.create` the chain is running now (this filter runs first for client
   * frames and the chain passes one frame at a time): the relay's `create_sent` report, or a
   * refusing verdict, settles it.
   */
  #createInChain: CreateTiming | null = null;
  /** Creates sent upstream, by the `event_id` they left with (`ResponseView.createEventId`), until answered or refused. */
  readonly #sentCreates = new LazyMap<string, CreateTiming>();
  readonly #tools = new LazyMap<string, ToolRecord>();
  /** Output and user item ids of open turns (truncate and transcripts refer to items). */
  readonly #items = new LazyMap<string, TurnRecord>();
  readonly #usageEarly = new LazyMap<string, number>();
  readonly #doneResponses = new LazyMap<string, ResponseRecord>();
  #pushToTalkActive = false;
  #turnSeq = 0;
  #sessionSeen = false;
  #closed = false;

  /** `conversation`: the session's protocol view (SessionContext.conversation), updated before frames reach the tracker. `audio`: the relay's counters (SessionContext.audio); by default a meter nothing feeds. */
  constructor(
    sink: TurnSink,
    conversation: ConversationView,
    opts: TrackerOptions,
    now: () => number,
    scheduler: Scheduler = realScheduler,
    audio?: AudioCounters,
  ) {
    this.#sink = sink;
    this.#conversation = conversation;
    this.#opts = opts;
    this.#now = now;
    this.#scheduler = scheduler;
    this.#audio = audio ?? new AudioMeter(() => {});
  }

  /** Input audio relayed so far (ms), in the formats in effect when it was sent. */
  get audioInMs(): number {
    return this.#inMsBase + (this.#audio.inputBytes - this.#inBytesBase) / this.#inBytesPerMs;
  }

  /** Output audio relayed so far (ms). */
  get audioOutMs(): number {
    return this.#outMsBase + (this.#audio.outputBytes - this.#outBytesBase) / this.#outBytesPerMs;
  }

  get current(): TurnRecord | null {
    return this.#current;
  }

  get openTurns(): readonly TurnRecord[] {
    return this.#open;
  }

  // ---- client → upstream -------------------------------------------------------------------

  onClient(frame: Frame, now: number): void {
    if (this.#closed) return;
    switch (frame.type) {
      case 'input_audio_buffer.commit':
        this.#onCommit(now);
        return;
      case 'input_audio_buffer.clear':
        this.#pushToTalkActive = false;
        this.#watchInput();
        return;
      case 'conversation.item.create':
        this.#onItemCreate(frame.json(), now);
        return;
      case 'conversation.item.truncate':
        this.#onTruncate(frame.json(), now);
        return;
      case 'response.create':
        this.#onResponseCreate(frame.json(), now);
        return;
      case 'response.cancel':
        this.#onResponseCancel(frame, now);
        return;
      default:
        return;
    }
  }

  /** Push-to-talk: the first append after idle starts the user's speech (the relay reports it). */
  #onInputStarted(now: number): void {
    if (!this.#pushToTalk || this.#pushToTalkActive) return;
    this.#pushToTalkActive = true;
    const turn = this.#userTurn(now, 'commit', true);
    if (turn.speechStartAt === null) turn.speechStartAt = now;
  }

  /** Asks the relay for one report at the next append while push-to-talk is idle. */
  #watchInput(): void {
    if (this.#pushToTalk && !this.#pushToTalkActive) this.#audio.watchInputStart();
  }

  #onCommit(now: number): void {
    this.#pushToTalkActive = false;
    this.#watchInput();
    const turn = this.#userTurn(now, 'commit', true);
    if (turn.anchor !== 'server_vad' && turn.anchor !== 'semantic_vad') turn.anchor = 'commit';
    if (!turn.responseRequested) turn.userEndAt = now;
    if (turn.speechStartAt !== null && turn.speechEndAt === null) turn.speechEndAt = now;
    this.#event(turn, 'input_audio_buffer.commit', now);
  }

  #onItemCreate(ev: JsonObject, now: number): void {
    const item = asObject(ev['item']);
    const type = asString(item?.['type']);
    if (type === 'function_call_output') {
      const callId = asString(item?.['call_id']);
      const tool = callId ? this.#tools.get(callId) : undefined;
      if (tool && callId) {
        tool.end = now;
        this.#tools.delete(callId);
      }
      return;
    }
    if (type !== 'message' || asString(item?.['role']) !== 'user') return;
    const turn = this.#userTurn(now, 'text', false);
    const id = asString(item?.['id']);
    if (id) this.#noteItem(id, turn);
    if (this.#opts.capture) {
      let text = '';
      for (const part of asArray(item?.['content']) ?? []) {
        const p = asObject(part);
        const t = asString(p?.['type']) === 'input_text' ? asString(p?.['text']) : null;
        if (t) text += (text ? '\n' : '') + t;
      }
      if (text) turn.inputText = this.#opts.capture((turn.inputText ? turn.inputText + '\n' : '') + text);
    }
  }

  #onTruncate(ev: JsonObject, now: number): void {
    const itemId = asString(ev['item_id']);
    const turn = itemId ? this.#items.get(itemId) : undefined;
    if (!turn || turn.phase === 'closed') return;
    const played = asNumber(ev['audio_end_ms']);
    turn.playedAudioMs = played;
    turn.truncated = true;
    turn.lastAt = Math.max(turn.lastAt, now);
    this.#event(turn, 'conversation.item.truncate', now, played === null ? undefined : { 'rtproxy.audio.end_ms': played });
    if (turn.endReason === null) this.#interrupt(turn, this.#activeIn(turn) ? 'generation' : 'playback', now);
    else this.#maybeClose(turn);
  }

  #onResponseCreate(ev: JsonObject, now: number): void {
    const response = asObject(ev['response']);
    const outOfBand = asString(response?.['conversation']) === 'none';
    const create: CreateTiming = { t: now, outOfBand, turn: null, cancelled: false };
    this.#createInChain = create;
    if (outOfBand) return;
    const cur = this.#current;
    if (cur && (cur.phase === 'user' || cur.phase === 'tool_wait')) {
      if (cur.phase === 'user') {
        cur.userEndAt ??= now;
        cur.responseRequested = true;
      }
      this.#event(cur, 'response.create', now);
      return;
    }
    // No pending user input: the application asks the agent to speak on its own.
    if (cur && cur.phase === 'responding') return; // will fail upstream (one response at a time)
    const turn = this.#openTurn(now, 'agent', 'response_create', false);
    turn.userEndAt = now;
    turn.responseRequested = true;
    create.turn = turn;
  }

  /** The relay sent the create the chain was running, with this `event_id`. */
  #onCreateSent(eventId: string): void {
    const create = this.#createInChain;
    if (!create) return;
    this.#createInChain = null;
    this.#sentCreates.delete(eventId);
    this.#sentCreates.set(eventId, create);
    if (this.#sentCreates.size > MAX_CREATES) this.#sentCreates.delete(this.#sentCreates.keys().next().value!);
  }

  #onResponseCancel(frame: Frame, now: number): void {
    const id = frame.string('response_id');
    const r = id ? this.#running.get(id) : this.#latestInConversation();
    if (!r) {
      // Cancelled before response.created reached the proxy: applies to the requested response.
      if (id) return;
      for (const create of this.#sentCreates.values()) {
        if (create.outOfBand) continue;
        create.cancelled = true;
        return;
      }
      return;
    }
    r.clientCancelled = true;
    this.#event(r.turn, 'response.cancel', now);
    if (r.turn.endReason === null) this.#interrupt(r.turn, 'generation', now);
  }

  // ---- upstream → client -------------------------------------------------------------------

  onServer(frame: Frame, now: number): void {
    if (this.#closed) return;
    const type = frame.type;
    if (TEXT_DELTA_TYPES.has(type)) {
      const r = this.#responseOf(frame);
      if (r && r.firstTextAt === null) {
        r.firstTextAt = now;
        r.turn.firstTextAt ??= now;
      }
      return;
    }
    const textDone = TEXT_DONE_TYPES[type];
    if (textDone !== undefined) {
      if (this.#opts.capture) this.#onTextDone(frame.json(), textDone);
      return;
    }
    switch (type) {
      case 'session.created':
      case 'session.updated':
        this.#onSession(frame.json(), now);
        return;
      case 'input_audio_buffer.speech_started':
        this.#onSpeechStarted(frame.json(), now);
        return;
      case 'input_audio_buffer.speech_stopped':
        this.#onSpeechStopped(frame.json(), now);
        return;
      case 'input_audio_buffer.committed': {
        const turn = this.#current;
        if (turn && turn.phase === 'user') {
          const id = asString(frame.json()['item_id']);
          if (id) this.#noteItem(id, turn);
          this.#event(turn, 'input_audio_buffer.committed', now);
        }
        return;
      }
      case 'input_audio_buffer.timeout_triggered': {
        const cur = this.#current;
        if (cur && cur.phase === 'user') cur.userEndAt ??= now;
        else this.#openTurn(now, 'agent', 'idle_timeout', true).userEndAt = now;
        return;
      }
      case 'conversation.item.input_audio_transcription.completed':
        if (this.#opts.capture) this.#onInputTranscript(frame.json());
        return;
      case 'response.created':
        this.#onResponseCreated(frame.json(), now);
        return;
      case 'output_audio_buffer.started': {
        // WebRTC/SIP sideband: no audio passes the proxy; playback start is the first audio.
        const r = this.#responseOf(frame);
        if (r && r.firstAudioAt === null) {
          r.firstAudioAt = now;
          r.turn.firstAudioAt ??= now;
        }
        return;
      }
      case 'response.output_item.added':
        this.#onOutputItem(frame.json());
        return;
      case 'response.function_call_arguments.done':
        this.#onFunctionCall(frame.json(), now);
        return;
      case 'response.done':
        this.#onResponseDone(frame.json(), now);
        return;
      case 'error':
        this.#onError(frame.json(), now);
        return;
      default:
        return;
    }
  }

  /** The relay forwarded the first audio of a response (one report per response). */
  #onFirstAudio(responseId: string, at: number): void {
    const r = this.#running.get(responseId);
    if (!r) {
      if (responseId.length > MAX_ID_CHARS) return;
      this.#firstAudioEarly.set(responseId, at);
      if (this.#firstAudioEarly.size > MAX_EARLY) this.#firstAudioEarly.delete(this.#firstAudioEarly.keys().next().value!);
      return;
    }
    this.#noteFirstAudio(r, at);
  }

  #noteFirstAudio(r: ResponseRecord, at: number): void {
    if (r.firstAudioAt !== null) return;
    r.firstAudioAt = at;
    if (r.turn.firstAudioAt === null || at < r.turn.firstAudioAt) r.turn.firstAudioAt = at;
  }

  /** A response's output audio, read from the relay's counters when it ends (done or abandoned). */
  #settleAudio(r: ResponseRecord): void {
    const rec = this.#audio.response(r.id);
    if (!rec) return;
    r.outputAudioMs = rec.bytes / this.#outBytesPerMs;
    this.#noteFirstAudio(r, rec.firstAt);
  }

  /**
   * The record of the response a streaming frame belongs to: the view's only active response, or
   * (several running) the one its `response_id` names. Null when its record is gone (the turn was
   * force-closed) although the view still counts the response active.
   */
  #responseOf(frame: Frame): ResponseRecord | null {
    const active = this.#conversation.activeResponses();
    if (active.length === 0) return null;
    const id = active.length === 1 ? active[0]! : frame.string('response_id');
    return id ? (this.#running.get(id) ?? null) : null;
  }

  #onSession(ev: JsonObject, now: number): void {
    const s = asObject(ev['session']);
    if (!s) return;
    const v = this.session;
    v.realtimeSessionId = asString(s?.['id']) ?? v.realtimeSessionId;
    v.model = asString(s?.['model']) ?? v.model;
    const audio = asObject(s?.['audio']);
    const input = asObject(audio?.['input']);
    const inFmt = audioFormatOf(statedAudioFormat(s, 'input'));
    if (inFmt) {
      v.inputFormat = inFmt.name;
      v.inputBytesPerMs = inFmt.bytesPerMs;
    }
    const outFmt = audioFormatOf(statedAudioFormat(s, 'output'));
    if (outFmt) {
      v.outputFormat = outFmt.name;
      v.outputBytesPerMs = outFmt.bytesPerMs;
    }
    const tdOwner = input && Object.hasOwn(input, 'turn_detection') ? input : Object.hasOwn(s, 'turn_detection') ? s : null;
    if (tdOwner) {
      const td = asObject(tdOwner['turn_detection']);
      const type = asString(td?.['type']);
      v.vadType = type === 'server_vad' || type === 'semantic_vad' ? type : 'none';
      // Semantic VAD has no fixed silence window to backdate by.
      v.silenceMs = type === 'server_vad' ? (asNumber(td?.['silence_duration_ms']) ?? 500) : 0;
      v.interruptResponse = asBoolean(td?.['interrupt_response']) ?? true;
    }
    // Audio so far counts in the format it was sent in.
    this.#inMsBase = this.audioInMs;
    this.#inBytesBase = this.#audio.inputBytes;
    this.#outMsBase = this.audioOutMs;
    this.#outBytesBase = this.#audio.outputBytes;
    this.#inBytesPerMs = v.inputBytesPerMs;
    this.#outBytesPerMs = v.outputBytesPerMs;
    this.#pushToTalk = v.vadType === 'none';
    this.#watchInput();
    const first = !this.#sessionSeen;
    this.#sessionSeen = true;
    this.#sink.sessionConfigured(v, first, now);
  }

  #vadAnchor(): Anchor {
    return this.session.vadType === 'semantic_vad' ? 'semantic_vad' : 'server_vad';
  }

  #onSpeechStarted(ev: JsonObject, now: number): void {
    const audioStart = asNumber(ev['audio_start_ms']);
    const cur = this.#current;
    let turn: TurnRecord;
    if (cur && cur.phase === 'user') {
      turn = cur;
      if (turn.speechStartAt === null) {
        turn.speechStartAt = now;
        turn.audioStartMs = audioStart;
      } else if (turn.speechEndAt !== null) {
        // The user went on talking before a response started: one longer user turn.
        turn.speechEndAt = null;
        turn.userEndAt = null;
        turn.speechEndEstimateAt = null;
      }
    } else {
      turn = this.#userTurn(now, this.#vadAnchor(), true);
      turn.speechStartAt = now;
      turn.audioStartMs = audioStart;
    }
    turn.anchor = this.#vadAnchor();
    const item = asString(ev['item_id']);
    if (item) this.#noteItem(item, turn);
    this.#event(turn, 'input_audio_buffer.speech_started', now, audioStart === null ? undefined : { 'rtproxy.audio.start_ms': audioStart });
  }

  #onSpeechStopped(ev: JsonObject, now: number): void {
    const audioEnd = asNumber(ev['audio_end_ms']);
    const cur = this.#current;
    const turn = cur && cur.phase === 'user' ? cur : this.#userTurn(now, this.#vadAnchor(), true);
    turn.anchor = this.#vadAnchor();
    turn.speechEndAt = now;
    turn.audioEndMs = audioEnd;
    turn.userEndAt = now;
    // True end of speech: `audio_end_ms` includes the silence window that ended the turn.
    const silence = this.session.silenceMs;
    const mapped = audioEnd === null ? null : this.#inputTimeOf(audioEnd - silence);
    turn.speechEndEstimateAt = Math.min(now, mapped ?? now - silence);
    this.#event(turn, 'input_audio_buffer.speech_stopped', now, audioEnd === null ? undefined : { 'rtproxy.audio.end_ms': audioEnd });
  }

  /** Proxy time the input audio at server position `posMs` was forwarded (positions count all appended audio). */
  #inputTimeOf(posMs: number): number | null {
    const rate = this.#inBytesPerMs;
    return this.#audio.inputTimeOf(this.#inBytesBase + (posMs - this.#inMsBase) * rate, rate);
  }

  #onInputTranscript(ev: JsonObject): void {
    const id = asString(ev['item_id']);
    const turn = id ? this.#items.get(id) : undefined;
    const text = asString(ev['transcript']);
    if (!turn || !text || !this.#opts.capture) return;
    turn.inputText = this.#opts.capture((turn.inputText ? turn.inputText + '\n' : '') + text);
  }

  #onTextDone(ev: JsonObject, kind: string): void {
    const id = asString(ev['response_id']);
    const r = id ? (this.#running.get(id) ?? null) : null;
    const text = asString(ev[kind]);
    if (!r || !text || !this.#opts.capture) return;
    r.outputText = this.#opts.capture((r.outputText ? r.outputText + '\n' : '') + text);
  }

  /** The timing of the create that started `view` (the view's pairing), taken from the store. */
  #createOf(view: ResponseView | undefined): CreateTiming | null {
    const key = view?.createEventId ?? null;
    const create = key !== null ? this.#sentCreates.get(key) : undefined;
    if (!create) return null;
    this.#sentCreates.delete(key!);
    return create;
  }

  #onResponseCreated(ev: JsonObject, now: number): void {
    const resp = asObject(ev['response']);
    const id = asString(resp?.['id']);
    if (!id || id.length > MAX_ID_CHARS || this.#running.has(id)) return;
    // The view paired this response.created with its create before the filters saw it.
    const view = this.#conversation.response(id);
    const create = this.#createOf(view);
    const outOfBand = view?.outOfBand ?? false;
    let turn: TurnRecord;
    if (outOfBand) {
      turn = this.#openTurn(create?.t ?? now, 'agent', create ? 'response_create' : 'none', false, true);
      turn.userEndAt = create?.t ?? null;
      turn.responseRequested = true;
    } else if (create?.turn && create.turn.phase !== 'closed') {
      turn = create.turn;
    } else {
      const cur = this.#current;
      if (cur && (cur.phase === 'user' || cur.phase === 'tool_wait')) turn = cur;
      else {
        if (cur) this.#supersede(cur, now, false);
        turn = this.#openTurn(create?.t ?? now, 'agent', create ? 'response_create' : 'none', true);
        turn.userEndAt = create?.t ?? null;
      }
    }
    // Past the turn's bound the response is only counted: no record, no span (its frames find none).
    if (turn.responses.length >= MAX_RESPONSES_PER_TURN) return this.#dropped(turn, 'rtproxy.turn.dropped.responses');
    // The view keeps "inf" (no limit); telemetry records have no limit as null.
    const maxTokens = view?.maxOutputTokens ?? null;
    const r: ResponseRecord = {
      id,
      turn,
      trigger: view?.origin === 'client' || view?.origin === 'out_of_band' ? 'client' : 'server',
      outOfBand,
      requestedAt: create?.t ?? null,
      createdAt: now,
      maxOutputTokens: maxTokens === 'inf' ? null : maxTokens,
      outputModalities: modalities(resp?.['output_modalities']),
      firstAudioAt: null,
      firstTextAt: null,
      doneAt: null,
      status: 'in_progress',
      statusReason: null,
      errorType: null,
      outputAudioMs: 0,
      functionCalls: 0,
      usage: null,
      costMicros: null,
      cancelledBy: null,
      clientCancelled: false,
      outputText: null,
      events: [],
    };
    turn.responses.push(r);
    turn.responseRequested = true;
    if (turn.phase !== 'draining') turn.phase = 'responding';
    turn.lastAt = Math.max(turn.lastAt, now);
    this.#running.set(id, r);
    if (this.#running.size > MAX_RUNNING) this.#abandon(this.#running.values().next().value!);
    const early = this.#usageEarly.get(id);
    if (early !== undefined) {
      r.costMicros = early;
      this.#usageEarly.delete(id);
    }
    const firstAudio = this.#firstAudioEarly.get(id);
    if (firstAudio !== undefined) {
      this.#firstAudioEarly.delete(id);
      this.#noteFirstAudio(r, firstAudio);
    }
    if (create?.cancelled) {
      r.clientCancelled = true;
      if (turn.endReason === null) this.#interrupt(turn, 'generation', now);
    }
  }

  #onOutputItem(ev: JsonObject): void {
    const rid = asString(ev['response_id']);
    const r = rid ? this.#running.get(rid) : undefined;
    const id = asString(asObject(ev['item'])?.['id']);
    if (r && id) this.#noteItem(id, r.turn);
  }

  /** Maps an item id to its turn (truncates and transcripts name items), within the turn's bound. */
  #noteItem(id: string, turn: TurnRecord): void {
    if (this.#items.get(id) === turn) return;
    const state = this.#timers.get(turn);
    if (!state) return;
    if (state.items >= MAX_ITEMS_PER_TURN || id.length > MAX_ID_CHARS) return this.#dropped(turn, 'rtproxy.turn.dropped.items');
    state.items++;
    this.#items.set(id, turn);
  }

  /** Counts one record the turn's bounds left out, on the turn's `rtproxy.turn.dropped` event. */
  #dropped(turn: TurnRecord, kind: string): void {
    const state = this.#timers.get(turn);
    if (!state) return;
    if (state.dropped === null) {
      state.dropped = {};
      // Pushed past the events' cap if need be: one event per turn, and the counts must not be lost.
      turn.events.push({ name: 'rtproxy.turn.dropped', t: this.#now(), attrs: state.dropped });
    }
    state.dropped[kind] = (state.dropped[kind] ?? 0) + 1;
  }

  #onFunctionCall(ev: JsonObject, now: number): void {
    const callId = asString(ev['call_id']);
    if (!callId) return;
    const rid = asString(ev['response_id']);
    const r = rid ? (this.#running.get(rid) ?? null) : this.#onlyRunning();
    const turn = r?.turn ?? this.#current;
    if (!turn) return;
    // A call's arguments are done once: a repeat is not a second call.
    if (this.#tools.has(callId)) return;
    // Past the bound, or an id no real call has: counted, not kept.
    if (turn.tools.length >= MAX_TOOLS_PER_TURN || callId.length > MAX_ID_CHARS) return this.#dropped(turn, 'rtproxy.turn.dropped.tools');
    // Names and codes are kept until the turn ends: cut like span strings now, not only when written.
    const tool: ToolRecord = { callId, name: clipSpanString(asString(ev['name']) ?? 'unknown'), responseId: r?.id ?? null, start: now, end: null };
    turn.tools.push(tool);
    this.#tools.set(callId, tool);
  }

  #onResponseDone(ev: JsonObject, now: number): void {
    const resp = asObject(ev['response']);
    const id = asString(resp?.['id']);
    if (!id) return;
    const r = this.#running.get(id);
    if (!r) return;
    this.#running.delete(id);
    const status = asString(resp?.['status']);
    r.status = status === 'completed' || status === 'cancelled' || status === 'incomplete' || status === 'failed' ? status : 'completed';
    const details = asObject(resp?.['status_details']);
    const reason = asString(details?.['reason']);
    r.statusReason = reason === null ? null : clipSpanString(reason);
    if (r.status === 'failed') {
      const err = asObject(details?.['error']);
      r.errorType = clipSpanString(asString(err?.['code']) ?? asString(err?.['type']) ?? 'failed');
    }
    for (const item of asArray(resp?.['output']) ?? []) if (asString(asObject(item)?.['type']) === 'function_call') r.functionCalls++;
    // The relay core updated the view from this response.done before the filters saw it.
    r.usage = usageRecord(this.#conversation.response(id)?.usage ?? null);
    r.doneAt = now;
    this.#settleAudio(r);
    this.#doneResponses.set(id, r);
    if (this.#doneResponses.size > MAX_DONE) this.#doneResponses.delete(this.#doneResponses.keys().next().value!);
    this.#sink.responseDone(r);
    this.#afterResponse(r, now);
  }

  #afterResponse(r: ResponseRecord, now: number): void {
    const turn = r.turn;
    if (turn.phase === 'closed') return;
    if (r.firstAudioAt !== null) {
      const start = Math.max(turn.playbackEndAt ?? r.firstAudioAt, r.firstAudioAt);
      turn.playbackEndAt = start + r.outputAudioMs;
    }
    turn.outputAudioMs += r.outputAudioMs;
    if (r.costMicros !== null) turn.costMicros += r.costMicros;
    turn.lastAt = Math.max(turn.lastAt, now);
    if (turn.endReason !== null) {
      this.#maybeClose(turn);
      return;
    }
    if (this.#activeIn(turn)) return;
    switch (r.status) {
      case 'cancelled':
        if (r.cancelledBy) this.#end(turn, 'cancelled', now);
        else this.#interrupt(turn, 'generation', now);
        return;
      case 'failed':
        turn.errorType = r.errorType;
        this.#end(turn, 'failed', now);
        return;
      default:
        break;
    }
    if (r.status === 'completed' && r.functionCalls > 0) {
      turn.phase = 'tool_wait';
      return;
    }
    turn.finalStatus = r.status === 'incomplete' ? 'incomplete' : 'completed';
    turn.phase = 'playback';
    const playbackEnd = turn.playbackEndAt;
    if (this.#opts.waitForPlayback && playbackEnd !== null && playbackEnd > now) {
      this.#setWait(turn, playbackEnd - now, () => this.#close(turn, turn.finalStatus ?? 'completed', playbackEnd));
      return;
    }
    this.#close(turn, turn.finalStatus, now);
  }

  #onError(ev: JsonObject, now: number): void {
    const err = asObject(ev['error']);
    const code = clipSpanString(asString(err?.['code']) ?? asString(err?.['type']) ?? 'unknown');
    this.#sink.upstreamError(code, now);
    const cur = this.#current;
    if (cur) this.#event(cur, 'error', now, { 'error.type': code });
    // An error about a response.create (every create upstream carries its own event_id, see
    // Conversation.stamp) means that request gets no response.
    const about = asString(err?.['event_id']);
    const create = about !== null ? this.#sentCreates.get(about) : undefined;
    if (!create) return;
    this.#sentCreates.delete(about!);
    this.#refused(create, code, now);
  }

  /** A response request that will get no response: a turn waiting only for it fails. */
  #refused(create: CreateTiming | null, code: string, now: number): void {
    const turn = create?.turn ?? (create && !create.outOfBand ? this.#current : null);
    if (!turn || turn.phase === 'closed' || turn.responses.length > 0) return;
    turn.errorType = code;
    this.#end(turn, 'failed', now);
  }

  // ---- reports -----------------------------------------------------------------------------

  onReport(report: Report, now: number): void {
    if (this.#closed) return;
    switch (report.kind) {
      case 'output_audio_started':
        this.#onFirstAudio(report.responseId, report.at);
        return;
      case 'input_audio_started':
        this.#onInputStarted(report.at);
        return;
      case 'create_sent':
        this.#onCreateSent(report.eventId);
        return;
      case 'usage': {
        if (report.source !== 'response') {
          const turn = this.#current;
          if (turn && turn.phase !== 'closed') turn.costMicros += report.costMicros;
          return;
        }
        const active = this.#running.get(report.responseId);
        if (active) {
          active.costMicros = (active.costMicros ?? 0) + report.costMicros;
          return;
        }
        const done = this.#doneResponses.get(report.responseId);
        if (done) {
          done.costMicros = (done.costMicros ?? 0) + report.costMicros;
          if (done.turn.phase !== 'closed') done.turn.costMicros += report.costMicros;
          return;
        }
        if (report.responseId.length > MAX_ID_CHARS) return;
        this.#usageEarly.set(report.responseId, report.costMicros);
        if (this.#usageEarly.size > MAX_EARLY_USAGE) {
          const oldest = this.#usageEarly.keys().next().value;
          if (oldest !== undefined) this.#usageEarly.delete(oldest);
        }
        return;
      }
      case 'guardrail': {
        const r = report.responseId ? (this.#running.get(report.responseId) ?? null) : null;
        const turn = r?.turn ?? this.#current;
        if (r && report.action === 'cancel_response') r.cancelledBy = 'guardrail';
        if (!turn || turn.phase === 'closed') return;
        const sev = GUARDRAIL_SEVERITY[report.action] ?? 0;
        if (turn.guardrailAction === null || sev > (GUARDRAIL_SEVERITY[turn.guardrailAction] ?? 0)) turn.guardrailAction = report.action;
        const attrs = guardrailAttributes(report);
        this.#event(turn, 'gen_ai.guardrail.result', now, attrs);
        if (r) pushEvent(r.events, { name: 'gen_ai.guardrail.result', t: now, attrs });
        return;
      }
      case 'budget': {
        const r = report.responseId ? (this.#running.get(report.responseId) ?? null) : null;
        if (r && report.action === 'cancelled') r.cancelledBy = 'budget';
        const turn = r?.turn ?? this.#current;
        if (turn && turn.phase !== 'closed') {
          this.#event(turn, 'rtproxy.budget', now, { 'rtproxy.budget.action': report.action, 'rtproxy.budget.scope': report.scope, 'rtproxy.budget.limit': report.limit });
        }
        return;
      }
      case 'prune': {
        const turn = this.#current;
        if (turn && turn.phase !== 'closed') {
          this.#event(turn, 'rtproxy.prune', now, {
            'rtproxy.prune.items': report.itemIds.length,
            'rtproxy.prune.tokens_before': report.tokensBefore,
            'rtproxy.prune.tokens_after': report.tokensAfter,
          });
        }
        return;
      }
      case 'lock': {
        const turn = this.#current;
        if (turn && turn.phase !== 'closed') this.#event(turn, 'rtproxy.lock', now, { 'rtproxy.lock.field': report.field, 'rtproxy.lock.action': report.action });
        return;
      }
      case 'verdict': {
        const turn = this.#current;
        if (turn && turn.phase !== 'closed' && !this.#repeatVerdict(turn, report)) {
          const attrs: Attributes = {
            'rtproxy.verdict.filter': report.filter,
            'rtproxy.verdict': report.verdict,
            'rtproxy.verdict.direction': report.direction,
            'rtproxy.verdict.event_type': report.eventType.slice(0, 64),
          };
          if (report.code) attrs['rtproxy.verdict.code'] = report.code;
          this.#event(turn, 'rtproxy.verdict', now, attrs);
        }
        // A refused response.create never reaches the upstream: forget the request.
        if (report.direction === 'client' && report.eventType === 'response.create' && report.verdict !== 'replace') {
          const create = this.#createInChain;
          this.#createInChain = null;
          this.#refused(create, report.code ?? report.verdict, now);
        }
        return;
      }
      default:
        return;
    }
  }

  /**
   * perf: a verdict identical to the turn's last event (a guardrail holding back every transcript
   * delta, say) is counted on that event (`rtproxy.verdict.count`) instead of adding one event
   * per frame that would live, and be promoted, until the turn ends.
   */
  #repeatVerdict(turn: TurnRecord, report: Extract<Report, { kind: 'verdict' }>): boolean {
    const last = turn.events[turn.events.length - 1];
    const a = last?.attrs;
    if (!last || last.name !== 'rtproxy.verdict' || !a) return false;
    if (
      a['rtproxy.verdict.filter'] !== report.filter ||
      a['rtproxy.verdict'] !== report.verdict ||
      a['rtproxy.verdict.direction'] !== report.direction ||
      a['rtproxy.verdict.event_type'] !== report.eventType.slice(0, 64) ||
      a['rtproxy.verdict.code'] !== (report.code || undefined)
    ) {
      return false;
    }
    const count = a['rtproxy.verdict.count'];
    (a as Record<string, unknown>)['rtproxy.verdict.count'] = (typeof count === 'number' ? count : 1) + 1;
    return true;
  }

  // ---- turn lifecycle ----------------------------------------------------------------------

  /** The turn that new user input belongs to; opening one (and superseding the current) if needed. */
  #userTurn(now: number, anchor: Anchor, interrupting: boolean): TurnRecord {
    const cur = this.#current;
    if (cur && cur.phase === 'user') return cur;
    if (cur) this.#supersede(cur, now, interrupting);
    return this.#openTurn(now, 'user', anchor, true);
  }

  /** New user input arrived while `turn` was still going. */
  #supersede(turn: TurnRecord, now: number, interrupting: boolean): void {
    switch (turn.phase) {
      case 'responding':
        if (interrupting) this.#interrupt(turn, 'generation', now);
        return;
      case 'playback':
        if (interrupting && turn.playbackEndAt !== null && now < turn.playbackEndAt) this.#interrupt(turn, 'playback', now);
        else if (interrupting) this.#close(turn, turn.finalStatus ?? 'completed', Math.max(turn.lastAt, turn.playbackEndAt ?? now));
        return;
      case 'tool_wait': {
        const pendingTools = turn.tools.some((t) => t.end === null);
        if (pendingTools) this.#interrupt(turn, 'generation', now);
        else this.#close(turn, 'completed', turn.lastAt);
        return;
      }
      default:
        return;
    }
  }

  #openTurn(at: number, initiator: Initiator, anchor: Anchor, makeCurrent: boolean, outOfBand = false): TurnRecord {
    const turn: TurnRecord = {
      number: ++this.#turnSeq,
      initiator,
      openedAt: at,
      outOfBand,
      session: { ...this.session },
      anchor,
      phase: 'user',
      speechStartAt: null,
      speechEndAt: null,
      audioStartMs: null,
      audioEndMs: null,
      userEndAt: null,
      speechEndEstimateAt: null,
      responseRequested: false,
      responses: [],
      tools: [],
      firstAudioAt: null,
      firstTextAt: null,
      outputAudioMs: 0,
      playbackEndAt: null,
      playedAudioMs: null,
      truncated: false,
      finalStatus: null,
      endReason: null,
      errorType: null,
      interruption: null,
      lastAt: at,
      endedAt: null,
      guardrailAction: null,
      costMicros: 0,
      inputText: null,
      events: [],
    };
    this.#open.push(turn);
    if (makeCurrent) this.#current = turn;
    this.#timers.set(turn, {
      max: this.#scheduler.set(this.#opts.maxTurnMs, () => this.#close(turn, turn.endReason ?? 'timeout', this.#now())),
      wait: null,
      items: 0,
      dropped: null,
    });
    this.#sink.turnOpened(turn);
    if (this.#open.length > MAX_OPEN_TURNS) this.#makeRoom(turn, this.#now());
    return turn;
  }

  #interrupt(turn: TurnRecord, kind: InterruptionKind, now: number): void {
    if (turn.endReason !== null || turn.phase === 'closed') return;
    turn.interruption = kind;
    this.#event(turn, 'rtproxy.interrupted', now, { 'rtproxy.turn.interruption_kind': kind });
    this.#end(turn, 'interrupted', now);
  }

  /** Decides the end reason; the turn closes once its responses are done (usage) and, after an interruption, the truncate arrived. */
  #end(turn: TurnRecord, reason: EndReason, now: number): void {
    if (turn.phase === 'closed') return;
    turn.endReason ??= reason;
    turn.phase = 'draining';
    turn.lastAt = Math.max(turn.lastAt, now);
    this.#clearWait(turn);
    this.#maybeClose(turn);
  }

  #maybeClose(turn: TurnRecord): void {
    if (turn.phase === 'closed' || turn.endReason === null) return;
    if (this.#activeIn(turn)) return;
    if (turn.endReason === 'interrupted' && turn.outputAudioMs > 0 && !turn.truncated && this.#opts.truncateGraceMs > 0) {
      const timers = this.#timers.get(turn);
      if (timers && timers.wait === null) this.#setWait(turn, this.#opts.truncateGraceMs, () => this.#close(turn, 'interrupted', turn.lastAt));
      return;
    }
    this.#close(turn, turn.endReason, turn.lastAt);
  }

  /**
   * The turn still waits for one of its responses: its record is held and its response.done has
   * not reached this filter. Not the view's activity: the view learns response.done before the
   * filters, and a filter may still hold that frame; closing the turn then would lose its usage.
   */
  #activeIn(turn: TurnRecord): boolean {
    for (const r of turn.responses) if (r.doneAt === null && this.#running.has(r.id)) return true;
    return false;
  }

  /** The record of the newest response the view counts active in the default conversation. */
  #latestInConversation(): ResponseRecord | null {
    const active = this.#conversation.activeResponses();
    for (let i = active.length - 1; i >= 0; i--) {
      const id = active[i]!;
      if (this.#conversation.response(id)?.outOfBand) continue;
      return this.#running.get(id) ?? null;
    }
    return null;
  }

  /** The record of the view's only active response, when exactly one runs. */
  #onlyRunning(): ResponseRecord | null {
    const active = this.#conversation.activeResponses();
    return active.length === 1 ? (this.#running.get(active[0]!) ?? null) : null;
  }

  /** Gives up on a running response (its turn is force-closed, or too many run): it counts with what is known. */
  #abandon(r: ResponseRecord): void {
    if (!this.#running.delete(r.id)) return;
    this.#settleAudio(r);
    this.#sink.responseDone(r);
  }

  #setWait(turn: TurnRecord, ms: number, fn: () => void): void {
    const timers = this.#timers.get(turn);
    if (!timers) return;
    if (timers.wait !== null) this.#scheduler.clear(timers.wait);
    timers.wait = this.#scheduler.set(ms, fn);
  }

  #clearWait(turn: TurnRecord): void {
    const timers = this.#timers.get(turn);
    if (timers && timers.wait !== null) {
      this.#scheduler.clear(timers.wait);
      timers.wait = null;
    }
  }

  #close(turn: TurnRecord, reason: EndReason | null, at: number): void {
    if (turn.phase === 'closed') return;
    turn.endReason ??= reason ?? 'completed';
    turn.phase = 'closed';
    turn.endedAt = Math.max(at, turn.openedAt);
    const timers = this.#timers.get(turn);
    if (timers) {
      this.#scheduler.clear(timers.max);
      if (timers.wait !== null) this.#scheduler.clear(timers.wait);
      this.#timers.delete(turn);
    }
    const i = this.#open.indexOf(turn);
    if (i >= 0) this.#open.splice(i, 1);
    if (this.#current === turn) this.#current = null;
    for (const [id, t] of this.#items) if (t === turn) this.#items.delete(id);
    for (const tool of turn.tools) if (tool.end === null) this.#tools.delete(tool.callId);
    for (const r of turn.responses) {
      this.#doneResponses.delete(r.id);
      // Abandoned (timeout or session end): it still counts, with what is known.
      if (r.doneAt === null) this.#abandon(r);
    }
    this.#sink.turnClosed(turn);
  }

  /**
   * Closes a turn before its time (`reason` for one still running). A turn only waiting for the
   * estimated end of its playback is done: it ends with its response's outcome, at the earlier of
   * now and that estimate. (Until 2026-12-06 a completed turn evicted for room ended as `timeout`.)
   */
  #closeEarly(turn: TurnRecord, reason: EndReason, now: number): void {
    if (turn.endReason === null && turn.phase === 'playback') {
      this.#close(turn, turn.finalStatus ?? 'completed', Math.max(turn.lastAt, Math.min(now, turn.playbackEndAt ?? now)));
    } else {
      this.#close(turn, turn.endReason ?? reason, turn.endReason === null ? now : turn.lastAt);
    }
  }

  /**
   * More than MAX_OPEN_TURNS are open (`added` just opened). The oldest turn that waits on no
   * running response (not the current one) makes room: one only waiting for its playback ends with
   * its outcome, any other as at its cap (`timeout`). Turns whose responses still run (parallel
   * out-of-band requests) are bounded by MAX_RUNNING, the bound on running responses: only past it
   * is the oldest of them given up (`timeout`, its response counted with what is known). Until
   * 2026-12-06 the 33rd response.created closed a running turn as `timeout`, so 40 parallel
   * out-of-band requests reported 8 timeouts.
   */
  #makeRoom(added: TurnRecord, now: number): void {
    let oldestRunning: TurnRecord | null = null;
    for (const t of this.#open) {
      if (t === this.#current || t === added) continue;
      if (!this.#activeIn(t)) {
        this.#closeEarly(t, 'timeout', now);
        return;
      }
      oldestRunning ??= t;
    }
    if (oldestRunning !== null && this.#open.length > MAX_RUNNING) this.#closeEarly(oldestRunning, 'timeout', now);
  }

  /** The session is over: every open turn closes; a turn only waiting for playback counts as done. */
  close(now: number): void {
    if (this.#closed) return;
    for (const turn of [...this.#open]) this.#closeEarly(turn, 'session_closed', now);
    this.#closed = true;
    this.#createInChain = null;
    this.#sentCreates.clear();
    this.#running.clear();
    this.#doneResponses.clear();
    this.#tools.clear();
    this.#items.clear();
    this.#usageEarly.clear();
    this.#firstAudioEarly.clear();
  }

  #event(turn: TurnRecord, name: string, t: number, attrs?: Attributes): void {
    pushEvent(turn.events, attrs ? { name, t, attrs } : { name, t });
  }
}
