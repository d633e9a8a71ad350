import type { ConversationItem } from 'openai/resources/realtime/realtime';
import type { AudioFormatKind } from './audio.js';
import type { Wire } from './wire.js';

/** Audio attached to one content part, kept as wire bytes in the format it arrived or left in. */
export interface PartAudio {
  bytes: Buffer;
  kind: AudioFormatKind;
  ms: number;
}

/**
 * A conversation item as the simulator stores it: the wire item (without audio bytes, as in
 * `conversation.item.added/done`) plus the audio of each content part, for retrieve and billing.
 */
export interface SimItem {
  readonly id: string;
  wire: Wire<ConversationItem>;
  /** Indexed like `wire.content`; null where the part has no audio. */
  audio: Array<PartAudio | null>;
  /** Bumped when the item changes (truncation), which breaks the prompt-cache prefix. */
  version: number;
}

export function audioMsOf(item: SimItem): number {
  let ms = 0;
  for (const a of item.audio) if (a) ms += a.ms;
  return ms;
}

/** The item with its audio bytes inlined as base64, as `conversation.item.retrieved` carries it. */
export function withAudio(item: SimItem): Wire<ConversationItem> {
  const wire = structuredClone(item.wire);
  if (wire.type === 'message' && wire.role !== 'system' && item.audio.some((a) => a !== null)) {
    wire.content.forEach((part, i) => {
      const audio = item.audio[i];
      if (audio) part.audio = audio.bytes.toString('base64');
    });
  }
  return wire;
}
