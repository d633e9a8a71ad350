import type { JsonObject } from '../pipeline/frame.js';
import { asObject as obj, keptId, MAX_KEPT_ID_CHARS } from '../protocol/json.js';
import { G711_BYTES_PER_MS, PartedAudioBuffer } from '../protocol/audio-format.js';
import type { ModalityTokens } from './pricing.js';
import { LazyMap } from '../lazy-collections.js';

/*
 * Upper-bound token estimates of what a response will read as input. The reservation of a response
 * is only a guarantee if it is never below the real cost, so every rule here errs high:
 * - text: one token per UTF-8 byte (a BPE token spans at least one byte; real text is ~4 bytes/token);
 * - user audio: 10 tokens/s (reference §5) plus AUDIO_PART_OVERHEAD per part, duration from the
 *   bytes appended (base64 length × 3/4, a JSON wrapper included, so never below the audio);
 * - images: IMAGE_TOKENS each (85 + 170 × 8 tiles of the largest high-detail image is 1,445);
 * - ITEM_OVERHEAD framing tokens per item (the model counts a few);
 * - after each response in the default conversation, the upstream's own count (its input + output
 *   tokens) replaces the estimate of everything before it.
 */

export const ITEM_OVERHEAD = 8;
export const AUDIO_PART_OVERHEAD = 8;
export const IMAGE_TOKENS = 1600;
const USER_AUDIO_TOKENS_PER_SEC = 10;
/** Per-item estimates kept for `item_reference` lookups; beyond this, references count the whole conversation. */
const MAX_ITEMS = 10_000;
/** Client commits counted before their `committed` came back, at most (beyond it the oldest two are merged). */
const MAX_AHEAD = 64;

export const NO_TOKENS: Readonly<ModalityTokens> = Object.freeze({ text: 0, audio: 0, image: 0 });

function bytes(v: unknown): number {
  return typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : 0;
}

export function add(a: ModalityTokens, b: Readonly<ModalityTokens>): ModalityTokens {
  a.text += b.text;
  a.audio += b.audio;
  a.image += b.image;
  return a;
}

export function sum(t: Readonly<ModalityTokens>): number {
  return t.text + t.audio + t.image;
}

/** Milliseconds of audio in (at most) `encodedChars` base64 characters at `bytesPerMs`. */
export function audioMsOfBase64(encodedChars: number, bytesPerMs: number): number {
  return Math.ceil((encodedChars * 3) / 4 / bytesPerMs);
}

/** Audio tokens of `encodedChars` base64 characters of input audio at `bytesPerMs` (src/protocol/audio-format.ts). */
export function audioTokensOfBase64(encodedChars: number, bytesPerMs: number): number {
  return audioTokensOfMs(audioMsOfBase64(encodedChars, bytesPerMs));
}

/** Audio tokens of `ms` milliseconds of user audio. */
export function audioTokensOfMs(ms: number): number {
  return Math.ceil((ms * USER_AUDIO_TOKENS_PER_SEC) / 1000);
}

/** Upper-bound tokens of one conversation item as a client sends it (`conversation.item.create`). */
export function itemEstimate(item: JsonObject, bytesPerMs: number): ModalityTokens {
  const t: ModalityTokens = { text: ITEM_OVERHEAD, audio: 0, image: 0 };
  const content = item['content'];
  if (Array.isArray(content)) {
    for (const raw of content) {
      const part = obj(raw);
      if (!part) continue;
      if (typeof part['audio'] === 'string') t.audio += audioTokensOfBase64(part['audio'].length, bytesPerMs) + AUDIO_PART_OVERHEAD;
      if (part['type'] === 'input_image' || part['image_url'] !== undefined) t.image += IMAGE_TOKENS;
      t.text += bytes(part['text']) + bytes(part['transcript']);
    }
  }
  // function_call / function_call_output / anything else: every string the model may read.
  t.text += bytes(item['name']) + bytes(item['arguments']) + bytes(item['output']);
  // Another item type a client may write (`mcp_list_tools`: its tools' names, descriptions and schemas;
  // `mcp_call`'s `error`; `mcp_approval_request`...): one token per byte of its JSON, as a server's
  // (until the twelfth session a client's `mcp_list_tools` counted 8 tokens until its
  // conversation.item.done, after a create sent right behind it was reserved: src/metering/filter-twelfth.test.ts).
  const type = item['type'];
  if (typeof type === 'string' && type !== 'message' && type !== 'function_call' && type !== 'function_call_output') {
    t.text = Math.max(t.text, ITEM_OVERHEAD + Buffer.byteLength(JSON.stringify(item), 'utf8'));
  }
  return t;
}

