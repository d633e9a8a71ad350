import { describe, expect, it } from 'vitest';
import { captureWith, literalSecrets, redactPii } from './redact.js';

/**
 * Opt-in transcript capture (telemetry/turns.ts) keeps text on spans and in the turn-end log only
 * through captureWith: contact data and numbers never reach them, and the text is capped. Telemetry
 * over-redacts by design; these tests pin what is always removed and what plain text survives.
 */

describe('redactPii: email addresses', () => {
  it('replaces an address, keeping the text around it', () => {
    expect(redactPii('mail john.doe+tag@mail.example.co.uk now')).toBe('mail [email] now');
    expect(redactPii('a@b.io')).toBe('[email]');
    expect(redactPii('x_y%z-w@sub-domain.example.com, then')).toBe('[email], then');
  });

  it('replaces every address, in any case', () => {
    expect(redactPii('A.B@EXAMPLE.COM and c@d.org')).toBe('[email] and [email]');
  });

  it('a digit-heavy address is an address, not a number', () => {
    expect(redactPii('12345678@example.com')).toBe('[email]');
    expect(redactPii('me@host1.example2.com')).toBe('[email]');
  });

  it('a local part up to 64 characters and a top-level domain up to 24 letters go whole', () => {
    expect(redactPii(`${'a'.repeat(64)}@example.com`)).toBe('[email]');
    expect(redactPii(`x@example.${'a'.repeat(24)}`)).toBe('[email]');
  });

  it('labels up to 63 characters, up to 8 of them before the top-level domain', () => {
    expect(redactPii(`x@${'a'.repeat(63)}.com`)).toBe('[email]');
    expect(redactPii('x@aa.bb.cc.dd.ee.ff.gg.hh.com')).toBe('[email]');
  });

  it('the pattern stops at the RFC bounds (which keep the scan linear): beyond them only the address-shaped part goes', () => {
    // Not addresses by RFC 5321/1035 (local part <= 64, label <= 63, TLD <= 24 here): the match takes
    // the longest address-shaped part, and the overflow is kept. Pinned so that a change of the
    // bounds is a deliberate one.
    expect(redactPii(`${'a'.repeat(65)}@example.com`)).toBe('a[email]');
    expect(redactPii(`x@${'a'.repeat(64)}.com`)).toBe(`x@${'a'.repeat(64)}.com`);
    expect(redactPii('x@aa.bb.cc.dd.ee.ff.gg.hh.ii.com')).toBe('[email].com');
    expect(redactPii(`x@example.${'a'.repeat(25)}`)).toBe('[email]a');
  });

  it('text that is not an address is kept: no domain dot, a one-letter top-level domain, a bare @', () => {
    expect(redactPii('meet @ noon at home')).toBe('meet @ noon at home');
    expect(redactPii('user@localhost')).toBe('user@localhost');
    expect(redactPii('a@b.c')).toBe('a@b.c');
    expect(redactPii('@example.com')).toBe('@example.com');
  });
});

describe('redactPii: IBANs', () => {
  it('replaces an IBAN written with or without spaces, letters in its body included', () => {
    expect(redactPii('GB82 WEST 1234 5698 7654 32')).toBe('[iban]');
    expect(redactPii('pay to DE89370400440532013000, today')).toBe('pay to [iban], today');
    expect(redactPii('gb82west12345698765432')).toBe('[iban]');
  });

  it('the shortest (11 characters after the check digits) and the longest (30) are IBANs', () => {
    expect(redactPii('NO93 8601 1117 947')).toBe('[iban]');
    expect(redactPii(`LC55${'A'.repeat(30)}`)).toBe('[iban]');
  });

  it('too short or too long for an IBAN: only its digits go, as a number', () => {
    expect(redactPii('AB12 3456789012')).toBe('AB[number]');
    expect(redactPii(`LC55${'A'.repeat(31)}`)).toBe(`LC55${'A'.repeat(31)}`);
    expect(redactPii(`LC55${'A'.repeat(10)}`)).toBe(`LC55${'A'.repeat(10)}`);
  });

  it('an IBAN starts and ends at a word boundary (not inside a longer word)', () => {
    expect(redactPii('ZZGB82WEST12345698765432')).toBe('ZZGB82WEST[number]');
    expect(redactPii('GB82WESTABCDEFGHIJKL_')).toBe('GB82WESTABCDEFGHIJKL_');
    expect(redactPii('x GB82WESTABCDEFGHIJKL.')).toBe('x [iban].');
  });

  it('two spaces in a row end it; one space between characters does not', () => {
    expect(redactPii('GB82 WEST  ABCD EFGH IJ')).toBe('GB82 WEST  ABCD EFGH IJ');
    expect(redactPii('GB82 W E S T A B C D E F G')).toBe('[iban]');
  });
});

