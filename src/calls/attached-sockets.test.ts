import { describe, expect, it } from 'vitest';
import { AdmissionTicket } from '../pipeline/filter.js';
import { AttachedSockets, callSocketsKey, MAX_CLIENT_SOCKETS_PER_CALL, SharedAttachPlaces, tenantSocketsKey, type SlotLedger } from './attached-sockets.js';

describe('a call\'s client sockets, counted per call', () => {
  it(`at most ${MAX_CLIENT_SOCKETS_PER_CALL} by default; each call apart; a release counts out once; an empty call is forgotten`, () => {
    const a = new AttachedSockets();
    const releases = Array.from({ length: MAX_CLIENT_SOCKETS_PER_CALL }, () => a.attach('rtc_1'));
    expect(releases.every((r) => r !== null)).toBe(true);
    expect([a.full('rtc_1'), a.attach('rtc_1')]).toEqual([true, null]);
    expect([a.full('rtc_2'), a.attach('rtc_2') !== null]).toEqual([false, true]);
    releases[0]!();
    releases[0]!();
    expect(a.full('rtc_1')).toBe(false);
    expect(a.attach('rtc_1')).not.toBeNull();
    expect(a.full('rtc_1')).toBe(true);
    const small = new AttachedSockets(1);
    const only = small.attach('rtc_3')!;
    expect(small.attach('rtc_3')).toBeNull();
    only();
    expect(small.calls).toBe(0);
  });

  it('per tenant: at most the per-call bound for each concurrent session it is allowed, over all its calls; none without a limit', () => {
    const a = new AttachedSockets(2);
    const one = { id: 'capped', maxConcurrentSessions: 1 };
    const first = a.attach('rtc_1', one)!;
    expect(a.attach('rtc_1', one)).not.toBeNull();
    // Another call of the same tenant: the tenant's two are taken.
    expect([a.full('rtc_2', one), a.attach('rtc_2', one)]).toEqual([true, null]);
    first();
    expect(a.attach('rtc_2', one)).not.toBeNull();
    const unlimited = { id: 'free', maxConcurrentSessions: null };
    for (const call of ['rtc_3', 'rtc_4', 'rtc_5']) expect(a.attach(call, unlimited)).not.toBeNull();
    expect(a.tenants).toBe(2);
  });
});

/** The ledger's counted sets, in memory; `answer` overrides every acquire (a ledger that cannot answer). */
function fakeLedger() {
  const sets = new Map<string, Set<string>>();
  const ledger: SlotLedger & { answer: 'unavailable' | null } = {
    answer: null,
    acquireSlot(key, token, max) {
      if (ledger.answer) return ledger.answer;
      const set = sets.get(key) ?? new Set<string>();
      sets.set(key, set);
      if (set.size >= max) return false;
      set.add(token);
      return true;
    },
    releaseSlot(key, token) {
      sets.get(key)?.delete(token);
    },
  };
  return { ledger, held: (key: string) => sets.get(key)?.size ?? 0 };
}

describe("a call's client sockets, counted in the ledger too (relay workers, instances)", () => {
  const one = { id: 'capped', maxConcurrentSessions: 1 };

  it('an admission takes the call\'s place and the tenant\'s under its ticket; the socket claims them; its release gives them back once', async () => {
    const { ledger, held } = fakeLedger();
    const places = new SharedAttachPlaces(ledger, () => 0, 2);
    const first = new AdmissionTicket();
    expect(await places.take(first, 'rtc_1', one)).toBe(true);
    expect(await places.take(new AdmissionTicket(), 'rtc_1', one)).toBe(true);
    expect([held(callSocketsKey('rtc_1')), held(tenantSocketsKey('capped'))]).toEqual([2, 2]);
    // The call is full; another call of the tenant finds the tenant full, and takes no call place.
    expect(await places.take(new AdmissionTicket(), 'rtc_1', one)).toBe(false);
    expect(await places.take(new AdmissionTicket(), 'rtc_2', one)).toBe(false);
    expect(held(callSocketsKey('rtc_2'))).toBe(0);
    const release = places.claim(first)!;
    expect(places.claim(first)).toBeNull();
    release();
    release();
    expect([held(callSocketsKey('rtc_1')), held(tenantSocketsKey('capped'))]).toEqual([1, 1]);
  });

  it('a withdrawn admission gives its places back; a tenant without a limit takes the call\'s only', async () => {
    const { ledger, held } = fakeLedger();
    const places = new SharedAttachPlaces(ledger, () => 0);
    const ticket = new AdmissionTicket();
    expect(await places.take(ticket, 'rtc_1', one)).toBe(true);
    places.withdraw(ticket);
    expect([held(callSocketsKey('rtc_1')), held(tenantSocketsKey('capped')), places.parked]).toEqual([0, 0, 0]);
    expect(await places.take(new AdmissionTicket(), 'rtc_1', { id: 'free', maxConcurrentSessions: null })).toBe(true);
    expect([held(callSocketsKey('rtc_1')), held(tenantSocketsKey('free'))]).toEqual([1, 0]);
  });

  it('a ledger that cannot answer takes nothing and refuses nothing (the process\'s own count bounds)', async () => {
    const { ledger } = fakeLedger();
    ledger.answer = 'unavailable';
    const places = new SharedAttachPlaces(ledger, () => 0, 1);
    const ticket = new AdmissionTicket();
    expect(await places.take(ticket, 'rtc_1', one)).toBe(true);
    expect(await places.take(new AdmissionTicket(), 'rtc_1', one)).toBe(true);
    expect([places.parked, places.claim(ticket)]).toEqual([0, null]);
  });
});
