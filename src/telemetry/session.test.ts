import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { histWhere, sumWhere, TestMetricReader, TelemetryTestSession } from '../../test/telemetry/support/context.js';
import { ev, forwardClient, ManualTime, relayed, usage, wire } from '../../test/telemetry/support/frames.js';
import type { Report } from '../pipeline/reports.js';
import { telemetrySchema } from './config.js';
import { TelemetryMetrics } from './metrics.js';
import { TelemetrySdk } from './sdk.js';
import { sessionSampled, TelemetrySession, type TelemetryShared } from './session.js';
import { literalSecrets } from './redact.js';
import { resolveSettings } from './settings.js';

function harness(config: Record<string, unknown> = {}, env: Record<string, string> = {}, extra: Partial<Pick<TelemetryShared, 'priced' | 'secrets'>> = {}) {
  const time = new ManualTime();
  const exporter = new InMemorySpanExporter();
  let reader!: TestMetricReader;
  const settings = resolveSettings(telemetrySchema().parse({ traces: { exporter: 'none' }, ...config }), env);
  const sdk = new TelemetrySdk(settings, { spanExporter: exporter, metricReaders: (metricProducers) => [(reader = new TestMetricReader({ metricProducers }))] });
  const metrics = new TelemetryMetrics(sdk);
  const shared: TelemetryShared = { settings, metrics, spans: sdk.spans, serverAddress: 'api.openai.com', serverPort: 443, scheduler: time, ...extra };
  const lines: string[] = [];
  const open = (id?: string, who: { tenant?: string; model?: string } = {}) => {
    const ctx = new TelemetryTestSession(time, { lines, ...(id ? { id } : {}), ...who });
    const filter = new TelemetrySession(ctx, shared);
    ctx.onAudioReport = (r) => filter.onReport(r);
    return {
      ctx,
      filter,
      client: (e: { type: string; [k: string]: unknown }) => relayed(ctx.audio, 'client', wire(e), time.t, (f) => {
          filter.onClient(f);
          forwardClient(ctx.conversation, f, (r) => filter.onReport(r), () => ctx.nextEventId());
        }),
      server: (e: { type: string; [k: string]: unknown }) => relayed(ctx.audio, 'server', wire(e), time.t, (f) => {
          ctx.conversation.observeServer(f);
          filter.onServer(f);
        }),
      report: (r: Report) => filter.onReport(r),
      close: () => filter.onClose({ initiator: 'client', code: 1000, reason: '' }),
    };
  };
  return { time, exporter, reader, sdk, open, lines, spans: () => exporter.getFinishedSpans() };
}

const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);
const ms = (s: ReadableSpan) => s.startTime[0] * 1000 + s.startTime[1] / 1e6;
const endMs = (s: ReadableSpan) => s.endTime[0] * 1000 + s.endTime[1] / 1e6;

/** A server-VAD turn with one audio response; returns the key proxy times. */
function vadTurn(h: ReturnType<typeof harness>, s: ReturnType<ReturnType<typeof harness>['open']>, id = 'resp_1') {
  const { time } = h;
  s.server(ev.speechStarted(0, `item_u_${id}`));
  time.advance(600);
  s.server(ev.speechStopped(600, `item_u_${id}`));
  const stoppedAt = time.t;
  s.server(ev.committed(`item_u_${id}`));
  time.advance(5);
  s.server(ev.responseCreated(id));
  s.report({ kind: 'usage', responseId: id, model: 'gpt-realtime', costMicros: 2500, inputTokens: 30, outputTokens: 20, cachedTokens: 4, source: 'response' });
  time.advance(400);
  s.server(ev.transcriptDelta(id, 'Hi'));
  time.advance(1);
  const firstAudio = time.t;
  s.server(ev.audioDelta(id, 200));
  s.server(ev.audioDelta(id, 200));
  time.advance(50);
  s.server(ev.responseDone(id, 'completed', { usage: usage({ text: 10, audio: 20, cachedText: 4 }, { text: 5, audio: 15 }) }));
  const doneAt = time.t;
  time.advance(400);
  return { stoppedAt, firstAudio, doneAt };
}

