import { describe, expect, it } from 'vitest';
import { DuplicateMemberError, findMemberProblem, MAX_CONTROL_DEPTH, memberProblemError, parseStrict } from './strict-json.js';

// The detector's exactness (every spelling of a repeated name, nothing else) is proven against a
// reference parser in test/governance/edges-json.test.ts; here: what the refusal says and to whom.

const strict = (text: string): unknown => parseStrict(Buffer.from(text, 'utf8'));
function refusal(text: string): DuplicateMemberError {
  try {
    strict(text);
  } catch (err) {
    if (err instanceof DuplicateMemberError) return err;
    throw err;
  }
  throw new Error(`${text} was accepted`);
}

describe('parseStrict: the refusal of a repeated member', () => {
  it('names the path and echoes the event_id when it has one reading', () => {
    const err = refusal('{"type":"session.update","event_id":"evt_7","session":{"instructions":"a","instructions":"b"}}');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('DuplicateMemberError');
    expect(err.path).toBe('session.instructions');
    expect(err.reason).toBe('duplicate_member');
    expect(err.eventId).toBe('evt_7');
    expect(err.message).toBe('the member "session.instructions" occurs more than once');
  });

  it('does not echo an event_id that is itself repeated, or one that is not a string', () => {
    expect(refusal('{"event_id":"a","event_id":"b"}').eventId).toBeNull();
    expect(refusal('{"event_id":7,"x":1,"x":2}').eventId).toBeNull();
    expect(refusal('{"x":1,"x":2}').eventId).toBeNull();
    // A member named like event_id deeper down is not the event's.
    expect(refusal('{"event_id":"top","s":{"event_id":"a","event_id":"b"}}').eventId).toBe('top');
  });

  it('too deep: its own reason and message, the event_id echoed', () => {
    const err = refusal(`{"event_id":"deep","v":${'['.repeat(MAX_CONTROL_DEPTH)}${']'.repeat(MAX_CONTROL_DEPTH)}}`);
    expect(err.reason).toBe('too_deep');
    expect(err.eventId).toBe('deep');
    expect(err.message).toBe(`the value at "${err.path}" is nested more than ${MAX_CONTROL_DEPTH} levels deep`);
    expect(new DuplicateMemberError('p').reason).toBe('duplicate_member');
    expect(new DuplicateMemberError('p').eventId).toBeNull();
  });

  it('scalars and arrays parse as JSON does; arrays are checked too (no event_id to echo)', () => {
    expect(strict('5')).toBe(5);
    expect(strict('null')).toBeNull();
    expect(strict('"x"')).toBe('x');
    const err = refusal('[{"a":1,"a":2}]');
    expect(err.path).toBe('[].a');
    expect(err.eventId).toBeNull();
  });

  it('a long member name is cut to 64 characters in the path', () => {
    const long = 'k'.repeat(65);
    expect(refusal(`{"${long}":{"a":1,"a":2}}`).path).toBe(`${'k'.repeat(64)}….a`);
    const exact = 'k'.repeat(64);
    expect(refusal(`{"${exact}":{"a":1,"a":2}}`).path).toBe(`${exact}.a`);
  });

  it('findMemberProblem stops at an unterminated string (it never loops or throws on a torn frame)', () => {
    expect(findMemberProblem(Buffer.from('{"a":1,"a'))).toBeNull();
    expect(findMemberProblem(Buffer.from('{"a":"x'))).toBeNull();
  });
});

describe('memberProblemError: what the client receives', () => {
  it('a repeated member: invalid_event, the path as param, the event_id, the reason; the session goes on', () => {
    const e = memberProblemError('session.update', { reason: 'duplicate_member', path: 'session.tools', eventId: 'evt_1' });
    expect(e.toEvent('event_x')).toEqual({
      type: 'error',
      event_id: 'event_x',
      error: {
        type: 'invalid_request_error',
        code: 'invalid_event',
        message: "The session.update event has the member 'session.tools' more than once; every member name must be unique.",
        param: 'session.tools',
        event_id: 'evt_1',
        details: { reason: 'duplicate_member' },
      },
    });
    expect(e.closesSession).toBe(false);
  });

  it('too deep, and an event of unknown type without an event_id', () => {
    const e = memberProblemError(null, { reason: 'too_deep', path: 'a[]' });
    expect(e.message).toBe(`The event nests deeper than ${MAX_CONTROL_DEPTH} levels at 'a[]'.`);
    expect(e.param).toBe('a[]');
    expect(e.eventId).toBeNull();
    expect(e.details).toEqual({ reason: 'too_deep' });
    expect(memberProblemError(null, { reason: 'duplicate_member', path: 'x', eventId: null }).message).toBe("The event has the member 'x' more than once; every member name must be unique.");
  });
});
