import { randomUUID } from 'node:crypto';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import { asObject as obj, asString as str, keptId, MAX_KEPT_ID_CHARS } from './json.js';
import { sniffString, sniffStringSpan, sniffStringSpans } from './sniff.js';
import { readOutputLimit, reportedSessionOutputLimit, type OutputLimit } from './limits.js';
import { applySessionUpdate } from './session-update.js';
import { parseUsage, type ResponseTokens } from './usage.js';
import { LazyMap, LazySet } from '../lazy-collections.js';
import type { ProxyError } from './errors.js';
import { SpokenTurns, type SpokenTurnsView } from './spoken-turns.js';

export { parseUsage };
export type { SpokenTurnsView, TurnPin } from './spoken-turns.js';

/**
 * The session's conversation as the proxy knows it: items (id, role, type, status, provenance,
 * governance marks) and responses (id, origin, state, usage). The relay core updates it once per
 * control event (never from audio frames: their types are not observed, so they are not parsed);
 * filters read it on `SessionContext.conversation` instead of re-deriving it.
 *
 * Memory is bounded: at most MAX_ITEMS items and MAX_RESPONSES responses, oldest pruned first, and
 * at most MAX_LISTED_ITEMS item ids listed by the responses kept (a running response is never
 * pruned). What the upstream alone decides past its bounds (more than MAX_RUNNING_RESPONSES running
 * at once, responses running or ending that list more than MAX_LISTED_ITEMS output items, an id longer
 * than MAX_KEPT_ID_CHARS) is an `upstreamFault`: the view learns nothing more and the relay ends the session.
 * No content (text, audio) is kept, but for the session.update bodies that went upstream before
 * session.created (`updatesBeforeCreated`, at most MAX_EARLY_UPDATE_BYTES), until the filters
 * have decided session.created.
 */

/** Who put an item into the conversation. 'server': the upstream, for reasons the proxy did not see. */
export type Provenance = 'client' | 'model' | 'proxy' | 'server';
/** Who started a response: a client `response.create` (in the conversation or out of band), server VAD, or the proxy. */
export type ResponseOrigin = 'client' | 'out_of_band' | 'vad' | 'proxy';
export type TranscriptState = 'none' | 'pending' | 'completed' | 'failed';

/** A governance fact about an item, set by filters with `SessionContext.markItem`. */
export interface ItemMark {
  readonly kind: 'redacted' | 'blocked' | 'cancelled' | 'deleted';
  readonly by: string;
  readonly rule: string | null;
}

export interface ItemView {
  readonly id: string;
  readonly type: string;
  readonly role: string | null;
  readonly status: string | null;
  readonly provenance: Provenance;
  /** The response that produced it (model items). */
  readonly responseId: string | null;
  readonly transcript: TranscriptState;
  readonly marks: readonly ItemMark[];
}

/** A response's usage (src/protocol/usage.ts: totals plus modality and cached splits). */
export type ResponseUsage = ResponseTokens;

export interface ResponseView {
  readonly id: string;
  readonly origin: ResponseOrigin;
  readonly state: 'in_progress' | 'completed' | 'cancelled' | 'failed' | 'incomplete';
  readonly usage: ResponseUsage | null;
  readonly itemIds: readonly string[];
  /**
   * `conversation_id` as the upstream reported it: the conversation's id; null: reported null
   * (out of band); undefined: not reported (some servers omit it), which tells nothing.
   */
  readonly conversationId: string | null | undefined;
  /**
   * Whether the response runs outside the default conversation: from `conversation_id` when the
   * upstream reported it, else from the create it answers (`conversation: "none"`); a
   * server-started response is in the conversation. Read this, not `conversationId`, for the kind.
   */
  readonly outOfBand: boolean;
  /**
   * The `event_id` the `response.create` this response answers left for the upstream with: the
   * proxy's own for every client create (`Conversation.stamp`; the client's is
   * `Conversation.clientEventId` of it), the injected event's for the proxy's; null for
   * server-started responses (VAD, idle timeout).
   */
  readonly createEventId: string | null;
  /** `max_output_tokens` echoed on `response.created`; null when absent or unreadable. */
  readonly maxOutputTokens: OutputLimit | null;
  /** `metadata` echoed on `response.created`, as JSON with its members sorted by name (the pairing key); null when none. */
  readonly metadata: string | null;
  /**
   * Its place among the responses the view learned of in this session (1, 2, …; from its
   * `response.created`, or its `response.done` when that came first): frames reach the filters in the
   * order the view reads them, so a filter that knows the last place it read knows every later one
   * is unread (`responsesLearnedAfter`).
   */
  readonly learned: number;
}