describe('telemetry session (spans)', () => {
  it('server VAD turn: one trace, invoke_agent → user_speech + realtime_inference, linked to the connect span', () => {
    const h = harness();
    const s = h.open();
    h.time.advance(3);
    s.report({ kind: 'upstream_connected', ms: 3 });
    h.time.advance(2);
    s.server(ev.sessionCreated());
    const t = vadTurn(h, s);
    const spans = h.spans();
    const [connect] = named(spans, 'rtproxy.session.connect');
    expect(connect).toBeDefined();
    expect(connect!.kind).toBe(SpanKind.SERVER);
    expect(connect!.attributes).toMatchObject({ 'rtproxy.upstream.connect_ms': 3, 'gen_ai.realtime_session.id': 'sess_1', 'rtproxy.vad.type': 'server_vad' });
    expect(endMs(connect!) - ms(connect!)).toBeCloseTo(5, 6);

    const [root] = named(spans, 'invoke_agent');
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    expect(connect!.spanContext().traceId).not.toBe(traceId);
    expect(root!.links[0]!.context.spanId).toBe(connect!.spanContext().spanId);
    const inTrace = spans.filter((x) => x.spanContext().traceId === traceId);
    expect(inTrace.map((x) => x.name).sort()).toEqual(['invoke_agent', 'realtime_inference gpt-realtime', 'user_speech']);
    for (const child of inTrace.filter((x) => x !== root)) expect(child.parentSpanContext?.spanId).toBe(root!.spanContext().spanId);

    expect(root!.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-realtime',
      'gen_ai.agent.invocation.end_reason': 'completed',
      'rtproxy.tenant.id': 'acme',
      'rtproxy.session.id': 'rps_0123456789abcdef',
      'rtproxy.turn.number': 1,
      'rtproxy.turn.initiator': 'user',
      'rtproxy.turn.anchor': 'server_vad',
      'rtproxy.turn.output_audio_ms': 400,
      'rtproxy.turn.cost_usd': 0.0025,
    });
    expect(root!.attributes['rtproxy.turn.response_latency']).toBeCloseTo((t.firstAudio - t.stoppedAt) / 1000, 9);
    // No ring audio: backdated by the 500 ms silence window.
    expect(root!.attributes['rtproxy.turn.voice_to_voice_latency']).toBeCloseTo((t.firstAudio - t.stoppedAt + 500) / 1000, 9);
    expect(endMs(root!)).toBeCloseTo(1_750_000_000_000 + t.firstAudio + 400, 3);

    const [inf] = named(spans, 'realtime_inference gpt-realtime');
    expect(inf!.kind).toBe(SpanKind.CLIENT);
    expect(inf!.attributes).toMatchObject({
      'gen_ai.operation.name': 'realtime_inference',
      'gen_ai.response.id': 'resp_1',
      'gen_ai.response.model': 'gpt-realtime',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.output.type': 'speech',
      'gen_ai.usage.input_tokens': 30,
      'gen_ai.usage.output_tokens': 20,
      'gen_ai.usage.cache_read.input_tokens': 4,
      'gen_ai.usage.audio.input_tokens': 20,
      'gen_ai.usage.text.input_tokens': 10,
      'gen_ai.usage.audio.output_tokens': 15,
      'gen_ai.usage.text.output_tokens': 5,
      'rtproxy.response.cost_usd': 0.0025,
      'rtproxy.response.trigger': 'server',
      'server.address': 'api.openai.com',
      'server.port': 443,
    });
    expect(ms(inf!)).toBeCloseTo(1_750_000_000_000 + t.stoppedAt, 3);
    expect(endMs(inf!)).toBeCloseTo(1_750_000_000_000 + t.doneAt, 3);
    expect(inf!.events.map((e) => e.name)).toEqual(['response.created', 'rtproxy.first_output_audio', 'rtproxy.first_output_text']);
    const [speech] = named(spans, 'user_speech');
    expect(endMs(speech!) - ms(speech!)).toBeCloseTo(600, 3);
  });

  it('tool turn: two inference spans and an execute_tool sibling in the same trace', () => {
    const h = harness();
    const s = h.open();
    s.server(ev.sessionCreated());
    s.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'weather' }] } });
    s.client({ type: 'response.create' });
    s.server(ev.responseCreated('resp_1'));
    h.time.advance(100);
    s.server(ev.functionArgsDone('resp_1', 'call_1', 'get_weather'));
    s.server(ev.responseDone('resp_1', 'completed', { output: [{ type: 'function_call', call_id: 'call_1', name: 'get_weather' }] }));
    h.time.advance(300);
    s.client({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_1', output: '{}' } });
    s.client({ type: 'response.create' });
    s.server(ev.responseCreated('resp_2'));
    s.server(ev.audioDelta('resp_2', 100));
    s.server(ev.responseDone('resp_2'));
    h.time.advance(200);
    const spans = h.spans();
    const roots = named(spans, 'invoke_agent');
    expect(roots).toHaveLength(1);
    const traceId = roots[0]!.spanContext().traceId;
    const tree = spans.filter((x) => x.spanContext().traceId === traceId).map((x) => x.name).sort();
    expect(tree).toEqual(['execute_tool get_weather', 'invoke_agent', 'realtime_inference gpt-realtime', 'realtime_inference gpt-realtime']);
    const [tool] = named(spans, 'execute_tool get_weather');
    expect(tool!.attributes).toMatchObject({ 'gen_ai.tool.name': 'get_weather', 'gen_ai.tool.call.id': 'call_1', 'gen_ai.tool.type': 'function', 'rtproxy.tool.outcome': 'output' });
    expect(endMs(tool!) - ms(tool!)).toBeCloseTo(300, 3);
    const inf = named(spans, 'realtime_inference gpt-realtime').map((x) => x.attributes['gen_ai.response.finish_reasons']);
    expect(inf).toEqual(expect.arrayContaining([['tool_call'], ['stop']]));
    expect(roots[0]!.attributes['rtproxy.turn.anchor']).toBe('text');
  });

  it('interrupted and failed turns are marked; failures carry error.type and status Error', () => {
    const h = harness();
    const s = h.open();
    s.server(ev.sessionCreated());
    s.server(ev.speechStarted(0));
    s.server(ev.speechStopped(500));
    s.server(ev.responseCreated('resp_1'));
    s.server(ev.outputItemAdded('resp_1', 'item_a1'));
    s.server(ev.audioDelta('resp_1', 300));
    h.time.advance(100);
    s.server(ev.speechStarted(2000, 'item_u2'));
    s.server(ev.responseDone('resp_1', 'cancelled', { status_details: { type: 'cancelled', reason: 'turn_detected' } }));
    s.client({ type: 'conversation.item.truncate', item_id: 'item_a1', content_index: 0, audio_end_ms: 80 });
    s.server(ev.speechStopped(2600, 'item_u2'));
    s.server(ev.responseCreated('resp_2'));
    s.server(ev.responseDone('resp_2', 'failed', { status_details: { type: 'failed', error: { type: 'server_error', code: 'server_error' } } }));
    const roots = named(h.spans(), 'invoke_agent');
    expect(roots.map((r) => r.attributes['gen_ai.agent.invocation.end_reason'])).toEqual(['interrupted', 'failed']);
    expect(roots[0]!.attributes).toMatchObject({ 'rtproxy.turn.interrupted': true, 'rtproxy.turn.interruption_kind': 'generation', 'rtproxy.turn.played_audio_ms': 80 });
    expect(roots[1]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(roots[1]!.attributes['error.type']).toBe('server_error');
    const inf = named(h.spans(), 'realtime_inference gpt-realtime');
    expect(inf.map((x) => x.attributes['gen_ai.response.finish_reasons'])).toEqual([['turn_detected'], ['error']]);
  });

  it('records guardrail, budget and prune reports as turn events and mirrors the guardrail action', () => {
    const h = harness();
    const s = h.open();
    s.server(ev.sessionCreated());
    s.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    s.report({ kind: 'prune', itemIds: ['a', 'b'], tokensBefore: 9000, tokensAfter: 5000 });
    s.client({ type: 'response.create' });
    s.server(ev.responseCreated('resp_1'));
    s.report({ kind: 'guardrail', policyId: 'default', policyVersion: '3', ruleId: 'no-pii', action: 'redact', source: 'output', direction: 'server', responseId: 'resp_1', decisionMs: 0.2 });
    s.report({ kind: 'budget', action: 'clamped', scope: 'tenant', limit: 'daily', code: 'max_output_tokens_clamped', responseId: 'resp_1' });
    s.server(ev.responseDone('resp_1'));
    const [root] = named(h.spans(), 'invoke_agent');
    expect(root!.attributes['rtproxy.guardrail.action']).toBe('redact');
    expect(root!.events.map((e) => e.name)).toEqual(expect.arrayContaining(['rtproxy.prune', 'gen_ai.guardrail.result', 'rtproxy.budget']));
    const g = root!.events.find((e) => e.name === 'gen_ai.guardrail.result')!;
    expect(g.attributes).toMatchObject({ 'gen_ai.guardrail.policy.id': 'default', 'rtproxy.guardrail.rule.id': 'no-pii', 'gen_ai.guardrail.source': 'output' });
  });

  it('closing mid-turn ends the turn as session_closed and ends every span', () => {
    const h = harness();
    const s = h.open();
    s.server(ev.sessionCreated());
    s.server(ev.speechStarted(0));
    s.server(ev.speechStopped(500));
    s.server(ev.responseCreated('resp_1'));
    s.close();
    const roots = named(h.spans(), 'invoke_agent');
    expect(roots).toHaveLength(1);
    expect(roots[0]!.attributes['gen_ai.agent.invocation.end_reason']).toBe('session_closed');
    expect(named(h.spans(), 'realtime_inference gpt-realtime')[0]!.attributes['rtproxy.response.status']).toBe('in_progress');
    expect(h.time.pending).toBe(0);
  });

  it('a session that ends before session.created ends its connect span with the reason', () => {
    const h = harness();
    const s = h.open();
    h.time.advance(2000);
    s.filter.onClose({ initiator: 'proxy', code: 1013, reason: 'upstream_unavailable' });
    const [connect] = named(h.spans(), 'rtproxy.session.connect');
    expect(connect!.status.code).toBe(SpanStatusCode.ERROR);
    expect(connect!.attributes['error.type']).toBe('upstream_unavailable');
  });

  it('sampling is decided once per session, deterministically; unsampled sessions create no spans but still count', async () => {
    expect(sessionSampled('rps_a', 1)).toBe(true);
    expect(sessionSampled('rps_a', 0)).toBe(false);
    let hits = 0;
    for (let i = 0; i < 2000; i++) if (sessionSampled(`rps_${i.toString(16).padStart(16, '0')}`, 0.25)) hits++;
    expect(hits).toBeGreaterThan(400);
    expect(hits).toBeLessThan(600);
    const h = harness({ traces: { exporter: 'none', sampleRatio: 0 } });
    const s = h.open();
    s.server(ev.sessionCreated());
    vadTurn(h, s);
    s.close();
    expect(h.spans()).toHaveLength(0);
    expect(sumWhere(await h.reader.points('rtproxy.turns'))).toBe(1);
    expect(s.filter.summary()).toEqual({ turns: 1, traced: false });
  });
});

