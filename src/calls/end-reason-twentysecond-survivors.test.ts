import { describe, expect, it } from 'vitest';
import { appUpdateOf } from './end-reason.js';

// Written against the mutants of appUpdateOf's answer event id (1c7f3e4) that survived its tests
// (twenty-second session).

describe('the answer event id of a recorded app update', () => {
  it('an id of exactly 256 characters is read; 257 is not', () => {
    const id = 'e'.repeat(256);
    expect(appUpdateOf({ choice: { kind: 'untouched' }, turnDetection: null, answerEventId: id })).toEqual({ choice: { kind: 'untouched' }, turnDetection: null, answerEventId: id });
    expect(appUpdateOf({ choice: { kind: 'untouched' }, turnDetection: null, answerEventId: `${id}e` })).toEqual({ choice: { kind: 'untouched' }, turnDetection: null });
  });

  it('a record without the turn detection read keeps its answer id', () => {
    expect(appUpdateOf({ choice: { kind: 'set', createResponse: true }, answerEventId: 'event_abc' })).toEqual({ choice: { kind: 'set', createResponse: true }, answerEventId: 'event_abc' });
  });
});
