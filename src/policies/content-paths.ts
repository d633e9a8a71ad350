import type { JsonObject } from '../pipeline/frame.js';
import type { Source, TextFormat } from './matchers.js';
import { asArray, asObject, asString } from '../protocol/json.js';
import { MAX_CONTROL_DEPTH } from '../protocol/strict-json.js';
import { ProxyError } from '../protocol/errors.js';
import { deepEqual } from './util.js';

/**
 * Every path by which user, model, tool or MCP content crosses the proxy, in one table. The
 * guardrail filter routes each event type through this table and nothing else, so every row gets
 * the same decision (match, redact, block, cancel); policies/README.md shows the same table.
 *
 * An event type that is neither in `CONTENT_PATHS` nor in `NO_CONTENT` is unknown: the policy's
 * `unknownContentEvents` decides (pass, default; or block), and it is logged once per type.
 */

export type PathKind =
  /** A streamed piece of a text (`delta`): held back while it can still complete a match. */
  | 'delta'
  /** The complete text of a stream (`.done` / `.completed`): closes the stream. */
  | 'done'
  /** Complete texts inside the event (items, parts, instructions). */
  | 'texts';

export interface ContentPath {
  readonly direction: 'client' | 'server';
  readonly type: string;
  readonly kind: PathKind;
  /** Where the content is (documentation, and the README table). */
  readonly field: string;
  /** Rule sources that apply ('item' rows: by item type and role, see `itemTexts`). */
  readonly sources: string;
  /** For streams: which stream the delta belongs to (keyed by response / item / content index). */
  readonly stream?: Source;
}

/** One text found in an event, with where it goes back when redacted. */
export interface ContentText {
  readonly source: Source;
  readonly text: string;
  /** Function or MCP tool name (tool_call texts). */
  readonly functionName: string | null;
  /**
   * `json`: the text is a JSON document (a tool's arguments or output) whatever source reads it:
   * matched with its string escapes decoded. Absent: as its source reads (tool sources JSON, the others text).
   */
  readonly format?: TextFormat;
  readonly itemId: string | null;
  /** Writes the redacted text into a copy of the event. */
  set(copy: JsonObject, text: string): void;
  /**
   * Content the table does not know and cannot scan (the policy's `unknownContentEvents` decides):
   * `item:<type>`, `content part:<type>` or `prompt variable:<type>` (an `input_file`, say).
   */
  readonly unknownContent?: string;
  /**
   * An `item_reference` in a `response.create` `input[]` (its id): no text of its own, but the model
   * reads the referenced item there, so its text is context at that place (`text` is empty).
   */
  readonly reference?: string;
  /**
   * A member the table reads (a text, or the list or object holding texts) of another shape than
   * the protocol gives it (instructions as an array, a prompt variable as a number): nothing here
   * can read it. A client event carrying one is refused (`malformedError`: `invalid_event`, whatever
   * the policy); it is also `unknownContent`, so a reader that does not refuse (an upstream event)
   * lets the policy decide. `param`: the member's path (`session.instructions`, `item.content[0].text`).
   */
  readonly malformed?: { readonly param: string; readonly expected: string; readonly got: string };
}

const ITEM_SOURCES = 'by item: user/system/developer message → input, assistant message → output, function_call / mcp_call / mcp_approval_request arguments → tool_call, function_call_output / mcp_call output → tool_output, input_image → image; upstream-shown mcp_list_tools tools[] (name, description, input_schema, annotations) and mcp_call error → tool_output; client-made mcp_list_tools tools[] (name, description, input_schema, annotations), mcp_approval_response reason, mcp_call error → input; client-made: every text (and function / MCP call name) → input too, beside its own source';

