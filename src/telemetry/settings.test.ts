import { describe, expect, it } from 'vitest';
import { telemetrySchema } from './config.js';
import { redactPii } from './redact.js';
import { parseKeyValueList, resolveSettings } from './settings.js';

const cfg = (input: Record<string, unknown> = {}) => telemetrySchema().parse(input);

describe('telemetry settings', () => {
  it('defaults: Prometheus on the proxy port, no trace export without an endpoint, no content capture', () => {
    const s = resolveSettings(cfg(), {});
    expect(s.enabled).toBe(true);
    expect(s.serviceName).toBe('realtime-proxy');
    expect(s.traces.exporter).toBe('none');
    expect(s.traces.sampleRatio).toBe(1);
    expect(s.metrics.prometheus).toEqual({ enabled: true, port: null, host: '0.0.0.0', path: '/metrics' });
    expect(s.metrics.otlp.enabled).toBe(false);
    expect(s.capture.enabled).toBe(false);
  });

  it('honours the standard OTEL_* variables over the config', () => {
    const s = resolveSettings(cfg({ serviceName: 'from-config', traces: { endpoint: 'http://cfg:4318/v1/traces', sampleRatio: 1 } }), {
      OTEL_SERVICE_NAME: 'from-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=voice%20ops',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=abc,authorization=Bearer%20t',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.1',
      OTEL_METRICS_EXPORTER: 'prometheus,otlp',
      OTEL_EXPORTER_PROMETHEUS_PORT: '9464',
      OTEL_METRIC_EXPORT_INTERVAL: '15000',
      OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true',
    });
    expect(s.serviceName).toBe('from-env');
    expect(s.resourceAttributes).toEqual({ 'deployment.environment.name': 'prod', team: 'voice ops' });
    expect(s.traces).toMatchObject({ exporter: 'otlp', endpoint: 'http://collector:4318/v1/traces', protocol: 'http/json', sampleRatio: 0.1 });
    expect(s.traces.headers).toEqual({ 'x-api-key': 'abc', authorization: 'Bearer t' });
    expect(s.metrics.prometheus.port).toBe(9464);
    expect(s.metrics.otlp).toMatchObject({ enabled: true, endpoint: 'http://collector:4318/v1/metrics', intervalMs: 15000 });
    expect(s.capture.enabled).toBe(true);
    expect(s.warnings).toEqual([]);
  });

  it('signal-specific endpoints win; unsupported values warn and fall back', () => {
    const s = resolveSettings(cfg({ traces: { protocol: 'http/json' } }), {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:9999/custom',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      OTEL_TRACES_SAMPLER: 'jaeger_remote',
    });
    expect(s.traces.endpoint).toBe('http://b:9999/custom');
    expect(s.traces.protocol).toBe('http/json');
    expect(s.warnings).toHaveLength(2);
  });

  it('OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none and OTEL_METRICS_EXPORTER=none switch things off', () => {
    expect(resolveSettings(cfg(), { OTEL_SDK_DISABLED: 'true' }).enabled).toBe(false);
    expect(resolveSettings(cfg({ enabled: false }), {}).enabled).toBe(false);
    const s = resolveSettings(cfg({ traces: { endpoint: 'http://x:4318/v1/traces' } }), { OTEL_TRACES_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' });
    expect(s.traces.exporter).toBe('none');
    expect(s.metrics.prometheus.enabled).toBe(false);
    expect(resolveSettings(cfg(), { OTEL_TRACES_SAMPLER: 'always_off' }).traces.sampleRatio).toBe(0);
  });

  it('parses W3C-style key=value lists', () => {
    expect(parseKeyValueList('a=1, b = two ,bad,=x,c=%ZZ')).toEqual({ a: '1', b: 'two', c: '%ZZ' });
  });

  it('rejects unknown config keys', () => {
    expect(() => cfg({ tracing: {} })).toThrow();
    expect(() => cfg({ traces: { exporter: 'zipkin' } })).toThrow();
  });
});

describe('content redaction', () => {
  it('removes emails, phone/card/account numbers and IBANs', () => {
    const out = redactPii('Mail jane.doe@example.com or call +1 (415) 555-0100; card 4111 1111 1111 1111; IBAN DE89 3704 0044 0532 0130 00. Room 12.');
    expect(out).toBe('Mail [email] or call [number]; card [number]; IBAN [iban]. Room 12.');
  });
});

describe('bounded labels', () => {
  it('passes the first N distinct values and folds the rest into other', async () => {
    const { BoundedLabel } = await import('./metrics.js');
    const l = new BoundedLabel(2);
    expect([l.get('a'), l.get('b'), l.get('c'), l.get('a'), l.get(null), l.get('x'.repeat(100)).length]).toEqual(['a', 'b', 'other', 'a', 'unknown', 5]);
  });
});
