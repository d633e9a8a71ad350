import type { RealtimeResponseUsage } from 'openai/resources/realtime/realtime';
import type { SimItem } from './items.js';

/**
 * Token accounting that satisfies the `response.done` usage invariants exactly:
 * input = text + audio + image, output = text + audio, total = input + output, cached ⊆ the
 * per-modality inputs and equal to the sum of its details. Rates: text ≈ chars/4, user audio
 * 10 tokens/s, assistant audio 20 tokens/s, a few framing tokens per item.
 */

export interface Tokens {
  text: number;
  audio: number;
  image: number;
}

export const ZERO: Readonly<Tokens> = { text: 0, audio: 0, image: 0 };

export function textTokens(s: string): number {
  return s.length === 0 ? 0 : Math.ceil(s.length / 4);
}

export function userAudioTokens(ms: number): number {
  return Math.ceil(ms / 100);
}

export function assistantAudioTokens(ms: number): number {
  return Math.ceil(ms / 50);
}

const ITEM_OVERHEAD = 4;

export function itemTokens(item: SimItem): Tokens {
  const t: Tokens = { text: ITEM_OVERHEAD, audio: 0, image: 0 };
  const w = item.wire;
  switch (w.type) {
    case 'message': {
      w.content.forEach((part, i) => {
        const audio = item.audio[i];
        if (audio) {
          t.audio += w.role === 'assistant' ? assistantAudioTokens(audio.ms) : userAudioTokens(audio.ms);
          return;
        }
        if ('image_url' in part && part.image_url !== undefined) {
          t.image += 'detail' in part && part.detail === 'low' ? 85 : 255;
          return;
        }
        t.text += textTokens(part.text ?? ('transcript' in part ? (part.transcript ?? '') : ''));
      });
      break;
    }
    case 'function_call':
      t.text += textTokens(w.name) + textTokens(w.arguments);
      break;
    case 'function_call_output':
      t.text += textTokens(w.output);
      break;
    default:
      t.text += textTokens(JSON.stringify(w));
  }
  return t;
}

/** One cacheable unit of a prompt: same key and version ⇒ same tokens. */
export interface Segment {
  readonly key: string;
  readonly tokens: Tokens;
}

export function itemSegment(item: SimItem): Segment {
  return { key: `${item.id}#${item.version}`, tokens: itemTokens(item) };
}

export function systemSegment(instructions: string, toolsJson: string): Segment {
  // The prompt prefix: a fixed system preamble, the instructions and the tool definitions.
  return { key: `sys:${instructions.length}:${instructions}:${toolsJson}`, tokens: { text: 8 + textTokens(instructions) + textTokens(toolsJson), audio: 0, image: 0 } };
}

export function sumTokens(segments: readonly Segment[]): Tokens {
  const t: Tokens = { text: 0, audio: 0, image: 0 };
  for (const s of segments) {
    t.text += s.tokens.text;
    t.audio += s.tokens.audio;
    t.image += s.tokens.image;
  }
  return t;
}

/** Tokens of the longest common segment prefix, as a cache hit would see it. */
export function commonPrefix(current: readonly Segment[], previous: readonly Segment[]): Tokens {
  const prefix: Segment[] = [];
  for (let i = 0; i < current.length && i < previous.length; i++) {
    if (current[i]!.key !== previous[i]!.key) break;
    prefix.push(current[i]!);
  }
  return sumTokens(prefix);
}

/**
 * Cached tokens: the common prefix rounded down to a multiple of 64, split over the modalities in
 * proportion to the prefix, never exceeding any modality's share of the prefix.
 */
export function cachedSplit(prefix: Tokens): Tokens {
  const total = prefix.text + prefix.audio + prefix.image;
  const cached = Math.floor(total / 64) * 64;
  if (cached === 0) return { text: 0, audio: 0, image: 0 };
  const audio = Math.floor((cached * prefix.audio) / total);
  const image = Math.floor((cached * prefix.image) / total);
  const out: Tokens = { text: cached - audio - image, audio, image };
  // Floors can leave text above its share; move the excess to modalities with room.
  if (out.text > prefix.text) {
    let excess = out.text - prefix.text;
    out.text = prefix.text;
    const roomAudio = Math.min(excess, prefix.audio - out.audio);
    out.audio += roomAudio;
    excess -= roomAudio;
    out.image += Math.min(excess, prefix.image - out.image);
  }
  return out;
}

export function buildUsage(input: Tokens, cached: Tokens, output: { text: number; audio: number }): RealtimeResponseUsage {
  const inputTokens = input.text + input.audio + input.image;
  const outputTokens = output.text + output.audio;
  return {
    total_tokens: inputTokens + outputTokens,
    input_tokens: inputTokens,
    output_tokens: outputTokens,
    input_token_details: {
      text_tokens: input.text,
      audio_tokens: input.audio,
      image_tokens: input.image,
      cached_tokens: cached.text + cached.audio + cached.image,
      cached_tokens_details: { text_tokens: cached.text, audio_tokens: cached.audio, image_tokens: cached.image },
    },
    output_token_details: { text_tokens: output.text, audio_tokens: output.audio },
  };
}

/** Violations of the usage invariants (empty when consistent). Exported for tests and brains. */
export function usageViolations(u: RealtimeResponseUsage): string[] {
  const problems: string[] = [];
  const inD = u.input_token_details ?? {};
  const outD = u.output_token_details ?? {};
  const cD = inD.cached_tokens_details ?? {};
  const inText = inD.text_tokens ?? 0;
  const inAudio = inD.audio_tokens ?? 0;
  const inImage = inD.image_tokens ?? 0;
  if ((u.input_tokens ?? 0) !== inText + inAudio + inImage) problems.push('input_tokens != text + audio + image');
  if ((u.output_tokens ?? 0) !== (outD.text_tokens ?? 0) + (outD.audio_tokens ?? 0)) problems.push('output_tokens != text + audio');
  if ((u.total_tokens ?? 0) !== (u.input_tokens ?? 0) + (u.output_tokens ?? 0)) problems.push('total_tokens != input + output');
  if ((inD.cached_tokens ?? 0) !== (cD.text_tokens ?? 0) + (cD.audio_tokens ?? 0) + (cD.image_tokens ?? 0)) problems.push('cached_tokens != sum of details');
  if ((cD.text_tokens ?? 0) > inText) problems.push('cached text > input text');
  if ((cD.audio_tokens ?? 0) > inAudio) problems.push('cached audio > input audio');
  if ((cD.image_tokens ?? 0) > inImage) problems.push('cached image > input image');
  return problems;
}
