import { z } from 'zod';

/** Built per parse and dropped after (why: src/config/schema.ts). */
function build() {
  /** Policy engine configuration: where the policy files live and how they are reloaded. */
  const policiesSchema = z
    .object({
      dir: z
        .string()
        .min(1)
        .optional()
        .describe("Directory of policy files (*.yaml), relative to the config file. Default 'policies'; when the default directory does not exist a built-in permissive policy is used."),
      default: z.string().min(1).default('default').describe('Policy for tenants without `policy`.'),
      watch: z.boolean().default(true).describe('Reload changed policy files (and their custom modules) without a restart.'),
      watchDebounceMs: z.number().int().nonnegative().max(10_000).default(50).describe('Quiet time after a file change before it is reloaded.'),
      notices: z
        .enum(['event', 'error', 'off'])
        .default('event')
        .describe(
          "How a client hears of what the proxy did to an event it forwarded or to the server stream (a lock's rewrite, a redaction, a clamp, a response cancelled by policy): event sends `rtproxy.notice`, which SDKs ignore; error sends a Realtime `error` event (the behaviour until 2026-12-07; SDK apps without an error listener crash on it); off sends nothing. Refusals and session ends are always `error` events.",
        ),
    })
    .strict();
  return { policiesSchema };
}

type Built = ReturnType<typeof build>;

export const policiesSchema = (): Built['policiesSchema'] => build().policiesSchema;

export type PoliciesConfig = z.infer<Built['policiesSchema']>;
