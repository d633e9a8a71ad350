import { LazyMap } from '../lazy-collections.js';
import type { Source } from './matchers.js';

/**
 * Items whose later views need the context their text streamed with (`#kept`: with it their
 * text was redacted where alone it is not). Never evicted (a later view judged alone would show
 * what the stream redacted): a session past them is ended (`governance_failed`), as one past
 * MAX_ECHOES is. Each seed is at most one window (`windowChars`).
 */
const MAX_KEPT_SEEDS = 256;

/** The context each item's text streamed with (`item\0source` keys), recent and kept, for the item's later views. */
export class ItemSeeds {
  /**
   * The context a model item's (or spoken turn's) text was judged with as it streamed (`item\0source`
   * → the earlier text of its source): every later event showing the item
   * again (`.done`, `output_item.done`, `conversation.item.done`, `response.done`, a retrieve) is
   * judged with it, so a redaction reaching into it from an earlier item is made there too. Until
   * 2026-12-07 those were judged alone: a card number said half in one answer and half in the next
   * had its second half redacted in the deltas and shown on each of them
   * (test/policies/redteam-18-split-redaction.test.ts). At most `maxRecent` (MAX_STREAMS), oldest dropped first:
   * the items whose redaction needed theirs keep it in #kept.
   */
  readonly #recent = new LazyMap<string, string>();
  /**
   * The seeds (as #recent) of items whose text was redacted with it and not alone, kept for
   * every later view (MAX_KEPT_SEEDS). Most items need none (their text alone is judged the same),
   * so an answer's seed is kept only then: until 2026-12-07 every one was kept for the last 256 items
   * streamed, and 256 short answers later, the retrieved second half of a card number split over two
   * answers was judged alone and shown (test/policies/redteam-18t-item-seed-eviction.test.ts).
   */
  readonly #kept = new LazyMap<string, string>();
  readonly #maxRecent: number;

  constructor(maxRecent: number) {
    this.#maxRecent = maxRecent;
  }

  /** No context noted or kept. */
  get empty(): boolean {
    return this.#recent.size === 0 && this.#kept.size === 0;
  }

  /** Keeps the context an item's text was judged with as it streamed (see #recent). */
  note(itemId: string, source: Source, seed: string): void {
    // An empty one is kept too: a segment after the transcript completed must not take the source's context, which holds its own text by then.
    if (itemId === '') return;
    const key = `${itemId}\u0000${source}`;
    if (this.#recent.has(key)) return; // its first part's: the later parts follow it in the item
    if (this.#recent.size >= this.#maxRecent) this.#recent.delete(this.#recent.keys().next().value!);
    this.#recent.set(key, seed);
  }

  /** The context an item's text streamed with (`item\0source`): kept (#kept) or recent (#recent). */
  get(key: string): string | undefined {
    return this.#kept.get(key) ?? this.#recent.get(key);
  }

  /**
   * An item's text was redacted with the context it streamed with, and not alone: that context is
   * kept for its later views (#kept). The item's first part's context, as GuardrailFilter.#shownItemSeeds
   * starts from (`streamed`, the part's own, when it is gone). False when there is no room left:
   * the session cannot be governed (the caller ends it).
   */
  keep(itemId: string, source: Source, streamed: string): boolean {
    if (itemId === '') return true;
    const key = `${itemId}\u0000${source}`;
    if (this.#kept.has(key)) return true;
    if (this.#kept.size >= MAX_KEPT_SEEDS) return false;
    this.#kept.set(key, this.#recent.get(key) ?? streamed);
    return true;
  }
}
