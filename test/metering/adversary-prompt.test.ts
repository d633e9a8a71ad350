/**
 * Adversary review (metering): reusable prompt variables.
 *
 * A `response.create` (or `session.update`) may name a stored prompt with `prompt: {id, variables}`;
 * the upstream substitutes the variables into the prompt the model reads, so every byte of a
 * variable the client sends is input the response is billed for. The reservation's prompt estimate
 * counts instructions and tools only (context.ts promptOf): a client that puts its input into a
 * prompt variable reserves none of it, so the reservation is below the response's cost and the
 * guarantee (`admission: worst_case`: never over the cap) does not hold.
 */
import { describe, expect, it } from 'vitest';
import { client, created, done, server, session, setup, usage } from './filter-harness.js';

/** 20,000 bytes of plain text: at most 20,000 text tokens ($0.08 at gpt-realtime's $4/M). */
const DOC = 'lorem ipsum '.repeat(2000).slice(0, 20_000);

function runIfAdmitted(s: ReturnType<typeof setup>, f: Parameters<typeof client>[0], create: Record<string, unknown>): number {
  const v = client(f, { type: 'response.create', event_id: 'c1', ...create });
  if (v.kind !== 'reject') {
    server(f, created('resp_1', { max_output_tokens: 1, output_modalities: ['text'] }));
    server(f, done('resp_1', usage(20_000, 0, 1, 0), 'completed', { max_output_tokens: 1, output_modalities: ['text'] }));
  }
  return s.records.reduce((a, r) => a + r.costNanos, 0);
}

describe('adversary: input carried in prompt variables', () => {
  it('admission worst_case: response.prompt.variables count in the reservation, so spend never passes the cap', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.05' }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    const spent = runIfAdmitted(s, f, { response: { output_modalities: ['text'], max_output_tokens: 1, prompt: { id: 'pmpt_support', variables: { doc: DOC } } } });
    // Today: reserved ~$0.00005, billed $0.080016 against the $0.05 cap.
    expect(spent).toBeLessThanOrEqual(50_000_000);
  });

  it('admission worst_case: session.prompt.variables count in every reservation too', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.05' }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    client(f, { type: 'session.update', session: { type: 'realtime', prompt: { id: 'pmpt_support', variables: { doc: DOC } } } });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', prompt: { id: 'pmpt_support', variables: { doc: DOC } } } });
    const spent = runIfAdmitted(s, f, { response: { output_modalities: ['text'], max_output_tokens: 1 } });
    expect(spent).toBeLessThanOrEqual(50_000_000);
  });

  it('admission remaining: a batch of out-of-band creates carrying prompt variables spends at most the cap plus one worst case', () => {
    const s = setup();
    const { f } = session(s, { dailyUsd: '0.05' }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    const admitted: number[] = [];
    for (let i = 0; i < 20; i++) {
      const v = client(f, { type: 'response.create', event_id: `c${i}`, response: { conversation: 'none', input: [], metadata: { k: String(i) }, output_modalities: ['text'], max_output_tokens: 1, prompt: { id: 'pmpt_support', variables: { doc: DOC } } } });
      if (v.kind !== 'reject') admitted.push(i);
    }
    const extra = { conversation_id: null, max_output_tokens: 1, output_modalities: ['text'] };
    for (const i of admitted) {
      server(f, created(`resp_${i}`, { ...extra, metadata: { k: String(i) } }));
      server(f, done(`resp_${i}`, usage(20_000, 0, 1, 0), 'completed', { ...extra, metadata: { k: String(i) } }));
    }
    const spent = s.records.reduce((a, r) => a + r.costNanos, 0);
    // One such response's worst case with its variables counted: 20,008 text tokens at 4 µ$ + 1 out at 16 µ$.
    const W = 20_008 * 4_000 + 16_000;
    expect(spent, `${admitted.length} of 20 admitted`).toBeLessThanOrEqual(50_000_000 + W);
  });
});