export const CONTENT_PATHS: readonly ContentPath[] = [
  // ---- upstream → client: streams ----
  { direction: 'server', type: 'response.output_text.delta', kind: 'delta', field: 'delta', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'response.output_text.done', kind: 'done', field: 'text', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'response.output_audio_transcript.delta', kind: 'delta', field: 'delta', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'response.output_audio_transcript.done', kind: 'done', field: 'transcript', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'conversation.item.input_audio_transcription.delta', kind: 'delta', field: 'delta', sources: 'input', stream: 'input' },
  { direction: 'server', type: 'conversation.item.input_audio_transcription.completed', kind: 'done', field: 'transcript', sources: 'input', stream: 'input' },
  { direction: 'server', type: 'response.function_call_arguments.delta', kind: 'delta', field: 'delta', sources: 'tool_call', stream: 'tool_call' },
  { direction: 'server', type: 'response.function_call_arguments.done', kind: 'done', field: 'arguments (and name)', sources: 'tool_call', stream: 'tool_call' },
  { direction: 'server', type: 'response.mcp_call_arguments.delta', kind: 'delta', field: 'delta', sources: 'tool_call', stream: 'tool_call' },
  { direction: 'server', type: 'response.mcp_call_arguments.done', kind: 'done', field: 'arguments', sources: 'tool_call', stream: 'tool_call' },
  // The Azure preview protocol's (beta) names of the output streams (`azure.apiVersion`): the same
  // text as their GA rows. The audio transcript's `.done` is read as a complete text (its
  // `transcript`); its stream's held text settles at `response.done`.
  { direction: 'server', type: 'response.text.delta', kind: 'delta', field: 'delta', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'response.text.done', kind: 'done', field: 'text', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'response.audio_transcript.delta', kind: 'delta', field: 'delta', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'session.output_transcript.delta', kind: 'delta', field: 'delta', sources: 'output', stream: 'output' },
  { direction: 'server', type: 'session.input_transcript.delta', kind: 'delta', field: 'delta', sources: 'input', stream: 'input' },
  // ---- upstream → client: complete texts ----
  { direction: 'server', type: 'conversation.item.input_audio_transcription.segment', kind: 'texts', field: 'text', sources: 'input' },
  { direction: 'server', type: 'response.audio_transcript.done', kind: 'texts', field: 'transcript', sources: 'output' },
  { direction: 'server', type: 'response.content_part.added', kind: 'texts', field: 'part.text, part.transcript', sources: 'output' },
  { direction: 'server', type: 'response.content_part.done', kind: 'texts', field: 'part.text, part.transcript', sources: 'output' },
  { direction: 'server', type: 'response.output_item.added', kind: 'texts', field: 'item', sources: ITEM_SOURCES },
  { direction: 'server', type: 'response.output_item.done', kind: 'texts', field: 'item', sources: ITEM_SOURCES },
  { direction: 'server', type: 'conversation.item.added', kind: 'texts', field: 'item', sources: ITEM_SOURCES },
  { direction: 'server', type: 'conversation.item.done', kind: 'texts', field: 'item', sources: ITEM_SOURCES },
  { direction: 'server', type: 'conversation.item.created', kind: 'texts', field: 'item', sources: ITEM_SOURCES },
  { direction: 'server', type: 'conversation.item.retrieved', kind: 'texts', field: 'item', sources: ITEM_SOURCES },
  { direction: 'server', type: 'response.created', kind: 'texts', field: 'response.output[]', sources: ITEM_SOURCES },
  { direction: 'server', type: 'response.done', kind: 'texts', field: 'response.output[]', sources: ITEM_SOURCES },
  // ---- client → upstream ----
  { direction: 'client', type: 'conversation.item.create', kind: 'texts', field: 'item (every type and role)', sources: ITEM_SOURCES },
  { direction: 'client', type: 'response.create', kind: 'texts', field: 'response.input[], response.instructions, response.prompt.variables, response.tools[] (names, descriptions, parameters)', sources: `input (instructions, prompt variables, tool definitions); ${ITEM_SOURCES}` },
  { direction: 'client', type: 'session.update', kind: 'texts', field: 'session.instructions, session.prompt.variables, session.tools[] (names, descriptions, parameters, MCP server_label and allowed_tools names), session.audio.input.transcription.prompt, session.audio.input.transcription.keywords[], session.input_audio_transcription.prompt, session.input_audio_transcription.keywords[] (Azure preview protocol)', sources: 'input' },
  // The Azure preview protocol's (beta) transcription session update: the same session reading
  // (its `input_audio_transcription.prompt` and `keywords[]`; until 2026-12-06 listed as carrying no content).
  { direction: 'client', type: 'transcription_session.update', kind: 'texts', field: 'session.input_audio_transcription.prompt, session.input_audio_transcription.keywords[] (Azure preview protocol)', sources: 'input' },
];

/**
 * The members of a session whose texts the `session.update` row reads: the reading below reads the
 * session through this list (`sessionTextMembers`), and a call's session (a browser's
 * `session.update` over its data channel, seen only as `session.updated`) is compared, judged and
 * put back by it, so the two cannot differ (until 2026-12-06 a call compared a list of its own:
 * instructions, tools and prompt, and a transcription prompt the browser set was never judged).
 */
export const SESSION_TEXT_MEMBERS: readonly (readonly string[])[] = [['instructions'], ['prompt'], ['tools'], ['audio', 'input', 'transcription'], ['input_audio_transcription']];

/**
 * `session` cut down to `SESSION_TEXT_MEMBERS` (the containers on their way copied, the members
 * themselves shared). A container on the way of another shape (an `audio` that is a string) is
 * kept as it is, so the reading still refuses it.
 */
export function sessionTextMembers(session: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const path of SESSION_TEXT_MEMBERS) {
    let from: JsonObject = session;
    let to: JsonObject = out;
    for (const [i, key] of path.entries()) {
      if (!Object.hasOwn(from, key)) break;
      const value = from[key]!;
      const inner = asObject(value);
      if (i === path.length - 1 || inner === null) {
        to[key] = value;
        break;
      }
      to = asObject(to[key]) ?? (to[key] = {});
      from = inner;
    }
  }
  return out;
}

/** What a session text member is when the session has none: the API's empty value (clears it). */
const emptyText = (key: string): unknown => (key === 'instructions' ? '' : key === 'tools' ? [] : null);

/**
 * The `session` of a `session.update` that turns the session texts of `now` into those of `want`,
 * member by member of `SESSION_TEXT_MEMBERS` (nested ones in their place: `audio.input.transcription`;
 * a removed text as the API's empty value: `instructions` "", `tools` [], the others null), or null
 * when they do not differ.
 */
