import { bytesPerMs, encodeAudio, hashString, prng, speechDurationMsOf, speechSlices, synthesizeSpeech, type AudioFormatKind } from './audio.js';
import { assistantAudioTokens } from './usage.js';

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
/**
 * Byte budget of the plan cache (each plan's PCM and its base64). A plan grows with its text (about
 * 7 KB a character), so a count alone bounded nothing: until 2026-12-07 the embedded simulator (the
 * proxy's own process, without OPENAI_API_KEY) kept 48 plans of any size
 * (test/security/redteam-23-simulator-speech.test.ts).
 */
export const SPEECH_CACHE_BYTES = 64 * 1024 * 1024;
const cache = new Map<string, SpeechPlan>();
let cachedBytes = 0;

const planBytes = (plan: SpeechPlan): number => plan.bytes.length + plan.base64.length;

/** Bytes the plan cache holds now (tests: it stays within SPEECH_CACHE_BYTES). */
export const speechCacheBytes = (): number => cachedBytes;

/**
 * The most output tokens one response has: OpenAI's realtime models stop there (`max_output_tokens:
 * "inf"` is the model's maximum, 4,096).
 */
export const MODEL_MAX_OUTPUT_TOKENS = 4096;

/** Output tokens of the first `chars` characters of an answer (the same rates as usage.ts; spoken at `speed`, or text only). */
function answerTokens(chars: number, speed: number | null): number {
  const text = Math.ceil(chars / 4);
  return speed === null ? text : text + assistantAudioTokens(speechDurationMsOf(chars, { speed }));
}

/**
 * The longest start of `text` a response emits within MODEL_MAX_OUTPUT_TOKENS (its text, and its
 * audio at `speed` when spoken; null: text only), and whether that cut it. What lies past it is never
 * emitted, so it is never synthesized: until 2026-12-07 a `say:` of 20,000 characters made the
 * simulator synthesize 22 minutes of audio in one go (6 s of event loop, 139 MiB held), and one of a
 * few hundred thousand would have needed gigabytes (about 7 KB a character).
 */
export function withinModelMax(text: string, speed: number | null): { readonly text: string; readonly cut: boolean } {
  if (answerTokens(text.length, speed) <= MODEL_MAX_OUTPUT_TOKENS) return { text, cut: false };
  // The token count grows with the length: the longest length that fits, by bisection.
  let fits = 0;
  let over = text.length;
  while (over - fits > 1) {
    const mid = Math.floor((fits + over) / 2);
    if (answerTokens(mid, speed) <= MODEL_MAX_OUTPUT_TOKENS) fits = mid;
    else over = mid;
  }
  return { text: text.slice(0, fits), cut: true };
}

/**
 * Speech for `text`, encoded once and memoised: repeated test turns cost nothing. Chunks vary
 * between 50 and 200 ms of audio (2,400–9,600 bytes of PCM16) and are multiples of 6 bytes, so
 * every chunk is a clean slice of one base64 string.
 */
export function planSpeech(text: string, kind: AudioFormatKind, voice: string, speed: number): SpeechPlan {
  const key = `${kind}|${voice}|${speed}|${text}`;
  return cached(key) ?? keep(key, synthesizeSpeech(text, { voice, speed }), kind);
}

/** Samples synthesized between two turns of the event loop (5 s of audio: some tens of milliseconds). */
export const SPEECH_SLICE_SAMPLES = 5 * 24_000;

/**
 * planSpeech, letting the event loop run every SPEECH_SLICE_SAMPLES samples: an answer at the model
 * maximum is ~205 s of audio, a second or more of synthesis, during which no other session of the
 * process (the embedded simulator's, or the proxy's own) was served until 2026-12-07.
 */
export async function planSpeechSliced(text: string, kind: AudioFormatKind, voice: string, speed: number): Promise<SpeechPlan> {
  const key = `${kind}|${voice}|${speed}|${text}`;
  const hit = cached(key);
  if (hit) return hit;
  const slices = speechSlices(text, { voice, speed }, SPEECH_SLICE_SAMPLES);
  let step = slices.next();
  while (!step.done) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    step = slices.next();
  }
  return cached(key) ?? keep(key, step.value, kind);
}

/** A cached plan, made the most recent; undefined when there is none. */
function cached(key: string): SpeechPlan | undefined {
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
  }
  return hit;
}

/** Encodes and cuts `pcm` into a plan and caches it (within CACHE_LIMIT and SPEECH_CACHE_BYTES). */
function keep(key: string, pcm: Int16Array, kind: AudioFormatKind): SpeechPlan {
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
  cachedBytes += planBytes(plan);
  // The oldest go first (a plan over the whole budget is not kept either).
  for (const [oldest, held] of cache) {
    if (cache.size <= CACHE_LIMIT && cachedBytes <= SPEECH_CACHE_BYTES) break;
    cache.delete(oldest);
    cachedBytes -= planBytes(held);
  }
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
