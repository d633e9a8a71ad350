import type { IMetricReader, MetricProducer } from '@opentelemetry/sdk-metrics';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { HttpRoute, ModuleDeps, ProxyModule } from '../app/module.js';
import type { Config } from '../config/schema.js';
import { redactUrl } from '../logging.js';
import { PriceBook } from '../metering/pricing.js';
import { literalSecrets } from './redact.js';
import { TelemetryMetrics } from './metrics.js';
import { TelemetrySdk } from './sdk.js';
import type { SpanSink } from './span-records.js';
import { TelemetryFilterFactory, type TelemetryShared } from './session.js';
import { resolveSettings, type TelemetrySettings } from './settings.js';
import type { Scheduler } from './turns.js';

export interface TelemetryOptions {
  /** OTEL_* variables (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Send spans here (synchronously) instead of the configured exporter: tests. */
  readonly spanExporter?: SpanExporter;
  /** Extra metric readers (tests), built with the producers every reader needs. */
  readonly metricReaders?: (metricProducers: MetricProducer[]) => readonly IMetricReader[];
  readonly scheduler?: Scheduler;
}

export interface TelemetryModule extends ProxyModule {
  readonly settings: TelemetrySettings;
  readonly sdk: TelemetrySdk | null;
  /** Where the proxy's spans go; null when traces are off. */
  readonly spans: SpanSink | null;
}

/** Where the proxy dials: `server.address` / `server.port` of the inference spans. */
function upstreamAddress(config: Config): { address: string | null; port: number | null } {
  const up = config.upstream;
  const raw = up.provider === 'azure' && up.azure ? up.azure.endpoint : up.url;
  try {
    const u = new URL(raw);
    const secure = u.protocol === 'wss:' || u.protocol === 'https:';
    return { address: u.hostname, port: u.port ? Number(u.port) : secure ? 443 : 80 };
  } catch {
    return { address: null, port: null };
  }
}

/**
 * The credentials the proxy is configured with, in the forms a transcript could carry them: every
 * plain tenant key (hashed ones cannot be searched for), the upstream key, the plain admin key and
 * the webhook signing secret (with and without its `whsec_` prefix).
 */
export function configuredSecrets(config: Config): string[] {
  const out: string[] = [];
  for (const tenant of Object.values(config.tenants)) for (const entry of tenant.keys) if ('key' in entry) out.push(entry.key);
  if (config.upstream.apiKey) out.push(config.upstream.apiKey);
  const admin = config.admin.key;
  if (admin && !admin.startsWith('sha256:')) out.push(admin);
  const webhook = config.calls.sip?.webhookSecret;
  if (webhook) out.push(webhook, webhook.startsWith('whsec_') ? webhook.slice('whsec_'.length) : webhook);
  // The secrets the tenants' apps verify the call announcements with (whsec_ required there).
  for (const route of config.calls.sip?.routes ?? []) if (route.notify) out.push(route.notify.secret, route.notify.secret.slice('whsec_'.length));
  return out;
}

/**
 * The telemetry concern: a first-in-chain filter that turns the event stream into per-turn traces,
 * metrics and trace-correlated log lines; `/metrics` for Prometheus (a route on the admin listener, or a
 * separate listener); OTLP export. With `telemetry.enabled: false` it contributes nothing at all.
 */
/** Where /metrics is served when this process has no listener of its own for it (the start-up line). */
function metricsRoute(deps: ModuleDeps, path: string): string {
  if (deps.relayWorker) return `the primary (merged ${path})`;
  return deps.config.admin.port === null ? `nowhere (admin.port is null)` : `admin listener ${path}`;
}

export async function createTelemetryModule(deps: ModuleDeps, options: TelemetryOptions = {}): Promise<TelemetryModule> {
  const settings = resolveSettings(deps.config.telemetry, options.env ?? process.env);
  const log = deps.log.child({ module: 'telemetry' });
  for (const w of settings.warnings) log.warn(w);
  if (!settings.enabled) {
    log.info('telemetry disabled');
    return { name: 'telemetry', filters: [], settings, sdk: null, spans: null };
  }
  const sdk = await TelemetrySdk.create(settings, {
    ...(options.spanExporter ? { spanExporter: options.spanExporter } : {}),
    ...(options.metricReaders ? { metricReaders: options.metricReaders } : {}),
  });
  const metrics = new TelemetryMetrics(sdk);
  const upstream = upstreamAddress(deps.config);
  // Which models are priced (a model label needs the upstream's acceptance or a price; metering validated the table at boot).
  const prices = new PriceBook({ prices: deps.config.metering.prices, aliases: deps.config.metering.aliases });
  const shared: TelemetryShared = {
    priced: (model) => prices.own(model) !== null,
    secrets: settings.capture.enabled ? literalSecrets(configuredSecrets(deps.config)) : null,
    settings,
    metrics,
    spans: sdk.spans,
    serverAddress: upstream.address,
    serverPort: upstream.port,
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
  };
  const routes: HttpRoute[] = [];
  const prom = settings.metrics.prometheus;
  if (sdk.servesMetricsOnProxyPort) {
    routes.push({
      method: 'GET',
      path: prom.path,
      auth: 'none',
      async handle() {
        return { status: 200, headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }, body: await sdk.metricsText() };
      },
    });
  }
  const metricsPort = sdk.prometheusPort;
  if (metricsPort !== null) log.info({ host: prom.host, port: metricsPort, path: prom.path }, 'prometheus listening');
  log.info(
    {
      traces: settings.traces.exporter,
      endpoint: settings.traces.exporter === 'otlp' ? redactUrl(settings.traces.endpoint) : null,
      protocol: settings.traces.protocol,
      sampleRatio: settings.traces.sampleRatio,
      prometheus: prom.enabled ? (metricsPort !== null ? `${prom.host}:${metricsPort}${prom.path}` : metricsRoute(deps, prom.path)) : false,
      otlpMetrics: settings.metrics.otlp.enabled ? redactUrl(settings.metrics.otlp.endpoint) : false,
      captureContent: settings.capture.enabled,
    },
    'telemetry ready',
  );
  return {
    name: 'telemetry',
    filters: [new TelemetryFilterFactory(shared)],
    routes,
    settings,
    sdk,
    spans: sdk.spans,
    onUpgradeRefused: (reason) => metrics.upgradeRefused(reason),
    onRequestRefused: (route, code) => metrics.httpRefused(route, code),
    onCallNotified: (tenant, outcome) => metrics.callNotified(tenant, outcome),
    onCallTransferred: (tenant, outcome) => metrics.callTransferred(tenant, outcome),
    async close() {
      await sdk.forceFlush();
      await sdk.shutdown();
    },
  };
}
