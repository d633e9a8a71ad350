/**
 * A few top-level members of a small upstream frame, read in one validating walk instead of
 * `JSON.parse` (perf: a transcript delta is read for four members, and parsing it built an object
 * and its strings for every delta: about a third of the guardrail filter's time per delta).
 *
 * The walk checks the whole frame against the JSON grammar, so a frame `JSON.parse` would refuse
 * is never read here (the relay drops a malformed upstream frame a filter reads: pipeline/chain.ts
 * #malformed). It answers `undefined` whenever it cannot answer exactly as `JSON.parse` would:
 * malformed JSON, a wanted member given twice (`JSON.parse` takes the last; clients differ), an
 * escape in any key or in a wanted string value, nesting deeper than MAX_DEPTH. The caller then
 * parses. It may refuse frames `JSON.parse` accepts; it never accepts one `JSON.parse` refuses.
 */

import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isSpace, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './json-bytes.js';

/** Deeper frames are left to `JSON.parse` (an upstream event nests a few levels). */
const MAX_DEPTH = 64;
/** At most this many wanted keys (one bit each). */
const MAX_KEYS = 31;

/** What the walk found for each wanted key: a string's span, a number's value, or neither. */
export interface CheckedMembers {
  /** Per key: [start, end) of the string value's bytes (no quotes, no escapes), or -1. */
  readonly stringStart: Int32Array;
  readonly stringEnd: Int32Array;
  /** Per key: the number value, or NaN when the member is absent or not a number. */
  readonly numbers: Float64Array;
}

/** Reused by every call (perf: nothing allocated per frame); valid until the next call. */
const found: CheckedMembers = { stringStart: new Int32Array(MAX_KEYS), stringEnd: new Int32Array(MAX_KEYS), numbers: new Float64Array(MAX_KEYS) };

/** Thrown inside the walk for anything it does not read exactly as JSON.parse (caught below). */
const UNREADABLE = -1;

/**
 * The members `keys` (ASCII, unescaped names) of the JSON object in `buf`, or `undefined` (see the
 * module comment). The answer is shared and valid until the next call.
 */
