/**
 * Cheap, allocation-light reads of top-level JSON fields without parsing the frame.
 *
 * Realtime frames are JSON objects whose large member (base64 `audio` / `delta`) is a plain string.
 * `sniffString(buf, 'type')` walks only the top level: it skips over string values with native
 * `indexOf('"')`, skips nested values by depth counting, and stops at the first top-level `key`.
 * Any irregularity (escaped key or value, malformed JSON) returns `undefined`, and the caller falls
 * back to `JSON.parse`. The sniffer never claims a value the full parser would not agree with.
 */

import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, closingQuote, COLON, COMMA, isSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './json-bytes.js';

function skipSpace(buf: Uint8Array, i: number): number {
  while (i < buf.length && isSpace(buf[i]!)) i++;
  return i;
}

/** Keys and event types are short: scanning them in JS beats the cost of a native indexOf call. */
const SHORT_SCAN = 64;

/** Index just past the closing quote of the string whose opening quote is at `open`, or -1. */
function endOfString(buf: Buffer, open: number): number {
  const shortEnd = Math.min(buf.length, open + 1 + SHORT_SCAN);
  for (let j = open + 1; j < shortEnd; j++) {
    const c = buf[j];
    if (c === QUOTE) return j + 1;
    if (c === BACKSLASH) return endOfLongString(buf, open);
  }
  return endOfLongString(buf, open);
}

function endOfLongString(buf: Buffer, open: number): number {
  const q = closingQuote(buf, open);
  return q < 0 ? -1 : q + 1;
}

