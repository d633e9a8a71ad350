import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type HrTime } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { estimateSpanBytes, newSpanId, newTraceId, OpenSpan, readableSpan, SPAN_EVENT_LIMIT } from './span-records.js';

/**
 * Span records are written without the SDK's tracer: the SDK's own spans, built from the same
 * calls, are the oracle for what an exporter reads.
 */

const resource = resourceFromAttributes({ 'service.name': 'span-records-test' });
const scope = { name: 'realtime-proxy' };
const t = (ms: number): HrTime => [1_700_000_000 + Math.floor(ms / 1000), (ms % 1000) * 1e6];

function sdkSpans() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, tracer: provider.getTracer(scope.name) };
}

/** What an exporter reads of a span, ids replaced by their role (each side makes its own ids). */
function shape(s: ReadableSpan, ids: Map<string, string>) {
  const role = (id: string | undefined) => (id === undefined ? undefined : (ids.get(id) ?? `unknown ${id}`));
  return {
    name: s.name,
    kind: s.kind,
    id: role(s.spanContext().spanId),
    traceFlags: s.spanContext().traceFlags,
    parent: role(s.parentSpanContext?.spanId),
    parentIsRemote: s.parentSpanContext?.isRemote ?? false,
    sameTraceAsParent: s.parentSpanContext ? s.parentSpanContext.traceId === s.spanContext().traceId : null,
    startTime: s.startTime,
    endTime: s.endTime,
    duration: s.duration,
    status: s.status,
    attributes: s.attributes,
    links: s.links.map((l) => ({ id: role(l.context.spanId), attributes: l.attributes ?? {} })),
    events: s.events.map((e) => ({ name: e.name, time: e.time, attributes: e.attributes ?? {}, dropped: e.droppedAttributesCount ?? 0 })),
    droppedAttributesCount: s.droppedAttributesCount,
    droppedEventsCount: s.droppedEventsCount,
    droppedLinksCount: s.droppedLinksCount,
    ended: s.ended,
    resource: s.resource.attributes,
    scope: s.instrumentationScope.name,
  };
}

describe('span records', () => {
  it('read by an exporter as the SDK span written with the same calls: tree, link, attributes, events (past the limit), error status', () => {
    const { exporter, tracer } = sdkSpans();
    const events = SPAN_EVENT_LIMIT + 3;
    // The SDK side.
    const connect = tracer.startSpan('connect', { kind: SpanKind.SERVER, startTime: t(0), attributes: { tenant: 'acme' } }, ROOT_CONTEXT);
    connect.addEvent('upstream.connected', { ms: 12.5 }, t(5));
    connect.end(t(20));
    const root = tracer.startSpan('invoke_agent', { startTime: t(100), attributes: { turn: 1 }, links: [{ context: connect.spanContext() }] }, ROOT_CONTEXT);
    const child = tracer.startSpan('realtime gpt', { kind: SpanKind.CLIENT, startTime: t(110), attributes: { 'gen_ai.response.id': 'resp_1', flags: ['a', 'b'] } }, trace.setSpan(ROOT_CONTEXT, root));
    for (let i = 0; i < events; i++) child.addEvent(`e${i}`, {}, t(111 + i));
    child.setAttribute('error.type', 'server_error');
    child.setStatus({ code: SpanStatusCode.ERROR });
    child.end(t(400));
    root.setAttributes({ 'rtproxy.turn.responses': 1 });
    root.end(t(500));
    // The same with records.
    const c = new OpenSpan('connect', SpanKind.SERVER, t(0), { tenant: 'acme' });
    c.addEvent('upstream.connected', t(5), { ms: 12.5 });
    const r = new OpenSpan('invoke_agent', SpanKind.INTERNAL, t(100), { turn: 1 }, null, [c.ref]);
    const k = new OpenSpan('realtime gpt', SpanKind.CLIENT, t(110), { 'gen_ai.response.id': 'resp_1', flags: ['a', 'b'] }, r.ref);
    for (let i = 0; i < events; i++) k.addEvent(`e${i}`, t(111 + i));
    k.setAttribute('error.type', 'server_error');
    k.failed();
    r.setAttributes({ 'rtproxy.turn.responses': 1 });
    const records = [c.end(t(20)), k.end(t(400)), r.end(t(500))];

    const sdkIds = new Map([connect, root, child].map((s, i) => [s.spanContext().spanId, ['connect', 'root', 'child'][i]!]));
    const ourIds = new Map([c, r, k].map((s, i) => [s.spanId, ['connect', 'root', 'child'][i]!]));
    const expected = exporter.getFinishedSpans().map((s) => shape(s, sdkIds));
    const actual = records.map((p) => shape(readableSpan(p, resource, scope), ourIds));
    expect(actual).toEqual(expected);
    // The limit keeps the newest events and counts the rest.
    expect(records[1]!.droppedEventsCount).toBe(3);
    expect(records[1]!.events[0]!.name).toBe('e3');
    expect(k.traceId).toBe(r.traceId);
    expect(c.traceId).not.toBe(r.traceId);
  });

  it('an end before the start makes a zero-length span', () => {
    const p = new OpenSpan('s', SpanKind.INTERNAL, t(100), {}).end(t(50));
    expect(p.endTime).toEqual(p.startTime);
    expect(readableSpan(p, resource, scope).duration).toEqual([0, 0]);
  });

  it('ids are lowercase hex of the W3C sizes, never all zero, and do not repeat across refills of the pool', () => {
    const traces = new Set<string>();
    const spans = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      traces.add(newTraceId());
      spans.add(newSpanId());
    }
    expect(traces.size).toBe(2000);
    expect(spans.size).toBe(2000);
    for (const id of traces) expect(id).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
    for (const id of spans) expect(id).toMatch(/^(?!0{16})[0-9a-f]{16}$/);
  });
});

describe('the byte estimate of the export queue', () => {
  // Until 2026-12-07 strings counted as UTF-16 units: content in CJK (three UTF-8 bytes per unit,
  // two on the heap) took a third of its serialised size from the 32 MiB budget.
  it('counts a string as its UTF-8 bytes: never below what it holds on the heap or serialises to', () => {
    const cjk = '語'.repeat(10_000);
    const ascii = 'x'.repeat(10_000);
    const cjkSpan = new OpenSpan('n', SpanKind.INTERNAL, t(0), { 'gen_ai.input.messages': cjk, tags: ['語語', 'b'] }).end(t(1));
    const asciiSpan = new OpenSpan('n', SpanKind.INTERNAL, t(0), { 'gen_ai.input.messages': ascii, tags: ['xx', 'b'] }).end(t(1));
    expect(estimateSpanBytes(cjkSpan)).toBeGreaterThanOrEqual(Buffer.byteLength(cjk));
    expect(estimateSpanBytes(cjkSpan) - estimateSpanBytes(asciiSpan)).toBe(Buffer.byteLength(cjk) - ascii.length + (6 - 2));
    const evented = new OpenSpan('n', SpanKind.INTERNAL, t(0), {});
    evented.addEvent('é'.repeat(100), t(1), { 'ключ': 'значение' });
    const plain = new OpenSpan('n', SpanKind.INTERNAL, t(0), {});
    plain.addEvent('e'.repeat(100), t(1), { 'klyuch': 'znachenie' });
    expect(estimateSpanBytes(evented.end(t(2))) - estimateSpanBytes(plain.end(t(2)))).toBe(100 + 2 + 7);
  });
});