export function sessionTextChanges(want: JsonObject, now: JsonObject): JsonObject | null {
  const update: JsonObject = {};
  let changed = false;
  for (const path of SESSION_TEXT_MEMBERS) {
    const key = path[path.length - 1]!;
    const value = valueAt(want, path) ?? emptyText(key);
    if (deepEqual(value, valueAt(now, path) ?? emptyText(key))) continue;
    let holder = update;
    for (const k of path.slice(0, -1)) holder = asObject(holder[k]) ?? (holder[k] = {});
    holder[key] = value;
    changed = true;
  }
  return changed ? update : null;
}

/** The value at `path` in `obj` (undefined where a container on the way is missing). */
function valueAt(obj: JsonObject, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) cur = asObject(cur)?.[key];
  return cur;
}

/** Event types that carry no user, model, tool or MCP text (ids, audio, status, usage, errors). */
export const NO_CONTENT: ReadonlySet<string> = new Set([
  // server
  'error', 'session.created', 'session.updated', 'conversation.created', 'conversation.item.deleted', 'conversation.item.truncated',
  'conversation.item.input_audio_transcription.failed', 'input_audio_buffer.committed', 'input_audio_buffer.cleared',
  'input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.timeout_triggered',
  'input_audio_buffer.dtmf_event_received', 'output_audio_buffer.started', 'output_audio_buffer.stopped', 'output_audio_buffer.cleared',
  'response.output_audio.delta', 'response.output_audio.done', 'rate_limits.updated', 'response.mcp_call.in_progress',
  'response.mcp_call.completed', 'response.mcp_call.failed', 'mcp_list_tools.in_progress', 'mcp_list_tools.completed',
  'mcp_list_tools.failed', 'session.output_audio.delta', 'session.closed', 'transcription_session.updated',
  // the Azure preview protocol's (beta) names of the output audio
  'response.audio.delta', 'response.audio.done',
  // client
  'input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'output_audio_buffer.clear', 'response.cancel',
  'conversation.item.retrieve', 'conversation.item.delete', 'conversation.item.truncate', 'session.input_audio_buffer.append',
  'session.close',
]);

const CLIENT_PATHS = new Map<string, ContentPath>();
const SERVER_PATHS = new Map<string, ContentPath>();
for (const p of CONTENT_PATHS) (p.direction === 'client' ? CLIENT_PATHS : SERVER_PATHS).set(p.type, p);

/** The table row for an event type (one map lookup: runs for every frame, audio included). */
export function contentPath(direction: 'client' | 'server', type: string): ContentPath | undefined {
  return (direction === 'client' ? CLIENT_PATHS : SERVER_PATHS).get(type);
}

export const CLIENT_CONTENT_TYPES: readonly string[] = CONTENT_PATHS.filter((p) => p.direction === 'client').map((p) => p.type);

type Setter = (copy: JsonObject, text: string) => void;
type Locate = (copy: JsonObject) => JsonObject | null;

/** Follows `path` (object keys and array indices) in a copy of the event. */
function at(locate: Locate, ...path: (string | number)[]): Locate {
  return (copy) => {
    let cur: unknown = locate(copy);
    for (const key of path) {
      if (typeof key === 'number') cur = asArray(cur)?.[key];
      else cur = asObject(cur)?.[key];
    }
    return asObject(cur);
  };
}

const ROOT: Locate = (copy) => copy;
const setter = (locate: Locate, key: string): Setter => (copy, text) => {
  const target = locate(copy);
  if (target) target[key] = text;
};

const KNOWN_ITEM_TYPES = new Set(['message', 'function_call', 'function_call_output', 'mcp_call', 'mcp_approval_request', 'mcp_approval_response', 'mcp_list_tools', 'item_reference']);
/** Message content parts whose content is read below (GA names, and the beta's text / audio). */
const KNOWN_PART_TYPES = new Set(['input_text', 'input_audio', 'input_image', 'output_text', 'output_audio', 'text', 'audio']);

/**
 * The setter of a text judged under two sources (a client-written text: its own source and
 * `input`), both of which may redact it. The first redaction is written; a second, different one
 * is merged into it (each source's replaced spans replaced as it says), so neither undoes the
 * other's. Until the third review of 2026-12-05 the text was emptied instead. A rewrite back to
 * the original never undoes the other's redaction.
 */
const sharedSetter = (locate: Locate, key: string, original: string): Setter => (copy, text) => {
  const target = locate(copy);
  if (!target) return;
  const current = target[key];
  // A rewrite back to the original merges as no change; the first write needs no merge.
  target[key] = typeof current === 'string' && current !== original ? mergeRedactions(original, current, text) : text;
};

