import { SpanKind } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { capLogFields, LOG_STRING_LIMIT } from '../../src/logging.js';
import { telemetrySchema } from '../../src/telemetry/config.js';
import { TelemetryMetrics, TenantBoundedLabel } from '../../src/telemetry/metrics.js';
import { TelemetrySdk } from '../../src/telemetry/sdk.js';
import { METRIC_ERRORS } from '../../src/telemetry/semconv.js';
import { resolveSettings } from '../../src/telemetry/settings.js';
import { TestMetricReader } from './support/context.js';
import { redactPii } from '../../src/telemetry/redact.js';
import { clipSpanString, OpenSpan, SPAN_STRING_LIMIT } from '../../src/telemetry/span-records.js';

/** The bounds the red-team tests (test/security/telemetry-redteam.test.ts) found missing, pinned at their edges. */

describe('TenantBoundedLabel', () => {
  it('keeps identifier-shaped values up to the per-tenant bound, then other; each tenant has its own allowance', () => {
    const l = new TenantBoundedLabel(2, 10);
    expect(l.get('a', 'one')).toBe('one');
    expect(l.get('a', 'two')).toBe('two');
    expect(l.get('a', 'three')).toBe('other');
    expect(l.get('a', 'one')).toBe('one');
    expect(l.get('b', 'three')).toBe('three');
    expect(l.get('a', null)).toBe('unknown');
    expect(l.get('a', '')).toBe('unknown');
  });

  it('stops at the total across tenants', () => {
    const l = new TenantBoundedLabel(5, 3);
    expect([l.get('a', 'x'), l.get('b', 'x'), l.get('c', 'x'), l.get('d', 'x'), l.get('a', 'y')]).toEqual(['x', 'x', 'x', 'other', 'other']);
    expect(l.get('b', 'x')).toBe('x');
  });

  it('anything not shaped like a function name is other, and takes no slot', () => {
    const l = new TenantBoundedLabel(1, 10);
    for (const v of ['has space', 'quote"', 'a'.repeat(65), 'ünicode', 'new\nline']) expect(l.get('a', v)).toBe('other');
    expect(l.get('a', 'a'.repeat(64))).toBe('a'.repeat(64));
    expect(l.get('a', 'ok_name-1.x:y')).toBe('other');
    expect(new TenantBoundedLabel(1, 1).get('t', 'ok_name-1.x:y')).toBe('ok_name-1.x:y');
  });
});

describe('span strings', () => {
  it('cuts names and non-content attributes at the limit with a marker; content keys and short values stay whole', () => {
    const long = 'x'.repeat(SPAN_STRING_LIMIT + 10);
    const edge = 'y'.repeat(SPAN_STRING_LIMIT);
    expect(clipSpanString(edge)).toBe(edge);
    expect(clipSpanString(long)).toBe(`${'x'.repeat(SPAN_STRING_LIMIT)}…`);
    const span = new OpenSpan(long, SpanKind.INTERNAL, [1, 0], { a: long, n: 3, b: edge, 'gen_ai.input.messages': long });
    span.setAttribute('c', long);
    span.setAttribute('rtproxy.pii.output_transcript', long);
    span.setAttributes({ d: long, arr: ['s', long], nums: [1, 2], 'gen_ai.output.messages': long, 'rtproxy.pii.input_transcript': long });
    span.addEvent(long, [1, 0], { e: long, k: 1 });
    span.addEvent('plain', [1, 0]);
    const rec = span.end([2, 0]);
    const cut = `${'x'.repeat(SPAN_STRING_LIMIT)}…`;
    expect(rec.name).toBe(cut);
    expect(rec.attributes).toEqual({
      a: cut,
      n: 3,
      b: edge,
      c: cut,
      d: cut,
      arr: ['s', cut],
      nums: [1, 2],
      'gen_ai.input.messages': long,
      'gen_ai.output.messages': long,
      'rtproxy.pii.input_transcript': long,
      'rtproxy.pii.output_transcript': long,
    });
    expect(rec.events[0]).toMatchObject({ name: cut, attributes: { e: cut, k: 1 } });
    expect(rec.events[1]).toEqual({ name: 'plain', time: [1, 0] });
  });
});

