import { afterEach, describe, expect, it, vi } from 'vitest';
import { client, created, lastSent, reservedNow, server, session, setup } from '../../test/metering/filter-harness.js';

/*
 * Mutation survivors of the fifteenth session's range run (src/metering/filter.ts, #armPending's
 * timer): the memory of creates released unanswered (`#expired`, the most recent 64) under
 * `admission: remaining`, the one admission that still releases a create on a timer.
 */
describe('creates released unanswered after pendingResponseTimeoutMs (admission remaining)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A session under a far cap whose out-of-band creates each read ~30,000 characters of their own input. */
  function releasedCreates() {
    vi.useFakeTimers();
    const s = setup({ pendingResponseTimeoutMs: 1000 });
    const { f } = session(s, { dailyUsd: '1000' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    const big = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(30_000) }] };
    const create = (id: string) => expect(client(f, { type: 'response.create', event_id: id, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [big], metadata: { k: id } } }).kind).toBe('continue');
    const startsLate = (responseId: string, id: string) => server(f, created(responseId, { conversation_id: null, metadata: { k: id }, max_output_tokens: 1 }));
    return { s, f, create, startsLate };
  }

  it('two creates released one after the other: the first one\'s response, starting late, still reserves its create\'s worst case', () => {
    const { s, create, startsLate } = releasedCreates();
    create('c1');
    const worstCase = reservedNow(s).tokens;
    create('c2');
    vi.advanceTimersByTime(1000);
    expect(reservedNow(s).tokens).toBe(0);
    startsLate('resp_1', 'c1');
    // As a server-started response it would reserve without its ~7,500-token input list.
    expect(reservedNow(s).tokens).toBeGreaterThanOrEqual(worstCase);
  });

  it('the memory holds the most recent 64: a create released before 64 others is forgotten, and its late response reserves as a server-started one', () => {
    const { s, f, create, startsLate } = releasedCreates();
    create('c1');
    const worstCase = reservedNow(s).tokens;
    vi.advanceTimersByTime(1000);
    // 64 more, each released, then refused upstream (so the conversation view pairs only c1's response).
    for (let i = 2; i <= 65; i++) {
      create(`c${i}`);
      vi.advanceTimersByTime(1000);
      server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', param: null, event_id: lastSent(f) } });
    }
    expect(reservedNow(s).tokens).toBe(0);
    startsLate('resp_1', 'c1');
    const reserved = reservedNow(s).tokens;
    expect(reserved).toBeGreaterThan(0);
    expect(reserved).toBeLessThan(worstCase);
  });
});
