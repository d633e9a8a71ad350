import type { Frame, JsonObject } from '../pipeline/frame.js';
import type { RealtimeServerEvent } from '../protocol/events.js';
import type { Source } from './matchers.js';
import { asArray, asObject, asString } from '../protocol/json.js';
import { checkedMembers } from '../protocol/checked-members.js';
import type { Stream } from './guardrail-scans.js';

/** Reading and rewriting a streamed text's events: a delta's ids and text, its stream's key, a held delta, the text a response shows. */

/**
 * A stream's complete text as `response.done` shows it (its item in `response.output`: the content
 * part's transcript or text, a call's arguments); null when the response does not show it.
 */
export function streamedTextIn(response: JsonObject | null, stream: Stream): string | null {
  const item = asArray(response?.['output'])
    ?.map(asObject)
    .find((i) => i !== null && i['id'] === stream.itemId);
  if (!item) return null;
  if (item['type'] === 'function_call' || item['type'] === 'mcp_call') return asString(item['arguments']);
  const part = asObject(asArray(item['content'])?.[typeof stream.ids['content_index'] === 'number' ? stream.ids['content_index'] : 0]);
  return asString(part?.['transcript']) ?? asString(part?.['text']);
}

/**
 * A streamed event with its text replaced (redacted, or partly held back). Token-level copies of
 * the text go with it: `logprobs` (input transcripts, with `include:
 * ["item.input_audio_transcription.logprobs"]`) lists every token with its text and UTF-8 bytes,
 * so it would carry what the replacement removed; it is dropped whenever the text is changed.
 */
export function withText(ev: JsonObject, field: string, text: string): JsonObject {
  const out: JsonObject = { ...ev, [field]: text };
  delete out['logprobs'];
  return out;
}

/** The delta event that releases a stream's last held text (before its `.done`). */
export function heldDelta(stream: Stream, eventId: string, text: string): RealtimeServerEvent {
  const event: JsonObject = { type: stream.deltaType, event_id: eventId, ...stream.ids, delta: text };
  // A delta of the stream's own type with the upstream's own ids (see STREAMS).
  return event as unknown as RealtimeServerEvent;
}

/** What a streamed delta is read for: the ids that name its stream, and its text. */
interface DeltaMembers {
  readonly responseId: string;
  readonly itemId: string;
  /** `content_index` when a number, else 0. */
  readonly part: number;
  readonly delta: string;
}

const DELTA_KEYS: readonly string[] = ['response_id', 'item_id', 'content_index', 'delta'];

/** A delta's members as the parsed event has them (a member that is not a string reads as ''). */
export function deltaIds(ev: JsonObject): DeltaMembers {
  const part = ev['content_index'];
  return { responseId: asString(ev['response_id']) ?? '', itemId: asString(ev['item_id']) ?? '', part: typeof part === 'number' ? part : 0, delta: asString(ev['delta']) ?? '' };
}

/**
 * A delta's members, read in one validating walk of its bytes when the frame is not parsed yet and
 * the walk reads it exactly as JSON.parse would (checked-members.ts); else from the parsed event (a
 * malformed frame throws there, and the chain drops it, as before).
 */
export function deltaMembers(frame: Frame): DeltaMembers {
  if (!frame.parsed) {
    const m = checkedMembers(frame.bytes, DELTA_KEYS);
    if (m !== undefined) {
      const text = (k: number) => (m.stringStart[k]! < 0 ? '' : frame.bytes.toString('utf8', m.stringStart[k], m.stringEnd[k]));
      const part = m.numbers[2]!;
      return { responseId: text(0), itemId: text(1), part: Number.isNaN(part) ? 0 : part, delta: text(3) };
    }
  }
  return deltaIds(frame.json());
}

/** The key of a streamed text's stream. Translation-session transcripts carry no ids: one stream per event type. */
export function streamKeyOf(source: Source, ids: DeltaMembers, type: string): string {
  return ids.responseId || ids.itemId ? `${source}\u0000${ids.responseId}\u0000${ids.itemId}\u0000${ids.part}` : `${source}\u0000${type}`;
}
