/**
 * Red team (guardrails, second pass of the fifteenth session): card numbers in the decimal digits of
 * another script.
 *
 * The `card`, `iban` and `phone` detectors take ASCII digits (`\d`), and the fold maps only the
 * compatibility digits (fullwidth, mathematical) to them. Arabic-Indic (`٤١١١`), Devanagari
 * (`४१११`), Thai (`๔๑๑๑`) and the other `Nd` digits were kept. A model reads them as digits. So a
 * user under `customer-support` types a card number in Arabic-Indic digits and it reaches the model
 * whole (`card-numbers-in`, redact: "Card numbers in typed text and tool outputs never reach the
 * model"), and a user who asks the model to read a stored card back "in Hindi numerals" gets it on
 * the client (`no-card-numbers-out`, cancel_response). Decimal digits of every script now fold to
 * ASCII (src/policies/normalize.ts `asciiDigit`).
 */
import { describe, expect, it } from 'vitest';
import { normalizeText } from '../../src/policies/normalize.js';
import { customerSupportProxy } from './shipped-policy.js';

/** `text` with its ASCII digits written in the script whose zero is `zero`. */
const digitsOf = (zero: number, text: string): string => text.replace(/[0-9]/g, (d) => String.fromCodePoint(zero + Number(d)));
const ARABIC_INDIC = 0x660;
const DEVANAGARI = 0x966;
const CARD = '4111 1111 1111 1111';
/** The upstream answers a response.create with the card read back in Devanagari digits. */
const SPOKEN = ['Your card on file is ', digitsOf(DEVANAGARI, '4111 1111 '), digitsOf(DEVANAGARI, '1111 1111'), ', as requested.'];

const proxy = customerSupportProxy(SPOKEN);
const { relayedText } = proxy;

describe('card numbers in other scripts\u2019 digits (customer-support)', () => {
  it('input: an Arabic-Indic card number is redacted before the model sees it', async () => {
    // Old code: 'my card is ٤١١١ ١١١١ ١١١١ ١١١١' reached the upstream unchanged.
    expect(await relayedText(`my card is ${digitsOf(ARABIC_INDIC, CARD)}`)).toBe('my card is [REDACTED:card]');
  });

  it('input: mixed scripts in one number, and Devanagari without separators', async () => {
    expect(await relayedText(`card ${digitsOf(ARABIC_INDIC, '4111')} 1111 1111 1111 thanks`)).toBe('card [REDACTED:card] thanks');
    expect(await relayedText(`card ${digitsOf(DEVANAGARI, '4111111111111111')}`)).toBe('card [REDACTED:card]');
  });

  it('control: digits of other scripts that are no card pass unchanged', async () => {
    const order = `order ${digitsOf(ARABIC_INDIC, '1234')} arrives`;
    expect(await relayedText(order)).toBe(order);
  });

  it('output: a card read back in Devanagari digits stops the response before its digits show', async () => {
    const { noticeCode, shown } = await proxy.spokenAnswer();
    // Old code: every delta reached the client and no error came (the wait timed out).
    expect(noticeCode).toBe('response_cancelled_by_policy');
    expect(normalizeText(shown)).not.toMatch(/4111/);
  });

  it('normalize: decimal digits of every script read as ASCII digits; other numbers are kept', () => {
    expect(normalizeText(digitsOf(ARABIC_INDIC, '0123456789'))).toBe('0123456789');
    expect(normalizeText(digitsOf(0x0e50, '4242'))).toBe('4242'); // Thai
    expect(normalizeText(digitsOf(0x1d7ce, '42'))).toBe('42'); // mathematical bold (NFKD, as before)
    // Two runs of ten next to each other (U+116D0 and U+116DA, Myanmar Extended-C): each from its own zero.
    expect(normalizeText(digitsOf(0x116da, '42'))).toBe('42');
    expect(normalizeText('Ⅻ ½')).toBe('XII 1⁄2'); // not decimal digits: as NFKD leaves them
  });
});
