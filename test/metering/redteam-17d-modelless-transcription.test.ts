/**
 * Red team (metering, 17d): a transcription `session.update` that names a prompt and no model.
 *
 * A transcribed commit reserves its estimate (audio by length, plus the transcription prompt) under
 * the prompt of the session or of an update in flight; but an update counted as "in flight" only when
 * it named `transcription.model`. `audio.input.transcription: { prompt }` alone is valid (the upstream
 * takes its default model: the simulator's session.updated reports gpt-4o-mini-transcribe) and
 * applies upstream before the commits sent behind it. An adversary sends that update with a
 * 40,000-character prompt and 20 short commits in one write: each commit reserved the old prompt's
 * estimate (or nothing at all in a session not transcribing yet), the upstream billed the new prompt
 * on every transcription. Broken guarantee: spend bounded by the tenant's caps, and a transcription
 * whose completed event is never read billed by its estimate.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestClient } from '../support/harness.js';
import { meteredProxy, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** 40,000 characters: 10,000 text tokens by the simulator's count, $0.0125 at gpt-4o-mini-transcribe's $1.25/M. */
const PROMPT = 'Glossary: '.padEnd(40_000, 'x');
const MINI_PROMPT_NANOS = 10_000 * 1_250;

const input = (transcription: Record<string, unknown>) => ({
  type: 'session.update',
  session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription, turn_detection: null } } },
});

function updateAndCommits(c: TestClient, commits: number): void {
  // The prompt arrives in an update naming no model, the commits right behind it.
  c.send(input({ prompt: PROMPT }));
  for (let i = 0; i < commits; i++) {
    for (const ev of appendEvents(speechThenSilence(100, 0))) c.send(ev);
    c.send({ type: 'input_audio_buffer.commit' });
  }
}

async function spentNanos(adminUrl: string): Promise<number> {
  return (await usageRecords(adminUrl, '?tenant=acme')).reduce((a, r) => a + (r['costNanos'] as number), 0);
}

describe('red team 17d: a transcription update naming a prompt and no model', () => {
  it('transcribing with a short prompt, then 20 commits behind a model-less 40,000-character prompt, $0.05 worst_case cap: spend stays within one transcription of the cap', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: '0.05' } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(input({ model: 'gpt-4o-transcribe' }));
    await c.next('session.updated');
    updateAndCommits(c, 20);
    await until(() => c.ofType('conversation.item.input_audio_transcription.completed').length + c.ofType('error').length >= 20, 10_000, 'the commits answered');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    // Measured before the fix: $0.25 (20 × $0.0125), every commit reserved a prompt-less estimate.
    expect(await spentNanos(tp.adminUrl)).toBeLessThanOrEqual(50_000_000 + 2 * MINI_PROMPT_NANOS + 1_000_000);
  });

  it('not transcribing yet: the update, 5 commits and the close in one write bill each transcription the upstream runs', async () => {
    // The transcription takes a while upstream: the close comes first, as for any real model.
    const tp = await meteredProxy(cleanups, { simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const c = await tp.client();
    await c.next('session.created');
    updateAndCommits(c, 5);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    // Measured before the fix: $0 (no record): the proxy read no transcription in flight.
    expect(await spentNanos(tp.adminUrl)).toBeGreaterThanOrEqual(5 * MINI_PROMPT_NANOS);
  });
});
