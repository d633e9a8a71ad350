/**
 * Red team (thirteenth session, 2026-12-06): the `cleared` metering awaits when the client left with
 * audio in the input buffer is the answer to its own clear only once every client clear before it
 * was answered (#clientClears). End to end: test/metering/redteam-money-4.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { client, created, done, server, session, setup, usage } from '../../test/metering/filter-harness.js';
import { MAX_SETTLED_IDS } from './settled-ids.js';

const SECOND = 48_000;
const append = (bytes: number) => ({ type: 'input_audio_buffer.append', audio: Buffer.alloc(bytes).toString('base64') });
const vadSession = {
  type: 'session.updated',
  session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: { type: 'server_vad' } } } },
};

/** A metered session under server VAD: its ledger setup, the fake session and the filter. */
function vadMeter() {
  const s = setup();
  const { ctx, f } = session(s);
  server(f, vadSession);
  return { s, ctx, f };
}

describe('metering: client clears and the clear sent when the client left', () => {
  it('a client clear not answered when the client left: the first cleared is its answer, still awaited; the second is the proxy\'s', () => {
    const { ctx, f } = vadMeter();
    client(f, { type: 'input_audio_buffer.clear' });
    client(f, append(SECOND));
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
    expect(f.awaitingUpstream!()).toBe(true);
    server(f, { type: 'input_audio_buffer.cleared' });
    // The second of audio after the client's clear is still in the buffer: the proxy's clear is not answered yet.
    expect(f.awaitingUpstream!()).toBe(true);
    server(f, { type: 'input_audio_buffer.cleared' });
    expect(f.awaitingUpstream!()).toBe(false);
  });

  it('client clears answered before the client left: the next cleared is the proxy\'s', () => {
    const { f } = vadMeter();
    client(f, { type: 'input_audio_buffer.clear' });
    client(f, { type: 'input_audio_buffer.clear' });
    server(f, { type: 'input_audio_buffer.cleared' });
    server(f, { type: 'input_audio_buffer.cleared' });
    client(f, append(SECOND));
    f.onClientGone!();
    expect(f.awaitingUpstream!()).toBe(true);
    server(f, { type: 'input_audio_buffer.cleared' });
    expect(f.awaitingUpstream!()).toBe(false);
  });

  it('a turn dropped by a client clear not answered yet when the client left: the proxy clears and awaits as for audio in the buffer (VAD may commit it before reading the clear)', () => {
    const { ctx, f } = vadMeter();
    client(f, append(SECOND));
    client(f, { type: 'input_audio_buffer.clear' });
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
    expect(f.awaitingUpstream!()).toBe(true);
    // The turn before the client's clear, committed before the upstream read it: its response is due.
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
    server(f, { type: 'input_audio_buffer.cleared' });
    server(f, { type: 'input_audio_buffer.cleared' });
    expect(f.awaitingUpstream!()).toBe(true);
  });

  it('control: the same clear answered before the client left, nothing after it: nothing sent, nothing awaited', () => {
    const { ctx, f } = vadMeter();
    client(f, append(SECOND));
    client(f, { type: 'input_audio_buffer.clear' });
    server(f, { type: 'input_audio_buffer.cleared' });
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
    expect(f.awaitingUpstream!()).toBe(false);
  });

  it('control: a client clear of less than a turn (no speech heard), not answered yet: nothing sent, nothing awaited', () => {
    const { ctx, f } = vadMeter();
    client(f, append(1_920));
    client(f, { type: 'input_audio_buffer.clear' });
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
    expect(f.awaitingUpstream!()).toBe(false);
  });
});

describe('metering: one response, one bill', () => {
  // Found 2026-12-06 (thirteenth session): the relay's double linger at a proxy close cancelled a
  // response twice, and an upstream that answered each cancel with a response.done had it billed
  // twice. The API sends one response.done per response; a second is not billed again.
  it('a second response.done for a response is logged, not billed; another response still is', () => {
    const s = setup();
    const { ctx, f } = session(s);
    expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 500, 0), 'cancelled'));
    server(f, done('resp_1', usage(1000, 0, 500, 0), 'cancelled'));
    server(f, done('resp_2', usage(1000, 0, 0, 0)));
    expect(s.records.map((r) => r.ref)).toEqual(['resp_1', 'resp_2']);
    expect(ctx.reports.filter((r) => r.kind === 'usage')).toHaveLength(2);
  });
});

/** Survivors of the thirteenth session's mutation run on these lines (each test below kills at least one, checked by hand). */
describe('metering: a client clear that dropped a turn (#turnBeforeClientClear), at its edges', () => {
  it('exactly a turn\'s least audio (100 ms by the estimate\'s bound) before the client\'s clear: leaving before its answer sends the proxy\'s clear; 20 ms less, nothing', () => {
    // As in filter-twelfth-survivors: 4,764 bytes of PCM16 in one append are exactly 100 ms by the bound.
    const { ctx, f } = vadMeter();
    client(f, append(4_764));
    client(f, { type: 'input_audio_buffer.clear' });
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
    const b = vadMeter();
    client(b.f, append(4_764 - 960));
    client(b.f, { type: 'input_audio_buffer.clear' });
    b.f.onClientGone!();
    expect(b.ctx.upstream).toEqual([]);
  });

  it('speech heard, little audio, then the client\'s clear: leaving before its answer sends the proxy\'s clear', () => {
    const { ctx, f } = vadMeter();
    client(f, append(960));
    server(f, { type: 'input_audio_buffer.speech_started', audio_start_ms: 0, item_id: 'item_1' });
    client(f, { type: 'input_audio_buffer.clear' });
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
  });

  it('the flag goes with the clear that set it: answered, a later clear of an empty buffer leaves nothing to await', () => {
    const { ctx, f } = vadMeter();
    client(f, append(SECOND));
    client(f, { type: 'input_audio_buffer.clear' });
    server(f, { type: 'input_audio_buffer.cleared' });
    client(f, { type: 'input_audio_buffer.clear' });
    f.onClientGone!();
    expect(ctx.upstream).toEqual([]);
  });

  it('a cleared nobody asked for (no client clear counted, none of the proxy\'s) changes nothing: the audio after it is still owed a clear', () => {
    const { ctx, f } = vadMeter();
    client(f, append(SECOND));
    server(f, { type: 'input_audio_buffer.cleared' });
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
  });
});

describe('metering: the responses billed once (#settledIds), at their bound', () => {
  it('a response.done without a response id bills nothing', () => {
    const s = setup();
    const { f } = session(s);
    server(f, { type: 'response.done', response: { status: 'completed', conversation_id: 'conv_1', usage: usage(1000, 0, 500, 0) } });
    expect(s.records).toEqual([]);
  });

  it(`the last ${MAX_SETTLED_IDS} ids are remembered: after ${MAX_SETTLED_IDS + 1} responses the first one's repeat is billed again, the second one's is not`, () => {
    const s = setup();
    const { f } = session(s);
    for (let i = 1; i <= MAX_SETTLED_IDS + 1; i++) server(f, done(`resp_${i}`, usage(10, 0, 1, 0)));
    server(f, done('resp_2', usage(10, 0, 1, 0)));
    server(f, done('resp_1', usage(10, 0, 1, 0)));
    const refs = s.records.map((r) => r.ref);
    expect(refs).toHaveLength(MAX_SETTLED_IDS + 2);
    expect(refs.filter((r) => r === 'resp_1')).toHaveLength(2);
    expect(refs.filter((r) => r === 'resp_2')).toHaveLength(1);
  });
});
