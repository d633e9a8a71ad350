import { performance } from 'node:perf_hooks';
import type { ConversationItem, RealtimeResponseUsage, RealtimeToolsConfigUnion } from 'openai/resources/realtime/realtime';
import type { RawData, WebSocket } from 'ws';
import { bytesPerMs, decodeAudio, hashString, sampleRateOf, type AudioFormatKind } from './audio.js';
import { defaultBrain, type Brain, type BrainReply, type ResponseParams } from './brain.js';
import { invalidType, invalidValue, missingParameter, SimError, unknownParameter } from './errors.js';
import type { HeldBytes } from './held-bytes.js';
import { audioMsOf, withAudio, type PartAudio, type SimItem } from './items.js';
import { notifySent } from './observe.js';
import { chunkBase64, planSpeechSliced, splitArguments, splitWords, withinModelMax, type SpeechPlan } from './output.js';
import {
  applySessionUpdate,
  formatKind,
  isObject,
  parseFormat,
  parseMaxOutputTokens,
  parseModalities,
  parsePrompt,
  parseReasoning,
  parseToolChoice,
  parseTools,
  parseVoice,
  type AudioFormat,
  type RealtimeSessionState,
  type SessionState,
} from './session.js';
import type { ReceivedEvent, SentEvent, SimConnection, SimulatorTiming } from './types.js';
import {
  assistantAudioTokens,
  buildUsage,
  cachedSplit,
  commonPrefix,
  itemSegment,
  sumTokens,
  systemSegment,
  textTokens,
  userAudioTokens,
  type Segment,
  type Tokens,
} from './usage.js';
import { Vad, type VadEvent } from './vad.js';
import { newId, type ServerEvent, type Wire, type WireEvent } from './wire.js';

/** Client event types the GA WebSocket endpoint accepts (the list an `invalid_value` error names). */
export const ACCEPTED_CLIENT_TYPES: readonly string[] = [
  'session.update',
  'input_audio_buffer.append',
  'input_audio_buffer.commit',
  'input_audio_buffer.clear',
  'conversation.item.create',
  'conversation.item.retrieve',
  'conversation.item.truncate',
  'conversation.item.delete',
  'response.create',
  'response.cancel',
  'session.close',
  'session.input_audio_buffer.append',
];

const BACKPRESSURE_BYTES = 1 << 20;
/** Realtime pacing stays this far ahead of playback, as the live service does, so clients never starve. */
const REALTIME_LEAD_MS = 250;
const RATE_LIMIT_TOKENS = 2_000_000;

/**
 * What one connection's conversation may hold (its items' JSON and audio), and its input audio buffer
 * apart: past it the oldest items are forgotten (the oldest audio dropped), as a server keeping a
 * bounded context would. The embedded simulator runs in the proxy's process: until 2026-12-07 a
 * session kept every item it was sent, and without turn detection every byte appended, for as long
 * as it lasted (test/security/redteam-23-simulator-history.test.ts).
 */
export const MAX_CONVERSATION_BYTES = 64 * 1024 * 1024;
export const MAX_INPUT_AUDIO_BYTES = 64 * 1024 * 1024;

/** Bytes an item holds: its wire JSON and its audio. */
function itemBytes(item: SimItem): number {
  let bytes = JSON.stringify(item.wire).length;
  for (const a of item.audio) if (a) bytes += a.bytes.length;
  return bytes;
}

/** Transcription models priced per minute of audio: their usage is `{type: "duration", seconds}`. */
const DURATION_BILLED_TRANSCRIBERS: ReadonlySet<string> = new Set(['whisper-1', 'gpt-realtime-whisper', 'gpt-live-transcribe']);

export interface ConnectionSettings {
  readonly timing: Required<SimulatorTiming>;
  readonly brain: Brain;
  readonly transcribe: (input: { itemId: string; audioMs: number }) => string;
  readonly pingIntervalMs: number;
  readonly recordAudio: boolean;
  /** Keep `received` and `sent` (SimulatorOptions.keepHistory). */
  readonly keepHistory: boolean;
  /** Session lifetime; OpenAI ends GA sessions after 60 min. 0 disables. */
  readonly maxSessionMs: number;
  /** What the simulator's sessions hold together (heldBytes), shared by every connection. */
  readonly held: HeldBytes;
}

interface ActiveResponse {
  readonly id: string;
  readonly params: ResponseParams;
  readonly conversationId: string | null;
  readonly format: AudioFormat;
  readonly inputTokens: Tokens;
  readonly cached: Tokens;
  readonly inputSegments: Segment[];
  readonly usageOverride: RealtimeResponseUsage | null;
  finished: boolean;
  item: SimItem | null;
  itemOpen: boolean;
  partOpen: boolean;
  /** What has been emitted so far: the basis of the final item and of partial usage. */
  emittedText: string;
  emittedBytes: number;
  speech: SpeechPlan | null;
  /** Audio bytes this response may emit (less than the plan when `max_output_tokens` cuts it). */
  audioEnd: number;
  callId: string | null;
  callName: string | null;
}

type Json = Record<string, unknown>;

