import { describe, expect, it } from 'vitest';
import { TransferAllowList, transferEntryProblem } from './transfer.js';

/** The target as it would go upstream, or null when refused. */
const judged = (allow: readonly string[], target: string): string | null => {
  const verdict = new TransferAllowList(allow).judge(target);
  return verdict.allowed ? verdict.target : null;
};

describe('transfer allow lists (toll fraud: only what the route lists)', () => {
  it('an exact tel: number: separators are dropped from the target and the entry before comparing; the number goes upstream bare', () => {
    const allow = ['tel:+14155550100'];
    expect(judged(allow, 'tel:+14155550100')).toBe('tel:+14155550100');
    expect(judged(allow, 'tel:+1 415 555 0100')).toBe('tel:+14155550100');
    expect(judged(allow, 'tel:+1-415-555-0100')).toBe('tel:+14155550100');
    expect(judged(allow, 'tel:+1.415.(555).0100')).toBe('tel:+14155550100');
    expect(judged(allow, 'TEL:+14155550100')).toBe('tel:+14155550100');
    expect(judged(['tel:+1 (415) 555-0100'], 'tel:+14155550100')).toBe('tel:+14155550100');
    // Another number, a longer one, a shorter one.
    expect(judged(allow, 'tel:+14155550101')).toBeNull();
    expect(judged(allow, 'tel:+141555501000')).toBeNull();
    expect(judged(allow, 'tel:+1415555010')).toBeNull();
  });

  it('a tel: prefix pattern allows the numbers starting with its digits, and nothing else', () => {
    const allow = ['tel:+1415555*'];
    expect(judged(allow, 'tel:+14155550100')).toBe('tel:+14155550100');
    expect(judged(allow, 'tel:+1 415 555 9999')).toBe('tel:+14155559999');
    expect(judged(allow, 'tel:+1415556*')).toBeNull();
    expect(judged(allow, 'tel:+19005550100')).toBeNull();
    expect(judged(allow, 'tel:+4414155550100')).toBeNull();
  });

  it('hostile tel: targets are refused: parameters, an @, letters, a local number, look-alike digits, over 15 digits, too long', () => {
    const allow = ['tel:+1415555*', 'tel:+14155550100'];
    for (const target of [
      'tel:+14155550100@evil',
      'tel:+14155550100;ext=99',
      'tel:+14155550100;phone-context=+1',
      'tel:+14155550100?x=y',
      'tel:14155550100',
      'tel:+1415555010O',
      'tel:+1415555%300100',
      'tel:\uff0b\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff10',
      'tel:+1415555\u0660100',
      'tel:+1\t4155550100',
      'tel:+1\u00a0415\u00a05550100',
      'tel:+14155550100\n',
      'tel:+1415555012345678',
      `tel:+1415555${'0'.repeat(300)}`,
      'tel:+1 415 555 0100 @evil',
      'tel:',
      'tel:+',
      'sip:+14155550100@evil.net',
      ' tel:+14155550100',
    ]) {
      expect(judged(allow, target), JSON.stringify(target)).toBeNull();
    }
  });

  it('sip: an exact address, a user prefix at exactly one host, the host never a pattern', () => {
    const allow = ['sip:*@support.example.com', 'sip:agent@Sales.Example.com:5060', 'sip:+1415*@pbx.example.com'];
    expect(judged(allow, 'sip:x@support.example.com')).toBe('sip:x@support.example.com');
    expect(judged(allow, 'sip:alice@SUPPORT.example.com')).toBe('sip:alice@support.example.com');
    expect(judged(allow, 'SIP:alice@support.example.com')).toBe('sip:alice@support.example.com');
    expect(judged(allow, 'sip:agent@sales.example.com:5060')).toBe('sip:agent@sales.example.com:5060');
    expect(judged(allow, 'sip:+14155550100@pbx.example.com')).toBe('sip:+14155550100@pbx.example.com');
    for (const target of [
      'sip:x@support.example.com.evil.net',
      'sip:x@evil.support.example.com',
      'sip:x@support.example.com:5061',
      'sip:x@support.example.com;transport=tcp',
      'sip:x@support.example.com?Refer-To=tel:+19005550100',
      'sip:x:secret@support.example.com',
      'sip:x@evil.net@support.example.com',
      'sip:x%40evil.net@support.example.com',
      'sip:@support.example.com',
      'sip:x@support.example.com.',
      'sip:x@supp\u043ert.example.com',
      'sip:x@xn--support-.example.com',
      'sips:x@support.example.com',
      'sip:x@[::1]',
      'sip:Agent@sales.example.com:5060',
      'sip:agent@sales.example.com',
      'sip:+19005550100@pbx.example.com',
      'sip:x @support.example.com',
      `sip:${'x'.repeat(300)}@support.example.com`,
    ]) {
      expect(judged(allow, target), JSON.stringify(target)).toBeNull();
    }
  });

  it('a URI with parameters or headers is allowed only when listed exactly, character for character, and goes upstream as listed', () => {
    const allow = ['sip:x@support.example.com;transport=tcp'];
    expect(judged(allow, 'sip:x@support.example.com;transport=tcp')).toBe('sip:x@support.example.com;transport=tcp');
    expect(judged(allow, 'sip:x@support.example.com;transport=TCP')).toBeNull();
    expect(judged(allow, 'sip:x@support.example.com;transport=tcp;maddr=evil.net')).toBeNull();
    expect(judged(allow, 'sip:x@support.example.com')).toBeNull();
  });

  it('a phone-number SIP user (or prefix) admits phone numbers only: nothing after the digits, at most 15 (redteam-20)', () => {
    const allow = ['sip:+1415555*@trunk.example.com', 'sip:2*@pbx.example.com', 'sip:+14155550100@gw.example.com', 'sip:desk-*@trunk.example.com', 'sip:*@any.example.com'];
    expect(judged(allow, 'sip:+14155550100@trunk.example.com')).toBe('sip:+14155550100@trunk.example.com');
    expect(judged(allow, 'sip:+141555501234567@trunk.example.com')).toBe('sip:+141555501234567@trunk.example.com');
    expect(judged(allow, 'sip:+1415555012345678@trunk.example.com')).toBeNull();
    expect(judged(allow, 'sip:+14155550100,,,011442079460000@trunk.example.com')).toBeNull();
    expect(judged(allow, 'sip:+14155550100w9@trunk.example.com')).toBeNull();
    expect(judged(allow, 'sip:+1415555-0100@trunk.example.com')).toBeNull();
    expect(judged(allow, 'sip:2001@pbx.example.com')).toBe('sip:2001@pbx.example.com');
    expect(judged(allow, 'sip:2001,9@pbx.example.com')).toBeNull();
    expect(judged(allow, 'sip:+14155550100@gw.example.com')).toBe('sip:+14155550100@gw.example.com');
    // A prefix that is not a number, and sip:*@host (any user), are as before.
    expect(judged(allow, 'sip:desk-7,b@trunk.example.com')).toBe('sip:desk-7,b@trunk.example.com');
    expect(judged(allow, 'sip:+1900,,1@any.example.com')).toBe('sip:+1900,,1@any.example.com');
    // An entry no target could match is refused at load.
    expect(transferEntryProblem('sip:+1234567890123456@trunk.example.com')).toMatch(/1 to 15 digits/);
    expect(transferEntryProblem('sip:+1234567890123456*@trunk.example.com')).toMatch(/1 to 15 digits/);
    expect(transferEntryProblem('sip:+123456789012345*@trunk.example.com')).toBeNull();
    expect(transferEntryProblem('sip:+*@trunk.example.com')).toBeNull();
  });

  it('an empty list allows nothing; the verdict names the entry that allowed', () => {
    expect(judged([], 'tel:+14155550100')).toBeNull();
    expect(new TransferAllowList(['tel:+1*', 'tel:+14155550100']).judge('tel:+1-415-555-0100')).toEqual({ allowed: true, target: 'tel:+14155550100', entry: 'tel:+1*' });
  });

  it('config: entries the language cannot read are refused at load, with why', () => {
    for (const ok of ['tel:+14155550100', 'tel:+1415555*', 'tel:+1 (415) 555-0100', 'sip:*@support.example.com', 'sip:agent@pbx.example.com:5060', 'sips:ops*@pbx.example.com', 'sip:x@support.example.com;transport=tcp']) {
      expect(transferEntryProblem(ok), ok).toBeNull();
    }
    expect(transferEntryProblem('*')).toMatch(/must start with tel:, sip: or sips:/);
    expect(transferEntryProblem('+14155550100')).toMatch(/must start with/);
    expect(transferEntryProblem('tel:+*')).toMatch(/at least one digit/);
    expect(transferEntryProblem('tel:*')).toMatch(/at least one digit/);
    expect(transferEntryProblem('tel:+1*5')).toMatch(/ends with its \*/);
    expect(transferEntryProblem('tel:+1**')).toMatch(/more than one \*/);
    expect(transferEntryProblem('sip:*')).toMatch(/right before @/);
    expect(transferEntryProblem('sip:x@*.example.com')).toMatch(/right before @/);
    expect(transferEntryProblem('sip:*@support.example.com;transport=tcp')).toMatch(/plain host name/);
    expect(transferEntryProblem('sip:*@support.example.com.')).toMatch(/plain host name/);
    expect(transferEntryProblem('tel:+\uff11415')).toMatch(/printable ASCII/);
    expect(transferEntryProblem('sip:a b@example.com')).toMatch(/space/);
    expect(transferEntryProblem(`tel:+1${'0'.repeat(300)}`)).toMatch(/longer than/);
  });
});
