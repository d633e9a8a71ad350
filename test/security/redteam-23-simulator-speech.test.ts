import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_MAX_OUTPUT_TOKENS, SPEECH_CACHE_BYTES, speechCacheBytes } from '../../src/simulator/output.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Red team (a tenant key, the embedded simulator): one long `say:`.
 *
 * Without OPENAI_API_KEY the proxy relays to its embedded simulator, in its own process (`npm start`,
 * the demo). The simulator synthesized the whole text of an answer before looking at any token
 * limit: about 7 KB of PCM and base64 a character, in one synchronous call, kept in a cache bounded
 * by count only (48 plans). A `say:` of 20,000 characters blocked the event loop for every session
 * for 6.5 s and left 139 MiB held; one of a few hundred thousand (a 2 MB frame, far under
 * maxFrameBytes and maxScanChars) would have needed gigabytes. Rules broken: every cache has a byte
 * budget; one tenant cannot exhaust memory for the others. OpenAI's models stop at 4,096 output
 * tokens (`max_output_tokens: "inf"` is that maximum): the simulator now cuts the answer there,
 * before synthesis, and reports it `incomplete` (`max_output_tokens`), as the API does.
 */

/** Assistant audio: 20 tokens a second (src/simulator/usage.ts); PCM16 at 24 kHz: 48 bytes a millisecond. */
const MAX_AUDIO_BYTES = MODEL_MAX_OUTPUT_TOKENS * 50 * 48;
/** Text tokens: a token per 4 characters. */
const MAX_TEXT_CHARS = MODEL_MAX_OUTPUT_TOKENS * 4;

let tp: TestProxy;

beforeAll(async () => {
  tp = await startTestProxy({ config: { logging: { level: 'warn' } } });
});

afterAll(async () => {
  await tp.stop();
});

interface Done {
  readonly status: string;
  readonly status_details: { readonly reason?: string } | null;
  readonly usage: { readonly output_tokens: number };
}

describe('red team 23: a say: far past what one response can emit (embedded simulator)', () => {
  const text = 'many words to speak '.repeat(1000);

  it('spoken: cut at the model maximum, incomplete (max_output_tokens); the audio and transcript received stay within it', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.say(`say: ${text}`);
    const done = (await c.next('response.done', 60_000))['response'] as Done;
    expect(done.status).toBe('incomplete');
    expect(done.status_details?.reason).toBe('max_output_tokens');
    expect(done.usage.output_tokens).toBeLessThanOrEqual(MODEL_MAX_OUTPUT_TOKENS);
    // Every audio byte the client received, decoded.
    const audio = c.ofType('response.output_audio.delta').reduce((n, e) => n + Buffer.from(e['delta'] as string, 'base64').length, 0);
    expect(audio).toBeGreaterThan(0);
    expect(audio).toBeLessThanOrEqual(MAX_AUDIO_BYTES);
    const transcript = c.ofType('response.output_audio_transcript.delta').map((e) => e['delta'] as string).join('');
    expect(transcript.length).toBeGreaterThan(0);
    expect(text.startsWith(transcript)).toBe(true);
    expect(transcript.length).toBeLessThan(text.length);
    expect(speechCacheBytes()).toBeLessThanOrEqual(SPEECH_CACHE_BYTES);
    c.close();
  }, 90_000);

  it('text only: cut at the model maximum too (at most 16,384 characters), incomplete', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.say(`say: ${text}`, { output_modalities: ['text'] });
    const done = (await c.next('response.done', 60_000))['response'] as Done;
    expect(done.status).toBe('incomplete');
    expect(done.status_details?.reason).toBe('max_output_tokens');
    expect(done.usage.output_tokens).toBeLessThanOrEqual(MODEL_MAX_OUTPUT_TOKENS);
    const said = c.ofType('response.output_text.delta').map((e) => e['delta'] as string).join('');
    expect(said.length).toBeLessThanOrEqual(MAX_TEXT_CHARS);
    expect(said.length).toBeGreaterThan(0);
    expect(text.startsWith(said)).toBe(true);
    c.close();
  }, 90_000);

  it('another session is answered while a long answer is synthesized (the simulator no longer blocks for it)', async () => {
    const a = await tp.client();
    await a.next('session.created');
    const b = await tp.client();
    await b.next('session.created');
    const [simA, simB] = tp.sim.connections.slice(-2);
    // A distinct text: its speech is not in the plan cache. ~205 s of audio to synthesize.
    a.say(`say: ${'another long answer to synthesize '.repeat(200)}`);
    // Sent just before the synthesis starts: received while it runs, or (blocked) once it is done.
    await a.next('response.output_item.added', 60_000);
    b.send({ type: 'session.update', session: { type: 'realtime', instructions: 'marker' } });
    const updated = await b.next('session.updated', 60_000);
    expect((updated['session'] as { instructions: string }).instructions).toBe('marker');
    await a.next('response.content_part.added', 60_000);
    // In the simulator's own order: B's answer left before A's speech was ready.
    const bAnswered = simB!.sent.find((e) => e.type === 'session.updated')!.t;
    const aSpeaks = simA!.sent.find((e) => e.type === 'response.content_part.added')!.t;
    expect(bAnswered).toBeLessThan(aSpeaks);
    const done = (await a.next('response.done', 60_000))['response'] as Done;
    expect(done.status).toBe('incomplete');
    a.close();
    b.close();
  }, 120_000);

  it('control: an answer within the maximum is spoken whole and completed', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.say('say: A short answer, spoken whole.');
    const done = (await c.next('response.done', 20_000))['response'] as Done;
    expect(done.status).toBe('completed');
    const transcript = c.ofType('response.output_audio_transcript.delta').map((e) => e['delta'] as string).join('');
    expect(transcript).toBe('A short answer, spoken whole.');
    c.close();
  });
});
