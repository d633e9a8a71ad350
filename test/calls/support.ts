import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { WebSocketServer } from 'ws';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { SimCall } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import { TestClient } from '../support/client.js';
import { startTestProxy, type TestProxy, type TestTenantInput } from '../support/harness.js';

/** An SDP offer as Chromium writes it for one audio track and the `oai-events` data channel. */
export const OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0 1',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8',
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
  'a=setup:actpass',
  'a=mid:1',
  'a=sctp-port:5000',
  'a=max-message-size:262144',
  '',
].join('\r\n');

export const LOCKED_POLICY = `
locks:
  instructions: { locked: "You are the Acme phone agent." }
  model: { allow: [gpt-realtime], aliases: { gpt-realtime-mini: gpt-realtime } }
  tools:
    functions: [lookup_order]
    onViolation: rewrite
guardrails:
  rules:
    - { id: forbidden, sources: [output], match: { phrases: ["forbidden phrase"] }, action: cancel_response }
    - { id: bye, sources: [output], match: { phrases: ["self destruct"] }, action: end_session }
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
`;

export const WEBHOOK_SECRET = `whsec_${Buffer.from('calls-test-webhook-secret-0123456789').toString('base64')}`;

export async function callsProxy(options: { tenants?: Record<string, TestTenantInput>; calls?: Record<string, unknown>; extra?: Parameters<typeof startTestProxy>[0] } = {}): Promise<TestProxy> {
  return startTestProxy({
    tenants: options.tenants ?? { acme: { policy: 'locked' }, other: {} },
    ...options.extra,
    config: {
      policies: { dir: policyDir({ 'locked.yaml': LOCKED_POLICY }), watch: false },
      upstream: { allowCallId: true },
      calls: { enabled: true, sip: { webhookSecret: WEBHOOK_SECRET, routes: [] }, ...options.calls },
      ...options.extra?.config,
    },
  });
}

/** The browser-item redaction tests' policy: an input `redact` rule on email addresses (as `pii-safe`'s `pii-in-text`). */
export const EMAIL_REDACT_POLICY = `
guardrails:
  rules:
    - { id: pii-in-text, sources: [input, tool_output], match: { pii: [email] }, action: redact }
`;

/** A calls proxy whose tenant `acme` runs EMAIL_REDACT_POLICY (policy `pii`); `config`: more of the proxy's config. */
export function emailRedactingCallsProxy(config: Record<string, unknown> = {}): Promise<TestProxy> {
  return callsProxy({ tenants: { acme: { policy: 'pii' } }, extra: { config: { policies: { dir: policyDir({ 'pii.yaml': EMAIL_REDACT_POLICY }), watch: false }, ...config } } });
}

/** A calls proxy with one SIP `notify` route holding its calls' answers for the app (see holdingRouteProxy). */
export interface HoldingRoute {
  readonly tp: TestProxy;
  /** The paths the route's announcements were delivered to, in order. */
  readonly announced: string[];
  /** App sockets a test opened: terminated by `stop`. */
  readonly apps: TestClient[];
  stop(): Promise<void>;
}

/**
 * Tenant `acme`'s SIP route for `number`, transcribing, announcing each call to a local app that
 * answers 200, its answers held until the app's first session.update took effect (the wait far
 * beyond any test: only the app's update ends it). `transcribe`: what the simulator hears in each turn.
 */
export async function holdingRouteProxy(number: string, transcribe: () => string): Promise<HoldingRoute> {
  const announced: string[] = [];
  const apps: TestClient[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      announced.push(req.url ?? '');
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const secret = `whsec_${Buffer.from(`holding-route-notify-secret-${number}`).toString('base64')}`;
  const tp = await callsProxy({
    calls: {
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        routes: [
          {
            tenant: 'acme',
            to: number,
            session: { audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } },
            notify: { url, secret, waitForAppMs: 60_000 },
          },
        ],
      },
    },
    extra: { simulator: { transcribe } },
  });
  return {
    tp,
    announced,
    apps,
    async stop() {
      for (const app of apps) app.ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await tp.stop();
    },
  };
}

