import { describe, expect, it } from 'vitest';
import { ProxyError } from '../protocol/errors.js';
import { appUpdateOf, endReasonOf, errorOfEndReason } from './end-reason.js';

/**
 * The end's reason and the app's update as the call's store record carries them between processes
 * (src/calls/store.ts CallRecord): what one process writes, another reads back as the same error; a
 * record written by another version, or not at all, reads as nothing (the socket ends as today).
 */
describe('a call end\'s reason, through the store record', () => {
  it('reads back as the same error event and close (code, message, close code, details)', () => {
    const ended = [
      new ProxyError('budget_exceeded', { close: 'limitExceeded', message: 'The call reached its cost cap and was ended.' }),
      new ProxyError('governance_failed'),
      new ProxyError('session_duration_exceeded', { close: 'limitExceeded', details: { limit: 60, scope: 'session' } }),
      new ProxyError('server_shutting_down'),
    ];
    for (const error of ended) {
      const back = errorOfEndReason(JSON.parse(JSON.stringify(endReasonOf(error))));
      expect(back?.toEvent('e')).toEqual(error.toEvent('e'));
      expect([back?.closeCode, back?.closeReason]).toEqual([error.closeCode, error.closeReason]);
    }
  });

  it('nothing, cleared, or not one this version makes: null (the upstream\'s close goes on)', () => {
    const good = { code: 'budget_exceeded', message: 'm', closeCode: 4002 };
    expect(errorOfEndReason(good)).not.toBeNull();
    for (const bad of [undefined, null, 'budget_exceeded', { ...good, code: 'no_such_code' }, { ...good, code: 'toString' }, { ...good, closeCode: 4999 }, { ...good, closeCode: '4002' }, { ...good, message: 7 }]) {
      expect(errorOfEndReason(bad)).toBeNull();
    }
    // Details that are not small facts are dropped, not passed on.
    expect(errorOfEndReason({ ...good, details: { nested: { x: 1 } } })?.details).toBeNull();
  });
});

describe('the app\'s update, through the store record', () => {
  it('reads every choice ResponsesHold knows, with or without the turn detection read there', () => {
    expect(appUpdateOf({ choice: { kind: 'untouched' } })).toEqual({ choice: { kind: 'untouched' } });
    expect(appUpdateOf({ choice: { kind: 'off' }, turnDetection: null })).toEqual({ choice: { kind: 'off' }, turnDetection: null });
    expect(appUpdateOf({ choice: { kind: 'set', createResponse: false }, turnDetection: { type: 'server_vad' } })).toEqual({ choice: { kind: 'set', createResponse: false }, turnDetection: { type: 'server_vad' } });
    expect(appUpdateOf({ choice: { kind: 'set', createResponse: null } })).toEqual({ choice: { kind: 'set', createResponse: null } });
  });

  it('the answer the turn detection was read from (its event id) comes back; one that is no string, or longer than an event id gets, is left out', () => {
    expect(appUpdateOf({ choice: { kind: 'untouched' }, turnDetection: { type: 'server_vad' }, answerEventId: 'event_abc' })).toEqual({ choice: { kind: 'untouched' }, turnDetection: { type: 'server_vad' }, answerEventId: 'event_abc' });
    for (const answerEventId of [7, null, { id: 'event_abc' }, 'e'.repeat(257)]) {
      expect(appUpdateOf({ choice: { kind: 'off' }, turnDetection: null, answerEventId })).toEqual({ choice: { kind: 'off' }, turnDetection: null });
    }
  });

  it('absent or unreadable: null (the hold keeps waiting)', () => {
    for (const bad of [undefined, null, {}, { choice: null }, { choice: { kind: 'maybe' } }, { choice: { kind: 'set', createResponse: 'yes' } }, { choice: { kind: 'set' } }]) {
      expect(appUpdateOf(bad)).toBeNull();
    }
  });
});
