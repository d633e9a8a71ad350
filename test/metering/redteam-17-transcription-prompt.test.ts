/**
 * Red team (metering, seventeenth pass): a transcription billed by its audio length leaves out the
 * transcription prompt.
 *
 * A token-priced transcription model (gpt-4o-transcribe) bills the session's transcription `prompt`
 * (`audio.input.transcription.prompt`) as text input on every transcription it runs: the completed
 * event's `usage.input_token_details.text_tokens` (reference §3.10 shape; the simulator reports it
 * the same way). When that event is never read (the client commits and leaves: the relay does not
 * wait for transcriptions; the upstream dropped), metering bills the transcription by its committed
 * audio length only, at the model's per-minute price: the prompt, which the tenant sizes as it
 * likes, is billed to nobody. An adversary sets a long prompt, commits a short turn (up to 256 a
 * session wait for their completed events) and closes in the same write: OpenAI bills the prompt
 * once per transcription, the proxy bills a tenth of a second of audio each.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { meteredProxy, spend, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** 40,000 characters: 10,000 text tokens by the simulator's count (chars / 4), $0.025 at gpt-4o-transcribe's $2.50/M. */
const PROMPT = 'Glossary: '.padEnd(40_000, 'x');
const PROMPT_NANOS = 10_000 * 2_500;

const transcribed = {
  type: 'session.update',
  session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'gpt-4o-transcribe', prompt: PROMPT }, turn_detection: null } } },
};

async function oneCommittedTurn(tp: TestProxy, leave: boolean, waitForUpdate = true): Promise<Record<string, unknown>[]> {
  const c = await tp.client();
  await c.next('session.created');
  c.send(transcribed);
  if (waitForUpdate) await c.next('session.updated');
  for (const ev of appendEvents(speechThenSilence(1000, 0))) c.send(ev);
  c.send({ type: 'input_audio_buffer.commit' });
  if (!leave) await c.next('conversation.item.input_audio_transcription.completed', 10_000);
  c.ws.close();
  await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
  return usageRecords(tp.adminUrl, '?tenant=acme');
}

describe('red team 17: a transcription billed by its audio length counts its prompt', () => {
  it('control: the completed event read, the prompt is billed as OpenAI reports it', async () => {
    const tp = await meteredProxy(cleanups);
    const records = await oneCommittedTurn(tp, false);
    expect(records.map((r) => [r['source'], r['settledBy']])).toEqual([['transcription', 'transcription.completed']]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(PROMPT_NANOS);
  });

  it('the client commits and leaves before the completed event: the estimate still bills the prompt', async () => {
    // The transcription takes a while upstream: the close comes first, as for any real model.
    const tp = await meteredProxy(cleanups, { simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const records = await oneCommittedTurn(tp, true);
    expect(records.map((r) => [r['source'], r['settledBy'], r['estimated']])).toEqual([['transcription', 'client_gone_estimate', true]]);
    // Old code: 1 s at $0.006/min, 100,000 nanos (plus the appends' framing): the prompt's $0.025 billed to nobody.
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(PROMPT_NANOS);
  });

  it('the update setting the prompt, the turn, its commit and the close in one write: the estimate bills the prompt the update asked', async () => {
    const tp = await meteredProxy(cleanups, { simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const records = await oneCommittedTurn(tp, true, false);
    expect(records.map((r) => [r['source'], r['estimated']])).toEqual([['transcription', true]]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(PROMPT_NANOS);
  });
});

describe('red team 17: a burst of transcribed commits is bounded by the cap', () => {
  /*
   * Input transcription was outside the cap guarantee (billed when it arrived; no reservation
   * preceded it) and was taken as bounded by the audio the client must send. With a long prompt the
   * cost of a transcription is its prompt, whatever its audio: 20 commits of 100 ms each (96 KB of
   * audio) in one write cost $0.50 against a $0.05 `worst_case` cap (measured with the simulator,
   * which bills the prompt as text input), and the hold over the cap came only after the first
   * completed event. Fixed 2026-12-07: a transcribed commit reserves its estimate (its audio by its
   * length, its prompt) before it leaves and is refused over a cap as a response.create is; a
   * server-VAD `committed` reserves the same, holding the audio when refused.
   */
  it('20 commits of 100 ms under a 40,000-character prompt, $0.05 worst_case cap: spend stays within one transcription of the cap', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: '0.05' } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(transcribed);
    await c.next('session.updated');
    for (let i = 0; i < 20; i++) {
      for (const ev of appendEvents(speechThenSilence(100, 0))) c.send(ev);
      c.send({ type: 'input_audio_buffer.commit' });
    }
    await until(() => c.ofType('conversation.item.input_audio_transcription.completed').length + c.ofType('error').length >= 20, 10_000, 'the commits answered');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    const spentNanos = (await usageRecords(tp.adminUrl, '?tenant=acme')).reduce((a, r) => a + (r['costNanos'] as number), 0);
    // Measured before the fix: $0.50.
    expect(spentNanos).toBeLessThanOrEqual(50_000_000 + PROMPT_NANOS + 1_000_000);
  });

  it('the refused commit as the client reads it: the error a refused response.create gets, naming the commit; the ledger holds nothing after', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: '0.05' } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(transcribed);
    await c.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(100, 0))) c.send(ev);
    // The prompt alone (40,000 bytes, one token each by the estimate's rule) is $0.10: over the cap.
    c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_commit_1' });
    c.send({ type: 'response.create', event_id: 'evt_create_1', response: { output_modalities: ['text'] } });
    const answerTo = (id: string) => c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === id, 10_000, `the error about ${id}`);
    const commitError = await answerTo('evt_commit_1');
    const createError = await answerTo('evt_create_1');
    const body = commitError['error'] as Record<string, unknown>;
    expect(Object.keys(commitError).sort()).toEqual(['error', 'event_id', 'type']);
    expect(body).toEqual({
      type: 'rate_limit_error',
      code: 'budget_exceeded',
      message: expect.stringMatching(/^The tenant daily cost budget is exhausted \(resets \d{4}-\d\d-\d\dT00:00:00\.000Z\)\.$/),
      param: 'input_audio_buffer.commit',
      event_id: 'evt_commit_1',
      details: { cap: 'daily_usd', period: expect.any(String), limit: '0.05', spent: '0.00', reserved: '0.00', unit: 'USD', resetsAt: expect.any(String) },
    });
    // The create's refusal has the same members, its own event_id and no param.
    expect({ ...(createError['error'] as Record<string, unknown>), param: 'input_audio_buffer.commit', event_id: 'evt_commit_1' }).toEqual(body);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    expect(await usageRecords(tp.adminUrl, '?tenant=acme')).toEqual([]);
    expect((await spend(tp.adminUrl)).day.reservedUsd).toBe('0.00');
  });
});
