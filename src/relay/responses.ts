import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { ConversationView } from '../protocol/conversation.js';
import { asObject } from '../protocol/json.js';
import { AUDIO_OUT, AUDIO_OUT_BETA } from '../protocol/events.js';
import { sniffString } from '../protocol/sniff.js';
import { LazySet } from '../lazy-collections.js';

/** Output audio deltas (GA name, and the beta name some servers still send). */
export const isOutputAudio = (type: string): boolean => type === AUDIO_OUT || type === AUDIO_OUT_BETA;

const OUTPUT_EVENTS_KEPT = new Set(['response.created', 'response.done']);

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
 * Enforces `cancelResponse`: once a response is suppressed, none of its output reaches the
 * client. Which responses are active and which items belong to them comes from the session's
 * conversation view (updated by the relay core before `inspect` runs).
 *
 * Cost: nothing per frame while no response is suppressed. While a suppression is active,
 * `response.*` frames have their `response_id` sniffed (no parse; it precedes the audio).
 */
export class ResponseTracker {
  readonly #conversation: ConversationView;
  readonly #suppressed = new LazySet<string>();
  /** Items whose `added` events reached the client before suppression: they get a blanked `done`. */
  readonly #announced = new LazySet<string>();

  constructor(conversation: ConversationView) {
    this.#conversation = conversation;
  }

  isActive(responseId: string): boolean {
    return this.#conversation.activeResponses().includes(responseId);
  }

  isSuppressed(responseId: string): boolean {
    return this.#suppressed.has(responseId);
  }

  get activeCount(): number {
    return this.#conversation.activeResponses().length;
  }

  /** The in-flight response an item belongs to, if any. */
  #responseOf(itemId: string): string | undefined {
    const responseId = this.#conversation.item(itemId)?.responseId;
    return responseId && this.isActive(responseId) ? responseId : undefined;
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
    if (type === 'response.output_item.added') {
      if (this.#suppressed.size === 0) return frame;
      const responseId = frame.json()['response_id'];
      return typeof responseId === 'string' && this.#suppressed.has(responseId) ? null : frame;
    }
    if (type === 'response.done') return this.#done(frame);
    if (this.#suppressed.size === 0) {
      if (type === 'conversation.item.added' && this.activeCount > 0) this.#noteAnnounced(frame);
      return frame;
    }
    return this.#suppressOutput(frame);
  }

  /**
   * The response an output audio delta belongs to: the only active one while nothing is
   * suppressed (no read of the frame), else its `response_id` sniffed once (suppression must
   * trust only the frame's own id). Null when it has none.
   */
  audioResponseId(bytes: Buffer): string | null {
    const active = this.#conversation.activeResponses();
    if (active.length === 1 && this.#suppressed.size === 0) return active[0]!;
    const sniffed = sniffString(bytes, 'response_id');
    if (sniffed !== undefined) return sniffed;
    // Unreadable without a parse (a repeated member, say): read it as the filters would.
    try {
      return new Frame('', bytes).string('response_id');
    } catch {
      return null;
    }
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
      const responseId = typeof itemId === 'string' ? this.#responseOf(itemId) : undefined;
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
    if (typeof itemId === 'string' && this.#responseOf(itemId) !== undefined) this.#announced.add(itemId);
  }

  /** An item event of a suppressed response: forwarded blanked if the client knows the item, else dropped. */
  #blankedItemEvent(frame: Frame): Frame | null {
    const ev = structuredClone(frame.json());
    const item = asObject(ev['item']);
    const itemId = item?.['id'];
    if (!item || typeof itemId !== 'string' || !this.#announced.has(itemId) || item['type'] !== 'message') return null;
    blankItem(item);
    return Frame.rewritten(frame.type, ev);
  }

  #done(frame: Frame): Frame {
    const ev = frame.json();
    const response = asObject(ev['response']);
    const id = response?.['id'];
    if (typeof id !== 'string') return frame;
    for (const item of this.#conversation.response(id)?.itemIds ?? []) this.#announced.delete(item);
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
    return Frame.rewritten(frame.type, copy);
  }
}
