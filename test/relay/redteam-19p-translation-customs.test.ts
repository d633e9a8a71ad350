import { afterEach, expect, it } from 'vitest';
import { openTranslation, shownFrames, SILENT_FRAME, translatingProxy } from './translation-support.js';
import type { TranslatedFrame } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';

/*
 * A custom guardrail without `streaming: true` (the default: it judges a complete text, at its
 * `.done`) in a translation session. Translation transcripts have no `.done`, and the guardrails
 * filter runs only streaming customs on deltas, so such a guardrail judged nothing there: a tenant
 * whose policy ends the session on a phrase through a custom module (a moderation call, a classifier)
 * opened `/v1/realtime/translations` instead of `/v1/realtime` and had the model say it, translated
 * audio and transcript, unjudged. Fail open: the operator's policy names the guardrail for `output`
 * and nothing says translation sessions skip it. `openai`'s OpenAIRealtimeTranslationWS on loopback
 * (TLS), the simulator upstream; every frame the client receives is asserted.
 */

const api = new URL('../../src/policies/api.ts', import.meta.url).pathname;
const JUDGE = `import { defineGuardrail } from '${api}';
export default defineGuardrail({ name: 'judge', wants: ['output'], evaluate: (e) => (e.text.includes('launch codes') ? { action: 'end_session' } : { action: 'allow' }) });
`;
const POLICY = `
guardrails:
  custom:
    - { id: judge, module: ./judge.mjs, sources: [output] }
`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const proxy = (said: readonly TranslatedFrame[]): Promise<TestProxy> => translatingProxy({ 'translate.yaml': POLICY, 'judge.mjs': JUDGE }, said, cleanups);

const FRAME = SILENT_FRAME;
const shown = shownFrames;

it('a non-streaming custom guardrail on output judges the translated transcript: its end_session ends the session', async () => {
  const tp = await proxy([
    { source: 'one', translated: 'first, ' },
    { source: 'two', translated: 'here are the launch codes. ' },
  ]);
  const s = await openTranslation(tp);
  await s.next('session.created');
  for (let k = 0; k < 2; k++) s.translation.send({ type: 'session.input_audio_buffer.append', audio: FRAME });
  s.translation.send({ type: 'session.close' });
  const { code, reason } = await s.closed;
  expect([code, reason]).toEqual([4003, 'policy_violation']);
  expect(shown(s.frames)).toEqual([
    'session.created',
    'session.output_transcript.delta: first, ',
    'session.output_audio.delta',
    // The delta that completes the phrase is withheld; the session ends with the guardrail's error.
    'error',
  ]);
  expect(s.frames.at(-1)!['error']).toMatchObject({ code: 'policy_violation' });
  expect(JSON.stringify(s.frames)).not.toContain('launch');
});
