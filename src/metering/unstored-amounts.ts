import type { Amount, UsageRecord } from './ledger.js';
import type { Period } from './periods.js';

const NONE: Amount = Object.freeze({ nanos: 0, tokens: 0 });

/**
 * Amounts of settled records the ledger's store does not hold, per tenant and period: SQLite's
 * records waiting for the file to take them, Redis's records whose bodies were dropped. What a
 * read of the store lacks, so the ledger adds it to the store's totals.
 */
export class UnstoredAmounts {
  readonly #byKey = new Map<string, Amount>();

  static #key(tenant: string, period: Period): string {
    return `${tenant}\u0000${period.key}`;
  }

  /** Adds (sign 1) or takes back (sign -1) a record's amount in each of `periods`; a sum back at zero is forgotten. */
  add(record: UsageRecord, periods: readonly Period[], sign: 1 | -1 = 1): void {
    for (const period of periods) {
      const key = UnstoredAmounts.#key(record.tenant, period);
      const cur = this.#byKey.get(key) ?? NONE;
      const next = { nanos: cur.nanos + sign * record.costNanos, tokens: cur.tokens + sign * record.totalTokens };
      if (next.nanos === 0 && next.tokens === 0) this.#byKey.delete(key);
      else this.#byKey.set(key, next);
    }
  }

  /** The tenant's unstored amount in `period` (zero when none). */
  of(tenant: string, period: Period): Amount {
    return this.#byKey.get(UnstoredAmounts.#key(tenant, period)) ?? NONE;
  }

  has(tenant: string, period: Period): boolean {
    return this.#byKey.has(UnstoredAmounts.#key(tenant, period));
  }

  /** Forgets the tenant's amount in `period` (its spend was reset). */
  forget(tenant: string, period: Period): void {
    this.#byKey.delete(UnstoredAmounts.#key(tenant, period));
  }
}
