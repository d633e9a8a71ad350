import type { Logger } from 'pino';
import type { JsonObject } from '../pipeline/frame.js';
import { asString as str } from '../protocol/json.js';
import { LazyMap, LazySet } from '../lazy-collections.js';
import type { Amount, SettledBy } from './ledger.js';
import { transcriptionCost, USER_AUDIO_TOKENS_PER_SEC, type ModelPrice, type PriceBook, type PriceLookup, type TranscriptionCost } from './pricing.js';

/** Dearest shipped transcription price, used only when a transcription's model could not be priced. */
export const LAST_RESORT_TRANSCRIPTION = 'gpt-4o-transcribe';
/** Committed input audio awaiting its transcription's completed event, per session. */
const MAX_UNTRANSCRIBED = 256;
/** Client transcription_session.updates kept waiting for their answer. */
const MAX_SESSION_UPDATES = 64;

/** A committed input audio whose transcription has not reported: its audio bound, the model and prompt it was committed under. */
export interface PendingTranscription {
  readonly ms: number;
  readonly model: string | null;
  readonly promptTokens: number;
  /**
   * Ledger reservations holding its estimate against the tenant's caps (MeteringFilter's
   * #reserveTranscription; several after a fold of commits in flight), settled with its record or
   * released, exactly once.
   */
  readonly reservations: string[];
}

/** A transcription model and prompt (in tokens) an update in flight asks. */
interface Asked {
  readonly model: string;
  readonly promptTokens: number;
  /** Its place among the updates of its kind: unanswered while fewer are answered. */
  readonly n: number;
}

/** What a transcription bills (InputTranscriptions.price). */
export interface PricedTranscription {
  readonly model: string;
  readonly cost: TranscriptionCost;
  readonly fallback: boolean;
  /** As asked, or `unreadable_usage_estimate` when a completed event's usage priced at nothing. */
  readonly settledBy: SettledBy;
}

/**
 * A transcription billed by its audio length (its completed event never came, or its usage cannot
 * be priced), from `cost`, the model's price for that audio: for a model that reports tokens, the
 * audio tokens it would have reported (10 a second, the estimate's rate for input audio) count too,
 * so token caps and the session token limit see it as they see the model's own reports (until
 * 2026-12-06 such an estimate counted 0 tokens; test/metering/redteam-money-2.test.ts), and so does
 * its prompt, text input the model bills on every transcription (until 2026-12-07 it did not: a
 * client setting a long prompt and leaving right behind its commits had OpenAI bill the prompt per
 * transcription and the proxy bill the audio only; test/metering/redteam-17-transcription-prompt.test.ts).
 * A per-minute model reports seconds only: no tokens, no prompt. What a transcribed commit reserves too.
 */
export function byAudioLength(price: ModelPrice, cost: TranscriptionCost, promptTokens: number): TranscriptionCost {
  if (price.tokens === null) return cost;
  let out = cost;
  if (out.totalTokens === 0 && out.seconds !== null && out.seconds > 0) {
    const audio = Math.ceil(out.seconds * USER_AUDIO_TOKENS_PER_SEC);
    out = { ...out, inputTokens: audio, totalTokens: audio };
  }
  if (promptTokens > 0) out = { ...out, nanos: out.nanos + promptTokens * price.tokens.textIn, inputTokens: out.inputTokens + promptTokens, totalTokens: out.totalTokens + promptTokens };
  return out;
}

/** A transcription setting's `prompt`, one token per UTF-8 byte (the estimate's rule for text). */
export function transcriptionPromptTokens(transcription: JsonObject | null): number {
  const prompt = transcription?.['prompt'];
  return typeof prompt === 'string' ? Buffer.byteLength(prompt, 'utf8') : 0;
}

/**
 * A session's input transcription, as metering follows it: the model and prompt it runs under
 * (reported, and asked by updates in flight), the commits on their way upstream and the committed
 * items awaiting their transcription, each with the reservations holding its estimate, and what a
 * transcription costs. It touches neither the ledger nor the client: MeteringFilter reserves,
 * releases and settles what it answers.
 */
