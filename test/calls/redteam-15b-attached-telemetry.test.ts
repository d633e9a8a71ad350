import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient, TestProxy } from '../support/harness.js';
import { callsProxy, placeCall, say, until } from './support.js';

/**
 * Red team (2026-12-06, observability): sockets a tenant attaches to its own governed call
 * (`?call_id=`, up to MAX_CLIENT_SOCKETS_PER_CALL) and the metrics. Every socket on a call receives
 * every server event of the call, `response.done` with its usage included. Metering bills a call
 * once, on the proxy's sideband (attached sockets are unmetered), but the telemetry filter ran on
 * every attached socket as on a session of its own: each response of the call was counted once more
 * per attached socket in `gen_ai_client_operation_duration`, `gen_ai_client_token_usage`,
 * `rtproxy_usage_tokens_total`, `rtproxy_turns_total` and the latency histograms, while
 * `rtproxy_usage_cost_total` counted it once. The usual server-side app (one socket on the call)
 * doubles the tenant's tokens and turns; a tenant attaching its 8 sockets multiplies them by 9, and
 * an operator reading tokens per dollar, or turns per call, acts on figures that are not true.
 */

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { other: {} } });
});
afterAll(async () => {
  await tp?.stop();
});

/** The sum of a metric's samples for tenant `other` (a counter, or a histogram's _count). */
async function total(metric: string): Promise<number> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${metric}{`) && line.includes('rtproxy_tenant_id="other"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('a call\'s responses are counted once in the metrics, however many sockets the tenant attaches', () => {
  it('three sockets attached to one call, one response: one operation, its tokens once', async () => {
    const { callId, call } = await placeCall(tp, 'other');
    const sockets: TestClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await tp.client({ tenant: 'other', query: `call_id=${callId}` });
      await c.next('session.created');
      sockets.push(c);
    }
    await until(() => call.sidebands.length === 4, 'the attached sockets');
    say(call, 'say: counted once');
    // Every attached socket has the response.done (its session's filters saw it before it was sent).
    const done = await Promise.all(sockets.map((c) => c.next('response.done')));
    const usage = (done[0]!['response'] as { usage: { total_tokens: number } }).usage;
    // The proxy's sideband counts it too (the call's one metered session).
    await until(async () => (await total('rtproxy_usage_cost_total')) > 0, 'the sideband billed the response');
    await until(async () => (await total('gen_ai_client_operation_duration_count')) >= 1, 'the response counted');
    expect(await total('gen_ai_client_operation_duration_count')).toBe(1);
    expect(await total('rtproxy_usage_tokens_total')).toBe(usage.total_tokens);
    for (const c of sockets) c.close();
  });
});
