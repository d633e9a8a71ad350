import type { JsonObject } from '../pipeline/frame.js';
import { asObject as obj } from '../protocol/json.js';
import { BETA_OUTPUT_LIMIT, exceeds, parseOutputLimit, type OutputLimit } from '../protocol/limits.js';

// How metering reads the members of a session (or session.update) and a response.create that size a
// reservation: output limits and modalities, input audio settings, turn detection.

/** Server VAD's `prefix_padding_ms` when the session does not report one (OpenAI's default). */
export const DEFAULT_PREFIX_PADDING_MS = 300;

export const moreOutput = (a: number | 'inf', b: number | 'inf'): number | 'inf' => (a === 'inf' || b === 'inf' ? 'inf' : Math.max(a, b));
/** The larger of two limits a holder may name (GA's and the preview protocol's member), either absent. */
export const dearerLimit = (a: OutputLimit | null, b: OutputLimit | null): OutputLimit | null => (a === null ? b : b === null ? a : moreOutput(a, b));

/** A turn detection's `prefix_padding_ms` (the audio a VAD item keeps before the speech), or OpenAI's default. */
export function paddingOf(td: JsonObject): number {
  const v = td['prefix_padding_ms'];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : DEFAULT_PREFIX_PADDING_MS;
}

/** A turn detection as metering reads it: its padding, and whether it starts a response per turn (`create_response`, on by default). */
export function turnDetectionOf(td: JsonObject): { readonly padMs: number; readonly createResponse: boolean } {
  return { padMs: paddingOf(td), createResponse: td['create_response'] !== false };
}

/**
 * A session's (or an update's) input audio settings under their GA names (`transcription`,
 * `turn_detection`): GA's `audio.input`, and the Azure preview protocol's (beta) flat
 * `input_audio_transcription` and `turn_detection`. GA's members win where both are given. (The
 * format is read by `budgetedInputBytesPerMs`, src/protocol/audio-format.ts.) Until 2026-12-06 the
 * beta members were not read: a preview session's transcription was unpriced and, when its
 * completed event never came, free (test/metering/redteam-15c-preview-transcription.test.ts).
 */
export function inputAudioSettings(session: JsonObject | null): JsonObject | null {
  if (!session) return null;
  const ga = obj(obj(session['audio'])?.['input']);
  const beta: JsonObject = {};
  if (Object.hasOwn(session, 'input_audio_transcription')) beta['transcription'] = session['input_audio_transcription'] ?? null;
  if (Object.hasOwn(session, 'turn_detection')) beta['turn_detection'] = session['turn_detection'] ?? null;
  if (ga === null && Object.keys(beta).length === 0) return null;
  return { ...beta, ...ga };
}

/**
 * `holder` (a session or response of a client event) with its beta output limit lowered to `limit`
 * when it asks more (or something that is no limit), else null: a preview upstream reads only that
 * member, so it is clamped as GA's is. Until 2026-12-06 it went upstream unread: a tenant's
 * `maxResponseOutputTokens` did not hold on a preview upstream that takes it
 * (test/metering/redteam-15c-preview-output-limit.test.ts).
 */
export function clampedBetaOutput(holder: JsonObject, limit: number | null): { readonly holder: JsonObject; readonly requested: OutputLimit; readonly limit: number } | null {
  if (limit === null || !Object.hasOwn(holder, BETA_OUTPUT_LIMIT)) return null;
  const parsed = parseOutputLimit(holder[BETA_OUTPUT_LIMIT]);
  if (parsed.kind === 'absent' || (parsed.kind === 'limit' && !exceeds(parsed.value, limit))) return null;
  return { holder: { ...holder, [BETA_OUTPUT_LIMIT]: limit }, requested: parsed.kind === 'limit' ? parsed.value : 'inf', limit };
}

/**
 * Text-only output: a list naming `text` and nothing else. An empty list or one with a member the
 * proxy does not know prices as audio (until 2026-12-07 anything without `audio` was text only, so
 * `output_modalities: []` reserved at the text output rate whatever the upstream answers in).
 */
export function textOnly(modalities: unknown): boolean | null {
  return Array.isArray(modalities) ? modalities.length > 0 && modalities.every((m) => m === 'text') : null;
}

/**
 * Whether a create or session.update asks text-only output. A preview upstream reads the beta
 * member `modalities` and leaves GA's `output_modalities` aside, so there a holder naming both is
 * text only when both are: until 2026-12-07 GA's won, and `output_modalities: ["text"]` beside
 * `modalities: ["audio", "text"]` priced an audio answer at the text output rate
 * (test/metering/redteam-16-preview-modalities.test.ts).
 */
export function askedTextOnly(holder: JsonObject, previewUpstream: boolean): boolean | null {
  const ga = textOnly(holder['output_modalities']);
  const beta = previewUpstream ? textOnly(holder['modalities']) : null;
  if (ga === null) return beta;
  if (beta === null) return ga;
  return ga && beta;
}
