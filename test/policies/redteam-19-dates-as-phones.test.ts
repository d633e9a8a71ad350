import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { phonesIn, piiSafeProxy, typedReachingModel } from './pii-safe-support.js';

/**
 * A new user, not an adversary: a support team runs its tenant on the shipped `pii-safe` policy,
 * whose rules redact `phone` in user text (before the model reads it) and in the model's output
 * text. The built-in phone detector takes any 8-15 digits with separators, so calendar dates are
 * phone numbers to it: "I ordered on 2026-12-01" reaches the model as "I ordered on [phone]", and
 * "It arrives on 07.12.2026" reaches the caller as "It arrives on [phone]". Dates are everywhere in
 * orders, bookings and billing; nothing in them identifies a person.
 * Guarantee broken: redaction removes personal data, not the conversation's ordinary content.
 */


describe('the phone detector and calendar dates', () => {
  it('ISO and day.month.year dates are not phone numbers', () => {
    for (const date of ['2026-12-01', '2026.12.01', '01.12.2026', '31-12-2026', '12-31-2026']) expect(phonesIn(`delivered on ${date}, thanks`), date).toEqual([]);
  });

  it('phone numbers, including ones with a date-like grouping that is no date, are still found', () => {
    expect(phonesIn('call 415-555-0100 now')).toEqual(['415-555-0100']);
    expect(phonesIn('call +44 20 7946 0958 now')).toEqual(['+44 20 7946 0958']);
    expect(phonesIn('call 0049-30-12345678 now')).toEqual(['0049-30-12345678']);
    // Month 13 and day 32 are no dates.
    expect(phonesIn('call 2026-13-01 now')).toEqual(['2026-13-01']);
    expect(phonesIn('call 32.12.2026 now')).toEqual(['32.12.2026']);
  });
});

describe('pii-safe through the proxy: dates pass, phone numbers are redacted', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await piiSafeProxy();
  });
  afterAll(async () => {
    await tp.stop();
  });

  it('a typed date reaches the model and a spoken date reaches the caller unchanged', async () => {
    const c = await tp.client();
    await c.next('session.created');
    expect(await typedReachingModel(tp, c, 'I ordered on 2026-12-01; call me at 415-555-0100.')).toBe('I ordered on 2026-12-01; call me at [phone].');

    c.say('say: It arrives on 07.12.2026 at the latest.');
    const done = await c.waitFor((e) => e.type === 'response.output_audio_transcript.done', 5000, 'the answer transcript');
    expect(done['transcript']).toBe('It arrives on 07.12.2026 at the latest.');
    c.close();
  });
});
