import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTelemetryProxy, type TelemetryProxy } from '../telemetry/support/proxy.js';

/**
 * The governance decision shows in the turn's trace: a streamed output phrase that trips the shipped
 * customer-support policy leaves a `gen_ai.guardrail.result` span event naming the policy, rule and
 * action, and the turn's root span carries the action. (Log, metric and report are asserted in
 * content-paths.test.ts.)
 */
let p: TelemetryProxy;

beforeAll(async () => {
  p = await startTelemetryProxy({
    tenants: { acme: { policy: 'customer-support' } },
    config: { policies: { dir: new URL('../../policies', import.meta.url).pathname } },
    simulator: { timing: { firstAudioDelayMs: 5, deltaIntervalMs: 1 } },
  });
});
afterAll(async () => {
  await p?.stop();
});

it('a guardrail cancel is an event on the turn trace with its policy, rule and action', async () => {
  const c = await p.client();
  await c.next('session.created');
  c.say('say:Honestly, you should switch to globex for this.');
  const done = await c.next('response.done');
  expect((done['response'] as { status: string }).status).toBe('cancelled');
  c.close();
  await c.closed;
  let spans = p.spans.getFinishedSpans();
  for (let i = 0; i < 200 && !spans.some((s) => s.name === 'invoke_agent' && s.attributes['rtproxy.guardrail.action']); i++) {
    await new Promise((r) => setTimeout(r, 10));
    spans = p.spans.getFinishedSpans();
  }
  const root = spans.find((s) => s.name === 'invoke_agent' && s.attributes['rtproxy.guardrail.action'] !== undefined);
  expect(root?.attributes['rtproxy.guardrail.action']).toBe('cancel_response');
  const events = spans.flatMap((s) => s.events).filter((e) => e.name === 'gen_ai.guardrail.result');
  expect(events.length).toBeGreaterThan(0);
  expect(events[0]!.attributes).toMatchObject({
    'gen_ai.guardrail.policy.id': 'customer-support',
    'gen_ai.guardrail.result.type': 'cancel_response',
    'gen_ai.guardrail.source': 'output',
    'rtproxy.guardrail.rule.id': 'no-competitor-recommendations',
  });
  // The trace carries ids and decisions, never the matched text.
  expect(JSON.stringify(spans.map((s) => [s.attributes, s.events]))).not.toMatch(/globex/i);
});