export interface ConversationView {
  item(id: string): ItemView | undefined;
  response(id: string): ResponseView | undefined;
  /** Responses started and not done yet, oldest first. */
  activeResponses(): readonly string[];
  /**
   * The responses whose `response.created` answered the create sent with `eventId` (the relay's id
   * for it), oldest first, among those still kept: read here as the frame arrives, perhaps before the
   * filters (queued behind an asynchronous verdict) read it.
   */
  responsesOfCreate(eventId: string): ResponseView[];
  /**
   * The responses the view learned of after the `learned`-th (ResponseView.learned), oldest first,
   * among those still kept (running or done): those a filter that read up to that one has not read
   * any frame of.
   */
  responsesLearnedAfter(learned: number): ResponseView[];
  /**
   * Responses learned of in this session (ResponseView.learned of the last), kept or not: those
   * learned after a place and no longer kept (done, pruned past MAX_RESPONSES) are this less that
   * place less `responsesLearnedAfter(place).length`.
   */
  readonly responsesLearned: number;
  /**
   * The place (ResponseView.learned) of the response that answered the create sent with `eventId`,
   * when the view forgot that response (pruned past MAX_RESPONSES): the most recent
   * MAX_FORGOTTEN_CREATES such creates are remembered; null for any other.
   */
  forgottenResponseOf(eventId: string): number | null;
  /** Items in conversation order of arrival (bounded). */
  items(): IterableIterator<ItemView>;
  /** The session's `max_output_tokens` as last reported (`session.created/updated`); null until reported. */
  readonly sessionMaxOutputTokens: OutputLimit | null;
  /**
   * The session.update bodies that went upstream before the proxy read `session.created`, merged in
   * order (`applySessionUpdate`); null when none. `session.created` shows the session as it was
   * before the upstream read those (sent while it was dialled, or while session.created was in
   * flight: filters' injected updates, a client secret's config, the client's updates as the whole
   * chain let them through), so a filter deciding on it applies this first. Fixed once
   * session.created is read, and dropped (null) at the next observed server event: it is for
   * deciding session.created only. (No filter pauses the server direction on session.created; if
   * one did, a frame read meanwhile would drop it first and a reader would see null, i.e. decide on
   * session.created alone: it then re-imposes what that lacks, which is safe.)
   */
  readonly updatesBeforeCreated: JsonObject | null;
  /**
   * `session.update`s sent upstream (the client's and the proxy's), and how many of them the
   * upstream has answered (`session.updated`, or an `error` naming one): it answers them in order,
   * so update number n is applied (or refused) once `sessionUpdatesAnswered` ≥ n.
   */
  readonly sessionUpdatesSent: number;
  readonly sessionUpdatesAnswered: number;
  /**
   * Spoken turns awaiting the proxy's answer (`guardrails.holdSpokenInput`): the items no prune may
   * delete now and why, and whether a client create stands for turns that passed. Written by the
   * spoken-turn hold through the record it opens; read by the truncation filter (src/protocol/spoken-turns.ts).
   */
  readonly spokenTurns: SpokenTurnsView;
}

export const MAX_ITEMS = 2048;
export const MAX_RESPONSES = 256;
/**
 * Responses running at once (response.created, no response.done yet). The upstream runs one in the
 * default conversation at a time, plus the out-of-band ones a client asked for; past this bound it
 * is broken or hostile (thousands of response.created without a response.done grew the running
 * list, and every filter walking it, without limit until 2026-12-07;
 * src/protocol/conversation.test.ts "bounds"). Neither dropped nor taken as ended: the session ends
 * (`upstreamFault`), and metering bills every response still running once, at its worst case.
 */
export const MAX_RUNNING_RESPONSES = 64;
/**
 * Output item ids the responses kept list together (`ResponseView.itemIds`, each id at most
 * MAX_KEPT_ID_CHARS): past it the oldest done responses are forgotten first; when only running ones
 * (and the one ending) are left, the view is at fault (`response_items`). A filter reads a response's
 * list whole (guardrails delete a cancelled response's items, metering counts them), so it is never cut.
 */
export const MAX_LISTED_ITEMS = 4 * MAX_ITEMS;

/**
 * A bound of the view the upstream went past (see MAX_RUNNING_RESPONSES): `limit` is the bound,
 * `what` which one. The view learns nothing more once it has one.
 */
export interface UpstreamFault {
  readonly what: 'running_responses' | 'response_items' | 'id_length';
  readonly limit: number;
}
const MAX_PENDING = 64;
/**
 * Creates whose response the view forgot, remembered by their event id (forgottenResponseOf), at
 * most: metering bills such a response once, by its place, not again by its create's id.
 */
export const MAX_FORGOTTEN_CREATES = 1024;
/**
 * Bytes of session.update events merged into `updatesBeforeCreated`. Past it they are forgotten
 * (null): a filter then reads session.created alone and re-imposes everything that differs from its
 * rules (safe; it may reset an allowed choice the client made that early).
 */
export const MAX_EARLY_UPDATE_BYTES = 1024 * 1024;

interface MutableItem {
  id: string;
  type: string;
  role: string | null;
  status: string | null;
  provenance: Provenance;
  responseId: string | null;
  transcript: TranscriptState;
  marks: ItemMark[];
}

interface MutableResponse {
  id: string;
  origin: ResponseOrigin;
  state: ResponseView['state'];
  usage: ResponseUsage | null;
  itemIds: string[];
  conversationId: string | null | undefined;
  outOfBand: boolean;
  createEventId: string | null;
  maxOutputTokens: OutputLimit | null;
  metadata: string | null;
  readonly learned: number;
}