export async function post(url: string, init: { key?: string; contentType?: string; body?: string | FormData; headers?: Record<string, string> }): Promise<{ status: number; text: string; headers: Headers; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key) headers['authorization'] = `Bearer ${init.key}`;
  if (init.contentType) headers['content-type'] = init.contentType;
  const res = await fetch(url, { method: 'POST', headers, ...(init.body !== undefined ? { body: init.body } : {}) });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // SDP or empty
  }
  return { status: res.status, text, headers: res.headers, json };
}

export async function mint(tp: TestProxy, tenant = 'acme', body: Record<string, unknown> = { session: { type: 'realtime', model: 'gpt-realtime' } }) {
  return post(`${tp.httpUrl}/v1/realtime/client_secrets`, { key: tp.key(tenant), contentType: 'application/json', body: JSON.stringify(body) });
}

/** Mints a secret for `tenant` and places a WebRTC call with it; returns the simulator's call. */
export async function placeCall(tp: TestProxy, tenant = 'acme', session: Record<string, unknown> = { type: 'realtime', model: 'gpt-realtime' }): Promise<{ callId: string; call: SimCall; answer: string }> {
  const secret = await mint(tp, tenant, { session });
  if (secret.status !== 200) throw new Error(`mint: ${secret.status} ${secret.text}`);
  const res = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: secret.json['value'] as string, contentType: 'application/sdp', body: OFFER });
  if (res.status !== 201) throw new Error(`calls: ${res.status} ${res.text}`);
  const callId = res.headers.get('location')!.split('/').at(-1)!;
  const call = tp.sim.calls.calls.get(callId)!;
  await until(() => call.sidebands.length >= 1, 'the proxy sideband attached');
  return { callId, call, answer: res.text };
}

/**
 * Creates a call with a secret the proxy minted and returns it as the upstream saw it: the
 * credential it was created with and the session config (what a minted secret stands for).
 */
export async function callWithSecret(tp: TestProxy, secret: string): Promise<SimCall> {
  const res = await post(`${tp.httpUrl}/v1/realtime/calls`, { key: secret, contentType: 'application/sdp', body: OFFER });
  if (res.status !== 201) throw new Error(`calls: ${res.status} ${res.text}`);
  return tp.sim.calls.calls.get(res.headers.get('location')!.split('/').at(-1)!)!;
}

/** Waits for a condition (bounded). */
/** The SIP headers OpenAI sends for a caller dialling `number` (the `To` the proxy's routes read). */
export const sipHeadersTo = (number: string) => [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: `<sip:${number}@sip.api.openai.com>` },
];

/**
 * Rings `number` through the simulator (OpenAI's signed `realtime.call.incoming` to the proxy's SIP
 * webhook) and expects the proxy to accept it; `governed`: then waits for its governing sideband.
 */
export async function ringAccepted(tp: TestProxy, number: string, governed = false): Promise<SimCall> {
  const { call, status, body } = await tp.sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: sipHeadersTo(number) });
  expect([status, JSON.parse(body)['status']]).toEqual([200, 'accepted']);
  if (governed) await until(() => call.sidebands.length >= 1, 'the governing sideband');
  return call;
}

export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const types = (call: SimCall) => call.dataChannel.map((e) => e['type'] as string);
/** Client events the call's session received (from the sidebands and the data channel), by type. */
export const receivedTypes = (call: SimCall) => call.received.map((r) => r.type);

export function say(call: SimCall, text: string): void {
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  call.sendFromBrowser({ type: 'response.create' });
}

/** An OpenAI stand-in that holds every offer (POST …/calls) until `release` (refused) or `answerAll` (created); its sessions say session.created. */
export async function heldOffers() {
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
    /** Answers every held offer 500 (the offers end with the upstream's error; nothing is created). */
    release: () => {
      for (const res of held.splice(0)) res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"no"}}');
    },
    /** Creates every held call in one go (201 with its Location): their sidebands start together. */
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

/** How many events of `type` a simulated call's data channel carried (what the browser side saw). */
export function dataChannelCount(call: SimCall, type: string): number {
  return call.dataChannel.filter((e) => e['type'] === type).length;
}

/** The `call_responses_released` log lines of `callId`: a held call's responses turned back on (or left to the app). */
export function releasedLogs(tp: TestProxy, callId: string): Record<string, unknown>[] {
  return tp.logs.filter((l) => l['event'] === 'call_responses_released' && l['call'] === callId);
}
