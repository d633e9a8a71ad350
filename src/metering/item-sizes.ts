import type { JsonObject } from '../pipeline/frame.js';
import type { ConversationView } from '../protocol/conversation.js';
import { asObject as obj, asString as str } from '../protocol/json.js';
import { ITEM_OVERHEAD, most, NO_TOKENS, serverItemEstimate, type ConversationEstimate } from './context.js';
import type { McpTracking } from './mcp-tracking.js';
import type { ModalityTokens } from './pricing.js';
import { UpstreamItemIds } from './upstream-item-ids.js';

/**
 * The session's items as metering sizes them in the conversation estimate, beyond what a response's
 * usage counts: client creates (never under an id the upstream made), items the server made or
 * someone the proxy does not relay added, MCP calls' outputs, and out-of-band responses' output.
 */
export class ItemSizes {
  /**
   * Ids of items the upstream made (the model's output items, from `response.output_item.added`,
   * which reaches metering before any client can learn the id): a client `conversation.item.create`
   * naming one is refused upstream as a duplicate, so its content never becomes that id's estimate.
   * The view's items alone are not enough: it keeps the most recent 2,048 only. Kept as fingerprints
   * within 64 KiB (UpstreamItemIds); once full, no client id is trusted as new (references to it count
   * the whole conversation).
   */
  readonly #upstreamItemIds = new UpstreamItemIds();
  readonly #estimate: ConversationEstimate;
  readonly #conversation: Pick<ConversationView, 'item'>;
  readonly #mcp: McpTracking;

  constructor(estimate: ConversationEstimate, conversation: Pick<ConversationView, 'item'>, mcp: McpTracking) {
    this.#estimate = estimate;
    this.#conversation = conversation;
    this.#mcp = mcp;
  }

  /**
   * A client `conversation.item.create` on its way upstream. An id the session already has (the
   * model's answer, an item the upstream made) is refused upstream as a duplicate: the item under that
   * id stays the upstream's, so the client's content must not become that id's estimate (until
   * 2026-12-06 it did: out-of-band `item_reference`s to a model answer were reserved at a one-letter
   * item's size; test/metering/redteam-money.test.ts). The content still counts in the conversation.
   */
  clientItemCreate(item: JsonObject): void {
    this.#estimate.onItemCreate(item, typeof item['id'] === 'string' && this.#isUpstreamItem(item['id']));
  }

  /** An item id the session may have already, made upstream (see #upstreamItemIds). */
  #isUpstreamItem(id: string): boolean {
    return this.#upstreamItemIds.mayHave(id) || this.#conversation.item(id) !== undefined;
  }

  /** The upstream made an item (`response.output_item.added`). */
  upstreamItemAdded(itemId: string): void {
    this.#upstreamItemIds.add(itemId);
  }

  /**
   * A complete item the estimate has no count for: the server made it (`mcp_list_tools`: the MCP
   * server's tool list) or someone the proxy does not relay added it (a browser's data channel on a
   * call: provenance 'server'). Client items, committed audio and model output are counted already.
   */
  itemDone(item: JsonObject | null): void {
    const id = str(item?.['id']);
    if (!item || id === null) return;
    // Its output is counted below, from what the item holds now.
    this.#mcp.itemDone(id);
    const provenance = this.#conversation.item(id)?.provenance;
    // A client item create read upstream: a response started from now on reads it.
    if (provenance === 'client') this.#estimate.itemAcknowledged(id);
    if (item['type'] === 'mcp_call' && provenance !== 'server') {
      // The model made the call (its arguments are its output tokens), the MCP server the `output`
      // (or `error`): no response's usage counts that, and the next response reads it (until
      // 2026-12-06 it was not counted; test/metering/redteam-money.test.ts).
      const made = (typeof item['output'] === 'string' ? Buffer.byteLength(item['output'], 'utf8') : 0) + (item['error'] != null ? Buffer.byteLength(JSON.stringify(item['error']), 'utf8') : 0);
      if (made > 0) this.#estimate.addItem(null, { text: made, audio: 0, image: 0 });
      return;
    }
    if (item['type'] !== 'mcp_list_tools' && provenance !== 'server') return;
    const estimate = serverItemEstimate(item, this.#estimate.bytesPerMs);
    if (item['type'] === 'mcp_list_tools') this.#mcp.listDone(item, id, estimate);
    this.#estimate.addItem(id, estimate);
  }

  /**
   * An out-of-band response's output items are not added to the conversation (reference §3.3), and an
   * `item_reference` is to an item that existed in the conversation (OpenAI's API reference), so the
   * upstream refuses a reference to one (item_not_found, which releases the reservation). Should it
   * read one all the same, the reservation must cover it: an id the estimate had no size for counted
   * the conversation only, which an out-of-band output need not be in (until the twelfth session:
   * src/metering/filter-twelfth.test.ts). Each output item gets the larger of its own content (as a
   * server item: JSON bytes, an MCP output included) and the response's whole output (its usage).
   */
  outOfBandOutput(response: JsonObject, t: { readonly outputTokens: number; readonly output: { readonly text: number; readonly audio: number } } | null): void {
    const output = response['output'];
    if (!Array.isArray(output)) return;
    const used: ModalityTokens = t ? { text: ITEM_OVERHEAD + Math.max(t.output.text, t.outputTokens - t.output.audio), audio: t.output.audio, image: 0 } : { ...NO_TOKENS };
    for (const raw of output) {
      const item = obj(raw);
      const itemId = str(item?.['id']);
      if (item && itemId !== null) this.#estimate.noteItem(itemId, most(serverItemEstimate(item, this.#estimate.bytesPerMs), used));
    }
  }
}
