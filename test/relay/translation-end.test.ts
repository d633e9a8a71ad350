import { afterEach, describe, expect, it } from 'vitest';
import { openTranslation as open, shownFrames, SILENT_FRAME, translatingProxy, type Session } from './translation-support.js';
import type { SimConnection, TranslatedFrame } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * The end of a translation session. Its transcripts stream without a `.done`, so text the guardrails
 * hold back at the end (a trailing card number, a phrase that nothing after it settles) was judged by
 * nothing: until 2026-12-07 it was never sent (the client lost the last words) and a stopping rule on
 * it never fired. Now the upstream's `session.closed` (its end of stream, after the client's
 * `session.close`) judges and releases it. `openai`'s OpenAIRealtimeTranslationWS on loopback (TLS),
 * the simulator upstream; every frame the client receives is asserted.
 */


const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A proxy whose tenant runs `policy`, the simulator translating frame n as `said[n]` (the last one after). */
const proxy = (policy: string, said: readonly TranslatedFrame[]): Promise<TestProxy> => translatingProxy({ 'translate.yaml': policy }, said, cleanups);


const FRAME = SILENT_FRAME;

/** Opens a session (source transcription on), sends `frames` frames of audio, then `session.close`; resolves at the close. */
async function translateAndClose(tp: TestProxy, frames: number): Promise<{ s: Session; code: number; reason: string }> {
  const s = await open(tp);
  await s.next('session.created');
  s.translation.send({ type: 'session.update', session: { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } } } } });
  await s.next('session.updated');
  for (let k = 0; k < frames; k++) s.translation.send({ type: 'session.input_audio_buffer.append', audio: FRAME });
  s.translation.send({ type: 'session.close' });
  const { code, reason } = await s.closed;
  return { s, code, reason };
}

const shown = shownFrames;

describe('the end of a translation session', () => {
  it('releases what the transcripts held back, redacted, before session.closed', async () => {
    const tp = await proxy(
      `
guardrails:
  rules:
    - { id: phone, sources: [input], match: { pii: [phone] }, action: redact }
    - { id: card, sources: [output], match: { pii: [card] }, action: redact }
`,
      [
        { source: 'hello', translated: 'hola ' },
        { source: ' call me at 415-555-0100', translated: 'mi tarjeta es 4111 1111 1111 1111' },
      ],
    );
    const { s, code } = await translateAndClose(tp, 2);
    expect(code).toBe(1000);
    expect(shown(s.frames)).toEqual([
      'session.created',
      'session.updated',
      'session.input_transcript.delta: hello',
      'session.output_transcript.delta: hola ',
      'session.output_audio.delta',
      // The trailing numbers could still go on: held back.
      'session.input_transcript.delta:  call me at ',
      'session.output_transcript.delta: mi tarjeta es ',
      'session.output_audio.delta',
      // The end of the stream settles them: released, redacted, before the close.
      'session.input_transcript.delta: [REDACTED:phone]',
      'session.output_transcript.delta: [REDACTED:card]',
      'session.closed',
    ]);
    expect(JSON.stringify(s.frames)).not.toMatch(/0100|1111/);
  });

  it('text that nothing held is not sent twice, and a session without rules for a source is untouched', async () => {
    const tp = await proxy(
      `
guardrails:
  rules:
    - { id: card, sources: [output], match: { pii: [card] }, action: redact }
`,
      [{ source: 'fine', translated: 'bien. ' }],
    );
    const { s, code } = await translateAndClose(tp, 2);
    expect(code).toBe(1000);
    expect(shown(s.frames)).toEqual([
      'session.created',
      'session.updated',
      'session.input_transcript.delta: fine',
      'session.output_transcript.delta: bien. ',
      'session.output_audio.delta',
      'session.input_transcript.delta: fine',
      'session.output_transcript.delta: bien. ',
      'session.output_audio.delta',
      'session.closed',
    ]);
  });

  it('a stopping rule tripped by the held text ends the session with its error; the text is never sent', async () => {
    const tp = await proxy(
      `
guardrails:
  rules:
    - { id: secret, sources: [output], match: { phrases: ["launch codes"] }, action: end_session }
`,
      [
        { source: 'one', translated: 'first, ' },
        { source: 'two', translated: 'here are the launch codes' },
      ],
    );
    const { s, code, reason } = await translateAndClose(tp, 2);
    expect([code, reason]).toEqual([4003, 'policy_violation']);
    expect(shown(s.frames)).toEqual([
      'session.created',
      'session.updated',
      'session.input_transcript.delta: one',
      'session.output_transcript.delta: first, ',
      'session.output_audio.delta',
      'session.input_transcript.delta: two',
      // "launch codes" at the very end could still be a longer word: held back.
      'session.output_transcript.delta: here are the ',
      'session.output_audio.delta',
      'error',
    ]);
    expect(s.frames.at(-1)!['error']).toMatchObject({ code: 'policy_violation' });
    expect(JSON.stringify(s.frames)).not.toContain('launch');
  });

  it('a block (no response to cancel in a translation session) ends it too', async () => {
    const tp = await proxy(
      `
guardrails:
  rules:
    - { id: card, sources: [input], match: { pii: [card] }, action: block }
`,
      [{ source: 'my card is 4111 1111 1111 1111', translated: 'ok ' }],
    );
    const { s, code, reason } = await translateAndClose(tp, 1);
    expect([code, reason]).toEqual([4003, 'policy_violation']);
    expect(shown(s.frames)).toEqual(['session.created', 'session.updated', 'session.input_transcript.delta: my card is ', 'session.output_transcript.delta: ok ', 'session.output_audio.delta', 'error']);
    expect(JSON.stringify(s.frames)).not.toContain('4111');
  });
});

