import { bytesPerMs, encodeAudio, hashString, prng, synthesizeSpeech, type AudioFormatKind } from './audio.js';

/** Encoded assistant speech, cut into delta-sized chunks. */
export interface SpeechPlan {
  readonly bytes: Buffer;
  readonly base64: string;
  readonly kind: AudioFormatKind;
  readonly ms: number;
  /** Chunk end offsets in bytes (each chunk starts where the previous ended). */
  readonly chunkEnds: readonly number[];
}

const CACHE_LIMIT = 48;
const cache = new Map<string, SpeechPlan>();

/**
 * Speech for `text`, encoded once and memoised: repeated test turns cost nothing. Chunks vary
 * between 50 and 200 ms of audio (2,400–9,600 bytes of PCM16) and are multiples of 6 bytes, so
 * every chunk is a clean slice of one base64 string.
 */
export function planSpeech(text: string, kind: AudioFormatKind, voice: string, speed: number): SpeechPlan {
  const key = `${kind}|${voice}|${speed}|${text}`;
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const pcm = synthesizeSpeech(text, { voice, speed });
  // Copy: `encodeAudio` returns a view for PCM, and the plan must own its bytes.
  const bytes = Buffer.from(encodeAudio(pcm, kind));
  const perMs = bytesPerMs(kind);
  const ms = bytes.length / perMs;
  const rand = prng(hashString(key));
  const chunkEnds: number[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const chunkMs = 50 + Math.floor(rand() * 151);
    const size = Math.max(6, Math.floor((chunkMs * perMs) / 6) * 6);
    offset = Math.min(bytes.length, offset + size);
    chunkEnds.push(offset);
  }
  const plan: SpeechPlan = { bytes, base64: bytes.toString('base64'), kind, ms, chunkEnds };
  cache.set(key, plan);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  return plan;
}

/** Base64 of bytes [start, end) of the plan; start is always a multiple of 6. */
export function chunkBase64(plan: SpeechPlan, start: number, end: number): string {
  const from = (start / 3) * 4;
  if (end === plan.bytes.length) return plan.base64.slice(from);
  return plan.base64.slice(from, (end / 3) * 4);
}

/** Word-ish text deltas: each carries its leading whitespace (" from", " the"). */
export function splitWords(text: string): string[] {
  const words: string[] = [...(text.match(/\s*\S+/g) ?? [])];
  const consumed = words.join('').length;
  if (consumed < text.length) {
    if (words.length === 0) words.push(text);
    else words[words.length - 1] += text.slice(consumed);
  }
  return words;
}

/** Argument deltas of 4–16 characters. */
export function splitArguments(args: string, seed: number): string[] {
  const rand = prng(seed);
  const out: string[] = [];
  let i = 0;
  while (i < args.length) {
    const n = 4 + Math.floor(rand() * 13);
    out.push(args.slice(i, i + n));
    i += n;
  }
  return out;
}