/** One replaced span of an original text: `[start, end)` became `text`. */
interface Hunk {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/**
 * Most edits followed between an original and its redaction (the diff costs time in the text's
 * length times this, memory in its square): a text redacted further apart is withheld (emptied).
 */
export const MAX_MERGE_EDITS = 1024;

/**
 * `original` with the spans `a` replaced and those `b` replaced, both: two redactions of the same
 * text merged. The spans are recovered by a shortest diff; spans of the two that overlap become
 * one span, replaced by both replacements (in the order the spans start; at a tie a's first). `''` when either is further than
 * `MAX_MERGE_EDITS` edits from the original (nothing either redacted is forwarded).
 */
export function mergeRedactions(original: string, a: string, b: string): string {
  const ha = hunksOf(original, a);
  const hb = hunksOf(original, b);
  if (ha === null || hb === null) return '';
  // By start; at a tie a's first (the sort is stable).
  const all = [...ha, ...hb].sort((x, y) => x.start - y.start);
  let out = '';
  let pos = 0;
  for (let i = 0; i < all.length; ) {
    const first = all[i++]!;
    let end = first.end;
    const texts = [first.text];
    const seen = new Set([`${first.start}:${first.end}:${first.text}`]);
    // A span starting inside this one or where it ends joins it (an identical one, both
    // redactions' alike, once: two alike insertions at one place too).
    while (i < all.length && all[i]!.start <= end) {
      const h = all[i++]!;
      end = Math.max(end, h.end);
      const id = `${h.start}:${h.end}:${h.text}`;
      if (!seen.has(id)) texts.push(h.text);
      seen.add(id);
    }
    out += original.slice(pos, first.start) + texts.join('');
    pos = end;
  }
  return out + original.slice(pos);
}

/** The spans of `original` that `changed` replaced (a shortest diff, Myers'), or null past `MAX_MERGE_EDITS`. */
function hunksOf(original: string, changed: string): Hunk[] | null {
  // The common ends first: the diff then runs over the redacted middle only.
  let pre = 0;
  const shorter = Math.min(original.length, changed.length);
  while (pre < shorter && original[pre] === changed[pre]) pre++;
  let post = 0;
  while (post < shorter - pre && original[original.length - 1 - post] === changed[changed.length - 1 - post]) post++;
  const a = original.slice(pre, original.length - post);
  const b = changed.slice(pre, changed.length - post);
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_MERGE_EDITS);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  // trace[d]: the furthest x per diagonal k before step d (index k + d).
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(off - d, off + d + 1));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, d, n, m, b, pre);
    }
  }
  return null;
}

/** The hunks along the path the diff found (shifted by the common prefix `pre`), last first: the merge sorts them. */
function backtrack(trace: readonly Int32Array[], edits: number, n: number, m: number, b: string, pre: number): Hunk[] {
  const hunks: { start: number; end: number; text: string }[] = [];
  const edit = (start: number, end: number, text: string): void => {
    const last = hunks[hunks.length - 1];
    // Walking backwards: an edit touching the previous one (found later in the text) joins it.
    if (last !== undefined && last.start === end) {
      last.start = start;
      last.text = text + last.text;
    } else hunks.push({ start, end, text });
  };
  let x = n;
  let y = m;
  for (let d = edits; d > 0; d--) {
    const prev = trace[d]!;
    const k = x - y;
    const at = (kk: number): number => prev[kk + d]!;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK);
    const prevY = prevX - prevK;
    // The equal run after the edit.
    const snake = Math.min(x - prevX, y - prevY);
    x -= snake;
    y -= snake;
    if (prevK === k + 1) edit(x, x, b[y - 1]!);
    else edit(x - 1, x, '');
    x = prevX;
    y = prevY;
  }
  return hunks.map((h) => ({ start: h.start + pre, end: h.end + pre, text: h.text }));
}

/** A placeholder for content nothing here can read: the policy decides on it as a whole. */
const unknownContent = (label: string, itemId: string | null): ContentText => ({ source: 'input', text: '', functionName: null, itemId, set: () => undefined, unknownContent: label });

/** A value as an invalid-type error names it (the upstream's words). */
function shapeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'boolean') return 'a boolean';
  return `a ${typeof value}`;
}

/**
 * The one decision on a member read here whose value has another shape than `expected`: an entry
 * naming it (`malformed`), unknown content to readers that do not refuse it. `label`: the unknown
 * content's label (by default the path and the shape: `session.instructions:array`).
 */
function malformed(param: string, expected: string, value: unknown, itemId: string | null, label = `${param}:${Array.isArray(value) ? 'array' : typeof value}`): ContentText {
  return { ...unknownContent(label, itemId), malformed: { param, expected, got: shapeOf(value) } };
}

/**
 * How every member the table reads is taken: absent or null is nothing to read; a value `is` accepts
 * is read; anything else is `malformed` (pushed to `out`), and null is returned. The shapes per
 * member are the GA protocol's (openai `resources/realtime`): texts are strings, lists arrays,
 * holders objects; a prompt variable and an MCP call's error take a string or an object.
 */
function member<T>(holder: JsonObject, key: string, is: (v: unknown) => T | null, expected: string, param: string, out: ContentText[], itemId: string | null, label?: string): T | null {
  const raw = holder[key];
  if (raw === undefined || raw === null) return null;
  const value = is(raw);
  if (value === null) out.push(malformed(param, expected, raw, itemId, label));
  return value;
}

const A_STRING = 'a string';
const AN_ARRAY = 'an array';
const AN_OBJECT = 'an object';

/** Each element of a list read here: objects are read (`read`), null ones are nothing, others are `malformed`. */
function eachObject(list: readonly unknown[] | null, param: string, out: ContentText[], itemId: string | null, read: (o: JsonObject, i: number, path: string) => void): void {
  list?.forEach((raw, i) => {
    const path = `${param}[${i}]`;
    const o = asObject(raw);
    if (o !== null) read(o, i, path);
    else if (raw !== null) out.push(malformed(path, AN_OBJECT, raw, itemId));
  });
}

