import { z } from 'zod';

/** Built per parse and dropped after (why: src/config/schema.ts). */
function build() {
  const port = z.number().int().min(0).max(65535);
  const otlpProtocol = z.enum(['http/protobuf', 'http/json']);

  const tracesSchema = z
    .object({
      exporter: z
        .enum(['otlp', 'console', 'none'])
        .default('otlp')
        .describe('OTEL_TRACES_EXPORTER overrides. `otlp` without an endpoint (here or OTEL_EXPORTER_OTLP_*) exports nothing.'),
      endpoint: z
        .string()
        .url()
        .nullable()
        .default(null)
        .describe('Full OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT overrides).'),
      protocol: otlpProtocol.default('http/protobuf').describe('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL override.'),
      headers: z.record(z.string(), z.string()).default({}).describe('Extra export headers (OTEL_EXPORTER_OTLP_HEADERS are added).'),
      sampleRatio: z
        .number()
        .min(0)
        .max(1)
        .default(1)
        .describe('Share of sessions traced, decided once per session (OTEL_TRACES_SAMPLER / _ARG override).'),
      maxQueueBytes: z
        .number()
        .int()
        .positive()
        .default(32 * 1024 * 1024)
        .describe(
          'Byte budget (estimated) of spans waiting for export or in flight; past it new spans are dropped and counted, as past the count bound (4096 spans, OTEL_BSP_MAX_QUEUE_SIZE).',
        ),
    })
    .strict();

  const prometheusSchema = z
    .object({
      enabled: z.boolean().default(true),
      port: port.nullable().default(null).describe('null: serve on the admin listener (admin.host:admin.port, loopback by default); a number: a separate listener of its own (OTEL_EXPORTER_PROMETHEUS_PORT).'),
      host: z.string().default('0.0.0.0').describe('Listen address of the separate listener.'),
      path: z.string().regex(/^\/[^\s?#]*$/).default('/metrics'),
    })
    .strict();

  const otlpMetricsSchema = z
    .object({
      enabled: z.boolean().default(false).describe('Also push metrics over OTLP (OTEL_METRICS_EXPORTER containing `otlp` enables).'),
      endpoint: z.string().url().nullable().default(null).describe('Full OTLP/HTTP metrics URL (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT overrides).'),
      protocol: otlpProtocol.default('http/protobuf'),
      intervalMs: z.number().int().positive().default(60_000).describe('OTEL_METRIC_EXPORT_INTERVAL overrides.'),
    })
    .strict();

  const metricsSchema = z
    .object({
      prometheus: prometheusSchema.prefault({}),
      otlp: otlpMetricsSchema.prefault({}),
    })
    .strict();

  const captureSchema = z
    .object({
      enabled: z
        .boolean()
        .default(false)
        .describe('Record transcripts on spans (PII-redacted, `rtproxy.pii.*`). OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true enables.'),
      tenants: z.array(z.string()).nullable().default(null).describe('Tenants whose content may be captured; null = all.'),
      maxChars: z.number().int().positive().default(2000),
    })
    .strict();

  const turnsSchema = z
    .object({
      maxTurnMs: z.number().int().positive().default(120_000).describe('A turn open longer than this ends with end_reason timeout.'),
      waitForPlayback: z.boolean().default(true).describe('Keep a turn open until the estimated end of its audio playback (barge-in detection).'),
      truncateGraceMs: z.number().int().nonnegative().default(1000).describe('After an interruption, wait this long for the client truncate.'),
    })
    .strict();

  /** Telemetry configuration (owned by the telemetry concern): traces, metrics, content capture. */
  const telemetrySchema = z
    .object({
      enabled: z.boolean().default(true).describe('false (or OTEL_SDK_DISABLED=true): no telemetry filter, no /metrics.'),
      serviceName: z.string().min(1).default('realtime-proxy').describe('OTEL_SERVICE_NAME overrides.'),
      traces: tracesSchema.prefault({}),
      metrics: metricsSchema.prefault({}),
      captureContent: captureSchema.prefault({}),
      turns: turnsSchema.prefault({}),
      relaySampleEvery: z.number().int().positive().default(64).describe('Measure proxy overhead on one frame in N per direction.'),
      logTurns: z
        .enum(['info', 'debug', 'off'])
        .default('debug')
        .describe('Level of the per-turn summary line (ids, latencies, tokens, cost; transcripts only with captureContent).'),
    })
    .strict();
  return { telemetrySchema };
}

type Built = ReturnType<typeof build>;

export const telemetrySchema = (): Built['telemetrySchema'] => build().telemetrySchema;

export type TelemetryConfig = z.infer<Built['telemetrySchema']>;
