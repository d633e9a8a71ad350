import type { SessionContext } from '../pipeline/filter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { ProxyError } from '../protocol/errors.js';
import { asString, keptId } from '../protocol/json.js';

/**
 * Tells the client what a policy did to an event it forwarded, or to the server stream: a notice
 * (SessionContext.notify), never a refusal (a refused event is a `reject` verdict, an `error` event).
 */
export function notifyClient(ctx: SessionContext, notice: ProxyError, by: string): void {
  ctx.notify(notice, by);
}

/** The client event's `event_id` (for `error.event_id`), without parsing when possible. */
export function clientEventId(ev: JsonObject): string | null {
  return asString(ev['event_id']);
}

/** A frame for a rewritten event (the original's `type` is kept by the spread). */
export function toFrame(event: JsonObject): Frame {
  return Frame.rewritten(asString(event['type']) ?? '', event);
}

/**
 * Equality of JSON values (parsed events, compiled policy values: no undefined members, no holes),
 * so an array compares as an object keyed by index. Own members only: a parsed `"__proto__"` member
 * must not match the prototype of the other side.
 */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual((a as JsonObject)[k], (b as JsonObject)[k]));
}

/** A client event a filter let through, waiting to learn the event_id the relay sent it with. */
export interface AwaitingStamp {
  /** The client's own event_id (null: sent without one). */
  readonly eventId: string | null;
  /** The event_id it left with (the relay's `stamped` report); null until then. */
  upstreamId: string | null;
}

/**
 * The relay's `stamped` report for one of `entries`: stamped events leave in the order they were
 * decided, so the first one still unstamped with the same client id is it (one a later filter
 * refused stays unstamped).
 */
export function pairStamp(entries: readonly AwaitingStamp[], clientEventId: string | null, upstreamId: string): void {
  // Entries keep the client's id as `keptId` makes it (a long one as its hash).
  const kept = clientEventId === null ? null : keptId(clientEventId);
  const entry = entries.find((e) => e.upstreamId === null && e.eventId === kept);
  if (entry) entry.upstreamId = upstreamId;
}
