import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { TestMetricReader } from '../../test/telemetry/support/context.js';
import { HistogramProducer } from './histograms.js';

/**
 * The proxy's histogram tables against the SDK's own histogram instrument as the oracle: the same
 * values and attributes must report the same buckets, count, sum, min and max through a reader.
 */

const BOUNDARIES = [0.005, 0.01, 0.1, 1, 10];
const resource = resourceFromAttributes({ 'service.name': 'histograms-test' });

function both() {
  const producer = new HistogramProducer(resource, { name: 'realtime-proxy' });
  const ours = new TestMetricReader({ metricProducers: [producer] });
  const theirs = new TestMetricReader();
  // The SDK side needs a provider; ours reports through the producer beside an empty provider.
  const sdk = new MeterProvider({ resource, readers: [theirs] });
  new MeterProvider({ resource, readers: [ours] });
  const table = producer.histogram('rtproxy.test.duration', 's', 'A test histogram.', BOUNDARIES, ['tenant', 'error.type']);
  const instrument = sdk.getMeter('realtime-proxy').createHistogram('rtproxy.test.duration', { unit: 's', description: 'A test histogram.', advice: { explicitBucketBoundaries: BOUNDARIES } });
  const record = (value: number, tenant: string, errorType: string | null) => {
    table.record(value, [tenant, errorType]);
    instrument.record(value, errorType ? { tenant, 'error.type': errorType } : { tenant });
  };
  return { producer, ours, theirs, record };
}

const byAttributes = (points: { attributes: Record<string, unknown>; value: unknown }[]) =>
  Object.fromEntries(points.map((p) => [JSON.stringify(p.attributes), p.value]));

describe('histogram tables', () => {
  it('report what the SDK histogram reports for the same records: buckets (bounds inclusive), count, sum, min, max, per series', async () => {
    const { ours, theirs, record } = both();
    // On each boundary, between, below the first and past the last; two series and an omitted label.
    for (const v of [0, 0.005, 0.0051, 0.01, 0.05, 0.1, 1, 3, 10, 10.5, 1e9]) record(v, 'acme', null);
    for (const v of [0.2, 0.2, 7]) record(v, 'acme', 'timeout');
    record(0.3, 'globex', null);
    // Refused by both: not a measurement.
    record(Number.NaN, 'acme', null);
    record(-1, 'acme', null);
    const mine = byAttributes(await ours.points('rtproxy.test.duration'));
    const sdk = byAttributes(await theirs.points('rtproxy.test.duration'));
    expect(Object.keys(mine).sort()).toEqual(Object.keys(sdk).sort());
    expect(Object.keys(mine)).toHaveLength(3);
    expect(mine).toEqual(sdk);
    expect(mine[JSON.stringify({ tenant: 'acme' })]).toMatchObject({ count: 11, buckets: { counts: [2, 2, 2, 1, 2, 2] } });
  });

  it('keep label values that contain the key separator apart (a client can choose its model name)', async () => {
    const { ours, theirs, record } = both();
    record(0.5, 'a\u0000b', 'c');
    record(0.5, 'a', 'b\u0000c');
    record(0.5, 'a\u0001', '\u0002b');
    record(0.5, 'a', '\u0001\u0002b');
    const mine = byAttributes(await ours.points('rtproxy.test.duration'));
    expect(Object.keys(mine)).toHaveLength(4);
    expect(mine).toEqual(byAttributes(await theirs.points('rtproxy.test.duration')));
  });

  it('carry the descriptor and cumulative temporality; nothing is reported before the first record', async () => {
    const { producer, record } = both();
    expect((await producer.collect()).resourceMetrics.scopeMetrics).toEqual([]);
    record(0.5, 'acme', null);
    const first = await producer.collect();
    const metric = first.resourceMetrics.scopeMetrics[0]!.metrics[0]!;
    expect(metric.descriptor).toMatchObject({ name: 'rtproxy.test.duration', unit: 's', description: 'A test histogram.' });
    expect(first.resourceMetrics.scopeMetrics[0]!.scope.name).toBe('realtime-proxy');
    record(0.5, 'acme', null);
    const second = await producer.collect();
    const [a, b] = [first, second].map((r) => r.resourceMetrics.scopeMetrics[0]!.metrics[0]!.dataPoints[0]!);
    // Cumulative: the same start, the count keeps growing; an earlier report is not changed by later records.
    expect(b!.startTime).toEqual(a!.startTime);
    expect((a!.value as { count: number }).count).toBe(1);
    expect((b!.value as { count: number }).count).toBe(2);
  });
});
