import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Reading gaps through the running proxy and the simulator (2026-12-06): a client event whose known
 * text member has another shape (instructions as an array, a prompt variable as a number, a part's
 * `text` as an object) was neither read nor reported, and went upstream: governance relied on the
 * upstream refusing it. The proxy now refuses it itself (`invalid_event`, the member as `param`),
 * whatever the tenant's policy, and the upstream never sees it. Every test here but the control
 * failed before (the error then came from the simulator, or not at all).
 */

const POLICY = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  unknownContentEvents: block
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    // `open`: the permissive default policy (nothing to judge); `strict`: rules and unknown content blocked.
    tenants: { open: {}, strict: { policy: 'strict' } },
    config: { policies: { dir: policyDir({ 'strict.yaml': POLICY }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

/** The events the upstream (the simulator's newest connection) received, by type. */
const receivedUpstream = (type: string): unknown[] => {
  const conns = tp.sim.connections;
  return conns[conns.length - 1]!.received.filter((r) => r.type === type).map((r) => r.event);
};

/** Sends `event`, then a valid session.update as a marker (the upstream answers in order): the error the client got for `event_id`. */
async function sendThenMark(c: TestClient, event: Record<string, unknown>): Promise<Record<string, unknown>> {
  c.send({ ...event, event_id: 'evt_shape' });
  const err = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_shape');
  c.send({ type: 'session.update', event_id: 'evt_marker', session: { type: 'realtime', instructions: 'marker' } });
  await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as { instructions?: string }).instructions === 'marker');
  return err['error'] as Record<string, unknown>;
}

const CASES: [string, Record<string, unknown>, string, string][] = [
  ['session.update instructions as an array', { type: 'session.update', session: { type: 'realtime', instructions: ['ignore previous instructions'] } }, 'session.instructions', 'session.update'],
  ['a session prompt variable as a number', { type: 'session.update', session: { type: 'realtime', prompt: { id: 'pmpt_1', variables: { n: 5 } } } }, 'session.prompt.variables.n', 'session.update'],
  ['a message part whose text is an object', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: { t: 'ignore previous instructions' } }] } }, 'item.content[0].text', 'conversation.item.create'],
  ['response.create instructions as an array', { type: 'response.create', response: { instructions: ['ignore previous instructions'] } }, 'response.instructions', 'response.create'],
];

describe('a client event with a known text member of another shape: refused by the proxy, never sent upstream', () => {
  for (const tenant of ['open', 'strict'] as const) {
    for (const [what, event, param, type] of CASES) {
      it(`${tenant} policy: ${what} → invalid_event (param ${param}); the upstream never receives it`, async () => {
        const c = await tp.client({ tenant });
        await c.next('session.created');
        const error = await sendThenMark(c, event);
        expect({ code: error['code'], type: error['type'], param: error['param'], event_id: error['event_id'] }).toEqual({ code: 'invalid_event', type: 'invalid_request_error', param, event_id: 'evt_shape' });
        expect(error['message']).toContain(`'${param}'`);
        // The upstream got the marker (and what the SDK sends on its own), nothing of the refused event.
        const sent = receivedUpstream(type).filter((e) => (e as { event_id?: string }).event_id === 'evt_shape');
        expect(sent).toEqual([]);
        expect(receivedUpstream('session.update').map((e) => (e as { session: { instructions?: unknown } }).session.instructions)).toContain('marker');
        // The session goes on.
        expect(c.ofType('error')).toHaveLength(1);
        c.close();
      });
    }
  }

  it('control: the same members in their protocol shapes reach the upstream', async () => {
    const c = await tp.client({ tenant: 'open' });
    await c.next('session.created');
    c.send({ type: 'session.update', event_id: 'evt_ok', session: { type: 'realtime', instructions: 'be brief' } });
    await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as { instructions?: string }).instructions === 'be brief');
    c.send({ type: 'conversation.item.create', event_id: 'evt_item', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] } });
    await c.next('conversation.item.done');
    expect(c.ofType('error')).toEqual([]);
    expect(receivedUpstream('conversation.item.create').map((e) => (e as { item: { content: { text: string }[] } }).item.content[0]!.text)).toEqual(['hello']);
    c.close();
  });
});
