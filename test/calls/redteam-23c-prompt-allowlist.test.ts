import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCall } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, placeCall, until } from './support.js';

/*
 * Red team 23c: a prompt lock that lists the reusable prompts a client may choose (`allow`) and pins
 * none (`id`): a prompt outside the list has no single right answer, so a WebSocket `session.update`
 * choosing one is refused. On a call the browser chooses it over its data channel and the sideband
 * reads the result. Until this pass the relock had nothing to put back (no pinned prompt) and did not
 * take it out: the browser ran any reusable prompt of the operator's project (another tenant's
 * included: the calls are created with the proxy's key) for the rest of the call.
 */

type Json = Record<string, unknown>;
// The tool_choice lock gives every case a relock to wait for: the browser's update also sets `required`.
const POLICY = 'locks:\n  prompt: { allow: [{ id: pmpt_support }] }\n  toolChoice: { allow: [auto, none] }\n';
const lastSession = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'session.updated').at(-1)?.['session'] as Json | undefined;
const fromSideband = (call: SimCall) => call.received.filter((r) => r.from === 'sideband' && r.type === 'session.update').map((r) => r.event['session'] as Json);

describe('red team 23c: a prompt outside a prompt allowlist, chosen on the data channel', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: { policy: 'prompts' } }, extra: { config: { policies: { dir: policyDir({ 'prompts.yaml': POLICY }), watch: false } } } });
  });
  afterAll(async () => {
    await tp?.stop();
  });

  it('control: on a WebSocket the update is refused (session_locked), nothing upstream', async () => {
    const c = await tp.client({ tenant: 'acme' });
    await c.next('session.created');
    c.send({ type: 'session.update', event_id: 'p1', session: { type: 'realtime', prompt: { id: 'pmpt_other_tenant' } } });
    const refused = await c.waitFor((e) => e.type === 'error');
    expect((refused['error'] as Json)['code']).toBe('session_locked');
    c.close();
  });

  it('on a call the sideband takes it out (prompt: null) and the call goes on', async () => {
    const { call } = await placeCall(tp, 'acme');
    call.sendFromBrowser({ type: 'session.update', session: { type: 'realtime', prompt: { id: 'pmpt_other_tenant' }, tool_choice: 'required' } });
    await until(() => fromSideband(call).length > 0, "the sideband's relock");
    expect(fromSideband(call)).toEqual([{ type: 'realtime', tool_choice: 'auto', prompt: null }]);
    await until(() => lastSession(call)?.['prompt'] === null, 'the prompt taken out');
    expect(call.state).toBe('active');
  });

  it('control: an allowed prompt chosen on the data channel stays', async () => {
    const { call } = await placeCall(tp, 'acme');
    call.sendFromBrowser({ type: 'session.update', session: { type: 'realtime', prompt: { id: 'pmpt_support' }, tool_choice: 'required' } });
    await until(() => fromSideband(call).length > 0, "the sideband's relock");
    expect(fromSideband(call)).toEqual([{ type: 'realtime', tool_choice: 'auto' }]);
    await until(() => lastSession(call)?.['tool_choice'] === 'auto', 'the relock applied');
    expect((lastSession(call)?.['prompt'] as Json)['id']).toBe('pmpt_support');
  });
});
