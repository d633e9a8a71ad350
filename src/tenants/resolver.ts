import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config/schema.js';
import type { Tenant } from './tenant.js';

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** Presented keys longer than this are refused without hashing (generated keys have ~36). */
export const MAX_KEY_CHARS = 256;

/** Byte budget of the cache of recently presented valid keys. */
export const KEY_CACHE_BYTES = 4 * 1024 * 1024;

/**
 * Resolves a presented proxy key to its tenant. Only key hashes are kept in memory. Only hits are
 * cached (misses would let anyone fill memory with random keys): a bad key costs one SHA-256 of at
 * most MAX_KEY_CHARS characters and nothing stays behind.
 */
export class TenantResolver {
  readonly #byHash = new Map<string, Tenant>();
  readonly #cache = new LRUCache<string, Tenant>({ maxSize: KEY_CACHE_BYTES, sizeCalculation: (_tenant, key) => key.length * 2 + 64 });
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
    if (key.length > MAX_KEY_CHARS) return null;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const tenant = this.#byHash.get(sha256Hex(key)) ?? null;
    if (tenant) this.#cache.set(key, tenant);
    return tenant;
  }

  /** The tenant a key hash (SHA-256 hex, as configured) belongs to now, or null (unknown or revoked). */
  resolveHash(sha256: string): Tenant | null {
    return this.#byHash.get(sha256) ?? null;
  }

  /** Bytes the key cache accounts for (bounded by KEY_CACHE_BYTES). */
  get cachedBytes(): number {
    return this.#cache.calculatedSize;
  }

  get cachedKeys(): number {
    return this.#cache.size;
  }
}