/*
 * An upstream that ends without `session.closed` (its socket dropped, or closed without it): what
 * the transcripts held back is judged as `session.closed` judges it, before the client hears the
 * upstream ended. Until 2026-12-07 it went with the upstream: never judged, never sent.
 */
describe('an upstream that ends without session.closed', () => {
  /** Sends one frame of audio, waits for its translation at the client, then ends the upstream with `end`. */
  async function translateThenEnd(tp: TestProxy, end: (upstream: SimConnection) => void): Promise<{ s: Session; code: number; reason: string }> {
    const s = await open(tp);
    await s.next('session.created');
    s.translation.send({ type: 'session.input_audio_buffer.append', audio: FRAME });
    await s.next('session.output_audio.delta');
    end(tp.sim.connections.at(-1)!);
    const { code, reason } = await s.closed;
    return { s, code, reason };
  }
  const CARD_RULE = `
guardrails:
  rules:
    - { id: card, sources: [output], match: { pii: [card] }, action: redact }
`;

  it('a dropped upstream: the held fragment (no card number on its own) reaches the client before the error', async () => {
    const tp = await proxy(CARD_RULE, [{ source: '', translated: 'mi tarjeta es 4111 1111' }]);
    const { s, code, reason } = await translateThenEnd(tp, (upstream) => upstream.drop());
    expect([code, reason]).toEqual([1011, 'upstream_closed']);
    expect(shown(s.frames)).toEqual([
      'session.created',
      // The digits could still become a card number: held back.
      'session.output_transcript.delta: mi tarjeta es ',
      'session.output_audio.delta',
      // The upstream's end settles them: eight digits are no card number, sent as they are.
      'session.output_transcript.delta: 4111 1111',
      'error',
    ]);
    expect(s.frames.at(-1)!['error']).toMatchObject({ code: 'upstream_closed' });
  });

  it('an upstream closing cleanly without session.closed: the held card number is released redacted', async () => {
    const tp = await proxy(CARD_RULE, [{ source: '', translated: 'mi tarjeta es 4111 1111 1111 1111' }]);
    const { s, code } = await translateThenEnd(tp, (upstream) => upstream.closeWith(1000, ''));
    expect(code).toBe(1000);
    expect(shown(s.frames)).toEqual(['session.created', 'session.output_transcript.delta: mi tarjeta es ', 'session.output_audio.delta', 'session.output_transcript.delta: [REDACTED:card]']);
    expect(JSON.stringify(s.frames)).not.toContain('1111');
  });

  it('a stopping rule tripped by the held text ends the session with its error instead of the upstream\'s', async () => {
    const tp = await proxy(
      `
guardrails:
  rules:
    - { id: secret, sources: [output], match: { phrases: ["launch codes"] }, action: end_session }
`,
      [{ source: '', translated: 'here are the launch codes' }],
    );
    const { s, code, reason } = await translateThenEnd(tp, (upstream) => upstream.drop());
    expect([code, reason]).toEqual([4003, 'policy_violation']);
    expect(shown(s.frames)).toEqual(['session.created', 'session.output_transcript.delta: here are the ', 'session.output_audio.delta', 'error']);
    expect(s.frames.at(-1)!['error']).toMatchObject({ code: 'policy_violation' });
    expect(JSON.stringify(s.frames)).not.toContain('launch');
  });

  // For contrast, an ordinary (realtime) session, unchanged: a response the upstream cuts off has no
  // `.done` nor `response.done` to settle its text, so what a rule held back of it is never judged
  // complete: it stays held (the client gets the rest of the text, then the error).
  it('an ordinary session: what a rule held of a response cut off by the upstream is not sent', async () => {
    const tp = await startTestProxy({ tenants: { acme: { policy: 'cards' } }, config: { policies: { dir: policyDir({ 'cards.yaml': CARD_RULE }), watch: false } } });
    cleanups.push(() => tp.stop());
    const c = await tp.client({ tenant: 'acme' });
    await c.next('session.created');
    const transcript = (events: readonly { type: string; [k: string]: unknown }[]) => events.filter((e) => e.type === 'response.output_audio_transcript.delta').map((e) => String(e['delta'])).join('');
    // A whole response first: the audio deltas it takes, and its held digits released at its end.
    c.say('say: my card is 4111 1111');
    await c.next('response.done');
    expect(transcript(c.events)).toBe('my card is 4111 1111');
    const chunks = c.ofType('response.output_audio.delta').length;
    // The same again, the upstream dropped right after its last audio delta (every word streamed, no `.done`).
    tp.sim.connections.at(-1)!.dropAfterDeltas(chunks);
    const from = c.events.length;
    c.say('say: my card is 4111 1111');
    expect((await c.closed).code).toBe(1011);
    const second = c.events.slice(from);
    expect(transcript(second)).toBe('my card is ');
    expect(second.map((e) => e.type)).not.toContain('response.done');
    expect(second.at(-1)).toMatchObject({ type: 'error', error: { code: 'upstream_closed' } });
  });
});