/**
 * The refusal of a client event with a member the table cannot read (`ContentText.malformed`), or
 * null: `invalid_event`, the member's path as `param`, before it reaches the upstream, whatever the
 * policy. The upstream refuses most such shapes too, but governance must not depend on it: content
 * the proxy cannot read does not pass (until 2026-12-06 it was neither read nor reported).
 * `invalid_request` (HTTP 400, no close): the same refusal of a session config outside a session (a
 * client secret, a WebRTC or SIP call: `checkSessionConfig`; until 2026-12-06 unknown content there).
 */
export function malformedError(texts: readonly ContentText[], eventId: string | null, code: 'invalid_event' | 'invalid_request' = 'invalid_event'): ProxyError | null {
  const bad = texts.find((t) => t.malformed !== undefined)?.malformed;
  if (bad === undefined) return null;
  return new ProxyError(code, {
    message: `Invalid type for '${bad.param}': expected ${bad.expected}, but got ${bad.got} instead. The proxy forwards no text it cannot read.`,
    param: bad.param,
    eventId,
    ...(code === 'invalid_request' ? { close: null } : {}),
    details: { reason: 'invalid_type', expected: bad.expected },
  });
}

/**
 * Texts inside one conversation item (client- or model-made), each with its source. `client`: the
 * client wrote the item (`conversation.item.create`, `response.create`'s `input[]`): every text of
 * it is `input` too, beside its own source (an assistant message, a function call's arguments and
 * name, a tool output: who typed it decides, not the role it claims), and the MCP items it may
 * create are read (a tool list's names, descriptions and input schemas, an approval response's
 * reason, a call's error: `input`, the model reads them as it reads a prompt). Found 2026-12-05.
 */
export function itemTexts(item: JsonObject, locate: Locate, out: ContentText[], client = false, param = 'item'): void {
  const type = asString(item['type']) ?? '';
  const itemId = asString(item['id']);
  const name = asString(item['name']);
  /** The unknown-content label of a text of another shape (by item type and field, as since 2026-12-05). */
  const labelOf = (key: string, raw: unknown): string => `${type}.${key}:${Array.isArray(raw) ? 'array' : typeof raw}`;
  /**
   * One text at `key` of the object `where` finds (`path`: its param): read as `source`, and, when
   * the client wrote it, as `input` too (the model reads what the client typed whatever role or type it claims).
   */
  const text = (where: Locate, holder: JsonObject, key: string, source: Source, path: string, functionName: string | null = null): void => {
    const value = member(holder, key, asString, A_STRING, `${path}.${key}`, out, itemId, labelOf(key, holder[key]));
    if (value === null) return;
    if (!client || source === 'input') {
      out.push({ source, text: value, functionName, itemId, set: setter(where, key) });
      return;
    }
    const set = sharedSetter(where, key, value);
    // A tool's arguments or output read as input too is still a JSON text: its escapes are decoded there as well.
    const format: TextFormat | undefined = source === 'tool_call' || source === 'tool_output' ? 'json' : undefined;
    out.push({ source, text: value, functionName, itemId, set }, { source: 'input', text: value, functionName: null, itemId, set, ...(format ? { format } : {}) });
  };
  const push = (source: Source, key: string, functionName: string | null = null): void => text(locate, item, key, source, param, functionName);
  /** A plain text (not a JSON document, whatever its source): the client's through `text`, the upstream's as `source` alone. */
  const serverText = (where: Locate, holder: JsonObject, key: string, source: Source, path: string): void => {
    if (client) return text(where, holder, key, source, path);
    const value = member(holder, key, asString, A_STRING, `${path}.${key}`, out, itemId, labelOf(key, holder[key]));
    if (value !== null) out.push({ source, text: value, functionName: null, itemId, set: setter(where, key), format: 'text' });
  };
  switch (type) {
    case 'message': {
      const role = asString(item['role']);
      const textSource: Source = role === 'assistant' ? 'output' : 'input';
      // Content that is not a list of parts (a bare string, say) is nothing the table can read.
      const content = member(item, 'content', asArray, AN_ARRAY, `${param}.content`, out, itemId, labelOf('content', item['content']));
      eachObject(content, `${param}.content`, out, itemId, (part, i, path) => {
        const where = at(locate, 'content', i);
        for (const key of ['text', 'transcript'] as const) text(where, part, key, textSource, path);
        const image = member(part, 'image_url', asString, A_STRING, `${path}.image_url`, out, itemId);
        if (image !== null) out.push({ source: 'image', text: image, functionName: null, itemId, set: setter(where, 'image_url') });
        const partType = part['type'];
        if (typeof partType === 'string' && !KNOWN_PART_TYPES.has(partType)) out.push(unknownContent(`content part:${partType}`, itemId));
      });
      return;
    }
    case 'function_call':
    case 'mcp_approval_request':
      push('tool_call', 'arguments', name);
      // A name the client wrote is read as input too (as a tool definition's name is).
      if (client) push('input', 'name');
      return;
    case 'mcp_call': {
      push('tool_call', 'arguments', name);
      push('tool_output', 'output');
      if (client) push('input', 'name');
      // A failed call's error (an object with a message, or a bare string) is read like its output:
      // the model reads it as the call's result. The client's is input; the upstream's is the MCP
      // server's answer, tool_output (until 2026-12-07 the upstream's was read by no rule, and an MCP
      // server that answered with an error instead of an output passed every tool_output rule).
      const errorSource: Source = client ? 'input' : 'tool_output';
      const error = member(item, 'error', (v) => (typeof v === 'string' || asObject(v) !== null ? v : null), 'an object or a string', `${param}.error`, out, itemId);
      if (typeof error === 'string') serverText(locate, item, 'error', errorSource, param);
      else if (error !== null) serverText(at(locate, 'error'), error as JsonObject, 'message', errorSource, `${param}.error`);
      return;
    }
    case 'function_call_output':
      push('tool_output', 'output');
      return;
    case 'mcp_approval_response':
      if (client) push('input', 'reason');
      return;
    case 'mcp_list_tools': {
      // The tools an MCP server offers, which the model reads as it reads tool definitions: the
      // client's are input; the upstream's are what the MCP server returned (its tools/list),
      // tool_output (until 2026-12-07 read by no rule: a tool description saying "ignore previous
      // instructions" reached the model and the client past every rule).
      const listSource: Source = client ? 'input' : 'tool_output';
      // A list that is not a list is nothing the table can read (as a message's content).
      const tools = member(item, 'tools', asArray, AN_ARRAY, `${param}.tools`, out, itemId, `mcp_list_tools.tools:${typeof item['tools']}`);
      eachObject(tools, `${param}.tools`, out, itemId, (tool, i, path) => {
        const loc = at(locate, 'tools', i);
        for (const key of ['name', 'description']) {
          const value = member(tool, key, asString, A_STRING, `${path}.${key}`, out, itemId);
          if (value !== null) out.push({ source: listSource, text: value, functionName: null, itemId, set: setter(loc, key), format: 'text' });
        }
        schemaTexts(tool['input_schema'], loc, 'input_schema', itemId, out, listSource);
        // Its annotations (MCP's `title` and hints) are the server's text too, shown to the client
        // (until 2026-12-07 read by no rule: test/policies/redteam-17e-list-claims-pending-create.test.ts).
        schemaTexts(tool['annotations'], loc, 'annotations', itemId, out, listSource);
      });
      return;
    }
    default:
      if (!KNOWN_ITEM_TYPES.has(type)) out.push(unknownContent(`item:${type || '(none)'}`, itemId));
  }
}