/**
 * Upper-bound tokens of an item the server reports complete (`conversation.item.done`) that the
 * proxy saw no create for: a message as `itemEstimate` reads it; any other item (`mcp_list_tools`:
 * names, descriptions and schemas of the MCP server's tools) at one token per byte of its JSON.
 */
export function serverItemEstimate(item: JsonObject, bytesPerMs: number): ModalityTokens {
  const t = itemEstimate(item, bytesPerMs);
  if (item['type'] !== 'message') t.text = Math.max(t.text, ITEM_OVERHEAD + Buffer.byteLength(JSON.stringify(item), 'utf8'));
  return t;
}

/** Instructions and tool definitions: the prompt prefix of every response. */
export function promptEstimate(instructions: unknown, tools: unknown): number {
  return promptOf(instructionsEstimate(instructions), toolsEstimate(tools));
}

/** The instructions' part of a prompt estimate. */
export function instructionsEstimate(instructions: unknown): number {
  return bytes(instructions);
}

/** The tool definitions' part of a prompt estimate. */
export function toolsEstimate(tools: unknown): number {
  return Array.isArray(tools) && tools.length > 0 ? Buffer.byteLength(JSON.stringify(tools), 'utf8') : 0;
}

/** Tokens of an input whose size the proxy cannot know: more than any context window (worstCaseOf fills the window). */
export const UNKNOWN_SIZE = 1_000_000_000;

/**
 * Upper-bound input of a reusable prompt's `variables` (`prompt: {id, version, variables}` on a
 * session or a response): the upstream puts every variable into what the model reads. A string or
 * `input_text` at one token per byte (its name too), an `input_image` at IMAGE_TOKENS, an
 * `input_file` (a file id, URL or inline data the proxy cannot size) as filling the context window
 * at the dearer of the text and image rates, anything else at one token per byte of its JSON. The
 * stored prompt itself (its template, kept by OpenAI) is not visible to the proxy: see the README.
 * Null: no prompt (or `prompt: null`).
 */
export function promptVariablesEstimate(prompt: unknown): ModalityTokens | null {
  const p = obj(prompt);
  if (!p) return null;
  const t: ModalityTokens = { text: ITEM_OVERHEAD, audio: 0, image: 0 };
  const vars = obj(p['variables']);
  if (!vars) return t;
  for (const [name, raw] of Object.entries(vars)) {
    t.text += bytes(name);
    if (typeof raw === 'string') {
      t.text += bytes(raw);
      continue;
    }
    const part = obj(raw);
    if (part?.['type'] === 'input_text' && typeof part['text'] === 'string') t.text += bytes(part['text']);
    else if (part?.['type'] === 'input_image') t.image += IMAGE_TOKENS;
    else if (part?.['type'] === 'input_file') {
      t.text += UNKNOWN_SIZE;
      t.image += UNKNOWN_SIZE;
    } else t.text += Buffer.byteLength(JSON.stringify(raw ?? null), 'utf8');
  }
  return t;
}

/** The larger of two estimates, modality by modality. */
export function most(a: Readonly<ModalityTokens>, b: Readonly<ModalityTokens>): ModalityTokens {
  return { text: Math.max(a.text, b.text), audio: Math.max(a.audio, b.audio), image: Math.max(a.image, b.image) };
}

/**
 * A prompt from its parts. Kept apart because a response that sets one of them keeps the
 * session's other (instructions without tools still run with the session's tools).
 */
export function promptOf(instructionTokens: number, toolTokens: number): number {
  return ITEM_OVERHEAD + instructionTokens + toolTokens;
}

/**
 * A session's running estimate of its default conversation: the upstream's count after the last
 * response in it (`base`) plus estimates of what was added since (`added`), and per-item
 * estimates for out-of-band responses that reference items.
 */
