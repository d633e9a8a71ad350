import { describe, expect, it } from 'vitest';
import { piiFinder } from './matchers.js';
import { BUILTIN_PII, ibanValid, luhnValid, validatorFor } from './pii.js';

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

  it('a value right after an escaped line break (`\\n`, `\\t`) is found; right after a letter it is not (test/policies/redteam-19p-escaped-line-breaks.test.ts)', () => {
    expect(find('phone', String.raw`a\n415-555-0100\t030 1234567`)).toEqual(['415-555-0100', '030 1234567']);
    expect(find('phone', 'a n415-555-0100 x')).toEqual([]);
    expect(find('iban', String.raw`iban:\nDE89370400440532013000`)).toEqual(['DE89370400440532013000']);
    expect(find('iban', 'iban nDE89370400440532013000 1DE89370400440532013000')).toEqual([]);
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

  it('card: 13 to 19 digits with single separators (space, dash, dot, slash, underscore), whole digit runs, longest Luhn-valid prefix', () => {
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
    // Found 2026-12-04: dots, slashes or underscores between the groups hid a card.
    for (const sep of ['.', '/', '_']) expect(find('card', `x 4111${sep}1111${sep}1111${sep}1111 y`)).toEqual([`4111${sep}1111${sep}1111${sep}1111`]);
    expect(find('card', '4111..1111.1111.1111')).toEqual([]);
    expect(find('card', '4111,1111,1111,1111')).toEqual([]); // a comma is not a group separator (lists of numbers)
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
    // Found 2026-12-04: hyphens between the groups hid an IBAN.
    expect(find('iban', 'pay DE89-3704-0044-0532-0130-00 now')).toEqual(['DE89-3704-0044-0532-0130-00']);
    expect(find('iban', 'DE89--3704-0044-0532-0130-00')).toEqual([]);
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
    // `_` separates (markdown emphasis, snake_case): found 2026-12-05, it hid the number.
    expect(find('phone', 'id _12345678')).toEqual(['12345678']);
    expect(find('phone', 'call _+1 415 555 2671_ or call_4155552671_now')).toEqual(['+1 415 555 2671', '4155552671']);
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

/** The test's own ISO 7064 mod-97 remainder of an IBAN-shaped string (letters count 10-35). */
function mod97(iban: string): number {
  const digits = (iban.slice(4) + iban.slice(0, 4)).toUpperCase().replace(/[A-Z]/g, (ch) => String(ch.charCodeAt(0) - 55));
  let rem = 0;
  for (const d of digits) rem = (rem * 10 + Number(d)) % 97;
  return rem;
}

/** `prefix` plus two alphanumerics that make its mod-97 remainder 1 (a forged checksum). */
function forged(prefix: string): string {
  const alnum = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  for (const a of alnum) for (const b of alnum) if (mod97(prefix + a + b) === 1) return prefix + a + b;
  throw new Error('no forgery');
}

const detector = (name: string) => BUILTIN_PII.find((d) => d.name === name)!;
const hold = (name: string, text: string) => detector(name).holdStart!(text);

describe('pii detectors against forged and borderline input', () => {
  it('card: a Luhn-valid 12-digit prefix of a longer invalid run is not a card', () => {
    const twelve = withLuhn('41111111111');
    const last = [...'0123456789'].find((d) => !luhnValid(twelve + d))!;
    const spaced = `${twelve.slice(0, 4)} ${twelve.slice(4, 8)} ${twelve.slice(8)} ${last}`;
    expect(find('card', `card ${spaced} ok`)).toEqual([]);
    expect(find('card', `card ${twelve}`)).toEqual([]);
  });

  it('card: a valid number followed by a separated digit is cut before the separator', () => {
    expect(find('card', 'card 4111111111111111 2 items')).toEqual(['4111111111111111']);
    expect(find('card', 'card 4111111111111111-2')).toEqual(['4111111111111111']);
  });

  it('iban: a valid checksum does not excuse the wrong length for a known country', () => {
    const de = withCheckDigits('DE', '370400440532013000');
    expect(de).toHaveLength(22);
    expect(ibanValid(de)).toBe(true);
    const longDe = withCheckDigits('DE', '3704004405320130001');
    expect(mod97(longDe)).toBe(1);
    expect(ibanValid(longDe)).toBe(false);
    expect(find('iban', `pay ${longDe} now`)).toEqual([]);
  });

  it('iban: a forged checksum on a malformed string is refused (country letters, check digits, characters)', () => {
    // A digit where the country code goes, with a valid IBAN shape later in the string.
    const digitCountry = forged('1B00AB123456789');
    expect(mod97(digitCountry)).toBe(1);
    expect(ibanValid(digitCountry)).toBe(false);
    // A letter among the check digits.
    const letterCheck = forged('ZZ1A123456789');
    expect(mod97(letterCheck)).toBe(1);
    expect(ibanValid(letterCheck)).toBe(false);
    // ':' weighs what 'A' weighs in a naive checksum: a valid IBAN with its final A swapped for ':'.
    const valid = withCheckDigits('ZZ', '1234567890A');
    expect(ibanValid(valid)).toBe(true);
    expect(ibanValid(`${valid.slice(0, -1)}:`)).toBe(false);
    expect(validatorFor('mod97')!(`${valid.slice(0, -1)}:`)).toBe(0);
  });

  it('iban: letters in the account part weigh two digits each', () => {
    const withLetters = withCheckDigits('ZZ', 'A1B2C3D4E5F6');
    expect(ibanValid(withLetters)).toBe(true);
    expect(ibanValid(withCheckDigits('ZZ', 'A'.repeat(11)))).toBe(true);
    expect(find('iban', `to ${withLetters}.`)).toEqual([withLetters]);
  });

  it('iban: a near-miss before a real IBAN does not swallow it', () => {
    expect(find('iban', 'ref AB1 GB82WEST12345698765432')).toEqual(['GB82WEST12345698765432']);
    expect(find('iban', 'ref AB1 GB82 WEST 1234 5698 7654 32')).toEqual(['GB82 WEST 1234 5698 7654 32']);
  });

  it('email: a leading @ does not hide a later address', () => {
    expect(detector('email').prefilter!('@home: a@b.co', 0)).toBe(true);
    expect(find('email', '@home: a@b.co')).toEqual(['a@b.co']);
  });
});

describe('pii hold-back: where a streamed text may still be completing a match', () => {
  it('card: from the first digit of the trailing digit run (separators included)', () => {
    expect(hold('card', 'pay 4111 1111 ')).toBe(4);
    expect(hold('card', 'pay 4111-1111')).toBe(4);
    expect(hold('card', 'pay -- 12')).toBe(7);
    expect(hold('card', 'no digits here')).toBe(14);
    expect(hold('card', 'abc')).toBe(3);
    expect(hold('card', '')).toBe(0);
  });

  it('email: from the first character of the trailing word that can start an address', () => {
    expect(hold('email', 'jane')).toBe(0);
    expect(hold('email', 'mail jane.doe@exa')).toBe(5);
    expect(hold('email', 'mail @@x')).toBe(7);
    expect(hold('email', 'mail me. ')).toBe(9);
  });

  it('phone: from the first digit, + or ( of the trailing number', () => {
    expect(hold('phone', 'call +1 (415) 555')).toBe(5);
    expect(hold('phone', 'call (030) 12')).toBe(5);
    expect(hold('phone', 'call 555 ')).toBe(5);
    expect(hold('phone', 'call. ')).toBe(6);
  });

  it('iban: from the earliest word that the rest of the text can still complete into an IBAN', () => {
    for (const tail of ['G', 'GB', 'gb', 'GB8', 'GB82', 'GB82 WEST', 'GB82WEST 12', 'GB82 ', `GB82${'1'.repeat(30)}`]) {
      expect(hold('iban', `pay to ${tail}`), tail).toBe(7);
    }
    expect(hold('iban', 'GB82')).toBe(0);
    expect(hold('iban', 'pay to AB CD12')).toBe(10);
    // What the pattern cannot match: spaces inside the country code or between it and the check digits.
    for (const settled of ['pay to ABC', 'pay to GB8W', 'pay to G8', 'pay toGB82', 'paid: 12', `pay to GB82${'1'.repeat(31)}`, 'pay to GB82!', 'it is ', 'pay to G B82', 'pay to GB 82']) {
      expect(hold('iban', settled), settled).toBe(settled.length);
    }
  });

  it('every detector holds at most its maxLength, however long the run', () => {
    const runs = ['1'.repeat(200), 'a'.repeat(700), `${'1 '.repeat(100)}`, `AG${' '.repeat(67)}`, `GB${' '.repeat(63)}82 1`, `+${'(1)'.repeat(60)}`];
    for (const d of BUILTIN_PII) {
      for (const text of runs) {
        const h = d.holdStart!(text);
        expect(h, `${d.name} on ${text.slice(0, 10)}…`).toBeGreaterThanOrEqual(text.length - d.maxLength);
        expect(h).toBeLessThanOrEqual(text.length);
      }
    }
    expect(hold('card', '1'.repeat(200))).toBe(200 - 38);
    expect(hold('email', 'a'.repeat(700))).toBe(700 - 601);
    expect(hold('phone', '5'.repeat(100))).toBe(100 - 48);
    expect(hold('iban', `${'x'.repeat(70)} GB82`)).toBe(71);
  });
});
