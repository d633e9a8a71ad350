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

/** Whether the escaped JSON string at [open, end) decodes to `key`; undefined when it is not valid. */
function decodesTo(buf: Buffer, open: number, end: number, key: string): boolean | undefined {
  try {
    return JSON.parse(buf.toString('utf8', open, end)) === key;
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

/**
 * Byte span [start, end) of the top-level string member `key` (without quotes), `null` when the
 * object has no such member (or its value is not a string), `undefined` when the frame cannot be
 * read cheaply (not an object, malformed, escapes in the key or value), `DUPLICATE_KEY` when the
 * key occurs twice at the top level. The whole top level is walked (large string values are
 * skipped with native `indexOf`), so a later duplicate is always seen.
 */
function scanMember(buf: Buffer, key: string): Span | null | undefined | typeof DUPLICATE_KEY {
  const found = scanMemberBounds(buf, key);
  return found === MEMBER_FOUND ? [memberStart, memberEnd] : found === MEMBER_ABSENT ? null : found === MEMBER_DUPLICATE ? DUPLICATE_KEY : undefined;
}

/** `scanMemberBounds`'s answers; the span of a found member is left in `memberStart`/`memberEnd`. */
const MEMBER_FOUND = 1;
const MEMBER_ABSENT = 0;
const MEMBER_UNREADABLE = -1;
const MEMBER_DUPLICATE = -2;
type MemberScan = typeof MEMBER_FOUND | typeof MEMBER_ABSENT | typeof MEMBER_UNREADABLE | typeof MEMBER_DUPLICATE;
/** The last found member's span, valid until the next scan (perf: no tuple per frame on the relay's path). */
let memberStart = 0;
let memberEnd = 0;

/** `scanMember` without allocating: the span of a found member is left in `memberStart`/`memberEnd`. */
function scanMemberBounds(buf: Buffer, key: string): MemberScan {
  let i = skipSpace(buf, 0);
  if (buf[i] !== OPEN_BRACE) return MEMBER_UNREADABLE;
  i = skipSpace(buf, i + 1);
  if (buf[i] === CLOSE_BRACE) return MEMBER_ABSENT;
  const keyLen = key.length;
  let found = false;
  let start = 0;
  let end = 0;
  let foundNonString = false;
  for (;;) {
    if (buf[i] !== QUOTE) return MEMBER_UNREADABLE;
    const keyEnd = endOfString(buf, i);
    if (keyEnd < 0) return MEMBER_UNREADABLE;
    // An escaped key may decode to `key` (`"ty\u0070e"`): decode it (rare) rather than guess.
    const isKey = hasEscape(buf, i + 1, keyEnd - 1)
      ? decodesTo(buf, i, keyEnd, key)
      : keyEnd - i - 2 === keyLen && bytesEqual(buf, i + 1, key);
    if (isKey === undefined) return MEMBER_UNREADABLE;
    i = skipSpace(buf, keyEnd);
    if (buf[i] !== COLON) return MEMBER_UNREADABLE;
    i = skipSpace(buf, i + 1);
    const valueEnd = endOfValue(buf, i);
    if (valueEnd < 0) return MEMBER_UNREADABLE;
    if (isKey) {
      if (found || foundNonString) return MEMBER_DUPLICATE;
      if (buf[i] !== QUOTE) foundNonString = true;
      else if (hasEscape(buf, i + 1, valueEnd - 1)) return MEMBER_UNREADABLE;
      else {
        found = true;
        start = i + 1;
        end = valueEnd - 1;
      }
      // A second top-level key needs the bytes `"key"` again later, or an escape to spell it;
      // two native searches rule both out for audio frames (base64 has neither) without a walk.
      if (buf.indexOf(quotedKey(key), valueEnd) < 0 && buf.indexOf(BACKSLASH, valueEnd) < 0) return settled(found, start, end);
    }
    i = skipSpace(buf, valueEnd);
    if (buf[i] === COMMA) {
      i = skipSpace(buf, i + 1);
      continue;
    }
    if (buf[i] === CLOSE_BRACE) return settled(found, start, end);
    return MEMBER_UNREADABLE;
  }
}

function settled(found: boolean, start: number, end: number): MemberScan {
  if (!found) return MEMBER_ABSENT;
  memberStart = start;
  memberEnd = end;
  return MEMBER_FOUND;
}

/** Like `scanMember`, with a duplicated key reported as unreadable (`undefined`): parse instead. */
export function sniffStringSpan(buf: Buffer, key: string): Span | null | undefined {
  const span = scanMember(buf, key);
  return span === DUPLICATE_KEY ? undefined : span;
}

/** The top-level string member `key`; `null` absent, `undefined` unreadable without a full parse. */
export function sniffString(buf: Buffer, key: string): string | null | undefined {
  const span = sniffStringSpan(buf, key);
  if (span === null || span === undefined) return span;
  return decode(buf, span);
}

/** The event type, for the relay: also tells a duplicated `type` apart from an unreadable frame. */
export function sniffType(buf: Buffer): string | null | undefined | typeof DUPLICATE_KEY {
  const found = scanMemberBounds(buf, 'type');
  if (found !== MEMBER_FOUND) return found === MEMBER_ABSENT ? null : found === MEMBER_DUPLICATE ? DUPLICATE_KEY : undefined;
  const start = memberStart;
  const end = memberEnd;
  return hotType(buf, start, end) ?? decodeRange(buf, start, end);
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

function decode(buf: Buffer, span: Span): string {
  return decodeRange(buf, span[0], span[1]);
}

function decodeRange(buf: Buffer, start: number, end: number): string {
  // ASCII values (every event type and id) decode faster as latin1.
  for (let j = start; j < end; j++) if (buf[j]! >= 0x80) return buf.toString('utf8', start, end);
  return buf.toString('latin1', start, end);
}