/** One simulated Realtime session on one WebSocket. */
export class Connection implements SimConnection {
  readonly id = newId('simconn', 12);
  readonly headers: Readonly<Record<string, string>>;
  readonly url: string;
  readonly received: ReceivedEvent[] = [];
  readonly sent: SentEvent[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  /** Bytes its conversation (settled items) and its input audio buffer hold. */
  get heldBytes(): number {
    return this.#conversationBytes + this.#inputBytes;
  }

  #ws: WebSocket;
  #settings: ConnectionSettings;
  #brain: Brain;
  #session: SessionState | null = null;
  #items: SimItem[] = [];
  /** Each settled item's bytes (itemBytes) and their sum, bounded by MAX_CONVERSATION_BYTES. */
  readonly #itemBytes = new Map<SimItem, number>();
  #conversationBytes = 0;
  /** heldBytes as last counted in the simulator's shared budget (settings.held; #account). */
  #counted = 0;
  readonly #conversationId = newId('conv');
  #isClosed = false;
  #frozen = false;
  #dropAfter: number | null = null;
  #voiceLocked = false;
  #cacheSegments: Segment[] = [];
  #rateLimitUsed = 0;
  #rateLimitAt = performance.now();

  // Input audio buffer: wire bytes since the last commit/clear, and the audio clock.
  #input: Buffer[] = [];
  #inputBytes = 0;
  #inputStartMs = 0;
  #audioPosMs = 0;
  #inputKind: AudioFormatKind = 'pcm';
  #vad: Vad | null = null;
  #speechItemId: string | null = null;
  #speechStartMs = 0;
  #pendingVadResponse = false;

  #active: ActiveResponse | null = null;
  #outOfBand = new Set<ActiveResponse>();
  #timers = new Set<NodeJS.Timeout>();
  #pingTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #expiryTimer: NodeJS.Timeout | null = null;
  /** MCP servers of the session by label: the tool names they listed (while their list item is in the conversation: #forget). */
  #mcpServers = new Map<string, string[]>();

  constructor(ws: WebSocket, headers: Record<string, string>, url: string, settings: ConnectionSettings) {
    this.#ws = ws;
    this.headers = headers;
    this.url = url;
    this.#settings = settings;
    this.#brain = settings.brain;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#teardown();
        resolve({ code, reason: reason.toString('utf8') });
      });
    });
    ws.on('error', () => {
      // A reset socket also emits 'close'; nothing else to do.
    });
  }

  // ---- SimConnection ----

  setBrain(b: Brain): void {
    this.#brain = b;
  }

  drop(): void {
    this.#teardown();
    this.#ws.terminate();
  }

  closeWith(code: number, reason: string): void {
    this.#teardown();
    this.#ws.close(code, reason);
  }

  freeze(): void {
    this.#frozen = true;
    this.#stopTimers();
    this.#ws.pause();
  }

  /** End the session the way OpenAI does at its maximum duration: `session_expired`, then close 1001. */
  expire(): void {
    if (this.#isClosed) return;
    const minutes = Math.round(this.#settings.maxSessionMs / 60_000);
    const message = `Your session hit the maximum duration of ${minutes} minutes.`;
    this.#send({ type: 'error', event_id: newId('event'), error: { type: 'invalid_request_error', code: 'session_expired', message, param: null, event_id: null } });
    this.#teardown();
    this.#ws.close(1001, message);
  }

  dropAfterDeltas(n: number): void {
    this.#dropAfter = n;
    if (n <= 0) this.drop();
  }

  // ---- lifecycle ----

  /** Refuse the session after the upgrade, the way OpenAI does: `error`, then a close frame. */
  refuse(code: string | null, message: string, closeCode: number, closeReason: string): void {
    this.#send({ type: 'error', event_id: newId('event'), error: { type: 'invalid_request_error', code, message, param: null, event_id: null } });
    this.#isClosed = true;
    this.#ws.close(closeCode, closeReason);
  }

  start(session: SessionState): void {
    this.#session = session;
    this.#inputKind = formatKind(session.audio.input.format);
    this.#configureVad();
    this.#ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    if (this.#settings.pingIntervalMs > 0) {
      this.#pingTimer = setInterval(() => {
        if (!this.#frozen && !this.#isClosed) this.#ws.ping(Buffer.alloc(4));
      }, this.#settings.pingIntervalMs);
      this.#pingTimer.unref();
    }
    if (this.#settings.maxSessionMs > 0) {
      this.#expiryTimer = setTimeout(() => this.expire(), this.#settings.maxSessionMs);
      this.#expiryTimer.unref();
    }
    this.#send({ type: 'session.created', event_id: newId('event'), session } satisfies WireEvent<'session.created'>);
  }

  #teardown(): void {
    this.#isClosed = true;
    this.#stopTimers();
    if (this.#active) this.#active.finished = true;
    for (const r of this.#outOfBand) r.finished = true;
    // Its bytes leave the shared budget with it (the connection itself goes once nothing lists it).
    this.#account();
  }

  /**
   * Brings the simulator's shared budget (settings.held) up to date with heldBytes. Growth that takes
   * it past the budget ends the sessions holding the most (HeldBytes.makeRoom), this one or others,
   * as OpenAI ends a session it cannot serve: an `error` (server_error, `session_memory_exceeded`),
   * then close 1011; the others go on, with room again.
   */
  #account(): void {
    const held = this.#isClosed ? 0 : this.heldBytes;
    const grew = held > this.#counted;
    const delta = held - this.#counted;
    this.#counted = held;
    this.#settings.held.change(this, delta, held);
    if (grew) this.#settings.held.makeRoom(this);
  }

  /** heldBytes as last counted in the shared budget (HeldBytes). */
  get counted(): number {
    return this.#counted;
  }

  /** This session holds the most of a budget gone past: it ends. */
  endOverBudget(): void {
    if (this.#isClosed) return;
    const message = `The server holds at most ${this.#settings.held.max} bytes of conversation and input audio across its sessions; past it, the session holding the most is ended: this one.`;
    this.#send({ type: 'error', event_id: newId('event'), error: { type: 'server_error', code: 'session_memory_exceeded', message, param: null, event_id: null } });
    this.#teardown();
    this.#ws.close(1011, 'session_memory_exceeded');
  }

  #stopTimers(): void {
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    this.#pingTimer = null;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = null;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#isClosed && !this.#frozen) fn();
    }, ms);
    this.#timers.add(t);
  }

  get #live(): boolean {
    return !this.#isClosed && !this.#frozen;
  }

  // ---- sending ----

  #send(event: ServerEvent, responseId: string | null = null, written?: () => void): void {
    if (this.#isClosed || this.#frozen) return;
    this.#ws.send(JSON.stringify(event), written);
    if (this.#settings.keepHistory) this.sent.push({ t: performance.now(), type: event.type, responseId });
    notifySent(event);
  }

  #error(err: SimError, clientEventId: string | null): void {
    this.#send({
      type: 'error',
      event_id: newId('event'),
      error: { type: err.type, code: err.code, message: err.message, param: err.param, event_id: clientEventId },
    } satisfies WireEvent<'error'>);
  }

  // ---- receiving ----

  #onMessage(data: RawData, isBinary: boolean): void {
    if (!this.#live) return;
    const t = performance.now();
    if (isBinary) {
      this.#error(new SimError('invalid_event', 'Expected a text WebSocket message, but received a binary message.'), null);
      return;
    }
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(new Uint8Array(data)).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      const detail = err instanceof Error ? err.message : 'parse error';
      this.#error(new SimError('invalid_json', `We could not parse the JSON body of your request. (${detail})`), null);
      return;
    }
    if (!isObject(parsed)) {
      this.#error(new SimError('invalid_event', 'The event must be a JSON object.'), null);
      return;
    }
    const eventId = typeof parsed['event_id'] === 'string' ? parsed['event_id'] : null;
    const type = parsed['type'];
    this.#record(t, typeof type === 'string' ? type : '', parsed);
    if (type === undefined) {
      this.#error(new SimError('invalid_event', "The 'type' field is missing.", 'type'), eventId);
      return;
    }
    if (typeof type !== 'string') {
      this.#error(new SimError('invalid_event', invalidType('type', 'a string', type).message, 'type'), eventId);
      return;
    }
    if (!ACCEPTED_CLIENT_TYPES.includes(type)) {
      this.#error(invalidValue('type', type, ACCEPTED_CLIENT_TYPES), eventId);
      return;
    }
    try {
      this.#dispatch(type, parsed, eventId);
    } catch (err) {
      // A simulator bug must not kill the process that embeds it: report it like a 500.
      this.#error(err instanceof SimError ? err : new SimError('server_error', `The simulator failed to process the event: ${describeError(err)}`, null, 'server_error'), eventId);
    }
    // An append, an item, a commit: what the session holds may have grown.
    this.#account();
  }

  #record(t: number, type: string, event: Json): void {
    if (!this.#settings.keepHistory) return;
    if (type === 'input_audio_buffer.append' && !this.#settings.recordAudio) {
      const audio = event['audio'];
      this.received.push({ t, type, event: { type, event_id: event['event_id'], audio_length: typeof audio === 'string' ? audio.length : 0 } });
      return;
    }
    this.received.push({ t, type, event });
  }

  #dispatch(type: string, e: Json, eventId: string | null): void {
    switch (type) {
      case 'session.update':
        return this.#onSessionUpdate(e);
      case 'input_audio_buffer.append':
        return this.#onAppend(e);
      case 'input_audio_buffer.commit':
        return this.#onCommit();
      case 'input_audio_buffer.clear':
        return this.#onClear();
      case 'conversation.item.create':
        return this.#onItemCreate(e);
      case 'conversation.item.retrieve':
        return this.#onItemRetrieve(e);
      case 'conversation.item.truncate':
        return this.#onItemTruncate(e);
      case 'conversation.item.delete':
        return this.#onItemDelete(e);
      case 'response.create':
        return this.#onResponseCreate(e);
      case 'response.cancel':
        return this.#onResponseCancel(e);
      case 'session.close':
        this.#teardown();
        this.#ws.close(1000, '');
        return;
      default:
        throw new SimError('invalid_event', `'${type}' is only supported in translation sessions.`, 'type');
    }
  }

  #realtime(): RealtimeSessionState {
    const s = this.#session;
    if (s?.type !== 'realtime') throw new SimError('invalid_value', 'This event is not supported in transcription sessions.', 'type');
    return s;
  }

  // ---- session ----

  #onSessionUpdate(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'session']);
    const next = applySessionUpdate(this.#session!, e['session'], { voiceLocked: this.#voiceLocked });
    this.#session = next;
    const kind = formatKind(next.audio.input.format);
    if (kind !== this.#inputKind) {
      // A new input format starts a fresh buffer: bytes of two encodings cannot be mixed.
      this.#inputKind = kind;
      this.#resetInput();
    }
    this.#configureVad();
    this.#send({ type: 'session.updated', event_id: newId('event'), session: next } satisfies WireEvent<'session.updated'>);
    if (next.type === 'realtime') for (const tool of next.tools) if (tool.type === 'mcp' && !this.#mcpServers.has(tool.server_label)) this.#listMcpTools(tool);
  }

  /**
   * A new MCP server in the session: OpenAI lists its tools into an `mcp_list_tools` item. The
   * simulated server offers the `allowed_tools` names (default `echo`); one it cannot reach (no
   * `server_url` nor `connector_id`) fails.
   */
  #listMcpTools(tool: Extract<RealtimeToolsConfigUnion, { type: 'mcp' }>): void {
    const names: string[] = Array.isArray(tool.allowed_tools) ? tool.allowed_tools : ['echo'];
    const reachable = typeof tool.server_url === 'string' || typeof tool.connector_id === 'string';
    this.#mcpServers.set(tool.server_label, reachable ? names : []);
    const itemId = newId('item');
    const item: SimItem = { id: itemId, wire: { id: itemId, type: 'mcp_list_tools', server_label: tool.server_label, tools: [] }, audio: [null], version: 0 };
    const previous = this.#lastItemId();
    this.#items.push(item);
    this.#emitItemAdded(item, previous);
    this.#send({ type: 'mcp_list_tools.in_progress', event_id: newId('event'), item_id: itemId } satisfies WireEvent<'mcp_list_tools.in_progress'>);
    this.#later(0, () => {
      if (reachable) item.wire = { id: itemId, type: 'mcp_list_tools', server_label: tool.server_label, tools: names.map((name) => ({ name, description: `Simulated MCP tool ${name}`, input_schema: { type: 'object' } })) };
      // Settled (counted within MAX_CONVERSATION_BYTES, its label too) unless the client deleted it
      // meanwhile: until the twenty-third red-team pass a list was never counted nor forgotten, and new
      // servers with megabytes of tool names (or of label) grew a session without bound
      // (test/security/redteam-23b-simulator-mcp-lists.test.ts).
      if (this.#indexOf(itemId) >= 0) this.#settled(item);
      if (!reachable) {
        this.#send({ type: 'mcp_list_tools.failed', event_id: newId('event'), item_id: itemId } satisfies WireEvent<'mcp_list_tools.failed'>);
        return;
      }
      this.#send({ type: 'mcp_list_tools.completed', event_id: newId('event'), item_id: itemId } satisfies WireEvent<'mcp_list_tools.completed'>);
      this.#emitItemDone(item, previous);
    });
  }

  #configureVad(): void {
    const td = this.#session!.audio.input.turn_detection;
    if (!td) {
      this.#vad = null;
      this.#speechItemId = null;
      return;
    }
    if (this.#vad) this.#vad.configure(td);
    else this.#vad = new Vad(td, sampleRateOf(this.#inputKind), this.#audioPosMs);
  }

  // ---- input audio ----

  #resetInput(): void {
    this.#input = [];
    this.#inputBytes = 0;
    this.#inputStartMs = this.#audioPosMs;
    this.#speechItemId = null;
    if (this.#vad) this.#vad = new Vad(this.#session!.audio.input.turn_detection!, sampleRateOf(this.#inputKind), this.#audioPosMs);
  }

  #onAppend(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'audio']);
    const audio = e['audio'];
    if (audio === undefined) throw missingParameter('audio');
    if (typeof audio !== 'string') throw invalidType('audio', 'a string', audio);
    const bytes = Buffer.from(audio, 'base64');
    if (bytes.length === 0) return;
    this.#input.push(bytes);
    this.#inputBytes += bytes.length;
    this.#audioPosMs += bytes.length / bytesPerMs(this.#inputKind);
    // Without turn detection nothing commits it: the oldest audio goes past the bound.
    while (this.#inputBytes > MAX_INPUT_AUDIO_BYTES && this.#input.length > 1) {
      const dropped = this.#input.shift()!;
      this.#inputBytes -= dropped.length;
      this.#inputStartMs += dropped.length / bytesPerMs(this.#inputKind);
    }
    if (!this.#vad) return;
    const events = this.#vad.push(decodeAudio(bytes, this.#inputKind));
    for (const ev of events) this.#onVad(ev);
    if (!this.#vad.speaking) this.#trimIdleInput();
  }

  /** Without speech in progress, keep only the recent audio that a prefix pad could need. */
  #trimIdleInput(): void {
    const keepMs = 1000;
    const bufferedMs = this.#inputBytes / bytesPerMs(this.#inputKind);
    if (bufferedMs < 4000) return;
    const all = Buffer.concat(this.#input);
    const keepBytes = alignBytes(keepMs * bytesPerMs(this.#inputKind), this.#inputKind);
    const tail = Buffer.from(all.subarray(all.length - keepBytes));
    this.#input = [tail];
    this.#inputBytes = tail.length;
    this.#inputStartMs = this.#audioPosMs - tail.length / bytesPerMs(this.#inputKind);
  }

  #onVad(ev: VadEvent): void {
    const td = this.#session!.audio.input.turn_detection;
    if (!td) return;
    // OpenAI's audio_start_ms includes the prefix padding (the item's audio starts there); its
    // audio_end_ms includes the silence window (true end of speech = audio_end_ms − silence).
    const padMs = td.type === 'server_vad' ? td.prefix_padding_ms : 300;
    if (ev.type === 'started') {
      this.#clearIdleTimer();
      this.#speechItemId = newId('item');
      this.#speechStartMs = Math.max(this.#inputStartMs, ev.ms - padMs, 0);
      this.#send({ type: 'input_audio_buffer.speech_started', event_id: newId('event'), audio_start_ms: Math.round(this.#speechStartMs), item_id: this.#speechItemId } satisfies WireEvent<'input_audio_buffer.speech_started'>);
      if (td.interrupt_response && this.#active) this.#finish(this.#active, 'cancelled', 'turn_detected');
      return;
    }
    const itemId = this.#speechItemId ?? newId('item');
    this.#speechItemId = null;
    this.#send({ type: 'input_audio_buffer.speech_stopped', event_id: newId('event'), audio_end_ms: Math.round(ev.ms), item_id: itemId } satisfies WireEvent<'input_audio_buffer.speech_stopped'>);
    const bytes = this.#takeInput(this.#speechStartMs, ev.ms);
    this.#commitAudio(bytes, itemId);
    if (td.create_response && this.#session!.type === 'realtime') {
      if (this.#active) this.#pendingVadResponse = true;
      else this.#createResponse({}, 'vad');
    }
  }

  /** Remove and return the buffered audio between two session-clock times; later audio stays. */
  #takeInput(fromMs: number, toMs: number): Buffer {
    const perMs = bytesPerMs(this.#inputKind);
    const all = Buffer.concat(this.#input);
    const start = alignBytes(Math.max(0, (fromMs - this.#inputStartMs) * perMs), this.#inputKind);
    const end = Math.min(all.length, Math.max(start, alignBytes((toMs - this.#inputStartMs) * perMs, this.#inputKind)));
    const taken = Buffer.from(all.subarray(start, end));
    const rest = Buffer.from(all.subarray(end));
    this.#input = rest.length > 0 ? [rest] : [];
    this.#inputBytes = rest.length;
    this.#inputStartMs += end / perMs;
    return taken;
  }

  #onCommit(): void {
    const ms = this.#inputBytes / bytesPerMs(this.#inputKind);
    if (ms < 100) {
      throw new SimError(
        'input_audio_buffer_commit_empty',
        `Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has ${ms.toFixed(2)}ms of audio.`,
      );
    }
    const itemId = this.#speechItemId ?? newId('item');
    const bytes = Buffer.concat(this.#input);
    this.#resetInput();
    this.#commitAudio(bytes, itemId);
  }

  #onClear(): void {
    this.#resetInput();
    this.#send({ type: 'input_audio_buffer.cleared', event_id: newId('event') } satisfies WireEvent<'input_audio_buffer.cleared'>);
  }

  #commitAudio(bytes: Buffer, itemId: string): SimItem {
    const previous = this.#lastItemId();
    this.#send({ type: 'input_audio_buffer.committed', event_id: newId('event'), previous_item_id: previous, item_id: itemId } satisfies WireEvent<'input_audio_buffer.committed'>);
    const ms = bytes.length / bytesPerMs(this.#inputKind);
    const item: SimItem = {
      id: itemId,
      wire: { id: itemId, object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] },
      audio: [{ bytes, kind: this.#inputKind, ms }],
      version: 0,
    };
    this.#items.push(item);
    this.#settled(item);
    this.#emitItemAdded(item, previous);
    this.#emitItemDone(item, previous);
    const transcription = this.#session!.audio.input.transcription;
    if (transcription) this.#scheduleTranscription(item, ms, transcription.prompt ?? '', transcription.model ?? '');
    return item;
  }

  #scheduleTranscription(item: SimItem, ms: number, prompt: string, model: string): void {
    let transcript: string;
    try {
      transcript = this.#settings.transcribe({ itemId: item.id, audioMs: ms });
    } catch (err) {
      // A transcriber that fails: OpenAI reports it on the item and the session goes on.
      const fail = (): void => {
        if (!this.#live) return;
        this.#send({
          type: 'conversation.item.input_audio_transcription.failed',
          event_id: newId('event'),
          item_id: item.id,
          content_index: 0,
          error: { type: 'transcription_error', code: 'audio_unintelligible', message: `Audio could not be transcribed: ${describeError(err)}`, param: null },
        } satisfies WireEvent<'conversation.item.input_audio_transcription.failed'>);
      };
      const delayMs = this.#settings.timing.transcriptionDelayMs;
      if (delayMs > 0) this.#later(delayMs, fail);
      else setImmediate(fail);
      return;
    }
    const words = splitWords(transcript);
    const steps: Array<() => void> = words.map((delta) => () => {
      this.#send({ type: 'conversation.item.input_audio_transcription.delta', event_id: newId('event'), item_id: item.id, content_index: 0, delta } satisfies WireEvent<'conversation.item.input_audio_transcription.delta'>);
    });
    steps.push(() => {
      const part = item.wire.type === 'message' ? item.wire.content[0] : undefined;
      if (part && 'transcript' in part) part.transcript = transcript;
      else if (part) Object.assign(part, { transcript });
      const audioTokens = userAudioTokens(ms);
      const textIn = textTokens(prompt);
      const out = textTokens(transcript);
      this.#send({
        type: 'conversation.item.input_audio_transcription.completed',
        event_id: newId('event'),
        item_id: item.id,
        content_index: 0,
        transcript,
        // Per-minute models (whisper-1 …) report the audio duration, token-priced ones tokens.
        usage: DURATION_BILLED_TRANSCRIBERS.has(model)
          ? { type: 'duration', seconds: Math.round(ms) / 1000 }
          : { type: 'tokens', total_tokens: audioTokens + textIn + out, input_tokens: audioTokens + textIn, input_token_details: { text_tokens: textIn, audio_tokens: audioTokens }, output_tokens: out },
      } satisfies WireEvent<'conversation.item.input_audio_transcription.completed'>);
    });
    // Transcription runs beside the response: its events interleave with response events.
    const run = (i: number): void => {
      if (!this.#live || i >= steps.length) return;
      steps[i]!();
      setImmediate(() => run(i + 1));
    };
    const delayMs = this.#settings.timing.transcriptionDelayMs;
    if (delayMs > 0) this.#later(delayMs, () => run(0));
    else setImmediate(() => run(0));
  }

  // ---- conversation ----

  #lastItemId(): string | null {
    return this.#items.length > 0 ? this.#items[this.#items.length - 1]!.id : null;
  }

  #indexOf(id: string): number {
    return this.#items.findIndex((i) => i.id === id);
  }

  #emitItemAdded(item: SimItem, previous: string | null): void {
    this.#send({ type: 'conversation.item.added', event_id: newId('event'), previous_item_id: previous, item: item.wire } satisfies WireEvent<'conversation.item.added'>);
  }

  #emitItemDone(item: SimItem, previous: string | null, responseId: string | null = null): void {
    this.#send({ type: 'conversation.item.done', event_id: newId('event'), previous_item_id: previous, item: item.wire } satisfies WireEvent<'conversation.item.done'>, responseId);
  }

  /**
   * Counts a settled item of the conversation (again, after it changed), then forgets the oldest
   * items past MAX_CONVERSATION_BYTES: never the item itself, nor one a response is still writing.
   */
  #settled(item: SimItem): void {
    const bytes = itemBytes(item);
    this.#conversationBytes += bytes - (this.#itemBytes.get(item) ?? 0);
    this.#itemBytes.set(item, bytes);
    for (let i = 0; this.#conversationBytes > MAX_CONVERSATION_BYTES && i < this.#items.length; ) {
      const oldest = this.#items[i]!;
      if (oldest === item || !this.#itemBytes.has(oldest)) {
        i++;
        continue;
      }
      this.#items.splice(i, 1);
      this.#forget(oldest);
    }
    // A response's items settle without a client event: counted here too.
    this.#account();
  }

  /**
   * An item left the conversation: its bytes no longer count. A server's tool list takes the server's
   * names with it (they are the list's: the server is listed again when a session.update names it).
   */
  #forget(item: SimItem): void {
    this.#conversationBytes -= this.#itemBytes.get(item) ?? 0;
    this.#itemBytes.delete(item);
    if (item.wire.type === 'mcp_list_tools') this.#mcpServers.delete(item.wire.server_label);
  }

  #onItemCreate(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'item', 'previous_item_id']);
    const item = this.#parseItem(e['item'], 'item');
    if (this.#indexOf(item.id) >= 0) throw new SimError('duplicate_item_id', `Item with id '${item.id}' already exists.`, 'item.id');
    const prev = e['previous_item_id'];
    let index: number;
    if (prev === undefined || prev === null) index = this.#items.length;
    else if (prev === 'root') index = 0;
    else {
      if (typeof prev !== 'string') throw invalidType('previous_item_id', 'a string', prev);
      const at = this.#indexOf(prev);
      if (at < 0) throw new SimError('item_not_found', `Previous item with id '${prev}' not found.`, 'previous_item_id');
      index = at + 1;
    }
    this.#items.splice(index, 0, item);
    const previous = index > 0 ? this.#items[index - 1]!.id : null;
    this.#settled(item);
    this.#emitItemAdded(item, previous);
    this.#emitItemDone(item, previous);
  }

  #parseItem(raw: unknown, path: string): SimItem {
    if (raw === undefined) throw missingParameter(path);
    if (!isObject(raw)) throw invalidType(path, 'an object', raw);
    const idRaw = raw['id'];
    if (idRaw !== undefined && (typeof idRaw !== 'string' || idRaw.length === 0 || idRaw.length > 32)) {
      throw new SimError('invalid_value', `Invalid '${path}.id': must be a string of at most 32 characters.`, `${path}.id`);
    }
    const id = typeof idRaw === 'string' ? idRaw : newId('item');
    const type = raw['type'];
    const base = { id, object: 'realtime.item' as const };
    if (type === 'function_call_output') {
      checkEventKeys(raw, ['id', 'type', 'object', 'status', 'call_id', 'output'], path);
      if (raw['call_id'] === undefined) throw missingParameter(`${path}.call_id`);
      if (typeof raw['call_id'] !== 'string') throw invalidType(`${path}.call_id`, 'a string', raw['call_id']);
      if (raw['output'] === undefined) throw missingParameter(`${path}.output`);
      if (typeof raw['output'] !== 'string') throw invalidType(`${path}.output`, 'a string', raw['output']);
      return { id, wire: { ...base, type: 'function_call_output', status: 'completed', call_id: raw['call_id'], output: raw['output'] }, audio: [null], version: 0 };
    }
    if (type === 'function_call') {
      checkEventKeys(raw, ['id', 'type', 'object', 'status', 'call_id', 'name', 'arguments'], path);
      if (typeof raw['name'] !== 'string') throw raw['name'] === undefined ? missingParameter(`${path}.name`) : invalidType(`${path}.name`, 'a string', raw['name']);
      if (typeof raw['arguments'] !== 'string') throw raw['arguments'] === undefined ? missingParameter(`${path}.arguments`) : invalidType(`${path}.arguments`, 'a string', raw['arguments']);
      const callId = typeof raw['call_id'] === 'string' ? raw['call_id'] : newId('call', 16);
      return { id, wire: { ...base, type: 'function_call', status: 'completed', name: raw['name'], call_id: callId, arguments: raw['arguments'] }, audio: [null], version: 0 };
    }
    if (type === 'message') {
      checkEventKeys(raw, ['id', 'type', 'object', 'status', 'role', 'content'], path);
      const role = raw['role'];
      if (role !== 'user' && role !== 'assistant' && role !== 'system') {
        throw role === undefined ? missingParameter(`${path}.role`) : invalidValue(`${path}.role`, role, ['user', 'assistant', 'system']);
      }
      const content = raw['content'];
      if (!Array.isArray(content)) throw content === undefined ? missingParameter(`${path}.content`) : invalidType(`${path}.content`, 'an array', content);
      const allowed = role === 'user' ? ['input_text', 'input_audio', 'input_image'] : role === 'system' ? ['input_text'] : ['output_text', 'output_audio'];
      const audio: Array<PartAudio | null> = [];
      const parts = content.map((p: unknown, i) => {
        const pp = `${path}.content[${i}]`;
        if (!isObject(p)) throw invalidType(pp, 'an object', p);
        const ptype = p['type'];
        if (typeof ptype !== 'string' || !allowed.includes(ptype)) throw invalidValue(`${pp}.type`, ptype, allowed);
        if (ptype === 'output_audio') {
          throw new SimError('invalid_value', 'Assistant messages with audio content cannot be created.', `${pp}.type`);
        }
        if (ptype === 'input_text' || ptype === 'output_text') {
          checkEventKeys(p, ['type', 'text'], pp);
          if (typeof p['text'] !== 'string') throw p['text'] === undefined ? missingParameter(`${pp}.text`) : invalidType(`${pp}.text`, 'a string', p['text']);
          audio.push(null);
          return { type: ptype, text: p['text'] };
        }
        if (ptype === 'input_image') {
          checkEventKeys(p, ['type', 'image_url', 'detail'], pp);
          if (typeof p['image_url'] !== 'string') throw missingParameter(`${pp}.image_url`);
          const detail = p['detail'] ?? 'auto';
          if (detail !== 'auto' && detail !== 'low' && detail !== 'high') throw invalidValue(`${pp}.detail`, detail, ['auto', 'low', 'high']);
          audio.push(null);
          return { type: ptype, image_url: p['image_url'], detail };
        }
        checkEventKeys(p, ['type', 'audio', 'transcript'], pp);
        const b64 = p['audio'];
        if (b64 !== undefined && typeof b64 !== 'string') throw invalidType(`${pp}.audio`, 'a string', b64);
        const transcript = p['transcript'];
        if (transcript !== undefined && transcript !== null && typeof transcript !== 'string') throw invalidType(`${pp}.transcript`, 'a string', transcript);
        if (typeof b64 === 'string') {
          const bytes = Buffer.from(b64, 'base64');
          audio.push({ bytes, kind: this.#inputKind, ms: bytes.length / bytesPerMs(this.#inputKind) });
        } else audio.push(null);
        return { type: ptype, transcript: typeof transcript === 'string' ? transcript : null };
      });
      const common = { ...base, type: 'message' as const, status: 'completed' as const };
      const wire: Wire<ConversationItem> =
        role === 'user'
          ? { ...common, role, content: parts as Wire<Extract<ConversationItem, { role: 'user' }>>['content'] }
          : role === 'system'
            ? { ...common, role, content: parts as Wire<Extract<ConversationItem, { role: 'system' }>>['content'] }
            : { ...common, role, content: parts as Wire<Extract<ConversationItem, { role: 'assistant' }>>['content'] };
      return { id, wire, audio, version: 0 };
    }
    if (type === undefined) throw missingParameter(`${path}.type`);
    throw invalidValue(`${path}.type`, type, ['message', 'function_call', 'function_call_output']);
  }

  #requireItemId(e: Json): { id: string; index: number } {
    const id = e['item_id'];
    if (id === undefined) throw missingParameter('item_id');
    if (typeof id !== 'string') throw invalidType('item_id', 'a string', id);
    const index = this.#indexOf(id);
    if (index < 0) throw new SimError('item_not_found', `Item with item_id not found: ${id}`, 'item_id');
    return { id, index };
  }

  #onItemRetrieve(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'item_id']);
    const { index } = this.#requireItemId(e);
    this.#send({ type: 'conversation.item.retrieved', event_id: newId('event'), item: withAudio(this.#items[index]!) } satisfies WireEvent<'conversation.item.retrieved'>);
  }

  #onItemDelete(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'item_id']);
    const { id, index } = this.#requireItemId(e);
    this.#forget(this.#items.splice(index, 1)[0]!);
    this.#send({ type: 'conversation.item.deleted', event_id: newId('event'), item_id: id } satisfies WireEvent<'conversation.item.deleted'>);
  }

  #onItemTruncate(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'item_id', 'content_index', 'audio_end_ms']);
    const { id, index } = this.#requireItemId(e);
    const item = this.#items[index]!;
    const contentIndex = e['content_index'];
    const endMs = e['audio_end_ms'];
    if (typeof contentIndex !== 'number' || !Number.isInteger(contentIndex)) throw contentIndex === undefined ? missingParameter('content_index') : invalidType('content_index', 'an integer', contentIndex);
    if (typeof endMs !== 'number' || !Number.isInteger(endMs)) throw endMs === undefined ? missingParameter('audio_end_ms') : invalidType('audio_end_ms', 'an integer', endMs);
    if (item.wire.type !== 'message' || item.wire.role !== 'assistant') {
      throw new SimError('invalid_value', 'Only assistant messages can be truncated.', 'item_id');
    }
    if (item.wire.status === 'in_progress') throw new SimError('invalid_value', 'Cannot truncate an item that is still in progress.', 'item_id');
    const audio = item.audio[contentIndex];
    const part = item.wire.content[contentIndex];
    if (!audio || !part) throw new SimError('invalid_value', `Content index ${contentIndex} of item ${id} has no audio.`, 'content_index');
    if (endMs < 0) throw new SimError('invalid_value', 'audio_end_ms must be >= 0.', 'audio_end_ms');
    if (endMs > Math.ceil(audio.ms)) {
      throw new SimError('invalid_value', `Audio content of ${Math.round(audio.ms)}ms is already shorter than ${endMs}ms`, 'audio_end_ms');
    }
    const keep = alignBytes(endMs * bytesPerMs(audio.kind), audio.kind);
    const ratio = audio.ms > 0 ? endMs / audio.ms : 0;
    const transcript = part.transcript ?? '';
    part.transcript = transcript.slice(0, Math.floor(transcript.length * Math.min(1, ratio)));
    item.audio[contentIndex] = { bytes: Buffer.from(audio.bytes.subarray(0, keep)), kind: audio.kind, ms: keep / bytesPerMs(audio.kind) };
    item.version++;
    if (this.#itemBytes.has(item)) this.#settled(item);
    this.#send({ type: 'conversation.item.truncated', event_id: newId('event'), item_id: id, content_index: contentIndex, audio_end_ms: endMs } satisfies WireEvent<'conversation.item.truncated'>);
  }

  // ---- responses ----

  #onResponseCreate(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'response']);
    this.#realtime();
    const r = e['response'];
    if (r !== undefined && !isObject(r)) throw invalidType('response', 'an object', r);
    this.#createResponse(r ?? {}, 'client');
  }

  #onResponseCancel(e: Json): void {
    checkEventKeys(e, ['type', 'event_id', 'response_id']);
    const id = e['response_id'];
    if (id !== undefined && typeof id !== 'string') throw invalidType('response_id', 'a string', id);
    let target: ActiveResponse | null = null;
    if (id === undefined) target = this.#active;
    else if (this.#active?.id === id) target = this.#active;
    else for (const r of this.#outOfBand) if (r.id === id) target = r;
    if (!target) {
      throw new SimError(
        'response_cancel_not_active',
        id === undefined ? 'Cancellation failed: no active response found' : `Cancellation failed: response ${id} is not active`,
      );
    }
    this.#finish(target, 'cancelled', 'client_cancelled');
  }

  #createResponse(raw: Json, trigger: ResponseParams['trigger']): void {
    const session = this.#realtime();
    checkEventKeys(raw, ['conversation', 'input', 'instructions', 'tools', 'tool_choice', 'output_modalities', 'max_output_tokens', 'audio', 'metadata', 'prompt', 'reasoning', 'parallel_tool_calls'], 'response');
    const conversation = raw['conversation'] ?? 'auto';
    if (conversation !== 'auto' && conversation !== 'none') throw invalidValue('response.conversation', conversation, ['auto', 'none']);
    let format = session.audio.output.format;
    let voice = session.audio.output.voice;
    if (raw['audio'] !== undefined) {
      const audio = raw['audio'];
      if (!isObject(audio)) throw invalidType('response.audio', 'an object', audio);
      checkEventKeys(audio, ['output'], 'response.audio');
      const out = audio['output'];
      if (out !== undefined) {
        if (!isObject(out)) throw invalidType('response.audio.output', 'an object', out);
        checkEventKeys(out, ['format', 'voice'], 'response.audio.output');
        if (out['format'] !== undefined) format = parseFormat(out['format'], 'response.audio.output.format');
        if (out['voice'] !== undefined) voice = parseVoice(out['voice'], 'response.audio.output.voice');
      }
    }
    const metadata = parseMetadata(raw['metadata']);
    if (typeof raw['instructions'] !== 'undefined' && typeof raw['instructions'] !== 'string') throw invalidType('response.instructions', 'a string', raw['instructions']);
    const tools = raw['tools'] === undefined ? session.tools : parseTools(raw['tools'], 'response.tools');
    const params: ResponseParams = {
      conversation,
      instructions: typeof raw['instructions'] === 'string' ? raw['instructions'] : session.instructions,
      output_modalities: raw['output_modalities'] === undefined ? session.output_modalities : parseModalities(raw['output_modalities'], 'response.output_modalities'),
      max_output_tokens: raw['max_output_tokens'] === undefined ? session.max_output_tokens : parseMaxOutputTokens(raw['max_output_tokens'], 'response.max_output_tokens'),
      tools,
      tool_choice: raw['tool_choice'] === undefined ? session.tool_choice : parseToolChoice(raw['tool_choice'], 'response.tool_choice'),
      voice,
      metadata,
      trigger,
    };
    if (raw['prompt'] !== undefined) parsePrompt(raw['prompt'], 'response.prompt');
    if (raw['reasoning'] !== undefined) parseReasoning(raw['reasoning'], 'response.reasoning');
    const input = raw['input'] === undefined ? this.#items : this.#resolveInput(raw['input']);
    if (conversation === 'auto' && this.#active) {
      throw new SimError(
        'conversation_already_has_active_response',
        `Conversation already has an active response in progress: ${this.#active.id}. Wait until the response is finished before creating a new one.`,
      );
    }
    this.#clearIdleTimer();
    const inputSegments = [systemSegment(params.instructions, JSON.stringify(tools)), ...input.map(itemSegment)];
    const inputTokens = sumTokens(inputSegments);
    const cached = cachedSplit(commonPrefix(inputSegments, this.#cacheSegments));
    const id = newId('resp');
    const reply = this.#ask(input, params, id);
    const resp: ActiveResponse = {
      id,
      params,
      conversationId: conversation === 'auto' ? this.#conversationId : null,
      format,
      inputTokens,
      cached,
      inputSegments,
      usageOverride: 'usage' in reply && reply.usage ? reply.usage : null,
      finished: false,
      item: null,
      itemOpen: false,
      partOpen: false,
      emittedText: '',
      emittedBytes: 0,
      speech: null,
      audioEnd: 0,
      callId: null,
      callName: null,
    };
    if (conversation === 'auto') this.#active = resp;
    else this.#outOfBand.add(resp);
    this.#send({ type: 'response.created', event_id: newId('event'), response: this.#responseObject(resp, 'in_progress', null) } satisfies WireEvent<'response.created'>, id);
    if ('fail' in reply) {
      this.#finish(resp, 'failed', null, { type: reply.fail.type ?? 'server_error', code: reply.fail.code, message: reply.fail.message });
      return;
    }
    this.#run(resp, reply).catch((err: unknown) => {
      this.#finish(resp, 'failed', null, { type: 'server_error', code: 'server_error', message: `The simulator failed: ${describeError(err)}` });
    });
  }

  #ask(input: readonly SimItem[], params: ResponseParams, responseId: string): BrainReply {
    const byId = new Map(input.map((i) => [i.id, i]));
    try {
      return this.#brain({
        items: input.map((i) => structuredClone(i.wire)),
        session: structuredClone(this.#realtime()),
        response: params,
        responseId,
        audioMs: (itemId) => {
          const item = byId.get(itemId) ?? this.#items.find((i) => i.id === itemId);
          return item ? audioMsOf(item) : 0;
        },
      });
    } catch (err) {
      return { fail: { type: 'server_error', code: 'server_error', message: `The brain failed: ${describeError(err)}` } };
    }
  }

  #resolveInput(raw: unknown): SimItem[] {
    if (!Array.isArray(raw)) throw invalidType('response.input', 'an array', raw);
    return raw.map((entry: unknown, i) => {
      if (isObject(entry) && entry['type'] === 'item_reference') {
        const id = entry['id'];
        if (typeof id !== 'string') throw missingParameter(`response.input[${i}].id`);
        const found = this.#items.find((it) => it.id === id);
        if (!found) throw new SimError('item_not_found', `Item with item_id not found: ${id}`, `response.input[${i}].id`);
        return found;
      }
      // Inline items are not added to the conversation; give them a transient id.
      return this.#parseItem(entry, `response.input[${i}]`);
    });
  }

  #responseObject(resp: ActiveResponse, status: 'in_progress' | 'completed' | 'cancelled' | 'incomplete' | 'failed', details: WireEvent<'response.done'>['response']['status_details']): WireEvent<'response.created'>['response'] {
    return {
      object: 'realtime.response',
      id: resp.id,
      status,
      status_details: details,
      output: resp.item ? [resp.item.wire] : [],
      conversation_id: resp.conversationId,
      output_modalities: [...resp.params.output_modalities],
      max_output_tokens: resp.params.max_output_tokens,
      audio: { output: { format: resp.format, voice: resp.params.voice } },
      usage: status === 'in_progress' ? null : this.#usage(resp),
      metadata: resp.params.metadata,
    };
  }

  #usage(resp: ActiveResponse): RealtimeResponseUsage {
    if (resp.usageOverride) return resp.usageOverride;
    let outText = textTokens(resp.emittedText);
    let outAudio = 0;
    if (resp.callId || resp.item?.wire.type === 'mcp_call') outText = textTokens(resp.callName ?? '') + textTokens(resp.emittedText) + 2;
    else if (resp.speech) outAudio = assistantAudioTokens(resp.emittedBytes / bytesPerMs(resp.speech.kind));
    return buildUsage(resp.inputTokens, resp.cached, { text: outText, audio: outAudio });
  }

  async #pause(resp: ActiveResponse, ms: number): Promise<boolean> {
    if (ms > 0) await new Promise<void>((r) => this.#later(ms, r));
    else await new Promise<void>((r) => setImmediate(r));
    while (this.#live && !resp.finished && this.#ws.bufferedAmount > BACKPRESSURE_BYTES) {
      await new Promise<void>((r) => this.#later(5, r));
    }
    return this.#live && !resp.finished;
  }

  async #run(resp: ActiveResponse, reply: Exclude<BrainReply, { fail: unknown }>): Promise<void> {
    const timing = this.#settings.timing;
    const itemId = newId('item');
    const auto = resp.params.conversation === 'auto';
    const previous = auto ? this.#lastItemId() : null;
    const item: SimItem =
      'functionCall' in reply
        ? { id: itemId, wire: { id: itemId, object: 'realtime.item', type: 'function_call', status: 'in_progress', name: reply.functionCall.name, call_id: reply.functionCall.callId ?? newId('call', 16), arguments: '' }, audio: [null], version: 0 }
        : 'mcpCall' in reply
          ? { id: itemId, wire: { id: itemId, type: 'mcp_call', server_label: reply.mcpCall.serverLabel, name: reply.mcpCall.name, arguments: '', approval_request_id: null, error: null, output: null }, audio: [null], version: 0 }
          : { id: itemId, wire: { id: itemId, object: 'realtime.item', type: 'message', status: 'in_progress', role: 'assistant', content: [] }, audio: [], version: 0 };
    resp.item = item;
    resp.itemOpen = true;
    if (auto) this.#items.push(item);
    this.#send({ type: 'response.output_item.added', event_id: newId('event'), response_id: resp.id, output_index: 0, item: item.wire } satisfies WireEvent<'response.output_item.added'>, resp.id);
    if (auto) this.#emitItemAdded(item, previous);

    const limit = resp.params.max_output_tokens;
    if ('functionCall' in reply) {
      const args = reply.functionCall.arguments;
      resp.callId = item.wire.type === 'function_call' ? (item.wire.call_id ?? null) : null;
      resp.callName = reply.functionCall.name;
      if (!(await this.#pause(resp, timing.firstAudioDelayMs))) return;
      for (const delta of splitArguments(args, hashString(args))) {
        this.#send({ type: 'response.function_call_arguments.delta', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, call_id: resp.callId!, delta } satisfies WireEvent<'response.function_call_arguments.delta'>, resp.id);
        resp.emittedText += delta;
        if (!(await this.#pause(resp, timing.deltaIntervalMs))) return;
      }
      this.#finish(resp, 'completed', null);
      return;
    }
    if ('mcpCall' in reply) {
      const args = reply.mcpCall.arguments;
      resp.callName = reply.mcpCall.name;
      if (!(await this.#pause(resp, timing.firstAudioDelayMs))) return;
      for (const delta of splitArguments(args, hashString(args))) {
        this.#send({ type: 'response.mcp_call_arguments.delta', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, delta } satisfies WireEvent<'response.mcp_call_arguments.delta'>, resp.id);
        resp.emittedText += delta;
        if (!(await this.#pause(resp, timing.deltaIntervalMs))) return;
      }
      this.#send({ type: 'response.mcp_call_arguments.done', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, arguments: resp.emittedText } satisfies WireEvent<'response.mcp_call_arguments.done'>, resp.id);
      this.#send({ type: 'response.mcp_call.in_progress', event_id: newId('event'), item_id: itemId, output_index: 0 } satisfies WireEvent<'response.mcp_call.in_progress'>, resp.id);
      if (!(await this.#pause(resp, timing.deltaIntervalMs))) return;
      // The simulated server knows the tools it listed; anything else fails like a real one would.
      const known = this.#mcpServers.get(reply.mcpCall.serverLabel)?.includes(reply.mcpCall.name) ?? false;
      if (item.wire.type === 'mcp_call') {
        item.wire = known
          ? { ...item.wire, arguments: resp.emittedText, output: resp.emittedText }
          : { ...item.wire, arguments: resp.emittedText, error: { type: 'protocol_error', code: -32602, message: `Unknown tool: ${reply.mcpCall.name}` } };
      }
      this.#send({ type: known ? 'response.mcp_call.completed' : 'response.mcp_call.failed', event_id: newId('event'), item_id: itemId, output_index: 0 } satisfies WireEvent<'response.mcp_call.completed' | 'response.mcp_call.failed'>, resp.id);
      this.#finish(resp, 'completed', null);
      return;
    }

    const audioOut = resp.params.output_modalities[0] === 'audio';
    const speed = this.#realtime().audio.output.speed;
    // Past the model's own maximum nothing is emitted, whatever max_output_tokens says: cut before synthesis.
    const emittable = withinModelMax(reply.text, audioOut ? speed : null);
    let text = emittable.text;
    const speech = audioOut ? await planSpeechSliced(text, formatKind(resp.format), resp.params.voice, speed) : null;
    // Cancelled, or the connection gone, while a long answer's speech was synthesized.
    if (!this.#live || resp.finished) return;
    let audioEnd = speech?.bytes.length ?? 0;
    let incomplete = emittable.cut;
    const fullMs = speech?.ms ?? 0;
    const cost = (fraction: number): number => textTokens(text.slice(0, Math.floor(text.length * fraction))) + (audioOut ? assistantAudioTokens(fullMs * fraction) : 0);
    if (limit !== 'inf' && cost(1) > limit) {
      // Cut text and audio at the same fraction so the emitted output fits the token cap.
      incomplete = true;
      let fraction = limit / cost(1);
      while (fraction > 0 && cost(fraction) > limit) fraction *= 0.97;
      text = text.slice(0, Math.floor(text.length * fraction));
      if (speech) audioEnd = alignBytes(speech.bytes.length * fraction, speech.kind);
    }
    resp.speech = speech;
    resp.audioEnd = audioEnd;
    resp.partOpen = true;
    this.#send({ type: 'response.content_part.added', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, content_index: 0, part: audioOut ? { type: 'audio', transcript: '' } : { type: 'text', text: '' } } satisfies WireEvent<'response.content_part.added'>, resp.id);
    if (!(await this.#pause(resp, timing.firstAudioDelayMs))) return;

    const words = splitWords(text);
    if (!speech) {
      for (const delta of words) {
        this.#send({ type: 'response.output_text.delta', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, content_index: 0, delta } satisfies WireEvent<'response.output_text.delta'>, resp.id);
        resp.emittedText += delta;
        if (!(await this.#pause(resp, timing.deltaIntervalMs))) return;
      }
      this.#finish(resp, incomplete ? 'incomplete' : 'completed', incomplete ? 'max_output_tokens' : null);
      return;
    }

    const endBytes = audioEnd;
    const perMs = bytesPerMs(speech.kind);
    const totalMs = endBytes / perMs;
    const started = performance.now();
    let wordIndex = 0;
    let charPos = 0;
    let start = 0;
    for (const chunkEnd of speech.chunkEnds) {
      if (start >= endBytes) break;
      const end = Math.min(chunkEnd, endBytes);
      const chunkEndMs = end / perMs;
      // Transcript runs slightly ahead of the audio that speaks it.
      while (wordIndex < words.length && (totalMs > 0 ? (charPos / Math.max(1, text.length)) * totalMs : 0) <= chunkEndMs) {
        const delta = words[wordIndex++]!;
        charPos += delta.length;
        this.#send({ type: 'response.output_audio_transcript.delta', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, content_index: 0, delta } satisfies WireEvent<'response.output_audio_transcript.delta'>, resp.id);
        resp.emittedText += delta;
      }
      const delta = end === chunkEnd ? chunkBase64(speech, start, end) : speech.bytes.subarray(start, end).toString('base64');
      const dropNow = this.#dropAfter !== null && --this.#dropAfter <= 0;
      // The last delta before a drop must reach the wire: terminate once it is written.
      this.#send({ type: 'response.output_audio.delta', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, content_index: 0, delta } satisfies WireEvent<'response.output_audio.delta'>, resp.id, dropNow ? () => this.#ws.terminate() : undefined);
      resp.emittedBytes = end;
      this.#voiceLocked = true;
      start = end;
      if (dropNow) {
        this.#dropAfter = null;
        this.#teardown();
        return;
      }
      const wait = timing.realtime ? Math.max(0, started + chunkEndMs - REALTIME_LEAD_MS - performance.now()) : timing.deltaIntervalMs;
      if (!(await this.#pause(resp, wait))) return;
    }
    while (wordIndex < words.length) {
      const delta = words[wordIndex++]!;
      this.#send({ type: 'response.output_audio_transcript.delta', event_id: newId('event'), response_id: resp.id, item_id: itemId, output_index: 0, content_index: 0, delta } satisfies WireEvent<'response.output_audio_transcript.delta'>, resp.id);
      resp.emittedText += delta;
    }
    this.#finish(resp, incomplete ? 'incomplete' : 'completed', incomplete ? 'max_output_tokens' : null);
  }

  /** Close whatever is open for the response and emit `response.done` (+ `rate_limits.updated`). */
  #finish(
    resp: ActiveResponse,
    status: 'completed' | 'cancelled' | 'incomplete' | 'failed',
    reason: 'turn_detected' | 'client_cancelled' | 'max_output_tokens' | null,
    failure?: { type: string; code: string; message: string },
  ): void {
    if (resp.finished) return;
    resp.finished = true;
    const item = resp.item;
    const auto = resp.params.conversation === 'auto';
    const ids = { response_id: resp.id, item_id: item?.id ?? '', output_index: 0, content_index: 0 };
    if (item && resp.partOpen) {
      resp.partOpen = false;
      if (resp.speech) {
        const bytes = Buffer.from(resp.speech.bytes.subarray(0, resp.emittedBytes));
        item.audio = [{ bytes, kind: resp.speech.kind, ms: bytes.length / bytesPerMs(resp.speech.kind) }];
        item.wire = { ...item.wire, content: [{ type: 'output_audio', transcript: resp.emittedText }] } as ConversationItem;
        this.#send({ type: 'response.output_audio.done', event_id: newId('event'), ...ids } satisfies WireEvent<'response.output_audio.done'>, resp.id);
        this.#send({ type: 'response.output_audio_transcript.done', event_id: newId('event'), ...ids, transcript: resp.emittedText } satisfies WireEvent<'response.output_audio_transcript.done'>, resp.id);
        this.#send({ type: 'response.content_part.done', event_id: newId('event'), ...ids, part: { type: 'audio', transcript: resp.emittedText } } satisfies WireEvent<'response.content_part.done'>, resp.id);
      } else {
        item.audio = [null];
        item.wire = { ...item.wire, content: [{ type: 'output_text', text: resp.emittedText }] } as ConversationItem;
        this.#send({ type: 'response.output_text.done', event_id: newId('event'), ...ids, text: resp.emittedText } satisfies WireEvent<'response.output_text.done'>, resp.id);
        this.#send({ type: 'response.content_part.done', event_id: newId('event'), ...ids, part: { type: 'text', text: resp.emittedText } } satisfies WireEvent<'response.content_part.done'>, resp.id);
      }
    }
    if (item && resp.itemOpen) {
      resp.itemOpen = false;
      const itemStatus = status === 'completed' ? 'completed' : 'incomplete';
      if (item.wire.type === 'function_call') {
        item.wire = { ...item.wire, arguments: resp.emittedText, status: itemStatus };
        if (status === 'completed') {
          this.#send({ type: 'response.function_call_arguments.done', event_id: newId('event'), response_id: resp.id, item_id: item.id, output_index: 0, call_id: resp.callId ?? '', name: resp.callName ?? '', arguments: resp.emittedText } satisfies WireEvent<'response.function_call_arguments.done'>, resp.id);
        }
      } else if (item.wire.type !== 'mcp_call') {
        // (mcp_call items have no status field)
        item.wire = { ...item.wire, status: itemStatus } as ConversationItem;
      }
      if (auto) {
        const index = this.#indexOf(item.id);
        if (index >= 0) this.#settled(item);
        this.#emitItemDone(item, index > 0 ? this.#items[index - 1]!.id : null, resp.id);
      }
      this.#send({ type: 'response.output_item.done', event_id: newId('event'), response_id: resp.id, output_index: 0, item: item.wire } satisfies WireEvent<'response.output_item.done'>, resp.id);
    }
    const details: WireEvent<'response.done'>['response']['status_details'] =
      status === 'completed'
        ? null
        : status === 'failed'
          ? { type: 'failed', error: failure ?? { type: 'server_error', code: 'server_error', message: 'The server had an error.' } }
          : { type: status, reason: reason ?? 'client_cancelled' };
    const response = this.#responseObject(resp, status, details);
    this.#send({ type: 'response.done', event_id: newId('event'), response } satisfies WireEvent<'response.done'>, resp.id);

    // The next response's prompt shares this one's prefix: that is what gets cached.
    // Only default-conversation prompts are kept, so out-of-band calls do not evict it.
    if (auto) this.#cacheSegments = [...resp.inputSegments, ...(item ? [itemSegment(item)] : [])];
    if (this.#active === resp) this.#active = null;
    this.#outOfBand.delete(resp);
    // A tokens-per-minute bucket that refills linearly, like the live limiter.
    const now = performance.now();
    const refilled = ((now - this.#rateLimitAt) / 60_000) * RATE_LIMIT_TOKENS;
    this.#rateLimitAt = now;
    this.#rateLimitUsed = Math.min(RATE_LIMIT_TOKENS, Math.max(0, this.#rateLimitUsed - refilled) + (response.usage?.total_tokens ?? 0));
    const remaining = Math.floor(RATE_LIMIT_TOKENS - this.#rateLimitUsed);
    this.#later(this.#settings.timing.rateLimitsDelayMs, () => {
      this.#send({
        type: 'rate_limits.updated',
        event_id: newId('event'),
        rate_limits: [{ name: 'tokens', limit: RATE_LIMIT_TOKENS, remaining, reset_seconds: Math.round(((RATE_LIMIT_TOKENS - remaining) / RATE_LIMIT_TOKENS) * 60 * 1000) / 1000 }],
      } satisfies WireEvent<'rate_limits.updated'>);
    });
    if (auto) {
      if (this.#pendingVadResponse) {
        this.#pendingVadResponse = false;
        queueMicrotask(() => {
          if (this.#live && !this.#active) this.#createResponse({}, 'vad');
        });
      } else this.#armIdleTimer();
    }
  }

  // ---- idle timeout (server_vad.idle_timeout_ms) ----

  #armIdleTimer(): void {
    this.#clearIdleTimer();
    const td = this.#session?.audio.input.turn_detection;
    if (td?.type !== 'server_vad' || td.idle_timeout_ms === null) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (!this.#live || this.#active || this.#vad?.speaking) return;
      const itemId = newId('item');
      const startMs = Math.round(this.#audioPosMs);
      this.#send({ type: 'input_audio_buffer.timeout_triggered', event_id: newId('event'), audio_start_ms: startMs, audio_end_ms: startMs, item_id: itemId } satisfies WireEvent<'input_audio_buffer.timeout_triggered'>);
      this.#resetInput();
      this.#commitAudio(Buffer.alloc(0), itemId);
      this.#createResponse({}, 'idle_timeout');
    }, td.idle_timeout_ms);
  }

  #clearIdleTimer(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }
}

function checkEventKeys(e: Json, allowed: readonly string[], path?: string): void {
  for (const key of Object.keys(e)) if (!allowed.includes(key)) throw unknownParameter(path ? `${path}.${key}` : key);
}

function parseMetadata(v: unknown): Record<string, string> | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw invalidType('response.metadata', 'an object', v);
  const entries = Object.entries(v);
  if (entries.length > 16) throw new SimError('invalid_value', 'Invalid \'response.metadata\': too many properties. Expected an object with at most 16 properties.', 'response.metadata');
  const out: Record<string, string> = {};
  for (const [k, val] of entries) {
    if (k.length > 64) throw new SimError('invalid_value', `Invalid 'response.metadata': key '${k}' is longer than 64 characters.`, 'response.metadata');
    if (typeof val !== 'string') throw invalidType(`response.metadata.${k}`, 'a string', val);
    out[k] = val;
  }
  return out;
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function alignBytes(n: number, kind: AudioFormatKind): number {
  const whole = Math.max(0, Math.floor(n));
  return kind === 'pcm' ? whole & ~1 : whole;
}

