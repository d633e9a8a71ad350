/**
 * Red team (seventeenth pass): WebRTC offers on their way upstream and WebSocket upgrades share
 * `server.maxSessions`.
 *
 * The calls module counts an offer from its check until its sideband starts (`creating`, since the
 * thirteenth session), but only in its own check: the server's upgrade check read the sidebands
 * (`governors.size`) and not the offers in flight. A tenant (or a browser holding one of its
 * secrets) posts offers while the upstream takes its time to answer, and opens WebSocket sessions
 * meanwhile: every upgrade passes, and once the offers are answered their sidebands start too. At
 * `maxSessions: 2`, two offers in flight and two upgrades made four sessions. The guarantee broken:
 * calls and WebSocket sessions count together against `maxSessions` (README, Browser and phone calls).
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
    /** Answers every held offer 500 (the offers end with the upstream's error; nothing is created). */
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
    tenants: { acme: {} },
    extra: { config: { server: { maxSessions: 2 }, logging: { level: 'warn' }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  upstream?.release();
  await tp?.stop();
  await upstream?.close();
});

describe('server.maxSessions counts offers in flight for WebSocket upgrades too', () => {
  it('at maxSessions 2, two offers held upstream: a WebSocket upgrade is refused 503, as a third offer is', async () => {
    const key = (await mint(tp, 'acme')).json['value'] as string;
    const offer = () => post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
    const inFlight = [offer(), offer()];
    await until(() => upstream.held() === 2, 'both offers held upstream');
    const upgrade = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
    const outcome = await Promise.race([upgrade.refused, upgrade.opened.then(() => 101)]);
    upgrade.ws.terminate();
    expect(outcome).toBe(503);
    expect(tp.proxy.server.sessionsOpen).toBe(2);
    expect((await offer()).status).toBe(503);
    upstream.release();
    for (const r of await Promise.all(inFlight)) expect(r.status).not.toBe(201);
    expect(tp.proxy.server.sessionsOpen).toBe(0);
  });
});
