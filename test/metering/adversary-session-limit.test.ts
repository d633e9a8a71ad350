/**
 * Adversary review (metering): a VAD session past its session token limit (`maxSessionTokens`),
 * `onExhausted: refuse` (the default).
 *
 * Each spoken turn makes the upstream start a response; metering cancels it at `response.created`
 * (token_limit_exceeded) and bills what it read before the cancel. Unlike a cancel over a tenant
 * cap, this cancel never holds the session's input audio back (#holdAudio is only reached on the
 * tenant-cap branch, after the session-limit branch has returned), and these responses are never
 * reserved in the ledger, so the tenant caps never see them coming either. The client keeps
 * talking: every turn is started, cancelled and billed, without bound:
 * - the session limit's documented bound ("a session uses at most the limit plus one response's
 *   worst case", src/metering/README.md) does not hold;
 * - nor does the tenant's daily cap (cap + one worst case): the session-limit branch comes before
 *   the tenant-cap check, so a session over its token limit is never stopped by the cap.
 */
import { describe, expect, it } from 'vitest';
import type { Filter, Verdict } from '../../src/pipeline/filter.js';
import { FakeSession } from '../support/fake-session.js';
import { appendFrame, created, done, server, session, setup, transcribed, transcriptionSession, usage } from './filter-harness.js';

/** gpt-realtime: a server-started response's worst case is the context window at the dearest input rate plus 4,096 audio tokens out. */
const W_TOKENS = 32_768 + 4096;
const W_NANOS = 32_768 * 32_000 + 4096 * 64_000;

function speak(ctx: FakeSession, f: Filter): Verdict {
  return ctx.fromClient(f, appendFrame(Buffer.alloc(3000).toString('base64'))) as Verdict;
}

describe('adversary: VAD turns past the session token limit', () => {
  it('refuse policy: once a turn was cancelled over the session token limit, further turns are not started (tokens ≤ limit + one worst case, spend ≤ cap + one worst case)', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '0.50', maxSessionTokens: 1000 }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    // Turn 0: within the limit, it runs and uses 3,000 tokens.
    server(f, created('resp_0'));
    server(f, done('resp_0', usage(0, 2900, 0, 100)));
    let turns = 0;
    for (let i = 1; i <= 40; i++) {
      // The client speaks; the upstream starts a turn only if its audio got through.
      if (speak(ctx as FakeSession, f).kind !== 'continue') continue;
      turns++;
      server(f, { type: 'input_audio_buffer.committed', item_id: `item_${i}`, previous_item_id: null });
      server(f, created(`resp_${i}`));
      // Cancelled at response.created; the upstream bills the conversation it read (3,000 audio tokens, $0.096).
      server(f, done(`resp_${i}`, usage(0, 3000, 0, 0), 'cancelled'));
    }
    const cancels = ctx.cancelled.filter((c) => c.notice.code === 'token_limit_exceeded').length;
    const spent = s.records.reduce((a, r) => a + r.costNanos, 0);
    const sessionTokens = f.summary!()['meteringSessionTokens'] as number;
    expect({ turns, cancels }).toMatchObject({ cancels: turns });
    expect.soft(sessionTokens, `${turns} turns started past the limit`).toBeLessThanOrEqual(1000 + W_TOKENS);
    expect.soft(spent, `${turns} turns started past the limit`).toBeLessThanOrEqual(500_000_000 + W_NANOS);
  });

  it('refuse policy, input transcription: once the session is over its token limit, its audio is held back (transcribed tokens ≤ limit + one turn)', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxSessionTokens: 1000 }, 'gpt-realtime');
    server(f, transcriptionSession('gpt-4o-transcribe'));
    let turns = 0;
    for (let i = 1; i <= 20; i++) {
      if (speak(ctx as FakeSession, f).kind !== 'continue') continue;
      turns++;
      server(f, { type: 'input_audio_buffer.committed', item_id: `item_${i}`, previous_item_id: null });
      // 550 tokens a turn ($0.0035 at gpt-4o-transcribe).
      server(f, transcribed(`item_${i}`, { type: 'tokens', input_tokens: 500, output_tokens: 50, total_tokens: 550, input_token_details: { text_tokens: 0, audio_tokens: 500 } }));
    }
    const sessionTokens = f.summary!()['meteringSessionTokens'] as number;
    // Today every one of the 20 turns is transcribed: 11,000 tokens against a 1,000-token session limit.
    expect(sessionTokens, `${turns} turns transcribed`).toBeLessThanOrEqual(1000 + 550);
  });
});
