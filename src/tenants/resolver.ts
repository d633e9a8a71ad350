import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';
import type { Tenant } from './tenant.js';

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/**
 * Resolves a presented proxy key to its tenant. Only key hashes are kept in memory. Results
 * (including misses) are cached so that a flood of bad keys costs one map lookup each.
 */
export class TenantResolver {
  readonly #byHash = new Map<string, Tenant>();
  readonly #cache = new LRUCache<string, Tenant | false>({ max: 10_000 });
  readonly tenants: ReadonlyMap<string, Tenant>;

  constructor(config: Config) {
    const tenants = new Map<string, Tenant>();
    for (const [id, t] of Object.entries(config.tenants)) {
      const tenant: Tenant = {
        id,
        name: t.name ?? id,
        policy: t.policy ?? null,
        plan: t.plan ?? null,
        limits: t.limits ?? null,
      };
      tenants.set(id, tenant);
      for (const entry of t.keys) {
        const hash = 'sha256' in entry ? entry.sha256 : sha256Hex(entry.key);
        const other = this.#byHash.get(hash);
        if (other && other.id !== id) throw new Error(`tenants ${other.id} and ${id} share a key`);
        this.#byHash.set(hash, tenant);
      }
    }
    this.tenants = tenants;
  }

  resolve(key: string): Tenant | null {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached || null;
    const tenant = this.#byHash.get(sha256Hex(key)) ?? null;
    this.#cache.set(key, tenant ?? false);
    return tenant;
  }
}
