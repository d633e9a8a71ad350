/**
 * Survivors of the eighteenth session's mutation run of src/metering/filter.ts from `SlotHandoff`
 * to the end of `createMeteringFilterFactory` (with filter.test.ts and redteam-18-slot-ticket): the
 * slot a call's check holds (holdSessionSlot; until 2026-12-07 the probe's `alsoHeld`, counted per process),
 * the warning for failMode open on SQLite, and the slot given back when a session cannot be made.
 */
import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { AsyncLedger, setup, T0, tenant } from '../../test/metering/filter-harness.js';
import { AdmissionTicket } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { admissionProbe, holdSessionSlot, type SessionSlotHold } from './session-slots.js';
import type { Ledger } from './ledger.js';

const q: ReadonlyMap<string, string> = new Map([['model', 'gpt-realtime']]);

function asyncSetup(config: Record<string, unknown> = {}) {
  let a!: AsyncLedger;
  const s = setup(config, () => T0, (l) => (a = new AsyncLedger(l)));
  return { ...s, async: a };
}

/** The asynchronous ledger presented as kind `sqlite` (a relay worker's view of the primary's SQLite ledger answers asynchronously too). */
function asSqliteKind(ledger: AsyncLedger): Ledger {
  return new Proxy<Ledger>(ledger, {
    get(target, prop) {
      if (prop === 'kind') return 'sqlite';
      const value: unknown = Reflect.get(target, prop, target);
      // Its methods read private fields: they run on the ledger itself, not on the proxy.
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A session whose timers cannot be set (e.g. it is being torn down): the metering filter's constructor throws with a duration limit. */
class TimerlessSession extends FakeSession {
  override setTimer(): NodeJS.Timeout {
    throw new Error('session torn down');
  }
}

describe("a call's slot, held from its check (holdSessionSlot) until its sideband is admitted (holdsSlot)", () => {
  const admit = (s: ReturnType<typeof setup>, t: ReturnType<typeof tenant>, holds: SessionSlotHold | null = null) =>
    s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket(), ...(holds?.token ? { holdsSlot: holds.token } : {}) });
  const code = (answer: unknown): string | null => (answer instanceof ProxyError ? answer.code : null);

  it('the hold is a slot in the ledger: the tenant\'s other sessions and calls are refused while it is held, its own sideband is admitted', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 1 });
    const offer = await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q });
    if (offer instanceof ProxyError) throw offer;
    expect(offer.held).toBe(true);
    expect(code(await admit(s, t))).toBe('concurrent_sessions_exceeded');
    expect(code(await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q }))).toBe('concurrent_sessions_exceeded');
    expect(code(await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q }))).toBe('concurrent_sessions_exceeded');
    // Its sideband: takes its own offer's slot over.
    expect(await admit(s, t, offer)).toBeNull();
    offer.handOver();
    offer.release();
    offer.release();
    // The slot stays the sideband's: the tenant is still at its one session (a release after the handover gives nothing back).
    expect(code(await admit(s, t))).toBe('concurrent_sessions_exceeded');
    expect(code(await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q }))).toBe('concurrent_sessions_exceeded');
  });

  it('holdsSlot takes the offer\'s own slot over, never one beside it', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 2 });
    expect(await admit(s, t)).toBeNull();
    const offer = await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q });
    if (offer instanceof ProxyError) throw offer;
    // A session and an offer: the limit of 2 is reached for anything else.
    expect(code(await admit(s, t))).toBe('concurrent_sessions_exceeded');
    expect(await admit(s, t, offer)).toBeNull();
    offer.handOver();
    offer.release();
    // The session and the sideband: no room for another call's check.
    expect(code(await holdSessionSlot(s.rt, { tenant: t, model: 'gpt-realtime', query: q }))).toBe('concurrent_sessions_exceeded');
  });

  it('no limit: nothing held, nothing asked of the ledger', async () => {
    const s = asyncSetup();
    const hold = await holdSessionSlot(s.rt, { tenant: tenant(), model: 'gpt-realtime', query: q });
    expect(hold instanceof ProxyError ? hold.code : hold.held).toBe(false);
    expect(s.async.calls).not.toContain('acquireSlot');
  });

  it('a ledger that cannot answer: budget_unavailable, or with failMode open on Redis a hold of nothing', async () => {
    const closed = asyncSetup();
    closed.async.slotUnavailable = true;
    const refused = await holdSessionSlot(closed.rt, { tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q });
    expect(refused instanceof ProxyError && [refused.code, refused.closeCode]).toEqual(['budget_unavailable', 1013]);
    const open = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
    open.async.slotUnavailable = true;
    const hold = await holdSessionSlot(open.rt, { tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q });
    expect(hold instanceof ProxyError ? hold.code : hold.held).toBe(false);
  });

  it('a limit of 0 refuses without asking the ledger', async () => {
    const s = asyncSetup();
    s.async.slotUnavailable = true;
    const e = await holdSessionSlot(s.rt, { tenant: tenant({ maxConcurrentSessions: 0 }), model: 'gpt-realtime', query: q });
    expect(e instanceof ProxyError && [e.code, e.httpStatus, e.details]).toEqual(['concurrent_sessions_exceeded', 429, { limit: 0 }]);
    expect(s.async.calls).not.toContain('acquireSlot');
  });
});

