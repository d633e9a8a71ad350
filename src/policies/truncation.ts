import { CONTINUE, reject, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { Frame, JsonObject } from '../pipeline/frame.js';
import type { PolicyRegistry } from './registry.js';
import type { PolicyTruncation } from './schema.js';
import { asArray, asNumber, asObject, asString, keptId } from '../protocol/json.js';
import { ProxyError } from '../protocol/errors.js';
import { isTranslationSession } from '../protocol/events.js';
import { LazyMap, LazySet } from '../lazy-collections.js';
import type { Provenance } from '../protocol/conversation.js';
import { clientEventId } from './util.js';
import { applySessionUpdate } from '../protocol/session-update.js';
import { budgetedInputBytesPerMs, G711_BYTES_PER_MS, PartedAudioBuffer } from '../protocol/audio-format.js';

/**
 * An item's `call_id` as this filter keeps and compares it: a client-chosen id over
 * MAX_KEPT_ID_CHARS as its hash (keptId), so a 16 MiB id costs no more than a short one.
 */
function callIdOf(item: JsonObject): string | null {
  return keptOrNull(asString(item['call_id']));
}

/** A client-chosen id as this filter keeps it (keptId), or null. */
function keptOrNull(id: string | null): string | null {
  return id === null ? null : keptId(id);
}

/**
 * Client creates not shown by the server yet (#pending): a create the upstream refuses is never
 * shown, so the oldest are forgotten past this many. Until 2026-12-07 the list had no bound, and
 * each refused create kept its item's `call_id` whole (src/policies/truncation-pending-bound.test.ts).
 */
const MAX_PENDING_CREATES = 256;
/** Unanswered `session.update`s whose asked input format is kept (#askedBytesPerMs), as metering keeps its guesses. */
const MAX_ASKED_FORMATS = 64;

export const TRUNCATION_FILTER = 'policies.truncation';

type Budget = NonNullable<PolicyTruncation['budget']>;

/** Per-item framing tokens (role markers and the like). */
const ITEM_OVERHEAD = 4;
/** Audio token rates: user ≈ 1 per 100 ms, assistant ≈ 1 per 50 ms. */
const USER_AUDIO_MS_PER_TOKEN = 100;
const ASSISTANT_AUDIO_MS_PER_TOKEN = 50;
const IMAGE_TOKENS = 255;

const textTokens = (s: string) => Math.ceil(s.length / 4);

/**
 * The share of the prune target (`maxTokens × targetRatio`) the system messages `keepSystem` pins
 * may take together: oldest first (the app's first system prompt is the foundation the later ones
 * build on), each pinned while the sum of those pinned so far stays within it; the first that does
 * not fit ends the pinning, so the pinned ones are the oldest system messages. Past it they are
 * deleted like any item (oldest first among what may be deleted). Without a bound, a client (where
 * no instructions lock turns its system messages into user messages) could create any number of
 * system messages of any size, each up to a frame, and every later response would read them all.
 * None is pinned whatever its size, not even the first: one system message the size of a frame
 * would be the same walk-around in one item; an app whose standing prompt is that large sets it as
 * `instructions` or is given a budget that fits it.
 */
export const SYSTEM_SHARE = 0.5;
/**
 * Unanswered function calls (no output in the conversation, none on its way) pinned: the most
 * recent ones, by the call's place in the conversation. The client may still be running them (or
 * answer late: async function calling); older ones are pruned like any item when over budget, so a
 * client that never answers cannot grow the context past the budget without bound. Bounded in count
 * (8 covers a model's parallel calls) and in tokens (UNANSWERED_CALLS_SHARE): a client can create
 * calls itself, each as large as a frame.
 */
export const MAX_PINNED_UNANSWERED_CALLS = 8;
/**
 * The share of the prune target (`maxTokens × targetRatio`) the pinned unanswered calls may take
 * together. The newest unanswered call (the one the client is most likely running) is pinned
 * whatever its size when the model made it (its size is bounded by what a response may output),
 * as keepLast pins the latest items; one the client created itself (up to a frame) is held to
 * this share like the older ones. Older ones, newest first, only while the count stays within
 * MAX_PINNED_UNANSWERED_CALLS and the calls pinned so far, the newest included, within this
 * share. The first that does not fit ends the pinning: a kept unanswered call is never older than
 * a deleted one. (SYSTEM_SHARE is a share of the same target: the two together may fill it.)
 */
export const UNANSWERED_CALLS_SHARE = 0.5;
/**
 * The share of the prune target the first `keepFirst` items may take together: oldest first, each
 * pinned while the sum so far stays within it; the first that does not fit ends the pinning. The
 * operator pins the start of a conversation (an app's opening context), but the client decides what
 * it is: until 2026-12-06 the first item was pinned whatever its size, so a client whose first item
 * was as large as a frame made every later response read it (the same walk-around as SYSTEM_SHARE's).
 */
export const KEEP_FIRST_SHARE = 0.5;
/**
 * Call ids of unanswered calls the proxy deleted, remembered so that a late output for one is
 * refused (`function_call_pruned`) instead of reaching the upstream without its call: the most
 * recent MAX_REMEMBERED_PRUNED_CALLS, each at most MAX_REMEMBERED_CALL_ID_CHARS long as kept
 * (callIdOf: an id over MAX_KEPT_ID_CHARS is kept as its hash, which is short, and remembered; one
 * between the two bounds is not, and its output is relayed for the upstream to decide).
 */
export const MAX_REMEMBERED_PRUNED_CALLS = 256;
export const MAX_REMEMBERED_CALL_ID_CHARS = 128;
/**
 * The share of the prune target (`maxTokens × targetRatio`) the instructions, tools and reusable
 * prompt variables a response reads may take together: the session's, or a response.create's own
 * (which replace the session's for that response, each on its own). They are session state, not items: every
 * response reads them and no delete can take them away, so without a bound one `session.update`
 * (instructions or tool definitions of any size, up to a frame) held every response over the
 * budget, and the pruning deleted the client's items at every response without ever getting under
 * it. Half the target: what the other half leaves the conversation is the same room the system
 * messages' and the unanswered calls' shares are cut from. Estimated as the tracker estimates text
 * (`instructions` chars / 4, `tools` as the characters of their JSON / 4, `prompt.variables` by
 * `promptTokens`; until 2026-12-06 the variables were not counted). A stored prompt's own text is
 * not known to the proxy and not counted; the tools an MCP server lists come as an `mcp_list_tools`
 * item, counted as an item.
 */
export const INSTRUCTIONS_SHARE = 0.5;

/** What `INSTRUCTIONS_SHARE` allows under `budget`, in tokens. */
export function instructionsLimit(budget: Budget): number {
  return Math.floor(Math.floor(budget.maxTokens * budget.targetRatio) * INSTRUCTIONS_SHARE);
}

/** Tokens of an `instructions` value as the tracker estimates text (anything but a string: none). */
export function instructionsTokens(instructions: unknown): number {
  return typeof instructions === 'string' ? textTokens(instructions) : 0;
}

/**
 * Tokens of a `tools` value: its JSON's characters / 4 (an empty list, or anything but a list:
 * none). MCP tools (`type: "mcp"`) count as the definitions the client sends (server label and
 * URL, allowed tools, headers, ...); the tools the MCP server then lists reach the conversation as
 * an `mcp_list_tools` item, counted (and pruned) as an item once complete.
 */
export function toolsTokens(tools: unknown): number {
  return Array.isArray(tools) && tools.length > 0 ? textTokens(JSON.stringify(tools)) : 0;
}

/**
 * Tokens of a reusable prompt's `variables` (`prompt: {id, version, variables}`): the upstream puts
 * each into what every response of the session (or the one response) reads. Estimated as the
 * tracker estimates text: each name and value, characters / 4 together (a string, an `input_text`'s
 * text; anything else but an image as the characters of its JSON, an `input_file` too: its file
 * is not seen), an `input_image` as an image item part. None without variables, for `prompt: null`,
 * or anything but an object. The stored prompt's own text (its template, instructions, tools) is
 * kept by OpenAI: the proxy does not see it and it is not counted (usage calibrates the overhead).
 */
export function promptTokens(prompt: unknown): number {
  const vars = asObject(asObject(prompt)?.['variables']);
  if (!vars) return 0;
  let chars = 0;
  let images = 0;
  for (const [name, value] of Object.entries(vars)) {
    chars += name.length;
    if (typeof value === 'string') {
      chars += value.length;
      continue;
    }
    const part = asObject(value);
    if (part?.['type'] === 'input_image') images++;
    else if (part?.['type'] === 'input_text' && typeof part['text'] === 'string') chars += part['text'].length;
    else chars += JSON.stringify(value ?? null).length;
  }
  return Math.ceil(chars / 4) + images * IMAGE_TOKENS;
}

/**
 * The instructions, tools and reusable prompt variables a response reads, in tokens (see
 * INSTRUCTIONS_SHARE). `prompt` left out: none.
 */
export interface PromptPrefix {
  readonly instructions: number;
  readonly tools: number;
  readonly prompt?: number;
}

const NO_PREFIX: PromptPrefix = { instructions: 0, tools: 0, prompt: 0 };

const prefixTokens = (p: PromptPrefix) => p.instructions + p.tools + (p.prompt ?? 0);

/**
 * What the session's instructions, tools and prompt variables become with what `own` (a
 * `session.update`'s `session`, a `response.create`'s `response`) sets: each it sets replaces the
 * current one (a response's own `prompt` the session's, `prompt: null` none).
 */
export function prefixAfter(own: JsonObject, current: PromptPrefix): PromptPrefix {
  return {
    instructions: own['instructions'] !== undefined ? instructionsTokens(own['instructions']) : current.instructions,
    tools: own['tools'] !== undefined ? toolsTokens(own['tools']) : current.tools,
    prompt: own['prompt'] !== undefined ? promptTokens(own['prompt']) : (current.prompt ?? 0),
  };
}

/**
 * Checks the instructions and tools an event would set (`own`: the members it carries, a
 * `session.update`'s `session` or a `response.create`'s `response`) against INSTRUCTIONS_SHARE:
 * what it does not set is `current` (the session's). Refused (`context_budget_exceeded`, `param`
 * naming the field it changes, the larger when both, under `at`) when the two together exceed the share and
 * exceed what the session already reads: an event that keeps or lowers them is never refused
 * (they may be over the share by the operator's doing alone: locked instructions). Null when it fits.
 */
export function checkPromptPrefix(budget: Budget, current: PromptPrefix, own: JsonObject, at: string, eventId: string | null): ProxyError | null {
  return prefixRefusal(budget, current, prefixAfter(own, current), own, at, eventId);
}

/** `checkPromptPrefix` with `next` (= `prefixAfter(own, current)`) already computed: the tools' JSON is sized once per event. */
function prefixRefusal(budget: Budget, current: PromptPrefix, next: PromptPrefix, own: JsonObject, at: string, eventId: string | null): ProxyError | null {
  const sets = (['instructions', 'tools', 'prompt'] as const).filter((field) => own[field] !== undefined);
  if (sets.length === 0) return null;
  const tokens = prefixTokens(next);
  const limit = instructionsLimit(budget);
  if (tokens <= limit || tokens <= prefixTokens(current)) return null;
  // The field the event changes (one it sets as it was, e.g. locked instructions, is not its doing); several: the largest (the first of equals).
  let field: (typeof sets)[number] | null = null;
  for (const f of sets) if ((next[f] ?? 0) !== (current[f] ?? 0) && (field === null || (next[f] ?? 0) > (next[field] ?? 0))) field = f;
  return new ProxyError('context_budget_exceeded', { eventId, param: `${at}.${field ?? sets[0]!}`, details: { tokens, limit } });
}

interface TrackedItem {
  readonly id: string;
  type: string | null;
  role: string | null;
  callId: string | null;
  tokens: number;
  /** True once the token count came from usage (not re-estimated from item events). */
  measured: boolean;
  status: string | null;
  /** The model made it (a response's output item): see UNANSWERED_CALLS_SHARE. */
  byModel: boolean;
  /**
   * At least this many tokens: the client's create as sized before it was sent. The upstream shows
   * a created audio item without its audio (`transcript: null`): re-estimated from what it shows,
   * 60 s of it went back to 4 tokens.
   */
  floor: number;
}

/**
 * Rough token count of an item from its content (audio from its duration when known). Audio it
 * carries (base64) is sized at `bytesPerMs`: the session's input format (the API takes a created
 * item's audio in it), G.711's (the densest, never counted short) where it is not known.
 */
export function estimateItemTokens(item: JsonObject, audioMs: number | null, bytesPerMs = G711_BYTES_PER_MS): number {
  let t = ITEM_OVERHEAD;
  const type = item['type'];
  if (type === 'function_call') return t + textTokens(asString(item['name']) ?? '') + textTokens(asString(item['arguments']) ?? '');
  if (type === 'function_call_output') return t + textTokens(asString(item['output']) ?? '');
  if (type !== 'message') return t + textTokens(JSON.stringify(item));
  const assistant = item['role'] === 'assistant';
  for (const p of asArray(item['content']) ?? []) {
    const part = asObject(p);
    if (!part) continue;
    const pt = part['type'];
    if (pt === 'input_audio' || pt === 'output_audio' || pt === 'audio') {
      const rate = assistant ? ASSISTANT_AUDIO_MS_PER_TOKEN : USER_AUDIO_MS_PER_TOKEN;
      // Audio a client put in itself (base64 `audio`) is sized by its length: until 2026-12-07 by its
      // transcript only, none, and 60 s of it counted 4 tokens (test/policies/redteam-17f-created-audio.test.ts).
      const carried = asString(part['audio']);
      const dataMs = carried === null ? 0 : Math.floor((carried.length * 3) / 4) / bytesPerMs;
      if (audioMs !== null) t += Math.ceil(Math.max(audioMs, dataMs) / rate);
      else t += Math.max(textTokens(asString(part['transcript']) ?? '') * (assistant ? 3 : 2), Math.ceil(dataMs / rate));
    } else if (pt === 'input_image') {
      t += IMAGE_TOKENS;
    } else {
      t += textTokens(asString(part['text']) ?? asString(part['transcript']) ?? '');
    }
  }
  return t;
}

/** The call an item belongs to (a function_call or its output), or null. */
function callKey(item: TrackedItem): string | null {
  return item.type === 'function_call' || item.type === 'function_call_output' ? item.callId : null;
}

export interface PrunePlan {
  readonly itemIds: readonly string[];
  readonly tokensBefore: number;
  readonly tokensAfter: number;
}

/** The first of `items` while their tokens together stay within `share` (the first that does not fit ends them). */
function oldestWithin(items: readonly TrackedItem[], share: number): TrackedItem[] {
  const out: TrackedItem[] = [];
  let tokens = 0;
  for (const item of items) {
    if (tokens + item.tokens > share) break;
    out.push(item);
    tokens += item.tokens;
  }
  return out;
}

/**
 * The proxy's model of the upstream conversation: items in order with estimated tokens, plus an
 * overhead (instructions, tools, estimation error) recalibrated from each response's
 * `usage.input_tokens`, so `total()` tracks what the next response will be billed as input.
 */
export class ContextTracker {
  readonly #items: TrackedItem[] = [];
  readonly #byId = new LazyMap<string, TrackedItem>();
  readonly #speech = new LazyMap<string, { start: number | null; end: number | null }>();
  /** Committed turns' audio by the bytes appended for them (see `buffered`). */
  readonly #bufferedMs = new LazyMap<string, number>();
  #overhead = 0;
  /** The session's input audio bytes per millisecond now, for audio an item shown carries (`estimateItemTokens`). */
  readonly #inputBytesPerMs: () => number;

  constructor(inputBytesPerMs: () => number = () => G711_BYTES_PER_MS) {
    this.#inputBytesPerMs = inputBytesPerMs;
  }

  get size(): number {
    return this.#items.length;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  ids(): string[] {
    return this.#items.map((i) => i.id);
  }

  /** The tokens of an item in the conversation, or null when the tracker does not know it. */
  tokensOf(id: string): number | null {
    return this.#byId.get(id)?.tokens ?? null;
  }

  /**
   * What the next response reads, estimated: the items and the overhead. `known`: the instructions,
   * tools and prompt variables the proxy knows that response reads (PromptPrefix), a floor of the
   * overhead: before the first response.done calibrates it (none yet), or after a session.update
   * made them larger than when it was calibrated.
   */
  total(known = 0): number {
    let sum = Math.max(this.#overhead, known);
    for (const i of this.#items) sum += i.tokens;
    return sum;
  }

  #audioMs(id: string): number | null {
    const s = this.#speech.get(id);
    const spoken = s && s.start !== null && s.end !== null && s.end > s.start ? s.end - s.start : null;
    const buffered = this.#bufferedMs.get(id) ?? null;
    // A server-VAD turn's speech span is its audio: the appended bytes also hold the silence around it.
    return spoken ?? buffered;
  }

  /**
   * A committed turn of `ms` of audio by what the client appended since the last commit (a turn the
   * client commits itself has no speech events, and without transcription no transcript either:
   * until 2026-12-07 it was 4 tokens whatever its length, test/policies/redteam-17f-created-audio-e2e.test.ts, "turns the client commits itself").
   */
  buffered(id: string, ms: number): void {
    if (ms <= 0) return;
    this.#bufferedMs.set(id, ms);
    this.#sizeByAudio(id);
  }

  /** A user audio item's estimate from its audio's length, once known (never below its create's, `floor`). */
  #sizeByAudio(id: string): void {
    const item = this.#byId.get(id);
    const ms = this.#audioMs(id);
    if (item && ms !== null && !item.measured) item.tokens = Math.max(item.floor, ITEM_OVERHEAD + Math.ceil(ms / USER_AUDIO_MS_PER_TOKEN));
  }

  /**
   * Adds or updates an item; true when the item is new to the tracker. `provenance`: who put it in
   * the conversation (the conversation view's), when known; an item of unknown provenance is not
   * the model's.
   */
  upsert(item: JsonObject, previousItemId: string | null | undefined, provenance?: Provenance): boolean {
    const id = asString(item['id']);
    if (id === null) return false;
    const existing = this.#byId.get(id);
    const type = asString(item['type']);
    if (existing) {
      existing.type = type;
      existing.role = asString(item['role']) ?? existing.role;
      existing.callId = callIdOf(item) ?? existing.callId;
      existing.status = asString(item['status']);
      if (provenance !== undefined) existing.byModel = provenance === 'model';
      if (!existing.measured) existing.tokens = Math.max(existing.floor, estimateItemTokens(item, this.#audioMs(id), this.#inputBytesPerMs()));
      return false;
    }
    const tracked: TrackedItem = {
      id,
      type,
      role: asString(item['role']),
      callId: callIdOf(item),
      tokens: estimateItemTokens(item, this.#audioMs(id), this.#inputBytesPerMs()),
      measured: false,
      status: asString(item['status']),
      byModel: provenance === 'model',
      floor: 0,
    };
    this.#byId.set(id, tracked);
    // `previous_item_id: null` is the start of the conversation; unknown ids append.
    if (previousItemId === null) this.#items.unshift(tracked);
    else {
      const at = this.#items.findIndex((i) => i.id === previousItemId);
      if (at < 0) this.#items.push(tracked);
      else this.#items.splice(at + 1, 0, tracked);
    }
    return true;
  }

  remove(id: string): boolean {
    const item = this.#byId.get(id);
    if (!item) return false;
    this.#byId.delete(id);
    this.#speech.delete(id);
    this.#bufferedMs.delete(id);
    this.#items.splice(this.#items.indexOf(item), 1);
    return true;
  }

  speech(id: string, start: number | null, end: number | null): void {
    const s = this.#speech.get(id) ?? { start: null, end: null };
    if (start !== null) s.start = start;
    if (end !== null) s.end = end;
    this.#speech.set(id, s);
    this.#sizeByAudio(id);
  }

  /** The client's create of item `id` was sized at `tokens` before it went upstream: its estimate never drops below. */
  sizedByCreate(id: string, tokens: number): void {
    const item = this.#byId.get(id);
    if (!item || item.measured) return;
    item.floor = tokens;
    item.tokens = Math.max(item.tokens, tokens);
  }

  /** `conversation.item.truncated`: the assistant audio after `audioEndMs` is gone. */
  truncated(id: string, audioEndMs: number): void {
    const item = this.#byId.get(id);
    if (!item) return;
    item.tokens = Math.min(item.tokens, ITEM_OVERHEAD + Math.ceil(audioEndMs / ASSISTANT_AUDIO_MS_PER_TOKEN));
    item.measured = true;
  }

  /** Adds text to an item's estimate (e.g. a finished input transcript of an audio item of unknown length). */
  transcript(id: string, text: string): void {
    const item = this.#byId.get(id);
    if (item && !item.measured && this.#audioMs(id) === null) item.tokens = Math.max(item.floor, ITEM_OVERHEAD + textTokens(text) * 2);
  }

  /**
   * Ground truth from `response.done`: `inputTokens` is what the response was billed as context;
   * `outputTokens` belong to its output items, which join the conversation.
   */
  calibrate(inputTokens: number, outputTokens: number, outputIds: readonly string[]): void {
    const out = outputIds.map((id) => this.#byId.get(id)).filter((i): i is TrackedItem => i !== undefined);
    const outSet = new Set(out);
    let before = 0;
    for (const i of this.#items) if (!outSet.has(i)) before += i.tokens;
    this.#overhead = Math.max(0, inputTokens - before);
    // (No output items: the share is never used.)
    if (outputTokens > 0) {
      const share = Math.max(1, Math.round(outputTokens / out.length));
      for (const i of out) {
        i.tokens = ITEM_OVERHEAD + share;
        i.measured = true;
      }
    }
  }

  /**
   * The call id of `id` when it is a function_call whose call has no output in the conversation
   * (an unanswered call), else null.
   */
  unansweredCall(id: string): string | null {
    const item = this.#byId.get(id);
    if (!item || item.type !== 'function_call' || item.callId === null) return null;
    return this.#items.some((i) => i.type === 'function_call_output' && i.callId === item.callId) ? null : item.callId;
  }

  /**
   * The oldest items to delete to get from over `maxTokens` down to `maxTokens × targetRatio`.
   * Pinned: the first `keepFirst` within KEEP_FIRST_SHARE of the target, the oldest system messages
   * (`keepSystem`) within SYSTEM_SHARE of it, the latest `keepLast`, and anything still in progress. A function_call and its
   * function_call_output go together, and a call is kept while its output is pending: sent by the
   * client and not echoed yet (in `pendingCalls`), or not in the conversation yet (the client may
   * still be running the function) for the most recent unanswered calls (the newest always when
   * the model made it, the others up to MAX_PINNED_UNANSWERED_CALLS and UNANSWERED_CALLS_SHARE of
   * the target); an older unanswered call is deleted like any item.
   * `pendingTokens`: items about to join the conversation (created, not yet echoed). `awaited`:
   * items pinned for a while as the ones in progress are (spoken turns held for their transcript,
   * or passed and waiting for the response that answers them: `SpokenTurnsView#pinned`).
   * `known`: the instructions, tools and prompt variables the response reads, as the proxy knows
   * them: the overhead is at least that (see `total`).
   * When what no delete will ever take away (the overhead, the keepFirst and system pins) is
   * itself over `maxTokens`, the budget cannot be met: null until what may be
   * deleted exceeds `maxTokens − target`, then all of it.
   */
  plan(budget: Budget, pendingTokens = 0, pendingCalls: ReadonlySet<string> = new Set(), awaited?: (id: string) => boolean, known = 0): PrunePlan | null {
    const before = this.total(known) + pendingTokens;
    if (before <= budget.maxTokens) return null;
    const target = Math.floor(budget.maxTokens * budget.targetRatio);
    const n = this.#items.length;
    const pinned = new Set<TrackedItem>();
    /**
     * Pinned for the session's life: the first keepFirst, and the system messages, each oldest first
     * while together within their share of the target.
     */
    const lastingPins = new Set<TrackedItem>([
      ...oldestWithin(this.#items.slice(0, budget.keepFirst), Math.floor(target * KEEP_FIRST_SHARE)),
      ...(budget.keepSystem ? oldestWithin(this.#items.filter((item) => item.role === 'system'), Math.floor(target * SYSTEM_SHARE)) : []),
    ]);
    for (const item of lastingPins) pinned.add(item);
    this.#items.forEach((item, idx) => {
      if (idx >= n - budget.keepLast || item.status === 'in_progress' || awaited?.(item.id)) pinned.add(item);
    });
    // A function_call and its function_call_output(s) are deleted together (never an unanswered call).
    const groups = new Map<string | TrackedItem, TrackedItem[]>();
    const groupKey = (item: TrackedItem) => callKey(item) ?? item;
    for (const item of this.#items) groups.set(groupKey(item), [...(groups.get(groupKey(item)) ?? []), item]);
    // A call whose output is on its way is kept (the output would arrive without it); so are the
    // most recent unanswered calls (the client may still answer them), but not for good.
    const unanswered: TrackedItem[][] = [];
    for (const [key, group] of groups) {
      if (typeof key !== 'string') continue;
      const answered = group.some((g) => g.type === 'function_call_output');
      if (pendingCalls.has(key)) for (const g of group) pinned.add(g);
      else if (!answered && group.some((g) => g.type === 'function_call')) unanswered.push(group);
    }
    // Groups in the order of their first item: the call's place in the conversation. Newest first:
    // the newest whatever its size when the model made it (every call item of its group), then
    // (and a client's newest) within the count and the token share.
    const share = Math.floor(target * UNANSWERED_CALLS_SHARE);
    let pinnedCalls = 0;
    let pinnedCallTokens = 0;
    for (let k = unanswered.length - 1; k >= 0; k--) {
      const group = unanswered[k]!;
      const tokens = group.reduce((sum, g) => sum + g.tokens, 0);
      const newestByModel = pinnedCalls === 0 && group.every((g) => g.type !== 'function_call' || g.byModel);
      if (!newestByModel && (pinnedCalls >= MAX_PINNED_UNANSWERED_CALLS || pinnedCallTokens + tokens > share)) break;
      for (const g of group) pinned.add(g);
      pinnedCalls++;
      pinnedCallTokens += tokens;
    }
    // What no delete will ever take away over maxTokens: no plan can meet the budget, now or after
    // the conversation moves on. That is the overhead (instructions, tools, estimation error) and
    // what stays pinned for the session's life (keepFirst, the system messages' share); not items
    // on their way or pinned for a while (the latest keepLast, items in progress, calls awaiting
    // their output), which become deletable as the conversation moves on. Deleting
    // all that may go at every prune point would then empty the conversation at every response for
    // nothing: it is pruned (all of it, oldest first) only once it exceeds the room the budget
    // leaves between prunes (maxTokens − target), as often as under a budget that can be met.
    let prunable = 0;
    for (const group of groups.values()) if (!group.some((g) => pinned.has(g))) for (const g of group) prunable += g.tokens;
    let lasting = Math.max(this.#overhead, known);
    for (const item of lastingPins) lasting += item.tokens;
    if (lasting > budget.maxTokens && prunable <= budget.maxTokens - target) return null;
    const chosen = new Set<TrackedItem>();
    let total = before;
    for (const item of this.#items) {
      if (total <= target) break;
      if (chosen.has(item)) continue;
      const group = groups.get(groupKey(item))!;
      if (group.some((g) => pinned.has(g))) continue;
      for (const g of group) {
        chosen.add(g);
        total -= g.tokens;
      }
    }
    if (chosen.size === 0) return null;
    return { itemIds: this.#items.filter((i) => chosen.has(i)).map((i) => i.id), tokensBefore: before, tokensAfter: total };
  }
}

export function truncationFactory(registry: PolicyRegistry): FilterFactory {
  return {
    name: TRUNCATION_FILTER,
    wants: {
      client: ['conversation.item.create', 'response.create', 'session.update'],
      server: [
        'session.created',
        'session.updated',
        'conversation.item.added',
        'conversation.item.created',
        'conversation.item.done',
        'conversation.item.deleted',
        'conversation.item.truncated',
        'conversation.item.input_audio_transcription.completed',
        'input_audio_buffer.speech_started',
        'input_audio_buffer.speech_stopped',
        'input_audio_buffer.committed',
        'input_audio_buffer.cleared',
        'response.done',
      ],
    },
    failMode: 'open',
    // A translation session keeps no conversation: nothing to truncate.
    create: (ctx) => (isTranslationSession(ctx.query) ? {} : new TruncationFilter(ctx, registry.resolve(ctx.tenant.policy).current.truncation.budget ?? null, registry.resolve(ctx.tenant.policy).name)),
  };
}

/**
 * Proxy-side pruning for a hard context budget. Deletes are sent before a client
 * `response.create` that reads the default conversation (they reach the upstream first on the
 * same socket), right after each `response.done`, and when an item the client put in is echoed
 * (or sized by its transcript) with no response running, whenever over budget, so that
 * server-VAD turns and held turns, which start without any client event, already begin under the
 * budget. (Which client items are still unechoed, and whether a response read the default
 * conversation, are facts the conversation view could own; they are kept here for now.)
 */
export class TruncationFilter implements Filter {
  readonly #ctx: SessionContext;
  readonly #budget: Budget | null;
  readonly #policy: string;
  readonly tracker = new ContextTracker(() => this.#inputBytesPerMs());
  /**
   * Items the client created that the server has not echoed yet (a client usually sends
   * `conversation.item.create` and `response.create` back to back): counted toward the budget
   * until their `conversation.item.added` arrives.
   */
  readonly #pending: { type: string | null; role: string | null; callId: string | null; tokens: number; /** The id the client gave it, if any (keptId). */ id: string | null }[] = [];
  /**
   * Pending creates forgotten past MAX_PENDING_CREATES: their tokens still count until as many
   * items of the client have been shown (the oldest creates are shown first). Until 2026-12-07
   * they were dropped, and a large create followed by 256 small ones was counted as the small ones
   * only: the response read past `maxTokens` (test/policies/redteam-16b-pending-undercount.test.ts).
   */
  readonly #forgotten = { count: 0, tokens: 0 };
  /** Unanswered calls this filter deleted, oldest first (see MAX_REMEMBERED_PRUNED_CALLS). */
  readonly #prunedCalls = new LazySet<string>();
  #pruned = 0;
  /**
   * The session's instructions, tools and prompt variables, in tokens (INSTRUCTIONS_SHARE): as the upstream showed
   * them (`session.created` with what went upstream before it applied, `session.updated` once every
   * session.update sent is answered), and as a client update this filter let through sets them
   * (before the upstream answers: a second update checked meanwhile counts the first). An update
   * the upstream refuses may leave them larger than they are until the next `session.updated`.
   */
  #prefix: PromptPrefix = NO_PREFIX;
  /**
   * The session's input audio bytes per millisecond as the upstream confirmed it (its
   * `session.created`, `session.updated`): G.711's (the densest) until it has, as metering's
   * estimate, so audio is never counted short. Until 2026-12-07 this filter sized all input audio
   * as PCM16 and a G.711 session's audio counted a sixth of what it is
   * (test/policies/redteam-18-g711-truncation.test.ts).
   */
  #confirmedBytesPerMs = G711_BYTES_PER_MS;
  /**
   * Input formats `session.update`s asked (the client's and the proxy's), by their place among the
   * session's updates (`n`), until the upstream answers them. Not taken as the session's format on
   * the way out (the upstream may refuse the update), but the audio appended behind an update is
   * in the new format once it applies: meanwhile the denser of the asked and the confirmed counts,
   * as metering's #guesses do. Bounded as those are.
   */
  #askedBytesPerMs: { readonly n: number; readonly bytesPerMs: number }[] = [];
  /**
   * The input buffer's audio since it last emptied (a commit or a clear the upstream confirmed), in
   * `ctx.audio.inputBytes` (decoded bytes), each part at the format in force when it was appended, as
   * metering's ConversationEstimate sizes it. Until 2026-12-07 the whole buffer was divided by the
   * rate in force at the commit, and a minute appended as G.711 then committed after a switch to
   * PCM16 counted 10 s (test/policies/redteam-18t-truncation-format-switch.test.ts).
   */
  readonly #buffer = new PartedAudioBuffer(G711_BYTES_PER_MS, (bytes, bytesPerMs) => bytes / bytesPerMs);

  constructor(ctx: SessionContext, budget: Budget | null, policy: string) {
    this.#ctx = ctx;
    this.#budget = budget;
    this.#policy = policy;
  }

  onClient(frame: Frame, injectedBy: string | null = null): Verdict {
    if (!this.#budget) return CONTINUE;
    this.#settleFormat();
    if (frame.type === 'session.update') return this.#sessionUpdate(frame.json(), injectedBy !== null);
    if (frame.type === 'conversation.item.create') {
      const ev = frame.json();
      const item = asObject(ev['item']);
      // The output of a call this filter deleted unanswered: refused, never relayed without its call.
      const callId = item?.['type'] === 'function_call_output' ? callIdOf(item) : null;
      if (callId !== null && this.#prunedCalls.has(callId)) {
        return reject(new ProxyError('function_call_pruned', { eventId: clientEventId(ev), param: 'item.call_id', details: { call_id: callId } }));
      }
      if (item) {
        if (this.#pending.length >= MAX_PENDING_CREATES) {
          this.#forgotten.count++;
          this.#forgotten.tokens += this.#pending.shift()!.tokens;
        }
        this.#pending.push({ type: asString(item['type']), role: asString(item['role']), callId: callIdOf(item), tokens: estimateItemTokens(item, null, this.#inputBytesPerMs()), id: keptOrNull(asString(item['id'])) });
      }
      return CONTINUE;
    }
    const verdict = this.#responseCreate(frame.json());
    if (verdict.kind === 'reject') this.#createRefused();
    return verdict;
  }

  #responseCreate(ev: JsonObject): Verdict {
    const response = asObject(ev['response']);
    // Its own instructions and tools replace the session's for this response: within the share.
    const read = response ? prefixAfter(response, this.#prefix) : this.#prefix;
    const refused = response ? prefixRefusal(this.#budget!, this.#prefix, read, response, 'response', clientEventId(ev)) : null;
    if (refused) return reject(refused);
    // A response with its own `input` reads that, not the default conversation. Without one it
    // reads the default conversation even out of band (`conversation: "none"` only decides where
    // its output goes).
    if (response?.['input'] !== undefined && response['input'] !== null) return this.#checkInput(ev, read, response['input']);
    this.#prune('response.create', read);
    return CONTINUE;
  }

  /**
   * This filter refused a client `response.create`. Where spoken turns are held
   * (`holdSpokenInput`), the hold may have let it go to stand for turns that passed (the proxy then
   * owes them none; the conversation view says so, `spokenTurns.clientCreateStands`): refused here, it
   * never reaches the upstream, and the chain's notice of the stopped frame (`ChainSink.stopped`, after
   * this verdict) tells the view, which owes those turns the proxy's own `response.create` again (the
   * session's instructions and tools, which must fit their share). Pruned for that create first, as a
   * client create that reads the conversation is. Until 2026-12-06 such a turn went unanswered.
   */
  #createRefused(): void {
    if (this.#ctx.conversation.spokenTurns.clientCreateStands) this.#prune('held turn');
  }

  /**
   * A response's own `input` carrying the output of a call this filter deleted unanswered, with no
   * call of that id in the same input: refused like the output through conversation.item.create
   * (the upstream would refuse it for a call it no longer has, in words that read like the proxy's
   * bug). An `item_reference` to an item the proxy deleted is not checked (deleted item ids are not
   * remembered; the upstream answers `item_not_found`).
   * And that input with the instructions and tools the response reads must fit `maxTokens`: it is
   * all the response reads, and no delete can make it smaller (until 2026-12-06 an out-of-band
   * response read an input of any size under a budget). Items referenced count as the tracker
   * sizes them, others as it estimates a created item.
   */
  #checkInput(ev: JsonObject, read: PromptPrefix, input: unknown): Verdict {
    const items = asArray(input);
    if (!items) return CONTINUE;
    const called = new Set<string>();
    for (const entry of items) {
      const item = asObject(entry);
      const callId = item?.['type'] === 'function_call' ? callIdOf(item) : null;
      if (callId !== null) called.add(callId);
    }
    for (let i = 0; i < items.length; i++) {
      const item = asObject(items[i]);
      const callId = item?.['type'] === 'function_call_output' ? callIdOf(item) : null;
      if (callId !== null && this.#prunedCalls.has(callId) && !called.has(callId)) {
        return reject(new ProxyError('function_call_pruned', { eventId: clientEventId(ev), param: `response.input[${i}].call_id`, details: { call_id: callId } }));
      }
    }
    let tokens = prefixTokens(read);
    for (const entry of items) {
      const item = asObject(entry);
      if (!item) continue;
      if (item['type'] !== 'item_reference') tokens += estimateItemTokens(item, null, this.#inputBytesPerMs());
      else {
        const ref = asString(item['id']);
        // An item the client created with its own id and the upstream has not shown yet is read all
        // the same (the upstream handles the create first): sized as the create. Until 2026-12-07 it
        // counted 0 (test/policies/redteam-17f-pending-reference.test.ts).
        if (ref !== null) tokens += this.tracker.tokensOf(ref) ?? this.#pending.find((p) => p.id === keptId(ref))?.tokens ?? 0;
      }
    }
    const limit = this.#budget!.maxTokens;
    if (tokens > limit) return reject(new ProxyError('context_budget_exceeded', { eventId: clientEventId(ev), param: 'response.input', details: { tokens, limit } }));
    return CONTINUE;
  }

  /**
   * A client session.update: refused when it would set instructions and tools over their share, else
   * what it sets is counted. The proxy's own (`injected`: the locks' state, a client secret's config)
   * is counted, never refused: the policy's locked instructions are the operator's (as at mint time,
   * src/calls/session-config.ts), and refusing them would leave the session unlocked.
   */
  #sessionUpdate(ev: JsonObject, injected: boolean): Verdict {
    const session = asObject(ev['session']);
    if (!session || session['type'] === 'transcription') return CONTINUE;
    const next = prefixAfter(session, this.#prefix);
    const refused = injected ? null : prefixRefusal(this.#budget!, this.#prefix, next, session, 'session', clientEventId(ev));
    if (refused) return reject(refused);
    this.#prefix = next;
    const asked = budgetedInputBytesPerMs(session);
    if (asked !== null) {
      this.#dropAnsweredFormats();
      if (this.#askedBytesPerMs.length >= MAX_ASKED_FORMATS) this.#askedBytesPerMs.shift();
      this.#askedBytesPerMs.push({ n: this.#ctx.conversation.sessionUpdatesSent + 1, bytesPerMs: asked });
      this.#settleFormat();
    }
    return CONTINUE;
  }

  /** The buffer's current part closes at its rate when the rate in force has changed. */
  #settleFormat(): void {
    this.#buffer.switchAt(this.#inputBytesPerMs(), this.#ctx.audio.inputBytes);
  }

  /** Input audio bytes per millisecond now: the confirmed format's, or a denser one an unanswered update asked. */
  #inputBytesPerMs(): number {
    const answered = this.#ctx.conversation.sessionUpdatesAnswered;
    let bytesPerMs = this.#confirmedBytesPerMs;
    for (const a of this.#askedBytesPerMs) if (a.n > answered) bytesPerMs = Math.min(bytesPerMs, a.bytesPerMs);
    return bytesPerMs;
  }

  /** Forgets the asked formats the upstream has answered (applied, and then confirmed, or refused). */
  #dropAnsweredFormats(): void {
    const answered = this.#ctx.conversation.sessionUpdatesAnswered;
    if (this.#askedBytesPerMs.some((a) => a.n <= answered)) this.#askedBytesPerMs = this.#askedBytesPerMs.filter((a) => a.n > answered);
  }

  /**
   * The session as the upstream shows it. `session.created` shows it before what went upstream
   * earlier (the locked state, a client secret's config, the client's early updates): applied
   * from the conversation view (when it kept them). A `session.updated` while other updates are
   * still unanswered shows it before those: the counts stay as they were set.
   */
  #sessionShown(type: string, ev: JsonObject): void {
    const session = asObject(ev['session']);
    if (!session || session['type'] === 'transcription') return;
    const confirmed = budgetedInputBytesPerMs(session);
    if (confirmed !== null) this.#confirmedBytesPerMs = confirmed;
    this.#dropAnsweredFormats();
    this.#settleFormat();
    const conversation = this.#ctx.conversation;
    const outstanding = conversation.sessionUpdatesAnswered < conversation.sessionUpdatesSent;
    if (type === 'session.created') {
      const early = conversation.updatesBeforeCreated;
      const shown = prefixAfter(early ? applySessionUpdate(session, early) : session, NO_PREFIX);
      // Updates went upstream the view no longer holds (past its bound): the larger of the two.
      this.#prefix =
        outstanding && !early
          ? { instructions: Math.max(shown.instructions, this.#prefix.instructions), tools: Math.max(shown.tools, this.#prefix.tools), prompt: Math.max(shown.prompt ?? 0, this.#prefix.prompt ?? 0) }
          : shown;
    } else if (!outstanding) {
      this.#prefix = prefixAfter(session, NO_PREFIX);
    }
  }

  /** The calls whose output the client created and the server has not echoed yet. */
  #pendingCalls(): Set<string> {
    const calls = new Set<string>();
    for (const p of this.#pending) if (p.type === 'function_call_output' && p.callId !== null) calls.add(p.callId);
    return calls;
  }

  #pendingTokens(): number {
    let sum = this.#forgotten.tokens;
    for (const p of this.#pending) sum += p.tokens;
    return sum;
  }

  /** The server showed an item for the first time: if the client created it, it is no longer pending. */
  #settlePending(item: JsonObject, provenance: Provenance | undefined, spoken: boolean): void {
    const id = asString(item['id']);
    const tokens = this.#takePending(item, provenance, spoken);
    if (id !== null && tokens > 0) this.tracker.sizedByCreate(id, tokens);
  }

  /** The pending create `item` settles, taken off the list: its tokens as sized when it was sent (0: none, or a forgotten one). */
  #takePending(item: JsonObject, provenance: Provenance | undefined, spoken: boolean): number {
    // A response's own output, or a spoken turn the upstream committed, is no client create: it
    // settles none (until 2026-12-07 either settled a pending create of the same type and role,
    // which was then counted nowhere).
    if (provenance === 'model' || spoken) return 0;
    // The oldest creates are shown first: the forgotten ones (whatever their type) before those listed.
    if (this.#forgotten.count > 0) {
      if (--this.#forgotten.count === 0) this.#forgotten.tokens = 0;
      return 0;
    }
    const type = asString(item['type']);
    const role = asString(item['role']);
    const callId = type === 'function_call_output' ? callIdOf(item) : null;
    const i = this.#pending.findIndex((p) => p.type === type && p.role === role && (callId === null || p.callId === callId));
    return i >= 0 ? this.#pending.splice(i, 1)[0]!.tokens : 0;
  }

  onServer(frame: Frame): Verdict {
    if (!this.#budget) return CONTINUE;
    // The rate may have changed with no frame this filter sees (an update the upstream refused).
    this.#settleFormat();
    const ev = frame.json();
    switch (frame.type) {
      case 'session.created':
      case 'session.updated':
        this.#sessionShown(frame.type, ev);
        break;
      case 'conversation.item.added':
      case 'conversation.item.created':
      case 'conversation.item.done': {
        const item = asObject(ev['item']);
        const prev = ev['previous_item_id'];
        if (!item) break;
        // A call (re)created with the id of one deleted earlier: its output has a call again.
        const recreated = item['type'] === 'function_call' ? callIdOf(item) : null;
        if (recreated !== null) this.#prunedCalls.delete(recreated);
        const shown = this.#ctx.conversation.item(asString(item['id']) ?? '');
        const provenance = shown?.provenance;
        if (this.tracker.upsert(item, prev === null ? null : (asString(prev) ?? undefined), provenance)) {
          // A committed spoken turn's transcript is awaited from its echo on ('pending'); a created item's never is.
          this.#settlePending(item, provenance, shown !== undefined && shown.transcript !== 'none');
          this.#turnItem(asString(item['id']));
        }
        break;
      }
      case 'response.done': {
        // Usage, output items and conversation come from the conversation view (updated before the filters run).
        const id = asString(asObject(ev['response'])?.['id']);
        const response = id !== null ? this.#ctx.conversation.response(id) : undefined;
        // An out-of-band response's output stays out of the default conversation, and its usage
        // may be of its own `input`: it does not calibrate. It is a prune point all the same.
        if (response && !response.outOfBand && response.usage) this.tracker.calibrate(response.usage.inputTokens, response.usage.outputTokens, response.itemIds);
        this.#prune('response.done');
        return CONTINUE;
      }
      default: {
        // The events about one item, by `item_id` (an event without one changes nothing).
        const id = asString(ev['item_id']);
        if (id !== null) this.#itemEvent(frame.type, id, ev);
        if (id !== null && frame.type === 'conversation.item.input_audio_transcription.completed') this.#turnItem(id);
      }
    }
    return CONTINUE;
  }

  /**
   * An item the client (or the proxy) put in, echoed or re-sized by its transcript, may push the
   * conversation over budget with no prune point to come before a response reads it: items the
   * client creates with no response.create before a server-VAD turn; a committed spoken turn the
   * hold answers with the proxy's own response.create (it passes this filter since 2026-12-06, but
   * the turn's upstream events reach this filter before the guardrails decide it). Prune now when over.
   * Not while a response runs (its response.done prunes; it has read its context already), nor
   * for a response's own output items.
   */
  #turnItem(id: string | null): void {
    if (id === null || this.#ctx.conversation.activeResponses().length > 0) return;
    const provenance = this.#ctx.conversation.item(id)?.provenance;
    if (provenance === 'client' || provenance === 'proxy') this.#prune('item');
  }

  #itemEvent(type: string, id: string, ev: JsonObject): void {
    switch (type) {
      case 'conversation.item.deleted':
        this.tracker.remove(id);
        break;
      case 'conversation.item.truncated': {
        const end = asNumber(ev['audio_end_ms']);
        if (end !== null) this.tracker.truncated(id, end);
        break;
      }
      case 'conversation.item.input_audio_transcription.completed': {
        const text = asString(ev['transcript']);
        if (text !== null) this.tracker.transcript(id, text);
        break;
      }
      case 'input_audio_buffer.speech_started':
        this.tracker.speech(id, asNumber(ev['audio_start_ms']), null);
        break;
      case 'input_audio_buffer.speech_stopped':
        this.tracker.speech(id, null, asNumber(ev['audio_end_ms']));
        break;
      case 'input_audio_buffer.committed': {
        // What the client appended since the buffer last emptied is this turn (each part in the format it was appended in).
        const ms = this.#buffer.ms(this.#ctx.audio.inputBytes);
        this.#buffer.restart(this.#ctx.audio.inputBytes);
        if (id !== null) this.tracker.buffered(id, ms);
        break;
      }
      case 'input_audio_buffer.cleared':
        this.#buffer.restart(this.#ctx.audio.inputBytes);
        break;
    }
  }

  /** `read`: the instructions, tools and prompt variables the next response reads (the session's unless a create sets its own). */
  #prune(trigger: string, read: PromptPrefix = this.#prefix): void {
    // Spoken turns held for their transcript, or passed and waiting for their response, are pinned
    // (the conversation view's record of them: ConversationView.spokenTurns).
    const turns = this.#ctx.conversation.spokenTurns;
    const plan = this.tracker.plan(this.#budget!, this.#pendingTokens(), this.#pendingCalls(), (id) => turns.pinned(id) !== undefined, prefixTokens(read));
    if (!plan) return;
    for (const id of plan.itemIds) {
      const call = this.tracker.unansweredCall(id);
      if (call !== null) this.#rememberPruned(call);
      this.tracker.remove(id);
      this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: id }, TRUNCATION_FILTER);
    }
    this.#pruned += plan.itemIds.length;
    this.#ctx.report({ kind: 'prune', itemIds: plan.itemIds, tokensBefore: plan.tokensBefore, tokensAfter: plan.tokensAfter });
    this.#ctx.log.info(
      { policy: this.#policy, trigger, items: plan.itemIds.length, tokensBefore: plan.tokensBefore, tokensAfter: plan.tokensAfter, maxTokens: this.#budget!.maxTokens },
      'conversation pruned to the context budget',
    );
  }

  #rememberPruned(callId: string): void {
    if (callId.length > MAX_REMEMBERED_CALL_ID_CHARS) return;
    this.#prunedCalls.add(callId);
    if (this.#prunedCalls.size > MAX_REMEMBERED_PRUNED_CALLS) this.#prunedCalls.delete(this.#prunedCalls.values().next().value!);
  }

  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return this.#budget ? { prunedItems: this.#pruned, contextTokensEstimate: this.tracker.total() } : {};
  }
}
