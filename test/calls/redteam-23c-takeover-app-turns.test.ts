import { describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { appendEvents, speechThenSilence, TestClient, type TestProxy } from '../support/harness.js';
import { LEASE_SEC, sharedUpstream } from './instances.js';
import { until, WEBHOOK_SECRET, dataChannelCount } from './support.js';

/*
 * Red team 23c: a SIP call's app takes the answering over (turn detection on, `create_response`
 * off: the model answers only the app's own `response.create`, e.g. after the app checked the
 * caller's turn), then the instance governing the call hands it over (a rolling deploy,
 * `calls.onShutdown: handover`) or dies. The instance that takes it over must govern the call as the
 * app left it. Until this pass its sideband sent the route's turn-back-on again (CallRecord.onAttach,
 * "idempotent"): server VAD answered the caller's next turn on its own, behind the app's back.
 */

type Json = Record<string, unknown>;
const SIM_KEY = 'sk-sim-redteam-23c-takeover';
const NUMBER = '+15551230023';
const up = sharedUpstream(SIM_KEY, 'rp-rt23c-takeover-');

const turnDetectionOf = (e: Json) => ((e['session'] as Json)['audio'] as { input: { turn_detection: Json | null } }).input.turn_detection;

describe('red team 23c: a SIP call taken over keeps the app\'s turn detection', () => {
  it('the app turned automatic answers off; after a handover the caller\'s turn gets no answer the app did not ask for', async () => {
    const ledger = up.ledger('handover');
    const sip = { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: NUMBER }] };
    const leaving = await up.instance(ledger, { calls: { onShutdown: 'handover', sip } });
    const started: TestProxy[] = [leaving];
    let app: TestClient | null = null;
    try {
      const staying = await up.instance(ledger, { calls: { sip } });
      started.push(staying);
      const rang = await up.sim.calls.ring({ webhookUrl: `${leaving.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: [{ name: 'To', value: `<sip:${NUMBER}@sip.api.openai.com>` }] });
      expect(JSON.parse(rang.body)['status']).toBe('accepted');
      const call = rang.call;
      // The governing sideband turned the route's responses back on (accepted with them held).
      await until(() => call.dataChannel.some((e) => e['type'] === 'session.updated' && turnDetectionOf(e)?.['create_response'] === true), 'responses turned on by the governing sideband');

      // The app attaches (through the other instance) and answers turns itself from now on.
      app = new TestClient(`ws://127.0.0.1:${staying.port}/v1/realtime?call_id=${call.id}`, { headers: { authorization: `Bearer ${staying.key('acme')}` } });
      await app.opened;
      app.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } } });
      await app.waitFor((e) => e.type === 'session.updated' && turnDetectionOf(e as Json)?.['create_response'] === false, 5000, "the app's update in effect");

      // A rolling deploy: the governing instance leaves, the other takes the call over.
      await leaving.stop();
      started.shift();
      await until(() => staying.logs.some((l) => l['event'] === 'call_reattached' && l['call'] === call.id), 'the call taken over', (LEASE_SEC / 3 + 3) * 1000);
      await until(() => call.sidebands.length === 3, "the taking-over instance's sideband");

      // The caller speaks: the app sees the turn committed and asks for the one answer it wants.
      const createdBefore = dataChannelCount(call, 'response.created');
      for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
      await app.waitFor((e) => e.type === 'input_audio_buffer.committed', 5000, 'the caller\'s turn committed');
      app.send({ type: 'response.create', event_id: 'app_answer' });
      await app.waitFor((e) => e.type === 'response.done', 5000, "the app's answer");
      // Every update sent before this one has been applied when its answer comes (in order).
      app.send({ type: 'session.update', session: { type: 'realtime', instructions: 'probe' } });
      const probe = await app.waitFor((e) => e.type === 'session.updated' && (e['session'] as Json)['instructions'] === 'probe', 5000, 'the probe answered');

      expect(turnDetectionOf(probe as Json)).toMatchObject({ type: 'server_vad', create_response: false });
      // No sideband turned the app's choice back: the proxy's only session.update after the takeover would be one.
      const turnedOn = call.received.filter((r) => r.from === 'sideband' && r.type === 'session.update' && (((r.event['session'] as Json)['audio'] as Json | undefined)?.['input'] as Json | undefined)?.['turn_detection'] !== undefined);
      expect(turnedOn.map((r) => (((r.event['session'] as Json)['audio'] as Json)['input'] as Json)['turn_detection'])).toEqual([
        // The first governing sideband's restore, then the app's own update: nothing after the takeover.
        { type: 'server_vad', create_response: true },
        { type: 'server_vad', create_response: false },
      ]);
      // One answer: the app's. None started by server VAD on its own.
      expect(dataChannelCount(call, 'response.created') - createdBefore).toBe(1);
      expect(app.events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      app?.ws.terminate();
      for (const tp of started.reverse()) await tp.stop();
    }
  }, 40_000);
});
