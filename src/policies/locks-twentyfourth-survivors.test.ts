import { describe, expect, it } from 'vitest';
import { FakeSession, LoggedSession } from '../../test/support/fake-session.js';
import { policyFrom, wire } from '../../test/policies/support.js';
import type { CarriedUsage, Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import type { CompiledPolicy } from './compile.js';
import { LockFilter } from './locks.js';

/**
 * Written against the mutants of the locks' takeover branch, #relock and #cannotHold that survived
 * their tests (twenty-fourth session: test/mutation/open-survivors.md, "twenty-fourth"). Only the
 * red-team socket test (test/calls/redteam-23c-takeover-gap) covered a call taken over, and it waits
 * out a lease per case: these read the same branch through the filter.
 */

const CANNOT = "The call's session was changed in a way the policy cannot put back: tracing was switched on, which the policy keeps off (it cannot be switched off once on); it was ended.";
const created = (session: Record<string, unknown>) => wire({ type: 'session.created', session: { type: 'realtime', ...session } });
const updated = (session: Record<string, unknown>) => wire({ type: 'session.updated', session: { type: 'realtime', ...session } });

/** A call's sideband; `takenOver`: the call had a sideband before (CarriedUsage.takenOver). */
function sideband<S extends FakeSession>(session: S, takenOver: boolean): S {
  const carried: CarriedUsage = { startedAtWallMs: 0, tokens: 0, settled: () => {}, ...(takenOver ? { takenOver: true } : {}) };
  return Object.assign(session, { callId: 'rtc_1', carried });
}

function setup(policy: CompiledPolicy, session: FakeSession) {
  const filter = new LockFilter(session, policy);
  return { session, server: (f: Frame) => session.fromServer(filter, f) as Verdict };
}

describe('a call taken over: its session.created is relocked as a session.updated is', () => {
  it('tracing on under a lock that keeps it off ends the call, nothing sent; a new call is sent the locked state', async () => {
    const policy = await policyFrom('locks:\n  tracing: { value: null }\n  instructions: { locked: "L" }');
    const taken = setup(policy, sideband(new FakeSession(), true));
    expect(taken.server(created({ instructions: 'other', tracing: 'auto' })).kind).toBe('continue');
    expect(taken.session.closedWith?.code).toBe('governance_failed');
    expect(taken.session.closedWith?.message).toBe(CANNOT);
    expect(taken.session.closedWith?.details).toEqual({ policy: 'test' });
    expect(taken.session.reports).toEqual([{ kind: 'lock', field: 'session', action: 'rejected', direction: 'server' }]);
    // Ended: no put-back of the instructions after it.
    expect(taken.session.upstream).toEqual([]);

    // Control: the same session.created on a call starting now is only the locked state to send
    // (a tracing lock's null is never sent: the call was created with tracing off).
    const fresh = setup(policy, sideband(new FakeSession(), false));
    fresh.server(created({ instructions: 'other', tracing: 'auto' }));
    expect(fresh.session.closedWith).toBeNull();
    expect(fresh.session.upstream).toEqual([{ type: 'session.update', session: { type: 'realtime', instructions: 'L' } }]);
  });

  it('what a lock removes is taken out; nothing is sent when nothing differs', async () => {
    const policy = await policyFrom('locks:\n  instructions: { locked: "L" }');
    const removed = setup(policy, sideband(new FakeSession(), true));
    removed.server(created({ instructions: 'L', prompt: { id: 'pmpt_x' } }));
    expect(removed.session.upstream).toEqual([{ type: 'session.update', session: { type: 'realtime', prompt: null } }]);
    expect(removed.session.closedWith).toBeNull();

    const same = setup(policy, sideband(new FakeSession(), true));
    same.server(created({ instructions: 'L' }));
    expect(same.session.upstream).toEqual([]);
    expect(same.session.closedWith).toBeNull();
    expect(same.session.reports).toEqual([]);
  });

  it('the put-back is logged (debug) with when it was sent: after a takeover, after a new call\'s session.created, beyond an early update', async () => {
    const policy = await policyFrom('locks:\n  instructions: { locked: "L" }');
    const sent = (s: LoggedSession) => s.lines.filter((l) => l['msg'] === 'locked session state sent upstream').map((l) => [l['when'], l['fields']]);
    const taken = sideband(new LoggedSession({ level: 'debug' }), true);
    setup(policy, taken).server(created({ instructions: 'x' }));
    expect(sent(taken)).toEqual([['after session.created (a call taken over)', ['instructions']]]);
    const fresh = sideband(new LoggedSession({ level: 'debug' }), false);
    setup(policy, fresh).server(created({ instructions: 'x' }));
    expect(sent(fresh)).toEqual([['after session.created', ['instructions']]]);
    // A session whose client sent an update before session.created: what it shows beyond that update.
    const early = new LoggedSession({ level: 'debug' });
    const rig = new LockFilter(early, policy);
    early.fromClient(rig, wire({ type: 'session.update', event_id: 'evt_early', session: { type: 'realtime', audio: { output: { voice: 'cedar' } } } }));
    early.fromServer(rig, created({ instructions: 'x' }));
    expect(sent(early)).toEqual([['after session.created (beyond what went before it)', ['instructions']]]);
  });
});

describe('a session.updated the policy cannot put back', () => {
  it('ends the call without sending the rest of the put-back, nor reporting it rewritten', async () => {
    const { server, session } = setup(await policyFrom('locks:\n  tracing: { value: null }\n  instructions: { locked: "L" }'), sideband(new FakeSession(), false));
    server(updated({ instructions: 'other', tracing: 'auto' }));
    expect(session.closedWith?.message).toBe(CANNOT);
    expect(session.upstream).toEqual([]);
    expect(session.reports).toEqual([{ kind: 'lock', field: 'session', action: 'rejected', direction: 'server' }]);
  });
});
