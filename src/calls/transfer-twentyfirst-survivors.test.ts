import { describe, expect, it } from 'vitest';
import { parseTransferTarget, TransferAllowList, transferEntryProblem } from './transfer.js';

// Written against the mutants of src/calls/transfer.ts that survived transfer.test.ts,
// redteam-20-refer-phone-users and sip-refer (twenty-first session): each case names what it pins.

/** The target as it would go upstream, or null when refused. */
const judged = (allow: readonly string[], target: string): string | null => {
  const verdict = new TransferAllowList(allow).judge(target);
  return verdict.allowed ? verdict.target : null;
};

/** A SIP target (or entry) of exactly `length` characters at support.example.com. */
const sipOfLength = (length: number): string => {
  const around = 'sip:@support.example.com'.length;
  return `sip:${'u'.repeat(length - around)}@support.example.com`;
};

describe('transfer allow lists: the edges the first tests left open', () => {
  it('hosts: one-character labels (first or last) and two-character top-level labels are hosts too', () => {
    expect(judged(['sip:*@a.example.com'], 'sip:x@a.example.com')).toBe('sip:x@a.example.com');
    expect(judged(['sip:*@10.0.0.1'], 'sip:x@10.0.0.1')).toBe('sip:x@10.0.0.1');
    expect(judged(['sip:*@pbx.example.io'], 'sip:x@pbx.example.io')).toBe('sip:x@pbx.example.io');
    expect(transferEntryProblem('sip:*@a.example.com')).toBeNull();
  });

  it('a host is the whole of what follows the @: nothing before it (another host) and nothing after its port', () => {
    expect(judged(['sip:*@support.example.com'], 'sip:x@evil.net:support.example.com')).toBeNull();
    expect(judged(['sip:*@support.example.com:5060'], 'sip:x@support.example.com:5060;transport=tcp')).toBeNull();
    expect(judged(['sip:*@support.example.com:5060'], 'sip:x@support.example.com:5060x')).toBeNull();
  });

  it('ports: 1 to 65535 without a leading zero; anything else is refused at load', () => {
    expect(judged(['sip:*@pbx.example.com:1'], 'sip:x@pbx.example.com:1')).toBe('sip:x@pbx.example.com:1');
    expect(judged(['sip:*@pbx.example.com:65535'], 'sip:x@pbx.example.com:65535')).toBe('sip:x@pbx.example.com:65535');
    for (const port of ['0', '65536', '99999', '05060']) {
      expect(transferEntryProblem(`sip:*@pbx.example.com:${port}`), port).toMatch(/plain host name/);
      expect(parseTransferTarget(`sip:x@pbx.example.com:${port}`), port).toBeNull();
    }
  });

  it('tel: the + starts the number: digits before it are no number', () => {
    expect(judged(['tel:+1415555*'], 'tel:01415555+0100')).toBeNull();
    expect(judged(['tel:+1415555*'], 'tel:x1415555+0100')).toBeNull();
  });

  it('tel: a number of exactly 15 digits (E.164\'s most) is a number', () => {
    expect(judged(['tel:+1415555*'], 'tel:+141555501234567')).toBe('tel:+141555501234567');
    expect(judged(['tel:+141555501234567'], 'tel:+141555501234567')).toBe('tel:+141555501234567');
  });

  it('lengths: a target or entry of exactly 256 characters is judged; one more is refused', () => {
    const longest = sipOfLength(256);
    expect(longest).toHaveLength(256);
    expect(judged(['sip:*@support.example.com'], longest)).toBe(longest);
    expect(transferEntryProblem(longest)).toBeNull();
    expect(judged([longest], longest)).toBe(longest);
    expect(transferEntryProblem(sipOfLength(257))).toMatch(/longer than 256/);
    // parseTransferTarget is exported: its own bound holds without judge's.
    expect(parseTransferTarget(longest)).toEqual({ kind: 'sip', scheme: 'sip', user: 'u'.repeat(232), hostPort: 'support.example.com' });
    expect(parseTransferTarget(sipOfLength(257))).toBeNull();
    expect(new TransferAllowList(['sip:*@support.example.com']).judge(sipOfLength(257))).toEqual({ allowed: false });
  });

  it('schemes: sips: targets are judged (against sips: entries); no other scheme parses', () => {
    expect(judged(['sips:ops*@pbx.example.com'], 'sips:ops-1@pbx.example.com')).toBe('sips:ops-1@pbx.example.com');
    expect(judged(['sips:*@support.example.com'], 'SIPS:x@support.example.com')).toBe('sips:x@support.example.com');
    expect(parseTransferTarget('http:x@support.example.com')).toBeNull();
    expect(parseTransferTarget('sipx:x@support.example.com')).toBeNull();
    expect(transferEntryProblem('x-sip:agent@pbx.example.com')).toMatch(/must start with tel:, sip: or sips:/);
    expect(transferEntryProblem('urn:tel:+14155550100')).toMatch(/must start with/);
  });

  it('a host that is ASCII only once lower-cased (the Kelvin sign K) is refused, not read as k', () => {
    expect(judged(['sip:*@kelvin.example.com'], 'sip:x@\u212aelvin.example.com')).toBeNull();
    expect(parseTransferTarget('sip:x@\u212aelvin.example.com')).toBeNull();
  });

  it('a sip: target without an @ is refused (not split into a user and the host)', () => {
    expect(judged(['sip:*@support.example.com'], 'sip:support.example.com')).toBeNull();
    expect(parseTransferTarget('sip:support.example.com')).toBeNull();
  });

  it('an exact sip: address allows that user only, not users starting with it', () => {
    const allow = ['sip:agent@sales.example.com:5060'];
    expect(judged(allow, 'sip:agent@sales.example.com:5060')).toBe('sip:agent@sales.example.com:5060');
    expect(judged(allow, 'sip:agent2@sales.example.com:5060')).toBeNull();
    expect(judged(allow, 'sip:agent,,9@sales.example.com:5060')).toBeNull();
  });

  it('a sip: pattern whose user prefix no plain user could start with is refused at load, saying so', () => {
    expect(transferEntryProblem('sip:a;b*@pbx.example.com')).toMatch(/user prefix of a sip: pattern holds characters/);
    expect(transferEntryProblem('sip:a%40b*@pbx.example.com')).toMatch(/user prefix/);
  });

  it('an entry refused at load, left in a list, allows nothing and does not stop the others', () => {
    const list = new TransferAllowList(['not a uri', 'tel:+1*5', 'tel:+1415555*']);
    expect(list.judge('tel:+14155550100')).toEqual({ allowed: true, target: 'tel:+14155550100', entry: 'tel:+1415555*' });
    expect(list.judge('not a uri')).toEqual({ allowed: false });
    expect(list.judge('tel:+1*5')).toEqual({ allowed: false });
  });

  it('a refusal is { allowed: false } whatever refused it (the type the caller reads)', () => {
    const list = new TransferAllowList(['tel:+1415555*']);
    expect(list.judge('tel:+19005550100')).toEqual({ allowed: false });
    expect(list.judge('tel:+1415555x')).toEqual({ allowed: false });
  });

  it('a plain entry is judged parsed, never as written: a target written like the entry goes upstream canonical, a pattern is no target', () => {
    expect(judged(['tel:+1 (415) 555-0100'], 'tel:+1 (415) 555-0100')).toBe('tel:+14155550100');
    expect(judged(['sip:agent@Sales.Example.com'], 'sip:agent@Sales.Example.com')).toBe('sip:agent@sales.example.com');
    // A pattern sent as the target is a user `*` (no plain user): refused, not sent upstream as written.
    expect(judged(['sip:*@support.example.com'], 'sip:*@support.example.com')).toBeNull();
    expect(judged(['tel:+1415555*'], 'tel:+1415555*')).toBeNull();
    expect(judged(['sip:2*@pbx.example.com'], 'sip:2*@pbx.example.com')).toBeNull();
  });
});