/** Every complete text in an event of a 'texts' row (client or server). */
export function eventTexts(type: string, ev: JsonObject): ContentText[] {
  const out: ContentText[] = [];
  /** One text at `key` of the event (or of `ev[holder]`), source `source`. */
  const text = (source: Source, key: string, holder: string | null = null): void => {
    const where = holder === null ? ROOT : at(ROOT, holder);
    const obj = holder === null ? ev : asObject(ev[holder]);
    if (obj === null) return;
    const value = member(obj, key, asString, A_STRING, holder === null ? key : `${holder}.${key}`, out, null);
    if (value !== null) out.push({ source, text: value, functionName: null, itemId: asString(ev['item_id']), set: setter(where, key) });
  };
  switch (type) {
    case 'conversation.item.input_audio_transcription.segment':
      text('input', 'text');
      break;
    case 'response.audio_transcript.done':
      text('output', 'transcript');
      break;
    case 'response.content_part.added':
    case 'response.content_part.done':
      if (member(ev, 'part', asObject, AN_OBJECT, 'part', out, null) === null) break;
      for (const key of ['text', 'transcript'] as const) text('output', key, 'part');
      break;
    case 'response.created':
    case 'response.done': {
      const response = member(ev, 'response', asObject, AN_OBJECT, 'response', out, null);
      if (response === null) break;
      const output = member(response, 'output', asArray, AN_ARRAY, 'response.output', out, null);
      eachObject(output, 'response.output', out, null, (it, i, path) => itemTexts(it, at(ROOT, 'response', 'output', i), out, false, path));
      break;
    }
    case 'response.create': {
      const response = member(ev, 'response', asObject, AN_OBJECT, 'response', out, null);
      if (response === null) break;
      const where = at(ROOT, 'response');
      const instructions = member(response, 'instructions', asString, A_STRING, 'response.instructions', out, null);
      if (instructions !== null) out.push({ source: 'input', text: instructions, functionName: null, itemId: null, set: setter(where, 'instructions') });
      promptVariables(response, where, 'response', out);
      toolTexts(response, where, 'response', out);
      const input = member(response, 'input', asArray, AN_ARRAY, 'response.input', out, null);
      eachObject(input, 'response.input', out, null, (it, i, path) => {
        // A reference puts a conversation item here, in any order: its text is context at this place
        // (until 2026-12-06 nothing, and two items typed in the reverse order spelled a phrase).
        const ref = it['type'] === 'item_reference' ? asString(it['id']) : null;
        if (ref !== null) out.push({ source: 'input', text: '', functionName: null, itemId: null, set: () => undefined, reference: ref });
        else itemTexts(it, at(ROOT, 'response', 'input', i), out, true, path);
      });
      break;
    }
    case 'session.update':
    case 'transcription_session.update': {
      const given = member(ev, 'session', asObject, AN_OBJECT, 'session', out, null);
      if (given === null) break;
      // Only the members a call's session is judged by too (SESSION_TEXT_MEMBERS).
      const session = sessionTextMembers(given);
      const where = at(ROOT, 'session');
      const instructions = member(session, 'instructions', asString, A_STRING, 'session.instructions', out, null);
      if (instructions !== null) out.push({ source: 'input', text: instructions, functionName: null, itemId: null, set: setter(where, 'instructions') });
      promptVariables(session, where, 'session', out);
      toolTexts(session, where, 'session', out);
      transcriptionTexts(session, where, 'session', out);
      break;
    }
    default: {
      const item = member(ev, 'item', asObject, AN_OBJECT, 'item', out, null);
      if (item) itemTexts(item, at(ROOT, 'item'), out, type === 'conversation.item.create');
    }
  }
  return out;
}

