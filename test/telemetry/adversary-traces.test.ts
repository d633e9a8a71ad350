import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Adversarial review of the trace shape (2026-12-06), through the real proxy (loopback, the
 * simulator upstream, spans in memory): one trace per turn, and a turn's end reason tells what
 * happened to it. `timeout` (error.type timeout, status error) is documented for a turn open
 * longer than `telemetry.turns.maxTurnMs` (120 s); the tracker also closes the oldest of more than
 * 32 open turns "as at its cap". A turn whose response completed and that only waits for the
 * estimated end of its audio playback is done: the session's end counts it `completed`
 * (TurnTracker.close), and so must that eviction.
 */

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({ tenants: { acme: {} }, simulator: { timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } } });
});
afterAll(async () => {
  await p?.stop();
});

async function sessionSpans(sessionId: string): Promise<ReadableSpan[]> {
  for (let i = 0; i < 500; i++) {
    const all = p.spans.getFinishedSpans();
    const traceIds = new Set(all.filter((s) => s.attributes['rtproxy.session.id'] === sessionId).map((s) => s.spanContext().traceId));
    const spans = all.filter((s) => traceIds.has(s.spanContext().traceId));
    if (p.lines.some((l) => l.includes('"session end"') && l.includes(sessionId))) return spans;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('session did not end');
}

describe('out-of-band responses: every completed one is a completed turn', () => {
  it('40 out-of-band responses, each done with audio: no turn ends as timeout (nothing ran for 120 s), one root per turn', async () => {
    const c = await p.client('acme');
    const created = await c.next('session.created');
    expect(created['type']).toBe('session.created');
    const starts = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'session start');
    const sessionId = String(starts[starts.length - 1]!['session']);
    // Out-of-band requests (classification, a side answer) run beside the conversation.
    // Each speaks ~6.5 s of audio (65 ms a character): the 40 are done long before the first one's playback would end.
    const text = `say:${'a side answer that takes a while to play. '.repeat(2)}`;
    for (let i = 0; i < 40; i++) {
      c.send({ type: 'response.create', response: { conversation: 'none', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: `${text}${i}` }] }] } });
    }
    const done = await c.nth('response.done', 40, 20_000);
    expect((done['response'] as { status?: string }).status).toBe('completed');
    const statuses = c.ofType('response.done').map((e) => (e['response'] as { status?: string }).status);
    expect(statuses.filter((s) => s === 'completed').length).toBe(40);
    const audio = c.ofType('response.output_audio.delta').length;
    expect(audio).toBeGreaterThan(0);
    c.close();
    await c.closed;
    const spans = await sessionSpans(sessionId);
    const roots = spans.filter((s) => s.name.startsWith('invoke_agent'));
    expect(roots.length).toBe(40);
    expect(new Set(roots.map((s) => s.spanContext().traceId)).size).toBe(40);
    const reasons: Record<string, number> = {};
    for (const r of roots) {
      const k = String(r.attributes['gen_ai.agent.invocation.end_reason']);
      reasons[k] = (reasons[k] ?? 0) + 1;
    }
    expect(reasons).toEqual({ completed: 40 });
    expect(roots.filter((r) => r.attributes['error.type'] !== undefined).map((r) => r.attributes['error.type'])).toEqual([]);
    const metrics = await (await fetch(`${p.adminUrl}/metrics`)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('rtproxy_turns_total{') && l.includes('end_reason="timeout"'))).toEqual([]);
  }, 60_000);
});
