import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Adversary (end to end, real sockets, the simulator upstream): a tenant under a truncation budget
 * creates user messages carrying 60 s of base64 PCM16 each (`input_audio.audio`, no transcript),
 * then asks for a response. The proxy sized each at 4 tokens (its transcript, none); the upstream
 * (and the simulator, which sizes created audio by its duration as the real API bills it) reads
 * ~600 each: the response read 1,858 tokens under a 1,500 budget with nothing pruned.
 * Guarantee broken: a response reads at most `maxTokens` (policies/README.md "Truncation").
 */
const MAX = 1_500;
const BUDGET = `
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.7, keepFirst: 0, keepLast: 0 }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'budget' } },
    config: { policies: { dir: policyDir({ 'budget.yaml': BUDGET }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

/** 60 s of 24 kHz mono PCM16 silence, base64: ~600 tokens of user audio. */
const MINUTE = Buffer.alloc(60 * 24_000 * 2).toString('base64');

/**
 * Three minutes of audio (`minute`, base64 in the format `session` sets) the client commits itself
 * or creates as items, then a response: it reads within maxTokens, every commit or create went
 * upstream, and the proxy deleted what it had to.
 */
async function threeMinutesWithin(session: Record<string, unknown>, minute: string, how: 'committed' | 'created'): Promise<void> {
  const before = tp.sim.connections.length;
  const c = await tp.client();
  await c.next('session.created');
  const sim = tp.sim.connections[before]!;
  c.send({ type: 'session.update', session });
  await c.next('session.updated');
  for (let i = 0; i < 3; i++) {
    if (how === 'created') {
      c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: minute }] } });
      continue;
    }
    c.send({ type: 'input_audio_buffer.append', audio: minute });
    c.send({ type: 'input_audio_buffer.commit' });
    await c.nth('input_audio_buffer.committed', i + 1);
  }
  await c.nth('conversation.item.done', 3);
  c.send({ type: 'response.create' });
  const done = await c.next('response.done');
  const usage = (done['response'] as { usage: { input_tokens: number } }).usage;
  expect(usage.input_tokens).toBeLessThanOrEqual(MAX);
  expect(sim.received.filter((r) => r.type === (how === 'created' ? 'conversation.item.create' : 'input_audio_buffer.commit'))).toHaveLength(3);
  expect(sim.received.filter((r) => r.type === 'conversation.item.delete').length).toBeGreaterThan(0);
  c.close();
}

describe('truncation: created audio items through the proxy', () => {
  it('a response after three created minutes of audio reads within maxTokens', async () => {
    await threeMinutesWithin({ type: 'realtime', output_modalities: ['text'] }, MINUTE, 'created');
  });

  /** test/policies/redteam-17f-pending-reference.test.ts, through the proxy: a reference to the client's own item, sent before its echo. */
  it("an out-of-band response referencing the client's own item not shown yet is refused over maxTokens", async () => {
    const before = tp.sim.connections.length;
    const c = await tp.client();
    await c.next('session.created');
    const sim = tp.sim.connections[before]!;
    c.send({ type: 'conversation.item.create', item: { id: 'item_mine', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(40_000) }] } });
    c.send({ type: 'response.create', event_id: 'evt_oob', response: { conversation: 'none', output_modalities: ['text'], input: [{ type: 'item_reference', id: 'item_mine' }] } });
    const error = await c.next('error');
    expect(error).toMatchObject({ error: { code: 'context_budget_exceeded', param: 'response.input', event_id: 'evt_oob' } });
    await c.next('conversation.item.done');
    // Every frame the upstream got: the create, and no response.create at all.
    expect(sim.received.filter((r) => r.type === 'conversation.item.create')).toHaveLength(1);
    expect(sim.received.filter((r) => r.type === 'response.create')).toHaveLength(0);
    c.close();
  });
});

/**
 * Adversary (end to end, real sockets, the simulator upstream): a tenant under a truncation budget
 * turns server VAD off (`turn_detection: null`) and input transcription stays off; it appends a
 * minute of audio and commits it itself, three times, then asks for a response. No speech events
 * and no transcript size those turns for the proxy; the upstream (and the simulator, which sizes a
 * committed buffer by its duration as the real API bills it) reads ~600 tokens each.
 * Guarantee broken: a response reads at most `maxTokens` (policies/README.md "Truncation").
 */
describe('truncation: turns the client commits itself without transcription', () => {
  it('a response after three committed minutes reads within maxTokens', async () => {
    await threeMinutesWithin({ type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null, transcription: null } } }, MINUTE, 'committed');
  });
});

/**
 * Adversary: a tenant under a truncation budget runs its session in G.711 (`audio/pcmu`, or the
 * preview protocol's `g711_ulaw`): 8 bytes a millisecond, where 24 kHz PCM16 takes 48. The
 * truncation filter sized all input audio as PCM16, so each minute the client appended and
 * committed (or put into an item itself) counted 10 s, ~100 tokens; the upstream (and the
 * simulator, which sizes audio by its duration in the session's format as the real API bills it)
 * reads ~600. Three minutes read ~1,800 tokens under a 1,500 budget with nothing pruned.
 * Guarantee broken: a response reads at most `maxTokens` (policies/README.md "Truncation").
 */
describe('truncation: a G.711 session (test/policies/redteam-18-g711-truncation.test.ts has the filter-level cases)', () => {
  /** `seconds` of G.711 μ-law silence (0xFF), base64: 8,000 bytes a second, ~10 tokens a second of user audio. */
  const g711Minute = Buffer.alloc(60 * 8_000, 0xff).toString('base64');
  const G711_SESSION = { type: 'realtime', output_modalities: ['text'], audio: { input: { format: { type: 'audio/pcmu' }, turn_detection: null, transcription: null } } };

  it('a response after three minutes the client appended and committed itself reads within maxTokens', async () => {
    await threeMinutesWithin(G711_SESSION, g711Minute, 'committed');
  });

  it('a response after three created minutes of G.711 audio reads within maxTokens', async () => {
    await threeMinutesWithin(G711_SESSION, g711Minute, 'created');
  });
});
