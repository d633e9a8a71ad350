import { describe, expect, it } from 'vitest';
import { capturedLog } from '../../test/support/captured-log.js';
import { appTurnChoice, ResponsesHold } from './responses-hold.js';
import { withResponsesHeld } from './session-config.js';

// Written against the mutants of src/calls/responses-hold.ts that survived its tests (twenty-first
// session): the hold driven directly, its bound fired by hand, its log read.

type Sent = { type: 'session.update'; session: Record<string, unknown> } | { type: 'response.create' };

/** A hold over the route's session `route`, its bound fired by hand (`elapse`), its log lines kept. */
function holdFor(route: Record<string, unknown>, waitForAppMs: number, start = true) {
  const sent: Sent[] = [];
  const timers: { ms: number; fire: () => void }[] = [];
  const { log, lines } = capturedLog('info');

  const hold = new ResponsesHold({
    restore: withResponsesHeld(route).restore,
    waitForAppMs,
    send: (event) => sent.push(event),
    setTimer: (ms, fire) => {
      timers.push({ ms, fire });
      return setTimeout(() => undefined, 0);
    },
    log,
  });
  if (start) hold.start();
  const released = async () => {
    return lines.filter((l) => l['event'] === 'call_responses_released').map((l) => ({ why: l['why'], responses: l['responses'], heldTurn: l['heldTurn'], msg: l['msg'] }));
  };
  return { hold, sent, timers, released, elapse: () => timers.at(-1)?.fire() };
}

