import { z } from 'zod';

/** Policy engine configuration (owned by the policy concern). Stub: extended by the policy work. */
export const policiesSchema = z.object({}).passthrough();
export type PoliciesConfig = z.infer<typeof policiesSchema>;
