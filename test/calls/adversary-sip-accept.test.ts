import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, WEBHOOK_SECRET } from './support.js';

/*
 * Adversary review (2026-12-05): an accept the upstream answers with a server fault (5xx, 429: a
 * failure it may not repeat, which the hang-up path retries) is acknowledged 200 `accept_failed`,
 * so OpenAI never redelivers the webhook and the caller rings until it gives up. An accept that
 * cannot reach OpenAI at all answers 502 and gets its redelivery; a 503 from OpenAI should too.
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: {} }, calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] } } });
});
afterAll(async () => {
  await tp?.stop();
});

describe('adversary: SIP accept refused by a transient upstream fault', () => {
  it('a 503 on accept is not acknowledged as handled: the call is accepted on a retry, or the webhook answered non-2xx so OpenAI redelivers it', async () => {
    tp.sim.calls.failControl(1, 503);
    const { call, status } = await tp.sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: [{ name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' }] });
    expect(call.state === 'active' || status >= 300).toBe(true);
  });
});
