/**
 * Mutation survivors of the 2026-12-06 metering changes (commit 2073820: references to a streaming
 * response reserve its worst-case output; a server-VAD turn whose committed is never read is billed
 * at the close; transcription billed by length counts its audio tokens). Each test pins a behaviour
 * a surviving mutant of src/metering/filter.ts changed; the equivalent ones are in
 * test/mutation/equivalent.json. Driven as src/metering/filter.test.ts drives the filter.
 */
import { describe, expect, it, vi } from 'vitest';
import { client, created, server, session, setup, T0, appendFrame, transcribed, AsyncLedger, probe, references, outputItemAdded, startResponse, reservedNow, type Setup } from '../../test/metering/filter-harness.js';
import type { Filter } from '../pipeline/filter.js';

const CAPPED = { dailyUsd: '1000' };
const ref = references;
const added = outputItemAdded;
const start = startResponse;
// gpt-realtime per token, in nanos: text in 4,000, audio in 32,000, text out 16,000.
const TEXT_IN = 4_000;
const AUDIO_IN = 32_000;
const TEXT_OUT = 16_000;
/** A text probe (1 token out, 8 of prompt) reading a running response's output of `tokens`, one item. */
const readingOutput = (tokens: number, textOnly: boolean) =>
  textOnly ? { tokens: tokens + 8 + 8 + 1, nanos: (tokens + 16) * TEXT_IN + TEXT_OUT } : { tokens: tokens + 8 + 8 + 1, nanos: tokens * AUDIO_IN + 16 * TEXT_IN + TEXT_OUT };

describe('metering survivors: output of responses still running', () => {
  it('an audio response counts framing per item (two items: 16)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    start(f, 'resp_1', { max_output_tokens: 50 });
    server(f, added('resp_1', 'item_a'));
    server(f, added('resp_1', 'item_b'));
    expect(probe(s, f, ref('item_a', 'item_b'))).toEqual({ tokens: 50 + 16 + 8 + 1, nanos: 50 * AUDIO_IN + 24 * TEXT_IN + TEXT_OUT });
  });

  it('"inf" while a switch to a model with a larger maximum is in flight: the larger maximum', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    // gpt-realtime's maximum output is 4,096, gpt-realtime-2's 32,000.
    expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-2' } }).kind).toBe('continue');
    start(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 'inf' });
    server(f, added('resp_1', 'item_a'));
    expect(probe(s, f, ref('item_a')).tokens).toBe(32_000 + 8 + 8 + 1);
  });

  it('a create waiting for its response.created: out of band, nothing; in the conversation and text only, its output as text', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    expect(client(f, { type: 'response.create', event_id: 'c_oob', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 70 } }).kind).toBe('continue');
    expect(client(f, { type: 'response.create', event_id: 'c_oob2', response: { conversation: 'none', input: [], output_modalities: ['text'], max_output_tokens: 70 } }).kind).toBe('continue');
    expect(probe(s, f, {})).toEqual({ tokens: 8 + 1, nanos: 8 * TEXT_IN + TEXT_OUT });
    expect(client(f, { type: 'response.create', event_id: 'c_wait', response: { output_modalities: ['text'], max_output_tokens: 30 } }).kind).toBe('continue');
    expect(probe(s, f, {})).toEqual({ tokens: 38 + 8 + 1, nanos: (38 + 8) * TEXT_IN + TEXT_OUT });
  });

  it('a running response whose reservation the ledger has not answered yet counts the session model\'s maximum output, as audio', async () => {
    // Synchronous ledger: the server-started response holds its reservation (4,096 as audio) when the create reads the conversation.
    const sync = setup();
    const a = session(sync, CAPPED);
    server(a.f, created('resp_vad'));
    expect(client(a.f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1 } }).kind).toBe('continue');
    const expected = reservedNow(sync);
    // Asynchronous ledger: the create is read while the response's reservation is still on its way.
    const s = setup({}, () => T0, (l) => new AsyncLedger(l));
    const b = session(s, CAPPED);
    const startedV = server(b.f, created('resp_vad'));
    const createV = client(b.f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    expect((await startedV).kind).toBe('continue');
    expect((await createV).kind).toBe('continue');
    expect(reservedNow(s)).toEqual(expected);
    expect(expected.tokens).toBeGreaterThan(4096);
  });

  describe('a response whose create\'s reservation expired before its response.created', () => {
    /** The create, its reservation expired, the response.created (max_output_tokens not echoed), an item, and a reference to it. */
    function expiredThenRead(response: Record<string, unknown>, echo: Record<string, unknown>): { nanos: number; tokens: number } {
      vi.useFakeTimers();
      const s = setup();
      const { f } = session(s, CAPPED);
      expect(client(f, { type: 'response.create', event_id: 'c_1', response }).kind).toBe('continue');
      vi.advanceTimersByTime(15_000);
      expect(reservedNow(s)).toEqual({ nanos: 0, tokens: 0 });
      server(f, created('resp_1', { max_output_tokens: undefined, ...echo }));
      server(f, added('resp_1', 'item_a'));
      return probe(s, f, ref('item_a'));
    }

    it('keeps the larger of its create\'s output limit and its own', () => {
      // The create asked 100; the response runs at the session's ("inf": 4,096).
      expect(expiredThenRead({ output_modalities: ['text'], max_output_tokens: 100 }, { output_modalities: ['text'] })).toEqual(readingOutput(4096, true));
    });

    it('text only when both the create and the response are text only', () => {
      expect(expiredThenRead({ output_modalities: ['text'], max_output_tokens: 'inf' }, { output_modalities: ['text'] })).toEqual(readingOutput(4096, true));
    });

    it('as audio when both may speak', () => {
      expect(expiredThenRead({ max_output_tokens: 'inf' }, {})).toEqual(readingOutput(4096, false));
    });

    it('as audio when only the create was text only', () => {
      expect(expiredThenRead({ output_modalities: ['text'], max_output_tokens: 'inf' }, {})).toEqual(readingOutput(4096, false));
    });
  });
});

