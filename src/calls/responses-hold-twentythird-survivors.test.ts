import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ResponsesHold } from './responses-hold.js';
import { withResponsesHeld } from './session-config.js';

// Written against the mutant of src/calls/responses-hold.ts the twenty-second session left open
// (225: `eventId !== null` → true, an update sent without an event id took one of the 64 slots of
// the ids awaited): the hold driven directly, its timers never fired.

type Sent = { type: 'session.update'; session: Record<string, unknown> } | { type: 'response.create' };

const ROUTE = { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad' } } } };
const VAD = { type: 'server_vad', threshold: 0.5, create_response: false, interrupt_response: true };
const session = (turn: Record<string, unknown> | null) => ({ session: { type: 'realtime', audio: { input: { turn_detection: turn } } } });
const turnOn = (turn: Record<string, unknown>): Sent => ({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { ...turn, create_response: true } } } } });
const errorAbout = (eventId: string) => ({ type: 'error', error: { type: 'invalid_request_error', message: 'refused', event_id: eventId } });

function heldForApp() {
  const sent: Sent[] = [];
  const hold = new ResponsesHold({
    restore: withResponsesHeld(ROUTE).restore,
    waitForAppMs: 5000,
    send: (event) => sent.push(event),
    setTimer: () => setTimeout(() => undefined, 0),
    log: pino({ level: 'silent' }),
  });
  hold.start();
  return { hold, sent };
}

describe('ResponsesHold: updates sent without an event id', () => {
  it('take none of the 64 places of the ids awaited: 63 with ids and one without before the app\'s, an error about the app\'s update still answers it', () => {
    const { hold, sent } = heldForApp();
    hold.onServer('session.created', session(VAD));
    for (let i = 0; i < 63; i++) hold.updateSent(`event_relock_${i}`);
    hold.updateSent(null);
    hold.appUpdated({ kind: 'off' }, 'event_app');
    // The 64 updates before the app's answered.
    for (let i = 0; i < 64; i++) hold.onServer('session.updated', session(VAD));
    expect([hold.held, sent]).toEqual([true, []]);
    hold.onServer('error', errorAbout('event_app'));
    // Refused: its choice (off) discarded, responses turned on.
    expect([hold.held, sent]).toEqual([false, [turnOn(VAD)]]);
  });
});