/**
 * The input transcription's own texts, which steer what the transcription model writes (and so what
 * input rules then read): GA `audio.input.transcription.prompt` and `keywords[]` (realtime and
 * transcription sessions alike), and the Azure preview protocol's flat
 * `input_audio_transcription.prompt` and `keywords[]`. Client text like the instructions: source
 * `input`, judged as the `session.update` they come in (a client secret's or call's config too).
 * The `model`, `language` and `languages` are names and ISO codes, not read. Until 2026-12-06 none
 * of these was read: a prompt passed every rule, and one of another shape passed unrefused; the
 * preview member's `keywords` were read only later that day (a client can send them, and a server
 * that accepts them steers the transcript with them: every path content can take is one decision).
 */
function transcriptionTexts(session: JsonObject, where: Locate, param: string, out: ContentText[]): void {
  /** The transcription setting at `key` of `holder` (null: transcription off, nothing to read). */
  const read = (holder: JsonObject, loc: Locate, path: string, key: string): void => {
    const transcription = member(holder, key, asObject, AN_OBJECT, `${path}.${key}`, out, null);
    if (transcription === null) return;
    const tloc = at(loc, key);
    const prompt = member(transcription, 'prompt', asString, A_STRING, `${path}.${key}.prompt`, out, null);
    if (prompt !== null) out.push({ source: 'input', text: prompt, functionName: null, itemId: null, set: setter(tloc, 'prompt') });
    const list = member(transcription, 'keywords', asArray, AN_ARRAY, `${path}.${key}.keywords`, out, null);
    list?.forEach((raw, i) => {
      if (typeof raw === 'string') out.push({ source: 'input', text: raw, functionName: null, itemId: null, set: setPath(tloc, ['keywords', String(i)]) });
      else if (raw !== null) out.push(malformed(`${path}.${key}.keywords[${i}]`, A_STRING, raw, null));
    });
  };
  const audio = member(session, 'audio', asObject, AN_OBJECT, `${param}.audio`, out, null);
  const input = audio === null ? null : member(audio, 'input', asObject, AN_OBJECT, `${param}.audio.input`, out, null);
  if (input !== null) read(input, at(where, 'audio', 'input'), `${param}.audio.input`, 'transcription');
  // The Azure preview protocol's (beta) flat shape: `{ model, language, prompt, keywords }`.
  read(session, where, param, 'input_audio_transcription');
}

/**
 * Deepest nesting followed inside a tool's parameters or an MCP tool's input schema: the deepest a
 * client frame may nest at all (the relay refuses deeper frames before this). Anything deeper is
 * content not read, reported as unknown (the policy's `unknownContentEvents` decides): until
 * 2026-12-05 the walk stopped at 64 levels while frames may nest 128, and what lay below passed.
 */
const MAX_TOOL_DEPTH = MAX_CONTROL_DEPTH;

/**
 * Tool definitions the model reads as part of its prompt: each tool's name and description (and an
 * MCP server's) and every string and property name of its parameters' JSON schema (property
 * descriptions, enums, defaults, titles). Source `input`, like the instructions they sit beside.
 */
function toolTexts(holder: JsonObject, where: Locate, param: string, out: ContentText[]): void {
  const tools = member(holder, 'tools', asArray, AN_ARRAY, `${param}.tools`, out, null);
  eachObject(tools, `${param}.tools`, out, null, (tool, i, path) => {
    const loc = at(where, 'tools', i);
    for (const key of ['name', 'description', 'server_label', 'server_description']) {
      const text = member(tool, key, asString, A_STRING, `${path}.${key}`, out, null);
      if (text !== null) out.push({ source: 'input', text, functionName: null, itemId: null, set: setter(loc, key) });
    }
    allowedToolNames(tool, loc, path, out);
    schemaTexts(tool['parameters'], loc, 'parameters', null, out);
  });
}

/**
 * An MCP tool's `allowed_tools`: a list of tool names, or a filter `{ tool_names, read_only }`. The
 * names are the tool names the model is offered (read like a function tool's `name`; until
 * 2026-12-06 they and the `server_label` were read by no rule). Another shape is `malformed`.
 */