describe('telemetry session (metrics)', () => {
  it('the proxy\'s own session.update passing the chain (a client secret\'s config, SessionChain.inject) is no client frame', () => {
    const s = harness().open();
    s.filter.onClient(wire({ type: 'session.update', session: { type: 'realtime', instructions: 'minted' } }), 'client_secret');
    expect(s.filter.clientFrames).toBe(0);
    expect(s.filter.clientBytes).toBe(0);
    s.client({ type: 'session.update', session: { type: 'realtime' } });
    expect(s.filter.clientFrames).toBe(1);
  });

  it('records turns, latencies, tokens by modality, cost, audio seconds, frames and sessions', async () => {
    const h = harness();
    const s = h.open();
    s.report({ kind: 'upstream_connected', ms: 12 });
    s.server(ev.sessionCreated());
    s.client(ev.append(1000));
    const t = vadTurn(h, s);
    const points = (name: string) => h.reader.points(name);
    expect(sumWhere(await points('rtproxy.sessions.active'), { 'rtproxy.tenant.id': 'acme' })).toBe(1);
    expect(sumWhere(await points('rtproxy.turns'), { 'gen_ai.agent.invocation.end_reason': 'completed', 'rtproxy.turn.initiator': 'user' })).toBe(1);
    const lat = histWhere(await points('rtproxy.turn.response_latency'), { 'rtproxy.turn.anchor': 'server_vad' });
    expect(lat.count).toBe(1);
    expect(lat.sum).toBeCloseTo((t.firstAudio - t.stoppedAt) / 1000, 9);
    expect(histWhere(await points('rtproxy.turn.voice_to_voice_latency')).count).toBe(1);
    expect(histWhere(await points('rtproxy.turn.time_to_first_text')).count).toBe(1);
    expect(histWhere(await points('gen_ai.client.operation.duration'), { 'gen_ai.operation.name': 'realtime_inference' }).count).toBe(1);
    expect(histWhere(await points('gen_ai.client.token.usage'), { 'gen_ai.token.type': 'input' }).sum).toBe(30);
    const tokens = await points('rtproxy.usage.tokens');
    expect(sumWhere(tokens, { 'gen_ai.token.type': 'input', 'gen_ai.token.modality': 'text', 'rtproxy.token.cached': 'true' })).toBe(4);
    expect(sumWhere(tokens, { 'gen_ai.token.type': 'input', 'gen_ai.token.modality': 'text', 'rtproxy.token.cached': 'false' })).toBe(6);
    expect(sumWhere(tokens, { 'gen_ai.token.type': 'input', 'gen_ai.token.modality': 'audio' })).toBe(20);
    expect(sumWhere(tokens, { 'gen_ai.token.type': 'output' })).toBe(20);
    expect(sumWhere(await points('rtproxy.usage.cost'), { 'gen_ai.request.model': 'gpt-realtime' })).toBeCloseTo(0.0025, 12);
    const audio = await points('rtproxy.audio.duration');
    expect(sumWhere(audio, { direction: 'input' })).toBeCloseTo(1, 9);
    expect(sumWhere(audio, { direction: 'output' })).toBeCloseTo(0.4, 9);
    expect(sumWhere(await points('rtproxy.relay.frames'), { direction: 'client' })).toBe(1);
    expect(sumWhere(await points('rtproxy.relay.frames'), { direction: 'server' })).toBe(9);
    expect(histWhere(await points('rtproxy.upstream.connect.duration')).sum).toBeCloseTo(0.012, 9);
    s.filter.onClose({ initiator: 'proxy', code: 4003, reason: 'policy_violation' });
    expect(sumWhere(await points('rtproxy.sessions.active'))).toBe(0);
    expect(sumWhere(await points('rtproxy.sessions.ended'), { 'rtproxy.session.close_reason': 'policy_violation', 'rtproxy.session.close_initiator': 'proxy' })).toBe(1);
    // Totals of closed sessions survive them.
    expect(sumWhere(await points('rtproxy.relay.frames'), { direction: 'server' })).toBe(9);
  });

  it('counts guardrail trips, budget events, verdicts and upstream errors with bounded labels', async () => {
    const h = harness();
    const s = h.open();
    s.report({ kind: 'guardrail', policyId: 'default', policyVersion: '1', ruleId: 'pii', action: 'block', source: 'input', direction: 'client', responseId: null, decisionMs: 1 });
    s.report({ kind: 'budget', action: 'refused', scope: 'tenant', limit: 'monthly', code: 'budget_exceeded', responseId: null });
    s.report({ kind: 'verdict', filter: 'policies', direction: 'client', eventType: 'conversation.item.create', verdict: 'reject', code: 'guardrail_blocked' });
    s.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
    s.report({ kind: 'relay_latency', direction: 'client', ms: 0.2 });
    s.server({ type: 'error', event_id: 'e', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'm', param: null, event_id: null } });
    expect(sumWhere(await h.reader.points('rtproxy.guardrail.trips'), { 'gen_ai.guardrail.policy.id': 'default', 'rtproxy.guardrail.rule.id': 'pii', 'rtproxy.guardrail.action': 'block' })).toBe(1);
    expect(sumWhere(await h.reader.points('rtproxy.budget.events'), { 'rtproxy.budget.action': 'refused' })).toBe(1);
    expect(sumWhere(await h.reader.points('rtproxy.verdicts'), { 'rtproxy.verdict.code': 'guardrail_blocked' })).toBe(1);
    const errors = await h.reader.points('rtproxy.errors');
    expect(sumWhere(errors, { 'error.type': 'invalid_value', 'rtproxy.error.origin': 'upstream' })).toBe(1);
    expect(sumWhere(errors, { 'error.type': 'guardrail_blocked', 'rtproxy.error.origin': 'proxy' })).toBe(1);
    expect(sumWhere(await h.reader.points('rtproxy.backpressure.events'))).toBe(1);
    expect(histWhere(await h.reader.points('rtproxy.relay.latency'), { direction: 'client' }).count).toBe(1);
    const text = await h.sdk.metricsText();
    expect(text).toContain('rtproxy_guardrail_trips_total{');
    expect(text).toContain('rtproxy_sessions_active{');
  });

  it('estimates relay overhead on sampled frames until the relay reports it', async () => {
    const h = harness({ relaySampleEvery: 2 });
    const s = h.open();
    // Non-audio frames: audio never reaches the filter (the relay meters it and reports exact timings).
    for (let i = 0; i < 4; i++) s.client({ type: 'input_audio_buffer.clear' });
    for (let i = 0; i < 4; i++) s.server({ type: 'rate_limits.updated', rate_limits: [] });
    await new Promise((r) => setTimeout(r, 0));
    const pts = await h.reader.points('rtproxy.relay.latency');
    expect(histWhere(pts, { direction: 'client' }).count).toBe(2);
    expect(histWhere(pts, { direction: 'server' }).count).toBe(2);
  });
});

