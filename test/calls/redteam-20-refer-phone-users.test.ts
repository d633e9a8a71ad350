import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCall } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, ringAccepted, post, until, WEBHOOK_SECRET } from './support.js';

/**
 * Red team (20, refer): a block of phone numbers written as SIP users at the operator's PSTN gateway.
 *
 * An operator whose trunk is reached by SIP lists a number block as `sip:+1415555*@trunk.example.com`
 * (the `sip:<prefix>*@host` form). The `tel:` form of the same block is judged as a number: digits
 * only, at most 15 (E.164), so nothing rides after the number. The SIP form took any user starting
 * with the prefix: the adversary (a tenant, or a prompt-injected agent driving its app) transfers to
 * `sip:+14155550100,,,011442079460000@trunk…` (pauses then post-dial digits, what gateways and PBXs
 * dial as DTMF once the allowed number answers: a DISA or an "outside line" on it dials abroad), or
 * past E.164 (`+1415555` then 20 more digits: what a gateway does with the surplus is its own), or
 * with pause/wait letters. The guarantee broken (README Browser and phone calls): a transfer reaches
 * only what the route lists, and a number longer than 15 digits is refused. A phone-number prefix now
 * admits only a phone number: `+` and digits, at most 15 (until 2026-12-07 any user starting so).
 */

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({
    tenants: { acme: {} },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001', transfer: { allow: ['sip:+1415555*@trunk.example.com', 'sip:desk-*@trunk.example.com', 'sip:2*@pbx.example.com'] } }] } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

const ring = (): Promise<SimCall> => ringAccepted(tp, '+15551230001', true);
const refer = (callId: string, target: string) => post(`${tp.httpUrl}/v1/realtime/calls/${callId}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: target }) });

describe('a phone-number block written as SIP users is judged as numbers', () => {
  it('post-dial pauses, letters and digits past E.164 after an allowed prefix are refused; nothing upstream', async () => {
    const call = await ring();
    for (const target of [
      'sip:+14155550100,,,011442079460000@trunk.example.com',
      'sip:+14155550100pp9011442079460000@trunk.example.com',
      'sip:+14155550100ww9@trunk.example.com',
      `sip:+1415555${'0'.repeat(20)}@trunk.example.com`,
      'sip:+1415555$0100@trunk.example.com',
      'sip:2000,9@pbx.example.com',
    ]) {
      const res = await refer(call.id, target);
      expect([res.status, (res.json['error'] as { code?: string } | undefined)?.code], target).toEqual([403, 'transfer_not_allowed']);
    }
    expect(call.control.filter((c) => c.action === 'refer')).toEqual([]);
  });

  it('a number in the block, an extension, and a non-numeric prefix still pass as before', async () => {
    const call = await ring();
    for (const target of ['sip:+14155550100@trunk.example.com', 'sip:+141555501234567@trunk.example.com', 'sip:2001@pbx.example.com', 'sip:desk-7,b@trunk.example.com']) {
      expect((await refer(call.id, target)).status, target).toBe(200);
    }
    expect(call.control.filter((c) => c.action === 'refer').map((c) => c.body)).toEqual([
      { target_uri: 'sip:+14155550100@trunk.example.com' },
      { target_uri: 'sip:+141555501234567@trunk.example.com' },
      { target_uri: 'sip:2001@pbx.example.com' },
      { target_uri: 'sip:desk-7,b@trunk.example.com' },
    ]);
  });
});
