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