describe('telemetry session (logs)', () => {
  it('binds trace_id/span_id while a turn is current, and only then; bindings do not grow', () => {
    const h = harness();
    const s = h.open();
    s.server(ev.sessionCreated());
    s.ctx.log.info('before');
    for (let i = 0; i < 30; i++) {
      s.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
      s.ctx.log.info({ i }, 'inside');
      s.client({ type: 'response.create' });
      s.server(ev.responseCreated(`resp_${i}`));
      s.server(ev.responseDone(`resp_${i}`));
      s.ctx.log.info({ i }, 'after');
    }
    const parsed = h.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const roots = named(h.spans(), 'invoke_agent');
    expect(roots).toHaveLength(30);
    expect(parsed.find((l) => l['msg'] === 'before')!['trace_id']).toBeUndefined();
    for (let i = 0; i < 30; i++) {
      const inside = parsed.find((l) => l['msg'] === 'inside' && l['i'] === i)!;
      expect(inside['trace_id']).toBe(roots[i]!.spanContext().traceId);
      expect(inside['span_id']).toBe(roots[i]!.spanContext().spanId);
      expect(parsed.find((l) => l['msg'] === 'after' && l['i'] === i)!['trace_id']).toBeUndefined();
    }
    const ends = parsed.filter((l) => l['msg'] === 'turn end');
    expect(ends).toHaveLength(30);
    expect(ends.map((l) => l['trace_id'])).toEqual(roots.map((r) => r.spanContext().traceId));
    // pino appends bindings; the filter restores the base, so lines stay one trace_id long.
    const last = h.lines.filter((l) => l.includes('"inside"')).pop()!;
    expect(last.match(/"trace_id"/g)).toHaveLength(1);
  });
});

