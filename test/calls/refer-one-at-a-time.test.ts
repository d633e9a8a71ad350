import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { SimulatorHandle } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxyBehindHop, type CallsProxyBehindHop } from './control-hop.js';
import { post, until, WEBHOOK_SECRET } from './support.js';

/**
 * One transfer at a time per call. A looping agent (or a burst from a compromised app) asked for a
 * call's transfers as fast as it could, and each went upstream as a SIP REFER: nothing bounded them
 * (the red team of transfers, 2026-12-07). Now a refer while another of the same call waits for
 * OpenAI's answer is refused 409 `transfer_in_progress`, and nothing goes upstream; once the answer
 * came, the next may go. The first refer's answer is held by a TCP hop until the test lets it through
 * (no timing).
 */
let sim: SimulatorHandle;
let tp: TestProxy;
let rig: CallsProxyBehindHop;
/** Answers to refers held back, released by `release()`. */
const held: (() => void)[] = [];
let holding = true;
const release = (): void => {
  holding = false;
  for (const go of held.splice(0)) go();
};

beforeAll(async () => {
  // The answer to a refer is held while `holding`.
  rig = await callsProxyBehindHop('sk-simulator-refer-one-at-a-time', (line) => (/^POST \S+\/refer /.test(line) ? (deliver) => (holding ? held.push(deliver) : deliver()) : 'pass'), [
    { tenant: 'acme', to: '+15551230001', transfer: { allow: ['tel:+1415555*'] } },
  ]);
  ({ sim, tp } = rig);
});
afterAll(async () => {
  release();
  await rig?.stop();
});

describe('call transfers, one at a time per call', () => {
  it('a refer while another waits for its answer is refused 409 transfer_in_progress and never reaches OpenAI; after the answer the next goes', async () => {
    const sipHeaders = [{ name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' }];
    const rang = await sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders });
    expect(JSON.parse(rang.body)['status']).toBe('accepted');
    const call = rang.call;
    await until(() => call.sidebands.length >= 1, 'the governing sideband');
    const refer = (target: string) => post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: target }) });
    const refersUpstream = () => call.control.filter((c) => c.action === 'refer').map((c) => (c.body as { target_uri: string }).target_uri);

    const first = refer('tel:+14155550100');
    await until(() => refersUpstream().length === 1 && held.length > 0, 'the first refer upstream, its answer held');
    const burst = await Promise.all(['tel:+14155550101', 'tel:+14155550102', 'tel:+14155550103'].map(refer));
    expect(burst.map((r) => [r.status, (r.json['error'] as { code: string }).code])).toEqual([
      [409, 'transfer_in_progress'],
      [409, 'transfer_in_progress'],
      [409, 'transfer_in_progress'],
    ]);
    expect(refersUpstream()).toEqual(['tel:+14155550100']);
    // The openai SDK retries a 409 by itself: after the first answered, that retry would transfer again.
    expect(burst.map((r) => r.headers.get('x-should-retry'))).toEqual(['false', 'false', 'false']);

    release();
    expect((await first).status).toBe(200);
    const next = await refer('tel:+14155550104');
    expect(next.status).toBe(200);
    expect(refersUpstream()).toEqual(['tel:+14155550100', 'tel:+14155550104']);
  });
});