function allowedToolNames(tool: JsonObject, loc: Locate, path: string, out: ContentText[]): void {
  const allowed = member(tool, 'allowed_tools', (v) => (Array.isArray(v) || asObject(v) !== null ? v : null), 'an array or an object', `${path}.allowed_tools`, out, null);
  if (allowed === null) return;
  const filter = Array.isArray(allowed) ? null : (allowed as JsonObject);
  const names = filter === null ? (allowed as unknown[]) : member(filter, 'tool_names', asArray, AN_ARRAY, `${path}.allowed_tools.tool_names`, out, null);
  const keys = filter === null ? ['allowed_tools'] : ['allowed_tools', 'tool_names'];
  names?.forEach((raw, i) => {
    if (typeof raw === 'string') out.push({ source: 'input', text: raw, functionName: null, itemId: null, set: setPath(loc, [...keys, String(i)]) });
    else if (raw !== null) out.push(malformed(`${path}.${keys.join('.')}[${i}]`, A_STRING, raw, null));
  });
}

/**
 * Every string and property name of a JSON schema (a tool's `parameters`, an MCP tool's
 * `input_schema`) at `key` below `loc`: property descriptions, enums, defaults, titles. `input`.
 */
function schemaTexts(schema: unknown, loc: Locate, key: string, itemId: string | null, out: ContentText[], source: Source = 'input'): void {
  let tooDeep = false;
  const walk = (value: unknown, path: readonly string[]): void => {
    if (typeof value === 'string') {
      out.push({ source, text: value, functionName: null, itemId, set: setPath(loc, [key, ...path]), format: 'text' });
      return;
    }
    if (value === null || typeof value !== 'object') return;
    if (path.length >= MAX_TOOL_DEPTH) {
      // Fail closed: what lies below is not read, so the policy decides on it (once per schema).
      if (!tooDeep && Object.keys(value).length > 0) {
        out.push(unknownContent(`${key}:nested deeper than ${MAX_TOOL_DEPTH}`, itemId));
        tooDeep = true;
      }
      return;
    }
    const named = !Array.isArray(value);
    // Arrays too: their indices come as keys, and a copy's array takes them the same way.
    for (const [k, v] of Object.entries(value)) {
      walk(v, [...path, k]);
      // A property name is read too ("ignore_previous_instructions": {…}). Pushed after what is
      // below it, whose setters find their place by this name before it is rewritten.
      if (named) out.push({ source, text: k, functionName: null, itemId, set: renameKey(loc, [key, ...path], k), format: 'text' });
    }
  };
  walk(schema, []);
}

/** Renames the member `key` of the object at `path` below `locate` in a copy, keeping the members' order. */
const renameKey = (locate: Locate, path: readonly string[], key: string): Setter => (copy, text) => {
  let cur: unknown = locate(copy);
  for (const k of path) cur = (cur as Record<string, unknown> | null)?.[k] ?? null;
  const target = asObject(cur);
  if (target === null || text === key || !Object.hasOwn(target, key)) return;
  const members = Object.entries(target);
  for (const [k] of members) delete target[k];
  // defineProperty: a member named __proto__ stays a member (assignment would set the prototype).
  for (const [k, v] of members) Object.defineProperty(target, k === key ? text : k, { value: v, writable: true, enumerable: true, configurable: true });
};

/** Writes a text at `path` (object keys and array indices) below `locate` in a copy of the event. */
const setPath = (locate: Locate, path: readonly string[]): Setter => (copy, text) => {
  let cur: unknown = locate(copy);
  for (const key of path.slice(0, -1)) cur = (cur as Record<string, unknown> | null)?.[key] ?? null;
  if (cur !== null && typeof cur === 'object') (cur as Record<string, unknown>)[path[path.length - 1]!] = text;
};

/**
 * A reusable prompt's variables: a string is text; an object is an `input_text` (its text), an
 * `input_image` (its URL or file id: `image`) or a file (unknown content); any other value is malformed.
 */
function promptVariables(holder: JsonObject, where: Locate, param: string, out: ContentText[]): void {
  const prompt = member(holder, 'prompt', asObject, AN_OBJECT, `${param}.prompt`, out, null);
  if (prompt === null) return;
  const vars = member(prompt, 'variables', asObject, AN_OBJECT, `${param}.prompt.variables`, out, null);
  if (vars === null) return;
  const loc = at(where, 'prompt', 'variables');
  for (const key of Object.keys(vars)) {
    const path = `${param}.prompt.variables.${key}`;
    const value = member(vars, key, (v) => (typeof v === 'string' || asObject(v) !== null ? v : null), 'a string or an object', path, out, null);
    if (typeof value === 'string') out.push({ source: 'input', text: value, functionName: null, itemId: null, set: setter(loc, key) });
    if (value === null || typeof value === 'string') continue;
    const part = value as JsonObject;
    const type = part['type'];
    const text = member(part, 'text', asString, A_STRING, `${path}.text`, out, null);
    if (text !== null) out.push({ source: 'input', text, functionName: null, itemId: null, set: setter(at(loc, key), 'text') });
    // A variable may be an image (by URL or file id) or a file, as in the Responses API.
    if (type === 'input_image') {
      for (const ref of ['image_url', 'file_id'] as const) {
        const image = member(part, ref, asString, A_STRING, `${path}.${ref}`, out, null);
        if (image !== null) out.push({ source: 'image', text: image, functionName: null, itemId: null, set: setter(at(loc, key), ref) });
      }
    } else if (type !== 'input_text') out.push(unknownContent(`prompt variable:${typeof type === 'string' && type !== '' ? type : '(none)'}`, null));
  }
}
