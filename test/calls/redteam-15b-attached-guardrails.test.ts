import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient, TestProxy } from '../support/harness.js';
import { callsProxy, placeCall, say, until } from './support.js';

/**
 * Red team (2026-12-06, observability): the guardrails on sockets a tenant attaches to its own
 * governed call (`?call_id=`).
 * Every socket on a call gets every server event, and the policies filter runs on each attached
 * socket as on the proxy's sideband. One output rule tripping (`cancel_response`) is then decided
 * once per socket: with 3 attached sockets, `rtproxy_guardrail_trips_total` counts 4 trips, the
 * call gets 4 `response.cancel`, 4 `output_audio_buffer.clear` and 4 `conversation.item.delete`,
 * and the failed repeats come back to every socket as upstream errors (`response_cancel_not_active`,
 * `item_not_found`: 18 in `rtproxy_errors_total{rtproxy_error_origin="upstream"}` for one trip).
 * An operator sees a guardrail and upstream-error spike for a call where one rule tripped once.
 * Now an attached socket sends no call-wide action upstream (the sideband does, once); each socket
 * still decides for its own stream (its client's text is held back and suppressed). Since 2026-12-07
 * the trip counter counts a trip on the call's upstream events once, on the sideband
 * (test/calls/attached-guardrail-trips.test.ts).
 */

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy();
});
afterAll(async () => {
  await tp?.stop();
});

async function acmeSum(metric: string, filter = ''): Promise<number> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${metric}{`) && line.includes('rtproxy_tenant_id="acme"') && line.includes(filter)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('an output rule that trips on a call is enforced once, however many sockets are attached', () => {
  it('three attached sockets, one forbidden phrase: one cancel, one delete, no upstream error; every socket\'s client told', async () => {
    const { callId, call } = await placeCall(tp, 'acme');
    const sockets: TestClient[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await tp.client({ tenant: 'acme', query: `call_id=${callId}` });
      await c.next('session.created');
      sockets.push(c);
    }
    await until(() => call.sidebands.length === 4, 'the attached sockets');
    say(call, 'say: the forbidden phrase now');
    await Promise.all(sockets.map((c) => c.next('response.done')));
    await until(async () => (await acmeSum('rtproxy_guardrail_trips_total')) >= 1, 'the trip counted');
    await until(() => call.received.filter((r) => r.type === 'response.cancel').length >= 1, 'the cancel');
    // Old code: 4 cancels, 4 clears, 4 deletes, 18 upstream errors.
    expect(call.received.filter((r) => r.type === 'response.cancel')).toHaveLength(1);
    expect(call.received.filter((r) => r.type === 'output_audio_buffer.clear')).toHaveLength(1);
    expect(call.received.filter((r) => r.type === 'conversation.item.delete').length).toBeLessThanOrEqual(1);
    expect(await acmeSum('rtproxy_errors_total', 'rtproxy_error_origin="upstream"')).toBe(0);
    // Each socket still cancelled the response for its own client (its notice).
    for (const c of sockets) expect(c.ofType('rtproxy.notice').map((e) => (e['notice'] as { code: string }).code)).toContain('response_cancelled_by_policy');
    for (const c of sockets) c.close();
  });
});
