import type { RealtimeClientEvent, RealtimeServerEvent } from 'openai/resources/realtime/realtime';

export type { RealtimeClientEvent, RealtimeServerEvent };
export type ClientEventType = RealtimeClientEvent['type'];
export type ServerEventType = RealtimeServerEvent['type'];
export type ClientEventOf<T extends ClientEventType> = Extract<RealtimeClientEvent, { type: T }>;
export type ServerEventOf<T extends ServerEventType> = Extract<RealtimeServerEvent, { type: T }>;

/** Hot-path event types: never JSON-parsed by the relay unless a filter asks for them. */
export const AUDIO_IN = 'input_audio_buffer.append' satisfies ClientEventType;
export const AUDIO_OUT = 'response.output_audio.delta' satisfies ServerEventType;
/** The beta name of the output audio delta, which some servers still send. */
export const AUDIO_OUT_BETA = 'response.audio.delta';
/** A translation session's input audio append (base64 PCM16 mono at 24 kHz, the only format it takes). */
export const TRANSLATION_AUDIO_IN = 'session.input_audio_buffer.append';
/** A translation session's translated audio (openai `RealtimeTranslationOutputAudioDeltaEvent`: base64 `delta`, PCM16 24 kHz). */
export const TRANSLATION_AUDIO_OUT = 'session.output_audio.delta';
/**
 * Audio frame types per direction. The relay accounts for them itself (src/pipeline/audio-meter.ts)
 * and relays them without building a Frame; filters that need no audio name these in
 * `wants: { allBut }`, so every other type, including one added later, still reaches them.
 */
export const AUDIO_CLIENT_TYPES: readonly string[] = [AUDIO_IN, TRANSLATION_AUDIO_IN];
export const AUDIO_SERVER_TYPES: readonly string[] = [AUDIO_OUT, AUDIO_OUT_BETA, TRANSLATION_AUDIO_OUT];

/** Beta-only markers that the upstream now refuses (4000 `beta_api_shape_disabled`). */
export const BETA_SUBPROTOCOL = 'openai-beta.realtime-v1';
export const KEY_SUBPROTOCOL_PREFIX = 'openai-insecure-api-key.';
/** Client secrets this proxy mints (src/calls): `ek_` so the SDKs' browser guards accept them. */
export const CLIENT_SECRET_PREFIX = 'ek_proxy_';

/** A session opened with `?intent=transcription` is a transcription session (`type: "transcription"`): realtime settings do not apply. */
export function isTranscriptionIntent(query: ReadonlyMap<string, string>): boolean {
  return query.get('intent') === 'transcription';
}

/**
 * Marks a translation session (`…/realtime/translations`, `openai`'s `OpenAIRealtimeTranslationWS`)
 * in the session's query. Set by the server from the upgrade path, never from the client's query:
 * a name readClientQuery never keeps (only `model`, `intent`, `call_id` pass it).
 */
export const TRANSLATION_SESSION_KEY = ':translation';

/** The session was opened at `…/realtime/translations`: a translation session (`type: "translation"`). */
export function isTranslationSession(query: ReadonlyMap<string, string>): boolean {
  return query.has(TRANSLATION_SESSION_KEY);
}

/**
 * Input audio the relay counts as it leaves for the upstream (AudioMeter), a realtime session's or
 * a translation session's: both carry base64 PCM in `audio`. Until 2026-12-07 only the realtime
 * append was counted, so translated minutes showed nowhere in rtproxy_audio_duration_total.
 */
export const isInputAudio = (type: string): boolean => type === AUDIO_IN || type === TRANSLATION_AUDIO_IN;

/**
 * The client events a translation session takes (openai `RealtimeTranslationClientEvent`). The relay
 * refuses every other type there before any filter or the upstream sees it: the policies judge
 * realtime events (items, responses) a translation session has no use for, and the proxy must not be
 * a weaker check than the upstream's.
 */
export const TRANSLATION_CLIENT_TYPES: readonly string[] = ['session.update', TRANSLATION_AUDIO_IN, 'session.close'];
