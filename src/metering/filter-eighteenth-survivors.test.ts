/**
 * Survivors of the eighteenth session's mutation run of src/metering/filter.ts from `SlotHandoff`
 * to the end of `createMeteringFilterFactory` (with filter.test.ts and redteam-18-slot-ticket): the
 * admission probe's `alsoHeld` (the calls module's offers in flight), which ledgers fail open,
 * the warning for failMode open on SQLite, and the slot given back when a session cannot be made.
 */
import { describe, expect, it } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { AsyncLedger, setup, T0, tenant } from '../../test/metering/filter-harness.js';
import { AdmissionTicket } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { admissionProbe } from './filter.js';
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

describe('admission probe: sessions already on their way (alsoHeld) take room', () => {
  it('a slot must be free beside the offers in flight', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 2 });
    expect(await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q }, 1)).toBeNull();
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
    // One session runs and one offer is in flight: the limit of 2 is reached.
    const e = await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q }, 1);
    expect(e?.code).toBe('concurrent_sessions_exceeded');
    expect(await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q }, 0)).toBeNull();
  });

  for (const alsoHeld of [1, 2]) {
    it(`offers in flight filling the limit (${alsoHeld} of 1): refused without asking the ledger, even a ledger that cannot answer`, async () => {
      const s = asyncSetup();
      s.async.slotUnavailable = true;
      const e = await admissionProbe(s.rt, { tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q }, alsoHeld);
      expect(e).toBeInstanceOf(ProxyError);
      expect([e?.code, e?.httpStatus, e?.details]).toEqual(['concurrent_sessions_exceeded', 429, { limit: 1 }]);
      expect(s.async.calls).not.toContain('acquireSlot');
    });
  }
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
