import { afterAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { TestProxy } from '../support/harness.js';
import { sharedUpstream } from './instances.js';
import { post, until, WEBHOOK_SECRET } from './support.js';

/**
 * A transfer (`/refer`) is judged by the rule that accepted the call, as the config in force where
 * the refer arrives has it: the call records its rule's identity (tenant, `to`, `header`) in the
 * shared calls store, not a list copied at accept time nor the rule's place in the list. An instance
 * whose rule lists other targets judges by its own list; one where the rule was edited away (another
 * `to`) allows the call no transfer. Instances share the simulator and one SQLite ledger file.
 */

const SIM_KEY = 'sk-sim-refer-instances';
const upstream = sharedUpstream(SIM_KEY, 'rp-refer-instances-');
const started: TestProxy[] = [];
afterAll(async () => {
  for (const tp of started.splice(0).reverse()) await tp.stop();
});

const route = (to: string, allow: readonly string[]) => ({ tenant: 'acme', to, transfer: { allow } });
async function instance(ledger: string, routes: readonly unknown[]): Promise<TestProxy> {
  const tp = await upstream.instance(ledger, { tenants: { acme: {} }, calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes } } });
  started.push(tp);
  return tp;
}

describe('a refer is judged by the call\'s route in the config in force', () => {
  it('another instance judges by its own list for the same rule; a rule edited away allows nothing', async () => {
    const ledger = upstream.ledger('shared');
    // Same rule in A and B with different lists (B's list comes first in the file: its place differs too).
    const a = await instance(ledger, [route('+15551230001', ['tel:+14155550100'])]);
    const b = await instance(ledger, [route('+15559999999', ['tel:+1*']), route('+15551230001', ['tel:+14155550199'])]);
    const edited = await instance(ledger, [route('+15551230002', ['tel:+1*'])]);

    const rang = await upstream.sim.calls.ring({ webhookUrl: `${a.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: [{ name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' }] });
    expect(JSON.parse(rang.body)['status']).toBe('accepted');
    const call = rang.call;
    await until(() => call.sidebands.length >= 1, 'the governing sideband');
    const refer = (tp: TestProxy, target: string) => post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: target }) });

    expect((await refer(a, 'tel:+14155550100')).status).toBe(200);
    expect((await refer(a, 'tel:+14155550199')).status).toBe(403);
    expect((await refer(b, 'tel:+14155550100')).status).toBe(403);
    expect((await refer(b, 'tel:+14155550199')).status).toBe(200);
    // B's first rule (tel:+1*) is another rule: it does not apply to this call.
    expect((await refer(b, 'tel:+12125550100')).status).toBe(403);
    const gone = await refer(edited, 'tel:+14155550100');
    expect([gone.status, (gone.json['error'] as { code: string }).code]).toEqual([403, 'transfer_not_allowed']);
    expect(edited.logs.find((l) => l['event'] === 'call_transfer_refused')).toMatchObject({ reason: 'route_no_longer_configured' });
    expect(call.control.filter((c) => c.action === 'refer').map((c) => [c.body, c.credential])).toEqual([
      [{ target_uri: 'tel:+14155550100' }, SIM_KEY],
      [{ target_uri: 'tel:+14155550199' }, SIM_KEY],
    ]);
  });
});
