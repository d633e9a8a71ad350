import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { AdminKey, adminKeyProblem, sha256 } from './admin-key.js';

const KEY = 'admin_unit_key_0123456789';
const hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

describe('AdminKey.matches', () => {
  // Built in each test (not at collection), so a construction failure fails a test.
  let key: AdminKey;
  beforeEach(() => {
    key = new AdminKey(KEY);
  });

  it('accepts the key as a bearer token, scheme in any case, surrounding blanks allowed', () => {
    expect(key.matches(`Bearer ${KEY}`)).toBe(true);
    expect(key.matches(`bearer ${KEY}`)).toBe(true);
    expect(key.matches(`BEARER   ${KEY}  `)).toBe(true);
    expect(key.matches(`Bearer\t${KEY}`)).toBe(true);
  });

  // Regression (issue 16): a planted bug accepting a wrong bearer token survived the suite, whose
  // only negative case sent no header.
  it('refuses every other header: wrong, prefix, suffix, empty, other scheme, no scheme, extra words', () => {
    const refused = [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      'Bearer  ',
      'Bearer wrong',
      `Bearer ${KEY}x`,
      `Bearer x${KEY}`,
      `Bearer ${KEY.slice(0, -1)}`,
      `Bearer ${KEY.slice(1)}`,
      `Bearer ${KEY.toUpperCase()}`,
      `Basic ${KEY}`,
      `Token ${KEY}`,
      `Bearer${KEY}`,
      KEY,
      ` Bearer ${KEY}`,
      `xBearer ${KEY}`,
      `Bearer ${KEY} ${KEY}`,
      `Bearer ${KEY} x`,
      `Bearer ${hex(KEY)}`,
      `Bearer sha256:${hex(KEY)}`,
      'Bearer rpk_acme_0123456789abcdef',
    ];
    for (const h of refused) expect(key.matches(h), String(h)).toBe(false);
  });

  it('a key configured as its SHA-256 accepts the key itself, never the digest', () => {
    const hashed = new AdminKey(`sha256:${hex(KEY)}`);
    expect(hashed.matches(`Bearer ${KEY}`)).toBe(true);
    expect(hashed.matches(`Bearer ${hex(KEY)}`)).toBe(false);
    expect(hashed.matches(`Bearer sha256:${hex(KEY)}`)).toBe(false);
    expect(hashed.matches(`Bearer ${KEY}x`)).toBe(false);
    // Upper-case hex digits are the same digest.
    expect(new AdminKey(`sha256:${hex(KEY).toUpperCase()}`).matches(`Bearer ${KEY}`)).toBe(true);
  });

  it('refuses a malformed configured key at construction', () => {
    expect(() => new AdminKey('short')).toThrow(/at least 16 characters/);
    expect(() => new AdminKey('sha256:abc')).toThrow(/64 hex digits/);
  });
});

describe('adminKeyProblem', () => {
  it('unset or empty: no problem (the admin API is off)', () => {
    expect(adminKeyProblem(undefined)).toBeNull();
    expect(adminKeyProblem('')).toBeNull();
  });

  it('plain keys need at least 16 characters', () => {
    expect(adminKeyProblem('a'.repeat(16))).toBeNull();
    expect(adminKeyProblem('a'.repeat(15))).toBe('admin.key: a plain admin key must be at least 16 characters');
  });

  it('sha256: needs exactly 64 hex digits, either case, nothing before or after', () => {
    expect(adminKeyProblem(`sha256:${'ab'.repeat(32)}`)).toBeNull();
    expect(adminKeyProblem(`sha256:${'AB'.repeat(32)}`)).toBeNull();
    const bad = 'admin.key: "sha256:" must be followed by exactly 64 hex digits (the SHA-256 of the key)';
    for (const k of [`sha256:${'ab'.repeat(31)}a`, `sha256:${'ab'.repeat(32)}a`, `sha256:${'ab'.repeat(31)}ag`, `sha256:x${'ab'.repeat(32)}`, `sha256:${'ab'.repeat(32)}\n`, 'sha256:']) {
      expect(adminKeyProblem(k), k).toBe(bad);
    }
    // Longer than 16 characters but a malformed hash: still refused (it would reach timingSafeEqual).
    expect(adminKeyProblem(`sha256:${'ab'.repeat(20)}`)).toBe(bad);
  });
});

describe('sha256', () => {
  it('is the SHA-256 of the UTF-8 bytes', () => {
    expect(sha256('é').toString('hex')).toBe(hex('é'));
    expect(sha256('é')).toHaveLength(32);
  });
});
