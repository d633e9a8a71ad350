import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IdleTimer } from './idle.js';

describe('IdleTimer', () => {
  let now = 0;
  beforeEach(() => {
    vi.useFakeTimers();
    now = 0;
  });
  afterEach(() => vi.useRealTimers());

  const advance = (ms: number) => {
    now += ms;
    vi.advanceTimersByTime(ms);
  };

  it('fires once the owner has not touched it for the whole period, measured from the last touch', () => {
    const idle = vi.fn();
    const t = new IdleTimer(1000, idle, () => now);
    t.touch();
    advance(600);
    t.touch();
    advance(999);
    expect(idle).not.toHaveBeenCalled();
    advance(1);
    expect(idle).toHaveBeenCalledTimes(1);
    // Nothing more until the next touch, and then a whole period again.
    advance(5000);
    expect(idle).toHaveBeenCalledTimes(1);
    t.touch();
    advance(999);
    expect(idle).toHaveBeenCalledTimes(1);
    advance(1);
    expect(idle).toHaveBeenCalledTimes(2);
  });

  it('keeps one timer however often it is touched, and cancel stops it', () => {
    const idle = vi.fn();
    const t = new IdleTimer(1000, idle, () => now);
    for (let i = 0; i < 100; i++) {
      t.touch();
      advance(5);
    }
    expect(vi.getTimerCount()).toBe(1);
    t.cancel();
    expect(vi.getTimerCount()).toBe(0);
    advance(5000);
    expect(idle).not.toHaveBeenCalled();
  });

  it('measures quiet time on the monotonic clock by default', async () => {
    vi.useRealTimers();
    const idle = vi.fn();
    const t = new IdleTimer(30, idle);
    t.touch();
    await vi.waitFor(() => expect(idle).toHaveBeenCalledTimes(1), { timeout: 2000, interval: 10 });
  });

  it('never keeps the process alive', () => {
    vi.useRealTimers();
    const t = new IdleTimer(60_000, () => undefined);
    const spy = vi.spyOn(globalThis, 'setTimeout');
    t.touch();
    const timer = spy.mock.results[0]!.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    t.cancel();
    spy.mockRestore();
  });
});