/**
 * A `response.create` sent upstream, waiting for its `response.created`. The upstream echoes
 * `conversation_id` (null out of band), `metadata` and `max_output_tokens`, so a created response
 * is paired with the oldest create that agrees on all three, not simply the oldest: parallel
 * out-of-band creates start in any order, and a VAD response racing a client create never takes
 * its place unless nothing tells them apart.
 */
/**
 * Whether the unescaped JSON string at [start, end) of `bytes` is `text`: its UTF-8 bytes compared
 * one by one, without making a string of them (an id is ASCII in practice; any other character is
 * compared through its UTF-8 encoding, only then allocated).
 */
function spanEquals(bytes: Buffer, start: number, end: number, text: string): boolean {
  if (end - start < text.length) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return bytes.toString('utf8', start, end) === text;
    if (bytes[start + i] !== c) return false;
  }
  return end - start === text.length;
}

interface PendingCreate {
  readonly origin: ResponseOrigin;
  readonly eventId: string | null;
  readonly inConversation: boolean;
  readonly metadata: string | null;
  /**
   * The create's own limit; null when it set none: it then runs with the session's limit as the
   * upstream has it when the response starts (a `session.update` may still be in flight), so it
   * agrees with any reported limit.
   */
  readonly maxOutput: OutputLimit | null;
}

/**
 * Client event_ids kept for the events the proxy sent with its own (see `Conversation.#restamped`):
 * twice the creates, item creates and session.updates that may wait at once (MAX_PENDING each),
 * so the id of one still waiting is not forgotten.
 */
export const MAX_RESTAMPED = 6 * MAX_PENDING;
/**
 * Characters of those client ids (client-chosen, of any length): past it the oldest are forgotten
 * first, and a longer id is not kept at all (its errors name the proxy's id): a client's long ids
 * cost it its own ids in errors, never the proxy memory.
 */
export const MAX_RESTAMPED_CHARS = 64 * 1024;

/**
 * The client events that always leave with an event_id of the proxy's (`Conversation.stamp`):
 * the ones whose upstream `error` the proxy acts on by that id (a refused create releases its
 * reservation, a refused update answers the updates before it, a refused item create is no longer
 * waiting for its item and leaves the guardrails' context, a refused commit is no longer a spoken
 * turn on its way). Filters decide before the stamp: the relay's `stamped` report tells them the id.
 */
const STAMPED = new Set(['response.create', 'session.update', 'conversation.item.create', 'input_audio_buffer.commit']);

/**
 * 48 random bits (12 hex characters) for the upstream event_id of a stamped or injected event: drawn
 * per event, so an id the client once saw (a notice, an error about an event it sent without one)
 * tells nothing of the next, and a client event cannot carry an id whose upstream error the proxy
 * would take for its own. `randomUUID` draws from Node's pooled CSPRNG; its first 12 hex digits are all random.
 */
export function unpredictable(): string {
  const u = randomUUID();
  return u.slice(0, 8) + u.slice(9, 13);
}

/**
 * `metadata` as a pairing key: its members sorted by name, so an echo that lists the same members
 * in another order still pairs (a create left unpaired would hold the session's linger open). Kept
 * as `keptId` keeps an id (a long one as its hash): the client's and the upstream's metadata may be
 * as long as a frame, and only equality is asked of the key (until 2026-12-07 each waiting create
 * and kept response held its metadata whole: 64 creates of 16 MiB each held 1 GiB).
 */
function metadataKey(v: unknown): string | null {
  const members = obj(v);
  if (!members) return null;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(members).sort()) sorted[k] = members[k];
  return keptId(JSON.stringify(sorted));
}

/** `conversation_id`: a string (as `keptId` keeps it), null (out of band), or undefined when absent or unreadable. */
function conversationIdOf(v: unknown): string | null | undefined {
  return typeof v === 'string' ? keptId(v) : v === null ? v : undefined;
}

/**
 * A protocol word the upstream sends about an item (its type, role, status), as `keptId` keeps it:
 * only compared with the words the API defines, so one longer than any of them is kept as its hash
 * (an upstream's 64 MiB `status` costs the view no more than a short one).
 */
function keptWord(v: unknown): string | null {
  return typeof v === 'string' ? keptId(v) : null;
}

/** A limit as the upstream reports it (`response.created`, `session.updated`). */
/** Server event types the view learns from (small control events only). */
const OBSERVED_SERVER = new Set([
  'session.created',
  'session.updated',
  'response.created',
  'response.done',
  'response.output_item.added',
  'response.output_item.done',
  'conversation.item.added',
  'conversation.item.created',
  'conversation.item.done',
  'conversation.item.deleted',
  'input_audio_buffer.committed',
  'conversation.item.input_audio_transcription.completed',
  'conversation.item.input_audio_transcription.failed',
  'error',
]);

/**
 * Top-level members of upstream events naming an item or a response: the filters key their state by
 * them (guardrails' streams and reports, metering's MCP calls, telemetry's spans), of every event
 * type, the view's or not. Checked on every upstream frame the filters get (`#namesKeepable`).
 */
