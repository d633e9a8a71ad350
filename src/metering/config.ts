import { z } from 'zod';

/**
 * Metering configuration (owned by the metering concern). Money is written in USD (a number or a
 * decimal string) and converted once at boot into integer nano-dollars; nothing is priced in floats.
 */

/** Built per parse and dropped after (why: src/config/schema.ts); the config schema takes two of them from one build. */
export function meteringSchemas() {
  const usd = z
    .union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?$/, 'a decimal USD amount such as "5" or "0.25"')])
    .describe('USD (number or decimal string).');

  const tokens = z.number().int().nonnegative();

  /**
   * Limits of one tenant or one plan. A field that is absent inherits (tenant ← plan ← defaultPlan);
   * `null` removes an inherited limit.
   */
  const tenantLimitsSchema = z
    .object({
      dailyUsd: usd.nullable().optional().describe('Cost cap per UTC calendar day.'),
      monthlyUsd: usd.nullable().optional().describe('Cost cap per UTC calendar month.'),
      dailyTokens: tokens.nullable().optional().describe('Token cap (input + output) per UTC day.'),
      monthlyTokens: tokens.nullable().optional().describe('Token cap (input + output) per UTC month.'),
      maxSessionTokens: tokens.nullable().optional().describe('Total tokens one session may use; further responses are refused.'),
      maxResponseOutputTokens: z
        .number()
        .int()
        .min(1)
        .nullable()
        .optional()
        .describe('Clamp for max_output_tokens in session.update / response.create ("inf" included).'),
      maxSessionDurationSec: z.number().int().positive().nullable().optional().describe('Sessions are ended (4002) after this long.'),
      maxConcurrentSessions: z.number().int().positive().nullable().optional().describe('Open sessions per tenant (shared across instances with the redis ledger).'),
    })
    .strict();

  const tokenPriceFields = {
    textIn: usd.optional(),
    cachedTextIn: usd.optional(),
    textOut: usd.optional(),
    audioIn: usd.optional(),
    cachedAudioIn: usd.optional(),
    audioOut: usd.optional(),
    imageIn: usd.optional(),
    cachedImageIn: usd.optional(),
  };

  /** A price entry: USD per 1M tokens (multiples of $0.001), and/or USD per minute for duration usage. */
  const priceSchema = z
    .object({
      extends: z.string().optional().describe('Start from this model\'s price (a shipped default or another entry) and override fields.'),
      kind: z.enum(['realtime', 'transcription']).optional(),
      ...tokenPriceFields,
      perMinute: usd.optional().describe('USD per minute of audio, for transcription usage of type "duration".'),
      contextWindow: z.number().int().positive().optional(),
      maxOutputTokens: z.number().int().positive().optional(),
    })
    .strict();

  const ledgerSchema = z
    .object({
      kind: z.enum(['sqlite', 'redis']).default('sqlite'),
      path: z
        .string()
        .default('.data/metering.sqlite')
        .describe('SQLite file (relative to the config file directory); ":memory:" keeps nothing across restarts.'),
      synchronous: z
        .enum(['normal', 'full'])
        .default('normal')
        .describe('normal: a settled response survives a process crash (kill -9); full: also an OS crash/power loss, at an fsync per settle.'),
      url: z.string().default('redis://127.0.0.1:6379').describe('Redis URL (kind: redis).'),
      keyPrefix: z.string().default('rtproxy:'),
      failMode: z
        .enum(['closed', 'open'])
        .default('closed')
        .describe('Redis unreachable: closed refuses new responses (budget_unavailable); open lets them run unmetered against caps.'),
      commandTimeoutMs: z.number().int().positive().default(500),
      retentionDays: z
        .number()
        .int()
        .positive()
        .nullable()
        .default(90)
        .describe('SQLite: usage records older than this are deleted (the day and month spend totals are kept). null keeps them forever.'),
      reservationTtlSec: z.number().int().positive().default(600).describe('A reservation whose instance died is dropped after this long.'),
      usageStreamMaxLen: z.number().int().positive().default(1_000_000).describe('Redis: usage records kept per tenant (approximate trim).'),
      pendingMax: z.number().int().positive().default(100_000).describe('Redis: settlements queued in memory while Redis does not take them; at this many new responses are refused (budget_unavailable, either failMode), bodies are kept up to twice as many, amounts always count.'),
    })
    .strict();

  const meteringSchema = z
    .object({
      enabled: z.boolean().default(true),
      prices: z.record(z.string(), priceSchema).default({}).describe('Per-model overrides and additions, keyed by model id.'),
      aliases: z.record(z.string(), z.string()).default({}).describe('Model id (e.g. an Azure deployment) → priced model id.'),
      fallbackPrice: z
        .string()
        .nullable()
        .default(null)
        .describe('Model id whose price applies to unknown models. null: sessions for unpriced models are refused.'),
      plans: z.record(z.string(), tenantLimitsSchema).default({}),
      defaultPlan: z.string().nullable().default(null).describe('Plan of tenants that name none.'),
      ledger: ledgerSchema.prefault({}),
      onExhausted: z
        .enum(['refuse', 'end_session'])
        .default('refuse')
        .describe('Over a cap: refuse the response (session goes on) or also end the session with 4002.'),
      admission: z
        .enum(['remaining', 'worst_case'])
        .default('remaining')
        .describe('remaining: a response may start while budget remains (overshoot ≤ one response); worst_case: only if its worst-case cost fits.'),
      inputAllowanceTokens: z
        .number()
        .int()
        .nonnegative()
        .default(0)
        .describe('Extra input tokens (text rate) added to every reservation, on top of the conversation estimate.'),
      lingerAfterClientCloseMs: z
        .number()
        .int()
        .nonnegative()
        .default(5000)
        .describe('A client that leaves mid-response (or with audio in the input buffer under turn detection): the upstream is kept (response.cancel sent; the buffer cleared) up to this long for its response.done and the buffer\'s fate, so the usage OpenAI bills is metered. 0: close at once (then estimated).'),
      pendingResponseTimeoutMs: z.number().int().positive().default(15_000).describe('Under admission remaining, a reserved response.create with no response.created is released after this (worst_case never releases one on a timer).'),
      export: z
        .object({
          file: z.string().nullable().default(null).describe('Append every usage record as a JSON line to this file.'),
        })
        .strict()
        .prefault({}),
    })
    .strict();
  return { tenantLimitsSchema, priceSchema, ledgerSchema, meteringSchema };
}

type Built = ReturnType<typeof meteringSchemas>;

export const meteringSchema = (): Built['meteringSchema'] => meteringSchemas().meteringSchema;

export type TenantLimitsConfig = z.infer<Built['tenantLimitsSchema']>;
export type MeteringConfig = z.infer<Built['meteringSchema']>;
export type PriceConfig = z.infer<Built['priceSchema']>;
export type LedgerConfig = z.infer<Built['ledgerSchema']>;
