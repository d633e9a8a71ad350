import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import type { TestProxy } from '../support/harness.js';
import { deliverIncoming, heldAccepts, type HeldAccepts } from './held-accepts.js';
import { callsProxy, until, WEBHOOK_SECRET } from './support.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * A SIP webhook redelivered to ANOTHER instance sharing the call store while the first delivery is
 * still handled. Found 2026-12-05: the store knew only "seen", so instance B answered the
 * redelivery "duplicate" (200: OpenAI stopped), A's handling then failed, and the call was never
 * answered. The store now records the id as in progress: B answers 503 `in_progress` (OpenAI
 * retries) until A's outcome is known, and handles the call once A's handling failed.
 */

let upstream: HeldAccepts;
let redis: RedisServer;
const proxies: TestProxy[] = [];
beforeAll(async () => {
  redis = await startRedis();
  upstream = await heldAccepts();
});
afterAll(async () => {
  for (const tp of proxies) await tp.stop();
  await upstream?.close();
  await redis?.stop();
});

async function instance(ledger: Record<string, unknown>): Promise<TestProxy> {
  const tp = await callsProxy({
    tenants: { acme: {} },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] } },
    extra: { config: { upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true }, metering: { ledger } } },
  });
  proxies.push(tp);
  return tp;
}

const deliver = (tp: TestProxy, webhookId: string, callId: string) => deliverIncoming(tp.httpUrl, WEBHOOK_SECRET, webhookId, callId);

const ledgers: [string, () => Record<string, unknown>][] = [
  ['one SQLite file', () => ({ path: join(tempDir('rp-sip-instances-'), 'ledger.sqlite') })],
  ['one Redis', () => ({ kind: 'redis', url: redis.url, keyPrefix: 'sip-instances:', commandTimeoutMs: 2000 })],
];

describe('SIP: a redelivery to another instance while the first delivery is handled (found 2026-12-05)', () => {
  for (const [name, ledger] of ledgers) {
    it(`${name}: B answers 503 in_progress (retried), never "duplicate", while A handles it; once A failed, B accepts the call`, async () => {
      const shared = ledger();
      const a = await instance(shared);
      const b = await instance(shared);
      const callId = `rtc_sip_instances_${name.replace(/\W/g, '_')}`;
      const webhookId = `wh_${callId}`;
      const first = deliver(a, webhookId, callId);
      await until(() => upstream.holding(callId), 'the first accept, held upstream');

      // A has not succeeded: B must not acknowledge the delivery as handled.
      const during = await deliver(b, webhookId, callId);
      expect([during.status, during.json]).toEqual([503, { status: 'in_progress' }]);
      expect(upstream.accepts.filter((c) => c === callId)).toHaveLength(1);

      upstream.fail(callId);
      expect((await first).status).toBe(502);
      // A's handling failed: OpenAI's next retry (to B) is handled.
      const retried = await deliver(b, webhookId, callId);
      expect([retried.status, retried.json['status']]).toEqual([200, 'accepted']);
      expect(upstream.accepts.filter((c) => c === callId)).toHaveLength(2);
      // Handled now, on both instances: a duplicate, and nothing is accepted a third time.
      expect((await deliver(a, webhookId, callId)).json).toEqual({ status: 'duplicate' });
      expect((await deliver(b, webhookId, callId)).json).toEqual({ status: 'duplicate' });
      expect(upstream.accepts.filter((c) => c === callId)).toHaveLength(2);
    });
  }
});
