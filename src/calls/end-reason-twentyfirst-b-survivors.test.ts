import { describe, expect, it } from 'vitest';
import { appUpdateOf, errorOfEndReason } from './end-reason.js';

/**
 * The survivors of src/calls/end-reason.ts (d251fdd), twenty-first session: what another process
 * wrote in the call's record is read back only as the proxy writes it (small facts as details, a
 * string code the catalogue has, an object for turn detection), and a failed store read settles at
 * once (not at the bound).
 */
const GOOD = { code: 'budget_exceeded', message: 'The call reached its cost cap and was ended.', closeCode: 4002 };

describe('errorOfEndReason, survivors', () => {
  it('details of every small kind come back: null, string, number, boolean', () => {
    const details = { limit: 60, scope: 'session', hard: true, left: null };
    expect(errorOfEndReason({ ...GOOD, details })?.details).toEqual(details);
  });

  it('details cleared (null), or with one value not a small fact: no details, never a throw', () => {
    const cleared = errorOfEndReason({ ...GOOD, details: null });
    expect([cleared?.code, cleared?.details]).toEqual(['budget_exceeded', null]);
    // One nested value among facts: all dropped (none passed on that this version would not write).
    expect(errorOfEndReason({ ...GOOD, details: { limit: 60, nested: { x: 1 } } })?.details).toBeNull();
  });

  it('a code that is not a string is not one the proxy makes, even one a string conversion would find', () => {
    expect(errorOfEndReason({ ...GOOD, code: ['budget_exceeded'] })).toBeNull();
  });

  it('every close code the proxy uses reads back (the table of names is whole)', () => {
    for (const closeCode of [1000, 1011, 4002]) expect(errorOfEndReason({ ...GOOD, closeCode })?.closeCode).toBe(closeCode);
  });
});

describe('appUpdateOf, survivors', () => {
  it('a turn detection that is not an object (a string, a number, an array) is not read: the choice alone', () => {
    for (const turnDetection of ['server_vad', 7, true, [{ type: 'server_vad' }]]) {
      const seen = appUpdateOf({ choice: { kind: 'off' }, turnDetection });
      expect(seen).toEqual({ choice: { kind: 'off' } });
      expect(seen && 'turnDetection' in seen).toBe(false);
    }
  });

  it('a kind this version does not know is not read, whatever createResponse says', () => {
    expect(appUpdateOf({ choice: { kind: 'maybe', createResponse: true } })).toBeNull();
    expect(appUpdateOf({ choice: { kind: 'maybe', createResponse: null } })).toBeNull();
  });
});
