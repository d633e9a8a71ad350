import type { PriceConfig } from './config.js';

/**
 * Shipped prices, USD per 1M tokens (and per minute for duration-billed transcription), as data.
 * Sources: /work/shared/reference/realtime-protocol.md §5–§6 (late November 2026) for the realtime
 * models; OpenAI's pricing page (text/audio token rows and "estimated cost" per minute) for the
 * transcription models. Override or extend them with `metering.prices`.
 */
export const DEFAULT_PRICES: Readonly<Record<string, PriceConfig>> = {
  'gpt-realtime': {
    kind: 'realtime',
    textIn: '4.00', cachedTextIn: '0.40', textOut: '16.00',
    audioIn: '32.00', cachedAudioIn: '0.40', audioOut: '64.00',
    imageIn: '5.00', cachedImageIn: '0.50',
    contextWindow: 32_768, maxOutputTokens: 4096,
  },
  'gpt-realtime-mini': {
    kind: 'realtime',
    textIn: '0.60', cachedTextIn: '0.06', textOut: '2.40',
    audioIn: '10.00', cachedAudioIn: '0.30', audioOut: '20.00',
    imageIn: '0.80', cachedImageIn: '0.08',
    // The context size is not confirmed by OpenAI (third parties say 32K or 128K): take the larger.
    contextWindow: 128_000, maxOutputTokens: 4096,
  },
  'gpt-realtime-1.5': {
    kind: 'realtime',
    textIn: '4.00', cachedTextIn: '0.40', textOut: '16.00',
    audioIn: '32.00', cachedAudioIn: '0.40', audioOut: '64.00',
    imageIn: '5.00', cachedImageIn: '0.50',
    contextWindow: 32_000, maxOutputTokens: 4096,
  },
  'gpt-realtime-2': {
    kind: 'realtime',
    textIn: '4.00', cachedTextIn: '0.40', textOut: '24.00',
    audioIn: '32.00', cachedAudioIn: '0.40', audioOut: '64.00',
    imageIn: '5.00', cachedImageIn: '0.50',
    contextWindow: 128_000, maxOutputTokens: 32_000,
  },
  'gpt-realtime-2.1': {
    kind: 'realtime',
    textIn: '4.00', cachedTextIn: '0.40', textOut: '24.00',
    audioIn: '32.00', cachedAudioIn: '0.40', audioOut: '64.00',
    imageIn: '5.00', cachedImageIn: '0.50',
    contextWindow: 128_000, maxOutputTokens: 32_000,
  },
  'gpt-realtime-2.1-mini': {
    kind: 'realtime',
    textIn: '0.60', cachedTextIn: '0.06', textOut: '2.40',
    audioIn: '10.00', cachedAudioIn: '0.30', audioOut: '20.00',
    imageIn: '0.80', cachedImageIn: '0.08',
    contextWindow: 128_000, maxOutputTokens: 32_000,
  },
  // Input transcription (billed per `conversation.item.input_audio_transcription.completed`).
  'gpt-4o-transcribe': { kind: 'transcription', textIn: '2.50', audioIn: '6.00', textOut: '10.00', perMinute: '0.006' },
  'gpt-4o-transcribe-diarize': { kind: 'transcription', textIn: '2.50', audioIn: '6.00', textOut: '10.00', perMinute: '0.006' },
  'gpt-4o-mini-transcribe': { kind: 'transcription', textIn: '1.25', audioIn: '3.00', textOut: '5.00', perMinute: '0.003' },
  'whisper-1': { kind: 'transcription', perMinute: '0.006' },
  'gpt-transcribe': { kind: 'transcription', perMinute: '0.0045' },
  // Per-minute realtime transcription and translation models (reference §6).
  'gpt-realtime-whisper': { kind: 'transcription', perMinute: '0.017' },
  'gpt-live-transcribe': { kind: 'transcription', perMinute: '0.017' },
  'gpt-realtime-translate': { kind: 'transcription', perMinute: '0.034' },
};

/**
 * The shipped per-minute models that run translation sessions (`…/realtime/translations`). The other
 * shipped `transcription` prices are transcription models, which the translations endpoint refuses:
 * the proxy refuses them before the upgrade (metering/translation.ts). A model the config prices
 * itself is not judged (the price book cannot tell what it is).
 */
export const TRANSLATION_MODELS: ReadonlySet<string> = new Set(['gpt-realtime-translate']);

/**
 * Models OpenAI has shut down (reference §0, §6), by id prefix, with the model to use instead.
 * Sessions and `session.update`s naming them are refused with `model_retired`, never priced.
 */
export const RETIRED_MODELS: ReadonlyArray<{ readonly prefix: string; readonly successor: string }> = [
  { prefix: 'gpt-4o-mini-realtime-preview', successor: 'gpt-realtime-2.1-mini' },
  { prefix: 'gpt-4o-realtime-preview', successor: 'gpt-realtime-2.1' },
];

/** The successor of a shut-down model, or null when `model` is not retired. */
export function retiredSuccessor(model: string): string | null {
  for (const r of RETIRED_MODELS) if (model === r.prefix || model.startsWith(`${r.prefix}-`)) return r.successor;
  return null;
}