const NAMING_MEMBERS: readonly string[] = ['item_id', 'response_id', 'previous_item_id'];

const OBSERVED_CLIENT = new Set(['response.create', 'conversation.item.create', 'session.update']);

export class Conversation implements ConversationView {
  readonly #items = new LazyMap<string, MutableItem>();
  readonly #responses = new LazyMap<string, MutableResponse>();
  readonly #active: string[] = [];
  /** Responses learned of so far (ResponseView.learned of the last). */
  #learned = 0;
  /** Item ids the kept responses list, together (MAX_LISTED_ITEMS). */
  #itemRefs = 0;
  /** The places of forgotten responses by their creates' event ids (as keptId keeps them), most recent last (MAX_FORGOTTEN_CREATES). */
  readonly #forgottenCreates = new LazyMap<string, number>();
  #fault: UpstreamFault | null = null;
  /** Creates sent upstream, waiting for their `response.created` (see PendingCreate). */
  readonly #pendingResponses: PendingCreate[] = [];
  /**
   * Item creates sent upstream, waiting for their `conversation.item.added`. `itemType`: the item's type,
   * which an item shown without a response must share to answer one sent without an id.
   */
  readonly #pendingItems: { provenance: Provenance; id: string | null; eventId: string | null; itemType: string }[] = [];
  /** Committed input audio items, waiting for their `conversation.item.added`. */
  readonly #committed = new LazySet<string>();
  #sessionMaxOutput: OutputLimit | null = null;
  #updatesBeforeCreated: JsonObject | null = null;
  #updatesBeforeCreatedBytes = 0;
  #createdRead = false;
  #sessionUpdatesSent = 0;
  #sessionUpdatesAnswered = 0;
  /** The event_ids of session.updates not answered yet, oldest first (null: sent without one). */
  readonly #updateIds: (string | null)[] = [];
  /**
   * Event ids the proxy put on a client event in place of the client's own (every stamped event,
   * and one that carried a waiting create's id), to that own id: an upstream error about it
   * reaches the client with its own. The most recent MAX_RESTAMPED, within MAX_RESTAMPED_CHARS of
   * client ids (an event is answered long before).
   */
  readonly #restamped = new LazyMap<string, string>();
  #restampedChars = 0;
  readonly spokenTurns = new SpokenTurns();
  get sessionMaxOutputTokens(): OutputLimit | null {
    return this.#sessionMaxOutput;
  }

  get updatesBeforeCreated(): JsonObject | null {
    return this.#updatesBeforeCreated;
  }

  /**
   * A bound the upstream went past (see MAX_RUNNING_RESPONSES), or null. The relay ends the session
   * before the filters read the frame that went past it; the view learns nothing more from then on.
   */
  get upstreamFault(): UpstreamFault | null {
    return this.#fault;
  }

