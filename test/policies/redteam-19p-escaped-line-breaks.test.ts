import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { phonesIn, piiSafeProxy, typedReachingModel } from './pii-safe-support.js';

/*
 * Red team 19p (73c5136, "phone numbers one per line are each redacted"). A line break written as
 * its escape, the two characters `\n` (JSON or code shown as text: a pasted export, a model asked to
 * "answer as a JSON string", a log line), puts the letter `n` right before the next value. `phone` and
 * `iban` refuse a value glued to a letter (`x4155550100` is an id), so every number after such an
 * escape passed: `Numbers:\n415-555-0100\n415-555-0199` reached the model whole under `pii-safe`,
 * and `{"contacts":"415-555-0100\n415-555-0199"}` had only its first number redacted. In tool-call
 * arguments (JSON, whose escapes are decoded) the same text was redacted, so the guarantee held only
 * for one of the forms. Adversary: none needed (a pasted export); or a user asking the model to
 * write the numbers "separated by \n". Guarantee broken: "`pii-safe` redacts phone numbers in both
 * directions" (policies/README.md), the one-per-line case this change set out to fix.
 */

let tp: TestProxy;
beforeAll(async () => {
  tp = await piiSafeProxy();
});
afterAll(async () => {
  await tp.stop();
});

it('the detector takes a number right after an escape (\\n, \\t, \\r), not after a letter', () => {
  expect(phonesIn(String.raw`Numbers:\n415-555-0100\n415-555-0199`)).toEqual(['415-555-0100', '415-555-0199']);
  expect(phonesIn(String.raw`tel:\t+44 20 7946 0958\r\n030 1234567`)).toEqual(['+44 20 7946 0958', '030 1234567']);
  // Still no phone number: a value glued to a word (an id), or to a letter after an escaped backslash.
  expect(phonesIn('id x4155550100 and n4155550199')).toEqual([]);
});

it('typed: every number after an escaped line break is redacted before the model reads it, and an IBAN too', async () => {
  const cases: Array<[string, string]> = [
    [String.raw`Export: {"contacts":"415-555-0100\n415-555-0199"}`, String.raw`Export: {"contacts":"[phone]\n[phone]"}`],
    [String.raw`Numbers:\n415-555-0100\n415-555-0199`, String.raw`Numbers:\n[phone]\n[phone]`],
    [String.raw`iban:\nDE89370400440532013000`, String.raw`iban:\n[iban]`],
  ];
  // One session each: the upstream's last create is the one judged.
  for (const [typed, reaching] of cases) {
    const c = await tp.client();
    await c.next('session.created');
    expect(await typedReachingModel(tp, c, typed)).toBe(reaching);
    c.close();
  }
});

it('said by the model: the numbers are in no frame the client receives', async () => {
  const c = await tp.client();
  await c.next('session.created');
  const raw: string[] = [];
  c.ws.on('message', (data, isBinary) => {
    if (!isBinary) raw.push((data as Buffer).toString('utf8'));
  });
  c.say(String.raw`say: Numbers:\n415-555-0102\n415-555-0103 done.`);
  const done = await c.waitFor((e) => e.type === 'response.output_audio_transcript.done', 5000, 'the answer transcript');
  expect(done['transcript']).toBe(String.raw`Numbers:\n[phone]\n[phone] done.`);
  expect(raw.filter((f) => f.includes('0102') || f.includes('0103'))).toEqual([]);
  c.close();
});
