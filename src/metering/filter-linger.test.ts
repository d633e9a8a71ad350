/**
 * The client left with audio in the input buffer under turn detection (twelfth session, 2026-12-06):
 * metering clears the buffer upstream and asks the relay to keep reading (`awaitingUpstream`) until
 * the upstream's `cleared` and any response due for a turn server VAD committed before it, so what
 * the client sent last is billed as it ran instead of by the close's estimate (which stays for an
 * upstream that does not answer). End to end: test/metering/redteam-money-3.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { client, created, server, session, setup, type Setup } from '../../test/metering/filter-harness.js';
import type { Filter } from '../pipeline/filter.js';

const SECOND = 48_000;
const append = (bytes: number) => ({ type: 'input_audio_buffer.append', audio: Buffer.alloc(bytes).toString('base64') });
const vadSession = (td: unknown = { type: 'server_vad' }, tx: unknown = { model: 'whisper-1' }) => ({
  type: 'session.updated',
  session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: tx, turn_detection: td } } },
});
const close = (f: Filter) => f.onClose!({ initiator: 'client', code: 1000, reason: '' });
const billed = (s: Setup) => s.records.map((r) => [r.source, r.ref, r.settledBy]);

/** A session whose client sent speech (speech_started read) and left: what metering sent upstream. */
function leftMidSpeech(td?: unknown, query?: Record<string, string>) {
  const s = setup();
  const { ctx, f } = session(s, null, 'gpt-realtime', query);
  server(f, vadSession(td));
  ctx.time = 1000;
  client(f, append(SECOND));
  server(f, { type: 'input_audio_buffer.speech_started', item_id: 'item_1', audio_start_ms: 100 });
  ctx.time = 2000;
  f.onClientGone!();
  return { s, ctx, f, clears: ctx.upstream.filter((e) => e.type === 'input_audio_buffer.clear') };
}

describe('metering: the client left with audio in the input buffer', () => {
  it('sends one input_audio_buffer.clear with an event_id of its own and awaits the upstream until its cleared; then nothing is billed', () => {
    const { s, f, ctx, clears } = leftMidSpeech();
    expect(clears).toEqual([{ type: 'input_audio_buffer.clear', event_id: expect.stringMatching(/.+/) }]);
    expect(ctx.upstream).toHaveLength(1);
    expect(f.awaitingUpstream!()).toBe(true);
    server(f, { type: 'input_audio_buffer.cleared' });
    expect(f.awaitingUpstream!()).toBe(false);
    close(f);
    expect(billed(s)).toEqual([]);
  });

  it('a turn server VAD committed before the clear: awaited until its response starts; the response is billed from its done', () => {
    const { s, f } = leftMidSpeech();
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
    server(f, { type: 'input_audio_buffer.cleared' });
    // The response server VAD starts for the turn is due: still awaited.
    expect(f.awaitingUpstream!()).toBe(true);
    server(f, created('resp_1'));
    expect(f.awaitingUpstream!()).toBe(false);
    server(f, { type: 'response.done', response: { id: 'resp_1', status: 'cancelled', conversation_id: 'conv_1', usage: { total_tokens: 10, input_tokens: 10, output_tokens: 0, input_token_details: { text_tokens: 10, audio_tokens: 0, cached_tokens: 0 }, output_token_details: { text_tokens: 0, audio_tokens: 0 } } } });
    server(f, { type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_1', content_index: 0, transcript: 'x', usage: { type: 'duration', seconds: 1 } });
    close(f);
    expect(billed(s)).toEqual([
      ['response', 'resp_1', 'response.done'],
      ['transcription', 'item_1', 'transcription.completed'],
    ]);
  });

  it('the upstream refuses the clear (an error naming its event_id): no longer awaited; the close bills the estimate', () => {
    const { s, f, clears } = leftMidSpeech();
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: clears[0]!['event_id'] } });
    expect(f.awaitingUpstream!()).toBe(false);
    close(f);
    expect(s.records.map((r) => [r.source, r.estimated])).toEqual([
      ['response', true],
      ['transcription', true],
    ]);
  });

  it('no answer before the relay stops lingering: the close bills the estimate, as before the linger', () => {
    const { s, f } = leftMidSpeech();
    expect(f.awaitingUpstream!()).toBe(true);
    close(f);
    expect(f.awaitingUpstream!()).toBe(false);
    expect(s.records.map((r) => [r.source, r.ref, r.estimated])).toEqual([
      ['response', 'vad:unread-response', true],
      ['transcription', 'item_1', true],
    ]);
  });

  it('nothing in the buffer: no clear, nothing awaited; a cleared read then changes nothing', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    // Nothing in the buffer: no clear, nothing awaited; a cleared read then changes nothing.
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
    expect(f.awaitingUpstream!()).toBe(false);
    server(f, { type: 'input_audio_buffer.cleared' });
    expect(f.awaitingUpstream!()).toBe(false);
  });

  it('less audio than a turn (under 100 ms, no speech heard): nothing the upstream could commit, nothing sent', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    // 80 ms of PCM16 at 24 kHz; the estimate's bound counts the append's JSON framing too.
    client(f, append(3_840));
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
    client(f, append(1_920));
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
  });

  it('turn detection off: nothing the upstream commits by itself, nothing sent, nothing awaited', () => {
    const { f, ctx } = leftMidSpeech(null);
    expect(ctx.upstream).toEqual([]);
    expect(f.awaitingUpstream!()).toBe(false);
  });

  it("a call's sideband: nothing sent (the call ends before its sideband closes)", () => {
    const s = setup();
    const { ctx, f } = session(s);
    (ctx as unknown as { callId: string }).callId = 'rtc_1';
    server(f, vadSession());
    client(f, append(SECOND));
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
    expect(f.awaitingUpstream!()).toBe(false);
  });

  it('closed already: nothing sent, nothing awaited', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    client(f, append(SECOND));
    close(f);
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
    expect(f.awaitingUpstream!()).toBe(false);
  });
});
