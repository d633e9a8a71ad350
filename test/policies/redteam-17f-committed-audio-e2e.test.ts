import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Adversary (end to end, real sockets, the simulator upstream): a tenant under a truncation budget
 * turns server VAD off (`turn_detection: null`) and input transcription stays off; it appends a
 * minute of audio and commits it itself, three times, then asks for a response. No speech events
 * and no transcript size those turns for the proxy; the upstream (and the simulator, which sizes a
 * committed buffer by its duration as the real API bills it) reads ~600 tokens each.
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

/** 60 s of 24 kHz mono PCM16 silence, base64. */
const MINUTE = Buffer.alloc(60 * 24_000 * 2).toString('base64');

describe('truncation: turns the client commits itself without transcription', () => {
  it('a response after three committed minutes reads within maxTokens', async () => {
    const before = tp.sim.connections.length;
    const c = await tp.client();
    await c.next('session.created');
    const sim = tp.sim.connections[before]!;
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null, transcription: null } } } });
    await c.next('session.updated');
    for (let i = 0; i < 3; i++) {
      c.send({ type: 'input_audio_buffer.append', audio: MINUTE });
      c.send({ type: 'input_audio_buffer.commit' });
      await c.nth('input_audio_buffer.committed', i + 1);
    }
    await c.nth('conversation.item.done', 3);
    c.send({ type: 'response.create' });
    const done = await c.next('response.done');
    const usage = (done['response'] as { usage: { input_tokens: number } }).usage;
    expect(usage.input_tokens).toBeLessThanOrEqual(MAX);
    // Every frame the upstream got: the three commits, and the proxy's deletes.
    expect(sim.received.filter((r) => r.type === 'input_audio_buffer.commit')).toHaveLength(3);
    expect(sim.received.filter((r) => r.type === 'conversation.item.delete').length).toBeGreaterThan(0);
    c.close();
  });
});
