import { z } from 'zod';

/** Policy engine configuration: where the policy files live and how they are reloaded. */
export const policiesSchema = z
  .object({
    dir: z
      .string()
      .min(1)
      .optional()
      .describe("Directory of policy files (*.yaml), relative to the config file. Default 'policies'; when the default directory does not exist a built-in permissive policy is used."),
    default: z.string().min(1).default('default').describe('Policy for tenants without `policy`.'),
    watch: z.boolean().default(true).describe('Reload changed policy files (and their custom modules) without a restart.'),
    watchDebounceMs: z.number().int().nonnegative().max(10_000).default(50).describe('Quiet time after a file change before it is reloaded.'),
  })
  .strict();

export type PoliciesConfig = z.infer<typeof policiesSchema>;
