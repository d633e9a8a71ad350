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
