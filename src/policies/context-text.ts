import { contextEdge } from './normalize.js';

/** Pieces of a text kept as context for the next one: detached from the text they came from. */

/**
 * The end of a text as context for the next one (with the separator items get): its last `keep`
 * characters as the fold reads them (normalize.ts contextEdge: padding the fold drops or merges does
 * not push a word out).
 */
export const tailOf = (text: string, keep: number): string => (text.length > keep ? detached(contextEdge(text, keep, 'tail')) : text) + ' ';

/**
 * A copy of a piece of a text. V8 keeps a slice of a string as a view of the whole: context kept
 * for the session (an item's start and end) would keep every long text it came from alive (until
 * 2026-12-05: the last 128 client items whole, up to a frame each). UTF-16 round-trips exactly.
 */
export const detached = (piece: string): string => Buffer.from(piece, 'utf16le').toString('utf16le');
/** The start of a text, kept apart from it. */
export const headOf = (text: string, keep: number): string => (text.length > keep ? detached(contextEdge(text, keep, 'head')) : text);
