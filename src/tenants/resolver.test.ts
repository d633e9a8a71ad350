import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { sha256Hex, TenantResolver } from './resolver.js';

const config = (tenants: Record<string, { keys: ({ key: string } | { sha256: string })[] }>) =>
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
});
