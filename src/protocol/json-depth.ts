const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * True when the JSON text nests objects/arrays deeper than `maxDepth`. One pass over the bytes,
 * strings skipped with native `indexOf`: deep documents are refused before anything parses,
 * clones or serialises them recursively (JSON.stringify and recursive filters can overflow the stack).
 * Malformed input answers false: the parser reports it.
 */
export function exceedsJsonDepth(bytes: Uint8Array, maxDepth: number): boolean {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let depth = 0;
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const c = buf[i]!;
    if (c === QUOTE) {
      // Skip the string: find the closing quote that is not escaped.
      let j = i + 1;
      for (;;) {
        const q = buf.indexOf(QUOTE, j);
        if (q < 0) return false;
        let backslashes = 0;
        for (let k = q - 1; k > i && buf[k] === BACKSLASH; k--) backslashes++;
        if ((backslashes & 1) === 0) {
          i = q + 1;
          break;
        }
        j = q + 1;
      }
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
    i++;
  }
  return false;
}
