import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { simSignWebhook } from '../../src/simulator/index.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, post, until, WEBHOOK_SECRET } from './support.js';

/**
 * A SIP webhook redelivered to ANOTHER instance sharing the call store while the first delivery is
 * still handled. Found 2026-12-05: the store knew only "seen", so instance B answered the
 * redelivery "duplicate" (200: OpenAI stopped), A's handling then failed, and the call was never
 * answered. The store now records the id as in progress: B answers 503 `in_progress` (OpenAI
 * retries) until A's outcome is known, and handles the call once A's handling failed.
 */

const to = [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' },
];

/** An OpenAI stand-in whose first accept of each call hangs until released, then fails (a network error). */
let accepts: string[] = [];
const held = new Map<string, () => void>();
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  const m = /\/calls\/([^/]+)\/(accept|reject|hangup)$/.exec(req.url ?? '');
  if (m?.[2] === 'accept') {
    const callId = m[1]!;
    accepts.push(callId);
    if (accepts.filter((c) => c === callId).length === 1) {
      held.set(callId, () => req.socket.destroy());
      return;
    }
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
});
// The proxies' sidebands: a GA session that never says more.
const sidebands = new WebSocketServer({ server, perMessageDeflate: false });
sidebands.on('connection', (ws) => {
  ws.on('error', () => undefined);
  ws.send(JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { type: 'realtime', object: 'realtime.session', id: 'sess_1', model: 'gpt-realtime', output_modalities: ['audio'], instructions: '', tools: [], tool_choice: 'auto', tracing: null, truncation: 'auto', prompt: null, max_output_tokens: 'inf', audio: { input: { transcription: null, turn_detection: null }, output: { voice: 'marin' } } } }));
});

let redis: RedisServer;
let upstreamUrl: string;
const proxies: TestProxy[] = [];
beforeAll(async () => {
  redis = await startRedis();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/realtime`;
});
afterAll(async () => {
  for (const tp of proxies) await tp.stop();
  for (const ws of sidebands.clients) ws.terminate();
  sidebands.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await redis?.stop();
});

async function instance(ledger: Record<string, unknown>): Promise<TestProxy> {
  const tp = await callsProxy({
    tenants: { acme: {} },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] } },
    extra: { config: { upstream: { provider: 'openai', url: upstreamUrl, apiKey: 'sk-test-upstream', allowCallId: true }, metering: { ledger } } },
  });
  proxies.push(tp);
  return tp;
}

/** One signed delivery of the call's `realtime.call.incoming` to `tp` (a redelivery: same id, new timestamp). */
function deliver(tp: TestProxy, webhookId: string, callId: string) {
  const now = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ id: `evt_${webhookId}`, object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: callId, sip_headers: to } });
  const headers = { 'webhook-id': webhookId, 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(WEBHOOK_SECRET, webhookId, now, body) };
  return post(`${tp.httpUrl}${SIP_WEBHOOK_PATH}`, { contentType: 'application/json', body, headers });
}

const ledgers: [string, () => Record<string, unknown>][] = [
  ['one SQLite file', () => ({ path: join(mkdtempSync(join(tmpdir(), 'rp-sip-instances-')), 'ledger.sqlite') })],
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
      await until(() => held.has(callId), 'the first accept, held upstream');

      // A has not succeeded: B must not acknowledge the delivery as handled.
      const during = await deliver(b, webhookId, callId);
      expect([during.status, during.json]).toEqual([503, { status: 'in_progress' }]);
      expect(accepts.filter((c) => c === callId)).toHaveLength(1);

      held.get(callId)!();
      expect((await first).status).toBe(502);
      // A's handling failed: OpenAI's next retry (to B) is handled.
      const retried = await deliver(b, webhookId, callId);
      expect([retried.status, retried.json['status']]).toEqual([200, 'accepted']);
      expect(accepts.filter((c) => c === callId)).toHaveLength(2);
      // Handled now, on both instances: a duplicate, and nothing is accepted a third time.
      expect((await deliver(a, webhookId, callId)).json).toEqual({ status: 'duplicate' });
      expect((await deliver(b, webhookId, callId)).json).toEqual({ status: 'duplicate' });
      expect(accepts.filter((c) => c === callId)).toHaveLength(2);
    });
  }
});
