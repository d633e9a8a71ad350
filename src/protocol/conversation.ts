import { randomUUID } from 'node:crypto';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import { asObject as obj, asString as str } from './json.js';
import { sniffString, sniffStringSpan } from './sniff.js';
import { parseOutputLimit, type OutputLimit } from './limits.js';
import { applySessionUpdate } from './session-update.js';
import { parseUsage, type ResponseTokens } from './usage.js';
import { LazyMap, LazySet } from '../lazy-collections.js';

export { parseUsage };

/**
 * The session's conversation as the proxy knows it: items (id, role, type, status, provenance,
 * governance marks) and responses (id, origin, state, usage). The relay core updates it once per
 * control event (never from audio frames: their types are not observed, so they are not parsed);
 * filters read it on `SessionContext.conversation` instead of re-deriving it.
 *
 * Memory is bounded: at most MAX_ITEMS items and MAX_RESPONSES responses, oldest pruned first.
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
   * proxy's own for every client create (`Conversation.stampCreate`; the client's is
   * `Conversation.clientEventId` of it), the injected event's for the proxy's; null for
   * server-started responses (VAD, idle timeout).
   */
  readonly createEventId: string | null;
  /** `max_output_tokens` echoed on `response.created`; null when absent or unreadable. */
  readonly maxOutputTokens: OutputLimit | null;
  /** `metadata` echoed on `response.created`, as JSON with its members sorted by name (the pairing key); null when none. */
  readonly metadata: string | null;
}

export interface ConversationView {
  item(id: string): ItemView | undefined;
  response(id: string): ResponseView | undefined;
  /** Responses started and not done yet, oldest first. */
  activeResponses(): readonly string[];
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
}

export const MAX_ITEMS = 2048;
export const MAX_RESPONSES = 256;
const MAX_PENDING = 64;
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
}

/**
 * A `response.create` sent upstream, waiting for its `response.created`. The upstream echoes
 * `conversation_id` (null out of band), `metadata` and `max_output_tokens`, so a created response
 * is paired with the oldest create that agrees on all three, not simply the oldest: parallel
 * out-of-band creates start in any order, and a VAD response racing a client create never takes
 * its place unless nothing tells them apart.
 */
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
 * twice the creates that may wait at once, so the id of one still waiting is never forgotten.
 */
const MAX_RESTAMPED = 2 * MAX_PENDING;

/**
 * 48 random bits (12 hex characters) for a create's upstream event_id: drawn per create, so an id
 * the client once saw (an error about a create it sent without one) tells nothing of the next.
 * `randomUUID` draws from Node's pooled CSPRNG; its first 12 hex digits are all random.
 */
function unpredictable(): string {
  const u = randomUUID();
  return u.slice(0, 8) + u.slice(9, 13);
}

/**
 * `metadata` as a pairing key: its members sorted by name, so an echo that lists the same members
 * in another order still pairs (a create left unpaired would hold the session's linger open).
 */
function metadataKey(v: unknown): string | null {
  const members = obj(v);
  if (!members) return null;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(members).sort()) sorted[k] = members[k];
  return JSON.stringify(sorted);
}

/** `conversation_id`: a string, null (out of band), or undefined when absent or unreadable. */
function conversationIdOf(v: unknown): string | null | undefined {
  return typeof v === 'string' || v === null ? v : undefined;
}

/** A limit as the upstream reports it (`response.created`, `session.updated`). */
function reportedLimit(v: unknown): OutputLimit | null {
  const parsed = parseOutputLimit(v);
  return parsed.kind === 'limit' ? parsed.value : null;
}

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

const OBSERVED_CLIENT = new Set(['response.create', 'conversation.item.create', 'session.update']);

export class Conversation implements ConversationView {
  readonly #items = new LazyMap<string, MutableItem>();
  readonly #responses = new LazyMap<string, MutableResponse>();
  readonly #active: string[] = [];
  /** Creates sent upstream, waiting for their `response.created` (see PendingCreate). */
  readonly #pendingResponses: PendingCreate[] = [];
  /** Item creates sent upstream, waiting for their `conversation.item.added`. */
  readonly #pendingItems: { provenance: Provenance; id: string | null; eventId: string | null }[] = [];
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
   * Event ids the proxy put on a client event in place of the client's own (every create, and an
   * event that carried a waiting create's id), to that own id: an upstream error about it reaches
   * the client with its own. The most recent MAX_RESTAMPED (a create is answered long before).
   */
  readonly #restamped = new LazyMap<string, string>();
  get sessionMaxOutputTokens(): OutputLimit | null {
    return this.#sessionMaxOutput;
  }

  get updatesBeforeCreated(): JsonObject | null {
    return this.#updatesBeforeCreated;
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

  /**
   * A client `response.create` the chain let through, about to go upstream. It always leaves with
   * an `event_id` of the proxy's: `fresh()` plus 48 bits drawn for this create, which no client
   * can predict. So no event the client sent before it can carry that id (an input audio append
   * included, which the proxy never reads while no create waits: the audio path stays free), and
   * the upstream's `error` about it, and `ResponseView.createEventId` of the response it starts,
   * name exactly this create. Whatever the client sees keeps its own id: an error about the create
   * names the client's `event_id` again (`forClient`); a create sent without one is shown the
   * proxy's. (Until 2026-12-05 the client's own id went upstream when no event still unread
   * carried it, and an unread append sent before the create with the same id, answered by an
   * `error`, released the create's reservation.) Returns the frame to send and that id; the frame
   * as it was and null when it cannot be read. Never throws.
   */
  stampCreate(frame: Frame, fresh: () => string): { frame: Frame; eventId: string | null } {
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      return { frame, eventId: null };
    }
    const own = str(ev['event_id']);
    const eventId = `${fresh()}_${unpredictable()}`;
    if (own !== null) this.#remember(eventId, own);
    return { frame: Frame.rewritten(frame.type, { ...ev, event_id: eventId }), eventId };
  }

