import { randomFillSync } from 'node:crypto';
import { SpanStatusCode, TraceFlags, type Attributes, type AttributeValue, type HrTime, type SpanKind, type SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

/**
 * Spans as plain records, written without the SDK's tracer. The proxy's spans are all sampled
 * (the session-level ratio decided already), carry well-formed attributes, and are built at turn
 * boundaries with explicit times, so the tracer's per-span work (context lookups, two attribute
 * sanitising passes, sampler and span-limit bookkeeping) bought nothing: measured in place at 500
 * sessions it was ~2.4 % of the relay's core. A record is what the span-export thread serialises
 * and what an in-process SDK exporter (tests, console) reads through `readableSpan`.
 */

export interface PlainEvent {
  readonly name: string;
  readonly time: HrTime;
  readonly attributes?: Attributes;
}

/** A finished span as structured-cloneable data. Every span is sampled; nothing is remote. */
export interface PlainSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  readonly startTime: HrTime;
  readonly endTime: HrTime;
  readonly attributes: Attributes;
  readonly events: readonly PlainEvent[];
  readonly droppedEventsCount: number;
  readonly status: SpanStatus;
  /** Links carry no attributes here. */
  readonly links: readonly SpanRef[];
}

export interface SpanRef {
  readonly traceId: string;
  readonly spanId: string;
}

/** Where finished spans go: the span-export thread, or an SDK exporter in process. */
export interface SpanSink {
  emit(span: PlainSpan): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

// Ids from a pooled random buffer: one crypto fill per 256 trace ids.
const ID_POOL = Buffer.allocUnsafe(4096);
let idPoolAt = ID_POOL.length;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

function randomHex(bytes: number, zero: string): string {
  if (idPoolAt + bytes > ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolAt = 0;
  }
  const hex = ID_POOL.toString('hex', idPoolAt, idPoolAt + bytes);
  idPoolAt += bytes;
  // An all-zero id is invalid (W3C trace context).
  return hex === zero ? randomHex(bytes, zero) : hex;
}

export const newTraceId = (): string => randomHex(16, ZERO_TRACE_ID);
export const newSpanId = (): string => randomHex(8, ZERO_SPAN_ID);

/** The SDK's default event limit: past it the oldest events go, and are counted. */
export const SPAN_EVENT_LIMIT = 128;

/**
 * Longest string a span name or attribute keeps. Names, ids, codes and formats come from the
 * upstream and the client (a tool name, a call id, an error code can be megabytes in a hostile
 * frame) and every span waits in a bounded-by-count export queue: without a cap one frame could
 * pin 16 MiB per queued span. 256 is far above any real id, model or code.
 */
export const SPAN_STRING_LIMIT = 256;

/** Opt-in captured content, already redacted and capped by `captureContent.maxChars`: kept whole. */
const CONTENT_KEYS: ReadonlySet<string> = new Set(['gen_ai.input.messages', 'gen_ai.output.messages', 'rtproxy.pii.input_transcript', 'rtproxy.pii.output_transcript']);

/** A string cut to the limit, with a marker so a reader sees it was cut. */
export function clipSpanString(v: string): string {
  return v.length > SPAN_STRING_LIMIT ? `${v.slice(0, SPAN_STRING_LIMIT)}…` : v;
}

function clipValue(key: string, v: AttributeValue | undefined): AttributeValue | undefined {
  if (typeof v === 'string') return CONTENT_KEYS.has(key) ? v : clipSpanString(v);
  // Arrays are rare here (finish reasons, one per inference span): mapped whole.
  if (Array.isArray(v)) return (v as readonly (string | null | undefined)[]).map((x) => (typeof x === 'string' ? clipSpanString(x) : x)) as AttributeValue;
  return v;
}

/** Clips every non-content string attribute in place (the span owns the object). */
function clipAttributes(attributes: Attributes): Attributes {
  for (const key of Object.keys(attributes)) attributes[key] = clipValue(key, attributes[key]);
  return attributes;
}

/**
 * Fixed per-span cost in the byte estimate: ids, times, kind, status and the record's own
 * objects, as held on the heap and serialised (OTLP/JSON hex ids and nanosecond strings).
 */
const SPAN_BASE_BYTES = 256;
/** Per attribute, event or link: its object and the serialiser's key/value wrapper. */
const ENTRY_BYTES = 32;

/**
 * A string's bytes as serialised (UTF-8), which is also at least what it holds on the heap (one or
 * two bytes per UTF-16 unit). Until 2026-12-07 the estimate counted UTF-16 units: captured content
 * in CJK was serialised at three bytes per unit, so the 32 MiB budget held ~96 MiB.
 */
function stringBytes(s: string): number {
  // What JSON escapes (a control character is six bytes, a quote or backslash two, a lone surrogate
  // six): the http/json body's size. Until 2026-12-07 counted as one byte each, so captured content
  // of control characters serialised to about twice its estimate
  // (test/telemetry/redteam-17b-span-json-escapes.test.ts). Checked first: most strings have none.
  if (NEEDS_ESCAPE.test(s)) return Buffer.byteLength(JSON.stringify(s), 'utf8') - 2;
  return Buffer.byteLength(s, 'utf8');
}

/** A character JSON.stringify writes as more than its UTF-8 bytes (surrogates: a lone one is escaped). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

function valueBytes(v: AttributeValue | undefined): number {
  if (typeof v === 'string') return stringBytes(v);
  if (Array.isArray(v)) {
    let n = 0;
    for (const x of v as readonly unknown[]) n += typeof x === 'string' ? stringBytes(x) + 8 : 8;
    return n;
  }
  return 8;
}

function attributesBytes(attributes: Attributes | undefined): number {
  if (attributes === undefined) return 0;
  let n = 0;
  for (const key of Object.keys(attributes)) n += ENTRY_BYTES + stringBytes(key) + valueBytes(attributes[key]);
  return n;
}

/**
 * A cheap estimate of a record's size (strings' UTF-8 bytes plus fixed costs, no serialisation), for the
 * export queue's byte budget (span-export.ts). A span is bounded already (strings clipped to
 * SPAN_STRING_LIMIT, captured content to `captureContent.maxChars`, SPAN_EVENT_LIMIT events), but
 * those bounds still allow tens of KB per span, so a count bound alone is not a memory bound.
 */
export function estimateSpanBytes(span: PlainSpan): number {
  let n = SPAN_BASE_BYTES + stringBytes(span.name) + attributesBytes(span.attributes) + span.links.length * (ENTRY_BYTES + 48);
  for (const e of span.events) n += ENTRY_BYTES + stringBytes(e.name) + attributesBytes(e.attributes);
  return n;
}

/** A span being written. `end` turns it into its record (once). */
export class OpenSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly traceId: string;
  readonly spanId: string;
  readonly #parentSpanId: string | null;
  readonly #start: HrTime;
  readonly #attributes: Attributes;
  readonly #links: readonly SpanRef[];
  #events: PlainEvent[] = [];
  #droppedEvents = 0;
  #status: SpanStatus = { code: SpanStatusCode.UNSET };

