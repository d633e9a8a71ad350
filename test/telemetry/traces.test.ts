import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asObject } from '../../src/protocol/json.js';
import type { SimConnection } from '../../src/simulator/index.js';
import { appendEvents, speechThenSilence, type TestClient } from '../support/client.js';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Scripted sessions through the real proxy against the simulator: each turn type yields exactly one
 * trace with the expected span tree, and the latency attributes agree with the simulator's own
 * send/receive timestamps (same process, same performance.now() clock).
 */

let p: TelemetryProxy;

const VAD_AUDIO = speechThenSilence(700, 700);
const PTT_AUDIO = speechThenSilence(500, 0);

/** Streams PCM as 20 ms appends, yielding between them so each is handled on its own tick. */
async function stream(c: TestClient, pcm: Buffer): Promise<void> {
  for (const e of appendEvents(pcm, 20)) {
    c.send(e);
    await new Promise((r) => setImmediate(r));
  }
}

beforeAll(async () => {
  p = await startTelemetryProxy({ simulator: { timing: { firstAudioDelayMs: 40, deltaIntervalMs: 1 } } });
  // The simulator shares this event loop: synthesising an answer the first time blocks it for a few
  // ms, which would delay the proxy's reads. Warm its speech cache with the same turns first.
  const c = await p.client();
  await c.next('session.created');
  await stream(c, VAD_AUDIO);
  await c.next('response.done');
  c.say('say:Hello there.');
  await c.nth('response.done', 2);
  c.close();
  await c.closed;
  const d = await p.client();
  await d.next('session.created');
  d.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
  await d.next('session.updated');
  await stream(d, PTT_AUDIO);
  d.send({ type: 'input_audio_buffer.commit' });
  d.send({ type: 'response.create' });
  await d.next('response.done');
  d.close();
  await d.closed;
});
afterAll(async () => {
  await p?.stop();
});

const hr = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;

async function session(): Promise<{ c: TestClient; conn: SimConnection; sessionId: string }> {
  const before = p.sim.connections.length;
  const c = await p.client();
  await c.next('session.created');
  const conn = p.sim.connections[before];
  if (!conn) throw new Error('no simulator connection');
  const start = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'session start');
  const sessionId = String(start[start.length - 1]?.['session']);
  return { c, conn, sessionId };
}