  /**
   * Any other client event on its way upstream while creates wait for their response: one that
   * carries the `event_id` of a waiting create leaves with a fresh one instead, so the upstream's
   * error about it can never be taken for the create's. A client's create leaves with an id the
   * client never sees while it waits (`stampCreate`), so this guards the proxy's own creates
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
    if (this.#restamped.size >= MAX_RESTAMPED) this.#restamped.delete(this.#restamped.keys().next().value!);
    this.#restamped.set(proxyId, own);
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

  /** A client event forwarded upstream (`by` null), or one the proxy injected. Never throws. */
  observeClient(frame: Frame, injected: boolean): void {
    // Audio is never read here; nor is any other event but these (a create's id is the proxy's: see stampCreate).
    if (!OBSERVED_CLIENT.has(frame.type)) return;
    // Session updates matter only until session.created is read: later ones are not parsed.
    if (frame.type === 'session.update' && this.#createdRead) {
      // Sniffed, not parsed (a parsed client frame would leave re-serialised).
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
      const own = parseOutputLimit(response?.['max_output_tokens']);
      const maxOutput = own.kind === 'limit' ? own.value : null;
      if (this.#pendingResponses.length >= MAX_PENDING) this.#pendingResponses.shift();
      this.#pendingResponses.push({ origin, eventId, inConversation, metadata: metadataKey(response?.['metadata']), maxOutput });
      return;
    }
    const id = str(obj(ev['item'])?.['id']);
    if (this.#pendingItems.length >= MAX_PENDING) this.#pendingItems.shift();
    this.#pendingItems.push({ provenance: injected ? 'proxy' : 'client', id, eventId });
  }

  /** An upstream event, before the filters see it. Never throws; ignores types it does not need. */
  observeServer(frame: Frame): void {
    if (!OBSERVED_SERVER.has(frame.type)) return;
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
        const limit = reportedLimit(session['max_output_tokens']);
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
        if (item) this.#upsert(item, 'model', responseId);
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
        if (id && this.#committed.size < MAX_PENDING) this.#committed.add(id);
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
        const i = this.#pendingItems.findIndex((p) => p.eventId === eventId);
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
    const id = str(response?.['id']);
    if (!response || !id || this.#responses.has(id)) return;
    const conversationId = conversationIdOf(response['conversation_id']);
    const metadata = metadataKey(response['metadata']);
    const maxOutputTokens = reportedLimit(response['max_output_tokens']);
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
    this.#add({ id, origin: create?.origin ?? 'vad', state: 'in_progress', usage: null, itemIds: [], conversationId, outOfBand, createEventId: create?.eventId ?? null, maxOutputTokens, metadata });
    this.#active.push(id);
  }

  #add(r: MutableResponse): void {
    this.#responses.set(r.id, r);
    if (this.#responses.size > MAX_RESPONSES) {
      for (const [rid, old] of this.#responses) {
        if (old.state === 'in_progress') continue;
        this.#responses.delete(rid);
        break;
      }
    }
  }

  #done(response: JsonObject | null): void {
    const id = str(response?.['id']);
    if (!id) return;
    let r = this.#responses.get(id);
    const at = this.#active.indexOf(id);
    if (at >= 0) this.#active.splice(at, 1);
    if (!r) {
      // Its response.created was not seen (pruned, or a done out of the blue): usage still counts.
      r = { id, origin: 'vad', state: 'in_progress', usage: null, itemIds: [], conversationId: undefined, outOfBand: false, createEventId: null, maxOutputTokens: null, metadata: null };
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
      const item = obj(o);
      if (item) this.#upsert(item, 'model', id);
    }
  }

  #upsert(item: JsonObject, provenance: Provenance | null, responseId: string | null): void {
    const id = str(item['id']);
    if (!id) return;
    let known = this.#items.get(id);
    if (!known) {
      known = { id, type: str(item['type']) ?? '', role: str(item['role']), status: null, provenance: provenance ?? this.#provenanceOf(id), responseId, transcript: 'none', marks: [] };
      this.#items.set(id, known);
      if (this.#items.size > MAX_ITEMS) this.#items.delete(this.#items.keys().next().value!);
      if (responseId) this.#responses.get(responseId)?.itemIds.push(id);
      if (known.type === 'message' && known.role === 'user' && this.#committed.delete(id)) known.transcript = 'pending';
    }
    if (responseId && !known.responseId) {
      known.responseId = responseId;
      known.provenance = 'model';
      this.#responses.get(responseId)?.itemIds.push(id);
    }
    known.status = str(item['status']) ?? known.status;
  }

  #provenanceOf(id: string): Provenance {
    if (this.#committed.has(id)) return 'client';
    const byId = this.#pendingItems.findIndex((p) => p.id === id);
    if (byId >= 0) return this.#pendingItems.splice(byId, 1)[0]!.provenance;
    const anon = this.#pendingItems.findIndex((p) => p.id === null);
    if (anon >= 0) return this.#pendingItems.splice(anon, 1)[0]!.provenance;
    return 'server';
  }
}
