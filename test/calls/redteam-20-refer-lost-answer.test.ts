import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { SimulatorHandle } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxyBehindHop, type CallsProxyBehindHop, type ControlHop } from './control-hop.js';
import { post, until, WEBHOOK_SECRET } from './support.js';

/**
 * Red team (20, refer): a transfer whose answer is lost is audited as one that did not happen.
 *
 * The operator's audit of what went out on its trunk is the refer log (`call_transferred`, with the
 * target and the entry that allowed it) and `rtproxy_calls_transfers_total{outcome="transferred"}`.
 * When OpenAI acts on a refer but its answer never reaches the proxy (the connection cut, the request
 * timed out: what a tenant racing a flaky network, or an adversary hoping to hide transfers, gets),
 * the proxy logged `call_transfer_failed` and counted `failed`, as for a refer OpenAI refused: an
 * operator reading the audit for dial-outs (toll fraud, its bill) misses a transfer that happened, and
 * the tenant's retry makes a second one. The accept path already tells "never sent" from "answer
 * lost" (UpstreamHttpError.unsent). Now such a refer is `call_transfer_unconfirmed`, counted
 * `unconfirmed` (until 2026-12-07 failed); one that never left is failed still.
 */
let sim: SimulatorHandle;
let hop: ControlHop;
let tp: TestProxy;
let rig: CallsProxyBehindHop;
let dropped = false;

async function transfers(outcome: string): Promise<number> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
  const line = text.split('\n').find((l) => l.startsWith('rtproxy_calls_transfers_total{') && l.includes(`rtproxy_transfer_outcome="${outcome}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  // The simulator acts on the first refer (it answers only once it has); that answer never arrives.
  rig = await callsProxyBehindHop('sk-simulator-redteam-20-refer-lost', (line) => {
    if (dropped || !/^POST \S+\/refer /.test(line)) return 'pass';
    dropped = true;
    return 'cut';
  }, [{ tenant: 'acme', to: '+15551230001', transfer: { allow: ['tel:+1415555*'] } }]);
  ({ sim, hop, tp } = rig);
});
afterAll(async () => {
  await rig?.stop();
});

describe('a refer whose answer is lost', () => {
  it('is audited as possibly done (call_transfer_unconfirmed, counted unconfirmed), not as failed', async () => {
    const sipHeaders = [{ name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' }];
    const rang = await sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders });
    expect(JSON.parse(rang.body)['status']).toBe('accepted');
    const call = rang.call;
    await until(() => call.sidebands.length >= 1, 'the governing sideband');

    const res = await post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: 'tel:+14155550100' }) });
    expect(res.status).toBe(502);
    // OpenAI did transfer the call: the refer reached it.
    expect(call.control.filter((c) => c.action === 'refer').map((c) => c.body)).toEqual([{ target_uri: 'tel:+14155550100' }]);
    // The audit says so.
    const audit = tp.logs.filter((l) => String(l['event']).startsWith('call_transfer') && l['call'] === call.id);
    expect(audit.map((l) => l['event'])).toEqual(['call_transfer_unconfirmed']);
    expect(audit[0]).toMatchObject({ tenant: 'acme', target: 'tel:+14155550100', allowedBy: 'tel:+1415555*', status: null });
    expect([await transfers('unconfirmed'), await transfers('failed')]).toEqual([1, 0]);

    // A refer that never left (nothing listens where the upstream was) is failed, as before.
    await hop.close();
    const unsent = await post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: 'tel:+14155550101' }) });
    expect(unsent.status).toBe(502);
    expect(tp.logs.filter((l) => String(l['event']).startsWith('call_transfer') && l['call'] === call.id).map((l) => [l['event'], l['target']])).toEqual([
      ['call_transfer_unconfirmed', 'tel:+14155550100'],
      ['call_transfer_failed', 'tel:+14155550101'],
    ]);
    expect([await transfers('unconfirmed'), await transfers('failed')]).toEqual([1, 1]);
  });
});
