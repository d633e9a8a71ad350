import type { SessionContext } from '../pipeline/filter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { ProxyError } from '../protocol/errors.js';
import { asString } from '../protocol/json.js';

/** Sends a non-fatal proxy notice (a Realtime `error` event) to the client. */
export function notifyClient(ctx: SessionContext, error: ProxyError, by: string): void {
  ctx.sendClient(error.toEvent(ctx.nextEventId()), by);
}

/** The client event's `event_id` (for `error.event_id`), without parsing when possible. */
export function clientEventId(ev: JsonObject): string | null {
  return asString(ev['event_id']);
}

/** A frame for a rewritten event (the original's `type` is kept by the spread). */
export function toFrame(event: JsonObject): Frame {
  return Frame.rewritten(asString(event['type']) ?? '', event);
}
