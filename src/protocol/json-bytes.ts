/**
 * Byte-level JSON primitives shared by the scanners that read frames without parsing them
 * (sniff.ts: top-level fields; strict-json.ts: duplicate members; json-depth.ts: nesting).
 */

export const QUOTE = 0x22;
export const BACKSLASH = 0x5c;
export const COLON = 0x3a;
export const COMMA = 0x2c;
export const OPEN_BRACE = 0x7b;
export const CLOSE_BRACE = 0x7d;
export const OPEN_BRACKET = 0x5b;
export const CLOSE_BRACKET = 0x5d;

export function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Index of the closing quote of the string whose opening quote is at `open`, or -1 when it is
 * unterminated. Native `indexOf` finds each candidate; an odd run of backslashes before it escapes it.
 */
export function closingQuote(buf: Buffer, open: number): number {
  let i = open + 1;
  for (;;) {
    const q = buf.indexOf(QUOTE, i);
    if (q < 0) return -1;
    let b = q - 1;
    while (b > open && buf[b] === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
    i = q + 1;
  }
}

const EQUALS = 0x3d;

/**
 * The bytes the base64 text at [start, end) of `buf` decodes to, without decoding it: Node's own count
 * (`Buffer.byteLength(s, 'base64')`: up to two `=` off the end, then 3/4 of what is left, rounded down),
 * so never negative, whatever the text (until 2026-12-07 the audio meter's count read −1 for a value
 * of `=` or `==`).
 */
export function base64DecodedBytes(buf: Buffer, start: number, end: number): number {
  let n = end - start;
  if (n > 0 && buf[start + n - 1] === EQUALS) n--;
  if (n > 1 && buf[start + n - 1] === EQUALS) n--;
  return (n * 3) >>> 2;
}
