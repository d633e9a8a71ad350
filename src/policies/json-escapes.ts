/**
 * Tool-call arguments and tool outputs are JSON texts: inside their strings `\n`, `\"` or
 * `\u0040` stand for characters the tool (and the model) reads decoded. Rules match on the decoded
 * text, so `wire\nthe money` or `jane\u0040example.com` are what they say; a match maps back to the
 * escape sequences it covers, so a redaction never splits one.
 */

import { normalize, type Normalized } from './normalize.js';

export interface DecodedText {
  /** The text with every JSON string escape replaced by the character it stands for. */
  readonly text: string;
  /** For each UTF-16 unit of `text`, where it starts and ends in the original. */
  readonly rawStart: Int32Array;
  readonly rawEnd: Int32Array;
}

const SIMPLE: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
/** Tested on the (at most) four units after `\u`. */
const HEX4 = /[0-9a-fA-F]{4}/;

/** Null when `raw` has no backslash (nothing to decode). Malformed escapes stay as they are. */
export function decodeJsonEscapes(raw: string): DecodedText | null {
  if (!raw.includes('\\')) return null;
  let text = '';
  const rawStart = new Int32Array(raw.length);
  const rawEnd = new Int32Array(raw.length);
  let n = 0;
  const emit = (chars: string, start: number, end: number): void => {
    for (let k = 0; k < chars.length; k++, n++) {
      rawStart[n] = start;
      rawEnd[n] = end;
    }
    text += chars;
  };
  let i = 0;
  for (;;) {
    const next = raw.indexOf('\\', i);
    const stop = next < 0 ? raw.length : next;
    // Plain characters map one to one.
    text += raw.slice(i, stop);
    for (let k = i; k < stop; k++, n++) {
      rawStart[n] = k;
      rawEnd[n] = k + 1;
    }
    if (next < 0) break;
    const c = raw[next + 1];
    if (c !== undefined && c in SIMPLE) {
      emit(SIMPLE[c]!, next, next + 2);
      i = next + 2;
    } else if (c === 'u' && HEX4.test(raw.slice(next + 2, next + 6))) {
      emit(String.fromCharCode(parseInt(raw.slice(next + 2, next + 6), 16)), next, next + 6);
      i = next + 6;
    } else {
      emit('\\', next, next + 1);
      i = next + 1;
    }
  }
  return { text, rawStart: rawStart.subarray(0, n), rawEnd: rawEnd.subarray(0, n) };
}

/**
 * `normalize` of the decoded text, with its offset maps pointing into `raw`: a match found in the
 * decoded text covers whole escape sequences of the raw one, so holding back or redacting by these
 * offsets never splits an escape.
 */
export function normalizeJson(raw: string): Normalized {
  const decoded = decodeJsonEscapes(raw);
  if (decoded === null) return normalize(raw);
  const norm = normalize(decoded.text);
  // The maps are normalize's shared buffers: composed in place (valid until its next call).
  const { starts, ends } = norm;
  for (let k = 0; k < starts.length; k++) {
    starts[k] = decoded.rawStart[starts[k]!]!;
    ends[k] = decoded.rawEnd[ends[k]! - 1]!;
  }
  return norm;
}

/** Hex digits so far of a `\u` escape cut off at the end of a text. */
const OPEN_HEX = /^[0-9a-fA-F]{0,3}$/;

/**
 * Where an escape sequence cut off at the end of streamed `raw` starts (`\` or `\u00` as the last
 * characters), or `raw.length` when the text ends on a whole one: released text must not end
 * inside an escape, whose meaning the next delta decides.
 */
export function openEscapeStart(raw: string): number {
  const last = raw.lastIndexOf('\\');
  if (last < 0) return raw.length;
  // After an odd run of backslashes it is the second half of `\\`: a whole escape.
  let run = 0;
  for (let j = last - 1; j >= 0 && raw[j] === '\\'; j--) run++;
  if (run % 2 === 1) return raw.length;
  if (last === raw.length - 1) return last;
  return raw[last + 1] === 'u' && OPEN_HEX.test(raw.slice(last + 2)) ? last : raw.length;
}