export class ConversationEstimate {
  #base: ModalityTokens = { text: 0, audio: 0, image: 0 };
  #added: ModalityTokens = { text: 0, audio: 0, image: 0 };
  /**
   * Everything added to the conversation (items, committed audio, responses' output), never
   * recalibrated: an upper bound of the whole conversation whatever part of it a response read.
   * A response's count is only what the model read, which the session's `truncation` may cut to
   * its newest part; once that truncation changes, a later response may read it all (see
   * `distrustCalibration`).
   */
  #raw: ModalityTokens = { text: 0, audio: 0, image: 0 };
  readonly #items = new LazyMap<string, Readonly<ModalityTokens>>();
  /**
   * Client item creates forwarded and not acknowledged yet (their `conversation.item.done` not read),
   * oldest first, with what each added: a response the upstream started before reading them did not
   * read them (see `serverStartMark`). Bounded: beyond MAX_AHEAD the oldest two merge (no count lost).
   */
  readonly #unacknowledged: { readonly id: string | null; readonly t: ModalityTokens }[] = [];
  /** Item ids of turns the upstream committed (their `conversation.item.done` acknowledges no client create). */
  readonly #committedIds: string[] = [];
  /**
   * Client commits counted ahead of their `input_audio_buffer.committed` (oldest first): the audio
   * is added to the estimate when the commit goes upstream, since a create sent right behind it
   * reads it. The committed event that comes next takes the oldest (and adds only what was appended
   * since); one that never comes (a commit the upstream refused) leaves its count in the estimate
   * and hands it to the next committed item (the bytes stay in the upstream buffer). Bounded.
   */
  readonly #ahead: { readonly audio: number; readonly ms: number }[] = [];
  /**
   * The input buffer's audio, each part at the format in force when it was appended
   * (`budgetedInputBytesPerMs`: 48 bytes/ms for PCM16 at 24 kHz, 8 for G.711; positions in the
   * relay's append wire bytes). Until the upstream reports the format, the densest (G.711: the most
   * audio per byte), so the estimate stays high. A later switch does not resize appends already
   * upstream (eighteenth red-team pass: 240 s appended as G.711, committed after a switch to PCM16,
   * was sized as 40 s; test/metering/redteam-18-format-switch.test.ts).
   */
  readonly #buffer = new PartedAudioBuffer(G711_BYTES_PER_MS, audioMsOfBase64);
  /** The upstream has reported its input format: until then the buffer is in the one it reports first. */
  #formatKnown = false;

  /** Input audio bytes per millisecond in force now. */
  get bytesPerMs(): number {
    return this.#buffer.bytesPerMs;
  }

