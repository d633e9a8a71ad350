import { asObjectOrEmpty as obj } from '../protocol/json.js';
import type { PriceConfig } from './config.js';
import { DEFAULT_PRICES, retiredSuccessor } from './default-prices.js';
import { divRound, perMillionToNanosPerToken, usdToNanos, type Nanos } from './money.js';

/** Nano-dollars per token. */
export interface TokenRates {
  readonly textIn: number;
  readonly cachedTextIn: number;
  readonly textOut: number;
  readonly audioIn: number;
  readonly cachedAudioIn: number;
  readonly audioOut: number;
  readonly imageIn: number;
  readonly cachedImageIn: number;
}

export interface ModelPrice {
  readonly id: string;
  readonly kind: 'realtime' | 'transcription';
  readonly tokens: TokenRates | null;
  /** Nano-dollars per minute of audio (duration-billed transcription). */
  readonly perMinuteNanos: Nanos | null;
  readonly contextWindow: number;
  readonly maxOutputTokens: number;
  /** Dearest uncached input rate and dearest output rate (worst-case reservations). */
  readonly maxInRate: number;
  readonly maxOutRate: number;
}

export interface PriceLookup {
  readonly price: ModelPrice;
  /** True when the model had no price of its own and the configured fallback applies. */
  readonly fallback: boolean;
}

export class PriceConfigError extends Error {
  override readonly name = 'PriceConfigError';
}

const DATED = /^(.*)-\d{4}-\d{2}-\d{2}$/;
const TOKEN_FIELDS = ['textIn', 'cachedTextIn', 'textOut', 'audioIn', 'cachedAudioIn', 'audioOut', 'imageIn', 'cachedImageIn'] as const;

type Field = (typeof TOKEN_FIELDS)[number];

function rate(model: string, field: string, value: number | string): number {
  const n = perMillionToNanosPerToken(value);
  if (n === null) {
    throw new PriceConfigError(`metering.prices.${model}.${field}: ${String(value)} is not a non-negative multiple of 0.001 USD per 1M tokens`);
  }
  return n;
}

function compile(id: string, c: PriceConfig): ModelPrice {
  const kind = c.kind ?? (c.perMinute !== undefined && c.audioOut === undefined ? 'transcription' : 'realtime');
  const present = TOKEN_FIELDS.filter((f) => c[f] !== undefined);
  let tokens: TokenRates | null = null;
  if (kind === 'realtime') {
    const missing = TOKEN_FIELDS.filter((f) => c[f] === undefined);
    if (missing.length > 0) throw new PriceConfigError(`metering.prices.${id}: a realtime price needs ${missing.join(', ')}`);
    const r = {} as Record<Field, number>;
    for (const f of TOKEN_FIELDS) r[f] = rate(id, f, c[f]!);
    tokens = r;
  } else if (present.length > 0) {
    // Transcription: text/audio in and text out; no caching, no audio or image output.
    for (const f of ['textIn', 'audioIn', 'textOut'] as const) {
      if (c[f] === undefined) throw new PriceConfigError(`metering.prices.${id}: a per-token transcription price needs textIn, audioIn and textOut`);
    }
    const textIn = rate(id, 'textIn', c.textIn!);
    const audioIn = rate(id, 'audioIn', c.audioIn!);
    const textOut = rate(id, 'textOut', c.textOut!);
    tokens = {
      textIn,
      cachedTextIn: c.cachedTextIn === undefined ? textIn : rate(id, 'cachedTextIn', c.cachedTextIn),
      textOut,
      audioIn,
      cachedAudioIn: c.cachedAudioIn === undefined ? audioIn : rate(id, 'cachedAudioIn', c.cachedAudioIn),
      audioOut: c.audioOut === undefined ? textOut : rate(id, 'audioOut', c.audioOut),
      imageIn: c.imageIn === undefined ? Math.max(textIn, audioIn) : rate(id, 'imageIn', c.imageIn),
      cachedImageIn: c.cachedImageIn === undefined ? Math.max(textIn, audioIn) : rate(id, 'cachedImageIn', c.cachedImageIn),
    };
  }
  let perMinuteNanos: number | null = null;
  if (c.perMinute !== undefined) {
    perMinuteNanos = usdToNanos(c.perMinute);
    if (perMinuteNanos === null) throw new PriceConfigError(`metering.prices.${id}.perMinute: ${String(c.perMinute)} is not a USD amount with at most 9 decimals`);
  }
  if (!tokens && perMinuteNanos === null) throw new PriceConfigError(`metering.prices.${id}: no token prices and no perMinute price`);
  const maxInRate = tokens ? Math.max(tokens.textIn, tokens.audioIn, tokens.imageIn) : 0;
  const maxOutRate = tokens ? Math.max(tokens.textOut, tokens.audioOut) : 0;
  return {
    id,
    kind,
    tokens,
    perMinuteNanos,
    contextWindow: c.contextWindow ?? 128_000,
    maxOutputTokens: c.maxOutputTokens ?? (kind === 'realtime' ? 4096 : 2000),
    maxInRate,
    maxOutRate,
  };
}