/** Closes the client, waits until the proxy has ended the session, returns the session's spans. */
async function finish(c: TestClient, sessionId: string): Promise<ReadableSpan[]> {
  c.close();
  await c.closed;
  const deadline = Date.now() + 5000;
  for (;;) {
    const all = p.spans.getFinishedSpans();
    // Roots and the connect span carry the session id; children belong to their roots' traces.
    const traceIds = new Set(all.filter((s) => s.attributes['rtproxy.session.id'] === sessionId).map((s) => s.spanContext().traceId));
    const spans = all.filter((s) => traceIds.has(s.spanContext().traceId));
    if (spans.some((s) => s.name === 'rtproxy.session.connect') && p.lines.some((l) => l.includes('"session end"') && l.includes(sessionId))) {
      // The turn spans end in the same onClose as the session-end log line.
      return spans;
    }
    if (Date.now() > deadline) throw new Error('session spans did not arrive');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function traces(spans: ReadableSpan[]): Map<string, ReadableSpan[]> {
  const byTrace = new Map<string, ReadableSpan[]>();
  for (const s of spans) {
    if (s.name === 'rtproxy.session.connect') continue;
    const id = s.spanContext().traceId;
    byTrace.set(id, [...(byTrace.get(id) ?? []), s]);
  }
  return byTrace;
}

function tree(spans: ReadableSpan[]): string[] {
  const root = spans.find((s) => s.name === 'invoke_agent');
  expect(root).toBeDefined();
  for (const s of spans) if (s !== root) expect(s.parentSpanContext?.spanId).toBe(root!.spanContext().spanId);
  return spans.map((s) => s.name).sort();
}

const sentAt = (conn: SimConnection, type: string, n = 1) => conn.sent.filter((e) => e.type === type)[n - 1]?.t ?? NaN;
const receivedAt = (conn: SimConnection, type: string, n = 1) => conn.received.filter((e) => e.type === type)[n - 1]?.t ?? NaN;

describe('per-turn traces against the simulator', () => {
  it('server VAD turn: one trace (invoke_agent → user_speech, realtime_inference) with usage and cost', async () => {
    const { c, sessionId } = await session();
    await stream(c, VAD_AUDIO);
    const done = await c.next('response.done');
    const spans = await finish(c, sessionId);
    const byTrace = traces(spans);
    expect(byTrace.size).toBe(1);
    const turn = [...byTrace.values()][0]!;
    expect(tree(turn)).toEqual(['invoke_agent', 'realtime_inference gpt-realtime', 'user_speech']);
    const root = turn.find((s) => s.name === 'invoke_agent')!;
    const connect = spans.find((s) => s.name === 'rtproxy.session.connect')!;
    expect(root.links[0]!.context.spanId).toBe(connect.spanContext().spanId);
    expect(connect.attributes['rtproxy.upstream.connect_ms']).toBeGreaterThan(0);
    expect(root.attributes).toMatchObject({ 'rtproxy.turn.anchor': 'server_vad', 'rtproxy.turn.initiator': 'user', 'gen_ai.agent.invocation.end_reason': 'completed', 'rtproxy.tenant.id': 'acme' });
    // Voice-to-voice is backdated: never shorter than the response latency.
    expect(root.attributes['rtproxy.turn.voice_to_voice_latency'] as number).toBeGreaterThanOrEqual(root.attributes['rtproxy.turn.response_latency'] as number);

    // Tokens and cost equal the usage the client received and the metering report.
    const inf = turn.find((s) => s.name.startsWith('realtime_inference'))!;
    const u = (done['response'] as { usage: { input_tokens: number; output_tokens: number; input_token_details: { audio_tokens: number; cached_tokens: number }; output_token_details: { audio_tokens: number } } }).usage;
    expect(inf.attributes).toMatchObject({
      'gen_ai.usage.input_tokens': u.input_tokens,
      'gen_ai.usage.output_tokens': u.output_tokens,
      'gen_ai.usage.audio.input_tokens': u.input_token_details.audio_tokens,
      'gen_ai.usage.cache_read.input_tokens': u.input_token_details.cached_tokens,
      'gen_ai.usage.audio.output_tokens': u.output_token_details.audio_tokens,
    });
    // Cost is the metering concern's figure for that response, to the micro-dollar.
    const responseId = inf.attributes['gen_ai.response.id'];
    const metered = p.reports.find((r) => r.kind === 'usage' && r.responseId === responseId);
    expect(metered?.kind).toBe('usage');
    if (metered?.kind !== 'usage') return;
    expect(metered.costMicros).toBeGreaterThan(0);
    expect(inf.attributes['rtproxy.response.cost_usd']).toBe(metered.costMicros / 1e6);
    expect(root.attributes['rtproxy.turn.cost_usd']).toBe(metered.costMicros / 1e6);
    expect([metered.inputTokens, metered.outputTokens]).toEqual([u.input_tokens, u.output_tokens]);
  });

  it('latency attributes lie between the simulator\'s and the client\'s timestamps of the same events (every session)', async () => {
    // Proxy, simulator and client share one process and performance.now() clock. The proxy sees an
    // upstream event after the simulator sent it and before the client got it, and a client event
    // after the client sent it and before the simulator got it. So each interval the proxy measures
    // has hard bounds from the other two clocks, however loaded the machine is; no tolerance window
    // beyond clock rounding.
    const ROUNDING_MS = 0.01;
    const within = (what: string, measured: number, lo: number, hi: number) => {
      expect(Number.isFinite(measured) && Number.isFinite(lo) && Number.isFinite(hi), `${what}: ${measured} in [${lo}, ${hi}]`).toBe(true);
      expect(measured, `${what} >= ${lo}`).toBeGreaterThanOrEqual(lo - ROUNDING_MS);
      expect(measured, `${what} <= ${hi}`).toBeLessThanOrEqual(hi + ROUNDING_MS);
    };
    const ms = (seconds: unknown) => (seconds as number) * 1000;
    for (let i = 0; i < 3; i++) {
      const { c, conn, sessionId } = await session();
      await stream(c, VAD_AUDIO);
      await c.next('response.done');
      const spans = await finish(c, sessionId);
      const root = spans.find((s) => s.name === 'invoke_agent')!;
      const inf = spans.find((s) => s.name.startsWith('realtime_inference'))!;
      const speech = spans.find((s) => s.name === 'user_speech')!;
      // [earliest the proxy can have seen it, latest]
      const seen = (type: string): [number, number] => [sentAt(conn, type), c.arrivalOf(type)];
      const between = (what: string, measured: number, from: string, to: string) => {
        const [fromLo, fromHi] = seen(from);
        const [toLo, toHi] = seen(to);
        within(what, measured, toLo - fromHi, toHi - fromLo);
      };
      between('response_latency', ms(root.attributes['rtproxy.turn.response_latency']), 'input_audio_buffer.speech_stopped', 'response.output_audio.delta');
      between('time_to_first_text', ms(root.attributes['rtproxy.turn.time_to_first_text']), 'input_audio_buffer.speech_stopped', 'response.output_audio_transcript.delta');
      between('time_to_first_audio', ms(inf.attributes['rtproxy.response.time_to_first_audio']), 'response.created', 'response.output_audio.delta');
      between('response.duration', ms(inf.attributes['rtproxy.response.duration']), 'response.created', 'response.done');
      between('user_speech span', hr(speech.endTime) - hr(speech.startTime), 'input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped');
    }
    for (let i = 0; i < 3; i++) {
      // Push-to-talk: anchored on the commit the proxy forwarded (after the client sent it, before the simulator got it).
      const { c, conn, sessionId } = await session();
      c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
      await c.next('session.updated');
      await stream(c, PTT_AUDIO);
      const committedByClient = performance.now();
      c.send({ type: 'input_audio_buffer.commit' });
      c.send({ type: 'response.create' });
      await c.next('response.done');
      const spans = await finish(c, sessionId);
      const root = spans.find((s) => s.name === 'invoke_agent')!;
      const firstAudio = 'response.output_audio.delta';
      within('push-to-talk response_latency', ms(root.attributes['rtproxy.turn.response_latency']), sentAt(conn, firstAudio) - receivedAt(conn, 'input_audio_buffer.commit'), c.arrivalOf(firstAudio) - committedByClient);
    }
  });

  it('push-to-talk turn: commit anchors the turn, response.create answers it', async () => {
    const { c, sessionId } = await session();
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.next('session.updated');
    await stream(c, PTT_AUDIO);
    c.send({ type: 'input_audio_buffer.commit' });
    c.send({ type: 'response.create' });
    await c.next('response.done');
    const spans = await finish(c, sessionId);
    const byTrace = traces(spans);
    expect(byTrace.size).toBe(1);
    const turn = [...byTrace.values()][0]!;
    expect(tree(turn)).toEqual(['invoke_agent', 'realtime_inference gpt-realtime', 'user_speech']);
    const root = turn.find((s) => s.name === 'invoke_agent')!;
    expect(root.attributes).toMatchObject({ 'rtproxy.turn.anchor': 'commit', 'rtproxy.vad.type': 'none' });
    const inf = turn.find((s) => s.name.startsWith('realtime_inference'))!;
    expect(inf.attributes['rtproxy.response.trigger']).toBe('client');
  });

  it('text turn, tool call and out-of-band response: one trace each, tool span between two inferences', async () => {
    const { c, sessionId } = await session();
    c.say('say:Hello there.');
    await c.nth('response.done', 1);
    c.say('call:get_weather {"city":"Paris"}');
    const call = await c.next('response.function_call_arguments.done');
    await c.nth('response.done', 2);
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call['call_id'], output: '{"temp":21}' } });
    c.send({ type: 'response.create' });
    await c.nth('response.done', 3);
    c.send({
      type: 'response.create',
      response: { conversation: 'none', output_modalities: ['text'], input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say:positive' }] }] },
    });
    await c.nth('response.done', 4);
    const spans = await finish(c, sessionId);
    const byTrace = [...traces(spans).values()];
    expect(byTrace).toHaveLength(3);
    const roots = byTrace.map((t) => t.find((s) => s.name === 'invoke_agent')!).sort((a, b) => (a.attributes['rtproxy.turn.number'] as number) - (b.attributes['rtproxy.turn.number'] as number));
    const trees = roots.map((r) => tree(byTrace.find((t) => t.includes(r))!));
    expect(trees[0]).toEqual(['invoke_agent', 'realtime_inference gpt-realtime']);
    expect(trees[1]).toEqual(['execute_tool get_weather', 'invoke_agent', 'realtime_inference gpt-realtime', 'realtime_inference gpt-realtime']);
    expect(trees[2]).toEqual(['invoke_agent', 'realtime_inference gpt-realtime']);
    expect(roots[0]!.attributes['rtproxy.turn.anchor']).toBe('text');
    expect(roots[2]!.attributes).toMatchObject({ 'rtproxy.response.out_of_band': true, 'rtproxy.turn.initiator': 'agent' });
    const tool = byTrace[byTrace.findIndex((t) => t.includes(roots[1]!))]!.find((s) => s.name.startsWith('execute_tool'))!;
    expect(tool.attributes).toMatchObject({ 'gen_ai.tool.call.id': call['call_id'], 'rtproxy.tool.outcome': 'output' });
    for (const r of roots) expect(r.attributes['gen_ai.agent.invocation.end_reason']).toBe('completed');
  });

  it('a create the upstream refuses fails its own turn, even without an event_id from the client and without metering', async () => {
    const q = await startTelemetryProxy({ config: { metering: { enabled: false } } });
    try {
      const c = await q.client();
      await c.next('session.created');
      const conn = q.sim.connections[0]!;
      // Agent-initiated, no event_id: the relay stamps one, and the simulator's refusal names it.
      c.send({ type: 'response.create', response: { bogus_field: 5 } });
      const refusal = await c.next('error');
      const sentCreates = conn.received.filter((e) => e.type === 'response.create').map((e) => asObject(e.event)?.['event_id']);
      expect(sentCreates).toEqual([expect.stringMatching(/^event_proxy_/)]);
      expect(asObject(refusal['error'])?.['event_id']).toBe(sentCreates[0]);
      c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
      await c.next('response.done');
      const start = q.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'session start');
      c.close();
      await c.closed;
      const sessionId = String(start?.['session']);
      const deadline = Date.now() + 5000;
      let roots: ReadableSpan[] = [];
      while (Date.now() < deadline) {
        roots = q.spans.getFinishedSpans().filter((s) => s.name === 'invoke_agent' && s.attributes['rtproxy.session.id'] === sessionId);
        if (roots.length >= 2) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      roots.sort((a, b) => (a.attributes['rtproxy.turn.number'] as number) - (b.attributes['rtproxy.turn.number'] as number));
      // One trace per create: the refused one failed with the upstream's code, the next completed with its response.
      expect(roots.map((r) => [r.attributes['gen_ai.agent.invocation.end_reason'], r.attributes['error.type'] ?? null])).toEqual([
        ['failed', 'unknown_parameter'],
        ['completed', null],
      ]);
      const inference = q.spans.getFinishedSpans().filter((s) => s.name.startsWith('realtime_inference') && s.spanContext().traceId === roots[1]!.spanContext().traceId);
      expect(inference.map((s) => s.attributes['rtproxy.response.trigger'])).toEqual(['client']);
    } finally {
      await q.stop();
    }
  });

  it('barge-in during playback interrupts the turn; a cancelled and a failed response are marked', async () => {
    const { c, conn, sessionId } = await session();
    for (const e of appendEvents(speechThenSilence(600, 600), 100)) c.send(e);
    await c.nth('response.done', 1);
    // The answer is generated faster than real time: its playback is still running. Speak again.
    for (const e of appendEvents(speechThenSilence(600, 600), 100)) c.send(e);
    await c.nth('response.done', 2);
    // A client cancel of a running response.
    conn.setBrain(() => ({ text: 'This is a long answer that keeps going for quite a while so that there is time to cancel it.' }));
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'talk' }] } });
    c.send({ type: 'response.create' });
    const deltasBefore = c.ofType('response.output_audio.delta').length;
    await c.nth('response.output_audio.delta', deltasBefore + 1);
    c.send({ type: 'response.cancel' });
    await c.nth('response.done', 3);
    conn.setBrain(() => ({ fail: { code: 'server_error', message: 'simulated failure' } }));
    c.say('anything');
    await c.nth('response.done', 4);
    const spans = await finish(c, sessionId);
    const roots = spans.filter((s) => s.name === 'invoke_agent').sort((a, b) => (a.attributes['rtproxy.turn.number'] as number) - (b.attributes['rtproxy.turn.number'] as number));
    expect(roots.map((r) => r.attributes['gen_ai.agent.invocation.end_reason'])).toEqual(['interrupted', 'completed', 'interrupted', 'failed']);
    expect(roots[0]!.attributes).toMatchObject({ 'rtproxy.turn.interrupted': true, 'rtproxy.turn.interruption_kind': 'playback' });
    expect(roots[2]!.attributes['rtproxy.turn.interruption_kind']).toBe('generation');
    expect(roots[3]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(roots[3]!.attributes['error.type']).toBe('server_error');
    const cancelled = spans.find((s) => s.attributes['rtproxy.response.status'] === 'cancelled')!;
    expect(cancelled.attributes).toMatchObject({ 'gen_ai.response.finish_reasons': ['client_cancelled'], 'rtproxy.response.cancelled_by': 'client' });
    expect(cancelled.kind).toBe(SpanKind.CLIENT);
    expect(traces(spans).size).toBe(4);
  });

  it('log lines written during a turn carry its trace id; no audio, base64 or key reaches the logs', async () => {
    const { c, sessionId } = await session();
    c.say('say:Logging check.');
    await c.next('response.done');
    for (const e of appendEvents(speechThenSilence(500, 500), 100)) c.send(e);
    await c.nth('response.done', 2);
    const spans = await finish(c, sessionId);
    const traceIds = new Set(spans.filter((s) => s.name === 'invoke_agent').map((s) => s.spanContext().traceId));
    expect(traceIds.size).toBe(2);
    const lines = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['session'] === sessionId);
    const turnEnds = lines.filter((l) => l['msg'] === 'turn end');
    expect(turnEnds).toHaveLength(2);
    for (const l of turnEnds) expect(traceIds.has(String(l['trace_id']))).toBe(true);
    for (const l of lines) if (l['trace_id'] !== undefined) expect(traceIds.has(String(l['trace_id']))).toBe(true);
    const text = p.lines.join('\n');
    expect(text).not.toMatch(/[A-Za-z0-9+/]{200,}/);
    expect(text).not.toContain('rpk_test_acme');
    expect(text).not.toContain('sk-simulator-telemetry');
  });
});