describe('telemetry session (the model label)', () => {
  /** One text turn answered on `model` (session.created names `echo`, or never comes), then closed. */
  function textTurn(h: ReturnType<typeof harness>, tenant: string, model: string, echo: string | null, n: number) {
    const s = h.open(`rps_${tenant}_${n}`, { tenant, model });
    if (echo !== null) s.server({ ...ev.sessionCreated(), session: { ...ev.sessionCreated().session, model: echo } });
    s.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    s.client({ type: 'response.create' });
    s.server(ev.responseCreated(`resp_${tenant}_${n}`));
    s.report({ kind: 'usage', responseId: `resp_${tenant}_${n}`, model, costMicros: 10, inputTokens: 1, outputTokens: 1, cachedTokens: 0, source: 'response' });
    s.server(ev.responseDone(`resp_${tenant}_${n}`));
    s.close();
  }
  const models = async (h: ReturnType<typeof harness>, metric: string, tenant: string) =>
    new Set((await h.reader.points(metric)).filter((p) => p.attributes['rtproxy.tenant.id'] === tenant).map((p) => String(p.attributes['gen_ai.request.model'])));

  it('is bounded per tenant: one tenant naming 30 models keeps 20 of its own, another tenant keeps its model', async () => {
    const h = harness();
    for (let i = 0; i < 30; i++) textTurn(h, 'acme', `gpt-realtime-2025-01-${String(i).padStart(2, '0')}`, `gpt-realtime-2025-01-${String(i).padStart(2, '0')}`, i);
    textTurn(h, 'victim', 'gpt-realtime', 'gpt-realtime', 0);
    const acme = await models(h, 'rtproxy.turns', 'acme');
    expect(acme.size).toBe(21);
    expect(acme.has('other')).toBe(true);
    for (const metric of ['rtproxy.turns', 'rtproxy.usage.cost']) expect(await models(h, metric, 'victim')).toEqual(new Set(['gpt-realtime']));
  });

  it('is a model only when the upstream named it (session.created) or it is priced; otherwise other, and never text that is not model-shaped', async () => {
    const h = harness({}, {}, { priced: (m) => m === 'gpt-realtime-mini' });
    // The upstream refused it: no session.created. The client wrote the model.
    textTurn(h, 'acme', 'attacker text <a href=x>', null, 0);
    textTurn(h, 'acme', 'made-up-model', null, 1);
    // Priced, before (without) any session.created.
    textTurn(h, 'beta', 'gpt-realtime-mini', null, 0);
    // Named by the upstream: accepted.
    textTurn(h, 'gamma', 'unpriced-but-accepted', 'unpriced-but-accepted', 0);
    // Named by the upstream but not label-shaped.
    textTurn(h, 'delta', 'odd <model>', 'odd <model>', 0);
    for (const metric of ['rtproxy.turns', 'rtproxy.usage.cost']) {
      expect(await models(h, metric, 'acme')).toEqual(new Set(['other']));
      expect(await models(h, metric, 'beta')).toEqual(new Set(['gpt-realtime-mini']));
      expect(await models(h, metric, 'gamma')).toEqual(new Set(['unpriced-but-accepted']));
      expect(await models(h, metric, 'delta')).toEqual(new Set(['other']));
    }
    const durations = (await h.reader.points('gen_ai.client.operation.duration')).map((p) => String(p.attributes['gen_ai.request.model']));
    expect(durations.filter((m) => m.includes('attacker') || m.includes('made-up') || m.includes('<'))).toEqual([]);
  });
});

