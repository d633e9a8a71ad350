import { OpenAIRealtimeSIP, RealtimeAgent, RealtimeSession } from '@openai/agents-realtime';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import type { SimCall } from '../../src/simulator/index.js';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { sharedUpstream } from './instances.js';
import { until, WEBHOOK_SECRET, dataChannelCount } from './support.js';

/**
 * The app's sideband attached through another instance than the one governing the call (the load
 * balancer sent it there), both sharing the calls store (one SQLite file, or one Redis). Until
 * 2026-12-07 the governing instance did not see the app's session.update (the hold was per process):
 * the call's answers stayed held until `notify.waitForAppMs` elapsed. Now the other instance records
 * in the call's record that the app's update took effect, the governing sideband's hold reads it while
 * it waits, and the turn spoken meanwhile is answered once, after the app's update, under the app's
 * turn detection (README, *Moving a phone app*). The wait here is longer than the test's own waits:
 * a call released only at its bound fails them.
 */

type Json = Record<string, unknown>;

const SIM_KEY = 'sk-sim-hold-instances';
const APP_SECRET = `whsec_${Buffer.from('hold-instances-notify-secret-0123456789').toString('base64')}`;
const APP_INSTRUCTIONS = 'You are the Acme phone agent, from the app.';
const NUMBER = '+15551250001';
const SECOND_NUMBER = '+15551250002';
const upstream = sharedUpstream(SIM_KEY, 'rp-hold-instances-');
let redis: RedisServer;
const started: TestProxy[] = [];
const cleanups: Array<() => Promise<void>> = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of cleanups.splice(0)) await c();
  for (const tp of started.splice(0).reverse()) await tp.stop();
  await redis?.stop();
});

const stores: Array<[string, () => string | Record<string, unknown>]> = [
  ['one SQLite file', () => upstream.ledger('shared')],
  ['one Redis', () => ({ kind: 'redis', url: redis.url, keyPrefix: 'hold-instances:', commandTimeoutMs: 2000 })],
];
/** Longer than every wait below: a hold that ends only at its bound fails them. */
const WAIT_FOR_APP_MS = 25_000;

/** The response.create events that reached the call's session upstream (from any socket). */
const creates = (call: SimCall) => call.received.filter((r) => r.type === 'response.create').length;
const appUpdated = (e: Json) => e['type'] === 'session.updated' && (e['session'] as Json)['instructions'] === APP_INSTRUCTIONS;

