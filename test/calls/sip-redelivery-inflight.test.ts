import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { deliverIncoming, heldAccepts, type HeldAccepts } from './held-accepts.js';
import { callsProxy, until, WEBHOOK_SECRET } from './support.js';

/**
 * A SIP webhook redelivered while its first delivery is still being handled (OpenAI redelivers a
 * webhook it got no answer to in time). Found 2026-12-05: the redelivery was answered "duplicate"
 * (200, so OpenAI stopped), the first handling then failed (502 to a sender no longer listening),
 * and the call was never answered. The redelivery now waits for the first's outcome and, the first
 * having failed, handles the call itself.
 */

let upstream: HeldAccepts;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await heldAccepts();
  tp = await callsProxy({
    tenants: { acme: {} },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] } },
    extra: { config: { upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

const deliver = (webhookId: string, callId: string) => deliverIncoming(tp.httpUrl, WEBHOOK_SECRET, webhookId, callId);

describe('SIP: a redelivery while the first delivery is handled (found 2026-12-05)', () => {
  it('waits for the first handling; the first failing, the redelivery accepts the call instead of answering "duplicate"', async () => {
    const callId = 'rtc_sip_inflight_1';
    const first = deliver('wh_inflight_1', callId);
    await until(() => upstream.holding(callId), 'the first accept, held upstream');

    const second = deliver('wh_inflight_1', callId);
    // The redelivery is in the proxy's hands: it waits (logged), or (before the fix) it was answered at once.
    const answeredAtOnce = await Promise.race([
      second.then(() => true),
      expect.poll(() => tp.logs.some((l) => l['event'] === 'webhook_redelivery_waits' && l['webhookId'] === 'wh_inflight_1'), { timeout: 5000 }).toBe(true).then(() => false),
    ]);
    expect(answeredAtOnce).toBe(false);

    upstream.fail(callId);
    const failed = await first;
    expect(failed.status).toBe(502);
    const redelivered = await second;
    expect([redelivered.status, redelivered.json['status']]).toEqual([200, 'accepted']);
    expect(upstream.accepts).toEqual([callId, callId]);
    // Handled now: a later redelivery is a duplicate, and nothing is accepted a third time.
    expect((await deliver('wh_inflight_1', callId)).json).toEqual({ status: 'duplicate' });
    expect(upstream.accepts).toHaveLength(2);
  });
});
