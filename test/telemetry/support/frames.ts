import type { AudioMeter } from '../../../src/pipeline/audio-meter.js';
import { Frame } from '../../../src/pipeline/frame.js';
import type { Report } from '../../../src/pipeline/reports.js';
import type { Conversation } from '../../../src/protocol/conversation.js';
import { AUDIO_IN } from '../../../src/protocol/events.js';
import { isOutputAudio } from '../../../src/relay/responses.js';
import type { Scheduler } from '../../../src/telemetry/turns.js';

/** Frame builders, a manual clock and scripted server events for the telemetry tests. */

/** A frame as it comes off the wire: unparsed bytes (so sniffing paths run). */
export function wire(event: { readonly type: string; readonly [k: string]: unknown }): Frame {
  return new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));
}

/**
 * What the relay core does with a client frame the chain let through (RelaySession.forward): a
 * `response.create` leaves with an event_id of its own (`Conversation.stamp`), the view
 * observes what is sent, and the relay reports `create_sent`.
 */
export function forwardClient(conversation: Conversation, frame: Frame, report: (r: Report) => void, fresh: () => string): void {
  if (frame.type !== 'response.create') {
    conversation.observeClient(frame, false);
    return;
  }
  const stamped = conversation.stamp(frame, fresh);
  conversation.observeClient(stamped.frame, false);
  if (stamped.eventId !== null) report({ kind: 'create_sent', eventId: stamped.eventId });
}

/**
 * Feeds a frame the way the relay does: audio frames go to the relay's audio meter (which reports
 * first audio / input start), every other frame to `next` (the filter or tracker under test).
 * Returns the frame so a test can check it was never parsed.
 */
export function relayed(meter: AudioMeter, direction: 'client' | 'server', frame: Frame, now: number, next: (f: Frame) => unknown): Frame {
  if (direction === 'client' && frame.type === AUDIO_IN) meter.input(frame.bytes, now);
  else if (direction === 'server' && isOutputAudio(frame.type)) meter.output(frame.string('response_id'), frame.bytes, now);
  else next(frame);
  return frame;
}

/** `ms` of PCM16 24 kHz silence as base64. */
export function pcmBase64(ms: number, bytesPerMs = 48): string {
  return Buffer.alloc(Math.round(ms * bytesPerMs)).toString('base64');
}

/** A manual clock and scheduler: timers fire only when the test advances time. */
export class ManualTime implements Scheduler {
  t = 1000;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #seq = 0;

  readonly now = (): number => this.t;

  set(ms: number, fn: () => void): unknown {
    const id = ++this.#seq;
    this.#timers.push({ at: this.t + ms, fn, id });
    return id;
  }

  clear(handle: unknown): void {
    this.#timers = this.#timers.filter((x) => x.id !== handle);
  }

  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (!next || next.at > target) break;
      this.#timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = target;
  }
}

export function usage(input: { text?: number; audio?: number; cachedText?: number; cachedAudio?: number }, output: { text?: number; audio?: number }) {
  const it = input.text ?? 0;
  const ia = input.audio ?? 0;
  const ct = input.cachedText ?? 0;
  const ca = input.cachedAudio ?? 0;
  const ot = output.text ?? 0;
  const oa = output.audio ?? 0;
  return {
    total_tokens: it + ia + ot + oa,
    input_tokens: it + ia,
    output_tokens: ot + oa,
    input_token_details: {
      text_tokens: it,
      audio_tokens: ia,
      image_tokens: 0,
      cached_tokens: ct + ca,
      cached_tokens_details: { text_tokens: ct, audio_tokens: ca, image_tokens: 0 },
    },
    output_token_details: { text_tokens: ot, audio_tokens: oa },
  };
}

/** Server events for one response with `deltas` audio chunks of `chunkMs`. */
export const ev = {
  sessionCreated: (turnDetection: unknown = { type: 'server_vad', silence_duration_ms: 500, interrupt_response: true }) => ({
    type: 'session.created',
    event_id: 'event_1',
    session: {
      id: 'sess_1',
      model: 'gpt-realtime',
      audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: turnDetection }, output: { format: { type: 'audio/pcm', rate: 24000 } } },
    },
  }),
  sessionUpdated: (turnDetection: unknown) => ({
    type: 'session.updated',
    event_id: 'event_2',
    session: { id: 'sess_1', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: turnDetection } } },
  }),
  append: (ms: number) => ({ type: 'input_audio_buffer.append', audio: pcmBase64(ms) }),
  speechStarted: (audioStartMs: number, itemId = 'item_u1') => ({ type: 'input_audio_buffer.speech_started', event_id: 'e', audio_start_ms: audioStartMs, item_id: itemId }),
  speechStopped: (audioEndMs: number, itemId = 'item_u1') => ({ type: 'input_audio_buffer.speech_stopped', event_id: 'e', audio_end_ms: audioEndMs, item_id: itemId }),
  committed: (itemId = 'item_u1') => ({ type: 'input_audio_buffer.committed', event_id: 'e', item_id: itemId, previous_item_id: null }),
  responseCreated: (id: string, extra: Record<string, unknown> = {}) => ({
    type: 'response.created',
    event_id: 'e',
    response: { id, object: 'realtime.response', status: 'in_progress', conversation_id: 'conv_1', output_modalities: ['audio'], usage: null, ...extra },
  }),
  outputItemAdded: (responseId: string, itemId: string, type = 'message') => ({
    type: 'response.output_item.added',
    event_id: 'e',
    response_id: responseId,
    output_index: 0,
    item: { id: itemId, type, status: 'in_progress' },
  }),
  audioDelta: (responseId: string, ms: number, itemId = 'item_a1') => ({
    type: 'response.output_audio.delta',
    event_id: 'e',
    response_id: responseId,
    item_id: itemId,
    output_index: 0,
    content_index: 0,
    delta: pcmBase64(ms),
  }),
  transcriptDelta: (responseId: string, delta: string) => ({
    type: 'response.output_audio_transcript.delta',
    event_id: 'e',
    response_id: responseId,
    item_id: 'item_a1',
    output_index: 0,
    content_index: 0,
    delta,
  }),
  functionArgsDone: (responseId: string, callId: string, name: string) => ({
    type: 'response.function_call_arguments.done',
    event_id: 'e',
    response_id: responseId,
    item_id: 'item_fc',
    output_index: 0,
    call_id: callId,
    name,
    arguments: '{}',
  }),
  responseDone: (id: string, status = 'completed', extra: Record<string, unknown> = {}) => ({
    type: 'response.done',
    event_id: 'e',
    response: { id, object: 'realtime.response', status, status_details: null, output: [], usage: usage({ text: 10, audio: 20 }, { text: 5, audio: 15 }), ...extra },
  }),
};
