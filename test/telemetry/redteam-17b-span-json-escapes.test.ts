import { SpanKind, type HrTime } from '@opentelemetry/api';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { describe, expect, it } from 'vitest';
import { estimateSpanBytes, OpenSpan, readableSpan } from '../../src/telemetry/span-records.js';

/*
 * The span export queue's byte budget (32 MiB) is spent by `estimateSpanBytes`, which since
 * 2026-12-07 counts strings as UTF-8 bytes: "never below what it holds on the heap or serialises to".
 * With `protocol: http/json` the OTLP body escapes what JSON must: a control character serialises to
 * six bytes (`\u0001`), a quote or backslash to two. Captured content keeps the client's text whole
 * (`rtproxy.pii.input_transcript`: a text item's, up to captureContent.maxChars): a client whose turns
 * are control characters makes each span's serialised body (held per batch in flight) several times
 * its estimate, so the budget holds several times 32 MiB of JSON.
 */

const resource = resourceFromAttributes({ 'service.name': 'redteam-17b' });
const scope = { name: 'realtime-proxy' };
const t = (ms: number): HrTime => [1_700_000_000 + Math.floor(ms / 1000), (ms % 1000) * 1e6];

describe('redteam 17b: the span byte estimate against an http/json body', () => {
  it('grows with captured content of control characters at least as much as the serialised JSON does', () => {
    const turn = (text: string) =>
      new OpenSpan('turn', SpanKind.INTERNAL, t(0), {
        'rtproxy.pii.input_transcript': text,
        'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: text }] }]),
      }).end(t(1));
    const bodyBytes = (text: string) => JsonTraceSerializer.serializeRequest([readableSpan(turn(text), resource, scope)])!.byteLength;
    const text = '\u0001'.repeat(20_000);
    const estimated = estimateSpanBytes(turn(text)) - estimateSpanBytes(turn(''));
    const serialised = bodyBytes(text) - bodyBytes('');
    // Before the fix: 140,000 estimated for 260,000 serialised.
    expect(estimated).toBeGreaterThanOrEqual(serialised);
    // Plain text is unchanged: one byte a character (two for the quotes JSON.stringify adds around the message).
    expect(estimateSpanBytes(turn('x'.repeat(20_000))) - estimateSpanBytes(turn(''))).toBe(40_000);
  });
});
