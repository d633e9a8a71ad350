import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { holdingRouteProxy, ringAccepted, until, type HoldingRoute, dataChannelCount, releasedLogs } from './support.js';

/**
 * A SIP call on a `notify` route holds its answers for the tenant's app (ResponsesHold). The caller
 * speaks into the wait (a turn that stands). The app attaches and, before its session.update, runs
 * an out-of-band response (`conversation: 'none'`: a classifier of the call, a summary; the
 * Realtime guide's pattern), which reads nothing of the conversation and adds nothing to it. Its
 * `response.created` on the governing sideband counted as the held turn's answer: the hold's owed set
 * was cleared, and once the app's update took effect nothing answered the caller (`heldTurn: false`),
 * who waited in silence for a second turn. Guarantee broken: "a caller who spoke into the wait is
 * answered once". An out-of-band response now leaves the held turn owed.
 */

const NUMBER = '+15551250021';

let route: HoldingRoute;
let tp: TestProxy;

beforeAll(async () => {
  route = await holdingRouteProxy(NUMBER, () => 'what time do you open tomorrow');
  tp = route.tp;
});
afterAll(async () => {
  await route?.stop();
});


describe('a held SIP turn and an out-of-band response of the app', () => {
  it('the app\'s out-of-band response is not the held turn\'s answer: the turn is answered once the hold ends', async () => {
    const call = await ringAccepted(tp, NUMBER, true);
    await until(() => route.announced.length === 1, 'the announcement delivered');
    for (const ev of appendEvents(speechThenSilence(600, 900))) call.sendFromBrowser(ev);
    await until(() => dataChannelCount(call, 'conversation.item.input_audio_transcription.completed') === 1, 'the caller\'s turn transcribed');
    expect(dataChannelCount(call, 'response.created')).toBe(0);

    const app = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${call.id}`, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
    route.apps.push(app);
    await app.next('session.created', 5000);
    // Out of band: reads only its own input, writes nothing into the conversation.
    app.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], metadata: { job: 'classify' }, input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: billing' }] }] } });
    await until(() => dataChannelCount(call, 'response.done') === 1, 'the out-of-band response done');
    app.send({ type: 'session.update', session: { type: 'realtime', instructions: 'You are the Acme phone agent.' } });
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');

    // Old code: heldTurn false, no answer for the caller's turn.
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', heldTurn: true, responses: 'on' }]);
    await until(() => dataChannelCount(call, 'response.done') === 2, 'the held turn answered');
  });
});
