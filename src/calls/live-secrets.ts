/**
 * The unexpired client secrets each tenant holds on this instance, by expiry time: each secret keeps
 * its session config in the store until it expires, so a tenant may hold only so many at once.
 */
export class LiveSecrets {
  readonly #limit: number;
  /** Expiry times (epoch ms) per tenant, ascending: expired ones leave from the front. */
  readonly #byTenant = new Map<string, number[]>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Whether `tenant` may mint one more at `now` (its expired secrets are forgotten first). */
  hasRoom(tenant: string, now: number): boolean {
    const live = this.#byTenant.get(tenant);
    if (!live) return true;
    let expired = 0;
    while (expired < live.length && live[expired]! <= now) expired++;
    live.splice(0, expired);
    if (live.length === 0) this.#byTenant.delete(tenant);
    return live.length < this.#limit;
  }

  /** A secret minted for `tenant`, expiring at `expiresAtMs`. */
  add(tenant: string, expiresAtMs: number): void {
    let live = this.#byTenant.get(tenant);
    if (!live) this.#byTenant.set(tenant, (live = []));
    // Kept sorted: a shorter TTL minted later expires earlier.
    let at = live.length;
    while (at > 0 && live[at - 1]! > expiresAtMs) at--;
    live.splice(at, 0, expiresAtMs);
  }

  /**
   * Check and count in one synchronous step: counts a secret expiring at `expiresAtMs` when `tenant`
   * has room at `now`. Callers take the room before any await (a burst of mints cannot all see room
   * that only one of them may use) and give it back with `release` if the secret is not stored.
   */
  take(tenant: string, now: number, expiresAtMs: number): boolean {
    if (!this.hasRoom(tenant, now)) return false;
    this.add(tenant, expiresAtMs);
    return true;
  }

  /** Gives back one room `take` counted (the secret could not be stored). */
  release(tenant: string, expiresAtMs: number): void {
    const live = this.#byTenant.get(tenant);
    const at = live ? live.indexOf(expiresAtMs) : -1;
    if (!live || at < 0) return;
    live.splice(at, 1);
    if (live.length === 0) this.#byTenant.delete(tenant);
  }

  /** Secrets of `tenant` not pruned yet (tests). */
  count(tenant: string): number {
    return this.#byTenant.get(tenant)?.length ?? 0;
  }

  /** Tenants with an entry (bounded by the configured tenants). */
  get tenants(): number {
    return this.#byTenant.size;
  }
}