export class InputTranscriptions {
  readonly #prices: PriceBook;
  readonly #log: Logger;
  /** The session's `session.update`s answered so far (ConversationView.sessionUpdatesAnswered). */
  readonly #sessionUpdatesAnswered: () => number;
  #model: string | null = null;
  /**
   * The transcription `prompt` as the upstream reported it, in tokens (one per UTF-8 byte): a
   * token-priced model bills it as text input on every transcription it runs, so a transcription
   * billed by its audio length counts it too (see price).
   */
  #promptTokens = 0;
  /** A transcription model a client session.update in flight asks (`n`: its place among the updates), until answered. */
  #asked: Asked | null = null;
  /**
   * The same for a beta transcription session's `transcription_session.update` (Azure preview,
   * `?intent=transcription`), numbered among those (the conversation view counts session.updates
   * only): `n` is unanswered while #txSessionUpdatesAnswered is below it. Until 2026-12-07 it was not
   * read: the update and 20 commits in one write reserved nothing and spent $2 against a $0.05 cap
   * (test/metering/redteam-17d-beta-transcription-session.test.ts).
   */
  #sessionAsked: Asked | null = null;
  /** Client transcription_session.updates forwarded, and their event ids (null: none) in order while unanswered. */
  #txSessionUpdatesSent = 0;
  #txSessionUpdatesAnswered = 0;
  readonly #txSessionUpdateIds: (string | null)[] = [];
  /**
   * Input audio committed while the session transcribes it, by item id, until its transcription
   * completes or fails: OpenAI bills a transcription that ran even if its completed event never
   * reached the proxy (client and upstream gone), so the session's close bills what is left by its
   * audio length. Bounded: the oldest beyond it is taken as dropped by the upstream and billed then.
   */
  readonly #untranscribed = new LazyMap<string, PendingTranscription>();
  /**
   * Client commits of a transcribed session on their way upstream, before their
   * `input_audio_buffer.committed` was read (oldest first; `eventId`: the id the relay stamped it
   * with, from its `stamped` report). The upstream transcribes (and bills) the audio of a commit it
   * got even if the session ends before its `committed` is read (a client that closes right behind
   * its commit: no response runs, so the relay does not linger), so the close bills what is left by
   * its audio length (until 2026-12-06 only items whose `committed` was read were; test/metering/
   * redteam-money.test.ts). A commit the upstream refuses (its `error` names the stamped id) leaves.
   */
  readonly #commitsAhead: (PendingTranscription & { eventId: string | null })[] = [];
  /** Items billed as dropped (beyond the bound): a completed event that still comes is not billed twice. */
  readonly #dropped = new LazySet<string>();

  constructor(prices: PriceBook, log: Logger, sessionUpdatesAnswered: () => number) {
    this.#prices = prices;
    this.#log = log;
    this.#sessionUpdatesAnswered = sessionUpdatesAnswered;
  }

  /** The transcription model as the upstream reported it (null: the session does not transcribe). */
  get model(): string | null {
    return this.#model;
  }

  /** The session's transcription setting as the upstream reports it (a session's `transcription` member, present). */
  reported(transcription: JsonObject | null): void {
    this.#model = str(transcription?.['model']);
    this.#promptTokens = transcriptionPromptTokens(transcription);
  }

  /** A session.update on its way upstream (`n`: its place among the updates) setting `transcription`. */
  sessionUpdateSent(transcription: JsonObject | null, n: number): void {
    // A setting naming no model transcribes with the upstream's default: priced as an unknown model is.
    // Until 2026-12-07 only a setting naming its model counted as in flight: a prompt-only update and
    // commits right behind it reserved the old prompt (test/metering/redteam-17d-modelless-transcription.test.ts).
    const model = transcription === null ? null : (str(transcription['model']) ?? LAST_RESORT_TRANSCRIPTION);
    // Pessimistic until answered: the larger of the asked and the known prompt.
    if (model !== null) this.#asked = { model, promptTokens: Math.max(this.#promptTokens, transcriptionPromptTokens(transcription)), n };
  }

