/**
 * Red team 18t (guardrails): enclosed digits whose NFKD adds punctuation, the parenthesized
 * numbers' twins (201df06 `unparenthesized` read `⑷⑴⑴⑴` as 4111).
 *
 * DIGIT FULL STOP (`⒈`–`⒛` U+2488–249B) decomposes to `1.`, DIGIT COMMA (`🄁`–`🄊` U+1F101–1F10A) to
 * `0,`–`9,` (and `🄀` U+1F100 to `0.`): a card number typed in them folded to `4.1.1.1. 1.1.1.1. …`,
 * which no card pattern matches, while a model reads the digits. Adversary: a tenant key under
 * `customer-support` sends `my card is ⒋⒈⒈⒈ ⒈⒈⒈⒈ ⒈⒈⒈⒈ ⒈⒈⒈⒈`: it reached the upstream unchanged.
 * Guarantee broken: PII the policy redacts never reaches the model (policies/README.md, "Normalisation").
 */
import { describe, expect, it } from 'vitest';
import { normalizeText } from '../../src/policies/normalize.js';
import { customerSupportProxy } from './shipped-policy.js';

const fullStop = (digits: string) => digits.replace(/[1-9]/g, (d) => String.fromCodePoint(0x2487 + Number(d)));
const comma = (digits: string) => digits.replace(/[0-9]/g, (d) => String.fromCodePoint(0x1f101 + Number(d)));

const { relayedText } = customerSupportProxy();

describe('red team 18t: digits with a full stop or a comma (customer-support: card, redact)', () => {
  it('a card number in DIGIT FULL STOP characters is redacted', async () => {
    // Old code: 'my card is ⒋⒈⒈⒈ ⒈⒈⒈⒈ ⒈⒈⒈⒈ ⒈⒈⒈⒈' reached the upstream unchanged.
    expect(await relayedText(`my card is ${fullStop('4111 1111 1111 1111')}`)).toBe('my card is [REDACTED:card]');
  });

  it('a card number in DIGIT COMMA characters is redacted', async () => {
    expect(await relayedText(`my card is ${comma('4111 1111 1111 1111')}`)).toBe('my card is [REDACTED:card]');
  });

  it('normalize: each reads as the number it shows', () => {
    expect(normalizeText('⒋⒈⒈⒈ ⒛ 🄀🄁🄅')).toBe('4111 20 004');
    // Ordinary punctuation after digits stays.
    expect(normalizeText('1. 2, 3.')).toBe('1. 2, 3.');
  });
});
