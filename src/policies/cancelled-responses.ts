import { LazyMap } from '../lazy-collections.js';

/**
 * The responses this filter cancelled and the items it saw trip in them (#cancelled), kept until each
 * response is done: as many responses as may run at once (the view ends a session past 64,
 * MAX_RUNNING_RESPONSES), and item ids up to a count and their characters in all (each id is at most
 * 256 characters: the view ends a session past them). Never evicted: a response forgotten would have
 * its frames shown and its items left in the conversation, an item forgotten left there. Past them,
 * once the responses already done are settled, the session is ended (`governance_failed`). Until the
 * twenty-fourth session the oldest response was forgotten past 64, and its item ids grew with every
 * trip (src/policies/guardrails-cancelled-bound.test.ts).
 */
export const MAX_CANCELLED_RESPONSES = 64;
export const MAX_CANCELLED_ITEMS = 1024;
export const MAX_CANCELLED_ITEM_CHARS = 128 * 1024;

/**
 * The responses the guardrail filter cancelled, with the item ids it saw trip in each, within the
 * bounds above. The filter settles a response (takes it out, deletes its items upstream) when it is
 * done, and ends the session when `note` cannot keep one.
 */
export class CancelledResponses {
  readonly #responses = new LazyMap<string, Set<string>>();
  /** Item ids kept, and their characters. */
  #items = 0;
  #chars = 0;

  has(responseId: string): boolean {
    return this.#responses.has(responseId);
  }

  /** No room for another response (until one is taken out). */
  get full(): boolean {
    return this.#responses.size >= MAX_CANCELLED_RESPONSES;
  }

  /** The responses kept, as a copy (taking one out while walking them is safe). */
  responseIds(): string[] {
    return [...this.#responses.keys()];
  }

  /** Keeps a response and the item that tripped in it (none: null); false when past the bounds. */
  note(responseId: string, itemId: string | null): boolean {
    let items = this.#responses.get(responseId);
    if (!items) {
      if (this.full) return false;
      this.#responses.set(responseId, (items = new Set()));
    }
    if (!itemId || items.has(itemId)) return true;
    if (this.#items >= MAX_CANCELLED_ITEMS || this.#chars + itemId.length > MAX_CANCELLED_ITEM_CHARS) return false;
    items.add(itemId);
    this.#items++;
    this.#chars += itemId.length;
    return true;
  }

  /** Takes a response out: the item ids kept for it (undefined when it was not kept). */
  take(responseId: string): Set<string> | undefined {
    const ids = this.#responses.get(responseId);
    if (!ids) return undefined;
    this.#responses.delete(responseId);
    this.#items -= ids.size;
    for (const itemId of ids) this.#chars -= itemId.length;
    return ids;
  }
}
