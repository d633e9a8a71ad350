import { describe, expect, it } from 'vitest';
import { piiFinder } from './matchers.js';
import { BUILTIN_PII, ibanValid, luhnValid } from './pii.js';

function find(name: string, text: string): string[] {
  const d = BUILTIN_PII.find((x) => x.name === name)!;
  const out: string[] = [];
  piiFinder(d).find(text, (s, e) => out.push(text.slice(s, e)));
  return out;
}

describe('pii detectors', () => {
  it('luhn', () => {
    expect(luhnValid('4111 1111 1111 1111')).toBe(true);
    expect(luhnValid('4111 1111 1111 1112')).toBe(false);
    expect(luhnValid('79927398713')).toBe(true);
  });

  it('iban mod-97 and country length', () => {
    expect(ibanValid('GB82 WEST 1234 5698 7654 32')).toBe(true);
    expect(ibanValid('DE89370400440532013000')).toBe(true);
    expect(ibanValid('DE89370400440532013001')).toBe(false);
    expect(ibanValid('DE8937040044053201300')).toBe(false); // wrong length for DE
  });

  it('finds emails', () => {
    expect(find('email', 'write to john.doe+x@mail.example.co.uk today')).toEqual(['john.doe+x@mail.example.co.uk']);
    expect(find('email', 'no at sign here, and a@b is too short')).toEqual([]);
  });

  it('finds card numbers only when the Luhn check passes', () => {
    expect(find('card', 'card 4111 1111 1111 1111 exp 12/29')).toEqual(['4111 1111 1111 1111']);
    expect(find('card', 'card 4111-1111-1111-1111.')).toEqual(['4111-1111-1111-1111']);
    expect(find('card', 'order 4111 1111 1111 1112')).toEqual([]);
  });

  it('finds IBANs with mod-97 and trims words that follow', () => {
    expect(find('iban', 'pay to GB82 WEST 1234 5698 7654 32 now')).toEqual(['GB82 WEST 1234 5698 7654 32']);
    expect(find('iban', 'iban de89370400440532013000.')).toEqual(['de89370400440532013000']);
    expect(find('iban', 'GB82 WEST 1234 5698 7654 33')).toEqual([]);
  });

  it('finds phone numbers but not card numbers', () => {
    expect(find('phone', 'call +1 (415) 555-0100 please')).toEqual(['+1 (415) 555-0100']);
    expect(find('phone', 'call 030 1234 5678')).toEqual(['030 1234 5678']);
    expect(find('phone', 'card 4111 1111 1111 1111')).toEqual([]);
    expect(find('phone', 'room 12')).toEqual([]);
  });
});

/** `digits` plus the Luhn check digit. */
function withLuhn(digits: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(digits + d)) return digits + d;
  throw new Error('unreachable');
}

/** ISO 13616 check digits for `country` + `bban` (the test's own implementation of the standard). */
function withCheckDigits(country: string, bban: string): string {
  const digits = (bban + country + '00').toUpperCase().replace(/[A-Z]/g, (ch) => String(ch.charCodeAt(0) - 55));
  let rem = 0;
  for (const d of digits) rem = (rem * 10 + Number(d)) % 97;
  return `${country}${String(98 - rem).padStart(2, '0')}${bban}`;
}