describe('metering survivors: a server-VAD turn whose committed is never read', () => {
  const SECOND = 48_000;
  const audio = (bytes: number) => Buffer.alloc(bytes).toString('base64');
  const append = (bytes: number) => ({ type: 'input_audio_buffer.append', audio: audio(bytes) });
  /** The estimate's bound of a buffer of these appends (wire bytes, framing included). */
  const bufferMsOf = (...bytes: number[]) => Math.ceil((bytes.reduce((n, b) => n + appendFrame(audio(b)).size, 0) * 3) / 4 / 48);
  const vadSession = (td: unknown = { type: 'server_vad', prefix_padding_ms: 200 }, tx: unknown = { model: 'whisper-1' }) => ({
    type: 'session.updated',
    session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: tx, turn_detection: td } } },
  });
  const close = (f: Filter) => f.onClose!({ initiator: 'client', code: 1000, reason: '' });
  // Transcriptions only: the response server VAD starts for such a turn is billed too (src/metering/filter-twelfth.test.ts).
  const transcriptions = (s: Setup) => s.records.filter((r) => r.source === 'transcription');
  const byLength = (s: Setup) => transcriptions(s).filter((r) => r.settledBy !== 'transcription.completed').map((r) => [r.ref, r.seconds]);

  /** 3 s sent at once at 1 s, closed at 1.1 s: the seconds billed (the excess over real time plus the padding). */
  function burst(input: Record<string, unknown>): number | null {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, ...input } } } });
    ctx.time = 1000;
    client(f, append(3 * SECOND));
    ctx.time = 1100;
    close(f);
    const r = byLength(s);
    expect(r.length).toBeLessThanOrEqual(1);
    return r.length === 0 ? null : (r[0]![1] as number);
  }
  const excess = bufferMsOf(3 * SECOND) - 1100;

  it('turn detection never reported (on by default): the default padding, 300 ms', () => {
    expect(burst({})).toBe((excess + 300) / 1000);
  });

  it.each([
    ['absent', undefined, 300],
    ['null', null, 300],
    ['a string', '500', 300],
    ['negative', -100, 300],
    ['infinite', Infinity, 300],
    ['0', 0, 0],
    ['1000', 1000, 1000],
  ])('prefix_padding_ms %s (%s): padding %s ms', (_name, padding, padMs) => {
    expect(burst({ turn_detection: { type: 'server_vad', prefix_padding_ms: padding } })).toBe((excess + padMs) / 1000);
  });

  it('a buffer started again (a clear) later in the session: the wall time counts from there', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    ctx.time = 10_000;
    client(f, { type: 'input_audio_buffer.clear' });
    client(f, append(3 * SECOND));
    ctx.time = 11_000;
    close(f);
    expect(byLength(s)).toEqual([['vad:unread', (bufferMsOf(3 * SECOND) - 1000 + 200) / 1000]]);
  });

  it('exactly the slack (500 ms) beyond real time: not billed; 1 ms more: billed', () => {
    for (const [lag, billed] of [[0, false], [1, true]] as const) {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, vadSession());
      client(f, append(3 * SECOND));
      ctx.time = bufferMsOf(3 * SECOND) - 500 - lag;
      close(f);
      expect(byLength(s).length, `lag ${lag}`).toBe(billed ? 1 : 0);
    }
  });

  it('an update asking for transcription, answered without it: nothing billed', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession(undefined, null));
    client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } });
    server(f, vadSession(undefined, null));
    client(f, append(3 * SECOND));
    close(f);
    expect(transcriptions(s)).toEqual([]);
  });

  it('an update asking for turn detection, answered without it: nothing billed', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession(null));
    client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad' } } } } });
    server(f, vadSession(null));
    client(f, append(3 * SECOND));
    close(f);
    expect(s.records).toEqual([]);
  });

  describe('speech heard: audio_start_ms', () => {
    /** 2 s, speech_started, 1 s more, in real time; the close: what is billed by length. */
    function heard(startMs: unknown, config: Record<string, unknown> = {}, tx = 'whisper-1'): Setup {
      const s = setup(config);
      const { ctx, f } = session(s);
      server(f, vadSession(undefined, { model: tx }));
      client(f, append(2 * SECOND));
      ctx.time = 2000;
      server(f, { type: 'input_audio_buffer.speech_started', ...(startMs === undefined ? {} : { audio_start_ms: startMs }), item_id: 'item_s' });
      client(f, append(SECOND));
      ctx.time = 3000;
      f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
      return s;
    }
    const whole = bufferMsOf(2 * SECOND, SECOND) / 1000;

    it('none: the whole buffer (more than the 3 s appended: framing)', () => {
      expect(byLength(heard(undefined))).toEqual([['item_s', whole]]);
      expect(whole).toBeGreaterThan(3);
    });

    it.each([
      ['1500', 1.5],
      ['0', 3],
    ])('%s: from there to the end of the appended audio', (start, seconds) => {
      expect(byLength(heard(Number(start)))).toEqual([['item_s', seconds]]);
    });

    it.each([
      ['a string', '1500'],
      ['null', null],
      ['negative', -0.5],
      ['infinite', Infinity],
    ])('%s: not a start, the whole buffer', (_name, start) => {
      expect(byLength(heard(start))).toEqual([['item_s', whole]]);
    });

    it('a token-priced transcription model without a per-minute price: its audio tokens, as its own duration pricing counts them', () => {
      // 3,000 ms appended less a start of 1,499.6: 1,500.4 ms, priced as 1,500 ms (15 tokens, not 16).
      const s = heard(1499.6, { prices: { 'tok-transcribe': { kind: 'transcription', textIn: '2.50', audioIn: '6.00', textOut: '10.00' } } }, 'tok-transcribe');
      const r = s.records.find((x) => x.ref === 'item_s')!;
      expect([r.inputTokens, r.totalTokens, r.costNanos]).toEqual([15, 15, 15 * 6_000]);
    });
  });
});

describe('metering survivors: transcription tokens', () => {
  it('a completed event reporting a duration for a model with token prices: billed per minute, no tokens made up', () => {
    const s = setup();
    const { f } = session(s);
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe' }, turn_detection: null } } } });
    server(f, transcribed('item_a', { type: 'duration', seconds: 3 }));
    expect(s.records.map((r) => [r.settledBy, r.inputTokens, r.totalTokens, r.seconds])).toEqual([['transcription.completed', 0, 0, 3]]);
  });
});