  /** A root span (a new trace) without `parent`. `attributes` is owned by the span from here on. */
  constructor(name: string, kind: SpanKind, start: HrTime, attributes: Attributes, parent: SpanRef | null = null, links: readonly SpanRef[] = []) {
    this.name = clipSpanString(name);
    this.kind = kind;
    this.traceId = parent ? parent.traceId : newTraceId();
    this.spanId = newSpanId();
    this.#parentSpanId = parent ? parent.spanId : null;
    this.#start = start;
    this.#attributes = clipAttributes(attributes);
    this.#links = links;
  }

  get ref(): SpanRef {
    return { traceId: this.traceId, spanId: this.spanId };
  }

  setAttribute(key: string, value: AttributeValue): void {
    this.#attributes[key] = clipValue(key, value);
  }

  setAttributes(attributes: Attributes): void {
    for (const key of Object.keys(attributes)) this.#attributes[key] = clipValue(key, attributes[key]);
  }

  addEvent(name: string, time: HrTime, attributes?: Attributes): void {
    if (this.#events.length >= SPAN_EVENT_LIMIT) {
      this.#events.shift();
      this.#droppedEvents++;
    }
    // Event attributes are the tracker's own objects, written once the turn is over: clipped in place (idempotent).
    this.#events.push(attributes && Object.keys(attributes).length > 0 ? { name: clipSpanString(name), time, attributes: clipAttributes(attributes) } : { name: clipSpanString(name), time });
  }

  failed(): void {
    this.#status = { code: SpanStatusCode.ERROR };
  }

  end(time: HrTime): PlainSpan {
    // An end before the start makes a zero-length span.
    const endTime = time[0] < this.#start[0] || (time[0] === this.#start[0] && time[1] < this.#start[1]) ? this.#start : time;
    return {
      name: this.name,
      kind: this.kind,
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.#parentSpanId,
      startTime: this.#start,
      endTime,
      attributes: this.#attributes,
      events: this.#events,
      droppedEventsCount: this.#droppedEvents,
      status: this.#status,
      links: this.#links,
    };
  }
}

function duration(start: HrTime, end: HrTime): HrTime {
  let s = end[0] - start[0];
  let ns = end[1] - start[1];
  if (ns < 0) {
    s -= 1;
    ns += 1e9;
  }
  return [s, ns];
}

/**
 * The SDK's view of a record, for an SDK exporter in process. The span-export thread has its own
 * copy of this mapping (span-export-worker.ts: its job is source text, it cannot import this).
 */
export function readableSpan(p: PlainSpan, resource: Resource, scope: InstrumentationScope): ReadableSpan {
  const context = { traceId: p.traceId, spanId: p.spanId, traceFlags: TraceFlags.SAMPLED };
  return {
    name: p.name,
    kind: p.kind,
    spanContext: () => context,
    ...(p.parentSpanId === null ? {} : { parentSpanContext: { traceId: p.traceId, spanId: p.parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: false } }),
    startTime: p.startTime,
    endTime: p.endTime,
    status: p.status,
    attributes: p.attributes,
    links: p.links.map((l) => ({ context: { traceId: l.traceId, spanId: l.spanId, traceFlags: TraceFlags.SAMPLED }, attributes: {} })),
    events: p.events.map((e) => ({ name: e.name, time: e.time, attributes: e.attributes ?? {}, droppedAttributesCount: 0 })),
    duration: duration(p.startTime, p.endTime),
    ended: true,
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: p.droppedEventsCount,
    droppedLinksCount: 0,
  };
}
