import { describe, expect, it } from 'vitest';
import { policyFrom } from '../../test/policies/support.js';
import { callRelock, lockedSessionUpdate } from './locks.js';

/**
 * Survivors of the 2026-12-06 mutation run of locks.ts's changed lines (651da13: the
 * inputTranscription lock compares the whole setting; what the upstream shows is compared without
 * the defaults it adds for members that do not steer the transcript).
 *
 * `'language'` emptied in TRANSCRIPT_STEERING survived: no test showed a session whose transcription
 * carries a `language`. It steers the transcript, so it is compared in what the upstream shows: a
 * call's browser that sets one beside a lock that sets none gets the locked setting put back, and a
 * lock that sets one, echoed as it is, needs no relock.
 */
const withTranscription = (transcription: unknown) => ({ type: 'realtime', audio: { input: { transcription } } });

describe("locks.ts, today's survivors: a transcription's language in what the upstream shows", () => {
  it('a language beside a lock that sets none (a call\'s browser set it) is put back to the locked setting', async () => {
    const policy = await policyFrom('locks:\n  inputTranscription: { model: gpt-4o-mini-transcribe, prompt: "Acme, Globex" }');
    const locked = { model: 'gpt-4o-mini-transcribe', prompt: 'Acme, Globex' };
    const shown = withTranscription({ ...locked, language: 'de' });
    expect(lockedSessionUpdate(shown, policy)).toEqual(withTranscription(locked));
    expect(callRelock(shown, policy)).toEqual({ update: withTranscription(locked), cannot: null });
  });

  it('control: a lock that sets a language, echoed with it (and a non-steering default), needs no relock', async () => {
    const policy = await policyFrom('locks:\n  inputTranscription: { model: gpt-4o-mini-transcribe, language: en }');
    const shown = withTranscription({ model: 'gpt-4o-mini-transcribe', language: 'en', delay: 'medium' });
    expect(lockedSessionUpdate(shown, policy)).toBeNull();
    expect(callRelock(shown, policy)).toEqual({ update: null, cannot: null });
    // Another language in its place is relocked.
    expect(lockedSessionUpdate(withTranscription({ model: 'gpt-4o-mini-transcribe', language: 'fr' }), policy)).toEqual(withTranscription({ model: 'gpt-4o-mini-transcribe', language: 'en' }));
  });
});
