import { z } from 'zod';

/**
 * Metering configuration (owned by the metering concern). Stub: extended by the metering work.
 * `tenantLimits` is embedded in each tenant's config under `limits`.
 */
export const tenantLimitsSchema = z.object({}).passthrough();
export const meteringSchema = z.object({}).passthrough();

export type TenantLimitsConfig = z.infer<typeof tenantLimitsSchema>;
export type MeteringConfig = z.infer<typeof meteringSchema>;
