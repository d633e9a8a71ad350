import { describe, expect, it } from 'vitest';
import { MemoryBudget } from './memory-budget.js';

describe('MemoryBudget (global bytes held for sessions)', () => {
  it('starts empty with its limit', () => {
    const b = new MemoryBudget(1_000);
    expect(b.limit).toBe(1_000);
    expect(b.used).toBe(0);
    expect(b.exhausted).toBe(false);
  });

  it('reserves what fits, up to exactly the limit, and counts it at once', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserve(400)).toBe(true);
    expect(b.used).toBe(400);
    expect(b.exhausted).toBe(false);
    expect(b.tryReserve(600)).toBe(true);
    expect(b.used).toBe(1_000);
    expect(b.exhausted).toBe(true);
  });

  it('refuses a reservation that would exceed the limit by one byte, and counts nothing for it', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserve(999)).toBe(true);
    expect(b.tryReserve(2)).toBe(false);
    expect(b.used).toBe(999);
    expect(b.exhausted).toBe(false);
    expect(b.tryReserve(1)).toBe(true);
    expect(b.used).toBe(1_000);
  });

  it('a frame larger than the whole budget never fits, even when nothing is held', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserve(1_001)).toBe(false);
    expect(b.used).toBe(0);
  });

  it('once at the limit, nothing more fits until a resync releases what sessions no longer hold', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserve(1_000)).toBe(true);
    expect(b.tryReserve(1)).toBe(false);
    b.resync(300);
    expect(b.used).toBe(300);
    expect(b.exhausted).toBe(false);
    expect(b.tryReserve(700)).toBe(true);
    expect(b.tryReserve(1)).toBe(false);
    b.resync(0);
    expect(b.used).toBe(0);
    expect(b.tryReserve(1_000)).toBe(true);
  });

  it('a resync above the limit (send buffers) makes it exhausted and refuses every reservation', () => {
    const b = new MemoryBudget(1_000);
    b.resync(1_500);
    expect(b.used).toBe(1_500);
    expect(b.exhausted).toBe(true);
    expect(b.tryReserve(1)).toBe(false);
    b.resync(1_000);
    expect(b.exhausted).toBe(true);
    b.resync(999);
    expect(b.exhausted).toBe(false);
  });
});

describe('MemoryBudget: request bodies (held until released, not resynced)', () => {
  it('counts held bytes with the sessions, refuses past the limit, and keeps them across a resync', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryHold(600)).toBe(true);
    expect(b.held).toBe(600);
    expect(b.used).toBe(600);
    expect(b.tryReserve(500)).toBe(false);
    expect(b.tryHold(401)).toBe(false);
    expect(b.held).toBe(600);
    b.resync(400);
    expect(b.used).toBe(1_000);
    expect(b.exhausted).toBe(true);
    b.resync(0);
    expect(b.used).toBe(600);
    b.release(600);
    expect(b.held).toBe(0);
    expect(b.used).toBe(0);
  });

  it('hold counts even past the limit (admin bodies), and release gives it back', () => {
    const b = new MemoryBudget(1_000);
    b.resync(1_000);
    b.hold(50);
    expect(b.used).toBe(1_050);
    expect(b.tryHold(1)).toBe(false);
    b.release(50);
    b.resync(0);
    expect(b.used).toBe(0);
  });

  it('a release never drives the figure below zero', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryHold(10)).toBe(true);
    b.release(25);
    expect(b.held).toBe(0);
    expect(b.tryHold(1_000)).toBe(true);
  });
});
