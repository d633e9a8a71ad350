import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { ConversationView } from '../protocol/conversation.js';
import { asObject } from '../protocol/json.js';
import { AUDIO_OUT, AUDIO_OUT_BETA, TRANSLATION_AUDIO_OUT } from '../protocol/events.js';
import { sniffString } from '../protocol/sniff.js';
import { LazySet } from '../lazy-collections.js';

/**
 * Output audio deltas (GA name, the beta name some servers still send, a translation session's
 * translated audio): relayed and counted by the relay's AudioMeter (`delta`), never parsed.
 */
export const isOutputAudio = (type: string): boolean => type === AUDIO_OUT || type === AUDIO_OUT_BETA || type === TRANSLATION_AUDIO_OUT;

const OUTPUT_EVENTS_KEPT = new Set(['response.created', 'response.done']);
/** Suppressed responses remembered at once (a session runs one or two responses at a time). */
const MAX_SUPPRESSED = 64;

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
 * A suppression lasts until the response's `response.done` is forwarded (`recheck`), not until it
 * is read (`inspect`): frames read before the cancel can still wait in the chain behind an async
 * verdict, and the upstream answers a cancel quickly. Every frame of the response precedes its
 * `response.done` on the wire and in the chain, so none can leave after the suppression is lifted.
 * At most MAX_SUPPRESSED are kept (the oldest is forgotten: its `response.done` never came back).
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

  /** The response an item belongs to (in flight or not), if the view knows it. */
  #responseOf(itemId: string): string | null {
    return this.#conversation.item(itemId)?.responseId ?? null;
  }

  /** Returns true when this call newly suppressed the response. */
  suppress(responseId: string): boolean {
    if (this.#suppressed.has(responseId)) return false;
    if (this.#suppressed.size >= MAX_SUPPRESSED) this.#suppressed.delete(this.#suppressed.values().next().value!);
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
      if (typeof id !== 'string' || !this.#suppressed.delete(id)) return frame;
      // Lifted: nothing of this response is behind its response.done.
      this.#forgetItems(id);
      return this.#blankedDone(frame);
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
      // Its response, active or not: an item of a suppressed response that ended (or never started
      // as far as the view knows) is still that response's output.
      const responseId = typeof itemId === 'string' ? this.#responseOf(itemId) : null;
      if (responseId === null || !this.#suppressed.has(responseId)) {
        if (type === 'conversation.item.added' && typeof itemId === 'string' && responseId !== null && this.isActive(responseId)) this.#announced.add(itemId);
        return frame;
      }
      return this.#blankedItemEvent(frame);
    }
    return frame;
  }

  #noteAnnounced(frame: Frame): void {
    const itemId = asObject(frame.json()['item'])?.['id'];
    if (typeof itemId !== 'string') return;
    const responseId = this.#responseOf(itemId);
    if (responseId !== null && this.isActive(responseId)) this.#announced.add(itemId);
  }

  #forgetItems(responseId: string): void {
    for (const item of this.#conversation.response(responseId)?.itemIds ?? []) this.#announced.delete(item);
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
    const response = asObject(ev['response'])?.['id'];
    if (typeof response !== 'string') return frame;
    // A suppressed response stays suppressed until this frame is forwarded (recheck lifts it).
    if (this.#suppressed.has(response)) return this.#blankedDone(frame);
    this.#forgetItems(response);
    return frame;
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
