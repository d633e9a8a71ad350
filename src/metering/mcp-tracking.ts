import type { JsonObject } from '../pipeline/frame.js';
import { asObject as obj, asString as str, keptId } from '../protocol/json.js';
import { LazyMap } from '../lazy-collections.js';
import { add, most, NO_TOKENS, UNKNOWN_SIZE } from './context.js';
import type { ModalityTokens } from './pricing.js';

/** The `server_label`s of a tools list's MCP tools (`type: "mcp"`: a remote server or a connector the upstream calls itself). */
export function mcpLabelsOf(tools: unknown): string[] {
  if (!Array.isArray(tools)) return [];
  const out = new Set<string>();
  for (const raw of tools) {
    const t = obj(raw);
    if (t?.['type'] !== 'mcp') continue;
    out.add(labelOf(t['server_label']));
    // More servers than metering keeps lists of (MAX_MCP_LISTS): one of them has none, so its list
    // counts at its unknown size (McpTracking.listInput) whichever are kept. A frame's worth of tools is never kept.
    if (out.size > MAX_MCP_LISTS) break;
  }
  return [...out];
}

/**
 * An MCP `server_label` as metering keeps it: only compared (a list with the tools that name it), so
 * one longer than an id is kept as its hash (keptId): the client's and the upstream's labels may be as
 * long as a frame, and 256 lists of them were kept whole until 2026-12-07.
 */
export function labelOf(v: unknown): string {
  return keptId(str(v) ?? '');
}

/** MCP servers whose tool list metering keeps (McpTracking.#lists); beyond it a list is taken as unknown. */
export const MAX_MCP_LISTS = 256;
/**
 * MCP calls not done yet that metering keeps (McpTracking.#calls). The upstream names their responses, and a
 * call whose response metering never sees done stays: past the bound (a broken upstream's, 1,024
 * calls open at once) every item and response may hold an MCP output (McpTracking.#callsFull), never less.
 */
const MAX_MCP_CALLS = 1024;

/**
 * An MCP server's output as a response reading it counts it: text of a size nothing bounds (the
 * estimate then fills the context window at the text rate: the upstream never bills input beyond it).
 */
export const MCP_OUTPUT: Readonly<ModalityTokens> = Object.freeze({ text: UNKNOWN_SIZE, audio: 0, image: 0 });

/**
 * A session's MCP state as metering reads it from the upstream: the servers' tool lists it has, the
 * listings not done yet, and the calls the model made whose output is not in yet (MCP_OUTPUT).
 */
export class McpTracking {
  /**
   * MCP servers' tool lists, by `server_label`: the `mcp_list_tools` item the upstream made for one
   * (`conversation.item.done`, estimated as a server item; a failed listing lists nothing). A server
   * the session has no list for yet has one of a size the proxy cannot know, which a response with
   * that server among its tools reads (listInput).
   */
  readonly #lists = new LazyMap<string, Readonly<ModalityTokens>>();
  /** `mcp_list_tools` items added and not done yet: their server's label (a `mcp_list_tools.failed` names the item only). */
  readonly #listing = new LazyMap<string, string>();
  /**
   * MCP calls the model made (`response.output_item.added` of an `mcp_call`, by item id, its response
   * id) whose `conversation.item.done` (or response's done) was not read yet: the MCP server's output
   * may be in the item already, at a size unknown to the proxy (MCP_OUTPUT).
   */
  readonly #calls = new LazyMap<string, string | null>();
  /** #calls was full when a call came: any item may be an MCP call not done (sticky: pessimistic). */
  #callsFull = false;

  /** A `conversation.item.added`: an `mcp_list_tools` item is a server's list being made. */
  itemAdded(item: JsonObject | null): void {
    const itemId = str(item?.['id']);
    if (itemId !== null && item?.['type'] === 'mcp_list_tools' && this.#listing.size < MAX_MCP_LISTS) this.#listing.set(itemId, labelOf(item['server_label']));
  }

  /** An `mcp_list_tools.failed` for `itemId`. */
  listFailed(itemId: string): void {
    const label = this.#listing.get(itemId);
    this.#listing.delete(itemId);
    // Nothing listed: the server's list is empty (its item counts as the estimate has it).
    if (label !== undefined) this.#noteList(label, NO_TOKENS);
  }

  /** An `mcp_list_tools` item done, estimated at `estimate`: its server's list. */
  listDone(item: JsonObject, itemId: string, estimate: Readonly<ModalityTokens>): void {
    this.#listing.delete(itemId);
    this.#noteList(labelOf(item['server_label']), estimate);
  }

  /** An MCP server's tool list, as the session has it now (the larger when listed again). */
  #noteList(label: string, t: Readonly<ModalityTokens>): void {
    const known = this.#lists.get(label);
    if (known) this.#lists.set(label, most(known, t));
    else if (this.#lists.size < MAX_MCP_LISTS) this.#lists.set(label, t);
  }

  /**
   * The tool lists of the servers `labels`: of unknown size (MCP_OUTPUT) if one has none yet; else
   * their sum unless `inConversation` (the lists the session has are in the conversation estimate already).
   */
  listInput(labels: ReadonlySet<string>, inConversation: boolean): ModalityTokens {
    const t: ModalityTokens = { ...NO_TOKENS };
    for (const label of labels) {
      const list = this.#lists.get(label);
      if (list === undefined) return add(t, MCP_OUTPUT);
      if (!inConversation) add(t, list);
    }
    return t;
  }

  /** A `response.output_item.added` of an `mcp_call` item, made by `responseId`. */
  callAdded(itemId: string, responseId: string | null): void {
    if (this.#calls.size < MAX_MCP_CALLS || this.#calls.has(itemId)) this.#calls.set(itemId, responseId);
    else this.#callsFull = true;
  }

  /** The item is done (`conversation.item.done`): its output, if a call's, is in it now. */
  itemDone(itemId: string): void {
    this.#calls.delete(itemId);
  }

  /** The response is done: its calls are too. */
  responseDone(responseId: string): void {
    for (const [itemId, owner] of this.#calls) if (owner === responseId) this.#calls.delete(itemId);
  }

  /** `itemId` may be an MCP call not done yet. */
  mayBeOpenCall(itemId: string): boolean {
    return this.#callsFull || this.#calls.has(itemId);
  }

  /** `responseId` may have an MCP call not done yet. */
  mayHaveOpenCall(responseId: string): boolean {
    if (this.#callsFull) return true;
    for (const owner of this.#calls.values()) if (owner === responseId) return true;
    return false;
  }
}
