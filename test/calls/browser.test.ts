import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { launchChromium, type Chromium } from './chromium.js';
import { callsProxy, mint, until } from './support.js';

/**
 * A real browser: headless Chromium creates an RTCPeerConnection offer (audio + the oai-events data
 * channel), posts it with a proxy-minted ek_ to the proxy's calls URL (the URL
 * @openai/agents-realtime's WebRTC transport takes as baseUrl) from another origin (CORS), and
 * applies the simulator's SDP answer. The media path itself is not established against the simulator.
 */
let tp: TestProxy;
let chromium: Chromium;
let page: Server;
let pageUrl: string;

beforeAll(async () => {
  tp = await callsProxy();
  chromium = await launchChromium();
  // The app's page, on its own loopback origin.
  page = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>'));
  await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', () => resolve()));
  pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}/`;
}, 60_000);
afterAll(async () => {
  await chromium?.close();
  await new Promise<void>((resolve) => (page ? page.close(() => resolve()) : resolve()));
  await tp?.stop();
});

interface PageResult {
  status: number;
  location: string | null;
  answer: string;
  signalingState: string;
  remoteError: string | null;
  offer: string;
}

it('a browser offer through the proxy gets the simulator answer and a call id bound to the tenant', async () => {
  const secret = await mint(tp, 'acme');
  expect(secret.status).toBe(200);
  const callsUrl = `${tp.httpUrl}/v1/realtime/calls`;
  const script = `(async () => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'sendrecv' });
    pc.createDataChannel('oai-events');
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const res = await fetch(${JSON.stringify(callsUrl)}, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + ${JSON.stringify(secret.json['value'])}, 'Content-Type': 'application/sdp' },
      body: offer.sdp,
    });
    const answer = await res.text();
    let remoteError = null;
    if (res.status === 201) {
      try { await pc.setRemoteDescription({ type: 'answer', sdp: answer }); } catch (e) { remoteError = String(e && e.message || e); }
    }
    const state = pc.signalingState;
    pc.close();
    return { status: res.status, location: res.headers.get('Location'), answer, signalingState: state, remoteError, offer: offer.sdp };
  })()`;
  const r = await chromium.evaluate<PageResult>(pageUrl, script);
  expect(r.status).toBe(201);
  expect(r.remoteError).toBeNull();
  expect(r.signalingState).toBe('stable');
  expect(r.location).toMatch(/^\/v1\/realtime\/calls\/rtc_[0-9a-f]+$/);
  const callId = r.location!.split('/').at(-1)!;
  const call = tp.sim.calls.calls.get(callId)!;
  // The simulator received Chromium's own offer, created with the proxy's key (the browser's ek_ is
  // the proxy's own secret, good nowhere else), and its answer reached the page.
  expect(call.offer).toBe(r.offer);
  expect(call.answer).toBe(r.answer);
  expect(secret.json['value']).toMatch(/^ek_proxy_/);
  expect(call.credential).toBe('sk-simulator-local');
  await until(() => call.sidebands.length === 1, 'the proxy sideband');
  // Bound to acme: another tenant is refused, acme attaches.
  const other = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${callId}`, { headers: { authorization: `Bearer ${tp.key('other')}` } });
  expect(await other.refused).toBe(404);
  const owner = await tp.client({ tenant: 'acme', query: `call_id=${callId}` });
  await owner.next('session.created');
  owner.close();
}, 60_000);