describe('failMode open is the Redis ledger\'s alone', () => {
  it('a ledger of kind sqlite that cannot answer refuses with failMode open (budget_unavailable); one of kind redis admits', async () => {
    let a!: AsyncLedger;
    const sqlite = setup({ ledger: { path: ':memory:', failMode: 'open' } }, () => T0, (l) => asSqliteKind((a = new AsyncLedger(l))));
    a.slotUnavailable = true;
    const refused = await sqlite.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() });
    expect(refused instanceof ProxyError && [refused.code, refused.closeCode]).toEqual(['budget_unavailable', 1013]);
    const redis = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
    redis.async.slotUnavailable = true;
    expect(await redis.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
  });

  const warning = (logs: ReturnType<typeof setup>['logs']) => logs.filter((l) => l.msg.includes('applies to the Redis ledger only'));

  it('failMode open on the SQLite ledger: one warning naming the ledger', () => {
    const s = setup({ ledger: { path: ':memory:', failMode: 'open' } });
    expect(warning(s.logs)).toEqual([expect.objectContaining({ level: 'warn', ledger: 'sqlite', msg: 'metering: ledger.failMode "open" applies to the Redis ledger only; the SQLite ledger fails closed (budget_unavailable)' })]);
  });

  it('no warning for failMode closed on SQLite, nor for failMode open on Redis', () => {
    expect(setup().logs).toEqual([]);
    expect(setup({ ledger: { path: ':memory:', failMode: 'closed' } }).logs).toEqual([]);
    expect(asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } }).logs).toEqual([]);
  });
});

describe('a session that cannot be made gives back the slot its admission took', () => {
  it('the slot is released at once and the error goes on to the caller', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 1, maxSessionDurationSec: 60 });
    const ticket = new AdmissionTicket();
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket })).toBeNull();
    expect(() => s.factory.create(new TimerlessSession({ tenant: t, admission: ticket }))).toThrow('session torn down');
    // The only slot is free again (not after the 30 s handoff wait).
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
  });

  it('one whose admission took no slot releases nothing', () => {
    const s = asyncSetup();
    const t = tenant({ maxSessionDurationSec: 60 });
    expect(() => s.factory.create(new TimerlessSession({ tenant: t, admission: new AdmissionTicket() }))).toThrow('session torn down');
    expect(() => s.factory.create(new TimerlessSession({ tenant: t }))).toThrow('session torn down');
    expect(s.async.calls).not.toContain('releaseSlot');
  });
});
