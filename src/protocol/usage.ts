import { asObjectOrEmpty as obj } from './json.js';

/*
 * The one parser of `response.usage`. The conversation view stores its result per response
 * (`ResponseView.usage`); metering prices it (modality and cached splits), truncation calibrates
 * its context estimate from it.
 */

export interface ModalityTokens {
  text: number;
  audio: number;
  image: number;
}

/** The token counts of one `response.done` usage, normalised (absent fields are 0). */
export interface ResponseTokens {
  readonly input: ModalityTokens;
  readonly cached: ModalityTokens;
  readonly output: { text: number; audio: number };
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens: number;
  readonly totalTokens: number;
}

/** A token count: a finite number, floored; anything else (negative, NaN, a string) is 0. */
export function tokenCount(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}


/** Reads a `response.usage` object (GA shape; older shapes without cached details are handled). */
export function readResponseUsage(usage: unknown): ResponseTokens {
  const u = obj(usage);
  const inD = obj(u['input_token_details']);
  const outD = obj(u['output_token_details']);
  const input = { text: tokenCount(inD['text_tokens']), audio: tokenCount(inD['audio_tokens']), image: tokenCount(inD['image_tokens']) };
  const output = { text: tokenCount(outD['text_tokens']), audio: tokenCount(outD['audio_tokens']) };
  const detailsIn = input.text + input.audio + input.image;
  const detailsOut = output.text + output.audio;
  const inputTokens = Math.max(tokenCount(u['input_tokens']), detailsIn);
  const outputTokens = Math.max(tokenCount(u['output_tokens']), detailsOut);
  const cachedTotal = tokenCount(inD['cached_tokens']);
  const cD = u['input_token_details'] !== undefined ? inD['cached_tokens_details'] : undefined;
  let cached: ModalityTokens;
  if (cD !== undefined && cD !== null) {
    const c = obj(cD);
    cached = { text: tokenCount(c['text_tokens']), audio: tokenCount(c['audio_tokens']), image: tokenCount(c['image_tokens']) };
  } else {
    // No per-modality split: assume the cache hit the modality with the smallest discount first
    // (text, then image, then audio), which never under-prices.
    let left = cachedTotal;
    const text = Math.min(left, input.text);
    left -= text;
    const image = Math.min(left, input.image);
    left -= image;
    const audio = Math.min(left, input.audio);
    cached = { text, audio, image };
  }
  // Cached tokens are a subset of each modality's input; a count beyond it is not a discount.
  cached = { text: Math.min(cached.text, input.text), audio: Math.min(cached.audio, input.audio), image: Math.min(cached.image, input.image) };
  const cachedTokens = cached.text + cached.audio + cached.image;
  return {
    input,
    cached,
    output,
    inputTokens,
    outputTokens,
    cachedTokens,
    totalTokens: Math.max(tokenCount(u['total_tokens']), inputTokens + outputTokens),
  };
}

const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * Why a `response.done` usage cannot be priced as reported, or null when it can: not an object
 * (null, absent), no `input_tokens` / `output_tokens` count, or a count that is present but not a
 * finite non-negative number (a string, NaN, a negative). `readResponseUsage` reads such a usage as
 * zeros; a biller must not take that for the response's cost.
 */
export function usageProblem(usage: unknown): string | null {
  if (typeof usage !== 'object' || usage === null || Array.isArray(usage)) return 'no usage object';
  const u = usage as Record<string, unknown>;
  if (!isCount(u['input_tokens']) || !isCount(u['output_tokens'])) return 'input_tokens or output_tokens is not a count';
  if (u['total_tokens'] !== undefined && !isCount(u['total_tokens'])) return 'total_tokens is not a count';
  const inD = obj(u['input_token_details']);
  const outD = obj(u['output_token_details']);
  const cD = obj(inD['cached_tokens_details']);
  const fields: [Record<string, unknown>, readonly string[]][] = [
    [inD, ['text_tokens', 'audio_tokens', 'image_tokens', 'cached_tokens']],
    [outD, ['text_tokens', 'audio_tokens']],
    [cD, ['text_tokens', 'audio_tokens', 'image_tokens']],
  ];
  for (const [o, keys] of fields) {
    for (const k of keys) if (o[k] !== undefined && o[k] !== null && !isCount(o[k])) return `${k} is not a count`;
  }
  return null;
}

/** `response.usage` as the conversation view keeps it: null when the response reported none. */
export function parseUsage(usage: unknown): ResponseTokens | null {
  return usage === null || usage === undefined ? null : readResponseUsage(usage);
}
