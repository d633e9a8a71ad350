import { describe, expect, it } from 'vitest';
import { LingeringSockets, uwsEndLingerMs } from './lingering-sockets.js';

describe('uwsEndLingerMs: uWS end timeout (its margin) plus one timer sweep', () => {
  it.each([
    [8, 8_000],
    [15, 8_000],
    [16, 12_000],
    [31, 12_000],
    [32, 20_000],
    [120, 20_000],
    [960, 20_000],
  ])('idleTimeoutSec %i: %i ms', (idle, ms) => {
    expect(uwsEndLingerMs(idle)).toBe(ms);
  });
});

describe('LingeringSockets', () => {
  it("holds each socket's bytes until its linger has passed, oldest first", () => {
    const l = new LingeringSockets(8); // 8 s
    l.add(100, 1_000);
    l.add(0, 1_000); // nothing unsent: not kept
    l.add(50, 3_000);
    expect(l.count).toBe(2);
    expect(l.held(1_000)).toBe(150);
    expect(l.held(8_999)).toBe(150);
    expect(l.held(9_000)).toBe(50);
    expect(l.count).toBe(1);
    expect(l.held(10_999)).toBe(50);
    expect(l.held(11_000)).toBe(0);
    expect(l.count).toBe(0);
    l.add(7, 20_000);
    expect(l.held(20_000)).toBe(7);
  });
});