describe('redactPii: numbers', () => {
  it('six digits or more go, five stay', () => {
    expect(redactPii('code 123456')).toBe('code [number]');
    expect(redactPii('code 12345')).toBe('code 12345');
    expect(redactPii('room 101, floor 3, 2024')).toBe('room 101, floor 3, 2024');
  });

  it('a long run is one number, not several', () => {
    expect(redactPii('1234567890123')).toBe('[number]');
    expect(redactPii('card 4111111111111111 ok')).toBe('card [number] ok');
  });

  it('phones and cards with the usual separators (space, dot, dash, parentheses), a leading + included', () => {
    expect(redactPii('call +1 (555) 123-4567')).toBe('call [number]');
    expect(redactPii('call 555.123.4567')).toBe('call [number]');
    expect(redactPii('card 4111-1111-1111-1111')).toBe('card [number]');
    expect(redactPii('+44 20 7946 0958')).toBe('[number]');
    expect(redactPii('tel:+15551234567')).toBe('tel:[number]');
    expect(redactPii('1\t2\n3\u00a04 5 6')).toBe('[number]');
  });

  it('up to three separator characters between digits (a spoken "555 - 123 - 4567"), slashes and dashes of any width included', () => {
    expect(redactPii('555 - 123 - 4567')).toBe('[number]');
    expect(redactPii('123 -- 456')).toBe('123 -- 456');
    expect(redactPii('12) (3456')).toBe('[number]');
    expect(redactPii('12)  (3456')).toBe('12)  (3456');
    expect(redactPii('born 12/05/1985')).toBe('born [number]');
    expect(redactPii('call 030–1234\u22125678')).toBe('call [number]');
  });

  it('digits of any script are numbers (found 2026-12-05: only ASCII digits were, so a card number in fullwidth digits was kept)', () => {
    expect(redactPii('カード番号は４１１１ １１１１ １１１１ １１１１です')).toBe('カード番号は[number]です');
    expect(redactPii('رقمي ٠١٢٣٤٥٦٧٨٩')).toBe('رقمي [number]');
    expect(redactPii('फ़ोन ९८७६५४३२१०')).toBe('फ़ोन [number]');
    expect(redactPii('電話０３－１２３４－５６７８')).toBe('電話[number]');
  });

  it('an address with letters of any script is an address, local part and domain (found 2026-12-05: jörg@example.com kept "jö")', () => {
    expect(redactPii('schreib an jörg@müller.de bitte')).toBe('schreib an [email] bitte');
    expect(redactPii('mail: jörg@example.com')).toBe('mail: [email]');
    expect(redactPii('用户@例子.公司')).toBe('[email]');
  });

  it('a lone plus and other punctuation are kept', () => {
    expect(redactPii('1+1=2, 3/4, 10% off')).toBe('1+1=2, 3/4, 10% off');
    expect(redactPii('++123456')).toBe('+[number]');
  });
});

describe('redactPii: combined', () => {
  it('each kind once, in one text, the rest untouched', () => {
    expect(redactPii('Hi, I am Ana (ana@example.org), IBAN DE89 3704 0044 0532 0130 00, phone 0151 2345 6789.')).toBe(
      'Hi, I am Ana ([email]), IBAN [iban], phone [number].',
    );
  });

  it('text without contact data or numbers is returned as is', () => {
    const s = 'The weather is nice; see you at 5 (or 6).';
    expect(redactPii(s)).toBe(s);
    expect(redactPii('')).toBe('');
  });

  it('is the same on every call (the global patterns keep no state between calls)', () => {
    for (let i = 0; i < 3; i++) expect(redactPii('x 123456 y@z.io GB82 WEST 1234 5698 7654 32')).toBe('x [number] [email] [iban]');
  });
});