describe('content capture (opt-in)', () => {
  it('puts PII-redacted transcripts on spans and the turn line only when enabled', async () => {
    const q = await startTelemetryProxy({ config: { telemetry: { captureContent: { enabled: true }, logTurns: 'info' } } });
    try {
      const c = await q.client();
      await c.next('session.created');
      c.say('say:Mail jane.doe@example.com or call 415 555 0100.');
      await c.next('response.done');
      c.close();
      await c.closed;
      for (let i = 0; i < 100 && !q.spans.getFinishedSpans().some((s) => s.name === 'invoke_agent'); i++) await new Promise((r) => setTimeout(r, 10));
      const root = q.spans.getFinishedSpans().find((s) => s.name === 'invoke_agent')!;
      const inf = q.spans.getFinishedSpans().find((s) => s.name.startsWith('realtime_inference'))!;
      expect(root.attributes['rtproxy.pii.input_transcript']).toBe('say:Mail [email] or call [number].');
      expect(inf.attributes['rtproxy.pii.output_transcript']).toBe('Mail [email] or call [number].');
      expect(JSON.parse(String(inf.attributes['gen_ai.output.messages']))).toEqual([{ role: 'assistant', parts: [{ type: 'text', content: 'Mail [email] or call [number].' }] }]);
      const text = q.lines.join('\n');
      expect(text).toContain('"outputTranscript":"Mail [email] or call [number]."');
      expect(text).not.toContain('jane.doe@example.com');
      expect(text).not.toContain('555 0100');
    } finally {
      await q.stop();
    }
    // Default: no content anywhere.
    const spans = p.spans.getFinishedSpans();
    expect(spans.some((s) => Object.keys(s.attributes).some((k) => k.startsWith('rtproxy.pii.') || k.startsWith('gen_ai.input') || k.startsWith('gen_ai.output.messages')))).toBe(false);
    expect(p.lines.join('\n')).not.toMatch(/"(input|output)Transcript"/);
  });
});
