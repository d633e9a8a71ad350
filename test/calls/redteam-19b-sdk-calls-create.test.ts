import OpenAI from 'openai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, OFFER, until } from './support.js';

/**
 * The app server's side of OpenAI's "unified interface": the browser posts its SDP offer to the app,
 * which creates the call with its key and the session config through the `openai` SDK,
 * `client.realtime.calls.create({ sdp, session })`, then attaches its sideband. Pointed at the proxy
 * by its base URL only. The SDK encodes both fields as typed parts with an empty filename
 * (`Content-Type: application/sdp` and `application/json`); a parser that handed them back as
 * files would lose the offer (400) or, worse, the session (the call created under the default
 * config). Held when checked (2026-12-07): kept as the SDK's own shape against regressions.
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: {}, other: {} } });
});
afterAll(async () => {
  await tp?.stop();
});

it("openai's client.realtime.calls.create({ sdp, session }) creates the call with that session", async () => {
  const client = new OpenAI({ apiKey: tp.key('acme'), baseURL: `${tp.httpUrl}/v1` });
  const res = await client.realtime.calls.create({ sdp: OFFER, session: { type: 'realtime', model: 'gpt-realtime', instructions: 'You are the shop agent.' } });
  expect(res.status).toBe(201);
  const callId = res.headers.get('location')!.split('/').at(-1)!;
  const answer = await res.text();
  expect(answer.startsWith('v=0')).toBe(true);
  const call = tp.sim.calls.calls.get(callId)!;
  expect(call.offer).toBe(OFFER);
  expect(call.sessionRequest?.['instructions']).toBe('You are the shop agent.');
  await until(() => call.sidebands.length >= 1, 'the proxy sideband');
});

it('and with the sdp alone (sent as a bare application/sdp body)', async () => {
  const client = new OpenAI({ apiKey: tp.key('acme'), baseURL: `${tp.httpUrl}/v1` });
  const res = await client.realtime.calls.create({ sdp: OFFER });
  expect(res.status).toBe(201);
});