describe('log fields', () => {
  it('cuts long top-level strings (not the captured transcripts), returns the object itself when nothing is long', () => {
    const obj = { a: 'short', n: 1 };
    expect(capLogFields(obj)).toBe(obj);
    const long = 'z'.repeat(LOG_STRING_LIMIT + 1);
    const edge = 'z'.repeat(LOG_STRING_LIMIT);
    const input = { eventType: long, edge, inputTranscript: long, outputTranscript: long, nested: { x: long } };
    const out = capLogFields(input);
    expect(out).toEqual({ eventType: `${edge}… [${LOG_STRING_LIMIT + 1} chars]`, edge, inputTranscript: long, outputTranscript: long, nested: { x: long } });
    expect(input.eventType).toBe(long);
  });
});

describe('redactPii: credentials', () => {
  it('replaces API keys, proxy keys, client secrets, bearer tokens and JWTs', () => {
    expect(redactPii('key sk-proj-AbCdEfGhIjKlMnOp done')).toBe('key [secret] done');
    expect(redactPii('sk-AbCdEfGhIjKl')).toBe('[secret]');
    expect(redactPii('rpk_live_acme_abcdefghijkl')).toBe('[secret]');
    expect(redactPii('ek_abcdefghijklmn')).toBe('[secret]');
    expect(redactPii('rk-abcdefghijklmn pk_abcdefghijklmn')).toBe('[secret] [secret]');
    expect(redactPii('Authorization: Bearer abc.DEF-ghi_jk')).toBe('Authorization: [secret]');
    expect(redactPii('Bearer  \tabcdefghij')).toBe('[secret]');
    expect(redactPii('token eyJhbGciOiJIUzI1.eyJzdWIiOiIx.sig')).toBe('token [secret]');
  });

  it('leaves words that merely start like a key prefix', () => {
    expect(redactPii('ask-me-anything-today please')).toBe('ask-me-anything-today please');
    expect(redactPii('sk-short')).toBe('sk-short');
    expect(redactPii('Bearer of news')).toBe('Bearer of news');
    expect(redactPii('task_abcdefghijklmnop')).toBe('task_abcdefghijklmnop');
  });
});

describe('error codes on rtproxy.errors', () => {
  async function errorTypes(calls: [string, 'upstream' | 'proxy' | 'client'][]): Promise<Record<string, number>> {
    const settings = resolveSettings(telemetrySchema().parse({ traces: { exporter: 'none' } }), {});
    let reader!: TestMetricReader;
    const sdk = new TelemetrySdk(settings, { metricReaders: (metricProducers) => [(reader = new TestMetricReader({ metricProducers }))] });
    const metrics = new TelemetryMetrics(sdk);
    for (const [code, origin] of calls) metrics.error('acme', code, origin);
    const out: Record<string, number> = {};
    for (const p of await reader.points(METRIC_ERRORS)) out[`${String(p.attributes['rtproxy.error.origin'])}:${String(p.attributes['error.type'])}`] = Number(p.value);
    await sdk.shutdown();
    return out;
  }

  it('proxy codes are catalogue codes (or rejected), anything else other', async () => {
    expect(await errorTypes([['invalid_json', 'proxy'], ['rejected', 'proxy'], ['made_up', 'proxy'], ['toString', 'proxy']])).toEqual({ 'proxy:invalid_json': 1, 'proxy:rejected': 1, 'proxy:other': 2 });
  });

  it('upstream codes: identifier-shaped ones pass (to the bound), the rest are other', async () => {
    expect(await errorTypes([['rate_limit_exceeded', 'upstream'], ['a'.repeat(64), 'upstream'], ['a'.repeat(65), 'upstream'], ['has space', 'upstream'], ['x"y', 'upstream'], ['', 'client']])).toEqual({
      'upstream:rate_limit_exceeded': 1,
      [`upstream:${'a'.repeat(64)}`]: 1,
      'upstream:other': 3,
      'client:unknown': 1,
    });
  });

  it('upstreamCode(null) is unknown', async () => {
    const settings = resolveSettings(telemetrySchema().parse({ traces: { exporter: 'none' } }), {});
    const sdk = new TelemetrySdk(settings, {});
    expect(new TelemetryMetrics(sdk).upstreamCode(null)).toBe('unknown');
    await sdk.shutdown();
  });
});