describe('captureWith', () => {
  it('redacts, then caps the length with an ellipsis', () => {
    const capture = captureWith(10);
    expect(capture('call me at 5551234567 please')).toBe('call me at…');
    expect(capture('a@b.io')).toBe('[email]');
  });

  it('text of exactly the cap is kept whole; one character more is cut', () => {
    const capture = captureWith(8);
    expect(capture('abcdefgh')).toBe('abcdefgh');
    expect(capture('abcdefghi')).toBe('abcdefgh…');
  });

  it('the cap applies to the redacted text (a number cut by the cap was redacted first)', () => {
    const capture = captureWith(12);
    // The raw text is longer than the cap; the redacted one is not.
    expect(capture('no 1234567890123456789')).toBe('no [number]');
    // Redacted first: the cut never leaves a number's digits behind.
    expect(captureWith(5)('1234567890')).toBe('[numb…');
  });

  it('accumulated captures (turns.ts joins the text kept so far with the next one) stay redacted and capped', () => {
    const capture = captureWith(30);
    let kept = capture('my number is 555');
    kept = capture(`${kept}\n1234567`);
    expect(kept).toBe('my number is [number]');
    expect(kept).not.toMatch(/\d/);
    kept = capture(`${kept}\n${'x'.repeat(50)}`);
    expect(kept).toBe(`my number is [number]\n${'x'.repeat(8)}…`);
    expect(kept.endsWith('…')).toBe(true);
  });
});

describe('credentials of other shapes (2026-12-06)', () => {
  it('a webhook signing secret (whsec_ + base64, padding, + and /) is [secret]', () => {
    expect(redactPii('secret whsec_c2VjcmV0S2V5Rm9yV2ViaG9va1NpZ25pbmdYWVo= ok')).toBe('secret [secret] ok');
    expect(redactPii('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+a/b')).toBe('[secret]');
    // Not a secret: the prefix alone, or too short a key.
    expect(redactPii('whsec_ is the prefix, whsec_abc too')).toBe('whsec_ is the prefix, whsec_abc too');
  });

  it('configured secrets are [secret] whatever their shape, longest first, special characters literal', () => {
    const literals = literalSecrets(['Tenant-Pass.Word(1)', 'Tenant-Pass.Word(1)-long', 'upstreamkeyXYZ', 'short', '']);
    expect(literals).not.toBeNull();
    expect(redactPii('use Tenant-Pass.Word(1)-long or Tenant-Pass.Word(1) and upstreamkeyXYZ, short', literals)).toBe('use [secret] or [secret] and [secret], short');
    // A regex-looking key matches only itself.
    expect(redactPii('Tenant-PassxWord(1)', literals)).toBe('Tenant-PassxWord(1)');
    expect(literalSecrets(['short', ''])).toBeNull();
  });

  it('captureWith replaces configured secrets before the digit pattern could break them up, and before the cap', () => {
    const literals = literalSecrets(['key 1234567 end']);
    expect(captureWith(100, literals)('my key 1234567 end.')).toBe('my [secret].');
    expect(captureWith(100)('my key 1234567 end.')).toBe('my key [number] end.');
    // A secret across the cap is replaced whole, then cut.
    expect(captureWith(6, literalSecrets(['abcdefghijklmnop']))('xx abcdefghijklmnop')).toBe('xx [se…');
  });

  it('text far past the cap is not scanned, and what is kept is the same', () => {
    const capture = captureWith(20, literalSecrets(['configured-secret-1']));
    const long = `a configured-secret-1 ${'y'.repeat(100_000)} configured-secret-1`;
    expect(capture(long)).toBe(`a [secret] ${'y'.repeat(9)}…`);
  });
});