describe('telemetry session (captured content and configured credentials)', () => {
  it('a configured key of any shape and a whsec_ secret are [secret] on the spans and the turn-end line', () => {
    const key = 'Plain-Tenant-Passphrase-Q';
    const h = harness({ captureContent: { enabled: true }, logTurns: 'info' }, {}, { secrets: literalSecrets([key, 'upstream-key-of-the-test']) });
    const s = h.open();
    s.server(ev.sessionCreated());
    s.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `mine is ${key} and whsec_c2VjcmV0S2V5Rm9yV2ViaG9va1NpZ25pbmc= ok` }] } });
    s.client({ type: 'response.create' });
    s.server(ev.responseCreated('resp_1'));
    s.server({ type: 'response.output_text.done', event_id: 'e', response_id: 'resp_1', item_id: 'item_a1', output_index: 0, content_index: 0, text: `noted: upstream-key-of-the-test, ${key}` });
    s.server(ev.responseDone('resp_1'));
    s.close();
    const [root] = named(h.spans(), 'invoke_agent');
    const [inf] = h.spans().filter((x) => x.name.startsWith('realtime_inference'));
    const turnLine = h.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'turn end')!;
    expect(turnLine['inputTranscript']).toBe('mine is [secret] and [secret] ok');
    expect(turnLine['outputTranscript']).toBe('noted: [secret], [secret]');
    expect(root!.attributes['gen_ai.input.messages']).toContain('mine is [secret] and [secret] ok');
    expect(inf!.attributes['gen_ai.output.messages']).toContain('noted: [secret], [secret]');
    const everything = h.lines.join('\n') + JSON.stringify(h.spans().map((x) => x.attributes));
    for (const secret of [key, 'upstream-key-of-the-test', 'c2VjcmV0S2V5Rm9yV2ViaG9va1NpZ25pbmc']) expect(everything).not.toContain(secret);
  });
});

describe('telemetry session (unknown content events)', () => {
  it('counts every unknown content event by tenant, direction and policy action', async () => {
    const h = harness();
    const a = h.open('rps_a', { tenant: 'acme' });
    for (let i = 0; i < 3; i++) a.report({ kind: 'unknown_content', direction: 'client', action: 'pass' });
    a.report({ kind: 'unknown_content', direction: 'server', action: 'block' });
    const b = h.open('rps_b', { tenant: 'beta' });
    b.report({ kind: 'unknown_content', direction: 'client', action: 'pass' });
    const points = await h.reader.points('rtproxy.guardrail.unknown_content');
    const rows = points.map((p) => [p.attributes['rtproxy.tenant.id'], p.attributes['direction'], p.attributes['rtproxy.guardrail.action'], p.value]);
    expect(rows).toEqual([
      ['acme', 'client', 'pass', 3],
      ['acme', 'server', 'block', 1],
      ['beta', 'client', 'pass', 1],
    ]);
  });
});
