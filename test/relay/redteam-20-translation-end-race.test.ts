import { afterEach, expect, it } from 'vitest';
import { openTranslation, shownFrames, SILENT_FRAME, translatingProxy } from './translation-support.js';
import type { TranslatedFrame } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';

/*
 * An upstream that ends a translation session while a custom guardrail is still judging a transcript
 * delta. The adversary (a caller whose words the model translates, or an upstream that drops) needs
 * only the end to come while the judge is busy: the guardrails settled what their scanner held back
 * at once (onUpstreamEnd, e7c61f9) and sent it to the client, ahead of the verdict on the delta it
 * came in, which the end then discarded. A custom `end_session` on that delta never applied: its
 * text reached the client unjudged (by the custom guardrail), and out of order (the delta's released
 * part never came). At `session.closed` the same text waits behind the verdict (the chain queues it).
 * `openai`'s OpenAIRealtimeTranslationWS on loopback (TLS), the simulator upstream.
 */

/** The judge: a delta naming a card is answered only when the test says (end_session); the test hears when it was asked. */
interface Gate {
  asked: () => void;
  verdict: Promise<{ action: string }>;
}
const gate = globalThis as unknown as { __redteam20Gate?: Gate };

const api = new URL('../../src/policies/api.ts', import.meta.url).pathname;
const JUDGE = `import { defineGuardrail } from '${api}';
export default defineGuardrail({ name: 'judge', wants: ['output'], evaluate: (e) => {
  const g = globalThis.__redteam20Gate;
  if (!e.text.includes('4111')) return { action: 'allow' };
  g.asked();
  return g.verdict;
} });
`;
const POLICY = `
guardrails:
  rules:
    - { id: card, sources: [output], match: { pii: [card] }, action: redact }
  custom:
    - { id: judge, module: ./judge.mjs, sources: [output], mode: blocking }
`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const proxy = (said: readonly TranslatedFrame[]): Promise<TestProxy> => translatingProxy({ 'translate.yaml': POLICY, 'judge.mjs': JUDGE }, said, cleanups);

const FRAME = SILENT_FRAME;
const shown = shownFrames;

it('the upstream dropping while a custom guardrail judges a delta: the text it holds back is not sent ahead of (and without) the verdict', async () => {
  let asked!: () => void;
  const wasAsked = new Promise<void>((resolve) => (asked = resolve));
  let answer!: (v: { action: string }) => void;
  const verdict = new Promise<{ action: string }>((resolve) => (answer = resolve));
  gate.__redteam20Gate = { asked, verdict };
  cleanups.push(async () => {
    answer({ action: 'end_session' });
    delete gate.__redteam20Gate;
  });
  const tp = await proxy([{ source: '', translated: 'mi tarjeta es 4111 1111' }]);
  const s = await openTranslation(tp);
  await s.next('session.created');
  s.translation.send({ type: 'session.input_audio_buffer.append', audio: FRAME });
  await wasAsked;
  // The judge has the delta; the upstream ends before it answers.
  tp.sim.connections.at(-1)!.drop();
  const { code, reason } = await s.closed;
  expect([code, reason]).toEqual([1011, 'upstream_closed']);
  // The judge would have ended the session on this delta: none of its text may reach the client.
  expect(shown(s.frames)).toEqual(['session.created', 'error']);
  expect(JSON.stringify(s.frames)).not.toContain('4111');
});
