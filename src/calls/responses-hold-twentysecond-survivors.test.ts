import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { APP_UPDATE_POLL_MS, ResponsesHold, type AppUpdateSeen } from './responses-hold.js';
import { withResponsesHeld } from './session-config.js';

// Written against the mutants of src/calls/responses-hold.ts (1c7f3e4: the answer to the app's own
// update, the answers this sideband read) that survived its tests (twenty-second session): the hold
// driven directly, the store's answers and the timers given by hand.

type Sent = { type: 'session.update'; session: Record<string, unknown> } | { type: 'response.create' };

const ROUTE = { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad' } } } };
const VAD = { type: 'server_vad', threshold: 0.5, create_response: false, interrupt_response: true };
const RECORDED = { ...VAD, silence_duration_ms: 900 };
const session = (turn: Record<string, unknown> | null) => ({ session: { type: 'realtime', audio: { input: { turn_detection: turn } } } });
const turnOn = (turn: Record<string, unknown>): Sent => ({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { ...turn, create_response: true } } } } });
const errorAbout = (eventId: string) => ({ type: 'error', error: { type: 'invalid_request_error', message: 'refused', event_id: eventId } });
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A hold whose store answers (`asks`) and timers (`poll`: the next poll) are given by hand. */
function pollingHold() {
  const sent: Sent[] = [];
  const polls: Array<() => void> = [];
  const asks: Array<(seen: AppUpdateSeen | null) => void> = [];
  const hold = new ResponsesHold({
    restore: withResponsesHeld(ROUTE).restore,
    waitForAppMs: 5000,
    send: (event) => sent.push(event),
    setTimer: (ms, fn) => {
      if (ms === APP_UPDATE_POLL_MS) polls.push(fn);
      return setTimeout(() => undefined, 0);
    },
    log: pino({ level: 'silent' }),
    appUpdatedElsewhere: () => new Promise<AppUpdateSeen | null>((resolve) => asks.push(resolve)),
  });
  hold.start();
  /** The store says the app's update took effect, answered by the session.updated `answerEventId`. */
  /** The store answers the next poll with `seen`. */
  const record = async (seen: AppUpdateSeen) => {
    polls.shift()!();
    asks.shift()!(seen);
    await settle();
  };
  /** The store says the app's update took effect, answered by the session.updated `answerEventId`. */
  const recorded = (answerEventId: string) => record({ choice: { kind: 'untouched' }, turnDetection: RECORDED, answerEventId });
  return { hold, sent, recorded, record };
}

describe('ResponsesHold: the session events read are the newest 64', () => {
  it('an answer among the last 64 read: its own view stands; events without an id take no room', async () => {
    const { hold, sent, recorded } = pollingHold();
    for (let i = 0; i < 64; i++) hold.onServer(i === 0 ? 'session.created' : 'session.updated', { ...session(VAD), event_id: `event_${i}` });
    hold.onServer('session.updated', session(VAD));
    await recorded('event_0');
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });

  it('one read 65 events ago is forgotten: the record\'s turn detection is taken', async () => {
    const { hold, sent, recorded } = pollingHold();
    for (let i = 0; i < 65; i++) hold.onServer('session.updated', { ...session(VAD), event_id: `event_${i}` });
    await recorded('event_0');
    expect([hold.held, sent]).toEqual([false, [turnOn(RECORDED)]]);
  });
});

describe('ResponsesHold: the event ids of updates awaited are at most 64', () => {
  it('63 updates before the app\'s: an error about the app\'s update is its answer', () => {
    const { hold, sent } = pollingHold();
    hold.onServer('session.created', session(VAD));
    for (let i = 0; i < 63; i++) hold.updateSent(`event_relock_${i}`);
    hold.appUpdated({ kind: 'off' }, 'event_app');
    for (let i = 0; i < 63; i++) hold.onServer('session.updated', session(VAD));
    expect(hold.held).toBe(true);
    hold.onServer('error', errorAbout('event_app'));
    // Refused: its choice (off) discarded, responses turned on.
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });

  it('64 before it: the app\'s id is not kept, an error about it answers nothing (the bound ends the hold)', () => {
    const { hold, sent } = pollingHold();
    for (let i = 0; i < 64; i++) hold.updateSent(`event_relock_${i}`);
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    for (let i = 0; i < 64; i++) hold.onServer('session.updated', session(VAD));
    hold.onServer('error', errorAbout('event_app'));
    expect([hold.held, sent]).toEqual([true, []]);
  });

  it('an update sent after the app\'s is not awaited: an error about it answers nothing', () => {
    const { hold, sent } = pollingHold();
    hold.onServer('session.created', session(VAD));
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    hold.updateSent('event_later');
    hold.onServer('error', errorAbout('event_later'));
    expect([hold.held, sent]).toEqual([true, []]);
    hold.onServer('session.updated', session(VAD));
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });
});

describe('ResponsesHold: what the calls module gives it, and the store\'s record', () => {
  it('reads the bodies of the session events, commits, deletions, response.created and errors, and no others', () => {
    for (const type of ['session.created', 'session.updated', 'input_audio_buffer.committed', 'conversation.item.deleted', 'response.created', 'error']) expect([type, ResponsesHold.readsBody(type)]).toEqual([type, true]);
    for (const type of ['response.done', 'conversation.item.added', 'input_audio_buffer.speech_started', 'rate_limits.updated']) expect([type, ResponsesHold.readsBody(type)]).toEqual([type, false]);
  });

  it('an error event without an error object answers nothing, and throws nothing', () => {
    const { hold } = pollingHold();
    hold.appUpdated({ kind: 'untouched' }, 'event_app');
    expect(() => hold.onServer('error', {})).not.toThrow();
    expect(hold.held).toBe(true);
  });

  it('an out-of-band response (conversation_id null) answers no held turn; one in the conversation does', () => {
    const outOfBand = pollingHold();
    outOfBand.hold.onServer('session.created', session(VAD));
    outOfBand.hold.onServer('input_audio_buffer.committed', { item_id: 'item_a' });
    outOfBand.hold.onServer('response.created', { response: { id: 'resp_1', conversation_id: null } });
    outOfBand.hold.noApp();
    expect(outOfBand.sent).toEqual([turnOn(VAD), { type: 'response.create' }]);
  });

  it('the record\'s choice is taken: create_response false there is left to the app', async () => {
    const { hold, sent, record } = pollingHold();
    hold.onServer('session.created', session(VAD));
    await record({ choice: { kind: 'set', createResponse: false }, turnDetection: VAD });
    expect([hold.held, sent]).toEqual([false, []]);
  });

  it('turn detection off in a record this sideband has not read: nothing turned on; in one it read: its own view stands', async () => {
    const unread = pollingHold();
    unread.hold.onServer('session.created', { ...session(VAD), event_id: 'event_created' });
    await unread.record({ choice: { kind: 'untouched' }, turnDetection: null, answerEventId: 'event_not_here' });
    expect([unread.hold.held, unread.sent]).toEqual([false, []]);
    const read = pollingHold();
    read.hold.onServer('session.updated', { ...session(VAD), event_id: 'event_read' });
    await read.record({ choice: { kind: 'untouched' }, turnDetection: null, answerEventId: 'event_read' });
    expect([read.hold.held, read.sent]).toEqual([false, [turnOn(VAD)]]);
  });
});
