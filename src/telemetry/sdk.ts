import { randomUUID } from 'node:crypto';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader, type MetricProducer, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ownPackage } from '../version.js';
import { HistogramProducer } from './histograms.js';
import { PrometheusListener } from './prometheus-listener.js';
import type { TelemetrySettings } from './settings.js';
import { WorkerSpanExport } from './span-export.js';
import { readableSpan, type PlainSpan, type SpanSink } from './span-records.js';

export const INSTRUMENTATION_SCOPE = 'realtime-proxy';

/**
 * Spans handed to an SDK exporter in process, one at a time as they end (what the SDK's
 * SimpleSpanProcessor did): the console exporter and tests' in-memory exporters.
 */
class ExporterSpanSink implements SpanSink {
  readonly #exporter: SpanExporter;
  readonly #resource: Resource;
  readonly #pending = new Set<Promise<void>>();

  constructor(exporter: SpanExporter, resource: Resource) {
    this.#exporter = exporter;
    this.#resource = resource;
  }

  emit(span: PlainSpan): void {
    let done!: () => void;
    const exported = new Promise<void>((resolve) => (done = resolve));
    this.#pending.add(exported);
    try {
      this.#exporter.export([readableSpan(span, this.#resource, { name: INSTRUMENTATION_SCOPE })], () => done());
    } catch {
      done();
    }
    void exported.then(() => this.#pending.delete(exported));
  }

  async forceFlush(): Promise<void> {
    await Promise.all(this.#pending);
    await this.#exporter.forceFlush?.();
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    await this.#exporter.shutdown();
  }
}

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
  /** Spans go here, one at a time as they end, instead of the configured exporter. */
  readonly spanExporter?: SpanExporter;
  /** Extra metric readers (e.g. a test reader), built with the producers every reader needs. */
  readonly metricReaders?: (metricProducers: MetricProducer[]) => readonly IMetricReader[];
}

/**
 * The OpenTelemetry SDK pieces for one proxy instance. Providers are instance-scoped, not
 * registered globally: NodeSDK always installs process-global providers, which breaks running
 * several proxies in one process (tests, embedding) and is not needed since the proxy passes its
 * span sink and meter explicitly. The components and the OTEL_* variables are those NodeSDK uses.
 */
export class TelemetrySdk {
  readonly resource: Resource;
  /** Where spans go; null when traces are off. */
  readonly spans: SpanSink | null;
  readonly meter: Meter;
  /** The proxy's histograms, reported to every reader beside the SDK's own instruments. */
  readonly histograms: HistogramProducer;
  readonly #meterProvider: MeterProvider;
  readonly #prometheus: PrometheusExporter | null;
  readonly #serializer = new PrometheusSerializer(undefined, false);
  readonly #servePrometheusHere: boolean;
  /** The separate /metrics listener (`prometheus.port` set; started by `create`). */
  #prometheusListener: PrometheusListener | null = null;
  /** The OTLP span exporter's worker (null unless traces go over OTLP). */
  readonly spanExport: WorkerSpanExport | null = null;

  /**
   * Builds the SDK, loading the OTLP metric exporter module only when OTLP metrics are on (the
   * OTLP trace exporter is loaded only by the export worker), and starts the separate /metrics
   * listener when `prometheus.port` is set (PrometheusListener: loopback Host names only when bound
   * to loopback; an address that cannot be bound fails here). Prefer this to the constructor.
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
    const sdk = new TelemetrySdk(settings, overrides, metricExporter);
    const prom = settings.metrics.prometheus;
    if (prom.enabled && prom.port !== null) {
      try {
        sdk.#prometheusListener = await PrometheusListener.start({ host: prom.host, port: prom.port, path: prom.path }, () => sdk.metricsText());
      } catch (err) {
        await sdk.shutdown();
        throw err;
      }
    }
    return sdk;
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

    if (overrides.spanExporter) this.spans = new ExporterSpanSink(overrides.spanExporter, this.resource);
    else if (settings.traces.exporter === 'console') this.spans = new ExporterSpanSink(new ConsoleSpanExporter(), this.resource);
    else if (settings.traces.exporter === 'otlp' && settings.traces.endpoint) {
      // Serialisation and HTTP in a worker thread; a queue bounded by count and bytes that drops (and counts) when full.
      this.spanExport = new WorkerSpanExport({
        protocol: settings.traces.protocol === 'http/json' ? 'http/json' : 'http/protobuf',
        url: settings.traces.endpoint,
        headers: { ...settings.traces.headers },
        resourceAttributes: { ...this.resource.attributes },
        scope: { name: INSTRUMENTATION_SCOPE },
        maxQueueBytes: settings.traces.maxQueueBytes,
        ...batchSettings(),
      });
      this.spans = this.spanExport;
    } else {
      this.spans = null;
    }

    this.histograms = new HistogramProducer(this.resource, { name: INSTRUMENTATION_SCOPE });
    // Every reader reports the histogram tables beside the SDK's own instruments.
    const metricProducers: MetricProducer[] = [this.histograms];
    const readers: IMetricReader[] = [...(overrides.metricReaders?.(metricProducers) ?? [])];
    const prom = settings.metrics.prometheus;
    this.#servePrometheusHere = prom.enabled && prom.port === null;
    // Only a reader: the exporter's own HTTP server answered any Host (DNS rebinding) and took
    // port 0 for its default 9464; the separate listener is PrometheusListener (see `create`).
    this.#prometheus = prom.enabled ? new PrometheusExporter({ preventServerStart: true, metricProducers }) : null;
    if (this.#prometheus) readers.push(this.#prometheus);
    const otlp = settings.metrics.otlp;
    if (otlp.enabled && otlp.endpoint) {
      if (!metricExporter) throw new Error('OTLP metrics are configured: build the SDK with TelemetrySdk.create()');
      readers.push(
        new PeriodicExportingMetricReader({ exporter: metricExporter, metricProducers, exportIntervalMillis: otlp.intervalMs, exportTimeoutMillis: Math.min(30_000, otlp.intervalMs) }),
      );
    }
    this.#meterProvider = new MeterProvider({ resource: this.resource, readers });
    this.meter = this.#meterProvider.getMeter(INSTRUMENTATION_SCOPE);
    const spanExport = this.spanExport;
    if (spanExport) {
      // Spans handed to the OTLP exporter, dropped on a full queue (count or bytes), or lost in a failed export.
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

  /** The separate /metrics listener's bound port, or null when there is none. */
  get prometheusPort(): number | null {
    return this.#prometheusListener?.port ?? null;
  }

  /** The Prometheus text exposition (only when Prometheus is enabled). */
  async metricsText(): Promise<string> {
    if (!this.#prometheus) return '';
    const { resourceMetrics } = await this.#prometheus.collect();
    return this.#serializer.serialize(resourceMetrics);
  }

  async forceFlush(): Promise<void> {
    await Promise.allSettled([this.spans?.forceFlush(), this.#meterProvider.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    const listener = this.#prometheusListener;
    this.#prometheusListener = null;
    await Promise.allSettled([listener?.close(), this.spans?.shutdown(), this.#meterProvider.shutdown()]);
  }
}
