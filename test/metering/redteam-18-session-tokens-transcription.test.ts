/**
 * Red team (metering, eighteenth pass): the session token limit (`maxSessionTokens`) and input
 * transcription.
 *
 * A token limit counts the tokens a transcription's usage reports (gpt-4o-transcribe and its kin
 * report `{type: tokens}`, the session's transcription `prompt` billed as text input on every one),
 * and the README's guarantee is that a session uses at most the limit plus one worst case. A response
 * is admitted only while the session's settled tokens plus what its pending work holds are below the
 * limit; a client `input_audio_buffer.commit` in a transcribed session was not: it held nothing
 * against the session limit and was never checked against it (it reserves against the tenant's caps
 * only, and only when the tenant has one). The adversary (a tenant whose only limit is
 * `maxSessionTokens`) sets a 40,000-character transcription prompt and sends 20 commits of 100 ms in
 * one write: all 20 are transcribed, ~10,000 tokens each by the simulator's count, about ten times
 * the session's limit, before the first completed event can hold its audio back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence } from '../support/harness.js';
import { meteredProxy, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** 40,000 characters: 10,000 text tokens by the simulator's count (chars / 4) on every transcription. */
const PROMPT = 'Glossary: '.padEnd(40_000, 'x');
const LIMIT = 20_000;
/** One transcription's worst case by the estimate's rule: the prompt at one token a byte, plus 100 ms of audio. */
const ONE_TRANSCRIPTION_ESTIMATE = 40_000 + 1_000;

describe('red team 18: transcribed commits and the session token limit', () => {
  it('20 commits of 100 ms under a 40,000-character prompt, maxSessionTokens 20,000: the session stays within the limit plus one transcription', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { maxSessionTokens: LIMIT } } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'gpt-4o-transcribe', prompt: PROMPT }, turn_detection: null } } },
    });
    await c.next('session.updated');
    for (let i = 0; i < 20; i++) {
      for (const ev of appendEvents(speechThenSilence(100, 0))) c.send(ev);
      c.send({ type: 'input_audio_buffer.commit' });
    }
    await until(() => c.ofType('conversation.item.input_audio_transcription.completed').length + c.ofType('error').length >= 20, 10_000, 'the commits answered');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    const tokens = (await usageRecords(tp.adminUrl, '?tenant=acme')).reduce((a, r) => a + (r['totalTokens'] as number), 0);
    // Measured before the fix: 200,000+ tokens (all 20 transcribed).
    expect(tokens).toBeLessThanOrEqual(LIMIT + ONE_TRANSCRIPTION_ESTIMATE);
    // The commits past the limit are refused as a create past it is, naming the commit.
    const refusals = c.ofType('error').map((e) => e['error'] as { code?: string; param?: string });
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.every((e) => e.code === 'token_limit_exceeded' && e.param === 'input_audio_buffer.commit')).toBe(true);
  });
});