describe('pii detectors at their edges', () => {
  it('hasDigit looks only from `from` on', async () => {
    const { hasDigit } = await import('./pii.js');
    expect(hasDigit('1abc', 0)).toBe(true);
    expect(hasDigit('1abc', 1)).toBe(false);
    expect(hasDigit('abc9', 2)).toBe(true);
    expect(hasDigit('', 0)).toBe(false);
  });

  it('luhn doubles every second digit from the right and ignores separators', () => {
    expect(luhnValid('0')).toBe(true);
    expect(luhnValid('18')).toBe(true); // 1*2 + 8 = 10
    expect(luhnValid('81')).toBe(false); // 8*2-9 + 1 = 8
    expect(luhnValid('59')).toBe(true); // 5*2-9 + 9 = 10
    expect(luhnValid('91')).toBe(true); // 9*2-9 + 1 = 10
    expect(luhnValid('19')).toBe(false); // 1*2 + 9 = 11
    expect(luhnValid('4-1-1-1 1111/1111:1111')).toBe(true);
    expect(luhnValid('')).toBe(false);
    expect(luhnValid('abc')).toBe(false);
    expect(luhnValid('5105105105105100')).toBe(true);
    expect(luhnValid('5105105105105106')).toBe(false);
  });

  it('iban: compact or spaced, any case, known country lengths, unknown countries by checksum alone', () => {
    expect(ibanValid('gb82 west 1234 5698 7654 32')).toBe(true);
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('GB82 WEST 1234 5698 7654 3')).toBe(false); // GB is 22 long
    const unknown = withCheckDigits('ZZ', '12345678901');
    expect(unknown).toHaveLength(15);
    expect(ibanValid(unknown)).toBe(true);
    expect(ibanValid(withCheckDigits('ZZ', '1234567890'))).toBe(false); // 14: too short
    expect(ibanValid(withCheckDigits('ZZ', '1'.repeat(30)))).toBe(true); // 34: the maximum
    expect(ibanValid(withCheckDigits('ZZ', '1'.repeat(31)))).toBe(false); // 35
    expect(ibanValid(withCheckDigits('ZZ', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'))).toBe(true);
    expect(ibanValid(withCheckDigits('NO', '93860111179'))).toBe(true); // NO: 15
    expect(ibanValid('1B82WEST12345698765432')).toBe(false);
    expect(ibanValid('GBX2WEST12345698765432')).toBe(false);
    expect(ibanValid('GB82WEST1234569876543!')).toBe(false);
    expect(ibanValid('GB83WEST12345698765432')).toBe(false);
  });

  it('email: local part up to 64, labels up to 63, up to 8 labels, TLD 2-24 letters, whole tokens only', () => {
    expect(find('email', `x ${'a'.repeat(64)}@example.com`)).toEqual([`${'a'.repeat(64)}@example.com`]);
    expect(find('email', `${'a'.repeat(65)}@example.com`)).toEqual([]);
    expect(find('email', `me@${'b'.repeat(63)}.com`)).toEqual([`me@${'b'.repeat(63)}.com`]);
    expect(find('email', `me@${'b'.repeat(64)}.com`)).toEqual([]);
    expect(find('email', 'me@ab.ab.ab.ab.ab.ab.ab.ab.ab.ab.com')).toEqual(['me@ab.ab.ab.ab.ab.ab.ab.ab.ab']);
    expect(find('email', 'me@example.c')).toEqual([]);
    expect(find('email', `me@example.${'c'.repeat(24)}`)).toEqual([`me@example.${'c'.repeat(24)}`]);
    expect(find('email', `me@example.${'c'.repeat(25)}`)).toEqual([]);
    expect(find('email', 'me@example.com-x')).toEqual([]);
    expect(find('email', 'me@example.com9')).toEqual([]);
    expect(find('email', 'me@example.com.')).toEqual(['me@example.com']);
    expect(find('email', 'A.B_c%d+e-f@Sub-1.Example.ORG')).toEqual(['A.B_c%d+e-f@Sub-1.Example.ORG']);
    expect(find('email', 'a@b.co and c@d.io')).toEqual(['a@b.co', 'c@d.io']);
    expect(find('email', 'me@@example.com')).toEqual([]);
  });

  it('card: 13 to 19 digits with single spaces or dashes, whole digit runs, longest Luhn-valid prefix', () => {
    expect(find('card', '4222222222222')).toEqual(['4222222222222']); // 13 digits
    expect(find('card', '422222222222')).toEqual([]); // 12
    const nineteen = withLuhn('411111111111111111');
    expect(nineteen).toHaveLength(19);
    expect(find('card', `no ${nineteen} ok`)).toEqual([nineteen]);
    expect(find('card', `${nineteen}4`)).toEqual([]); // a 20-digit run is not a card
    expect(find('card', '94111111111111111')).toEqual([]); // inside a longer digit run
    expect(find('card', '41111111111111119')).toEqual([]);
    expect(find('card', 'a4111111111111111b')).toEqual(['4111111111111111']);
    expect(find('card', '4111  1111 1111 1111')).toEqual([]); // two spaces is not a separator
    expect(find('card', '4111.1111.1111.1111')).toEqual([]);
    expect(find('card', 'card 4111 1111 1111 1111 2 items')).toEqual(['4111 1111 1111 1111']);
    expect(find('card', 'card 4111-1111-1111-1111-7 x')).toEqual(['4111-1111-1111-1111']);
    expect(find('card', '4111 1111 1111 1112 4111111111111111')).toEqual(['4111111111111111']);
  });

  it('iban in text: letters, 2 check digits, 11-30 more, trimmed to the valid prefix, whole tokens only', () => {
    expect(find('iban', 'XGB82WEST12345698765432')).toEqual([]);
    expect(find('iban', 'GB82WEST12345698765432X')).toEqual([]);
    expect(find('iban', 'GB82WEST12345698765432 and more words')).toEqual(['GB82WEST12345698765432']);
    expect(find('iban', 'GB82 WEST 1234 5698 7654 32 AB12 x')).toEqual(['GB82 WEST 1234 5698 7654 32']);
    const short = withCheckDigits('ZZ', '12345678901');
    expect(find('iban', `to ${short}.`)).toEqual([short]);
    expect(find('iban', `to ${withCheckDigits('ZZ', '1234567890')}.`)).toEqual([]);
    expect(find('iban', 'GB82  WEST 1234 5698 7654 32')).toEqual([]);
  });

  it('phone: 8 to 15 digits, +/00 prefix, up to two separators between digits, not inside longer numbers or words', () => {
    expect(find('phone', 'call 1234567 now')).toEqual([]);
    expect(find('phone', 'call 12345678 now')).toEqual(['12345678']);
    expect(find('phone', 'call 123456789012345 now')).toEqual(['123456789012345']);
    expect(find('phone', 'call 1234567890123456 now')).toEqual([]);
    expect(find('phone', 'call 0049 30 1234567 now')).toEqual(['0049 30 1234567']);
    expect(find('phone', 'call +49-30-1234567')).toEqual(['+49-30-1234567']);
    expect(find('phone', 'call 12..34..56..78')).toEqual(['12..34..56..78']);
    expect(find('phone', 'call 12...34...56...78')).toEqual([]);
    expect(find('phone', 'id x12345678')).toEqual([]);
    expect(find('phone', 'id 12345678x')).toEqual([]);
    expect(find('phone', 'id _12345678')).toEqual([]);
    expect(find('phone', 'n 1234567890123456 12345678')).toEqual([]);
    expect(find('phone', 'n 9 12345678')).toEqual(['9 12345678']);
    expect(find('phone', 'n 12345678 9')).toEqual(['12345678 9']);
    expect(find('phone', 'n 123456789012345 1')).toEqual([]);
    expect(find('phone', 'n 123456789012345-1')).toEqual([]);
    expect(find('phone', 'n 1234567890123451')).toEqual([]);
    expect(find('phone', 'n ++12345678')).toEqual([]);
    expect(find('phone', '(030) 1234 5678')).toEqual(['(030) 1234 5678']);
  });

  it('validators by name', async () => {
    const { validatorFor } = await import('./pii.js');
    expect(validatorFor('none')).toBeUndefined();
    expect(validatorFor('luhn')!('4111 1111 1111 1111')).toBe(19);
    expect(validatorFor('luhn')!('4111 1111 1111 1112')).toBe(0);
    expect(validatorFor('mod97')!('GB82 WEST 1234 5698 7654 32')).toBe(27);
    expect(validatorFor('mod97')!('GB82 WEST 1234 5698 7654 33')).toBe(0);
  });

  it('declares bounds that cover the longest match of each detector', () => {
    const max = Object.fromEntries(BUILTIN_PII.map((d) => [d.name, d.maxLength]));
    expect(max).toEqual({ email: 64 + 1 + 8 * 64 + 24, card: 38, iban: 68, phone: 48 });
    const longestCard = withLuhn('411111111111111111').split('').join('-');
    expect(longestCard).toHaveLength(37);
    expect(find('card', longestCard)).toEqual([longestCard]);
    expect(longestCard.length).toBeLessThanOrEqual(max['card']!);
  });

  it('prefilters skip text that cannot match', () => {
    const byName = new Map(BUILTIN_PII.map((d) => [d.name, d]));
    expect(byName.get('email')!.prefilter!('no at sign', 0)).toBe(false);
    expect(byName.get('email')!.prefilter!('a@b', 0)).toBe(true);
    expect(byName.get('email')!.prefilter!('a@b', 2)).toBe(false);
    expect(byName.get('card')!.prefilter!('no digits', 0)).toBe(false);
    expect(byName.get('iban')!.prefilter!('x1', 0)).toBe(true);
    expect(byName.get('phone')!.prefilter!('1x', 1)).toBe(false);
  });
});
