/**
 * The one reading of a client control frame.
 *
 * `JSON.parse` keeps the last of two equal members; other parsers keep the first or refuse. A
 * frame with `{"session":{…checked…},"session":{…not checked…}}` (or two `instructions` deep inside
 * `session`, or a key spelt once plainly and once with `\u` escapes) could show the proxy one
 * event and the upstream another. So a client frame that a filter parses must have unique member
 * names in every object, at every depth; the proxy refuses it otherwise, and forwards what it
 * parsed (re-serialised), never the original bytes.
 */

import { ProxyError } from './errors.js';
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, closingQuote, COLON, COMMA, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './json-bytes.js';


/**
 * Deepest nesting a client control frame may have. Realtime events nest a dozen levels (a tool's
 * JSON schema a few more); a bound keeps every recursive consumer (`JSON.stringify`,
 * `structuredClone`, filters) far from the stack limit.
 */
export const MAX_CONTROL_DEPTH = 128;

/** Thrown by `parseStrict` for valid JSON with a repeated member name, or nested too deeply. */
export class DuplicateMemberError extends Error {
  override readonly name = 'DuplicateMemberError';
  /** Where, e.g. `session.instructions` or `response.input[].content[].text`. */
  readonly path: string;
  readonly reason: 'duplicate_member' | 'too_deep';
  /** The event's `event_id` when it has one reading (for `error.event_id`), else null. */
  readonly eventId: string | null;
  constructor(path: string, reason: 'duplicate_member' | 'too_deep' = 'duplicate_member', eventId: string | null = null) {
    super(reason === 'too_deep' ? `the value at "${path}" is nested more than ${MAX_CONTROL_DEPTH} levels deep` : `the member "${path}" occurs more than once`);
    this.path = path;
    this.reason = reason;
    this.eventId = eventId;
  }
}

function decodeKey(buf: Buffer, open: number, close: number): string {
  // Escaped keys (`"ty\u0070e"`) are decoded by the real parser, so `"type"` and `"ty\u0070e"` collide.
  if (buf.subarray(open + 1, close).includes(BACKSLASH)) return JSON.parse(buf.toString('utf8', open, close + 1)) as string;
  return buf.toString('utf8', open + 1, close);
}

const PATH_SEGMENT_MAX = 64;

interface Level {
  /** Member names seen so far; null for an array. */
  readonly keys: Set<string> | null;
  /** The path of this value, for the error message. */
  readonly path: string;
  /** The member name whose value is being read (objects only). */
  key: string;
}

function childPath(parent: Level | undefined): string {
  if (!parent) return '';
  if (parent.keys === null) return `${parent.path}[]`;
  const key = parent.key.length > PATH_SEGMENT_MAX ? `${parent.key.slice(0, PATH_SEGMENT_MAX)}…` : parent.key;
  return parent.path ? `${parent.path}.${key}` : key;
}

export interface MemberProblem {
  readonly reason: 'duplicate_member' | 'too_deep';
  readonly path: string;
  readonly eventId?: string | null;
}

/**
 * The first repeated member name in valid JSON `buf` (or the first value nested deeper than
 * MAX_CONTROL_DEPTH), or null when every object's names are unique. Iterative; strings,
 * including long base64 values, are skipped with native `indexOf`.
 */
export function findMemberProblem(buf: Buffer): MemberProblem | null {
  const stack: Level[] = [];
  let expectKey = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      const close = closingQuote(buf, i);
      if (close < 0) return null;
      const top = stack[stack.length - 1];
      if (expectKey && top?.keys) {
        const key = decodeKey(buf, i, close);
        if (top.keys.has(key)) {
          top.key = key;
          return { reason: 'duplicate_member', path: childPath(top) };
        }
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
      i = close;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      const parent = stack[stack.length - 1];
      if (stack.length >= MAX_CONTROL_DEPTH) return { reason: 'too_deep', path: childPath(parent) };
      stack.push({ keys: c === OPEN_BRACE ? new Set() : null, path: childPath(parent), key: '' });
      expectKey = c === OPEN_BRACE;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      stack.pop();
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = stack[stack.length - 1]?.keys != null;
    } else if (c === COLON) {
      expectKey = false;
    }
  }
  return null;
}

/**
 * Parses a client frame: `SyntaxError` when it is not JSON, `DuplicateMemberError` when an object
 * repeats a member name at any depth.
 */
export function parseStrict(buf: Buffer): unknown {
  const value: unknown = JSON.parse(buf.toString('utf8'));
  if (value !== null && typeof value === 'object') {
    const problem = findMemberProblem(buf);
    if (problem !== null) {
      const id = Array.isArray(value) ? undefined : (value as Record<string, unknown>)['event_id'];
      // A repeated event_id has no single reading: it is not echoed.
      throw new DuplicateMemberError(problem.path, problem.reason, typeof id === 'string' && problem.path !== 'event_id' ? id : null);
    }
  }
  return value;
}

/** The client error for a frame `parseStrict` refused: `invalid_event`, the path as `param`. */
export function memberProblemError(eventType: string | null, problem: MemberProblem): ProxyError {
  const what = eventType ? `The ${eventType} event` : 'The event';
  const message =
    problem.reason === 'too_deep'
      ? `${what} nests deeper than ${MAX_CONTROL_DEPTH} levels at '${problem.path}'.`
      : `${what} has the member '${problem.path}' more than once; every member name must be unique.`;
  return new ProxyError('invalid_event', { message, param: problem.path, eventId: problem.eventId ?? null, details: { reason: problem.reason } });
}
