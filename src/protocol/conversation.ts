import type { Frame, JsonObject } from '../pipeline/frame.js';

/**
 * The session's conversation as the proxy knows it: items (id, role, type, status, provenance,
 * governance marks) and responses (id, origin, state, usage). The relay core updates it once per
 * control event (never from audio frames: their types are not observed, so they are not parsed);
 * filters read it on `SessionContext.conversation` instead of re-deriving it.
 *
 * Memory is bounded: at most MAX_ITEMS items and MAX_RESPONSES responses, oldest pruned first.
 * No content (text, audio) is kept.
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

export interface ResponseUsage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens: number;
}

export interface ResponseView {
  readonly id: string;
  readonly origin: ResponseOrigin;
  readonly state: 'in_progress' | 'completed' | 'cancelled' | 'failed' | 'incomplete';
  readonly usage: ResponseUsage | null;
  readonly itemIds: readonly string[];
}

export interface ConversationView {
  item(id: string): ItemView | undefined;
  response(id: string): ResponseView | undefined;
  /** Responses started and not done yet, oldest first. */
  activeResponses(): readonly string[];
  /** Items in conversation order of arrival (bounded). */
  items(): IterableIterator<ItemView>;
}

export const MAX_ITEMS = 2048;
export const MAX_RESPONSES = 256;
const MAX_PENDING = 64;

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
}

/** Server event types the view learns from (small control events only). */
const OBSERVED_SERVER = new Set([
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

const OBSERVED_CLIENT = new Set(['response.create', 'conversation.item.create']);

function obj(v: unknown): JsonObject | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : null;
}
function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}
function int(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** The one parser of `response.usage` (token counts). */
export function parseUsage(usage: unknown): ResponseUsage | null {
  const u = obj(usage);
  if (!u) return null;
  return { inputTokens: int(u['input_tokens']), outputTokens: int(u['output_tokens']), cachedTokens: int(obj(u['input_token_details'])?.['cached_tokens']) };
}

export class Conversation implements ConversationView {
  readonly #items = new Map<string, MutableItem>();
  readonly #responses = new Map<string, MutableResponse>();
  readonly #active: string[] = [];
  /** Creates sent upstream, waiting for their `response.created` (FIFO; origin and event id). */
  readonly #pendingResponses: { origin: ResponseOrigin; eventId: string | null }[] = [];
  /** Item creates sent upstream, waiting for their `conversation.item.added`. */
  readonly #pendingItems: { provenance: Provenance; id: string | null; eventId: string | null }[] = [];
  /** Committed input audio items, waiting for their `conversation.item.added`. */
  readonly #committed = new Set<string>();

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

  /** A client event forwarded upstream (`by` null), or one the proxy injected. Never throws. */
  observeClient(frame: Frame, injected: boolean): void {
    if (!OBSERVED_CLIENT.has(frame.type)) return;
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      return;
    }
    const eventId = str(ev['event_id']);
    if (frame.type === 'response.create') {
      const conversation = obj(ev['response'])?.['conversation'];
      const origin: ResponseOrigin = injected ? 'proxy' : conversation === 'none' ? 'out_of_band' : 'client';
      if (this.#pendingResponses.length >= MAX_PENDING) this.#pendingResponses.shift();
      this.#pendingResponses.push({ origin, eventId });
      return;
    }
    const id = str(obj(ev['item'])?.['id']);
    if (this.#pendingItems.length >= MAX_PENDING) this.#pendingItems.shift();
    this.#pendingItems.push({ provenance: injected ? 'proxy' : 'client', id, eventId });
  }

  /** An upstream event, before the filters see it. Never throws; ignores types it does not need. */
  observeServer(frame: Frame): void {
    if (!OBSERVED_SERVER.has(frame.type)) return;
    let ev: JsonObject;
    try {
      ev = frame.json();
    } catch {
      return;
    }
    switch (frame.type) {
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
        return;
      }
      default:
        return;
    }
  }

  #created(response: JsonObject | null): void {
    const id = str(response?.['id']);
    if (!id || this.#responses.has(id)) return;
    const origin = this.#pendingResponses.shift()?.origin ?? 'vad';
    this.#responses.set(id, { id, origin, state: 'in_progress', usage: null, itemIds: [] });
    this.#active.push(id);
    if (this.#responses.size > MAX_RESPONSES) {
      for (const [rid, r] of this.#responses) {
        if (r.state === 'in_progress') continue;
        this.#responses.delete(rid);
        break;
      }
    }
  }

  #done(response: JsonObject | null): void {
    const id = str(response?.['id']);
    if (!id) return;
    const r = this.#responses.get(id);
    const at = this.#active.indexOf(id);
    if (at >= 0) this.#active.splice(at, 1);
    if (!r) return;
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
