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
});