  /** Takes `fault` (the first only): always false, for `return this.#faulted(...)`-style guards. */
  #faulted(fault: UpstreamFault): false {
    this.#fault ??= fault;
    return false;
  }

  /**
   * Whether the item and response ids an upstream frame names at its top level (NAMING_MEMBERS) are
   * short enough to keep, else the view is at fault. Sniffed (no parse) unless escapes or a repeated
   * member make that unreadable; an id is decoded only when its bytes may be over the bound.
   */
  #namesKeepable(frame: Frame): boolean {
    const spans = sniffStringSpans(frame.bytes, NAMING_MEMBERS);
    if (spans !== undefined) {
      for (const span of spans) {
        if (span === null || span[1] - span[0] <= MAX_KEPT_ID_CHARS) continue;
        // UTF-8 spends at most 3 bytes per UTF-16 unit: past that many, too long without decoding it.
        if (span[1] - span[0] > 3 * MAX_KEPT_ID_CHARS || !this.#keepable(frame.bytes.toString('utf8', span[0], span[1]))) {
          return this.#faulted({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
        }
      }
      return true;
    }
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      // Not JSON past its type: nothing reads an id of it.
      return true;
    }
    for (const member of NAMING_MEMBERS) {
      const id = ev[member];
      if (typeof id === 'string' && !this.#keepable(id)) return false;
    }
    return true;
  }

  /** Whether an id the upstream chose is short enough to keep; else the view is at fault. */
  #keepable(id: string): boolean {
    return id.length <= MAX_KEPT_ID_CHARS || this.#faulted({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
  }

  get sessionUpdatesSent(): number {
    return this.#sessionUpdatesSent;
  }

  get sessionUpdatesAnswered(): number {
    return this.#sessionUpdatesAnswered;
  }

  #sessionUpdateSent(id: string | null): void {
    this.#sessionUpdatesSent++;
    if (this.#updateIds.length >= MAX_PENDING) this.#updateIds.shift();
    this.#updateIds.push(id);
  }

  #sessionUpdateAnswered(at: number): void {
    if (at < 0 || at >= this.#updateIds.length) return;
    this.#updateIds.splice(0, at + 1);
    this.#sessionUpdatesAnswered = Math.min(this.#sessionUpdatesSent, this.#sessionUpdatesAnswered + at + 1);
  }

  item(id: string): ItemView | undefined {
    return this.#items.get(id);
  }

  response(id: string): ResponseView | undefined {
    return this.#responses.get(id);
  }

  activeResponses(): readonly string[] {
    return this.#active;
  }

  responsesOfCreate(eventId: string): ResponseView[] {
    const found: ResponseView[] = [];
    for (const r of this.#responses.values()) if (r.createEventId === eventId) found.push(r);
    return found;
  }

  responsesLearnedAfter(learned: number): ResponseView[] {
    const found: ResponseView[] = [];
    for (const r of this.#responses.values()) if (r.learned > learned) found.push(r);
    return found;
  }

  get responsesLearned(): number {
    return this.#learned;
  }

  forgottenResponseOf(eventId: string): number | null {
    return this.#forgottenCreates.get(keptId(eventId)) ?? null;
  }

  /** `response.create`s sent upstream and not yet answered by `response.created` or an `error`. */
  get awaitingResponses(): number {
    return this.#pendingResponses.length;
  }

  items(): IterableIterator<ItemView> {
    return this.#items.values();
  }

  /** Records a governance mark on an item (kept while the item is known). */
  mark(itemId: string, mark: ItemMark): void {
    const item = this.#items.get(itemId);
    if (item && !item.marks.some((m) => m.kind === mark.kind && m.rule === mark.rule)) item.marks.push(mark);
  }

  /** Whether a client event of this type leaves with an event_id of the proxy's (`stamp`). */
  static stamps(type: string): boolean {
    return STAMPED.has(type);
  }

  /**
   * A client event whose upstream `error` the proxy acts on (`stamps`: `response.create`,
   * `session.update`, `conversation.item.create`), the chain let through, about to go upstream.
   * It always leaves with an `event_id` of the proxy's: `fresh()` plus 48 bits drawn for this
   * event, which no client can predict. Clients choose event ids freely, and an input audio append
   * is never read while no create waits (the audio path stays free), so an error naming the
   * client's own id may be about another event that carried it: only the proxy's id names this
   * event alone, so the upstream's `error` about it (and `ResponseView.createEventId` of the
   * response a create starts) is taken for this event and no other. Whatever the client sees keeps
   * its own id: an error about the event names the client's `event_id` again (`forClient`); an
   * event sent without one is shown the proxy's. (Until 2026-12-05 the client's own id went
   * upstream: an unread append with a create's id, answered by an `error`, released the create's
   * reservation; an error about an event with a session.update's id took the update for answered,
   * and metering dropped its pessimistic guess while the upstream had still to apply it.) Returns
   * the frame to send and that id; the frame as it was and null when it cannot be read. Never throws.
   */
  stamp(frame: Frame, fresh: () => string): { frame: Frame; eventId: string | null; own: string | null } {
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      return { frame, eventId: null, own: null };
    }
    const own = str(ev['event_id']);
    const eventId = `${fresh()}_${unpredictable()}`;
    if (own !== null) this.#remember(eventId, own);
    return { frame: Frame.rewritten(frame.type, { ...ev, event_id: eventId }), eventId, own };
  }

  /**
   * Any other client event on its way upstream while creates wait for their response: one that
   * carries the `event_id` of a waiting create leaves with a fresh one instead, so the upstream's
   * error about it can never be taken for the create's. A client's create leaves with an id the
   * client never sees while it waits (`stamp`), so this guards the proxy's own creates
   * (their ids follow the session's scheme) and is a second line for the client's. Read without
   * parsing (an audio append's id is sniffed; the frame is rewritten only on a collision).
   */
  unambiguous(frame: Frame, fresh: () => string): Frame {
    if (this.#pendingResponses.length === 0) return frame;
    if (frame.parsed) {
      const ev = frame.json();
      const id = this.#collision(ev['event_id'], fresh);
      return id === null ? frame : Frame.rewritten(frame.type, { ...ev, event_id: id });
    }
    const out = this.#restampBytes(frame.bytes, fresh);
    return out === null ? frame : Frame.fromClient(frame.type, out);
  }

  /** `unambiguous` for an input audio append the relay sends without a Frame (the hot path): null when it leaves as it is. */
  unambiguousAudio(bytes: Buffer, fresh: () => string): Buffer | null {
    return this.#pendingResponses.length === 0 ? null : this.#restampBytes(bytes, fresh);
  }

  /** The bytes with a fresh event_id when theirs is a waiting create's, else null. Sniffed; parsed only when the id has escapes. */
  #restampBytes(bytes: Buffer, fresh: () => string): Buffer | null {
    const span = sniffStringSpan(bytes, 'event_id');
    if (span === null) return null;
    if (span === undefined) {
      let ev: JsonObject | null;
      try {
        ev = obj(JSON.parse(bytes.toString('utf8')));
      } catch {
        return null;
      }
      const id = ev ? this.#collision(ev['event_id'], fresh) : null;
      return id === null ? null : Buffer.from(JSON.stringify({ ...ev, event_id: id }));
    }
    // perf: compared in place (every audio append while a response waits): a string only on a collision.
    if (!this.#pendingResponses.some((p) => p.eventId !== null && spanEquals(bytes, span[0], span[1], p.eventId))) return null;
    const id = this.#collision(bytes.toString('utf8', span[0], span[1]), fresh);
    return id === null ? null : Buffer.concat([bytes.subarray(0, span[0]), Buffer.from(id, 'utf8'), bytes.subarray(span[1])]);
  }

  /** A fresh id (remembered against `own`) when `own` is the id of a waiting create, else null. */
  #collision(own: unknown, fresh: () => string): string | null {
    if (typeof own !== 'string' || !this.#pendingResponses.some((p) => p.eventId === own)) return null;
    // Unique in the session: the relay's ids never repeat, and every client create's id has a random part.
    const id = fresh();
    this.#remember(id, own);
    return id;
  }

  #remember(proxyId: string, own: string): void {
    if (own.length > MAX_RESTAMPED_CHARS) return;
    this.#restamped.set(proxyId, own);
    this.#restampedChars += own.length;
    while (this.#restamped.size > MAX_RESTAMPED || this.#restampedChars > MAX_RESTAMPED_CHARS) {
      const [oldest, id] = this.#restamped.entries().next().value!;
      this.#restamped.delete(oldest);
      this.#restampedChars -= id.length;
    }
  }

  /**
   * The client's own `event_id` of an event the proxy sent with one of its own (a create, or a
   * collision), by the id it left with; undefined when there is none (sent without one, not
   * restamped, or long answered). An upstream error about it is the client's, shown with its own id.
   */
  clientEventId(eventId: string): string | undefined {
    return this.#restamped.get(eventId);
  }

  /**
   * An upstream `error` on its way to the client: about an event the proxy restamped (every
   * create the client gave an id), it names the client's own `event_id` again (the client never
   * sees the proxy's). Else the same frame.
   */
  forClient(frame: Frame): Frame {
    if (frame.type !== 'error' || this.#restamped.size === 0) return frame;
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      return frame;
    }
    const error = obj(ev['error']);
    const id = str(error?.['event_id']);
    const own = id !== null ? this.#restamped.get(id) : undefined;
    if (own === undefined || !error) return frame;
    return Frame.rewritten('error', { ...ev, error: { ...error, event_id: own } });
  }

  /**
   * A client event a filter stopped (dropped or refused with `refusal`): it never reaches the
   * upstream. A `response.create` the spoken-turn hold let go to stand for turns that passed stands
   * no more, whichever filter after the hold stopped it (the truncation budget, metering).
   */
  clientStopped(frame: Frame, refusal: ProxyError | null): void {
    if (frame.type === 'response.create') this.spokenTurns.createStopped(refusal);
  }

  /** A client event forwarded upstream (`by` null), or one the proxy injected. Never throws. */
  observeClient(frame: Frame, injected: boolean): void {
    // Audio is never read here; nor is any other event but these (the client's ids are the proxy's: see stamp).
    if (!OBSERVED_CLIENT.has(frame.type)) return;
    // Session updates matter only until session.created is read: later ones are only counted.
    if (frame.type === 'session.update' && this.#createdRead) {
      // The client's are parsed (stamped); one that could not be is sniffed, never parsed here.
      const id = frame.parsed ? str(frame.json()['event_id']) : sniffString(frame.bytes, 'event_id');
      // Unreadable without a parse (escapes, a repeated member): kept as an update sent without an id.
      this.#sessionUpdateSent(id ?? null);
      return;
    }
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      if (frame.type === 'session.update') this.#sessionUpdateSent(null);
      return;
    }
    const eventId = str(ev['event_id']);
    if (frame.type === 'session.update') {
      this.#sessionUpdateSent(eventId);
      return this.#sentSessionUpdate(frame, ev);
    }
    if (frame.type === 'response.create') {
      const response = obj(ev['response']);
      const inConversation = response?.['conversation'] !== 'none';
      const origin: ResponseOrigin = injected ? 'proxy' : inConversation ? 'client' : 'out_of_band';
      const maxOutput = readOutputLimit(response?.['max_output_tokens']);
      if (this.#pendingResponses.length >= MAX_PENDING) this.#pendingResponses.shift();
      this.#pendingResponses.push({ origin, eventId, inConversation, metadata: metadataKey(response?.['metadata']), maxOutput });
      // The client create a held turn's hold let go to stand for passed turns leaves with this id.
      if (origin === 'client') this.spokenTurns.createLeft(eventId);
      return;
    }
    const sentItem = obj(ev['item']);
    const id = str(sentItem?.['id']);
    if (this.#pendingItems.length >= MAX_PENDING) this.#pendingItems.shift();
    // Kept until answered or evicted: a long client id as its hash (keptId), matched the same way.
    this.#pendingItems.push({ provenance: injected ? 'proxy' : 'client', id: id === null ? null : keptId(id), eventId: eventId === null ? null : keptId(eventId), itemType: itemTypeOf(sentItem) });
  }

  /** An upstream event, before the filters see it. Never throws; ignores types it does not need. */
  observeServer(frame: Frame): void {
    if (this.#fault !== null || !this.#namesKeepable(frame) || !OBSERVED_SERVER.has(frame.type)) return;
    // Read while the filters decided session.created; its text is not kept for the session's life.
    if (this.#createdRead) this.#updatesBeforeCreated = null;
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      return;
    }
    switch (frame.type) {
      case 'session.created':
      case 'session.updated': {
        const session = obj(ev['session']);
        if (frame.type === 'session.created') this.#createdRead = true;
        // Each session.update is answered by one session.updated, in order.
        else this.#sessionUpdateAnswered(0);
        if (!session || session['type'] === 'transcription') return;
        const limit = reportedSessionOutputLimit(session);
        if (limit !== null) this.#sessionMaxOutput = limit;
        return;
      }
      case 'response.created':
        return this.#created(obj(ev['response']));
      case 'response.done':
        return this.#done(obj(ev['response']));
      case 'response.output_item.added':
      case 'response.output_item.done': {
        const item = obj(ev['item']);
        const responseId = str(ev['response_id']);
        // Kept on the item: an id as long as any other.
        if (item && (responseId === null || this.#keepable(responseId))) this.#upsert(item, 'model', responseId);
        return;
      }
      case 'conversation.item.added':
      case 'conversation.item.created':
      case 'conversation.item.done': {
        const item = obj(ev['item']);
        if (item) this.#upsert(item, null, null);
        return;
      }
      case 'conversation.item.deleted': {
        const id = str(ev['item_id']);
        if (id) this.#items.delete(id);
        return;
      }
      case 'input_audio_buffer.committed': {
        const id = str(ev['item_id']);
        if (id && this.#keepable(id) && this.#committed.size < MAX_PENDING) this.#committed.add(id);
        return;
      }
      case 'conversation.item.input_audio_transcription.completed':
      case 'conversation.item.input_audio_transcription.failed': {
        const item = this.#items.get(str(ev['item_id']) ?? '');
        if (item) item.transcript = frame.type.endsWith('completed') ? 'completed' : 'failed';
        return;
      }
      case 'error': {
        // A refused create never gets its response.created / item.added.
        const eventId = str(obj(ev['error'])?.['event_id']);
        if (eventId === null) return;
        const r = this.#pendingResponses.findIndex((p) => p.eventId === eventId);
        if (r >= 0) this.#pendingResponses.splice(r, 1);
        const keptEventId = keptId(eventId);
        const i = this.#pendingItems.findIndex((p) => p.eventId === keptEventId);
        if (i >= 0) this.#pendingItems.splice(i, 1);
        // A refused session.update: it and every one before it are answered.
        this.#sessionUpdateAnswered(this.#updateIds.indexOf(eventId));
        return;
      }
      default:
        return;
    }
  }

  /** A session.update on its way upstream: before session.created is read, it is what that session lacks. */
  #sentSessionUpdate(frame: Frame, ev: JsonObject): void {
    const update = obj(ev['session']);
    if (!update) return;
    this.#updatesBeforeCreatedBytes += frame.bytes.length;
    this.#updatesBeforeCreated = this.#updatesBeforeCreatedBytes > MAX_EARLY_UPDATE_BYTES ? null : applySessionUpdate(this.#updatesBeforeCreated ?? {}, update);
  }

  #created(response: JsonObject | null): void {
    const named = str(response?.['id']);
    if (!response || !named) return;
    // An id too long to keep is a fault, but the response started: kept running under its hash
    // (keptId), so metering bills it as the session ends, once.
    const id = this.#keepable(named) ? named : keptId(named);
    if (this.#responses.has(id)) return;
    const conversationId = conversationIdOf(response['conversation_id']);
    const metadata = metadataKey(response['metadata']);
    const maxOutputTokens = readOutputLimit(response['max_output_tokens']);
    // An absent conversation_id (never on the wire from OpenAI) tells nothing about the kind.
    const inConversation = conversationId === undefined ? null : conversationId !== null;
    const at = this.#pendingResponses.findIndex(
      (p) =>
        (inConversation === null || p.inConversation === inConversation) &&
        p.metadata === metadata &&
        (maxOutputTokens === null || p.maxOutput === null || p.maxOutput === maxOutputTokens),
    );
    const create = at >= 0 ? this.#pendingResponses.splice(at, 1)[0]! : null;
    // Unreported and unrequested: a server-started response runs in the conversation.
    const outOfBand = inConversation !== null ? !inConversation : create !== null && !create.inConversation;
    this.#add({ id, origin: create?.origin ?? 'vad', state: 'in_progress', usage: null, itemIds: [], conversationId, outOfBand, createEventId: create?.eventId ?? null, maxOutputTokens, metadata, learned: ++this.#learned });
    this.#active.push(id);
    // Kept all the same, running: metering bills it (the upstream started it) as the session ends.
    if (this.#active.length > MAX_RUNNING_RESPONSES) this.#faulted({ what: 'running_responses', limit: MAX_RUNNING_RESPONSES });
    if (create?.origin === 'client') this.spokenTurns.createStarted(create.eventId);
  }

  #add(r: MutableResponse): void {
    this.#responses.set(r.id, r);
    this.#prune(r);
  }

  /**
   * Forgets the oldest done responses (never `keep`, never a running one) while more than
   * MAX_RESPONSES are kept or they list more than `listed` item ids (running ones are at most
   * MAX_RUNNING_RESPONSES + 1: there is always a done one to forget past MAX_RESPONSES).
   */
  #prune(keep: MutableResponse, listed = MAX_LISTED_ITEMS): void {
    if (this.#responses.size <= MAX_RESPONSES && this.#itemRefs <= listed) return;
    for (const [rid, old] of this.#responses) {
      if (this.#responses.size <= MAX_RESPONSES && this.#itemRefs <= listed) return;
      if (old === keep || old.state === 'in_progress') continue;
      this.#responses.delete(rid);
      this.#itemRefs -= old.itemIds.length;
      if (old.createEventId !== null) this.#forgetCreate(old.createEventId, old.learned);
    }
  }

  #forgetCreate(eventId: string, learned: number): void {
    if (this.#forgottenCreates.size >= MAX_FORGOTTEN_CREATES) this.#forgottenCreates.delete(this.#forgottenCreates.keys().next().value!);
    this.#forgottenCreates.set(keptId(eventId), learned);
  }

  /**
   * Lists item `itemId` as an output of `responseId` (when kept), making room first (#prune); with
   * no done response left to forget, the view is at fault (`response_items`).
   */
  #attach(responseId: string, itemId: string): void {
    const r = this.#responses.get(responseId);
    if (!r) return;
    this.#prune(r, MAX_LISTED_ITEMS - 1);
    if (this.#itemRefs >= MAX_LISTED_ITEMS) {
      this.#faulted({ what: 'response_items', limit: MAX_LISTED_ITEMS });
      return;
    }
    r.itemIds.push(itemId);
    this.#itemRefs++;
  }

  #done(response: JsonObject | null): void {
    const id = str(response?.['id']);
    if (!id || !this.#keepable(id)) return;
    let r = this.#responses.get(id);
    const at = this.#active.indexOf(id);
    if (at >= 0) this.#active.splice(at, 1);
    if (!r) {
      // Its response.created was not seen (pruned, or a done out of the blue): usage still counts.
      r = { id, origin: 'vad', state: 'in_progress', usage: null, itemIds: [], conversationId: undefined, outOfBand: false, createEventId: null, maxOutputTokens: null, metadata: null, learned: ++this.#learned };
      this.#add(r);
    }
    const conversationId = conversationIdOf(response?.['conversation_id']);
    if (conversationId !== undefined) {
      r.conversationId = conversationId;
      r.outOfBand = conversationId === null;
    }
    const status = str(response?.['status']);
    r.state = status === 'cancelled' || status === 'failed' || status === 'incomplete' ? status : 'completed';
    r.usage = parseUsage(response?.['usage']);
    for (const o of (Array.isArray(response?.['output']) ? response['output'] : []) as unknown[]) {
      if (this.#fault !== null) return;
      const item = obj(o);
      if (item) this.#upsert(item, 'model', id);
    }
  }

  #upsert(item: JsonObject, provenance: Provenance | null, responseId: string | null): void {
    const id = str(item['id']);
    if (!id || !this.#keepable(id)) return;
    let known = this.#items.get(id);
    if (!known) {
      known = { id, type: keptWord(item['type']) ?? '', role: keptWord(item['role']), status: null, provenance: provenance ?? this.#provenanceOf(id, itemTypeOf(item)), responseId, transcript: 'none', marks: [] };
      this.#items.set(id, known);
      if (this.#items.size > MAX_ITEMS) this.#items.delete(this.#items.keys().next().value!);
      if (responseId) this.#attach(responseId, id);
      if (known.type === 'message' && known.role === 'user' && this.#committed.delete(id)) known.transcript = 'pending';
    }
    if (responseId && !known.responseId) {
      known.responseId = responseId;
      known.provenance = 'model';
      this.#attach(responseId, id);
    }
    known.status = keptWord(item['status']) ?? known.status;
  }

  #provenanceOf(id: string, itemType: string): Provenance {
    if (this.#committed.has(id)) return 'client';
    const kept = keptId(id);
    const byId = this.#pendingItems.findIndex((p) => p.id === kept);
    if (byId >= 0) return this.#pendingItems.splice(byId, 1)[0]!.provenance;
    // Only an item of the create's type answers it: until 2026-12-07 any item shown without a response
    // (the upstream's mcp_list_tools for a session.update) took the oldest create sent without an id, and
    // its texts passed as the echo of an item the client typed (test/policies/redteam-17e-list-claims-pending-create.test.ts).
    const anon = this.#pendingItems.findIndex((p) => p.id === null && p.itemType === itemType);
    if (anon >= 0) return this.#pendingItems.splice(anon, 1)[0]!.provenance;
    return 'server';
  }
}

/**
 * An item's type: what an upstream item must share with a create sent without an id to answer it
 * (not its role: the upstream may show a role as another, a developer message as system).
 */
function itemTypeOf(item: JsonObject | null | undefined): string {
  return keptWord(item?.['type']) ?? '';
}
