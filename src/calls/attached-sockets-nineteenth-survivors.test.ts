/**
 * Survivors of the nineteenth session's mutation run of src/calls/attached-sockets.ts (with
 * attached-sockets.test.ts): the per-tenant bound of a tenant allowed more than one session, the
 * ledger's key of a tenant's attached sockets, the handoff timer of an admission whose socket never
 * opened, and the release that gives places back once.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdmissionTicket } from '../pipeline/filter.js';
import { AttachedSockets, callSocketsKey, SharedAttachPlaces, tenantSocketsKey, type SlotLedger } from './attached-sockets.js';

/** The ledger's counted sets in memory, with every release it was asked for. */
function recordingLedger() {
  const sets = new Map<string, Set<string>>();
  const releases: string[] = [];
  const ledger: SlotLedger = {
    acquireSlot(key, token, max) {
      const set = sets.get(key) ?? new Set<string>();
      sets.set(key, set);
      if (set.size >= max) return false;
      set.add(token);
      return true;
    },
    releaseSlot(key, token) {
      releases.push(key);
      sets.get(key)?.delete(token);
    },
  };
  return { ledger, releases, held: (key: string) => sets.get(key)?.size ?? 0 };
}

const three = { id: 'three', maxConcurrentSessions: 3 };
const none = { id: 'none', maxConcurrentSessions: 0 };

describe('a tenant allowed n sessions holds n times the per-call bound (n at least 1)', () => {
  it('in the process: 3 sessions × 2 sockets over three calls, the seventh refused; a limit of 0 counts as one', () => {
    const a = new AttachedSockets(2);
    for (const call of ['rtc_1', 'rtc_2', 'rtc_3']) {
      expect(a.attach(call, three)).not.toBeNull();
      expect(a.attach(call, three)).not.toBeNull();
    }
    expect([a.full('rtc_4', three), a.attach('rtc_4', three)]).toEqual([true, null]);
    expect(a.attach('rtc_5', none)).not.toBeNull();
    expect(a.attach('rtc_6', none)).not.toBeNull();
    expect(a.attach('rtc_7', none)).toBeNull();
  });

  it('in the ledger: the same bound, the tenant\'s set holding six', async () => {
    const { ledger, held } = recordingLedger();
    const places = new SharedAttachPlaces(ledger, () => 0, 2);
    for (const call of ['rtc_1', 'rtc_2', 'rtc_3']) {
      expect(await places.take(new AdmissionTicket(), call, three)).toBe(true);
      expect(await places.take(new AdmissionTicket(), call, three)).toBe(true);
    }
    expect(await places.take(new AdmissionTicket(), 'rtc_4', three)).toBe(false);
    expect(held(tenantSocketsKey('three'))).toBe(6);
    expect(await places.take(new AdmissionTicket(), 'rtc_5', none)).toBe(true);
    expect(await places.take(new AdmissionTicket(), 'rtc_6', none)).toBe(true);
    expect(await places.take(new AdmissionTicket(), 'rtc_7', none)).toBe(false);
  });
});

describe('sockets without a tenant are counted per call only', () => {
  it('no tenant is counted', () => {
    const a = new AttachedSockets();
    const release = a.attach('rtc_1')!;
    expect([a.calls, a.tenants]).toEqual([1, 0]);
    release();
    expect([a.calls, a.tenants]).toEqual([0, 0]);
  });
});

describe("a tenant's attached sockets in the ledger", () => {
  it('are a set of their own per tenant, never its concurrent-session slots (the set named by its id)', async () => {
    expect([callSocketsKey('rtc_1'), tenantSocketsKey('acme')]).toEqual(['call-sockets:rtc_1', 'tenant-call-sockets:acme']);
    const { ledger, held } = recordingLedger();
    const places = new SharedAttachPlaces(ledger, () => 0, 1);
    const acme = { id: 'acme', maxConcurrentSessions: 1 };
    const globex = { id: 'globex', maxConcurrentSessions: 1 };
    expect(await places.take(new AdmissionTicket(), 'rtc_1', acme)).toBe(true);
    // Another tenant's socket is not counted against acme's bound.
    expect(await places.take(new AdmissionTicket(), 'rtc_2', globex)).toBe(true);
    expect([held('acme'), held('globex'), held(tenantSocketsKey('acme')), held(tenantSocketsKey('globex'))]).toEqual([0, 0, 1, 1]);
  });
});

describe('places parked for a socket that never opens', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('go back after the 30 s handoff', async () => {
    vi.useFakeTimers();
    const { ledger, held } = recordingLedger();
    const places = new SharedAttachPlaces(ledger, () => 0);
    const ticket = new AdmissionTicket();
    expect(await places.take(ticket, 'rtc_1', { id: 'acme', maxConcurrentSessions: 1 })).toBe(true);
    vi.advanceTimersByTime(29_999);
    expect([places.parked, held(callSocketsKey('rtc_1'))]).toEqual([1, 1]);
    vi.advanceTimersByTime(1);
    expect([places.parked, held(callSocketsKey('rtc_1')), held(tenantSocketsKey('acme'))]).toEqual([0, 0, 0]);
    expect(places.claim(ticket)).toBeNull();
  });
});

describe("a claimed socket's release", () => {
  it('asks the ledger once per place, however often it is called', async () => {
    const { ledger, releases } = recordingLedger();
    const places = new SharedAttachPlaces(ledger, () => 0);
    const ticket = new AdmissionTicket();
    expect(await places.take(ticket, 'rtc_1', { id: 'acme', maxConcurrentSessions: 1 })).toBe(true);
    const release = places.claim(ticket)!;
    release();
    release();
    expect(releases).toEqual([callSocketsKey('rtc_1'), tenantSocketsKey('acme')]);
  });
});
