import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { launchChromium, type Chromium } from './chromium.js';
import { callsProxy, mint, until } from './support.js';

/**
 * A new user's web page, in a real (headless) Chromium on its own origin: the browser build of
 * `@openai/agents-realtime` (dist/bundle, as a bundler ships it) and its `OpenAIRealtimeWebRTC`
 * transport with `baseUrl` set to the proxy's calls URL and a proxy-minted `ek_`. Its offer carries
 * the SDK's own `X-OpenAI-Agents-SDK` header (a CORS preflight), and it reads the call id from the
 * exposed `Location`. The media path is not established against the simulator, so the page stops at
 * the call id (or the SDK's error).
 */
const BUNDLE_DIR = resolve(import.meta.dirname, '../../node_modules/@openai/agents-realtime/dist/bundle');

let tp: TestProxy;
let chromium: Chromium;
let page: Server;
let pageUrl: string;

beforeAll(async () => {
  tp = await callsProxy();
  chromium = await launchChromium();
  page = createServer((req, res) => {
    const name = /^\/bundle\/([\w.-]+\.mjs)$/.exec(req.url ?? '')?.[1];
    if (!name) return void res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>');
    readFile(resolve(BUNDLE_DIR, name)).then(
      (body) => res.writeHead(200, { 'content-type': 'text/javascript' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((done) => page.listen(0, '127.0.0.1', () => done()));
  pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}/`;
}, 60_000);
afterAll(async () => {
  await chromium?.close();
  await new Promise<void>((done) => (page ? page.close(() => done()) : done()));
  await tp?.stop();
});

interface Outcome {
  callId: string | null;
  error: string | null;
}

/** The page: the SDK transport connects with `secret`; returns the call id it read, or its error. */
function connectScript(secret: string): string {
  return `(async () => {
    const { OpenAIRealtimeWebRTC } = await import('/bundle/openai-realtime-agents.mjs');
    const audio = new AudioContext();
    const mic = audio.createMediaStreamDestination().stream;
    const transport = new OpenAIRealtimeWebRTC({ baseUrl: ${JSON.stringify(`${tp.httpUrl}/v1/realtime/calls`)}, mediaStream: mic, audioElement: document.createElement('audio') });
    let error = null;
    transport.on('error', (e) => { error = error ?? String((e && e.error && e.error.message) || e); });
    transport.connect({ apiKey: ${JSON.stringify(secret)}, model: 'gpt-realtime' }).catch((e) => { error = error ?? String((e && e.message) || e); });
    for (let i = 0; i < 600 && !transport.callId && !error; i++) await new Promise((r) => setTimeout(r, 25));
    const callId = transport.callId ?? null;
    try { transport.close(); } catch {}
    return { callId, error };
  })()`;
}

it('the agents SDK WebRTC transport in a browser gets its call through the proxy (preflight with its own header, Location read)', async () => {
  const secret = await mint(tp, 'acme', { expires_after: { anchor: 'created_at', seconds: 600 }, session: { type: 'realtime', model: 'gpt-realtime' } });
  expect(secret.status).toBe(200);
  const r = await chromium.evaluate<Outcome>(pageUrl, connectScript(secret.json['value'] as string), 30_000);
  expect(r.error).toBeNull();
  expect(r.callId).toMatch(/^rtc_[0-9a-f]+$/);
  const call = tp.sim.calls.calls.get(r.callId!)!;
  expect(call.credential).toBe('sk-simulator-local');
  await until(() => call.sidebands.length >= 1, 'the proxy sideband');
});

it("a refused secret reaches the SDK as the proxy's error, not an opaque network failure", async () => {
  const r = await chromium.evaluate<Outcome>(pageUrl, connectScript('ek_proxy_not-a-secret-this-proxy-minted'), 30_000);
  expect(r.callId).toBeNull();
  expect(r.error).toContain('status 401');
});

interface WsOutcome {
  transcript: string | null;
  notices: string[];
  errors: string[];
}

/**
 * The README's other browser path: the page opens the WebSocket with the minted secret
 * (`OpenAIRealtimeWebSocket`, subprotocol auth). Under the instructions lock the SDK's own
 * session.update is rewritten: the page hears of it as an `rtproxy.notice` transport event, and its
 * turn completes with no error event (a RealtimeSession page without an error listener keeps working).
 */
it('the agents SDK WebSocket transport in a browser with a minted secret: the rewrite is a notice, the turn completes', async () => {
  const secret = await mint(tp, 'acme');
  expect(secret.status).toBe(200);
  const script = `(async () => {
    const { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } = await import('/bundle/openai-realtime-agents.mjs');
    const transport = new OpenAIRealtimeWebSocket({ url: ${JSON.stringify(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`)} });
    const session = new RealtimeSession(new RealtimeAgent({ name: 'assistant', instructions: 'Be brief.' }), { transport, model: 'gpt-realtime' });
    const notices = [];
    const errors = [];
    let transcript = null;
    session.on('transport_event', (e) => {
      if (e.type === 'rtproxy.notice') notices.push(e.notice.code);
      if (e.type === 'error') errors.push(JSON.stringify(e.error));
      if (e.type === 'response.output_audio_transcript.done' || e.type === 'response.output_text.done') transcript = e.transcript ?? e.text ?? null;
    });
    await session.connect({ apiKey: ${JSON.stringify(secret.json['value'])} });
    session.sendMessage('say:hello from the page');
    for (let i = 0; i < 400 && transcript === null; i++) await new Promise((r) => setTimeout(r, 25));
    session.close();
    return { transcript, notices, errors };
  })()`;
  const r = await chromium.evaluate<WsOutcome>(pageUrl, script, 30_000);
  expect(r.errors).toEqual([]);
  expect(r.transcript).toBe('hello from the page');
  expect(r.notices).toContain('session_locked');
});
