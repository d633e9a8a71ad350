import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimCall } from '../../src/simulator/index.js';
import { TestClient } from '../support/client.js';
import type { TestProxy } from '../support/harness.js';
import { holdingRouteProxy, ringAccepted, until, type HoldingRoute, dataChannelCount, releasedLogs } from './support.js';

/**
 * Red team 23 (calls): a SIP call on a `notify` route holds its answers for the tenant's app
 * (ResponsesHold) until the app's first session.update took effect, then turns turn detection's
 * `create_response` back on with a `session.update` of its own, the turn detection it read in that
 * answer with `create_response: true`.
 *
 * 1. The app sends a second update right behind its first (the agents SDK sends its agent's config,
 *    then a change: here, turn detection off, as a push-to-talk app does). The hold released at the
 *    first one's answer, and its own update, written from that answer, reached the upstream after
 *    the app's second: the upstream applied it last, and turn detection was on again, creating
 *    responses, against the app's last word. The hold now releases at the answer to the last update
 *    the app sent before it released, on the turn detection that answer reports.
 * 2. The upstream refuses the app's update (an `error` naming its event_id): the hold releases at
 *    once, the app's choice discarded. The relay sends every session.update with an event_id of its
 *    own (Conversation.stamp), and the hold waited for an error naming the app's: none ever came,
 *    and the call waited its whole `waitForAppMs` (60 s here). The hold now follows the id each
 *    update left with (the relay's `stamped` report).
 */

type Json = Record<string, unknown>;
const NUMBER = '+15551250023';

let route: HoldingRoute;
let tp: TestProxy;

beforeAll(async () => {
  route = await holdingRouteProxy(NUMBER, () => 'what time do you open tomorrow');
  tp = route.tp;
});
afterAll(async () => {
  await route?.stop();
});

const turnDetectionOf = (session: Json | undefined) => ((session?.['audio'] as Json | undefined)?.['input'] as Json | undefined)?.['turn_detection'];
/** The session.update events the upstream received from the proxy's sockets, their sessions in order. */
const updatesReceived = (call: SimCall) => call.received.filter((r) => r.type === 'session.update').map((r) => r.event['session'] as Json);

/** A held call whose caller spoke into the wait, and the app's socket attached to it. */
async function heldCallWithApp(): Promise<{ call: SimCall; app: TestClient }> {
  const call = await ringAccepted(tp, NUMBER, true);
  const announced = route.announced.length;
  await until(() => route.announced.length >= announced, 'the announcement delivered');
  const app = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${call.id}`, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
  route.apps.push(app);
  await app.next('session.created', 5000);
  return { call, app };
}

describe('the app\'s updates and the hold\'s own', () => {
  it('a second app update right behind the first (turn detection off) is not overwritten by the hold\'s', async () => {
    const { call, app } = await heldCallWithApp();
    const before = updatesReceived(call).length;
    app.send({ type: 'session.update', event_id: 'evt_app_1', session: { type: 'realtime', instructions: 'You are the Acme phone agent.' } });
    app.send({ type: 'session.update', event_id: 'evt_app_2', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
    await app.waitFor((e) => e.type === 'session.updated' && turnDetectionOf(e['session'] as Json) === null, 5000, 'the app\'s second update answered');
    // Every update sent so far answered: the last session.updated is the session as it stands.
    const sent = updatesReceived(call).length - before;
    await until(() => app.ofType('session.updated').length >= sent, 'every update answered');
    // Old code: released at the first answer (why app_updated, responses on) and its update, written
    // from that answer, was applied after the app's second: turn detection on again.
    expect(turnDetectionOf(app.ofType('session.updated').at(-1)!['session'] as Json)).toBeNull();
    expect(updatesReceived(call).slice(before).map((s) => turnDetectionOf(s) !== undefined && turnDetectionOf(s) !== null)).toEqual([false, false]);
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', responses: 'left_to_app' }]);
    expect(dataChannelCount(call, 'response.created')).toBe(0);
  });

  it('control: a second update that leaves turn detection alone: released at its answer, responses on as that answer reports', async () => {
    const { call, app } = await heldCallWithApp();
    app.send({ type: 'session.update', event_id: 'evt_app_1', session: { type: 'realtime', instructions: 'You are the Acme phone agent.' } });
    app.send({ type: 'session.update', event_id: 'evt_app_2', session: { type: 'realtime', instructions: 'You are the Acme phone agent, v2.' } });
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', responses: 'on' }]);
    await until(() => app.ofType('session.updated').some((e) => (turnDetectionOf(e['session'] as Json) as Json | null | undefined)?.['create_response'] === true), 'responses on upstream');
  });

  it('an app update with an event_id of 1 MiB: released at its answer', async () => {
    const { call, app } = await heldCallWithApp();
    const long = `evt_${'x'.repeat(1024 * 1024)}`;
    app.send({ type: 'session.update', event_id: long, session: { type: 'realtime', instructions: 'You are the Acme phone agent.' } });
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', responses: 'on' }]);
  });

  // Red team 2026-12-07 (b24): the hold matched each member the app wrote against the answer, a null
  // one only by null or absent; the upstream answers `eagerness: null` with its default, "auto".
  it('an app update writing a turn detection member null (its default): released at its answer, not at the end of the wait', async () => {
    const { call, app } = await heldCallWithApp();
    app.send({ type: 'session.update', event_id: 'evt_app_null', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: null } } } } });
    const answer = await app.waitFor((e) => e.type === 'session.updated' && (turnDetectionOf(e['session'] as Json) as Json | null | undefined)?.['type'] === 'semantic_vad', 5000, 'the app\'s update answered');
    expect((turnDetectionOf(answer['session'] as Json) as Json)['eagerness']).toBe('auto');
    // Old code: no answer showed `eagerness: null`: held for the whole wait (60 s here).
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', responses: 'on' }]);
    await until(() => app.ofType('session.updated').some((e) => (turnDetectionOf(e['session'] as Json) as Json | null | undefined)?.['create_response'] === true), 'responses on upstream');
  });

  it('the upstream refuses the app\'s update: released at its error, not at the end of the wait', async () => {
    const { call, app } = await heldCallWithApp();
    app.send({ type: 'session.update', event_id: 'evt_app_bad', session: { type: 'realtime', no_such_member: true } });
    const error = await app.next('error', 5000);
    expect((error['error'] as Json)['event_id']).toBe('evt_app_bad');
    // Old code: the hold waited for an error naming evt_app_bad, which the upstream never saw: held for 60 s.
    await until(() => releasedLogs(tp, call.id).length === 1, 'the hold released');
    expect(releasedLogs(tp, call.id)).toMatchObject([{ why: 'app_updated', responses: 'on' }]);
  });
});
