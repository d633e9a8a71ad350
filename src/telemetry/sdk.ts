import { randomUUID } from 'node:crypto';
import type { Meter, Tracer } from '@opentelemetry/api';
import { OTLPMetricExporter as OTLPMetricExporterJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPMetricExporterProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter as OTLPTraceExporterJson } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPTraceExporterProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ownPackage } from '../version.js';
import type { TelemetrySettings } from './settings.js';

export const INSTRUMENTATION_SCOPE = 'realtime-proxy';

/** The package version for `service.version` (from src/ or dist/). */
function packageVersion(): string | null {
  return ownPackage.version;
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

  constructor(settings: TelemetrySettings, overrides: SdkOverrides = {}) {
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
      const options = { url: settings.traces.endpoint, headers: { ...settings.traces.headers } };
      const exporter = settings.traces.protocol === 'http/json' ? new OTLPTraceExporterJson(options) : new OTLPTraceExporterProto(options);
      // Batch settings come from OTEL_BSP_* (read by the processor itself).
      processors.push(new BatchSpanProcessor(exporter));
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
      const options = { url: otlp.endpoint, headers: { ...otlp.headers } };
      const exporter = otlp.protocol === 'http/json' ? new OTLPMetricExporterJson(options) : new OTLPMetricExporterProto(options);
      readers.push(new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: otlp.intervalMs, exportTimeoutMillis: Math.min(30_000, otlp.intervalMs) }));
    }
    this.#meterProvider = new MeterProvider({ resource: this.resource, readers });
    this.meter = this.#meterProvider.getMeter(INSTRUMENTATION_SCOPE);
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
