/**
 * Red team (metering, 19m): the in-flight hold of the session token limit, lifted by a cap's recheck.
 *
 * A turn server VAD commits on its own in a transcribed session holds input audio back while the
 * session's settled tokens plus what is in flight reach `maxSessionTokens` (#holdInFlight), "until
 * their settles bring it under again" (test/metering/redteam-19-vad-burst.test.ts). But when that turn's
 * transcription reservation is refused over a tenant cap, the hold becomes the cap's, and the cap's
 * recheck (every 5 s of wall time) lifts the hold as soon as the tenant's spend fits again, with the
 * transcriptions still in flight and the session still at its token limit. An adversary with two
 * sessions of the tenant makes session B's `response.create` reserve its worst case (so session A's
 * turn is refused over the cap) and waits 5 s (under `admission: remaining` the recheck reads settled
 * spend: B's reservation need not even be given back): session A's audio flows again with its turn
 * still in flight, and a burst of audio sent
 * faster than real time becomes as many turns transcribed past the limit before the next committed is
 * read. Broken guarantee: input audio is held while what is in flight reaches the session token limit.
 */
import { describe, expect, it } from 'vitest';
import type { FakeSession } from '../support/fake-session.js';
import { appendFrame, client, lastSent, reservedNow, server, session, setup, T0, transcribed } from './filter-harness.js';
import type { Filter, Verdict } from '../../src/pipeline/filter.js';

/** 2,000 bytes of prompt: a transcription's estimate is about 2,000 tokens (about $0.005 at gpt-4o-transcribe). */
const PROMPT = 'x'.repeat(2_000);
const vadTranscribed = {
  type: 'session.updated',
  session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe', prompt: PROMPT }, turn_detection: { type: 'server_vad', create_response: false } } } },
};
const committed = (itemId: string) => ({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });
const tokens = (total: number) => ({ type: 'tokens', input_tokens: total, output_tokens: 0, total_tokens: total, input_token_details: { text_tokens: total, audio_tokens: 0 } });

function speak(ctx: FakeSession, f: Filter): Verdict {
  return ctx.fromClient(f, appendFrame(Buffer.alloc(3000).toString('base64'))) as Verdict;
}

describe('red team 19m: a cap hold over an in-flight hold', () => {
  it('the cap\'s recheck finds the tenant under its cap: audio stays held while the turn in flight keeps the session at its token limit', () => {
    let now = T0;
    const s = setup({}, () => now);
    const limits = { maxSessionTokens: 1_500, dailyUsd: '0.012' };
    const a = session(s, limits, 'gpt-realtime');
    server(a.f, vadTranscribed);
    const b = session(s, limits, 'gpt-realtime');
    // Session B's create reserves its worst case: the tenant's cap has no room left for A's turn.
    expect(client(b.f, { type: 'response.create', event_id: 'b1', response: { max_output_tokens: 200 } }).kind).toBe('continue');
    expect(reservedNow(s).nanos).toBeGreaterThanOrEqual(12_000_000);
    expect(speak(a.ctx as FakeSession, a.f).kind).toBe('continue');
    server(a.f, committed('item_1'));
    const told = speak(a.ctx as FakeSession, a.f);
    expect(told.kind === 'reject' && told.error.code).toBe('budget_exceeded');
    // B's create is given back (refused upstream here; a cancel does the same), and 5 s pass.
    server(b.f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: lastSent(b.f) } });
    expect(reservedNow(s).nanos).toBe(0);
    now += 5_000;
    speak(a.ctx as FakeSession, a.f);
    // item_1 (about 2,000 tokens) is still in flight against a 1,500-token limit.
    // Measured before the fix: 'continue' (the recheck lifted every hold).
    expect(speak(a.ctx as FakeSession, a.f).kind).not.toBe('continue');
    // Its settle under the limit lifts it, as for a hold of what is in flight alone.
    server(a.f, transcribed('item_1', tokens(500)));
    expect(speak(a.ctx as FakeSession, a.f).kind).toBe('continue');
  });
});
