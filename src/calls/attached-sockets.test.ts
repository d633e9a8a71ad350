import { describe, expect, it } from 'vitest';
import { AttachedSockets, MAX_CLIENT_SOCKETS_PER_CALL } from './attached-sockets.js';

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
