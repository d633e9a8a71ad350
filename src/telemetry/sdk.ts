import { randomUUID } from 'node:crypto';
import type { Meter, Tracer } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ownPackage } from '../version.js';
import type { TelemetrySettings } from './settings.js';
import { WorkerSpanProcessor } from './span-export.js';

export const INSTRUMENTATION_SCOPE = 'realtime-proxy';

/** The package version for `service.version` (from src/ or dist/). */
function packageVersion(): string | null {
  return ownPackage.version;
}

/** OTEL_BSP_* (the batch span processor variables) applied to the export worker's queue. */
function batchSettings(): { maxQueueSize?: number; maxBatchSize?: number; scheduledDelayMs?: number; exportTimeoutMs?: number } {
  const n = (name: string): number | undefined => {
    const v = Number(process.env[name]);
    return Number.isFinite(v) && v > 0 ? v : undefined;
  };
  const out: { maxQueueSize?: number; maxBatchSize?: number; scheduledDelayMs?: number; exportTimeoutMs?: number } = {};
  const q = n('OTEL_BSP_MAX_QUEUE_SIZE');
  const b = n('OTEL_BSP_MAX_EXPORT_BATCH_SIZE');
  const d = n('OTEL_BSP_SCHEDULE_DELAY');
  const t = n('OTEL_BSP_EXPORT_TIMEOUT');
  if (q !== undefined) out.maxQueueSize = q;
  if (b !== undefined) out.maxBatchSize = b;
  if (d !== undefined) out.scheduledDelayMs = d;
  if (t !== undefined) out.exportTimeoutMs = t;
  return out;
}

/** Test and embedding hooks: replace the exporters the settings would build. */
export interface SdkOverrides {
  /** Spans go here, synchronously (SimpleSpanProcessor), instead of the configured exporter. */
  readonly spanExporter?: SpanExporter;
  /** Extra metric readers (e.g. a test reader). */
  readonly metricReaders?: readonly IMetricReader[];
}

/**
 * The OpenTelemetry SDK pieces for one proxy instance. Providers are instance-scoped, not
 * registered globally: NodeSDK always installs process-global providers, which breaks running
 * several proxies in one process (tests, embedding) and is not needed since the proxy passes its
 * tracer and meter explicitly. The components and the OTEL_* variables are those NodeSDK uses.
 */
export class TelemetrySdk {
  readonly resource: Resource;
  readonly tracer: Tracer | null;
  readonly meter: Meter;
  readonly #tracerProvider: BasicTracerProvider | null;
  readonly #meterProvider: MeterProvider;
  readonly #prometheus: PrometheusExporter | null;
  readonly #serializer = new PrometheusSerializer(undefined, false);
  readonly #servePrometheusHere: boolean;
  /** The OTLP span exporter's worker (null unless traces go over OTLP). */
  readonly spanExport: WorkerSpanProcessor | null = null;

  /**
   * Builds the SDK, loading the OTLP metric exporter module only when OTLP metrics are on (the
   * OTLP trace exporter is loaded only by the export worker). Prefer this to the constructor.
   */
  static async create(settings: TelemetrySettings, overrides: SdkOverrides = {}): Promise<TelemetrySdk> {
    const otlp = settings.metrics.otlp;
    let metricExporter: PushMetricExporter | null = null;
    if (otlp.enabled && otlp.endpoint) {
      const options = { url: otlp.endpoint, headers: { ...otlp.headers } };
      metricExporter =
        otlp.protocol === 'http/json'
          ? new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter(options)
          : new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter(options);
    }
    return new TelemetrySdk(settings, overrides, metricExporter);
  }

  /** `metricExporter`: the OTLP metric exporter when OTLP metrics are configured (see `create`). */
  constructor(settings: TelemetrySettings, overrides: SdkOverrides = {}, metricExporter: PushMetricExporter | null = null) {
    const version = packageVersion();
    this.resource = resourceFromAttributes({
      'service.instance.id': randomUUID(),
      ...(version ? { 'service.version': version } : {}),
      ...settings.resourceAttributes,
      'service.name': settings.serviceName,
    });

    const processors: SpanProcessor[] = [];
    if (overrides.spanExporter) processors.push(new SimpleSpanProcessor(overrides.spanExporter));
    else if (settings.traces.exporter === 'console') processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
    else if (settings.traces.exporter === 'otlp' && settings.traces.endpoint) {
      // Serialisation and HTTP in a worker thread; a bounded queue that drops (and counts) when full.
      this.spanExport = new WorkerSpanProcessor({
        protocol: settings.traces.protocol === 'http/json' ? 'http/json' : 'http/protobuf',
        url: settings.traces.endpoint,
        headers: { ...settings.traces.headers },
        resourceAttributes: { ...this.resource.attributes },
        ...batchSettings(),
      });
      processors.push(this.spanExport);
    }
    this.#tracerProvider =
      processors.length > 0 ? new BasicTracerProvider({ resource: this.resource, spanProcessors: processors, sampler: new AlwaysOnSampler() }) : null;
    this.tracer = this.#tracerProvider ? this.#tracerProvider.getTracer(INSTRUMENTATION_SCOPE) : null;

    const readers: IMetricReader[] = [...(overrides.metricReaders ?? [])];
    const prom = settings.metrics.prometheus;
    this.#servePrometheusHere = prom.enabled && prom.port === null;
    this.#prometheus = prom.enabled
      ? new PrometheusExporter({
          preventServerStart: prom.port === null,
          ...(prom.port !== null ? { port: prom.port, host: prom.host, endpoint: prom.path } : {}),
        })
      : null;
    if (this.#prometheus) readers.push(this.#prometheus);
    const otlp = settings.metrics.otlp;
    if (otlp.enabled && otlp.endpoint) {
      if (!metricExporter) throw new Error('OTLP metrics are configured: build the SDK with TelemetrySdk.create()');
      readers.push(
        new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: otlp.intervalMs, exportTimeoutMillis: Math.min(30_000, otlp.intervalMs) }),
      );
    }
    this.#meterProvider = new MeterProvider({ resource: this.resource, readers });
    this.meter = this.#meterProvider.getMeter(INSTRUMENTATION_SCOPE);
    const spanExport = this.spanExport;
    if (spanExport) {
      // Spans handed to the OTLP exporter, dropped on a full queue, or lost in a failed export.
      const spans = this.meter.createObservableCounter('rtproxy.telemetry.spans', { unit: '{span}', description: 'Spans exported over OTLP, by outcome (exported, dropped, failed).' });
      spans.addCallback((result) => {
        result.observe(spanExport.exported, { outcome: 'exported' });
        result.observe(spanExport.dropped, { outcome: 'dropped' });
        result.observe(spanExport.failed, { outcome: 'failed' });
      });
    }
  }

  /** True when /metrics is served as a route on the proxy's own port. */
  get servesMetricsOnProxyPort(): boolean {
    return this.#servePrometheusHere;
  }

  /** The Prometheus text exposition (only when Prometheus is enabled). */
  async metricsText(): Promise<string> {
    if (!this.#prometheus) return '';
    const { resourceMetrics } = await this.#prometheus.collect();
    return this.#serializer.serialize(resourceMetrics);
  }

  async forceFlush(): Promise<void> {
    await Promise.allSettled([this.#tracerProvider?.forceFlush(), this.#meterProvider.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.#tracerProvider?.shutdown(), this.#meterProvider.shutdown()]);
  }
}
