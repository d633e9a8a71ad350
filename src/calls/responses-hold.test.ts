import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { appTurnChoice, ResponsesHold } from './responses-hold.js';
import { withResponsesHeld } from './session-config.js';

type Sent = { type: 'session.update'; session: Record<string, unknown> } | { type: 'response.create' };

/** A hold over the route's session `route`, its bound fired by hand (`elapse`). */
function holdFor(route: Record<string, unknown>, waitForAppMs: number) {
  const sent: Sent[] = [];
  let fire: (() => void) | null = null;
  const hold = new ResponsesHold({
    restore: withResponsesHeld(route).restore,
    waitForAppMs,
    send: (event) => sent.push(event),
    setTimer: (_ms, fn) => {
      fire = fn;
      return setTimeout(() => undefined, 0);
    },
    log: pino({ level: 'silent' }),
  });
  hold.start();
  return { hold, sent, elapse: () => fire?.() };
}

const VAD = { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500, idle_timeout_ms: null, create_response: false, interrupt_response: true };
const session = (turn: Record<string, unknown> | null) => ({ session: { type: 'realtime', audio: { input: { turn_detection: turn } } } });
const turnOn = (turn: Record<string, unknown>): Sent => ({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { ...turn, create_response: true } } } } });
const ROUTE = { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad' } } } };

describe('ResponsesHold', () => {
  it('without a wait: the route\'s restore as the sideband starts (as before notify), nothing after', () => {
    const { hold, sent } = holdFor(ROUTE, 0);
    expect(sent).toEqual([{ type: 'session.update', session: withResponsesHeld(ROUTE).restore }]);
    expect(hold.held).toBe(false);
    hold.onServer('input_audio_buffer.committed', {});
    hold.onServer('session.updated', session(VAD));
    expect(sent).toHaveLength(1);
  });

  it('a route holding nothing (turn detection off, or create_response off by policy): never held, nothing sent', () => {
    for (const route of [{ audio: { input: { turn_detection: null } } }, { audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } }]) {
      const { hold, sent, elapse } = holdFor(route, 5000);
      elapse();
      hold.noApp();
      expect([hold.held, sent]).toEqual([false, []]);
    }
  });

  it('the app\'s update that leaves turn detection alone: released at the session.updated after it, responses on, the held turn answered once', () => {
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    hold.onServer('input_audio_buffer.committed', {});
    // Forwarded, not yet in effect: still held.
    hold.appUpdated(appTurnChoice({ type: 'realtime', instructions: 'the app' }));
    expect([hold.held, sent]).toEqual([true, []]);
    hold.onServer('session.updated', session(VAD));
    expect(sent).toEqual([turnOn(VAD), { type: 'response.create' }]);
    // Once: the bound, a failed announcement, another update change nothing.
    elapse();
    hold.noApp();
    hold.appUpdated({ kind: 'untouched' });
    hold.onServer('session.updated', session(VAD));
    expect(sent).toHaveLength(2);
  });

  it('the app\'s own turn detection wins: already on (the agents SDK\'s semantic_vad), only the held turn\'s answer; off, or create_response false: left to the app, no answer', () => {
    const semantic = { type: 'semantic_vad', eagerness: 'auto', create_response: true, interrupt_response: true };
    const on = holdFor(ROUTE, 5000);
    on.hold.onServer('input_audio_buffer.committed', {});
    on.hold.appUpdated(appTurnChoice({ audio: { input: { turn_detection: { type: 'semantic_vad' } } } }));
    on.hold.onServer('session.updated', session(semantic));
    expect(on.sent).toEqual([{ type: 'response.create' }]);

    const off = holdFor(ROUTE, 5000);
    off.hold.onServer('input_audio_buffer.committed', {});
    off.hold.appUpdated(appTurnChoice({ audio: { input: { turn_detection: null } } }));
    off.hold.onServer('session.updated', session(null));
    expect([off.hold.held, off.sent]).toEqual([false, []]);

    const manual = holdFor(ROUTE, 5000);
    manual.hold.onServer('input_audio_buffer.committed', {});
    manual.hold.appUpdated(appTurnChoice({ audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } }));
    manual.hold.onServer('session.updated', session(VAD));
    expect([manual.hold.held, manual.sent]).toEqual([false, []]);
  });

  it('the bound elapsed: the upstream\'s current turn detection turned on (the route\'s before any was read); a turn answered meanwhile is not answered again', () => {
    const unread = holdFor(ROUTE, 5000);
    unread.elapse();
    expect(unread.sent).toEqual([{ type: 'session.update', session: withResponsesHeld(ROUTE).restore }]);

    const answered = holdFor(ROUTE, 5000);
    answered.hold.onServer('session.created', session(VAD));
    answered.hold.onServer('input_audio_buffer.committed', {});
    // Something answered it already (the app's own response.create on another process).
    answered.hold.onServer('response.created', {});
    answered.elapse();
    expect(answered.sent).toEqual([turnOn(VAD)]);
  });

  it('the announcement failed: released at once, the held turn answered', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    hold.noApp();
    expect(sent).toEqual([turnOn(VAD), { type: 'response.create' }]);
  });

  it('reads the app\'s choice from its update', () => {
    expect(appTurnChoice({ instructions: 'x' })).toEqual({ kind: 'untouched' });
    expect(appTurnChoice({ audio: { output: { voice: 'x' } } })).toEqual({ kind: 'untouched' });
    expect(appTurnChoice({ audio: { input: { turn_detection: null } } })).toEqual({ kind: 'off' });
    expect(appTurnChoice({ audio: { input: { turn_detection: { type: 'semantic_vad' } } } })).toEqual({ kind: 'set', createResponse: null });
    expect(appTurnChoice({ audio: { input: { turn_detection: { type: 'server_vad', create_response: true } } } })).toEqual({ kind: 'set', createResponse: true });
    expect(appTurnChoice('not an object')).toEqual({ kind: 'untouched' });
  });
});
