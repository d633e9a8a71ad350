/**
 * Red team (metering, 17d): a commit refused for its own size holds every session of the tenant.
 *
 * A transcribed commit whose estimate does not fit the tenant's caps is refused, and its session's
 * input audio is held "as over a cap", a hold that reaches all of the tenant's sessions (tenant
 * holds) and any session joining within a recheck period. But the refusal may say nothing about the
 * tenant: one session's 40,000-character transcription prompt makes its own commit's estimate
 * ($0.10) larger than a $0.05 cap the tenant has not spent a cent of. An end user of the tenant
 * sends such a commit every few seconds: every other session of the tenant has its input audio
 * dropped (its own commits refused upstream as empty), whatever room the caps have. Broken
 * guarantee: audio is held only while the tenant's caps are spent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence } from '../support/harness.js';
import { meteredProxy } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PROMPT = 'Glossary: '.padEnd(40_000, 'x');

const input = (transcription: Record<string, unknown> | null) => ({
  type: 'session.update',
  session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription, turn_detection: null } } },
});

describe('red team 17d: one oversized commit and the tenant\'s other sessions', () => {
  it('a session of the same tenant with no transcription still has its audio committed', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: '0.05' } } }, metering: { admission: 'worst_case' } });
    const bystander = await tp.client();
    await bystander.next('session.created');
    bystander.send(input(null));
    await bystander.next('session.updated');

    const adversary = await tp.client();
    await adversary.next('session.created');
    adversary.send(input({ model: 'gpt-4o-transcribe', prompt: PROMPT }));
    await adversary.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(100, 0))) adversary.send(ev);
    adversary.send({ type: 'input_audio_buffer.commit', event_id: 'evt_big' });
    await adversary.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_big', 10_000, 'the refused commit');

    // Nothing spent, nothing reserved: a second of the bystander's audio fits any cap.
    for (const ev of appendEvents(speechThenSilence(1000, 0))) bystander.send(ev);
    bystander.send({ type: 'input_audio_buffer.commit', event_id: 'evt_small' });
    const answer = await bystander.waitFor((e) => e.type === 'input_audio_buffer.committed' || e.type === 'error', 10_000, 'the bystander commit answered');
    // Before the fix: an error (the audio was dropped by the adversary's hold; the upstream found the buffer empty).
    expect(answer.type).toBe('input_audio_buffer.committed');
  });
});
