import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime, type InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type DataPoint,
  type Histogram,
  type HistogramMetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';

/**
 * The proxy's histograms, kept as plain bucket arrays and handed to the metric readers by a
 * `MetricProducer`. The SDK's histogram instrument hashes each record's attributes (sort and
 * JSON.stringify) to find its series: per turn that was eight hashes, ~1.3 % of the relay's core
 * at 500 sessions, spent inside the bursts where latency is measured. Here a series is found by its
 * label values joined into a key, and the attribute object is built once per series.
 *
 * Series are cumulative, with the SDK's explicit-bucket semantics (upper bounds inclusive; NaN and
 * negative values are not recorded, as the SDK's histogram instrument refuses them). Label values
 * must come from bounded sets (see BoundedLabel): a series is never forgotten.
 */

interface Series {
  readonly attributes: Attributes;
  readonly counts: number[];
  count: number;
  sum: number;
  min: number;
  max: number;
}

export class HistogramTable {
  readonly #name: string;
  readonly #unit: string;
  readonly #description: string;
  readonly #boundaries: readonly number[];
  /** Attribute names, in the order `record` takes their values. */
  readonly #labels: readonly string[];
  readonly #series = new Map<string, Series>();
  readonly #start: HrTime = hrTime();

  constructor(name: string, unit: string, description: string, boundaries: readonly number[], labels: readonly string[]) {
    this.#name = name;
    this.#unit = unit;
    this.#description = description;
    this.#boundaries = [...boundaries];
    this.#labels = labels;
  }

  /** `values` in the order of the table's labels; a null (or empty) value leaves its attribute out. */
  record(value: number, values: readonly (string | null)[]): void {
    if (!(value >= 0)) return;
    const key = seriesKey(values);
    let s = this.#series.get(key);
    if (!s) {
      s = { attributes: this.#attributes(values), counts: new Array<number>(this.#boundaries.length + 1).fill(0), count: 0, sum: 0, min: Infinity, max: -Infinity };
      this.#series.set(key, s);
    }
    s.count++;
    s.sum += value;
    if (value < s.min) s.min = value;
    if (value > s.max) s.max = value;
    s.counts[bucketOf(this.#boundaries, value)]!++;
  }

  #attributes(values: readonly (string | null)[]): Attributes {
    const attributes: Attributes = {};
    for (let i = 0; i < this.#labels.length; i++) {
      const v = values[i];
      if (v) attributes[this.#labels[i]!] = v;
    }
    return attributes;
  }

  /** The table as the SDK reports a histogram; null while nothing was recorded (the SDK leaves those out). */
  metricData(now: HrTime): HistogramMetricData | null {
    if (this.#series.size === 0) return null;
    const boundaries = [...this.#boundaries];
    const dataPoints: DataPoint<Histogram>[] = [];
    for (const s of this.#series.values()) {
      dataPoints.push({
        startTime: this.#start,
        endTime: now,
        attributes: s.attributes,
        value: { buckets: { boundaries, counts: [...s.counts] }, count: s.count, sum: s.sum, min: s.min, max: s.max },
      });
    }
    return {
      descriptor: { name: this.#name, unit: this.#unit, description: this.#description, valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints,
    };
  }
}

/**
 * Label values joined by NUL. Some values come from clients (the model, error codes): one holding the
 * separator is escaped (\u0001 doubles, NUL becomes \u0001\u0002), so no two value lists share a key.
 */
function seriesKey(values: readonly (string | null)[]): string {
  let key = '';
  for (let i = 0; i < values.length; i++) {
    let v = values[i] ?? '';
    if (v.includes('\u0000') || v.includes('\u0001')) v = v.replaceAll('\u0001', '\u0001\u0001').replaceAll('\u0000', '\u0001\u0002');
    key += i === 0 ? v : `\u0000${v}`;
  }
  return key;
}

/** The first bucket whose (inclusive) upper bound holds `value`; the last bucket is unbounded. */
function bucketOf(boundaries: readonly number[], value: number): number {
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (boundaries[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Reports every table to the metric readers it is given to (Prometheus, OTLP, tests). */
export class HistogramProducer implements MetricProducer {
  readonly #resource: Resource;
  readonly #scope: InstrumentationScope;
  readonly #tables: HistogramTable[] = [];

  constructor(resource: Resource, scope: InstrumentationScope) {
    this.#resource = resource;
    this.#scope = scope;
  }

  histogram(name: string, unit: string, description: string, boundaries: readonly number[], labels: readonly string[]): HistogramTable {
    const table = new HistogramTable(name, unit, description, boundaries, labels);
    this.#tables.push(table);
    return table;
  }

  async collect(): Promise<CollectionResult> {
    const now = hrTime();
    const metrics: HistogramMetricData[] = [];
    for (const table of this.#tables) {
      const data = table.metricData(now);
      if (data) metrics.push(data);
    }
    return { resourceMetrics: { resource: this.#resource, scopeMetrics: metrics.length > 0 ? [{ scope: this.#scope, metrics }] : [] }, errors: [] };
  }
}
