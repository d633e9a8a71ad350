import { z } from 'zod';
import { callsSchema } from '../calls/config.js';
import { meteringSchemas } from '../metering/config.js';
import { policiesSchema } from '../policies/config.js';
import { telemetrySchema } from '../telemetry/config.js';
import { MAX_CONTROL_DEPTH } from '../protocol/strict-json.js';

const MiB = 1024 * 1024;
const KiB = 1024;

/** Names that would address Object.prototype instead of a map entry: refused as map keys. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Every zod schema of the config (and, in src/policies/schema.ts, of a policy file) is built when a
 * document is parsed and dropped after, never when its module loads: zod 4 gives each schema object
 * dozens of methods of its own, ~6 MB of heap for the proxy's schemas that a running proxy does not
 * need (src/config/schema-lifetime.test.ts keeps it so).
 */
function build() {
  const metering = meteringSchemas();
  const port = z.number().int().min(0).max(65535);

  const tlsSchema = z
    .object({
      port: port.default(8443),
      certFile: z.string().min(1).describe('PEM certificate chain'),
      keyFile: z.string().min(1).describe('PEM private key'),
      passphrase: z.string().optional(),
    })
    .strict();

  const backpressureSchema = z
    .object({
      highWatermarkBytes: z.number().int().positive().default(1 * MiB).describe('Pause reading upstream when the client send buffer exceeds this.'),
      lowWatermarkBytes: z.number().int().nonnegative().default(256 * KiB).describe('Resume reading upstream when the client buffer drains below this.'),
      maxBufferedBytes: z.number().int().positive().default(16 * MiB).describe('Hard cap of a client send buffer; beyond it the client is closed (4008).'),
      slowClientGraceMs: z.number().int().positive().default(10_000).describe('A client that stays above the high watermark this long is closed (4008).'),
      upstreamMaxBufferedBytes: z.number().int().positive().default(32 * MiB).describe('Cap of bytes waiting to be written upstream (including frames sent before the upstream opened).'),
    })
    .strict()
    .refine((b) => b.lowWatermarkBytes < b.highWatermarkBytes, { message: 'lowWatermarkBytes must be below highWatermarkBytes' });

  const serverSchema = z
    .object({
      host: z.string().default('0.0.0.0'),
      port: port.default(8080),
      tls: tlsSchema.nullable().default(null),
      maxFrameBytes: z.number().int().positive().default(16 * MiB).describe('Largest client frame; a single input_audio_buffer.append may carry 15 MiB.'),
      idleTimeoutSec: z.number().int().min(8).max(960).default(120).describe('Idle clients are pinged; silent ones are closed after this.'),
      shutdownDrainSec: z.number().nonnegative().default(30),
      maxSessions: z.number().int().positive().default(10_000),
      maxHeaderBytes: z.number().int().min(1024).default(16 * KiB).describe('Largest request header section (names + values); larger requests get 431 before any key is looked at.'),
      oversizeHeadroomBytes: z
        .number()
        .int()
        .nonnegative()
        .default(5 * MiB)
        .describe('A frame up to maxFrameBytes + this gets a frame_too_large error and the session goes on; a larger one is cut by uWS (1009). Bounds each connection\'s partially received message.'),
      memoryBudgetBytes: z
        .number()
        .int()
        .positive()
        .default(256 * MiB)
        .describe('Global budget for frames and send buffers held for all sessions; past it new sessions get 503 overloaded and large frames are refused.'),
      memoryBudgetTenantShare: z
        .number()
        .gt(0)
        .max(1)
        .optional()
        .describe(
          'The fraction of memoryBudgetBytes one tenant\'s sessions may hold (default: 0.5 with more than one tenant configured, 1 with one). Past it that tenant\'s large frames get memory_budget_exceeded, its largest session is ended (4008) at the once-a-second recount, and its new sessions get 429 memory_budget_exceeded; other tenants are unaffected.',
        ),
      maxUnauthenticatedBodies: z
        .number()
        .int()
        .positive()
        .default(64)
        .describe(
          'HTTP request bodies being read before their sender is authenticated (SIP webhooks, client-secret SDP offers while the secret is looked up), per process; more get 503 overloaded at their headers. Each is also bounded by its route\'s limit and counted in memoryBudgetBytes.',
        ),
      maxUnauthenticatedBodiesPerSource: z
        .number()
        .int()
        .positive()
        .default(8)
        .describe(
          'Of maxUnauthenticatedBodies, how many one source may hold (its address; an IPv6 address counts by its /64), so that one sender cannot take them all; more get 503 overloaded at their headers. Behind a load balancer every sender has the balancer\'s address unless forwardedForHops is set.',
        ),
      forwardedForHops: z
        .number()
        .int()
        .min(0)
        .max(16)
        .default(0)
        .describe(
          'Trusted proxies (load balancers) in front of this one that append the address they saw to X-Forwarded-For: with N, a request\'s source (for maxUnauthenticatedBodiesPerSource) is the Nth entry from the right. 0: the header is ignored (a client can write anything there). Set it only when every connection comes through those proxies.',
        ),
      maxJsonDepth: z.number().int().min(8).max(MAX_CONTROL_DEPTH).default(MAX_CONTROL_DEPTH).describe(`Deepest nesting of a client event (at most ${MAX_CONTROL_DEPTH}, the limit of the strict parser every filter reads through); deeper events get invalid_event and are not relayed.`),
      backpressure: backpressureSchema.prefault({}),
      demo: z.boolean().default(false).describe('Serve the browser demo page at GET /demo (local demos only).'),
      workers: z
        .union([z.number().int().min(1).max(256), z.literal('auto')])
        .default('auto')
        .describe(
          'Relay processes sharing the client port (SO_REUSEPORT): a number, or auto = one per usable core (the CPU count, lowered by a cgroup CPU quota). With more than one, a primary process owns the ledger, the admin listener and one merged /metrics; maxSessions and memoryBudgetBytes are split between the workers.',
        ),
    })
    .strict();

  const azureSchema = z
    .object({
      endpoint: z.string().url().describe('https://<resource>.openai.azure.com'),
      deployment: z.string().min(1).describe('The deployment dialled for sessions that name no model, or the model it runs.'),
      model: z
        .string()
        .min(1)
        .optional()
        .describe('The model `deployment` runs (pricing, model allowlist and locks use it; default: the deployment name).'),
      deployments: z
        .record(z.string().min(1), z.string().min(1))
        .default({})
        .describe('Further deployments a client may reach by model: model id (the client ?model=) → deployment name.'),
      apiVersion: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Only for the preview protocol: when set, the proxy dials /openai/realtime?api-version=…&deployment=… instead of the GA /openai/v1/realtime?model=<deployment>.',
        ),
    })
    .strict();

  const upstreamSchema = z
    .object({
      provider: z.enum(['openai', 'azure', 'simulator']).default('openai'),
      url: z.string().default('wss://api.openai.com/v1/realtime'),
      apiKey: z.string().default(''),
      organization: z.string().optional(),
      project: z.string().optional(),
      azure: azureSchema.optional(),
      allowCallId: z
        .boolean()
        .default(false)
        .describe(
          'Let clients attach to a SIP/WebRTC call with ?call_id=. With calls.enabled, only the tenant that created the call through this proxy may attach (call_not_found otherwise); without it, call ids are not bound to tenants, so any tenant could join any call.',
        ),
      onInjectedEventError: z
        .enum(['end_session', 'per_response'])
        .default('end_session')
        .describe(
          'The upstream refused an event the proxy sent itself (a locked session.update, a clamp, an item delete): end_session ends the session (4003, governance_failed); per_response logs, counts and goes on with per-response enforcement only.',
        ),
      connectTimeoutMs: z.number().int().positive().default(2000),
      pingIntervalMs: z.number().int().positive().default(20_000),
      pongTimeoutMs: z.number().int().positive().default(10_000),
      validateUtf8: z.boolean().default(true).describe('Validate UTF-8 of upstream text frames (an invalid frame ends the session with upstream_closed instead of reaching clients).'),
    })
    .strict();

  const keyEntrySchema = z.union([
    z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex characters') }).strict(),
    z.object({ key: z.string().min(16, 'keys must be at least 16 characters') }).strict(),
  ]);

  const tenantSchema = z
    .object({
      name: z.string().optional(),
      keys: z.array(keyEntrySchema).min(1),
      policy: z.string().optional().describe('Policy name from policies/; the default policy applies when absent.'),
      plan: z.string().optional().describe('Named plan from metering.plans.'),
      limits: metering.tenantLimitsSchema.optional(),
    })
    .strict();

  const adminSchema = z
    .object({
      key: z.string().optional().describe('Admin API key (plain, at least 16 characters, or sha256:<64 hex>); the admin API is off without it.'),
      host: z.string().default('127.0.0.1').describe('Listen address of the admin listener (admin API, /metrics); keep it off the client network.'),
      port: port.nullable().default(8081).describe('Port of the admin listener; null: no admin listener (no admin API, no /metrics on a proxy port).'),
    })
    .strict();

  const loggingSchema = z
    .object({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      refusalIntervalSec: z.number().positive().default(60).describe('Refused upgrades (bad keys, …) log one line per source and reason per interval, with a count.'),
    })
    .strict();

  const configSchema = z
    .object({
      server: serverSchema.prefault({}),
      upstream: upstreamSchema.prefault({}),
      admin: adminSchema.prefault({}),
      logging: loggingSchema.prefault({}),
      metering: metering.meteringSchema.prefault({}),
      policies: policiesSchema().prefault({}),
      telemetry: telemetrySchema().prefault({}),
      // Browser (WebRTC) and phone (SIP) calls: src/calls.
      calls: callsSchema().prefault({}),
      tenants: z
        .record(
          z
            .string()
            .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'tenant ids are 1-64 of [A-Za-z0-9_.-]')
            .refine((id) => !RESERVED_KEYS.has(id), { message: 'tenant ids may not be __proto__, constructor or prototype' }),
          tenantSchema,
        )
        .default({}),
    })
    .strict();
  return { tenantSchema, configSchema };
}

type Built = ReturnType<typeof build>;

export const configSchema = (): Built['configSchema'] => build().configSchema;

export type Config = z.infer<Built['configSchema']>;
export type ConfigInput = z.input<Built['configSchema']>;
export type TenantConfig = z.infer<Built['tenantSchema']>;
