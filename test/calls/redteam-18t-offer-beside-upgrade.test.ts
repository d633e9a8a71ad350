/**
 * Red team 18t (calls × metering): a tenant's WebRTC offer in flight and its WebSocket upgrades.
 *
 * f28aa7d made a tenant's offers in flight count against its `maxConcurrentSessions` in the calls
 * module's own check (holdOffer / `alsoHeld`), but a WebSocket upgrade's admission (metering's
 * `admit`, a ledger slot) does not see them: the offer holds no slot until its sideband starts. A
 * tenant allowed ONE session posts an offer the upstream is slow to answer and opens a WebSocket
 * session meanwhile: both hold a place among `server.maxSessions`, and at `maxSessions: 2` every
 * other tenant is refused `overloaded` for as long as offers are kept in flight (the class
 * test/calls/redteam-18-offers-per-tenant.test.ts closed for two offers). Guarantee broken: a
 * tenant's limits bound what it holds (README, Security).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, mint, OFFER, post, until } from './support.js';

/** An OpenAI stand-in that holds every offer (POST …/calls) until `release`; its sessions say session.created. */
async function heldOffers() {
  const held: ServerResponse[] = [];
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
    /** Answers every held offer 500 (nothing is created). */
    release: () => {
      for (const res of held.splice(0)) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"no"}}');
    },
    close: async () => {
      for (const ws of sockets.clients) ws.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let upstream: Awaited<ReturnType<typeof heldOffers>>;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await heldOffers();
  tp = await callsProxy({
    tenants: { capped: { limits: { maxConcurrentSessions: 1 } }, other: {} },
    extra: { config: { server: { maxSessions: 2 }, logging: { level: 'warn' }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  upstream?.release();
  await tp?.stop();
  await upstream?.close();
});

const upgrade = async (tenant: string): Promise<number> => {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key(tenant)}` } });
  const outcome = await Promise.race([c.refused, c.opened.then(() => 101)]);
  c.ws.terminate();
  return outcome;
};

describe('red team 18t: a tenant allowed one session, an offer in flight and a WebSocket upgrade', () => {
  it("the upgrade is refused 429 while the offer holds the tenant's one session; another tenant still opens", async () => {
    const key = (await mint(tp, 'capped')).json['value'] as string;
    const offer = post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
    await until(() => upstream.held() === 1, 'the offer held upstream');
    const capped = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key('capped')}` } });
    const cappedOutcome = await Promise.race([capped.refused, capped.opened.then(() => 101)]);
    // Another tenant, while the capped one's socket (if it opened) is still open.
    const otherOutcome = await upgrade('other');
    capped.ws.terminate();
    // Old code: [101, 503] (the capped tenant held both places: its offer and its session).
    expect([cappedOutcome, otherOutcome]).toEqual([429, 101]);
    upstream.release();
    await offer;
    await until(() => tp.proxy.server.sessionsOpen === 0, 'every place given back');
  });
});
