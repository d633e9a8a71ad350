/**
 * Red team (calls × metering, 19m): two WebRTC calls of a tenant allowed two sessions, placed at
 * once, on the Redis ledger (and calls store).
 *
 * Each offer holds one of the tenant's concurrent-session slots in the ledger from its check; its
 * sideband's admission (`holdsSlot`) was allowed max + 1 and the offer's slot was given back only
 * after the call was bound (a calls-store write) and governed. When both upstream answers come back
 * together, sideband A is admitted (offer A + offer B + sideband A = 3 = 2 + 1) and sideband B asks
 * before A's offer slot is given back: refused, and call B, created upstream, is hung up and its
 * offer answered 429. An honest tenant within its limit loses a call on every burst (no adversary
 * needed; the same on two instances or relay workers). Broken guarantee: a call admitted at its check
 * holds its place until its sideband (that is what the check's slot is for).
 * Now the sideband's admission takes the offer's slot over by its token: nothing to race.
 * (test/metering/redteam-19m-concurrent-calls.test.ts shows the same sequence deterministically.)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, OFFER, until } from './support.js';

/** An OpenAI stand-in that holds every offer until `answerAll` creates them all in one go; its sidebands say session.created. */
async function offersAnsweredTogether() {
  const held: ServerResponse[] = [];
  let created = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    if (req.method === 'POST' && /\/calls$/.test(req.url ?? '')) {
      held.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const sockets = new WebSocketServer({ server, perMessageDeflate: false });
  sockets.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { type: 'realtime', object: 'realtime.session', id: 'sess_1', model: 'gpt-realtime', output_modalities: ['audio'], instructions: '', tools: [], tool_choice: 'auto', tracing: null, truncation: 'auto', prompt: null, max_output_tokens: 'inf', audio: { input: { transcription: null, turn_detection: null }, output: { voice: 'marin' } } } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/realtime`,
    held: () => held.length,
    answerAll: () => {
      for (const res of held.splice(0)) res.writeHead(201, { 'content-type': 'application/sdp', location: `/v1/realtime/calls/rtc_together_${++created}` }).end(OFFER);
    },
    close: async () => {
      for (const ws of sockets.clients) ws.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let redis: RedisServer;
let upstream: Awaited<ReturnType<typeof offersAnsweredTogether>>;
let tp: TestProxy;
beforeAll(async () => {
  redis = await startRedis();
  upstream = await offersAnsweredTogether();
  tp = await callsProxy({
    tenants: { duo: { limits: { maxConcurrentSessions: 2 } } },
    extra: { config: { metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: 'rt19m:', commandTimeoutMs: 2000 } }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
}, 60_000);
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
  await redis?.stop();
});

const offer = (tenant: string): Promise<number> => {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  return fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'POST', headers: { authorization: `Bearer ${tp.key(tenant)}` }, body: form }).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
};

describe('red team 19m: two calls of a tenant allowed two, created upstream together (Redis ledger)', () => {
  it('both are governed; a third is refused at its check', { timeout: 60_000 }, async () => {
    const both = [offer('duo'), offer('duo')];
    await until(() => upstream.held() === 2, 'both offers held upstream', 30_000);
    upstream.answerAll();
    // Measured before the fix: [201, 429] (call B created upstream, then hung up: concurrent_sessions_exceeded).
    expect((await Promise.all(both)).sort()).toEqual([201, 201]);
    expect(tp.logs.filter((l) => l['event'] === 'call_refused')).toEqual([]);
    // The tenant is at its two sessions: a third call is refused before it reaches the upstream.
    expect(await offer('duo')).toBe(429);
    expect(upstream.held()).toBe(0);
  });
});