export function checkedMembers(buf: Uint8Array, keys: readonly string[]): CheckedMembers | undefined {
  if (keys.length > MAX_KEYS) throw new RangeError(`at most ${MAX_KEYS} keys`);
  for (let k = 0; k < keys.length; k++) {
    found.stringStart[k] = -1;
    found.stringEnd[k] = -1;
    found.numbers[k] = NaN;
  }
  const n = buf.length;
  let i = skip(buf, 0);
  if (buf[i] !== OPEN_BRACE) return undefined;
  i = skip(buf, i + 1);
  let seen = 0;
  if (buf[i] === CLOSE_BRACE) return skip(buf, i + 1) === n ? found : undefined;
  for (;;) {
    if (buf[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(buf, i, true);
    if (keyEnd < 0) return undefined;
    const k = keyIndex(buf, i + 1, keyEnd - 1, keys);
    i = skip(buf, keyEnd);
    if (buf[i] !== COLON) return undefined;
    i = skip(buf, i + 1);
    const valueStart = i;
    const wantedString = k >= 0 && buf[i] === QUOTE;
    const valueEnd = value(buf, i, wantedString, 1);
    if (valueEnd < 0) return undefined;
    if (k >= 0) {
      if ((seen & (1 << k)) !== 0) return undefined;
      seen |= 1 << k;
      if (wantedString) {
        found.stringStart[k] = valueStart + 1;
        found.stringEnd[k] = valueEnd - 1;
      } else if (isNumberStart(buf[valueStart]!)) {
        found.numbers[k] = numberValue(buf, valueStart, valueEnd);
      }
    }
    i = skip(buf, valueEnd);
    if (buf[i] === COMMA) {
      i = skip(buf, i + 1);
      continue;
    }
    if (buf[i] === CLOSE_BRACE) return skip(buf, i + 1) === n ? found : undefined;
    return undefined;
  }
}

function skip(buf: Uint8Array, i: number): number {
  while (i < buf.length && isSpace(buf[i]!)) i++;
  return i;
}

function isNumberStart(c: number): boolean {
  return c === 0x2d || (c >= 0x30 && c <= 0x39);
}

/** The value of the (valid) JSON number at [start, end): a short integer by arithmetic, else as Number reads its text. */
function numberValue(buf: Uint8Array, start: number, end: number): number {
  if (end - start <= 15) {
    let v = 0;
    let j = start;
    for (; j < end; j++) {
      const d = buf[j]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (j === end) return v;
  }
  return Number(Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1'));
}

/** The index in `keys` of the key at [start, end) (it has no escapes), or -1. */
function keyIndex(buf: Uint8Array, start: number, end: number, keys: readonly string[]): number {
  const len = end - start;
  outer: for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!;
    if (key.length !== len) continue;
    for (let j = 0; j < len; j++) if (buf[start + j] !== key.charCodeAt(j)) continue outer;
    return k;
  }
  return -1;
}

/**
 * Index just past the string whose opening quote is at `open`, or -1: unterminated, a raw control
 * character, an invalid escape, or (`plain`) any escape at all. Bytes ≥ 0x80 pass: JSON.parse reads
 * the frame decoded as UTF-8, where an invalid sequence is U+FFFD, never an error.
 */
function stringEnd(buf: Uint8Array, open: number, plain: boolean): number {
  const n = buf.length;
  for (let j = open + 1; j < n; j++) {
    const c = buf[j]!;
    if (c === QUOTE) return j + 1;
    if (c < 0x20) return UNREADABLE;
    if (c === BACKSLASH) {
      if (plain) return UNREADABLE;
      const e = buf[j + 1];
      if (e === 0x75) {
        // \uXXXX: four hex digits (a lone surrogate is valid JSON).
        for (let h = 2; h < 6; h++) if (!isHex(buf[j + h])) return UNREADABLE;
        j += 5;
      } else if (e === QUOTE || e === BACKSLASH || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) j++;
      else return UNREADABLE;
    }
  }
  return UNREADABLE;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

/** Index just past the JSON value at `i`, or -1. `plain`: a string value must have no escapes. */
function value(buf: Uint8Array, i: number, plain: boolean, depth: number): number {
  const c = buf[i];
  if (c === QUOTE) return stringEnd(buf, i, plain);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    if (depth >= MAX_DEPTH) return UNREADABLE;
    return c === OPEN_BRACE ? object(buf, i, depth + 1) : array(buf, i, depth + 1);
  }
  if (c === 0x74) return literal(buf, i, 'true');
  if (c === 0x66) return literal(buf, i, 'false');
  if (c === 0x6e) return literal(buf, i, 'null');
  return number(buf, i);
}

function object(buf: Uint8Array, open: number, depth: number): number {
  let i = skip(buf, open + 1);
  if (buf[i] === CLOSE_BRACE) return i + 1;
  for (;;) {
    if (buf[i] !== QUOTE) return UNREADABLE;
    // A nested key may be escaped: it is no member this reads.
    const keyEnd = stringEnd(buf, i, false);
    if (keyEnd < 0) return UNREADABLE;
    i = skip(buf, keyEnd);
    if (buf[i] !== COLON) return UNREADABLE;
    const end = value(buf, skip(buf, i + 1), false, depth);
    if (end < 0) return UNREADABLE;
    i = skip(buf, end);
    if (buf[i] === COMMA) {
      i = skip(buf, i + 1);
      continue;
    }
    return buf[i] === CLOSE_BRACE ? i + 1 : UNREADABLE;
  }
}

function array(buf: Uint8Array, open: number, depth: number): number {
  let i = skip(buf, open + 1);
  if (buf[i] === CLOSE_BRACKET) return i + 1;
  for (;;) {
    const end = value(buf, i, false, depth);
    if (end < 0) return UNREADABLE;
    i = skip(buf, end);
    if (buf[i] === COMMA) {
      i = skip(buf, i + 1);
      continue;
    }
    return buf[i] === CLOSE_BRACKET ? i + 1 : UNREADABLE;
  }
}

function literal(buf: Uint8Array, i: number, word: string): number {
  for (let j = 0; j < word.length; j++) if (buf[i + j] !== word.charCodeAt(j)) return UNREADABLE;
  return i + word.length;
}

/** RFC 8259 number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. */
function digit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function number(buf: Uint8Array, i: number): number {
  if (buf[i] === 0x2d) i++;
  if (buf[i] === 0x30) i++;
  else if (digit(buf[i]) && buf[i] !== 0x30) while (digit(buf[i])) i++;
  else return UNREADABLE;
  if (buf[i] === 0x2e) {
    i++;
    if (!digit(buf[i])) return UNREADABLE;
    while (digit(buf[i])) i++;
  }
  if (buf[i] === 0x65 || buf[i] === 0x45) {
    i++;
    if (buf[i] === 0x2b || buf[i] === 0x2d) i++;
    if (!digit(buf[i])) return UNREADABLE;
    while (digit(buf[i])) i++;
  }
  return i;
}
