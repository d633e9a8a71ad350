import { closeWith, CONTINUE, reject, type CloseInfo, type Filter, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import { PCM16_BYTES_PER_MS } from '../protocol/audio-format.js';
import { ProxyError } from '../protocol/errors.js';
import { TRANSLATION_AUDIO_IN } from '../protocol/events.js';
import { asString } from '../protocol/json.js';
import { base64DecodedBytes } from '../protocol/json-bytes.js';
import { sniffStringSpans, spanText } from '../protocol/sniff.js';
import { budgetError } from './refusals.js';
import { reserveFailsOpen, type MeteringRuntime } from './runtime.js';
import type { Amount, MaybePromise, ReserveResult, UsageRecord } from './ledger.js';
import { hasCaps, type EffectiveLimits } from './limits.js';
import { DEFAULT_PRICES, TRANSLATION_MODELS } from './default-prices.js';
import { divRound, formatUsd, type Nanos } from './money.js';
import { transcriptionCost, type PriceBook, type PriceLookup } from './pricing.js';
import { byAudioLength } from './transcriptions.js';

/**
 * Input audio a translation session reserves ahead (one reservation at a time): each block is
 * settled once the audio forwarded has used it up and the next one is reserved, and the block in use
 * is settled at the close for the audio it covered. A minute of gpt-realtime-translate is $0.034:
 * what one session may run past a cap under `admission: remaining` is at most one block.
 */
export const TRANSLATION_BLOCK_MS = 60_000;

/**
 * A translation session's input: base64 PCM16 mono at 24 kHz, the only format its WebSocket takes
 * (openai `RealtimeTranslationInputAudioBufferAppendEvent`); its session config names no format.
 */
const TRANSLATION_BYTES_PER_MS = PCM16_BYTES_PER_MS;

/**
 * Null when `model` can run a translation session: priced for audio (a `transcription` price, per
 * minute or per audio token). A realtime model's price bills responses, which a translation session
 * never has: refused as an unpriced model is, before the upgrade. So is a shipped transcription model
 * (gpt-realtime-whisper, …, or an alias of one), priced per minute but not a translation model
 * (default-prices.ts TRANSLATION_MODELS).
 */
export function translationPriceProblem(prices: PriceBook, model: string): ProxyError | null {
  const retired = model ? prices.retired(model) : null;
  if (retired !== null) return new ProxyError('model_retired', { message: `The model "${model}" has been shut down by OpenAI; use "${retired}" instead.`, details: { model, successor: retired }, param: 'model' });
  const found = model ? prices.lookup(model) : null;
  if (found?.price.kind === 'transcription') {
    // A shipped transcription model (gpt-realtime-whisper, …) is priced per minute too, but only a
    // translation model runs here: until 2026-12-07 it was dialled and only the upstream refused it.
    const id = prices.pricedId(model);
    if (id !== null && Object.hasOwn(DEFAULT_PRICES, id) && !TRANSLATION_MODELS.has(id)) {
      return new ProxyError('unknown_model_price', {
        message: `The model "${model}" is a transcription model: a translation session needs a translation model (${[...TRANSLATION_MODELS].join(', ')}).`,
        details: { model, kind: 'transcription' },
        param: 'model',
      });
    }
    return null;
  }
  if (found) {
    return new ProxyError('unknown_model_price', {
      message: `The model "${model}" is priced as a realtime model: a translation session is billed by its input audio and needs a per-minute price.`,
      details: { model, kind: 'realtime' },
      param: 'model',
    });
  }
  return new ProxyError('unknown_model_price', { message: `No price is configured for model "${model || '(unknown)'}".`, param: 'model' });
}

/** The audio bytes a base64 string carries (its length, less padding: nothing is decoded). */
function base64Bytes(audio: string): number {
  return Buffer.byteLength(audio, 'base64');
}

/** The members of an append the filter reads: sniffed together, in one walk of the frame. */
const APPEND_MEMBERS: readonly string[] = ['audio', 'event_id'];

/**
 * An append's audio bytes and event_id, sniffed from the frame's bytes in one walk of its top level:
 * a translation append is ~13 KB of base64 every 200 ms, and audio is never parsed on the relay's
 * path (until 2026-12-07 this filter parsed each one, then sniffed each one twice). A frame the
 * sniffer cannot read cheaply (escapes, a repeated member) is parsed, as the filters read it. Null:
 * no audio string (the upstream refuses it; nothing is billed).
 */
export function appendedAudio(frame: Frame): { readonly bytes: number; readonly eventId: string | null } | null {
  const spans = sniffStringSpans(frame.bytes, APPEND_MEMBERS);
  if (spans === undefined) {
    const ev = frame.json();
    const audio = ev['audio'];
    if (typeof audio !== 'string' || audio.length === 0) return null;
    return { bytes: base64Bytes(audio), eventId: asString(ev['event_id']) ?? null };
  }
  const [audio, eventId] = spans;
  if (!audio || audio[1] === audio[0]) return null;
  return { bytes: base64DecodedBytes(frame.bytes, audio[0], audio[1]), eventId: eventId ? spanText(frame.bytes, eventId) : null };
}

interface Block {
  /** Ledger reservation id; null when nothing was reserved (no caps, or the ledger failed open). */
  readonly id: string | null;
  /** Session audio (ms) where the block starts and how much it covers. */
  readonly startMs: number;
  readonly ms: number;
}

/**
 * Metering of a translation session (`…/realtime/translations`): priced per minute of input audio,
 * counted from each `session.input_audio_buffer.append` as it passes metering on its way upstream.
 * The audio is reserved ahead in blocks against the tenant's caps (refused past one with an `error`,
 * the append not sent, as input audio held over a cap is elsewhere; `onExhausted: end_session` ends
 * the session instead) and settled as it is used up, the last block at the close whoever ends the
 * session: a disconnect leaves nothing reserved. `maxSessionTokens` counts the tokens the model's
 * price gives the audio (10 a second for a model with token prices; none for a per-minute price, as
 * for per-minute transcription). The upstream reports no usage for translation (no `usage` on any
 * translation server event, `session.closed` included): the proxy's count is the bill.
 */
export class TranslationMeteringFilter implements Filter {
  readonly #ctx: SessionContext;
  readonly #rt: MeteringRuntime;
  readonly #slot: string | null;
  readonly #limits: EffectiveLimits;
  readonly #capped: boolean;
  readonly #model: string;
  readonly #price: PriceLookup | null;
  /** Input audio bytes forwarded so far. */
  #bytes = 0;
  /** The block in use: from the first reservation on there is always one (settled and replaced, never emptied) until the close. */
  #block: Block | null = null;
  #seq = 0;
  #closed = false;
  #durationTimer: NodeJS.Timeout | null = null;
  #costNanos: Nanos = 0;
  #tokens = 0;
  #refused = 0;

  constructor(ctx: SessionContext, rt: MeteringRuntime, slot: string | null) {
    this.#ctx = ctx;
    this.#rt = rt;
    this.#slot = slot;
    this.#limits = rt.limitsOf(ctx.tenant);
    this.#capped = hasCaps(this.#limits.caps);
    this.#model = ctx.model;
    this.#price = ctx.model ? rt.prices.lookup(ctx.model) : null;
    const maxMs = this.#limits.maxSessionDurationMs;
    if (maxMs !== null) {
      this.#durationTimer = ctx.setTimer(maxMs, () => {
        this.#durationTimer = null;
        this.#ctx.report({ kind: 'budget', action: 'ended', scope: 'session', limit: 'session_duration_exceeded', code: 'session_duration_exceeded', responseId: null });
        this.#ctx.close(new ProxyError('session_duration_exceeded', { details: { limitSec: maxMs / 1000 } }));
      });
    }
  }

  onClient(frame: Frame): Verdict | Promise<Verdict> {
    if (frame.type !== TRANSLATION_AUDIO_IN || this.#closed) return CONTINUE;
    const appended = appendedAudio(frame);
    // Not audio the upstream can take: it refuses it, and nothing is billed for it.
    if (appended === null) return CONTINUE;
    const eventId = appended.eventId;
    const bytes = this.#bytes + appended.bytes;
    const needMs = Math.ceil(bytes / TRANSLATION_BYTES_PER_MS);
    const limit = this.#limits.maxSessionTokens;
    if (limit !== null && this.#amountFor(needMs).tokens > limit) {
      return this.#refuse(new ProxyError('token_limit_exceeded', { eventId, param: 'audio', details: { limit, used: this.#amountFor(Math.ceil(this.#bytes / TRANSLATION_BYTES_PER_MS)).tokens, reserved: 0 } }));
    }
    // Blocks follow each other from 0: with none yet, nothing is covered.
    const coveredMs = this.#block ? this.#block.startMs + this.#block.ms : 0;
    if (needMs <= coveredMs) {
      this.#bytes = bytes;
      return CONTINUE;
    }
    // A frame longer than a block reserves all of it at once, and must fit the caps whatever the
    // admission mode: `remaining` grants any reservation while something is left, and one 16 MiB
    // append (4.4 minutes) would run past a cap by that much, not by one block. Until 2026-12-07 it
    // did (test/relay/redteam-19t-translation.test.ts).
    const ms = Math.max(TRANSLATION_BLOCK_MS, needMs - coveredMs);
    const id = `${this.#ctx.id}:translation:${++this.#seq}`;
    const mode = ms > TRANSLATION_BLOCK_MS ? 'worst_case' : this.#rt.config.admission;
    // Uncapped: nothing to reserve against, but blocks still settle as they are used up (the spend shows while the session runs).
    const reserved: MaybePromise<ReserveResult | null> = this.#capped ? this.#reserve(id, this.#amountFor(ms), mode) : null;
    const decide = (r: ReserveResult | null): Verdict => {
      if (this.#closed) {
        if (r?.kind === 'ok') this.#release(id);
        return CONTINUE;
      }
      if (r === null) {
        if (this.#block) this.#bill(this.#block.id, this.#block.ms);
        this.#block = { id: null, startMs: coveredMs, ms };
        this.#bytes = bytes;
        return CONTINUE;
      }
      if (r.kind === 'over') return this.#refuse(budgetError(r.hit, { eventId, param: 'audio' }));
      if (r.kind === 'unavailable' && !reserveFailsOpen(this.#rt, r)) return this.#refuse(new ProxyError('budget_unavailable', { eventId, message: 'The budget ledger is unavailable; the audio was not sent upstream.' }));
      // The block in use is used up: its audio is billed now, the new one covers what follows.
      if (this.#block) this.#bill(this.#block.id, this.#block.ms);
      this.#block = { id: r.kind === 'ok' ? id : null, startMs: coveredMs, ms };
      this.#bytes = bytes;
      return CONTINUE;
    };
    return reserved instanceof Promise ? reserved.then(decide) : decide(reserved);
  }

  /** An append refused over a cap or limit; under `onExhausted: end_session` the session ends with it. */
  #refuse(error: ProxyError): Verdict {
    this.#refused++;
    const cap = error.details?.['cap'];
    const limit = typeof cap === 'string' ? cap : error.code === 'token_limit_exceeded' ? 'max_session_tokens' : error.code;
    const scope = error.code === 'token_limit_exceeded' ? 'session' : 'tenant';
    const end = this.#rt.config.onExhausted === 'end_session' && error.code !== 'budget_unavailable';
    this.#ctx.report({ kind: 'budget', action: end ? 'ended' : 'refused', scope, limit, code: error.code, responseId: null });
    return end ? closeWith(new ProxyError(error.code, { message: error.message, details: error.details ?? {}, eventId: error.eventId, close: 'limitExceeded' })) : reject(error);
  }

  /** What `ms` of input audio costs at the session's price (tokens only for a model with token prices). */
  #amountFor(ms: number): Amount {
    const price = this.#price?.price;
    if (!price) return { nanos: 0, tokens: 0 };
    const cost = transcriptionCost(price, { type: 'duration', seconds: ms / 1000 });
    if (!cost) return { nanos: 0, tokens: 0 };
    const billed = byAudioLength(price, cost, 0);
    return { nanos: billed.nanos, tokens: billed.totalTokens };
  }

  #reserve(id: string, amount: Amount, mode: 'remaining' | 'worst_case'): MaybePromise<ReserveResult> {
    const req = { tenant: this.#ctx.tenant.id, id, amount, caps: this.#limits.caps, wallMs: this.#rt.wall(), mode };
    const failed = (err: unknown): ReserveResult => {
      this.#ctx.log.error({ err }, 'metering: translation reserve failed');
      return { kind: 'unavailable', reason: err instanceof Error ? err.message : String(err) };
    };
    try {
      const r = this.#rt.ledger.reserve(req);
      return r instanceof Promise ? r.catch(failed) : r;
    } catch (err) {
      return failed(err);
    }
  }

  #release(id: string): void {
    try {
      const r = this.#rt.ledger.release(this.#ctx.tenant.id, id);
      if (r instanceof Promise) r.catch(() => undefined);
    } catch (err) {
      this.#ctx.log.error({ err }, 'metering: release failed');
    }
  }

  /**
   * Bills `ms` of audio under the reservation `reservationId` (which gives way to the record), or under
   * an id of its own when nothing was reserved. A block always has audio to bill: the append that
   * made it needed more than the blocks before it covered.
   */
  #bill(reservationId: string | null, ms: number): void {
    const amount = this.#amountFor(ms);
    const record: UsageRecord = {
      ts: this.#rt.wall(),
      tenant: this.#ctx.tenant.id,
      session: this.#ctx.id,
      source: 'transcription',
      ref: reservationId ?? `${this.#ctx.id}:translation:${++this.#seq}`,
      model: this.#model,
      status: null,
      costNanos: amount.nanos,
      inputTokens: amount.tokens,
      outputTokens: 0,
      cachedTokens: 0,
      totalTokens: amount.tokens,
      input: null,
      cached: null,
      output: null,
      seconds: ms / 1000,
      estimated: false,
      settledBy: 'translation_audio',
      fallbackPrice: this.#price?.fallback ?? false,
    };
    this.#costNanos += amount.nanos;
    this.#tokens += amount.tokens;
    this.#ctx.report({ kind: 'usage', responseId: record.ref, model: record.model, costMicros: divRound(amount.nanos, 1000), inputTokens: amount.tokens, outputTokens: 0, cachedTokens: 0, source: 'transcription' });
    try {
      const r = this.#rt.ledger.settle(reservationId, record);
      if (r instanceof Promise) r.catch((err: unknown) => this.#ctx.log.error({ err, ref: record.ref }, 'metering: settle failed'));
    } catch (err) {
      this.#ctx.log.error({ err, record }, 'metering: settle failed');
    }
    try {
      this.#rt.onRecord(record);
    } catch (err) {
      this.#ctx.log.error({ err }, 'metering: usage export failed');
    }
  }

  /** Whoever ended the session (client, upstream, proxy): the audio forwarded is billed, nothing stays reserved. */
  onClose(_info: CloseInfo): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#durationTimer) clearTimeout(this.#durationTimer);
    const totalMs = Math.ceil(this.#bytes / TRANSLATION_BYTES_PER_MS);
    if (this.#block) this.#bill(this.#block.id, Math.min(this.#block.ms, totalMs - this.#block.startMs));
    this.#block = null;
    if (this.#slot) this.#rt.ledger.releaseSlot(this.#ctx.tenant.id, this.#slot);
  }

  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return {
      meteringModel: this.#model || null,
      meteringTranslationSeconds: Math.ceil(this.#bytes / TRANSLATION_BYTES_PER_MS) / 1000,
      meteringCostUsd: formatUsd(this.#costNanos),
      meteringCostNanos: this.#costNanos,
      meteringTokens: this.#tokens,
      meteringRefused: this.#refused,
    };
  }
}
