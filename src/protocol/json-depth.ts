import { CLOSE_BRACE, CLOSE_BRACKET, closingQuote, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './json-bytes.js';

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
      const q = closingQuote(buf, i);
      if (q < 0) return false;
      i = q + 1;
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
