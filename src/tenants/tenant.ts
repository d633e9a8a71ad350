import type { TenantLimitsConfig } from '../metering/config.js';

/** A tenant as the running proxy sees it: resolved from config, keys reduced to hashes. */
export interface Tenant {
  readonly id: string;
  readonly name: string;
  /** Policy name (policies/), or null for the default policy. */
  readonly policy: string | null;
  /** Named plan (metering.plans), or null. */
  readonly plan: string | null;
  readonly limits: TenantLimitsConfig | null;
}
