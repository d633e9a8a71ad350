/**
 * Red team (18, redsec): client sockets attached to calls (`?call_id=`) and the tenant's limits.
 *
 * An attached socket holds no concurrent-session slot (the call's sideband meters the call), so
 * AttachedSockets bounds them at 4 per call. But a call's binding outlives the call: it stays in the
 * store until `calls.bindingTtlSec` (2 h) whether the call ended or not, and the attach admission
 * reads only the binding. The adversary holds the key of a tenant allowed ONE concurrent session: it
 * places calls one after the other, hanging each up (one live call at a time, within its limit), then
 * attaches 4 sockets to every ended call while the upstream is slow to accept WebSockets (each dial
 * holds its place among `server.maxSessions` until `upstream.connectTimeoutMs`; a refusal of the
 * dead call comes only then). 2 ended calls × 4 sockets fill maxSessions 6 and every other tenant
 * is refused `overloaded`. The guarantee broken: an authenticated tenant is hostile to the others;
 * what it holds is bounded by its own limits (README Security; attached-sockets.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, OFFER, post, until } from './support.js';

const SESSION_CREATED = JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { type: 'realtime', object: 'realtime.session', id: 'sess_1', model: 'gpt-realtime', output_modalities: ['audio'], instructions: '', tools: [], tool_choice: 'auto', tracing: null, truncation: 'auto', prompt: null, max_output_tokens: 'inf', audio: { input: { transcription: null, turn_detection: null }, output: { voice: 'marin' } } } });

/**
 * An OpenAI stand-in: creates calls, hangs them up (closing their sideband 1000), accepts the first
 * WebSocket of each call (the proxy's sideband) and leaves every later one unanswered (slow to accept).
 */
async function slowAttachUpstream() {
  let created = 0;
  const sidebands = new Map<string, WebSocket>();
  const unanswered: Socket[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const hangup = /\/calls\/([^/]+)\/hangup$/.exec(req.url ?? '');
    if (req.method === 'POST' && hangup) {
      sidebands.get(hangup[1]!)?.close(1000);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    if (req.method === 'POST' && /\/calls$/.test(req.url ?? '')) {
      const id = `rtc_${++created}`;
      res.writeHead(201, { 'content-type': 'application/sdp', location: `/v1/realtime/calls/${id}` }).end('v=0\r\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const callId = new URL(req.url ?? '/', 'http://x').searchParams.get('call_id') ?? '';
    if (sidebands.has(callId)) {
      unanswered.push(socket);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sidebands.set(callId, ws);
      ws.on('error', () => undefined);
      ws.send(SESSION_CREATED);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/realtime`,
    unanswered: () => unanswered.length,
    close: async () => {
      for (const s of unanswered) s.destroy();
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let upstream: Awaited<ReturnType<typeof slowAttachUpstream>>;
let tp: TestProxy;
const clients: TestClient[] = [];
beforeAll(async () => {
  upstream = await slowAttachUpstream();
  tp = await callsProxy({
    tenants: { capped: { limits: { maxConcurrentSessions: 1 } }, other: {} },
    extra: { config: { server: { maxSessions: 6 }, logging: { level: 'warn' }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true, connectTimeoutMs: 60_000 } } },
  });
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await tp?.stop();
  await upstream?.close();
});

/** Places a call with the tenant key (multipart: sdp + session) and hangs it up; its binding stays. */
async function placeAndHangUp(): Promise<string> {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  const created = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: tp.key('capped'), body: form });
  expect(created.status).toBe(201);
  const callId = created.headers.get('location')!.split('/').at(-1)!;
  expect((await post(`${tp.httpUrl}/v1/realtime/calls/${callId}/hangup`, { key: tp.key('capped') })).status).toBeLessThan(300);
  await until(() => tp.proxy.server.sessionsOpen === 0, 'the call ended and its sideband closed');
  return callId;
}

/** Opens a WebSocket to the proxy: 101 (its upstream dial then waits) or the refusal's status. */
async function open(query: string, tenant: string): Promise<number> {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?${query}`, { headers: { authorization: `Bearer ${tp.key(tenant)}` } });
  clients.push(c);
  return Promise.race([c.refused, c.opened.then(() => 101)]);
}

describe('red team 18: sockets attached to ended calls', () => {
  it('a tenant allowed one session holds at most 4 places with attaches to its ended calls; another tenant still opens', async () => {
    const ended = [await placeAndHangUp(), await placeAndHangUp()];
    const outcomes: number[] = [];
    for (const callId of ended) for (let i = 0; i < 4; i++) outcomes.push(await open(`call_id=${callId}`, 'capped'));
    // What the capped tenant holds: at most the 4 sockets one call of its one allowed session may have.
    expect(outcomes.filter((s) => s === 101).length).toBeLessThanOrEqual(4);
    expect(await open('model=gpt-realtime', 'other')).toBe(101);
  });
});
