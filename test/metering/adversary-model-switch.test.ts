/**
 * Adversary review (metering): a `session.update` that switches the session to a dearer model, with
 * `response.create`s sent right behind it (before the upstream's `session.updated` comes back).
 *
 * The upstream applies the update before any create sent after it, so those responses run (and are
 * billed by OpenAI, and by the proxy at their `response.done`) at the NEW model's price. Their
 * reservations must therefore cover the new model's worst case, as they do for every other value an
 * update in flight asks (instructions, tools, max_output_tokens, audio format: the "guesses").
 * Today the model is not among the guesses: the reservation is taken at the old (cheaper) model's
 * rates and output maximum, so the reservation is below the response's cost and the guarantee
 * (`admission: worst_case`: never over the cap; `remaining`: cap + one worst case) does not hold.
 */
import { describe, expect, it } from 'vitest';
import { client, created, done, server, session, setup } from './filter-harness.js';

/** 4,096 audio output tokens: gpt-realtime-2 bills 64 µ$ each ($0.262144), gpt-realtime-mini 20 µ$ ($0.08192). */
const audioOut = (n: number) => ({
  total_tokens: n,
  input_tokens: 0,
  output_tokens: n,
  input_token_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
  output_token_details: { text_tokens: 0, audio_tokens: n },
});

const spentNanos = (s: ReturnType<typeof setup>) => s.records.reduce((a, r) => a + r.costNanos, 0);

describe('adversary: model switch to a dearer model with creates right behind the update', () => {
  it('admission worst_case: a create sent behind a switch to gpt-realtime-2 is reserved at the new model, so spend never passes the cap', () => {
    const s = setup({ admission: 'worst_case' });
    const { ctx, f } = session(s, { dailyUsd: '0.20' }, 'gpt-realtime-mini');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime-mini', max_output_tokens: 'inf' } });
    // One frame batch: switch to the dearer model, then a create (4,096 output tokens: within both models' maximum).
    expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-2' } }).kind).toBe('continue');
    const v = client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 4096 } });
    if (v.kind !== 'reject') {
      // The upstream applied the update first: the response runs on gpt-realtime-2.
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-2', max_output_tokens: 'inf' } });
      server(f, created('resp_1', { max_output_tokens: 4096 }));
      server(f, done('resp_1', audioOut(4096), 'incomplete', { max_output_tokens: 4096 }));
    }
    // Its worst case at gpt-realtime-2 ($0.262) is above the $0.20 cap: worst_case admission must refuse it.
    expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([]);
    expect(spentNanos(s)).toBeLessThanOrEqual(200_000_000);
    expect(ctx.closedWith).toBeNull();
  });

  it('admission remaining: a burst of out-of-band creates behind the switch spends at most the cap plus one worst case', () => {
    const s = setup();
    const { f } = session(s, { dailyUsd: '1' }, 'gpt-realtime-mini');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime-mini', max_output_tokens: 'inf' } });
    client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-2' } });
    const admitted: number[] = [];
    for (let i = 0; i < 40; i++) {
      const v = client(f, { type: 'response.create', event_id: `c${i}`, response: { conversation: 'none', input: [], metadata: { k: String(i) }, max_output_tokens: 4096 } });
      if (v.kind !== 'reject') admitted.push(i);
    }
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-2', max_output_tokens: 'inf' } });
    for (const i of admitted) {
      server(f, created(`resp_${i}`, { conversation_id: null, metadata: { k: String(i) }, max_output_tokens: 4096 }));
      server(f, done(`resp_${i}`, audioOut(4096), 'incomplete', { conversation_id: null, metadata: { k: String(i) }, max_output_tokens: 4096 }));
    }
    // Every response was billed at gpt-realtime-2 (correct at done) ...
    expect(s.records.every((r) => r.model === 'gpt-realtime-2' && r.settledBy === 'response.done')).toBe(true);
    // ... but admission reserved gpt-realtime-mini's worst case ($0.082), so 13 ran where 4 fit:
    // spend must stay within $1 + one gpt-realtime-2 worst case (4,096 × 64 µ$ + its 8-token prompt).
    const W = 4096 * 64_000 + 8 * 32_000;
    expect(spentNanos(s)).toBeLessThanOrEqual(1_000_000_000 + W);
  });
});