/** Index just past the value starting at `i` (any JSON value), or -1. */
function endOfValue(buf: Buffer, i: number): number {
  const c = buf[i];
  if (c === QUOTE) return endOfString(buf, i);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    while (i < buf.length) {
      const d = buf[i]!;
      if (d === QUOTE) {
        i = endOfString(buf, i);
        if (i < 0) return -1;
        continue;
      }
      if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // number, true, false, null
  while (i < buf.length) {
    const d = buf[i]!;
    if (d === COMMA || d === CLOSE_BRACE || isSpace(d)) return i;
    i++;
  }
  return -1;
}

/** What the escaped JSON string at [open, end) decodes to; undefined when it is not valid. */
function decodedKey(buf: Buffer, open: number, end: number): string | undefined {
  try {
    return JSON.parse(buf.toString('utf8', open, end)) as string;
  } catch {
    return undefined;
  }
}

const quotedKeys = new Map<string, Buffer>();
function quotedKey(key: string): Buffer {
  let q = quotedKeys.get(key);
  if (!q) quotedKeys.set(key, (q = Buffer.from(`"${key}"`, 'latin1')));
  return q;
}

/** Compares an ASCII key with the bytes at `start` without allocating a string. */
function bytesEqual(buf: Buffer, start: number, key: string): boolean {
  for (let k = 0; k < key.length; k++) if (buf[start + k] !== key.charCodeAt(k)) return false;
  return true;
}

/** Whether [start, end) holds a backslash. Bounded: it must never scan into the audio payload. */
function hasEscape(buf: Buffer, start: number, end: number): boolean {
  if (end - start <= SHORT_SCAN) {
    for (let j = start; j < end; j++) if (buf[j] === BACKSLASH) return true;
    return false;
  }
  const b = buf.subarray(start, end).indexOf(BACKSLASH);
  return b >= 0;
}

/**
 * Returned when the object has the key twice. JSON parsers disagree on which one wins (most take
 * the last, some refuse), so such a frame has no safe reading: a client could otherwise show the
 * proxy one event type and the upstream another.
 */
export const DUPLICATE_KEY: unique symbol = Symbol('duplicate-key');
export type Span = readonly [number, number];

/** `scanMembers`' answers; the spans it found are left in `memberStarts`/`memberEnds`. */
const MEMBERS_READ = 0;
const MEMBERS_UNREADABLE = -1;
const MEMBERS_DUPLICATE = -2;
type MembersScan = typeof MEMBERS_READ | typeof MEMBERS_UNREADABLE | typeof MEMBERS_DUPLICATE;
/** At most this many keys per scan (a bit each in `seen`). */
const MAX_KEYS = 31;
/**
 * The last scan's spans, by the key's index: [start, end), start -1 when the object has no such
 * string member. Valid until the next scan (perf: nothing allocated per frame on the relay's path).
 */
const memberStarts = new Int32Array(MAX_KEYS);
const memberEnds = new Int32Array(MAX_KEYS);

/**
 * Byte spans [start, end) of the top-level string members `keys` (without quotes), left in
 * `memberStarts`/`memberEnds` in the keys' order, start -1 when the object has no such member (or its
 * value is not a string); `MEMBERS_UNREADABLE` when the frame cannot be read cheaply (not an object,
 * malformed, escapes in a key's value, an escaped key that is not valid), `MEMBERS_DUPLICATE` when one
 * of the keys occurs twice at the top level. One walk of the top level for all of them (large string
 * values are skipped with native `indexOf`), so a later duplicate is always seen. Keys are ASCII, at
 * most 31.
 */
function scanMembers(buf: Buffer, keys: readonly string[]): MembersScan {
  const count = keys.length;
  for (let k = 0; k < count; k++) memberStarts[k] = -1;
  let i = skipSpace(buf, 0);
  if (buf[i] !== OPEN_BRACE) return MEMBERS_UNREADABLE;
  i = skipSpace(buf, i + 1);
  if (buf[i] === CLOSE_BRACE) return MEMBERS_READ;
  /** Bit k: keys[k] was met (a string or not). */
  let seen = 0;
  for (;;) {
    if (buf[i] !== QUOTE) return MEMBERS_UNREADABLE;
    const keyEnd = endOfString(buf, i);
    if (keyEnd < 0) return MEMBERS_UNREADABLE;
    // An escaped key may decode to one of `keys` (`"ty\u0070e"`): decode it (rare) rather than guess.
    let k: number;
    if (hasEscape(buf, i + 1, keyEnd - 1)) {
      const decoded = decodedKey(buf, i, keyEnd);
      if (decoded === undefined) return MEMBERS_UNREADABLE;
      k = keys.indexOf(decoded);
    } else {
      k = keyAt(buf, i + 1, keyEnd - 1, keys);
    }
    i = skipSpace(buf, keyEnd);
    if (buf[i] !== COLON) return MEMBERS_UNREADABLE;
    i = skipSpace(buf, i + 1);
    const valueEnd = endOfValue(buf, i);
    if (valueEnd < 0) return MEMBERS_UNREADABLE;
    if (k >= 0) {
      if ((seen & (1 << k)) !== 0) return MEMBERS_DUPLICATE;
      seen |= 1 << k;
      if (buf[i] === QUOTE) {
        if (hasEscape(buf, i + 1, valueEnd - 1)) return MEMBERS_UNREADABLE;
        memberStarts[k] = i + 1;
        memberEnds[k] = valueEnd - 1;
      }
      // Another of the keys (a later member, or a duplicate) needs the bytes `"key"` later, or an
      // escape to spell it: native searches rule both out for audio frames (base64 has neither)
      // without a walk over the payload.
      if (noneAfter(buf, valueEnd, keys)) return MEMBERS_READ;
    }
    i = skipSpace(buf, valueEnd);
    if (buf[i] === COMMA) {
      i = skipSpace(buf, i + 1);
      continue;
    }
    if (buf[i] === CLOSE_BRACE) return MEMBERS_READ;
    return MEMBERS_UNREADABLE;
  }
}

/** The index in `keys` of the unescaped key at [start, end), or -1. */
function keyAt(buf: Buffer, start: number, end: number, keys: readonly string[]): number {
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!;
    if (end - start === key.length && bytesEqual(buf, start, key)) return k;
  }
  return -1;
}

/**
 * Whether no byte from `from` on can spell one of `keys` as a key: neither `"key"` nor a backslash.
 * The keys first: one still to come is found at once, before the backslash search scans the rest.
 */
