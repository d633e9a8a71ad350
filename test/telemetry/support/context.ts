import { Writable } from 'node:stream';
import { MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import pino, { type Logger } from 'pino';
import { AudioMeter } from '../../../src/pipeline/audio-meter.js';
import type { Clock, SessionContext } from '../../../src/pipeline/filter.js';
import type { Report } from '../../../src/pipeline/reports.js';
import { Conversation, type ItemMark } from '../../../src/protocol/conversation.js';
import type { ProxyError } from '../../../src/protocol/errors.js';
import type { Tenant } from '../../../src/tenants/tenant.js';
import type { ManualTime } from './frames.js';

/** A SessionContext on a manual clock with a real pino child logger whose lines are captured. */
export class TelemetryTestSession implements SessionContext {
  readonly id: string;
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  readonly startedAt: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly conversation = new Conversation();
  markItem(itemId: string, mark: ItemMark): void {
    this.conversation.mark(itemId, mark);
  }
  readonly lines: string[];
  readonly reports: Report[] = [];
  /** Where the relay's audio reports go (the harness points it at the filter under test). */
  onAudioReport: (report: Report) => void = () => {};
  readonly audio = new AudioMeter((r) => this.onAudioReport(r));

  constructor(time: ManualTime, options: { id?: string; tenant?: string; model?: string; lines?: string[] } = {}) {
    this.id = options.id ?? 'rps_0123456789abcdef';
    this.tenant = { id: options.tenant ?? 'acme', name: 'Acme', policy: null, plan: null, limits: null };
    this.model = options.model ?? 'gpt-realtime';
    this.query = new Map([['model', this.model]]);
    this.clock = { now: time.now, wall: () => 1_750_000_000_000 + time.t };
    this.startedAt = time.t;
    this.lines = options.lines ?? [];
    const lines = this.lines;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(line);
        cb();
      },
    });
    this.log = pino({ level: 'debug' }, sink).child({ session: this.id, tenant: this.tenant.id });
  }

  nextEventId(): string {
    return 'event_proxy_test';
  }
  sendUpstream(): void {}
  sendClient(): void {}
  notify(): void {}
  close(_error: ProxyError): void {}
  setTimer(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  }
  report(report: Report): void {
    this.reports.push(report);
  }
  cancelResponse(): void {}
  isSuppressed(): boolean {
    return false;
  }
  watch(): void {}
}

/** A pull reader for asserting metrics in unit tests. */
export class TestMetricReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}

  async points(name: string): Promise<{ attributes: Record<string, unknown>; value: unknown }[]> {
    const { resourceMetrics } = await this.collect();
    return pointsOf(resourceMetrics, name);
  }
}

export function pointsOf(rm: ResourceMetrics, name: string): { attributes: Record<string, unknown>; value: unknown }[] {
  const out: { attributes: Record<string, unknown>; value: unknown }[] = [];
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.descriptor.name !== name) continue;
      for (const dp of m.dataPoints) out.push({ attributes: dp.attributes as Record<string, unknown>, value: dp.value });
    }
  }
  return out;
}

/** Sum of a counter's points matching every given attribute. */
export function sumWhere(points: { attributes: Record<string, unknown>; value: unknown }[], match: Record<string, unknown> = {}): number {
  let total = 0;
  for (const p of points) {
    if (Object.entries(match).every(([k, v]) => p.attributes[k] === v) && typeof p.value === 'number') total += p.value;
  }
  return total;
}

/** Histogram count and sum over points matching every given attribute. */
export function histWhere(points: { attributes: Record<string, unknown>; value: unknown }[], match: Record<string, unknown> = {}): { count: number; sum: number } {
  let count = 0;
  let sum = 0;
  for (const p of points) {
    if (!Object.entries(match).every(([k, v]) => p.attributes[k] === v)) continue;
    const v = p.value as { count?: number; sum?: number };
    count += v.count ?? 0;
    sum += v.sum ?? 0;
  }
  return { count, sum };
}
