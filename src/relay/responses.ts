import { Frame, type JsonObject } from '../pipeline/frame.js';

const OUTPUT_EVENTS_KEPT = new Set(['response.created', 'response.done']);
const MAX_CREATES_TRACKED = 64;

function asObject(v: unknown): JsonObject | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : null;
}

/** Blanks the text a model produced inside an item, keeping its structure (ids, roles, status). */
function blankItem(item: JsonObject): void {
  const content = item['content'];
  if (Array.isArray(content)) {
    for (const part of content) {
      const p = asObject(part);
      if (!p) continue;
      if (typeof p['transcript'] === 'string') p['transcript'] = '';
      if (typeof p['text'] === 'string') p['text'] = '';
      if (typeof p['audio'] === 'string') p['audio'] = '';
    }
  }
  if (item['status'] === 'completed' || item['status'] === 'in_progress') item['status'] = 'incomplete';
}

/**
 * Knows which responses are active and which output items belong to them, and enforces
 * `cancelResponse`: once a response is suppressed, none of its output reaches the client.
 *
 * Cost: nothing per frame while no response is suppressed except `response.output_item.added`
 * (a small control event, parsed to learn the item → response mapping). While a suppression is
 * active, `response.*` frames have their `response_id` sniffed (no parse; it precedes the audio).
 */
export class ResponseTracker {
  readonly #active = new Set<string>();
  readonly #suppressed = new Set<string>();
  /** Output item id → response id, for items of responses still in flight. */
  readonly #itemResponse = new Map<string, string>();
  /** Items whose `added` events reached the client before suppression: they get a blanked `done`. */
  readonly #announced = new Set<string>();
  /**
   * `event_id`s (null: none) of client `response.create`s sent upstream and not yet answered by a
   * `response.created` or an `error` naming them. Only their number matters (is a response about
   * to start?), so a `response.created` answers the oldest. Bounded: a client flooding creates the
   * upstream refuses without ids cannot grow it.
   */
  readonly #creates: Array<string | null> = [];