  /**
   * The input format in force from `appendedWireBytes` on (`reported`: the upstream's report, else an
   * update in flight asking for it). The audio of the buffer so far keeps the size it had.
   */
  setFormat(bytesPerMs: number, appendedWireBytes: number, reported: boolean): void {
    if (this.#formatKnown) this.#buffer.switchAt(bytesPerMs, appendedWireBytes);
    else this.#buffer.retune(bytesPerMs);
    if (reported) this.#formatKnown = true;
  }

  /** The whole default conversation, as the next response in it would read it. */
  total(): ModalityTokens {
    return add({ ...this.#base }, this.#added);
  }

  /** A copy of what was added since the last calibration (stored when a conversation response starts). */
  addedMark(): ModalityTokens {
    return { ...this.#added };
  }

  addItem(id: string | null, t: Readonly<ModalityTokens>): void {
    add(this.#added, t);
    add(this.#raw, t);
    // An id too long for the upstream names no item a reference can read: not kept (see keptId).
    if (id === null || id.length > MAX_KEPT_ID_CHARS) return;
    // An id already known keeps its larger estimate: a client create reusing it (which the
    // upstream refuses as a duplicate) never lowers what references to that item reserve.
    const known = this.#items.get(id);
    if (known) this.#items.set(id, most(known, t));
    else if (this.#items.size < MAX_ITEMS) this.#items.set(id, t);
  }

  /**
   * A client `conversation.item.create`. `duplicate`: its id names an item the session has already
   * (the upstream refuses it): counted, but not as that id's estimate, which references read.
   */
  onItemCreate(item: JsonObject, duplicate = false): void {
    const t = itemEstimate(item, this.bytesPerMs);
    this.addItem(!duplicate && typeof item['id'] === 'string' ? item['id'] : null, t);
    if (this.#unacknowledged.length >= MAX_AHEAD) {
      const oldest = this.#unacknowledged.shift()!;
      const next = this.#unacknowledged.shift();
      this.#unacknowledged.unshift(next ? { id: next.id, t: add({ ...next.t }, oldest.t) } : oldest);
    }
    // Listed until acknowledged (a refused create stays): a long id as its hash, never whole.
    this.#unacknowledged.push({ id: typeof item['id'] === 'string' ? keptId(item['id']) : null, t: { ...t } });
  }

  /**
   * A client-made item is complete upstream (`conversation.item.done`): its create was read. The one
   * with its id, else the oldest without one (the upstream reads creates in order). A create the upstream
   * refused stays listed: the marks it lowers only keep more in the estimate.
   */
  itemAcknowledged(id: string): void {
    if (this.#committedIds.includes(id)) return;
    const kept = keptId(id);
    let i = this.#unacknowledged.findIndex((u) => u.id === kept);
    if (i < 0) i = this.#unacknowledged.findIndex((u) => u.id === null);
    if (i >= 0) this.#unacknowledged.splice(i, 1);
  }

  /**
   * The calibration mark of a response the upstream started on its own (server VAD), read at its
   * `response.created`: `added` without the client items and commits still on their way to the
   * upstream then. The upstream started that response before it read them (it acknowledges an item
   * create, or a commit, before anything it does after), so its usage does not count them, and they
   * must stay in the estimate after its calibration. Until the fifteenth red-team pass the mark was
   * `added` as it stood: an item sent as a spoken turn ended was dropped by that turn's response's
   * calibration (test/metering/redteam-15-vad-mark.test.ts: 100,000 bytes, $0.20 `worst_case` cap, five
   * out-of-band creates reserved without it spent $0.50).
   */
  serverStartMark(): ModalityTokens {
    const mark = { ...this.#added };
    const less = (t: Readonly<ModalityTokens>): void => {
      mark.text = Math.max(0, mark.text - t.text);
      mark.audio = Math.max(0, mark.audio - t.audio);
      mark.image = Math.max(0, mark.image - t.image);
    };
    for (const u of this.#unacknowledged) less(u.t);
    for (const a of this.#ahead) less({ text: ITEM_OVERHEAD, audio: a.audio, image: 0 });
    return mark;
  }

  /** The input buffer was cleared when `appendedWireBytes` append bytes had been forwarded. */
  onBufferCleared(appendedWireBytes: number): void {
    this.#buffer.restart(appendedWireBytes);
  }

  /**
   * `input_audio_buffer.committed`: the buffer became a user audio item. Its audio is bounded by
   * the append bytes forwarded since the last commit or clear (frames are never parsed: their
   * size bounds the base64 they carry). Returns that bound in milliseconds of audio.
   */
  onCommitted(itemId: string | null, appendedWireBytes: number): number {
    if (itemId !== null) {
      if (this.#committedIds.length >= MAX_AHEAD) this.#committedIds.shift();
      this.#committedIds.push(itemId);
    }
    const ms = this.#buffer.ms(appendedWireBytes);
    this.#buffer.restart(appendedWireBytes);
    const audio = audioTokensOfMs(ms) + AUDIO_PART_OVERHEAD;
    const ahead = this.#ahead.shift();
    if (!ahead) {
      this.addItem(itemId, { text: ITEM_OVERHEAD, audio, image: 0 });
      return ms;
    }
    // Counted at the client's commit: only what was appended since is new to the estimate; the
    // item's own estimate (item references, transcription length) is both.
    const extra = audioTokensOfMs(ms);
    add(this.#added, { text: 0, audio: extra, image: 0 });
    add(this.#raw, { text: 0, audio: extra, image: 0 });
    this.#raiseItem(itemId, { text: ITEM_OVERHEAD, audio: ahead.audio + extra, image: 0 });
    return ahead.ms + ms;
  }

  /**
   * A client `input_audio_buffer.commit` on its way upstream: the audio appended since the last
   * commit or clear becomes an item before any event sent after it is read, so it counts now.
   * Returns that audio's bound in milliseconds.
   */
  onClientCommit(appendedWireBytes: number): number {
    const ms = this.#buffer.ms(appendedWireBytes);
    this.#buffer.restart(appendedWireBytes);
    const audio = audioTokensOfMs(ms) + AUDIO_PART_OVERHEAD;
    add(this.#added, { text: ITEM_OVERHEAD, audio, image: 0 });
    add(this.#raw, { text: ITEM_OVERHEAD, audio, image: 0 });
    if (this.#ahead.length >= MAX_AHEAD) {
      // Never answered (refused upstream): fold the oldest into the next, so no count is lost.
      const oldest = this.#ahead.shift()!;
      const next = this.#ahead.shift();
      if (next) this.#ahead.unshift({ audio: oldest.audio + next.audio, ms: oldest.ms + next.ms });
      else this.#ahead.unshift(oldest);
    }
    this.#ahead.push({ audio, ms });
    return ms;
  }

  /**
   * The input buffer not committed yet (appended since the last commit or clear), as the item it
   * becomes if the upstream commits it (server VAD) before it reads a create sent now; none when empty.
   */
  uncommitted(appendedWireBytes: number): ModalityTokens {
    const ms = this.#buffer.ms(appendedWireBytes);
    if (ms <= 0) return { text: 0, audio: 0, image: 0 };
    return { text: ITEM_OVERHEAD, audio: audioTokensOfMs(ms) + AUDIO_PART_OVERHEAD, image: 0 };
  }

  /** Milliseconds of audio (an upper bound) in the input buffer not committed yet (appended since the last commit or clear). */
  uncommittedMs(appendedWireBytes: number): number {
    return this.#buffer.ms(appendedWireBytes);
  }

  /**
   * An item outside the default conversation (an out-of-band response's output): its estimate for
   * `item_reference`s, not added to the conversation (an id already known keeps the larger).
   */
  noteItem(id: string, t: Readonly<ModalityTokens>): void {
    this.#raiseItem(id, t);
  }

  #raiseItem(id: string | null, t: Readonly<ModalityTokens>): void {
    if (id === null || id.length > MAX_KEPT_ID_CHARS) return;
    const known = this.#items.get(id);
    if (known) this.#items.set(id, most(known, t));
    else if (this.#items.size < MAX_ITEMS) this.#items.set(id, t);
  }

  /**
   * A response in the default conversation finished with the upstream's count of its input and
   * output: that is the conversation up to its start (plus its output); what was added after its
   * start (`mark` = `added` then) stays on top.
   */
  calibrate(mark: Readonly<ModalityTokens>, input: Readonly<ModalityTokens>, output: { readonly text: number; readonly audio: number }): void {
    this.#base = { text: input.text + output.text, audio: input.audio + output.audio, image: input.image };
    add(this.#raw, { text: output.text, audio: output.audio, image: 0 });
    this.#added = {
      text: Math.max(0, this.#added.text - mark.text),
      audio: Math.max(0, this.#added.audio - mark.audio),
      image: Math.max(0, this.#added.image - mark.image),
    };
  }

  /**
   * The session's truncation is changing: what the last calibration counted (what the model read under
   * the old truncation, perhaps only the conversation's newest part) no longer bounds what a response
   * reads. The estimate goes back to everything added (`#raw`) until a response that started under the
   * new truncation recalibrates it. Until the fifteenth red-team pass a client that set a low
   * `token_limits.post_instructions`, let one response read 800 tokens of a 30,000-token conversation,
   * then set `truncation: "disabled"`, had out-of-band creates reserved on 800 tokens that each read
   * 30,000 (test/metering/redteam-15-truncation.test.ts).
   */
  distrustCalibration(): void {
    this.#base = {
      text: Math.max(this.#base.text, this.#raw.text - this.#added.text),
      audio: Math.max(this.#base.audio, this.#raw.audio - this.#added.audio),
      image: Math.max(this.#base.image, this.#raw.image - this.#added.image),
    };
  }

  /**
   * Input of a response about to run, without its prompt. Out-of-band responses with an `input`
   * list read those items only (a reference this session has no estimate for counts the whole
   * conversation); every other response reads the conversation (plus any inline items).
   * `streaming`: what a referenced item of a response still running may hold so far (the caller
   * knows which items those are, from the conversation view), or null; counted on top, since the
   * estimate gains that output only when its response is done. `again`: the list named that item
   * before (each naming reads it once more).
   */
  responseInput(response: JsonObject | null, streaming?: (itemId: string, again: boolean) => Readonly<ModalityTokens> | null): ModalityTokens {
    const input = response?.['input'];
    const outOfBand = response?.['conversation'] === 'none';
    if (!Array.isArray(input)) return this.total();
    const t: ModalityTokens = outOfBand ? { text: 0, audio: 0, image: 0 } : this.total();
    let wholeConversation = !outOfBand;
    // The upstream reads an item as often as the list names it (until the twelfth session a repeated
    // reference to an item without an estimate counted nothing more: src/metering/filter-twelfth.test.ts).
    const named = new Set<string>();
    for (const raw of input) {
      const item = obj(raw);
      if (!item) continue;
      if (item['type'] === 'item_reference') {
        const id = typeof item['id'] === 'string' ? item['id'] : null;
        const again = id !== null && named.has(id);
        if (id !== null) named.add(id);
        const partial = streaming && id !== null ? streaming(id, again) : null;
        if (partial) add(t, partial);
        const known = id !== null ? this.#items.get(id) : undefined;
        if (again) {
          // Its first reference was counted in the conversation (or as its estimate): it is at most that again.
          add(t, known ?? this.total());
          continue;
        }
        if (wholeConversation) continue;
        if (known) add(t, known);
        else {
          wholeConversation = true;
          add(t, this.total());
        }
        continue;
      }
      add(t, itemEstimate(item, this.bytesPerMs));
    }
    return t;
  }
}
