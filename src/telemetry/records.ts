import type { Attributes } from '@opentelemetry/api';

/** How a turn ended. Failures also carry `errorType`. */
export type EndReason = 'completed' | 'interrupted' | 'cancelled' | 'failed' | 'incomplete' | 'session_closed' | 'timeout';
/** Who started the turn: the user (speech, text, push-to-talk) or the agent side (response without new user input). */
export type Initiator = 'user' | 'agent';
/** What marked the end of the user's part of the turn (the latency anchor). */
export type Anchor = 'server_vad' | 'semantic_vad' | 'commit' | 'text' | 'response_create' | 'idle_timeout' | 'none';
export type InterruptionKind = 'generation' | 'playback';
export type TurnPhase = 'user' | 'responding' | 'tool_wait' | 'playback' | 'draining' | 'closed';
export type ResponseStatus = 'in_progress' | 'completed' | 'cancelled' | 'incomplete' | 'failed';

export interface TimedEvent {
  readonly name: string;
  /** Proxy clock (ms). */
  readonly t: number;
  readonly attrs?: Attributes;
}

/** `response.done.usage`, every field defaulted to 0. */
export interface Usage {
  readonly input: number;
  readonly output: number;
  readonly inputText: number;
  readonly inputAudio: number;
  readonly inputImage: number;
  readonly cached: number;
  readonly cachedText: number;
  readonly cachedAudio: number;
  readonly cachedImage: number;
  readonly outputText: number;
  readonly outputAudio: number;
}

/** Session-level configuration as the upstream last confirmed it (session.created / session.updated). */
export interface SessionView {
  realtimeSessionId: string | null;
  model: string | null;
  vadType: 'server_vad' | 'semantic_vad' | 'none';
  /** Silence window that ends a VAD turn (server_vad only; 0 when unknown). */
  silenceMs: number;
  interruptResponse: boolean;
  inputFormat: string;
  outputFormat: string;
  /** Decoded audio bytes per millisecond: 48 for PCM16 at 24 kHz, 8 for G.711. */
  inputBytesPerMs: number;
  outputBytesPerMs: number;
}

export interface ToolRecord {
  readonly callId: string;
  readonly name: string;
  readonly responseId: string | null;
  readonly start: number;
  end: number | null;
}

export interface ResponseRecord {
  readonly id: string;
  readonly turn: TurnRecord;
  readonly trigger: 'client' | 'server';
  readonly outOfBand: boolean;
  /** Client `response.create` time, when the response answers one. */
  readonly requestedAt: number | null;
  readonly createdAt: number;
  readonly maxOutputTokens: number | null;
  readonly outputModalities: readonly string[];
  firstAudioAt: number | null;
  firstTextAt: number | null;
  doneAt: number | null;
  status: ResponseStatus;
  /** `status_details.reason` (cancelled / incomplete). */
  statusReason: string | null;
  errorType: string | null;
  outputAudioMs: number;
  functionCalls: number;
  usage: Usage | null;
  costMicros: number | null;
  /** Set when the proxy (not the user) cancelled it: `guardrail` or `budget`. */
  cancelledBy: string | null;
  clientCancelled: boolean;
  outputText: string | null;
  readonly events: TimedEvent[];
}

export interface TurnRecord {
  readonly number: number;
  readonly initiator: Initiator;
  readonly openedAt: number;
  /** Whether it is a standalone out-of-band response (`conversation: "none"`). */
  readonly outOfBand: boolean;
  /** Session config when the turn opened. */
  readonly session: Readonly<SessionView>;
  anchor: Anchor;
  phase: TurnPhase;
  speechStartAt: number | null;
  speechEndAt: number | null;
  audioStartMs: number | null;
  audioEndMs: number | null;
  /** End of the user's turn as the proxy saw it (speech_stopped / commit / response.create). */
  userEndAt: number | null;
  /** Estimated true end of speech (backdated by the VAD silence window). */
  speechEndEstimateAt: number | null;
  responseRequested: boolean;
  readonly responses: ResponseRecord[];
  readonly tools: ToolRecord[];
  firstAudioAt: number | null;
  firstTextAt: number | null;
  outputAudioMs: number;
  playbackEndAt: number | null;
  playedAudioMs: number | null;
  truncated: boolean;
  /** Status of the final response (completed / incomplete) once the turn only waits for playback. */
  finalStatus: 'completed' | 'incomplete' | null;
  endReason: EndReason | null;
  errorType: string | null;
  interruption: InterruptionKind | null;
  /** Latest time something happened in the turn (used as its end time when it closes). */
  lastAt: number;
  endedAt: number | null;
  guardrailAction: string | null;
  costMicros: number;
  inputText: string | null;
  readonly events: TimedEvent[];
}

export const MAX_EVENTS = 128;

export function pushEvent(list: TimedEvent[], event: TimedEvent): void {
  if (list.length < MAX_EVENTS) list.push(event);
}

/** Latency figures of a closed turn, in milliseconds (null when not measurable). */
export interface TurnLatencies {
  readonly responseLatencyMs: number | null;
  readonly voiceToVoiceMs: number | null;
  readonly timeToFirstTextMs: number | null;
  readonly durationMs: number;
}

export function turnLatencies(turn: TurnRecord): TurnLatencies {
  const anchor = turn.userEndAt;
  const end = turn.endedAt ?? turn.lastAt;
  return {
    responseLatencyMs: anchor !== null && turn.firstAudioAt !== null ? turn.firstAudioAt - anchor : null,
    voiceToVoiceMs: turn.speechEndEstimateAt !== null && turn.firstAudioAt !== null ? turn.firstAudioAt - turn.speechEndEstimateAt : null,
    timeToFirstTextMs: anchor !== null && turn.firstTextAt !== null ? turn.firstTextAt - anchor : null,
    durationMs: end - turn.openedAt,
  };
}

/** `gen_ai.response.finish_reasons` for a response, per the semconv realtime mapping. */
export function finishReason(r: ResponseRecord): string | null {
  switch (r.status) {
    case 'completed':
      return r.functionCalls > 0 ? 'tool_call' : 'stop';
    case 'incomplete':
      return r.statusReason === 'max_output_tokens' ? 'length' : (r.statusReason ?? 'length');
    case 'cancelled':
      return r.statusReason ?? 'cancelled';
    case 'failed':
      return 'error';
    default:
      return null;
  }
}
