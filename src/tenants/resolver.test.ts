import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { MAX_KEY_CHARS, sha256Hex, TenantResolver } from './resolver.js';

type TenantInput = { keys: ({ key: string } | { sha256: string })[]; name?: string; policy?: string; plan?: string; limits?: { dailyUsd: string } };
const config = (tenants: Record<string, TenantInput>) =>
  parseConfig({ server: { host: '127.0.0.1', port: 0 }, upstream: { provider: 'simulator' }, tenants }, '(test)', {});

describe('TenantResolver', () => {
  it('resolves each key to its own tenant, and nothing else', () => {
    const r = new TenantResolver(config({ acme: { keys: [{ key: 'rpk_acme_0123456789abcdef' }] }, globex: { keys: [{ sha256: sha256Hex('rpk_globex_0123456789abcd') }] } }));
    expect(r.resolve('rpk_acme_0123456789abcdef')?.id).toBe('acme');
    expect(r.resolve('rpk_globex_0123456789abcd')?.id).toBe('globex');
    expect(r.resolve('rpk_acme_0123456789abcdeX')).toBeNull();
    expect(r.resolve('rpk_acme_0123456789abcdef ')).toBeNull();
    expect(r.resolve('')).toBeNull();
    // Cached answers are the same answers.
    expect(r.resolve('rpk_acme_0123456789abcdef')?.id).toBe('acme');
    expect(r.resolve('rpk_acme_0123456789abcdeX')).toBeNull();
  });

  // Regression (issue 16): a planted bug letting two tenants share one key survived the suite.
  it('refuses two tenants sharing a key, plaintext or hashed', () => {
    expect(() => new TenantResolver(config({ a: { keys: [{ key: 'rpk_shared_0123456789abcd' }] }, b: { keys: [{ key: 'rpk_shared_0123456789abcd' }] } }))).toThrow(/share a key/);
    expect(() => new TenantResolver(config({ a: { keys: [{ key: 'rpk_shared_0123456789abcd' }] }, b: { keys: [{ sha256: sha256Hex('rpk_shared_0123456789abcd') }] } }))).toThrow(/share a key/);
    // One tenant listing the same key twice is harmless.
    expect(new TenantResolver(config({ a: { keys: [{ key: 'rpk_twice_01234567890abcd' }, { key: 'rpk_twice_01234567890abcd' }] } })).resolve('rpk_twice_01234567890abcd')?.id).toBe('a');
  });

  it('a key of one tenant never resolves to another; a tenant\'s several keys all resolve to it', () => {
    const r = new TenantResolver(
      config({ a: { keys: [{ key: 'rpk_a_first_0123456789' }, { sha256: sha256Hex('rpk_a_second_012345678') }] }, b: { keys: [{ key: 'rpk_b_only_01234567890' }] } }),
    );
    expect(r.resolve('rpk_a_first_0123456789')?.id).toBe('a');
    expect(r.resolve('rpk_a_second_012345678')?.id).toBe('a');
    expect(r.resolve('rpk_b_only_01234567890')?.id).toBe('b');
    // The digest itself is not a key.
    expect(r.resolve(sha256Hex('rpk_a_second_012345678'))).toBeNull();
    // By hash (what a client secret records of the key that minted it): plain and hashed entries alike.
    expect(r.resolveHash(sha256Hex('rpk_a_first_0123456789'))?.id).toBe('a');
    expect(r.resolveHash(sha256Hex('rpk_a_second_012345678'))?.id).toBe('a');
    expect(r.resolveHash(sha256Hex('rpk_b_only_01234567890'))?.id).toBe('b');
    expect(r.resolveHash(sha256Hex('rpk_revoked_0123456789'))).toBeNull();
    expect(r.resolveHash('rpk_a_first_0123456789')).toBeNull();
    // The error names both tenants.
    expect(() => new TenantResolver(config({ first: { keys: [{ key: 'rpk_dup_0123456789abcd' }] }, second: { keys: [{ key: 'rpk_dup_0123456789abcd' }] } }))).toThrow(
      'tenants first and second share a key',
    );
  });

  it('keeps each tenant\'s settings; name defaults to the id, the others to null', () => {
    const r = new TenantResolver(
      config({ a: { keys: [{ key: 'rpk_a_0123456789abcdef' }], name: 'Acme Corp', policy: 'strict', plan: 'gold', limits: { dailyUsd: '5' } }, b: { keys: [{ key: 'rpk_b_0123456789abcdef' }] } }),
    );
    expect(r.resolve('rpk_a_0123456789abcdef')).toEqual({ id: 'a', name: 'Acme Corp', policy: 'strict', plan: 'gold', limits: { dailyUsd: '5' } });
    expect(r.resolve('rpk_b_0123456789abcdef')).toEqual({ id: 'b', name: 'b', policy: null, plan: null, limits: null });
    expect([...r.tenants.keys()]).toEqual(['a', 'b']);
    expect(r.tenants.get('a')).toBe(r.resolve('rpk_a_0123456789abcdef'));
  });

  it('keys longer than MAX_KEY_CHARS are refused unhashed, even a configured one; at the bound they resolve', () => {
    const atBound = 'k'.repeat(MAX_KEY_CHARS);
    const over = 'k'.repeat(MAX_KEY_CHARS + 1);
    const r = new TenantResolver(config({ a: { keys: [{ key: atBound }] }, b: { keys: [{ key: over }] } }));
    expect(r.resolve(atBound)?.id).toBe('a');
    expect(r.resolve(over)).toBeNull();
  });

  it('caches hits only, in a byte budget: a flood of wrong keys leaves nothing behind', () => {
    const r = new TenantResolver(config({ a: { keys: [{ key: 'rpk_a_0123456789abcdef' }] } }));
    for (let i = 0; i < 1000; i++) expect(r.resolve(`rpk_wrong_${i}_0123456789`)).toBeNull();
    expect(r.cachedKeys).toBe(0);
    expect(r.cachedBytes).toBe(0);
    r.resolve('rpk_a_0123456789abcdef');
    r.resolve('rpk_a_0123456789abcdef');
    expect(r.cachedKeys).toBe(1);
    expect(r.cachedBytes).toBe('rpk_a_0123456789abcdef'.length * 2 + 64);
  });
});
