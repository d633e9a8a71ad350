import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Frame } from '../../src/pipeline/frame.js';
import { ResponseTracker } from '../../src/relay/responses.js';
import { TelemetrySession } from '../../src/telemetry/session.js';
import { policyDir } from '../policies/support.js';
import { openTranslation, type Session } from '../relay/translation-support.js';
import { startTelemetryProxy, type TelemetryProxy, type TelemetryProxyOptions } from './support/proxy.js';

/*
 * A translation session (`/v1/realtime/translations`, `openai`'s own OpenAIRealtimeTranslationWS on
 * loopback against the simulator) is observed as a realtime one is: its span (tenant, model, how it
 * ended), the session metrics, its input and translated audio in rtproxy_audio_duration_total, the
 * per-minute spend metering settles in rtproxy_usage_cost_total, its guardrail verdicts. It has no
 * turns: no invoke_agent trace, no turn or inference metrics. Until 2026-12-07 its audio counted
 * nowhere (the relay's AudioMeter read only `input_audio_buffer.append` and `response.output_audio.delta`).
 */

const proxies: TelemetryProxy[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const p of proxies.splice(0)) await p.stop();
});

async function proxy(options: TelemetryProxyOptions = {}): Promise<TelemetryProxy> {
  const p = await startTelemetryProxy({ tls: true, ...options });
  proxies.push(p);
  return p;
}

/** `ms` of 24 kHz PCM16 silence, base64 (the simulator translates each 200 ms into as much audio). */
const pcm = (ms: number) => Buffer.alloc(ms * 48).toString('base64');
const append = (s: Session, ms: number) => s.translation.send({ type: 'session.input_audio_buffer.append', audio: pcm(ms) });

const scrape = async (p: TelemetryProxy): Promise<string> => (await fetch(`${p.adminUrl}/metrics`)).text();

/** The sample lines of `metric` whose labels include every `labels` pair, as `{labels} value` strings. */
function samples(text: string, metric: string, labels: Record<string, string> = {}): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${metric}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
    .map((line) => line.slice(metric.length));
}

/** The one value of `metric` with `labels` (NaN when there is none, or several). */
function value(text: string, metric: string, labels: Record<string, string> = {}): number {
  const found = samples(text, metric, labels);
  return found.length === 1 ? Number(found[0]!.split(' ').pop()) : NaN;
}

