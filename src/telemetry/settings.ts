import type { TelemetryConfig } from './config.js';

export type OtlpProtocol = 'http/protobuf' | 'http/json';

/** The effective telemetry settings: the config with the standard OTEL_* variables applied on top. */
export interface TelemetrySettings {
  readonly enabled: boolean;
  readonly serviceName: string;
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly traces: {
    /** `none` also when `otlp` was asked for without any endpoint. */
    readonly exporter: 'otlp' | 'console' | 'none';
    readonly endpoint: string | null;
    readonly protocol: OtlpProtocol;
    readonly headers: Readonly<Record<string, string>>;
    readonly sampleRatio: number;
    readonly maxQueueBytes: number;
  };
  readonly metrics: {
    readonly prometheus: { readonly enabled: boolean; readonly port: number | null; readonly host: string; readonly path: string };
    readonly otlp: {
      readonly enabled: boolean;
      readonly endpoint: string | null;
      readonly protocol: OtlpProtocol;
      readonly headers: Readonly<Record<string, string>>;
      readonly intervalMs: number;
    };
  };
  readonly capture: { readonly enabled: boolean; readonly tenants: ReadonlySet<string> | null; readonly maxChars: number };
  readonly turns: TelemetryConfig['turns'];
  readonly relaySampleEvery: number;
  readonly logTurns: TelemetryConfig['logTurns'];
  /** Problems with OTEL_* values, logged once at boot. */
  readonly warnings: readonly string[];
}

type Env = Readonly<Record<string, string | undefined>>;

function envString(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

function envList(env: Env, name: string): string[] | undefined {
  const v = envString(env, name);
  return v === undefined ? undefined : v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
}

function envBool(env: Env, name: string): boolean | undefined {
  const v = envString(env, name)?.toLowerCase();
  if (v === undefined) return undefined;
  return v === 'true' || v === '1';
}

/** `k=v,k2=v2` with percent-encoded values (W3C baggage style), as OTEL_RESOURCE_ATTRIBUTES and _HEADERS use. */
export function parseKeyValueList(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!value) return out;
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    let v = raw;
    try {
      v = decodeURIComponent(raw);
    } catch {
      // Keep the raw value: a stray % is not worth refusing to start over.
    }
    if (key) out[key] = v;
  }
  return out;
}

