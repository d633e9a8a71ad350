import { afterEach, describe, expect, it } from 'vitest';
import { noonClock } from '../support/clock.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { ADMIN_KEY, errorCode, spend, usageRecords } from './support.js';

/*
 * An input audio append is never read while no response.create waits (the audio path stays free
 * of parsing), so it may carry any event_id, the one of a create the client sends next included.
 * Until 2026-12-05 that create went upstream with the client's id, and the upstream's error about
 * the append (invalid audio) released the create's reservation: parallel creates then passed the
 * cap. Every client create now leaves with an id of the proxy's that no client can predict.
 * Real client and simulator on loopback, the real SQLite ledger.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);

async function proxy(cap: string): Promise<TestProxy> {
  const tp = await startTestProxy({
    tenants: { acme: { limits: { dailyUsd: cap } } },
    // Paced output: the first response still runs when the second create arrives.
    simulator: { timing: { deltaIntervalMs: 20 } },
    start: { clock: noonClock() },
    config: { admin: { key: ADMIN_KEY }, metering: { admission: 'worst_case', ledger: { path: ':memory:' } } },
  });
  cleanups.push(() => tp.stop());
  return tp;
}

/** An out-of-band create reading 20,000 bytes of its own input: worst case about $0.08 + the prompt + 200 output tokens. */
const big = (eventId: string, n: string) => ({
  type: 'response.create',
  event_id: eventId,
  response: {
    conversation: 'none',
    output_modalities: ['text'],
    max_output_tokens: 200,
    metadata: { n },
    input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ${'a long answer '.repeat(30)}${' '.repeat(20_000)}` }] }],
  },
});

describe('event_id collision with an unread audio append (found 2026-12-05)', () => {
  it('an append sent before a create with the same event_id draws an upstream error; the create keeps its reservation, so a second create over the cap is refused', async () => {
    // One worst case fits, two do not (worst_case admission: never over the cap).
    const cap = '0.15';
    const tp = await proxy(cap);
    const c = await tp.client();
    await c.next('session.created');
    // Invalid audio (not a string): the proxy forwards appends unread, the upstream refuses it.
    c.send('{"type":"input_audio_buffer.append","event_id":"evt_dup","audio":5}');
    c.send(big('evt_dup', 'a'));
    const appendError = await c.waitFor((e) => e.type === 'error', 5000, "the append's error");
    // The client sees the upstream's error about its append with its own id.
    expect(appendError['error']).toMatchObject({ event_id: 'evt_dup', param: 'audio' });
    const createdA = await c.next('response.created', 5000);
    const a = createdA['response'] as { id: string; metadata: { n: string } };
    expect(a.metadata).toEqual({ n: 'a' });
    // A still runs and holds its whole worst case: the second does not fit under the cap.
    c.send(big('evt_b', 'b'));
    const refusal = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_b', 5000, "the second create's answer");
    expect(errorCode(refusal)).toBe('budget_exceeded');
    // A went upstream with an id of the proxy's, not the append's; B never went.
    const upstreamIds = tp.sim.connections[0]!.received.filter((r) => r.type === 'response.create').map((r) => (r.event as { event_id: string }).event_id);
    expect(upstreamIds).toEqual([expect.stringMatching(/^event_proxy_\w+_[0-9a-f]{12}$/)]);
    const doneA = await c.waitFor((e) => e.type === 'response.done' && (e['response'] as { id: string }).id === a.id, 10_000, "A's response.done");
    // It ran to its end (the 200-token limit may cut the answer), never cancelled.
    expect(['completed', 'incomplete']).toContain((doneA['response'] as { status: string }).status);
    // Nothing else ran; the spend is A's alone, under the cap, and nothing stays reserved.
    expect(c.ofType('response.created')).toHaveLength(1);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => r['ref'])).toEqual([a.id]);
    expect(records[0]!['costNanos'] as number).toBeLessThanOrEqual(nanos(cap));
    expect((await spend(tp.adminUrl)).day.reservedUsd).toBe('0.00');
  }, 30_000);
});
