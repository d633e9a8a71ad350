import type { CapHit } from './ledger.js';

/** A recent "spend is at the cap" answer for one tenant, trusted until `until`. */
export interface OverHint {
  readonly hit: CapHit;
  readonly until: number;
}

/**
 * The ledgers' `knownOver` memory (Redis and the workers' remote ledger): per tenant, the last
 * refusal at a spent cap. A hint holds until its own deadline or until its period resets, whichever
 * comes first; an expired hint is forgotten when read.
 */
export class OverHints<H extends OverHint = OverHint> {
  readonly #byTenant = new Map<string, H>();

  /** The tenant's hint while it holds, else null. */
  fresh(tenant: string, wallMs: number): H | null {
    const h = this.#byTenant.get(tenant);
    if (!h) return null;
    if (wallMs >= h.until || wallMs >= h.hit.period.resetsAt) {
      this.#byTenant.delete(tenant);
      return null;
    }
    return h;
  }

  set(tenant: string, hint: H): void {
    this.#byTenant.set(tenant, hint);
  }

  delete(tenant: string): void {
    this.#byTenant.delete(tenant);
  }

  /** Lifts `hint` only if it is still the tenant's current one (a newer answer stands). */
  deleteIfCurrent(tenant: string, hint: H): void {
    if (this.#byTenant.get(tenant) === hint) this.#byTenant.delete(tenant);
  }
}
