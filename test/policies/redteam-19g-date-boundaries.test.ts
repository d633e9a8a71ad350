import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { phonesIn, piiSafeProxy, typedReachingModel } from './pii-safe-support.js';

/**
 * Red team 19g (pii, 5401a5e "a calendar date is not a phone number"). The phone detector takes a
 * run of 8-15 digits with one or two separators between them and refuses a run that goes on into
 * more digits (a card, a long id). A date written right before or after a phone number with one
 * separator (`2026-12-01 415-555-0100`, the line of a call log, a CRM export, a ticket) is one run of
 * 18 digits to it: no phone number, and the number passes. Now that a calendar date is known not to
 * be a phone number, it is no part of the number's run either. Adversary: none needed, a user pastes
 * a call log, or a model is asked to list "date phone" lines; under `pii-safe` the number reached
 * the model (typed) and the caller (model output) unredacted.
 * Guarantee broken: "`pii-safe` redacts phone numbers in both directions" (policies/README.md).
 * Left as it is (a trade-off, not fixed here): a timestamp `2026-12-01 14:05` is still redacted in
 * part (`2026-12-01 14` is 10 digits, no date), and a phone number joined to a date by a second
 * separator character (`2026-12-01-5550100`) is redacted with the date, as one number.
 */


describe('a calendar date next to a phone number', () => {
  it('is no part of its digit run: the phone number is found, the date is not', () => {
    expect(phonesIn('2026-12-01 415-555-0100 missed call')).toEqual(['415-555-0100']);
    expect(phonesIn('415-555-0100 2026-12-01 missed call')).toEqual(['415-555-0100']);
    expect(phonesIn('01.12.2026 +44 20 7946 0958')).toEqual(['+44 20 7946 0958']);
    expect(phonesIn('07.12.2026 030 1234567')).toEqual(['030 1234567']);
    expect(phonesIn('12-31-2026.4155550100')).toEqual(['4155550100']);
  });

  it('a long id after a date is still no phone number, and digit runs that are no dates still join', () => {
    expect(phonesIn('2026-12-01 1234 5678 9012 3456 7890')).toEqual([]);
    // The boundary is the date's shape (month and day not checked): more is redacted, never less.
    expect(phonesIn('2026-13-01 415-555-0100')).toEqual(['415-555-0100']);
    expect(phonesIn('2026-12-01-5550100')).toEqual(['2026-12-01-5550100']);
  });
});

describe('pii-safe through the proxy: a call log line', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await piiSafeProxy();
  });
  afterAll(async () => {
    await tp.stop();
  });

  it('the number is redacted before the model reads it and before the caller hears it; the date is not', async () => {
    const c = await tp.client();
    await c.next('session.created');
    // Current code: the text reached the model unchanged.
    expect(await typedReachingModel(tp, c, 'Missed call on 2026-12-02 415-555-0101, please return it.')).toBe('Missed call on 2026-12-02 [phone], please return it.');

    const raw: string[] = [];
    c.ws.on('message', (data, isBinary) => {
      if (!isBinary) raw.push((data as Buffer).toString('utf8'));
    });
    c.say('say: Call back 415-555-0102 2026-12-03 at the latest.');
    const done = await c.waitFor((e) => e.type === 'response.output_audio_transcript.done', 5000, 'the answer transcript');
    expect(done['transcript']).toBe('Call back [phone] 2026-12-03 at the latest.');
    // Every byte the client received: the number in no frame (deltas, .done, item events).
    expect(raw.filter((f) => f.includes('0102'))).toEqual([]);
    c.close();
  });

  /*
   * The fold turns every whitespace run into one space, so phone numbers one per line were one digit
   * run of 30 digits to the detector, no phone number: until 2026-12-07 a pasted contact list reached
   * the model whole. The phone detector now also reads the text with its line breaks kept.
   */
  it('phone numbers one per line are each redacted', async () => {
    const c = await tp.client();
    await c.next('session.created');
    expect(await typedReachingModel(tp, c, 'Numbers:\n415-555-0100\n415-555-0199\n415-555-0142')).toBe('Numbers:\n[phone]\n[phone]\n[phone]');
    c.close();
  });
});