const VAD = { type: 'server_vad', threshold: 0.5, create_response: false, interrupt_response: true };
const session = (turn: Record<string, unknown> | null) => ({ session: { type: 'realtime', audio: { input: { turn_detection: turn } } } });
const turnOn = (turn: Record<string, unknown>): Sent => ({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { ...turn, create_response: true } } } } });
const ROUTE = { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad' } } } };

describe('ResponsesHold: the edges the first tests left open', () => {
  it('the bound is set for waitForAppMs as the sideband starts, not before; nothing held, no bound', () => {
    const { timers, hold } = holdFor(ROUTE, 2500, false);
    expect(timers).toEqual([]);
    hold.start();
    expect(timers.map((t) => t.ms)).toEqual([2500]);
    expect(holdFor({ audio: { input: { turn_detection: null } } }, 2500).timers).toEqual([]);
    expect(holdFor(ROUTE, 0).timers).toEqual([]);
  });

  it('each release is logged with why, what became of responses and whether a held turn was answered; the release without a wait is not', async () => {
    const bound = holdFor(ROUTE, 5000);
    bound.hold.onServer('input_audio_buffer.committed', {});
    bound.elapse();
    expect(await bound.released()).toEqual([{ why: 'wait_elapsed', responses: 'on', heldTurn: true, msg: 'call: responses turned back on' }]);

    const app = holdFor(ROUTE, 5000);
    app.hold.appUpdated({ kind: 'untouched' });
    app.hold.onServer('session.updated', session(VAD));
    expect(await app.released()).toEqual([{ why: 'app_updated', responses: 'on', heldTurn: false, msg: 'call: responses turned back on' }]);

    const none = holdFor(ROUTE, 5000);
    none.hold.noApp();
    expect(await none.released()).toEqual([{ why: 'no_app', responses: 'on', heldTurn: false, msg: 'call: responses turned back on' }]);

    const leftToApp = holdFor(ROUTE, 5000);
    leftToApp.hold.onServer('input_audio_buffer.committed', {});
    leftToApp.hold.appUpdated({ kind: 'off' });
    leftToApp.hold.onServer('session.updated', session(null));
    expect(await leftToApp.released()).toEqual([{ why: 'app_updated', responses: 'left_to_app', heldTurn: true, msg: 'call: responses left as the app set them' }]);

    const off = holdFor(ROUTE, 5000);
    off.hold.onServer('session.created', session(null));
    off.hold.onServer('input_audio_buffer.committed', {});
    off.elapse();
    expect(await off.released()).toEqual([{ why: 'wait_elapsed', responses: 'turn_detection_off', heldTurn: true, msg: 'call: turn detection is off, nothing to turn back on' }]);

    const governed = holdFor(ROUTE, 0);
    expect(governed.sent).toHaveLength(1);
    expect(await governed.released()).toEqual([]);
  });

  it('turn detection off upstream (not by the app): nothing sent, not even the held turn\'s answer', () => {
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(null));
    hold.onServer('input_audio_buffer.committed', {});
    elapse();
    expect([hold.held, sent]).toEqual([false, []]);
  });

  it('an event saying nothing of turn detection keeps the last one read; a later one replaces it', () => {
    const kept = holdFor(ROUTE, 5000);
    kept.hold.onServer('session.created', session(VAD));
    kept.hold.onServer('session.updated', { session: { type: 'realtime', instructions: 'x' } });
    kept.hold.onServer('session.updated', { session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
    kept.hold.onServer('session.updated', {});
    kept.elapse();
    expect(kept.sent).toEqual([turnOn(VAD)]);

    const replaced = holdFor(ROUTE, 5000);
    replaced.hold.onServer('session.created', session(null));
    replaced.hold.onServer('session.updated', session(VAD));
    replaced.elapse();
    expect(replaced.sent).toEqual([turnOn(VAD)]);

    // A turn detection that is no object (never sent by the upstream) is not read as one.
    const odd = holdFor(ROUTE, 5000);
    odd.hold.onServer('session.created', session(VAD));
    odd.hold.onServer('session.updated', { session: { audio: { input: { turn_detection: 'server_vad' } } } });
    odd.elapse();
    expect(odd.sent).toEqual([turnOn(VAD)]);
  });

  it('only response.created settles the held turn: other events after the commit leave it owed', () => {
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    for (const type of ['conversation.item.added', 'conversation.item.done', 'input_audio_buffer.speech_started', 'response.done']) hold.onServer(type, {});
    elapse();
    expect(sent).toEqual([turnOn(VAD), { type: 'response.create' }]);
  });

  it('the upstream\'s turn detection already answering: only the held turn\'s answer, no update', () => {
    const answering = { ...VAD, create_response: true };
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(answering));
    hold.onServer('input_audio_buffer.committed', {});
    elapse();
    expect(sent).toEqual([{ type: 'response.create' }]);
  });

  it('before anything was read from the upstream: the route\'s restore, a copy of it', () => {
    const restore = withResponsesHeld(ROUTE).restore!;
    const { sent, elapse } = holdFor(ROUTE, 5000);
    elapse();
    expect(sent).toEqual([{ type: 'session.update', session: restore }]);
    expect((sent[0] as { session: Record<string, unknown> }).session).not.toBe(restore);
  });

  it('only session.updated after the app\'s update releases: not session.created, not an update before the app\'s', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.updated', session(VAD));
    expect(hold.held).toBe(true);
    hold.appUpdated({ kind: 'untouched' });
    hold.onServer('session.created', session(VAD));
    expect([hold.held, sent]).toEqual([true, []]);
    hold.onServer('session.updated', session(VAD));
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });

  it('the app\'s last update before the release is the one judged: a later one (off) sent before it replaces the first (twenty-third red-team pass)', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('input_audio_buffer.committed', {});
    hold.appUpdated({ kind: 'untouched' });
    hold.appUpdated({ kind: 'off' });
    hold.onServer('session.updated', session(VAD));
    // Until 2026-12-07 released here, its own update turning on what the app's second turned off.
    expect([hold.held, sent]).toEqual([true, []]);
    hold.onServer('session.updated', session(null));
    expect([hold.held, sent]).toEqual([false, []]);
    // One sent after the release changes nothing.
    hold.appUpdated({ kind: 'set', createResponse: true });
    hold.onServer('session.updated', session(VAD));
    expect(sent).toEqual([]);
  });

  it('the app\'s turn detection with create_response true (or unwritten) gets responses on, and the held turn answered', () => {
    for (const createResponse of [true, null]) {
      const { hold, sent } = holdFor(ROUTE, 5000);
      hold.onServer('input_audio_buffer.committed', {});
      hold.appUpdated({ kind: 'set', createResponse });
      hold.onServer('session.updated', session(VAD));
      expect(sent, String(createResponse)).toEqual([turnOn(VAD), { type: 'response.create' }]);
    }
  });

  it('stopped (the sideband ended): no longer held, nothing sent later', () => {
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('input_audio_buffer.committed', {});
    hold.stop();
    expect(hold.held).toBe(false);
    elapse();
    hold.noApp();
    hold.appUpdated({ kind: 'untouched' });
    hold.onServer('session.updated', session(VAD));
    expect(sent).toEqual([]);
  });

  it('reads the app\'s choice: a turn_detection key holding undefined is no choice; a create_response that is no boolean is unwritten', () => {
    expect(appTurnChoice({ audio: { input: { turn_detection: undefined } } })).toEqual({ kind: 'untouched' });
    expect(appTurnChoice({ audio: { input: {} } })).toEqual({ kind: 'untouched' });
    expect(appTurnChoice({ audio: { input: { turn_detection: { type: 'server_vad', create_response: 'false' } } } })).toEqual({ kind: 'set', createResponse: null });
    expect(appTurnChoice({ audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } })).toEqual({ kind: 'set', createResponse: false });
    expect(appTurnChoice({ audio: { input: { turn_detection: 'server_vad' } } })).toEqual({ kind: 'set', createResponse: null });
    expect(appTurnChoice(null)).toEqual({ kind: 'untouched' });
  });
});