  /** A beta transcription session's update on its way upstream: its transcription counts from here (#sessionAsked). */
  transcriptionSessionUpdateSent(eventId: string | null, transcription: JsonObject | null): void {
    if (this.#txSessionUpdateIds.length >= MAX_SESSION_UPDATES) this.#txSessionUpdateIds.shift();
    this.#txSessionUpdateIds.push(eventId);
    const n = ++this.#txSessionUpdatesSent;
    if (transcription !== null) {
      const model = str(transcription['model']) ?? LAST_RESORT_TRANSCRIPTION;
      this.#sessionAsked = { model, promptTokens: Math.max(this.#promptTokens, this.#sessionAsked?.promptTokens ?? 0, transcriptionPromptTokens(transcription)), n };
    }
  }

  /**
   * The oldest transcription_session.update in flight answered (`transcription_session.updated`,
   * `eventId` null), or the one `eventId` names refused (an `error`; any other id: nothing). An answer
   * with no id left counts too (its update's id was forgotten beyond 64): until 2026-12-07 it did
   * not, and the last of 65 updates in flight stayed asked for the whole session
   * (src/metering/transcriptions-survivors.test.ts).
   */
  transcriptionSessionUpdateAnswered(eventId: string | null): void {
    const at = eventId === null ? 0 : this.#txSessionUpdateIds.indexOf(eventId);
    if (at < 0) return;
    this.#txSessionUpdateIds.splice(0, at + 1);
    this.#txSessionUpdatesAnswered = Math.min(this.#txSessionUpdatesSent, this.#txSessionUpdatesAnswered + at + 1);
    if (this.#sessionAsked !== null && this.#sessionAsked.n <= this.#txSessionUpdatesAnswered) this.#sessionAsked = null;
  }

  /** The transcription an update in flight asks (a session.update's or a transcription_session.update's), the larger prompt of both. */
  #askedNow(): { readonly model: string; readonly promptTokens: number } | null {
    if (this.#asked !== null && this.#asked.n <= this.#sessionUpdatesAnswered()) this.#asked = null;
    const a = this.#asked;
    const b = this.#sessionAsked;
    if (a === null || b === null) return a ?? b;
    return { model: a.model, promptTokens: Math.max(a.promptTokens, b.promptTokens) };
  }

  /**
   * The model and prompt audio committed now is transcribed with (model null: not transcribed): an
   * update turning transcription on applies upstream before a commit sent after it, even if its
   * answer is still on its way; the larger of the asked and the known prompt. A switch in flight
   * (the session transcribes already) may still be refused: the dearer of the known and the asked
   * model for `ms` of audio, as the prompt is the larger. Until 2026-12-07 the known model alone: a
   * commit right behind a switch from gpt-4o-mini-transcribe to gpt-4o-transcribe reserved half of
   * what it was charged (test/metering/redteam-19m-transcription-switch.test.ts).
   */
  now(ms = 1_000): { readonly model: string | null; readonly promptTokens: number } {
    const asked = this.#askedNow();
    const promptTokens = Math.max(this.#promptTokens, asked?.promptTokens ?? 0);
    const known = this.#model;
    if (known === null || asked === null || asked.model === known) return { model: known ?? asked?.model ?? null, promptTokens };
    const dearer = this.estimate(asked.model, ms, promptTokens).nanos > this.estimate(known, ms, promptTokens).nanos ? asked.model : known;
    return { model: dearer, promptTokens };
  }

  /**
   * The price a transcription under `model` is billed at: the one rule of its estimate (what its
   * commit reserves) and its record (price), so a reservation is never priced below its charge. The
   * model's own price; else (a model without one, or none named: the upstream's default) the
   * configured fallback, as a response of an unpriced model is priced; else the dearest shipped
   * transcription (`lastResort`). Until 2026-12-07 the two had a rule each: no model was priced at
   * the last resort even with a fallback configured, and an empty model name was estimated at the
   * fallback but charged at the last resort, twice a cheaper fallback's estimate
   * (src/metering/transcriptions-survivors.test.ts, "one price choice").
   */
  #priceOf(model: string | null): { readonly lookup: PriceLookup; readonly lastResort: boolean } {
    const lookup = model ? this.#prices.lookup(model) : this.#prices.fallback;
    return lookup ? { lookup, lastResort: false } : { lookup: { price: this.#prices.own(LAST_RESORT_TRANSCRIPTION)!, fallback: true }, lastResort: true };
  }

  /** What a transcription of `ms` of audio under `promptTokens` is billed if its completed event never comes (MeteringFilter's #billUntranscribed). */
  estimate(model: string | null, ms: number, promptTokens: number): Amount {
    const { price } = this.#priceOf(model).lookup;
    const cost = byAudioLength(price, transcriptionCost(price, { type: 'duration', seconds: ms / 1000 })!, promptTokens);
    return { nanos: cost.nanos, tokens: cost.totalTokens };
  }

  /**
   * The tokens of every transcription still awaited (commits in flight, committed items without their
   * completed event), each at its estimate: what they may add to the session's token count.
   */
  heldTokens(): number {
    let tokens = 0;
    for (const c of this.#commitsAhead) if (c.ms > 0) tokens += this.estimate(c.model, c.ms, c.promptTokens).tokens;
    for (const p of this.#untranscribed.values()) tokens += this.estimate(p.model, p.ms, p.promptTokens).tokens;
    return tokens;
  }

  /** A client commit of a transcribed session left for the upstream, tracked until its `committed` is read (#commitsAhead). */
  commitLeft(tx: PendingTranscription): void {
    if (this.#commitsAhead.length >= MAX_UNTRANSCRIBED) {
      // Never answered: fold the oldest into the next, so no audio is lost (nor a transcription's prompt, nor a reservation).
      const oldest = this.#commitsAhead.shift()!;
      const next = this.#commitsAhead.shift()!;
      this.#commitsAhead.unshift({ ms: oldest.ms + next.ms, model: next.model, promptTokens: oldest.promptTokens + next.promptTokens, reservations: [...oldest.reservations, ...next.reservations], eventId: next.eventId });
    }
    this.#commitsAhead.push({ ...tx, eventId: null });
  }

  /** The relay stamped a client commit with `eventId`: stamped events leave in the order the client sent them, so the oldest commit not named yet. */
  commitStamped(eventId: string): void {
    const c = this.#commitsAhead.find((x) => x.eventId === null);
    if (c) c.eventId = eventId;
  }

  /** The upstream refused the commit `eventId` names (an empty or too short buffer): no item, nothing transcribed; its reservations are free. */
  commitRefused(eventId: string): readonly string[] {
    const refused = this.#commitsAhead.findIndex((c) => c.eventId === eventId);
    return refused >= 0 ? this.#commitsAhead.splice(refused, 1)[0]!.reservations : [];
  }

  /** An `input_audio_buffer.committed` read: the oldest client commit in flight it answers (none: server VAD's own). */
  takeCommitAhead(): PendingTranscription | undefined {
    return this.#commitsAhead.shift();
  }

  /**
   * A committed item of the transcribed session (`ahead`: the client commit it answers, whose
   * reservations are the item's now). `freed`: reservations of an item of the same id it replaces;
   * `dropped`: the oldest item beyond the bound, taken as dropped by the upstream (billed now).
   */
  itemCommitted(itemId: string, ms: number, ahead: PendingTranscription | undefined): { readonly pending: PendingTranscription; readonly freed: readonly string[]; readonly dropped: readonly [string, PendingTranscription] | null } {
    const pending: PendingTranscription = { ms, model: this.#model, promptTokens: this.#promptTokens, reservations: ahead ? ahead.reservations : [] };
    const freed = this.#untranscribed.get(itemId)?.reservations ?? [];
    this.#untranscribed.set(itemId, pending);
    let dropped: [string, PendingTranscription] | null = null;
    if (this.#untranscribed.size > MAX_UNTRANSCRIBED) {
      dropped = this.#untranscribed.entries().next().value!;
      this.#untranscribed.delete(dropped[0]);
      this.#dropped.add(dropped[0]);
      if (this.#dropped.size > MAX_UNTRANSCRIBED) this.#dropped.delete(this.#dropped.values().next().value!);
    }
    return { pending, freed, dropped };
  }

  /** `pending` is still the transcription awaited for `itemId` (not billed nor replaced meanwhile). */
  awaits(itemId: string, pending: PendingTranscription): boolean {
    return this.#untranscribed.get(itemId) === pending;
  }

  /** An item billed as dropped already (its completed event, late, is not billed again): forgotten now. */
  takeDropped(itemId: string): boolean {
    return this.#dropped.delete(itemId);
  }

  /** The item's transcription reported (completed or failed): what its commit left awaiting, no longer awaited. */
  take(itemId: string): PendingTranscription | undefined {
    const pending = this.#untranscribed.get(itemId);
    this.#untranscribed.delete(itemId);
    return pending;
  }

  /**
   * At the close: every transcription the upstream runs (and OpenAI bills) that never reported, by
   * its name: committed items, then commits whose committed event was never read (their item id is
   * unknown, the stamped id names them; an empty one reserved nothing). Forgotten now.
   */
  takeAllUnreported(): [string, PendingTranscription][] {
    const left: [string, PendingTranscription][] = [...this.#untranscribed];
    this.#untranscribed.clear();
    for (const [i, c] of this.#commitsAhead.entries()) if (c.ms > 0) left.push([`commit:${c.eventId ?? i}`, c]);
    this.#commitsAhead.length = 0;
    return left;
  }

  /**
   * What a transcription bills, from its `usage` (a completed event's, or its audio's duration when
   * billed by its length: `settledBy` other than `transcription.completed`, `promptTokens` counted
   * too). `committed`: the item's committed audio, when the proxy saw it committed. A completed event
   * whose usage prices at nothing (absent, null, counts that are not numbers, a duration of 0 s) bills
   * that audio by its length instead, as if the event never came (until 2026-12-06 it billed $0;
   * OpenAI bills the transcription that ran; test/metering/redteam-money.test.ts). Null: not billed.
   */
  price(itemId: string, txModel: string | null, usage: unknown, settledBy: SettledBy, committed?: PendingTranscription, promptTokens = 0): PricedTranscription | null {
    const { lookup, lastResort } = this.#priceOf(txModel);
    if (lastResort) this.#log.warn({ model: txModel }, `metering: transcription with an unknown model billed at ${LAST_RESORT_TRANSCRIPTION} prices`);
    // The record names the model asked, or (none named) the one it was priced as.
    const model = txModel || lookup.price.id;
    let cost = transcriptionCost(lookup.price, usage);
    // A count or duration so large that its price (or token total) is no exact integer (`seconds:
    // 1e300` prices at Infinity) is unreadable: no ledger can add it (Redis refuses it, and its settle
    // queue retried it ahead of every later record; test/metering/redteam-22-huge-usage.test.ts).
    if (cost && !(Number.isSafeInteger(cost.nanos) && Number.isSafeInteger(cost.totalTokens))) cost = null;
    if (committed && committed.ms > 0 && (!cost || !(cost.nanos > 0))) {
      this.#log.warn({ itemId, model }, 'metering: input transcription completed with a usage that cannot be priced; billed by its audio length');
      return this.price(itemId, committed.model, { type: 'duration', seconds: committed.ms / 1000 }, 'unreadable_usage_estimate', undefined, committed.promptTokens);
    }
    if (!cost) {
      // (Nothing reserved for it: an item with a reservation has audio, billed by its length above.)
      this.#log.warn({ itemId, model }, 'metering: input transcription completed without usage; not billed');
      return null;
    }
    // Billed by its audio length (no completed event, or one whose usage cannot be read): see byAudioLength.
    if (settledBy !== 'transcription.completed') cost = byAudioLength(lookup.price, cost, promptTokens);
    return { model, cost, fallback: lookup.fallback, settledBy };
  }
}