function protocolFrom(env: Env, signal: 'TRACES' | 'METRICS', fallback: OtlpProtocol, warnings: string[]): OtlpProtocol {
  const name = envString(env, `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL` : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const v = envString(env, name);
  if (v === undefined) return fallback;
  if (v === 'http/protobuf' || v === 'http/json') return v;
  warnings.push(`${name}=${v} is not supported (use http/protobuf or http/json); using ${fallback}`);
  return fallback;
}

function endpointFrom(env: Env, signal: 'TRACES' | 'METRICS', configured: string | null): string | null {
  const specific = envString(env, `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`);
  if (specific) return specific;
  const base = envString(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (base) return `${base.replace(/\/+$/, '')}/v1/${signal.toLowerCase()}`;
  return configured;
}

function ratioFromSampler(env: Env, configured: number, warnings: string[]): number {
  const sampler = envString(env, 'OTEL_TRACES_SAMPLER')?.toLowerCase();
  if (sampler === undefined) return configured;
  switch (sampler) {
    case 'always_on':
    case 'parentbased_always_on':
      return 1;
    case 'always_off':
    case 'parentbased_always_off':
      return 0;
    case 'traceidratio':
    case 'parentbased_traceidratio': {
      const arg = Number(envString(env, 'OTEL_TRACES_SAMPLER_ARG') ?? '1');
      if (Number.isFinite(arg) && arg >= 0 && arg <= 1) return arg;
      warnings.push(`OTEL_TRACES_SAMPLER_ARG must be within [0, 1]; using 1`);
      return 1;
    }
    default:
      warnings.push(`OTEL_TRACES_SAMPLER=${sampler} is not supported; using the configured ratio ${configured}`);
      return configured;
  }
}

/** Applies the OTEL_* environment to the config: environment variables win, as in the OTel SDKs. */
export function resolveSettings(config: TelemetryConfig, env: Env): TelemetrySettings {
  const warnings: string[] = [];
  const resourceAttributes = parseKeyValueList(envString(env, 'OTEL_RESOURCE_ATTRIBUTES'));
  const serviceName = envString(env, 'OTEL_SERVICE_NAME') ?? resourceAttributes['service.name'] ?? config.serviceName;

  let tracesExporter = config.traces.exporter;
  const tracesList = envList(env, 'OTEL_TRACES_EXPORTER');
  if (tracesList) {
    const known = tracesList.find((v) => v === 'otlp' || v === 'console' || v === 'none');
    if (known === 'otlp' || known === 'console' || known === 'none') tracesExporter = known;
    else warnings.push(`OTEL_TRACES_EXPORTER=${tracesList.join(',')} is not supported; using ${tracesExporter}`);
  }
  const tracesEndpoint = endpointFrom(env, 'TRACES', config.traces.endpoint);
  if (tracesExporter === 'otlp' && tracesEndpoint === null) tracesExporter = 'none';
  const commonHeaders = parseKeyValueList(envString(env, 'OTEL_EXPORTER_OTLP_HEADERS'));

  let prometheusEnabled = config.metrics.prometheus.enabled;
  let otlpMetricsEnabled = config.metrics.otlp.enabled;
  const metricsList = envList(env, 'OTEL_METRICS_EXPORTER');
  if (metricsList) {
    prometheusEnabled = metricsList.includes('prometheus');
    otlpMetricsEnabled = metricsList.includes('otlp');
  }
  const promPort = envString(env, 'OTEL_EXPORTER_PROMETHEUS_PORT');
  let prometheusPort = config.metrics.prometheus.port;
  if (promPort !== undefined) {
    const n = Number(promPort);
    if (Number.isInteger(n) && n >= 0 && n <= 65535) prometheusPort = n;
    else warnings.push(`OTEL_EXPORTER_PROMETHEUS_PORT=${promPort} is not a port; ignored`);
  }
  const metricsEndpoint = endpointFrom(env, 'METRICS', config.metrics.otlp.endpoint);
  if (otlpMetricsEnabled && metricsEndpoint === null) {
    warnings.push('OTLP metrics are enabled but no endpoint is set; OTLP metrics are off');
    otlpMetricsEnabled = false;
  }
  const interval = Number(envString(env, 'OTEL_METRIC_EXPORT_INTERVAL') ?? config.metrics.otlp.intervalMs);

  const captureEnv = envBool(env, 'OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT');
  return {
    enabled: config.enabled && envBool(env, 'OTEL_SDK_DISABLED') !== true,
    serviceName,
    resourceAttributes,
    traces: {
      exporter: tracesExporter,
      endpoint: tracesEndpoint,
      protocol: protocolFrom(env, 'TRACES', config.traces.protocol, warnings),
      headers: { ...config.traces.headers, ...commonHeaders, ...parseKeyValueList(envString(env, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS')) },
      sampleRatio: ratioFromSampler(env, config.traces.sampleRatio, warnings),
      maxQueueBytes: config.traces.maxQueueBytes,
    },
    metrics: {
      prometheus: {
        enabled: prometheusEnabled,
        port: prometheusPort,
        host: envString(env, 'OTEL_EXPORTER_PROMETHEUS_HOST') ?? config.metrics.prometheus.host,
        path: config.metrics.prometheus.path,
      },
      otlp: {
        enabled: otlpMetricsEnabled,
        endpoint: metricsEndpoint,
        protocol: protocolFrom(env, 'METRICS', config.metrics.otlp.protocol, warnings),
        headers: { ...commonHeaders, ...parseKeyValueList(envString(env, 'OTEL_EXPORTER_OTLP_METRICS_HEADERS')) },
        intervalMs: Number.isFinite(interval) && interval > 0 ? interval : config.metrics.otlp.intervalMs,
      },
    },
    capture: {
      enabled: captureEnv ?? config.captureContent.enabled,
      tenants: config.captureContent.tenants ? new Set(config.captureContent.tenants) : null,
      maxChars: config.captureContent.maxChars,
    },
    turns: config.turns,
    relaySampleEvery: config.relaySampleEvery,
    logTurns: config.logTurns,
    warnings,
  };
}
