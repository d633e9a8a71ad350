/**
 * Tool-call arguments and tool outputs are JSON texts: inside their strings `\n`, `\"` or
 * `\u0040` stand for characters the tool (and the model) reads decoded. Rules match on the decoded
 * text, so `wire\nthe money` or `jane\u0040example.com` are what they say; a match maps back to the
 * escape sequences it covers, so a redaction never splits one.
 */

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
 * `raw` with the decoded-text spans replaced, each spanning whole escape sequences; replacements
 * are written as JSON string content (escaped).
 */
export function replaceDecodedSpans(raw: string, decoded: DecodedText, spans: readonly { readonly start: number; readonly end: number; readonly replacement: string }[]): string {
  let out = '';
  let pos = 0;
  for (const sp of spans) {
    if (sp.end <= sp.start) continue;
    const start = decoded.rawStart[sp.start]!;
    const end = decoded.rawEnd[sp.end - 1]!;
    out += raw.slice(pos, start) + JSON.stringify(sp.replacement).slice(1, -1);
    pos = end;
  }
  return out + raw.slice(pos);
}