function noneAfter(buf: Buffer, from: number, keys: readonly string[]): boolean {
  for (let k = 0; k < keys.length; k++) if (buf.indexOf(quotedKey(keys[k]!), from) >= 0) return false;
  return buf.indexOf(BACKSLASH, from) < 0;
}

/** The span `scanMembers` found for key `k`, or null. */
function memberSpan(k: number): Span | null {
  const start = memberStarts[k]!;
  return start < 0 ? null : [start, memberEnds[k]!];
}

const ONE_KEY: string[] = [''];

/** Like `scanMembers` for one key, with a duplicated key reported as unreadable (`undefined`): parse instead. */
export function sniffStringSpan(buf: Buffer, key: string): Span | null | undefined {
  ONE_KEY[0] = key;
  return scanMembers(buf, ONE_KEY) === MEMBERS_READ ? memberSpan(0) : undefined;
}

/**
 * The spans of several top-level string members read in one walk (`scanMembers`): an append's audio
 * and its event_id, say. A duplicate of any of them is unreadable (`undefined`): parse instead.
 */
export function sniffStringSpans(buf: Buffer, keys: readonly string[]): readonly (Span | null)[] | undefined {
  if (keys.length > MAX_KEYS) throw new RangeError(`at most ${MAX_KEYS} keys per sniff`);
  if (scanMembers(buf, keys) !== MEMBERS_READ) return undefined;
  const spans: (Span | null)[] = [];
  for (let k = 0; k < keys.length; k++) spans.push(memberSpan(k));
  return spans;
}

/** The top-level string member `key`; `null` absent, `undefined` unreadable without a full parse. */
export function sniffString(buf: Buffer, key: string): string | null | undefined {
  ONE_KEY[0] = key;
  if (scanMembers(buf, ONE_KEY) !== MEMBERS_READ) return undefined;
  const start = memberStarts[0]!;
  return start < 0 ? null : rangeText(buf, start, memberEnds[0]!);
}

const TYPE_KEY: readonly string[] = ['type'];

/** The event type, for the relay: also tells a duplicated `type` apart from an unreadable frame. */
export function sniffType(buf: Buffer): string | null | undefined | typeof DUPLICATE_KEY {
  const read = scanMembers(buf, TYPE_KEY);
  if (read !== MEMBERS_READ) return read === MEMBERS_DUPLICATE ? DUPLICATE_KEY : undefined;
  const start = memberStarts[0]!;
  if (start < 0) return null;
  const end = memberEnds[0]!;
  return hotType(buf, start, end) ?? rangeText(buf, start, end);
}

/** The types of the frames that are most of the traffic: returned as constants, no string per frame. */
const HOT_TYPES: readonly { readonly type: string; readonly bytes: Buffer }[] = [
  'input_audio_buffer.append',
  'response.output_audio.delta',
  'response.output_audio_transcript.delta',
  'response.output_text.delta',
  'response.audio.delta',
  'response.audio_transcript.delta',
].map((type) => ({ type, bytes: Buffer.from(type, 'latin1') }));

function hotType(buf: Buffer, start: number, end: number): string | null {
  const n = end - start;
  for (let i = 0; i < HOT_TYPES.length; i++) {
    const hot = HOT_TYPES[i]!;
    if (hot.bytes.length === n && buf[end - 1] === hot.bytes[n - 1] && buf.compare(hot.bytes, 0, n, start, end) === 0) return hot.type;
  }
  return null;
}

/** The text of a sniffed span (a value without escapes). */
export function spanText(buf: Buffer, span: Span): string {
  return rangeText(buf, span[0], span[1]);
}

function rangeText(buf: Buffer, start: number, end: number): string {
  // ASCII values (every event type and id) decode faster as latin1.
  for (let j = start; j < end; j++) if (buf[j]! >= 0x80) return buf.toString('utf8', start, end);
  return buf.toString('latin1', start, end);
}
