import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { APP_UPDATE_POLL_MS, appTurnChoice, ResponsesHold, writtenTurnDetection, type AppUpdateSeen } from './responses-hold.js';
import { withResponsesHeld } from './session-config.js';
import { heldBytes } from '../../test/support/heap.js';

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

  it('a held turn whose item was deleted (an input guardrail blocked it) is owed nothing; one that stands still is', () => {
    const blocked = holdFor(ROUTE, 5000);
    blocked.hold.onServer('session.created', session(VAD));
    blocked.hold.onServer('input_audio_buffer.committed', { item_id: 'item_a' });
    blocked.hold.onServer('conversation.item.deleted', { item_id: 'item_a' });
    blocked.hold.noApp();
    expect(blocked.sent).toEqual([turnOn(VAD)]);

    const oneStands = holdFor(ROUTE, 5000);
    oneStands.hold.onServer('session.created', session(VAD));
    oneStands.hold.onServer('input_audio_buffer.committed', { item_id: 'item_a' });
    oneStands.hold.onServer('input_audio_buffer.committed', { item_id: 'item_b' });
    // Another item deleted (an earlier turn's, a truncated answer's) leaves the held turns owed.
    oneStands.hold.onServer('conversation.item.deleted', { item_id: 'item_b' });
    oneStands.hold.onServer('conversation.item.deleted', { item_id: 'item_old' });
    oneStands.hold.noApp();
    expect(oneStands.sent).toEqual([turnOn(VAD), { type: 'response.create' }]);
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

/** An error event the upstream sends about the client event `eventId`. */
const errorAbout = (eventId: string | null) => ({ error: { type: 'invalid_request_error', code: 'invalid_value', message: 'bad', param: null, event_id: eventId } });

describe('ResponsesHold: released on the answer to the app\'s update, not an earlier one (found 2026-12-07)', () => {
  it('the answer to an update the sideband sent before the app\'s (a relock) does not release; the app\'s answer does', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    hold.updateSent('event_relock');
    hold.appUpdated(appTurnChoice({ type: 'realtime', instructions: 'the app' }), 'event_app');
    // The relock's answer: the app's update has not taken effect yet (until 2026-12-07 this released).
    hold.onServer('session.updated', session(VAD));
    expect([hold.held, sent]).toEqual([true, []]);
    const appVad = { ...VAD, silence_duration_ms: 700 };
    hold.onServer('session.updated', session(appVad));
    // Released on the session the app's update left.
    expect([hold.held, sent]).toEqual([false, [turnOn(appVad), { type: 'response.create' }]]);
  });

  it('updates answered before the app\'s are not waited for again; answers to updates sent elsewhere never make the count go below nothing', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.updateSent('event_locked_state');
    hold.onServer('session.updated', session(VAD));
    // An answer to an update this process did not send (another process's socket).
    hold.onServer('session.updated', session(VAD));
    hold.updateSent('event_relock');
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    hold.onServer('session.updated', session(VAD));
    expect(hold.held).toBe(true);
    hold.onServer('session.updated', session(VAD));
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });

  it('an answer to an update sent through another process, arriving before the app\'s, does not release when it lacks the turn detection the app wrote: the app\'s VAD settings are not undone (found 2026-12-07)', () => {
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    const appSession = { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: 'low' } } } };
    hold.appUpdated(appTurnChoice(appSession), 'event_app', writtenTurnDetection(appSession));
    // A supervisor's update through another process, answered first: counted as the app's answer,
    // it released the hold, which wrote that answer's server_vad back over the app's semantic_vad.
    hold.onServer('session.updated', session({ ...VAD, silence_duration_ms: 900 }));
    expect([hold.held, sent]).toEqual([true, []]);
    const semantic = { type: 'semantic_vad', eagerness: 'low', create_response: true, interrupt_response: true };
    hold.onServer('session.updated', session(semantic));
    // The app's answer: its turn detection answers on its own; the held turn gets its one answer.
    expect([hold.held, sent]).toEqual([false, [{ type: 'response.create' }]]);
    elapse();
    expect(sent).toHaveLength(1);
  });

  it('an app\'s turn detection that no answer shows (an upstream that reports it otherwise) is released by the wait\'s bound, on the latest answer', () => {
    const { hold, sent, elapse } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    const appSession = { audio: { input: { turn_detection: { type: 'server_vad', threshold: 0.7 } } } };
    hold.appUpdated(appTurnChoice(appSession), 'event_app', writtenTurnDetection(appSession));
    const reported = { ...VAD, threshold: 0.69999 };
    hold.onServer('session.updated', session(reported));
    expect(hold.held).toBe(true);
    elapse();
    expect([hold.held, sent]).toEqual([false, [turnOn(reported)]]);
  });

  it('a member the app wrote null is matched by an answer that leaves it out (the API omits unset optional members): released on the app\'s answer, not at the bound', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    const appSession = { audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 650, idle_timeout_ms: null } } } };
    hold.appUpdated(appTurnChoice(appSession), 'event_app', writtenTurnDetection(appSession));
    const answered: Record<string, unknown> = { ...VAD, silence_duration_ms: 650 };
    delete answered['idle_timeout_ms'];
    hold.onServer('session.updated', session(answered));
    expect([hold.held, sent]).toEqual([false, [turnOn(answered)]]);
  });

  // Red team 2026-12-07 (b24): a member written null asks for the upstream's default, which it may
  // report by name (the simulator: `eagerness: null` answered `"auto"`): no answer matched, and the
  // caller's held turn waited the whole waitForAppMs.
  it('a member the app wrote null is matched by an answer that names the default in its place: released on the app\'s answer, not at the bound', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    const appSession = { audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: null } } } };
    hold.appUpdated(appTurnChoice(appSession), 'event_app', writtenTurnDetection(appSession));
    const answered = { type: 'semantic_vad', eagerness: 'auto', create_response: true, interrupt_response: true };
    hold.onServer('session.updated', session(answered));
    expect([hold.held, sent]).toEqual([false, [{ type: 'response.create' }]]);
  });

  it('the app\'s written turn detection kept for the match: its scalar members only, long strings and objects left out', () => {
    expect(writtenTurnDetection({ audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: 'low', create_response: true, idle_timeout_ms: null, extra: { a: 1 }, long: 'x'.repeat(1000) } } } })).toEqual({ type: 'semantic_vad', eagerness: 'low', create_response: true, idle_timeout_ms: null });
    expect(writtenTurnDetection({ audio: { input: { turn_detection: null } } })).toBeNull();
    expect(writtenTurnDetection({ instructions: 'x' })).toBeNull();
    expect(writtenTurnDetection('not an object')).toBeNull();
  });

  it('updates sent after the app\'s are answered after it: not waited for, unless the app sends another behind them', () => {
    const { hold } = holdFor(ROUTE, 5000);
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    hold.updateSent('event_later');
    hold.onServer('session.updated', session(VAD));
    expect(hold.held).toBe(false);
    // The app's second update after one of the sideband's: answered after both (twenty-third red-team pass).
    const second = holdFor(ROUTE, 5000);
    second.hold.appUpdated({ kind: 'untouched' }, 'event_app');
    second.hold.updateSent('event_between');
    second.hold.appUpdated({ kind: 'off' }, 'event_app_2');
    second.hold.onServer('session.updated', session(VAD));
    second.hold.onServer('error', errorAbout('event_between'));
    expect(second.hold.held).toBe(true);
    second.hold.onServer('session.updated', session(null));
    expect([second.hold.held, second.sent]).toEqual([false, []]);
  });

  it('an error about the app\'s second update discards its choice; about its last, releases at once', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    hold.appUpdated({ kind: 'off' }, 'event_app_2');
    hold.onServer('session.updated', session(VAD));
    hold.onServer('error', errorAbout('event_app_2'));
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
    // The first refused, the second still to come: waited for.
    const first = holdFor(ROUTE, 5000);
    first.hold.appUpdated({ kind: 'off' }, 'event_app');
    first.hold.appUpdated({ kind: 'untouched' }, 'event_app_2');
    first.hold.onServer('error', errorAbout('event_app'));
    expect(first.hold.held).toBe(true);
    first.hold.onServer('session.updated', session(VAD));
    expect([first.hold.held, first.sent]).toEqual([false, [turnOn(VAD)]]);
  });

  it('an app\'s event ids as long as a frame are not kept whole: 8 holds of 2 MiB ids keep well under their size', () => {
    const MiB = 1024 * 1024;
    const holds: ResponsesHold[] = [];
    const before = heldBytes();
    for (let i = 0; i < 8; i++) {
      const { hold } = holdFor(ROUTE, 5000);
      // A flat string of its own (not a rope sharing its halves), as a parsed frame's is.
      hold.appUpdated({ kind: 'untouched' }, Buffer.alloc(2 * MiB, 0x61 + i).toString('latin1'));
      holds.push(hold);
    }
    // Old code: the ids kept whole, twice over (the app's id and the awaited set): at least 16 MiB.
    expect(heldBytes() - before).toBeLessThan(6 * MiB);
    expect(holds.every((h) => h.held)).toBe(true);
  });

  it('an app\'s event id as long as a frame is kept as its hash: an error naming it still answers it', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    const long = `event_${'x'.repeat(1024 * 1024)}`;
    hold.appUpdated({ kind: 'off' }, long);
    hold.onServer('error', errorAbout(long));
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });

  it('an error about an update sent before the app\'s is its answer; one about nothing counted here is none', () => {
    const { hold } = holdFor(ROUTE, 5000);
    hold.updateSent('event_relock');
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    hold.onServer('error', errorAbout('event_someone_else'));
    hold.onServer('error', errorAbout(null));
    expect(hold.held).toBe(true);
    hold.onServer('error', errorAbout('event_relock'));
    // The same error twice (it reached this sideband once per socket) is one answer.
    hold.onServer('error', errorAbout('event_relock'));
    expect(hold.held).toBe(true);
    hold.onServer('session.updated', session(VAD));
    expect(hold.held).toBe(false);
  });

  it('an error about the app\'s update is its answer: released, its choice discarded with it (the upstream applies nothing of a refused update)', () => {
    const { hold, sent } = holdFor(ROUTE, 5000);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    hold.updateSent('event_relock');
    // Turn detection off, refused: responses are not left to the app, they are turned on.
    hold.appUpdated({ kind: 'off' }, 'event_app');
    hold.onServer('error', errorAbout('event_app'));
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD), { type: 'response.create' }]]);
  });

  it('reads the error events it needs (ResponsesHold.readsBody)', () => {
    expect(ResponsesHold.readsBody('error')).toBe(true);
  });
});

