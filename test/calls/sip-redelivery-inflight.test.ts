import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { simSignWebhook } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, post, until, WEBHOOK_SECRET } from './support.js';

/**
 * A SIP webhook redelivered while its first delivery is still being handled (OpenAI redelivers a
 * webhook it got no answer to in time). Found 2026-12-05: the redelivery was answered "duplicate"
 * (200, so OpenAI stopped), the first handling then failed (502 to a sender no longer listening),
 * and the call was never answered. The redelivery now waits for the first's outcome and, the first
 * having failed, handles the call itself.
 */

const to = [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' },
];

/** An OpenAI stand-in whose first accept hangs until released, then fails (a network error). */
let accepts: { callId: string; res: ServerResponse }[] = [];
let releaseFirst: () => void = () => undefined;
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  const m = /\/calls\/([^/]+)\/(accept|reject|hangup)$/.exec(req.url ?? '');
  if (m?.[2] === 'accept') {
    accepts.push({ callId: m[1]!, res });
    if (accepts.length === 1) {
      releaseFirst = () => req.socket.destroy();
      return;
    }
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
});
// The proxy's sideband: a GA session that never says more.
const sidebands = new WebSocketServer({ server, perMessageDeflate: false });
sidebands.on('connection', (ws) => {
  ws.on('error', () => undefined);
  ws.send(JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { type: 'realtime', object: 'realtime.session', id: 'sess_1', model: 'gpt-realtime', output_modalities: ['audio'], instructions: '', tools: [], tool_choice: 'auto', tracing: null, truncation: 'auto', prompt: null, max_output_tokens: 'inf', audio: { input: { transcription: null, turn_detection: null }, output: { voice: 'marin' } } } }));
});

let tp: TestProxy;
beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/realtime`;
  tp = await callsProxy({
    tenants: { acme: {} },
    calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001' }] } },
    extra: { config: { upstream: { provider: 'openai', url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  await tp?.stop();
  for (const ws of sidebands.clients) ws.terminate();
  sidebands.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** One signed delivery of the call's `realtime.call.incoming` (a redelivery: same id, new timestamp). */
function deliver(webhookId: string, callId: string) {
  const now = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ id: 'evt_inflight', object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: callId, sip_headers: to } });
  const headers = { 'webhook-id': webhookId, 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(WEBHOOK_SECRET, webhookId, now, body) };
  return post(`${tp.httpUrl}${SIP_WEBHOOK_PATH}`, { contentType: 'application/json', body, headers });
}

describe('SIP: a redelivery while the first delivery is handled (found 2026-12-05)', () => {
  it('waits for the first handling; the first failing, the redelivery accepts the call instead of answering "duplicate"', async () => {
    accepts = [];
    const callId = 'rtc_sip_inflight_1';
    const first = deliver('wh_inflight_1', callId);
    await until(() => accepts.length === 1, 'the first accept, held upstream');

    const second = deliver('wh_inflight_1', callId);
    // The redelivery is in the proxy's hands: it waits (logged), or (before the fix) it was answered at once.
    const answeredAtOnce = await Promise.race([
      second.then(() => true),
      expect.poll(() => tp.logs.some((l) => l['event'] === 'webhook_redelivery_waits' && l['webhookId'] === 'wh_inflight_1'), { timeout: 5000 }).toBe(true).then(() => false),
    ]);
    expect(answeredAtOnce).toBe(false);

    releaseFirst();
    const failed = await first;
    expect(failed.status).toBe(502);
    const redelivered = await second;
    expect([redelivered.status, redelivered.json['status']]).toEqual([200, 'accepted']);
    expect(accepts.map((a) => a.callId)).toEqual([callId, callId]);
    // Handled now: a later redelivery is a duplicate, and nothing is accepted a third time.
    expect((await deliver('wh_inflight_1', callId)).json).toEqual({ status: 'duplicate' });
    expect(accepts).toHaveLength(2);
  });
});
