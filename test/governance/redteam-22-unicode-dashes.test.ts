/**
 * Red team 22 (governance): a card number, phone number or IBAN whose groups are joined by a Unicode
 * dash instead of the ASCII hyphen.
 *
 * The `card`, `iban` and `phone` detectors take `-` (and space, dot, slash, underscore) between
 * digit groups, and the fold mapped only the compatibility forms NFKD turns into `-` (fullwidth
 * `－`, small `﹣`). Every other dash was kept: the hyphen U+2010, the non-breaking hyphen U+2011
 * (which models write between the groups of phone numbers on their own), the figure, en and em
 * dashes, the minus sign U+2212. A model reads `4111‑1111‑1111‑1111` as the card number it is. So
 * under `customer-support` a user types a card number with non-breaking hyphens and it reaches the
 * model whole (`card-numbers-in`, redact: "Card numbers in typed text and tool outputs never reach
 * the model"), and a model asked to read a stored card back "with en dashes" shows it to the client
 * (`no-card-numbers-out`, cancel_response). Dashes and minus signs now fold to `-`
 * (src/policies/normalize.ts `DASH`).
 */
import { describe, expect, it } from 'vitest';
import { normalizeText } from '../../src/policies/normalize.js';
import { customerSupportProxy } from '../policies/shipped-policy.js';

const NB_HYPHEN = '\u2011';
const EN_DASH = '\u2013';
/** The upstream answers a response.create with the card read back, its groups joined by en dashes. */
const SPOKEN = ['Your card on file is ', `4111${EN_DASH}1111${EN_DASH}`, `1111${EN_DASH}1111`, ', as requested.'];

const proxy = customerSupportProxy(SPOKEN);

describe('card numbers whose groups a Unicode dash joins (customer-support)', () => {
  it('input: a card number with non-breaking hyphens is redacted before the model sees it', async () => {
    // Old code: 'my card is 4111‑1111‑1111‑1111' reached the upstream unchanged.
    expect(await proxy.relayedText(`my card is 4111${NB_HYPHEN}1111${NB_HYPHEN}1111${NB_HYPHEN}1111`)).toBe('my card is [REDACTED:card]');
  });

  it('input: the hyphen, figure dash, em dash and minus sign, and a mix of them in one number', async () => {
    for (const dash of ['\u2010', '\u2012', '\u2014', '\u2212']) {
      expect(await proxy.relayedText(`card 4111${dash}1111${dash}1111${dash}1111 thanks`)).toBe('card [REDACTED:card] thanks');
    }
    expect(await proxy.relayedText(`card 4111\u20131111-1111\u22121111`)).toBe('card [REDACTED:card]');
  });

  it('control: a range written with an en dash, and an order number, pass unchanged', async () => {
    const text = `pages 10${EN_DASH}12 of order 1234${EN_DASH}5678`;
    expect(await proxy.relayedText(text)).toBe(text);
  });

  it('output: a card read back with en dashes stops the response; no byte the client got carries its digits', async () => {
    const { c } = await proxy.connect();
    c.send({ type: 'response.create', event_id: 'evt_resp' });
    const notice = await c.next('rtproxy.notice');
    // Old code: every delta reached the client and no notice came (the wait timed out).
    expect((notice['notice'] as { code?: unknown }).code).toBe('response_cancelled_by_policy');
    const received = JSON.stringify(c.events);
    expect(received).not.toContain('1111');
    expect(normalizeText(c.ofType('response.output_audio_transcript.delta').map((e) => String(e['delta'])).join(''))).not.toMatch(/4111/);
    c.close();
  });

  it('normalize: every dash and minus sign reads as the ASCII hyphen; other punctuation as before', () => {
    expect(normalizeText('a\u2010b\u2011c\u2012d\u2013e\u2014f\u2015g\u2212h')).toBe('a-b-c-d-e-f-g-h');
    // Through NFKD: superscript and subscript minus (→ U+2212), small em dash (→ U+2014), fullwidth as before.
    expect(normalizeText('1\u207b2\u208b3\ufe584\uff0d5')).toBe('1-2-3-4-5');
    expect(normalizeText('x\u02d7y\u2043z\u2796w')).toBe('x-y-z-w');
    expect(normalizeText('a\u2019b \u2026 c\u00b7d')).toBe('a\u2019b ... c\u00b7d');
  });
});
