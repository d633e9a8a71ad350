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
