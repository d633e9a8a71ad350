/**
 * The session token limit's hold of what is in flight (MeteringFilter #holdInFlight): a turn server
 * VAD committed on its own in a transcribed session (its transcription runs whatever the proxy says),
 * while the session's settled tokens plus what its transcriptions and responses in flight hold reach
 * `maxSessionTokens`, holds input audio back until their settles bring it under again; held for good once settled tokens
 * reach it. End to end (real sockets): test/metering/redteam-19-vad-burst.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { appendFrame, client, created, lastSent, server, session, setup, transcribed } from '../../test/metering/filter-harness.js';
import type { FakeSession } from '../../test/support/fake-session.js';
import type { Filter, Verdict } from '../pipeline/filter.js';

/** 2,000 bytes of prompt: a transcription's estimate is 2,000 tokens and its audio's (375 ms of G.711, the format assumed while none is reported: 4 tokens). */
const PROMPT = 'x'.repeat(2_000);
const vadTranscribed = (createResponse: boolean) => ({
  type: 'session.updated',
  session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe', prompt: PROMPT }, turn_detection: { type: 'server_vad', create_response: createResponse } } } },
});
const tokens = (total: number) => ({ type: 'tokens', input_tokens: total, output_tokens: 0, total_tokens: total, input_token_details: { text_tokens: total, audio_tokens: 0 } });
const committed = (itemId: string) => ({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });

/** 3,000 bytes of input audio. */
function speak(ctx: FakeSession, f: Filter): Verdict {
  return ctx.fromClient(f, appendFrame(Buffer.alloc(3000).toString('base64'))) as Verdict;
}

function notice(v: Verdict): { code?: string; param?: string } | null {
  return v.kind === 'reject' ? { code: v.error.code, param: v.error.param ?? undefined } : null;
}

function vadSession(limits: Record<string, unknown>, createResponse = false, config: Record<string, unknown> = {}) {
  const s = setup(config);
  const { ctx, f } = session(s, limits, 'gpt-realtime');
  server(f, vadTranscribed(createResponse));
  return { s, ctx: ctx as FakeSession, f };
}

describe('the session token limit holds input audio while what is in flight reaches it', () => {
  it('a VAD turn whose transcription estimate reaches the limit: audio held (one notice), lifted when it is billed under the limit', () => {
    const { ctx, f } = vadSession({ maxSessionTokens: 1_500 });
    expect(speak(ctx, f).kind).toBe('continue');
    server(f, committed('item_1'));
    // 2,004 tokens held against 1,500: the audio the client sends on never reaches the upstream.
    expect(notice(speak(ctx, f))).toEqual({ code: 'token_limit_exceeded', param: 'input_audio_buffer.append' });
    expect(speak(ctx, f).kind).toBe('drop');
    // Billed 500 tokens: under the limit, audio flows again.
    server(f, transcribed('item_1', tokens(500)));
    expect(speak(ctx, f).kind).toBe('continue');
  });

  it('a failed transcription (not billed) lifts it too', () => {
    const { ctx, f } = vadSession({ maxSessionTokens: 1_500 });
    speak(ctx, f);
    server(f, committed('item_1'));
    expect(speak(ctx, f).kind).toBe('reject');
    server(f, { type: 'conversation.item.input_audio_transcription.failed', item_id: 'item_1', content_index: 0, error: { type: 'server_error', message: 'x' } });
    expect(speak(ctx, f).kind).toBe('continue');
  });

  it('a create in flight the upstream refuses (its error) lifts it when the rest fits', () => {
    const { ctx, f } = vadSession({ maxSessionTokens: 5_000 });
    speak(ctx, f);
    // Admitted: its worst case (4,096 out and its input) is below 5,000.
    expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
    server(f, committed('item_1'));
    // With the transcription's 2,004 the session reaches its limit: held.
    expect(speak(ctx, f).kind).toBe('reject');
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'x', event_id: lastSent(f) } });
    expect(speak(ctx, f).kind).toBe('continue');
  });

  it('a cap the turn\'s reservation finds outlasts it: the hold is the cap\'s (told as such), not lifted by the settle', () => {
    // Its estimate ($0.005: 2,004 tokens at $2.50 per 1M) does not fit a $0.004 cap; what it is billed ($0.00125) does.
    const { ctx, f } = vadSession({ maxSessionTokens: 1_500, dailyUsd: '0.004' }, false, { admission: 'worst_case' });
    speak(ctx, f);
    server(f, committed('item_1'));
    expect(notice(speak(ctx, f))).toEqual({ code: 'budget_exceeded', param: 'input_audio_buffer.append' });
    server(f, transcribed('item_1', tokens(500)));
    // Under both now, but a cap hold is lifted by the ledger's recheck (every 5 s of wall time; this clock stands still).
    expect(speak(ctx, f).kind).toBe('drop');
  });

  it('under the limit with it in flight, or with no limit: nothing is held', () => {
    const wide = vadSession({ maxSessionTokens: 10_000 });
    speak(wide.ctx, wide.f);
    server(wide.f, committed('item_1'));
    expect(speak(wide.ctx, wide.f).kind).toBe('continue');
    const none = vadSession({ dailyUsd: '1000' });
    speak(none.ctx, none.f);
    server(none.f, committed('item_1'));
    expect(speak(none.ctx, none.f).kind).toBe('continue');
  });

  it('a client commit was checked when it left: its committed holds nothing (the next commit is refused instead)', () => {
    const { ctx, f } = vadSession({ maxSessionTokens: 1_500 });
    speak(ctx, f);
    expect(client(f, { type: 'input_audio_buffer.commit', event_id: 'c1' }).kind).toBe('continue');
    server(f, committed('item_1'));
    expect(speak(ctx, f).kind).toBe('continue');
    expect(notice(client(f, { type: 'input_audio_buffer.commit', event_id: 'c2' }))).toEqual({ code: 'token_limit_exceeded', param: 'input_audio_buffer.commit' });
  });

  it('settled tokens reaching the limit meanwhile: held for good, told once more', () => {
    const { ctx, f } = vadSession({ maxSessionTokens: 1_500 });
    speak(ctx, f);
    server(f, committed('item_1'));
    expect(speak(ctx, f).kind).toBe('reject');
    server(f, transcribed('item_1', tokens(1_600)));
    const permanent = speak(ctx, f);
    expect(notice(permanent)).toEqual({ code: 'token_limit_exceeded', param: 'input_audio_buffer.append' });
    expect(permanent.kind === 'reject' && permanent.error.message).toContain('for the rest of the session');
    expect(speak(ctx, f).kind).toBe('drop');
  });

  it('a server-started response cancelled over the limit only with what is in flight leaves audio flowing (a cancel is what the limit does to a turn)', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxSessionTokens: 4_000 }, 'gpt-realtime');
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: true } } } } });
    const fake = ctx as FakeSession;
    // The first turn's response runs (nothing held before it) and holds its worst case (4,096 out and its input): the next turn's finds 4,000 reached.
    speak(fake, f);
    server(f, committed('item_1'));
    server(f, created('resp_1'));
    expect(speak(fake, f).kind).toBe('continue');
    server(f, committed('item_2'));
    server(f, created('resp_2'));
    expect(fake.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_2', 'token_limit_exceeded']]);
    expect(speak(fake, f).kind).toBe('continue');
  });
});