/**
 * A hold whose app may attach through another process: the store's answers to its asks are given by
 * hand (`answer`), its timers fired by hand (`fire`: the bound is the first, each poll after it).
 */
function pollingHold(route: Record<string, unknown>) {
  const sent: Sent[] = [];
  const timers: Array<{ ms: number; fn: () => void; fired: boolean }> = [];
  const asks: Array<{ resolve: (seen: AppUpdateSeen | null) => void; reject: (err: Error) => void }> = [];
  const hold = new ResponsesHold({
    restore: withResponsesHeld(route).restore,
    waitForAppMs: 5000,
    send: (event) => sent.push(event),
    setTimer: (ms, fn) => {
      timers.push({ ms, fn, fired: false });
      return setTimeout(() => undefined, 0);
    },
    log: pino({ level: 'silent' }),
    appUpdatedElsewhere: () => new Promise<AppUpdateSeen | null>((resolve, reject) => asks.push({ resolve, reject })),
  });
  hold.start();
  /** The next poll timer not fired yet, fired now. */
  const poll = () => {
    const next = timers.find((t) => t.ms === APP_UPDATE_POLL_MS && !t.fired)!;
    next.fired = true;
    next.fn();
  };
  const bound = () => timers.find((t) => t.ms === 5000)!.fn();
  const pending = () => timers.filter((t) => t.ms === APP_UPDATE_POLL_MS && !t.fired).length;
  return { hold, sent, asks, poll, bound, pending };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('ResponsesHold, the app attached through another process (the store asked while held)', () => {
  it('asks every APP_UPDATE_POLL_MS, one ask at a time; released once the store says the app\'s update took effect, on the turn detection read there', async () => {
    const { hold, sent, asks, poll, pending } = pollingHold(ROUTE);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    expect([pending(), asks.length]).toEqual([1, 0]);
    poll();
    // The ask in flight: no next one until it is answered.
    expect([pending(), asks.length]).toEqual([0, 1]);
    asks[0]!.resolve(null);
    await settle();
    expect([pending(), hold.held, sent]).toEqual([1, true, []]);
    poll();
    const appVad = { type: 'semantic_vad', eagerness: 'auto', create_response: true, interrupt_response: true };
    asks[1]!.resolve({ choice: { kind: 'set', createResponse: null }, turnDetection: appVad });
    await settle();
    // The app's turn detection answers already: only the held turn's create.
    expect(sent).toEqual([{ type: 'response.create' }]);
    expect([hold.held, pending(), asks.length]).toEqual([false, 0, 2]);
  });

  it('a store that fails is asked again; the bound still ends the hold, and nothing is asked after', async () => {
    const { hold, sent, asks, poll, bound, pending } = pollingHold(ROUTE);
    hold.onServer('session.created', session(VAD));
    poll();
    asks[0]!.reject(new Error('store down'));
    await settle();
    expect([pending(), hold.held]).toEqual([1, true]);
    bound();
    expect(sent).toEqual([turnOn(VAD)]);
    poll();
    // A poll timer that fires as the hold ended asks nothing more.
    expect(asks).toHaveLength(1);
    // An answer that comes after the end changes nothing.
    expect(hold.held).toBe(false);
  });

  it('the app turned turn detection off there: left to the app, nothing sent; an answer after the release changes nothing', async () => {
    const { hold, sent, asks, poll } = pollingHold(ROUTE);
    hold.onServer('session.created', session(VAD));
    hold.onServer('input_audio_buffer.committed', {});
    poll();
    asks[0]!.resolve({ choice: { kind: 'off' }, turnDetection: null });
    await settle();
    expect([hold.held, sent]).toEqual([false, []]);
  });

  it('a record without the turn detection read there: the sideband\'s own is turned on', async () => {
    const { hold, sent, asks, poll } = pollingHold(ROUTE);
    hold.onServer('session.created', session(VAD));
    poll();
    asks[0]!.resolve({ choice: { kind: 'untouched' } });
    await settle();
    expect(sent).toEqual([turnOn(VAD)]);
  });

  it('a record of an answer this sideband read already: its own view stands (it read that one and the newer ones); one it did not read yet: the record\'s (found 2026-12-07: an older record replaced a newer view)', async () => {
    const appVad = { type: 'semantic_vad', eagerness: 'auto', create_response: true, interrupt_response: true };
    const read = pollingHold(ROUTE);
    read.hold.onServer('session.created', { ...session(VAD), event_id: 'event_created' });
    read.hold.onServer('input_audio_buffer.committed', {});
    // The app's first update's answer (the route's turn detection kept), then its second's (its own).
    read.hold.onServer('session.updated', { ...session(VAD), event_id: 'event_first' });
    read.hold.onServer('session.updated', { ...session(appVad), event_id: 'event_second' });
    read.poll();
    read.asks[0]!.resolve({ choice: { kind: 'untouched' }, turnDetection: VAD, answerEventId: 'event_first' });
    await settle();
    // The app's turn detection answers already: only the held turn's answer, nothing put back.
    expect([read.hold.held, read.sent]).toEqual([false, [{ type: 'response.create' }]]);

    const unread = pollingHold(ROUTE);
    unread.hold.onServer('session.created', { ...session(VAD), event_id: 'event_created' });
    unread.poll();
    unread.asks[0]!.resolve({ choice: { kind: 'untouched' }, turnDetection: { ...VAD, silence_duration_ms: 900 }, answerEventId: 'event_not_here_yet' });
    await settle();
    expect(unread.sent).toEqual([turnOn({ ...VAD, silence_duration_ms: 900 })]);
  });

  it('without appUpdatedElsewhere nothing is polled (the app is seen on this process only)', () => {
    const timers: number[] = [];
    const hold = new ResponsesHold({ restore: withResponsesHeld(ROUTE).restore, waitForAppMs: 5000, send: () => undefined, setTimer: (ms) => (timers.push(ms), setTimeout(() => undefined, 0)), log: pino({ level: 'silent' }) });
    hold.start();
    expect(timers).toEqual([5000]);
  });
});