export interface PriceBookOptions {
  readonly prices?: Readonly<Record<string, PriceConfig>>;
  readonly aliases?: Readonly<Record<string, string>>;
  readonly fallbackPrice?: string | null;
}

/** The compiled price table: shipped defaults, config overrides (with `extends`), aliases, fallback. */
export class PriceBook {
  readonly #prices = new Map<string, ModelPrice>();
  readonly #aliases: ReadonlyMap<string, string>;
  readonly #fallback: ModelPrice | null;

  constructor(options: PriceBookOptions = {}) {
    const raw = new Map<string, PriceConfig>(Object.entries(DEFAULT_PRICES));
    const overrides = options.prices ?? {};
    const resolving = new Set<string>();
    // An override of a shipped model extends it implicitly; `extends` names another base.
    const resolve = (id: string): PriceConfig | undefined => {
      const own = overrides[id];
      const base = raw.get(id);
      if (!own) return base;
      if (resolving.has(id)) throw new PriceConfigError(`metering.prices.${id}: extends forms a cycle`);
      resolving.add(id);
      const parent = own.extends === undefined || own.extends === id ? base : resolve(own.extends);
      if (own.extends !== undefined && !parent) throw new PriceConfigError(`metering.prices.${id}: extends unknown model "${own.extends}"`);
      const { extends: _ignored, ...fields } = own;
      resolving.delete(id);
      return { ...parent, ...fields };
    };
    for (const id of new Set([...raw.keys(), ...Object.keys(overrides)])) this.#prices.set(id, compile(id, resolve(id)!));
    this.#aliases = new Map(Object.entries(options.aliases ?? {}));
    for (const [from, to] of this.#aliases) {
      if (!this.#prices.has(to)) throw new PriceConfigError(`metering.aliases.${from}: "${to}" has no price`);
    }
    const fb = options.fallbackPrice ?? null;
    if (fb !== null && !this.#prices.has(fb)) throw new PriceConfigError(`metering.fallbackPrice: "${fb}" has no price`);
    this.#fallback = fb === null ? null : this.#prices.get(fb)!;
  }

  get models(): readonly ModelPrice[] {
    return [...this.#prices.values()];
  }

  /** The model's own price (alias, exact id, then without a -YYYY-MM-DD snapshot suffix). */
  own(model: string): ModelPrice | null {
    const id = this.#aliases.get(model) ?? model;
    const exact = this.#prices.get(id);
    if (exact) return exact;
    const m = DATED.exec(id);
    return m ? (this.#prices.get(m[1]!) ?? null) : null;
  }

  /**
   * The priced id `model` resolves to (an alias's target, or the undated id of a dated snapshot),
   * or null when it has no price of its own: which model a deployment name or snapshot stands for.
   */
  pricedId(model: string): string | null {
    const id = this.#aliases.get(model) ?? model;
    if (this.#prices.has(id)) return id;
    const m = DATED.exec(id);
    return m && this.#prices.has(m[1]!) ? m[1]! : null;
  }

  /**
   * The successor of a model OpenAI has shut down, or null. A retired id the config prices or
   * aliases itself (e.g. an Azure deployment name) is not retired here.
   */
  retired(model: string): string | null {
    return this.own(model) === null ? retiredSuccessor(model) : null;
  }

  /** The price that applies to `model`, or null when it has none and there is no fallback. */
  lookup(model: string): PriceLookup | null {
    const own = this.own(model);
    if (own) return { price: own, fallback: false };
    return this.fallback;
  }

  /** The configured fallback price (`metering.fallbackPrice`), what a model without a price of its own is priced as; null: none. */
  get fallback(): PriceLookup | null {
    return this.#fallback ? { price: this.#fallback, fallback: true } : null;
  }
}

// ---- cost of usage --------------------------------------------------------------------------

export { readResponseUsage, type ModalityTokens, type ResponseTokens } from '../protocol/usage.js';
import { tokenCount as count, type ModalityTokens, type ResponseTokens } from '../protocol/usage.js';


/**
 * Cost of one response in nano-dollars: uncached and cached parts of each input modality priced
 * separately, outputs per modality. Tokens the details do not attribute are priced at the dearest
 * rate of their side, so a malformed usage object is never priced low; except output of a
 * response whose `output_modalities` are text only, which cannot be audio (text output rate).
 */
export function responseCost(price: ModelPrice, t: ResponseTokens, textOnly = false): Nanos {
  const r = price.tokens;
  if (!r) return 0;
  const undetailedIn = t.inputTokens - (t.input.text + t.input.audio + t.input.image);
  const undetailedOut = t.outputTokens - (t.output.text + t.output.audio);
  return (
    (t.input.text - t.cached.text) * r.textIn +
    t.cached.text * r.cachedTextIn +
    (t.input.audio - t.cached.audio) * r.audioIn +
    t.cached.audio * r.cachedAudioIn +
    (t.input.image - t.cached.image) * r.imageIn +
    t.cached.image * r.cachedImageIn +
    t.output.text * r.textOut +
    t.output.audio * r.audioOut +
    undetailedIn * price.maxInRate +
    undetailedOut * (textOnly ? r.textOut : price.maxOutRate)
  );
}

/** Audio tokens per second of user audio (the realtime-costs guide's rule of thumb). */
export const USER_AUDIO_TOKENS_PER_SEC = 10;

export interface TranscriptionCost {
  readonly nanos: Nanos;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly totalTokens: number;
  readonly seconds: number | null;
  /** True when the usage shape did not match the model's price and was converted (10 audio tokens/s). */
  readonly estimated: boolean;
}

/** Cost of one input transcription (`…input_audio_transcription.completed.usage`). Null: no usage. */
export function transcriptionCost(price: ModelPrice, usage: unknown): TranscriptionCost | null {
  const u = obj(usage);
  if (u['type'] === 'duration') {
    const seconds = typeof u['seconds'] === 'number' && Number.isFinite(u['seconds']) && u['seconds'] > 0 ? u['seconds'] : 0;
    const ms = Math.round(seconds * 1000);
    if (price.perMinuteNanos !== null) {
      return { nanos: divRound(ms * price.perMinuteNanos, 60_000), inputTokens: 0, outputTokens: 0, totalTokens: 0, seconds, estimated: false };
    }
    const audio = Math.ceil((ms * USER_AUDIO_TOKENS_PER_SEC) / 1000);
    return { nanos: audio * price.tokens!.audioIn, inputTokens: audio, outputTokens: 0, totalTokens: audio, seconds, estimated: true };
  }
  if (u['type'] !== 'tokens' && u['input_tokens'] === undefined) return null;
  const inD = obj(u['input_token_details']);
  const text = count(inD['text_tokens']);
  const audio = count(inD['audio_tokens']);
  const inputTokens = Math.max(count(u['input_tokens']), text + audio);
  const outputTokens = count(u['output_tokens']);
  const totalTokens = Math.max(count(u['total_tokens']), inputTokens + outputTokens);
  const r = price.tokens;
  if (r) {
    const undetailed = inputTokens - text - audio;
    const nanos = text * r.textIn + audio * r.audioIn + undetailed * Math.max(r.textIn, r.audioIn) + outputTokens * r.textOut;
    return { nanos, inputTokens, outputTokens, totalTokens, seconds: null, estimated: false };
  }
  // Duration-priced model reporting tokens: the audio tokens give the audio length.
  const audioTokens = audio > 0 ? audio : inputTokens;
  const ms = Math.ceil((audioTokens * 1000) / USER_AUDIO_TOKENS_PER_SEC);
  return { nanos: divRound(ms * price.perMinuteNanos!, 60_000), inputTokens, outputTokens, totalTokens, seconds: ms / 1000, estimated: true };
}

/**
 * Worst-case cost of a response about to run: its input (the context estimate, capped at the
 * model's window) entirely uncached at the dearest input rate, plus its output limit at the
 * dearest output rate.
 */
export function worstCaseCost(price: ModelPrice, contextTokens: number, maxOutputTokens: number): { nanos: Nanos; tokens: number } {
  const input = Math.min(Math.max(0, contextTokens), price.contextWindow);
  const output = Math.min(Math.max(0, maxOutputTokens), price.maxOutputTokens);
  return { nanos: input * price.maxInRate + output * price.maxOutRate, tokens: input + output };
}

/**
 * Worst-case cost of a response from an input estimate split by modality: the context window is
 * filled with the dearest modality first (the upstream truncates, never bills past the window),
 * all uncached; output at the text output rate when the response cannot produce audio, else at
 * the dearest output rate.
 */
export function worstCaseOf(price: ModelPrice, input: Readonly<ModalityTokens>, promptTokens: number, maxOutputTokens: number, textOnlyOutput: boolean): { nanos: Nanos; tokens: number } {
  const r = price.tokens;
  if (!r) return { nanos: 0, tokens: 0 };
  const parts: Array<[number, number]> = [
    [input.text + promptTokens, r.textIn],
    [input.audio, r.audioIn],
    [input.image, r.imageIn],
  ];
  parts.sort((a, b) => b[1] - a[1]);
  let room = price.contextWindow;
  let nanos = 0;
  for (const [count, perToken] of parts) {
    const n = Math.min(Math.max(0, count), room);
    room -= n;
    nanos += n * perToken;
  }
  const output = Math.min(Math.max(0, maxOutputTokens), price.maxOutputTokens);
  nanos += output * (textOnlyOutput ? r.textOut : price.maxOutRate);
  const tokens = price.contextWindow - room + output;
  // An estimate that is not a number (NaN propagates through min/max) would reserve NaN, and a NaN
  // in a ledger's reserved total lets every later reservation through: it reserves the model's
  // dearest possible response instead.
  if (!Number.isFinite(nanos) || !Number.isFinite(tokens)) {
    return { nanos: price.contextWindow * Math.max(r.textIn, r.audioIn, r.imageIn) + price.maxOutputTokens * price.maxOutRate, tokens: price.contextWindow + price.maxOutputTokens };
  }
  return { nanos, tokens };
}