async function spansWhen(p: TelemetryProxy, ready: (spans: ReadableSpan[]) => boolean): Promise<ReadableSpan[]> {
  // The span ends once every filter's onClose has run: poll for it, no timed assertion.
  for (;;) {
    const spans = p.spans.getFinishedSpans();
    if (ready(spans)) return spans;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const TRANSLATION_SPAN = 'rtproxy.session.translation';

describe('translation sessions in telemetry', () => {
  it('one session span (tenant, model, outcome, close code, audio, spend), the session metrics, translated minutes and the per-minute spend; no turns', async () => {
    const p = await proxy();
    const s = await openTranslation(p);
    const created = await s.next('session.created');
    for (let k = 0; k < 5; k++) append(s, 200);
    await s.next('session.output_audio.delta');
    while (s.frames.filter((f) => f.type === 'session.output_audio.delta').length < 5) await new Promise((r) => setTimeout(r, 5));
    s.translation.close();
    expect((await s.closed).code).toBe(1000);

    const [span] = await spansWhen(p, (all) => all.some((x) => x.name === TRANSLATION_SPAN));
    const spans = p.spans.getFinishedSpans();
    // No turn: no invoke_agent trace, no connect span beside it.
    expect(spans.map((x) => x.name)).toEqual([TRANSLATION_SPAN]);
    expect(span!.attributes).toMatchObject({
      'rtproxy.tenant.id': 'acme',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-realtime-translate',
      'gen_ai.response.model': 'gpt-realtime-translate',
      'gen_ai.realtime_session.id': (created['session'] as { id: string }).id,
      'rtproxy.session.close_reason': 'client_close',
      'rtproxy.session.close_initiator': 'client',
      'rtproxy.session.close_code': 1000,
      'rtproxy.session.input_audio_ms': 1000,
      'rtproxy.session.output_audio_ms': 1000,
      // 1 s at $0.034 a minute.
      'rtproxy.session.cost_usd': 0.000567,
    });
    // A translation session has no VAD or audio formats of its own to report.
    expect(Object.keys(span!.attributes).filter((k) => k.startsWith('rtproxy.vad.') || k.startsWith('rtproxy.audio.'))).toEqual([]);
    expect(span!.status.code).not.toBe(2);
    expect(span!.events.map((e) => e.name)).toEqual(['rtproxy.upstream.connected', 'gen_ai.client.realtime_session.started', 'gen_ai.client.realtime_session.ended']);

    const text = await scrape(p);
    const acme = { rtproxy_tenant_id: 'acme' };
    expect(value(text, 'rtproxy_sessions_started_total', acme)).toBe(1);
    expect(value(text, 'rtproxy_sessions_ended_total', { ...acme, rtproxy_session_close_reason: 'client_close' })).toBe(1);
    expect(value(text, 'rtproxy_session_duration_count', { ...acme, rtproxy_session_close_reason: 'client_close' })).toBe(1);
    expect(value(text, 'rtproxy_sessions_active', acme)).toBe(0);
    // Translated minutes: the input forwarded and the translated audio sent back, from base64 sizes.
    expect(value(text, 'rtproxy_audio_duration_total', { ...acme, direction: 'input' })).toBe(1);
    expect(value(text, 'rtproxy_audio_duration_total', { ...acme, direction: 'output' })).toBe(1);
    // The spend metering settled at the close, in the cost metric every session's spend goes to.
    expect(value(text, 'rtproxy_usage_cost_total', { ...acme, gen_ai_request_model: 'gpt-realtime-translate' })).toBeCloseTo(0.000567, 9);
    // No turn, no response: nothing in the turn or inference metrics.
    for (const metric of ['rtproxy_turns_total', 'gen_ai_invoke_agent_duration_count', 'gen_ai_client_operation_duration_count', 'rtproxy_turn_response_latency_count']) expect(samples(text, metric)).toEqual([]);
  });

  it('a session the proxy ends (budget, onExhausted: end_session): the span fails with the error type and the close code', async () => {
    const p = await proxy({
      tenants: { acme: { limits: { dailyUsd: '0.01' } } },
      config: { metering: { admission: 'worst_case', onExhausted: 'end_session' } },
    });
    const s = await openTranslation(p);
    await s.next('session.created');
    append(s, 200);
    expect(await s.closed).toEqual({ code: 4002, reason: 'budget_exceeded' });

    const [span] = await spansWhen(p, (all) => all.some((x) => x.name === TRANSLATION_SPAN));
    expect(span!.attributes).toMatchObject({
      'error.type': 'budget_exceeded',
      'rtproxy.session.close_reason': 'budget_exceeded',
      'rtproxy.session.close_initiator': 'proxy',
      'rtproxy.session.close_code': 4002,
      'rtproxy.session.input_audio_ms': 0,
      'rtproxy.session.cost_usd': 0,
    });
    expect(span!.status.code).toBe(2);
    const text = await scrape(p);
    expect(value(text, 'rtproxy_sessions_ended_total', { rtproxy_tenant_id: 'acme', rtproxy_session_close_reason: 'budget_exceeded' })).toBe(1);
    expect(value(text, 'rtproxy_budget_events_total', { rtproxy_tenant_id: 'acme', rtproxy_budget_action: 'ended' })).toBe(1);
  });

  it('guardrail verdicts on the transcripts count in rtproxy_guardrail_trips_total and are events of the session span', async () => {
    const p = await proxy({
      tenants: { acme: { policy: 'translate' } },
      config: { policies: { dir: policyDir({ 'translate.yaml': 'guardrails:\n  rules:\n    - { id: card, sources: [output], match: { pii: [card] }, action: redact }\n' }), watch: false } },
      simulator: { translate: () => ({ source: 'x', translated: 'mi tarjeta es 4111 1111 1111 1111. ' }) },
    });
    const s = await openTranslation(p);
    await s.next('session.created');
    append(s, 200);
    await s.next('session.output_audio.delta');
    s.translation.send({ type: 'session.close' });
    await s.closed;
    expect(JSON.stringify(s.frames)).not.toContain('1111');

    const [span] = await spansWhen(p, (all) => all.some((x) => x.name === TRANSLATION_SPAN));
    const verdicts = span!.events.filter((e) => e.name === 'gen_ai.guardrail.result');
    expect(verdicts.length).toBeGreaterThan(0);
    expect(verdicts[0]!.attributes).toMatchObject({ 'gen_ai.guardrail.policy.id': 'translate', 'rtproxy.guardrail.rule.id': 'card', 'rtproxy.guardrail.action': 'redact', 'gen_ai.guardrail.source': 'output' });
    const text = await scrape(p);
    expect(value(text, 'rtproxy_guardrail_trips_total', { rtproxy_tenant_id: 'acme', rtproxy_guardrail_rule_id: 'card', rtproxy_guardrail_action: 'redact' })).toBe(verdicts.length);
  });

  it('its audio is counted by the relay, as a realtime session\'s: no audio frame reaches the telemetry filter, none is read for a response id', async () => {
    const seen: string[] = [];
    for (const hook of ['onClient', 'onServer'] as const) {
      const original = TelemetrySession.prototype[hook];
      vi.spyOn(TelemetrySession.prototype, hook).mockImplementation(function (this: TelemetrySession, frame: Frame) {
        seen.push(frame.type);
        return original.call(this, frame);
      });
    }
    const responseIdReads = vi.spyOn(ResponseTracker.prototype, 'audioResponseId');
    const p = await proxy();
    const s = await openTranslation(p);
    await s.next('session.created');
    append(s, 200);
    append(s, 200);
    while (s.frames.filter((f) => f.type === 'session.output_audio.delta').length < 2) await new Promise((r) => setTimeout(r, 5));
    s.translation.close();
    await s.closed;
    await spansWhen(p, (all) => all.some((x) => x.name === TRANSLATION_SPAN));
    expect(seen).toContain('session.created');
    expect(seen.filter((t) => t === 'session.input_audio_buffer.append' || t === 'session.output_audio.delta')).toEqual([]);
    expect(responseIdReads).not.toHaveBeenCalled();
    const text = await scrape(p);
    expect(value(text, 'rtproxy_audio_duration_total', { rtproxy_tenant_id: 'acme', direction: 'input' })).toBe(0.4);
    expect(value(text, 'rtproxy_audio_duration_total', { rtproxy_tenant_id: 'acme', direction: 'output' })).toBe(0.4);
    // Client frames: the appends (counted by the relay) and nothing else the client sent.
    expect(value(text, 'rtproxy_relay_frames_total', { rtproxy_tenant_id: 'acme', direction: 'client' })).toBe(2);
  });
});