describe('the app attached through another instance', () => {
  for (const [name, store] of stores) {
    it(`${name}: the governing instance releases the held turn once the app's update took effect there, answered once, under the app's config`, async () => {
      const gated: Array<{ body: string; req: IncomingMessage; res: ServerResponse }> = [];
      const server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => void gated.push({ body: Buffer.concat(chunks).toString('utf8'), req, res }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const sessions: RealtimeSession[] = [];
      cleanups.push(async () => {
        for (const s of sessions) s.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      });
      const notify = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, secret: APP_SECRET, waitForAppMs: WAIT_FOR_APP_MS };
      const ledger = store();
      const calls = { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: NUMBER, notify }] } };
      const governing = await upstream.instance(ledger, { tenants: { acme: {} }, calls });
      started.push(governing);
      const other = await upstream.instance(ledger, { tenants: { acme: {} }, calls });
      started.push(other);

      const rang = await upstream.sim.calls.ring({ webhookUrl: `${governing.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: [{ name: 'To', value: `<sip:${NUMBER}@sip.api.openai.com>` }] });
      expect(JSON.parse(rang.body)['status']).toBe('accepted');
      const call = rang.call;
      await until(() => gated.length === 1, 'the announcement at the app');
      for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
      await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, 'the caller\'s turn committed');
      expect(creates(call)).toBe(0);

      // The app verifies the announcement and attaches, through the other instance.
      const { body, req, res } = gated[0]!;
      const event = await new OpenAI({ apiKey: other.key('acme'), baseURL: `${other.httpUrl}/v1`, webhookSecret: APP_SECRET }).webhooks.unwrap(body, req.headers as Record<string, string>);
      if (event.type !== 'realtime.call.incoming') throw new Error('not an incoming call');
      const session = new RealtimeSession(new RealtimeAgent({ name: 'phone', instructions: APP_INSTRUCTIONS }), { transport: new OpenAIRealtimeSIP(), model: 'gpt-realtime' });
      sessions.push(session);
      await session.connect({ apiKey: other.key('acme'), callId: event.data.call_id, url: `ws://127.0.0.1:${other.port}/v1/realtime?call_id=${event.data.call_id}` });
      res.writeHead(200).end();

      await until(() => dataChannelCount(call, 'response.done') === 1, 'the held turn answered once the app\'s update took effect', 10_000);
      expect(governing.logs.filter((l) => l['event'] === 'call_responses_released' && l['call'] === call.id)).toMatchObject([{ why: 'app_updated', heldTurn: true, responses: 'on' }]);
      // One answer, asked for after the app's update reached the call and took effect.
      expect(creates(call)).toBe(1);
      const appUpdate = call.received.findIndex((r) => r.type === 'session.update' && (r.event['session'] as Json)['instructions'] === APP_INSTRUCTIONS);
      expect(appUpdate).toBeGreaterThanOrEqual(0);
      expect(appUpdate).toBeLessThan(call.received.findIndex((r) => r.type === 'response.create'));
      expect(call.dataChannel.findIndex(appUpdated)).toBeLessThan(call.dataChannel.findIndex((e) => e['type'] === 'response.created'));
      // The app's turn detection (the SDK's semantic_vad, responses on) stands: nothing put the route's back.
      const last = call.dataChannel.filter((e) => e['type'] === 'session.updated').at(-1)!;
      expect(((last['session'] as Json)['audio'] as { input: { turn_detection: Json } }).input.turn_detection).toMatchObject({ type: 'semantic_vad', create_response: true });
      expect(dataChannelCount(call, 'response.created')).toBe(1);
      expect(creates(call)).toBe(1);
    }, 40_000);

    it(`${name}: the app's second update lands within one poll: the governing instance keeps the newer turn detection it read, not the record's older one (found 2026-12-07)`, async () => {
      const server = createServer((req, res) => {
        req.resume();
        req.on('end', () => res.writeHead(200).end());
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      });
      const notify = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, secret: APP_SECRET, waitForAppMs: WAIT_FOR_APP_MS };
      const ledger = store();
      const calls = { sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: SECOND_NUMBER, notify }] } };
      const governing = await upstream.instance(ledger, { tenants: { acme: {} }, calls });
      started.push(governing);
      const other = await upstream.instance(ledger, { tenants: { acme: {} }, calls });
      started.push(other);

      const rang = await upstream.sim.calls.ring({ webhookUrl: `${governing.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: [{ name: 'To', value: `<sip:${SECOND_NUMBER}@sip.api.openai.com>` }] });
      expect(JSON.parse(rang.body)['status']).toBe('accepted');
      const call = rang.call;
      await until(() => call.sidebands.length === 1, 'the governing sideband');
      for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
      await until(() => dataChannelCount(call, 'input_audio_buffer.committed') === 1, 'the caller\'s turn committed');

      // The app, through the other instance: its instructions first (turn detection untouched: the
      // record says so, with the route's held turn detection), then its own turn detection, at once.
      const app = await other.client({ query: `call_id=${call.id}` });
      cleanups.push(async () => app.close());
      await app.waitFor((e) => e.type === 'session.created', 5000, 'session.created');
      app.send({ type: 'session.update', session: { type: 'realtime', instructions: APP_INSTRUCTIONS } });
      app.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad' } } } } });

      await until(() => dataChannelCount(call, 'response.done') === 1, 'the held turn answered once the app\'s update took effect', 10_000);
      expect(governing.logs.filter((l) => l['event'] === 'call_responses_released' && l['call'] === call.id)).toMatchObject([{ why: 'app_updated', heldTurn: true, responses: 'on' }]);
      // Nothing after the app's two updates but the held turn's answer: the route's turn detection was
      // not put back over the app's (until 2026-12-07 the record's older view was, create_response on).
      const firstOfApp = call.received.findIndex((r) => r.type === 'session.update' && (r.event['session'] as Json)['instructions'] === APP_INSTRUCTIONS);
      expect(call.received.slice(firstOfApp).map((r) => r.type)).toEqual(['session.update', 'session.update', 'response.create']);
      const last = call.dataChannel.filter((e) => e['type'] === 'session.updated').at(-1)!;
      expect(((last['session'] as Json)['audio'] as { input: { turn_detection: Json } }).input.turn_detection).toMatchObject({ type: 'semantic_vad', create_response: true });
      expect([dataChannelCount(call, 'response.created'), creates(call)]).toEqual([1, 1]);
    }, 40_000);
  }
});