  /** A client `response.create` was forwarded upstream. */
  createSent(eventId: string | null): void {
    if (this.#creates.length < MAX_CREATES_TRACKED) this.#creates.push(eventId);
  }

  /** A response is running or a forwarded `response.create` has not been answered yet. */
  get inFlight(): boolean {
    return this.#active.size > 0 || this.#creates.length > 0;
  }

  /** Ids of the responses running upstream. */
  activeIds(): IterableIterator<string> {
    return this.#active.values();
  }

  isActive(responseId: string): boolean {
    return this.#active.has(responseId);
  }

  isSuppressed(responseId: string): boolean {
    return this.#suppressed.has(responseId);
  }

  get activeCount(): number {
    return this.#active.size;
  }

  /** Returns true when this call newly suppressed an active response. */
  suppress(responseId: string): boolean {
    if (this.#suppressed.has(responseId)) return false;
    this.#suppressed.add(responseId);
    return true;
  }

  /**
   * Called for every upstream frame before the filter chain. Returns the frame to pass on
   * (possibly rewritten) or null to drop it.
   */
  inspect(frame: Frame): Frame | null {
    const type = frame.type;
    if (type === 'response.created') {
      const id = asObject(frame.json()['response'])?.['id'];
      if (typeof id === 'string') this.#active.add(id);
      this.#creates.shift();
      return frame;
    }
    if (type === 'error' && this.#creates.length > 0) {
      const eventId = asObject(frame.json()['error'])?.['event_id'];
      const i = typeof eventId === 'string' ? this.#creates.indexOf(eventId) : -1;
      if (i >= 0) this.#creates.splice(i, 1);
      return frame;
    }
    if (type === 'response.output_item.added') {
      const ev = frame.json();
      const item = asObject(ev['item']);
      const responseId = ev['response_id'];
      if (item && typeof item['id'] === 'string' && typeof responseId === 'string') {
        this.#itemResponse.set(item['id'], responseId);
        if (this.#suppressed.has(responseId)) return null;
      }
      return frame;
    }
    if (type === 'response.done') return this.#done(frame);
    if (this.#suppressed.size === 0) {
      if (type === 'conversation.item.added' && this.#itemResponse.size > 0) this.#noteAnnounced(frame);
      return frame;
    }
    return this.#suppressOutput(frame);
  }

  get suppressing(): boolean {
    return this.#suppressed.size > 0;
  }

  /**
   * Applies suppression again when a frame is finally forwarded. Frames can wait in the chain
   * behind an async verdict; a response cancelled meanwhile must not leak them.
   */
  recheck(frame: Frame): Frame | null {
    if (this.#suppressed.size === 0) return frame;
    if (frame.type === 'response.done') {
      const id = asObject(frame.json()['response'])?.['id'];
      return typeof id === 'string' && this.#suppressed.delete(id) ? this.#blankedDone(frame) : frame;
    }
    if (frame.type === 'response.output_item.added') {
      const responseId = frame.string('response_id');
      return responseId !== null && this.#suppressed.has(responseId) ? null : frame;
    }
    return this.#suppressOutput(frame);
  }

  #suppressOutput(frame: Frame): Frame | null {
    const type = frame.type;
    if (type.startsWith('response.') && !OUTPUT_EVENTS_KEPT.has(type)) {
      const responseId = frame.string('response_id');
      if (responseId === null || !this.#suppressed.has(responseId)) return frame;
      if (type === 'response.output_item.done') return this.#blankedItemEvent(frame);
      return null;
    }
    if (type === 'conversation.item.added' || type === 'conversation.item.done') {
      const item = asObject(frame.json()['item']);
      const itemId = item?.['id'];
      const responseId = typeof itemId === 'string' ? this.#itemResponse.get(itemId) : undefined;
      if (responseId === undefined || !this.#suppressed.has(responseId)) {
        if (type === 'conversation.item.added' && typeof itemId === 'string' && responseId !== undefined) this.#announced.add(itemId);
        return frame;
      }
      return this.#blankedItemEvent(frame);
    }
    return frame;
  }

  #noteAnnounced(frame: Frame): void {
    const itemId = asObject(frame.json()['item'])?.['id'];
    if (typeof itemId === 'string' && this.#itemResponse.has(itemId)) this.#announced.add(itemId);
  }

  /** An item event of a suppressed response: forwarded blanked if the client knows the item, else dropped. */
  #blankedItemEvent(frame: Frame): Frame | null {
    const ev = structuredClone(frame.json());
    const item = asObject(ev['item']);
    const itemId = item?.['id'];
    if (!item || typeof itemId !== 'string' || !this.#announced.has(itemId) || item['type'] !== 'message') return null;
    blankItem(item);
    return Frame.fromEvent(ev as { type: string });
  }

  #done(frame: Frame): Frame {
    const ev = frame.json();
    const response = asObject(ev['response']);
    const id = response?.['id'];
    if (typeof id !== 'string') return frame;
    this.#active.delete(id);
    for (const [item, resp] of this.#itemResponse) {
      if (resp === id) {
        this.#itemResponse.delete(item);
        this.#announced.delete(item);
      }
    }
    if (!this.#suppressed.delete(id)) return frame;
    return this.#blankedDone(frame);
  }

  /** The model's words for a suppressed response never reach the client, not even in the summary. */
  #blankedDone(frame: Frame): Frame {
    const copy = structuredClone(frame.json());
    const r = asObject(copy['response'])!;
    const output = Array.isArray(r['output']) ? r['output'] : [];
    r['output'] = output.filter((o) => asObject(o)?.['type'] === 'message');
    for (const o of r['output'] as unknown[]) {
      const item = asObject(o);
      if (item) blankItem(item);
    }
    if (r['status'] === 'completed' || r['status'] === 'in_progress') {
      r['status'] = 'cancelled';
      r['status_details'] = { type: 'cancelled', reason: 'client_cancelled' };
    }
    return Frame.fromEvent(copy as { type: string });
  }
}
