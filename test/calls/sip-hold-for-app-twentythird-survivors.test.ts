import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { callsProxy, ringAccepted, until, WEBHOOK_SECRET, dataChannelCount, releasedLogs } from './support.js';

/**
 * Written against the mutants of src/calls/index.ts's lines of 1c7f3e4 that survived the hold's
 * socket tests (twenty-third session): the governing sideband's filter wants the upstream's `error`
 * events, and gives the hold the app's update by its event id, so that an update of the app's the
 * upstream refused releases the held turn at once (its choice discarded: nothing of it applied),
 * not at `waitForAppMs`; and it wants `response.created`, so that a held turn answered in the
 * conversation meanwhile is not answered again at the release; the app's choice is read off its
 * update's session. The app here is a plain client socket on the call (`?call_id=`).
 */

type Json = Record<string, unknown>;

const APP_SECRET = `whsec_${Buffer.from('hold-refused-notify-secret-0123456789').toString('base64')}`;
const NUMBER = '+15551260001';
const ANSWERED = '+15551260002';
const LEFT_TO_APP = '+15551260003';
const ROUTE_INSTRUCTIONS = "You are the route's fallback.";

let tp: TestProxy;
/** The calls announced to the app (the id in each announcement's body). */
const announced = new Set<string>();
const appServer = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { call_id?: string } };
    if (body.data?.call_id) announced.add(body.data.call_id);
    res.writeHead(200).end();
  });
});

beforeAll(async () => {
  await new Promise<void>((resolve) => appServer.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(appServer.address() as AddressInfo).port}/hook`;
  tp = await callsProxy({
    tenants: { acme: {} },
    calls: {
      sip: {
        webhookSecret: WEBHOOK_SECRET,
        // Far beyond the test: only the answer to the app's update ends the wait.
        routes: [NUMBER, ANSWERED, LEFT_TO_APP].map((to) => ({ tenant: 'acme', to, session: { instructions: ROUTE_INSTRUCTIONS }, notify: { url, secret: APP_SECRET, waitForAppMs: 60_000 } })),
      },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
  appServer.closeAllConnections();
  await new Promise<void>((resolve) => appServer.close(() => resolve()));
});


describe("the app's first update refused by the upstream (index.ts 193 'error', 247 the update's event id)", () => {
  it('releases the held turn at its error: answered once, under the session as it was (nothing of the update applied)', async () => {
    const call = await ringAccepted(tp, NUMBER, true);
    await until(() => announced.has(call.id), 'the announcement at the app');
    for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
    await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, "the caller's turn committed");
    expect(dataChannelCount(call, 'response.created')).toBe(0);

    const app = await tp.client({ query: `call_id=${call.id}` });
    try {
      await app.waitFor((e) => e.type === 'session.created', 5000, 'session.created');
      // Above the upstream's maximum: refused whole, its instructions with it.
      app.send({ type: 'session.update', event_id: 'evt_app_update', session: { type: 'realtime', instructions: 'The app\'s own.', max_output_tokens: 5000 } });
      const refusal = await app.waitFor((e) => e.type === 'error', 5000, 'the refusal');
      expect((refusal as unknown as { error: Json }).error).toMatchObject({ param: 'session.max_output_tokens', event_id: 'evt_app_update' });

      await until(() => dataChannelCount(call, 'response.done') === 1, 'the held turn answered at the refusal');
      expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', heldTurn: true, responses: 'on' }]);
      const sessions = call.dataChannel.filter((e) => e['type'] === 'session.updated').map((e) => (e['session'] as Json)['instructions']);
      expect(sessions).not.toContain("The app's own.");
      expect(dataChannelCount(call, 'response.created')).toBe(1);
    } finally {
      app.close();
    }
  }, 30_000);
});

describe("a held turn answered in the conversation before the app's update (index.ts 193 'response.created')", () => {
  it('is not answered again at the release', async () => {
    const call = await ringAccepted(tp, ANSWERED, true);
    await until(() => announced.has(call.id), 'the announcement at the app');
    for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
    await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, "the caller's turn committed");
    // The browser asks for the turn's answer itself, in the conversation, while responses are held.
    call.sendFromBrowser({ type: 'response.create' });
    await until(() => dataChannelCount(call, 'response.done') === 1, 'the turn answered');

    const app = await tp.client({ query: `call_id=${call.id}` });
    try {
      await app.waitFor((e) => e.type === 'session.created', 5000, 'session.created');
      app.send({ type: 'session.update', session: { type: 'realtime', instructions: "The app's own." } });
      await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
      expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', heldTurn: false, responses: 'on' }]);
      // Exactly one answer: the caller's next turn is the second, none came in between.
      call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: again' }] } });
      call.sendFromBrowser({ type: 'response.create' });
      await until(() => dataChannelCount(call, 'response.done') === 2, 'the next turn answered');
      expect(dataChannelCount(call, 'response.created')).toBe(2);
    } finally {
      app.close();
    }
  }, 30_000);
});

describe("the app's update turning responses off (index.ts 247 the update's session; 260 nothing held any more)", () => {
  it('leaves the held turn to the app; a later update of the app, nothing held, goes through without a fault', async () => {
    const call = await ringAccepted(tp, LEFT_TO_APP, true);
    await until(() => announced.has(call.id), 'the announcement at the app');
    for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
    await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, "the caller's turn committed");

    const app = await tp.client({ query: `call_id=${call.id}` });
    try {
      await app.waitFor((e) => e.type === 'session.created', 5000, 'session.created');
      app.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } } });
      await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
      // The app starts responses itself: the proxy neither turns them on nor answers the held turn.
      expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', heldTurn: true, responses: 'left_to_app' }]);
      app.send({ type: 'session.update', event_id: 'evt_second', session: { type: 'realtime', instructions: "The app's own." } });
      await app.waitFor((e) => e.type === 'session.updated' && (e['session'] as Json)['instructions'] === "The app's own.", 5000, 'the second update applied');
      expect(call.received.filter((r) => r.type === 'response.create')).toEqual([]);
      expect(tp.logs.filter((l) => Number(l['level']) >= 50)).toEqual([]);
    } finally {
      app.close();
    }
  }, 30_000);
});
