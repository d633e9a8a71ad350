import { describe, expect, it } from 'vitest';
import { defaultTenantShare, MemoryBudget, tenantShareExceeded } from './memory-budget.js';

describe('MemoryBudget (global bytes held for sessions)', () => {
  it('starts empty with its limit', () => {
    const b = new MemoryBudget(1_000);
    expect(b.limit).toBe(1_000);
    expect(b.used).toBe(0);
    expect(b.exhausted).toBe(false);
  });

  it('reserves what fits, up to exactly the limit, and counts it at once', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserveFor('t', 400)).toBeNull();
    expect(b.used).toBe(400);
    expect(b.exhausted).toBe(false);
    expect(b.tryReserveFor('t', 600)).toBeNull();
    expect(b.used).toBe(1_000);
    expect(b.exhausted).toBe(true);
  });

  it('refuses a reservation that would exceed the limit by one byte, and counts nothing for it', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserveFor('t', 999)).toBeNull();
    expect(b.tryReserveFor('t', 2)).toBe('budget');
    expect(b.used).toBe(999);
    expect(b.exhausted).toBe(false);
    expect(b.tryReserveFor('t', 1)).toBeNull();
    expect(b.used).toBe(1_000);
  });

  it('a frame larger than the whole budget never fits, even when nothing is held', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserveFor('t', 1_001)).toBe('budget');
    expect(b.used).toBe(0);
  });

  it('once at the limit, nothing more fits until a resync releases what sessions no longer hold', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserveFor('t', 1_000)).toBeNull();
    expect(b.tryReserveFor('t', 1)).toBe('budget');
    b.resync(300);
    expect(b.used).toBe(300);
    expect(b.exhausted).toBe(false);
    expect(b.tryReserveFor('t', 700)).toBeNull();
    expect(b.tryReserveFor('t', 1)).toBe('budget');
    b.resync(0);
    expect(b.used).toBe(0);
    expect(b.tryReserveFor('t', 1_000)).toBeNull();
  });

  it('a resync above the limit (send buffers) makes it exhausted and refuses every reservation', () => {
    const b = new MemoryBudget(1_000);
    b.resync(1_500);
    expect(b.used).toBe(1_500);
    expect(b.exhausted).toBe(true);
    expect(b.tryReserveFor('t', 1)).toBe('budget');
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
    expect(b.tryReserveFor('t', 500)).toBe('budget');
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

describe('MemoryBudget owner shares (request bodies per tenant, 2026-12-06)', () => {
  it('an owner holds at most a quarter of the limit, to the byte; other owners still fit', () => {
    const b = new MemoryBudget(1_000);
    expect(b.ownerShare).toBe(250);
    expect(b.tryHoldFor('tenant:a', 200)).toBeNull();
    expect(b.tryHoldFor('tenant:a', 51)).toBe('share');
    expect(b.heldBy('tenant:a')).toBe(200);
    expect(b.tryHoldFor('tenant:a', 50)).toBeNull();
    expect(b.heldBy('tenant:a')).toBe(250);
    expect(b.tryHoldFor('tenant:a', 1)).toBe('share');
    expect(b.tryHoldFor('tenant:b', 250)).toBeNull();
    expect(b.held).toBe(500);
    expect(b.used).toBe(500);
    expect(b.owners).toBe(2);
  });

  it("the global limit still applies within an owner's share ('budget', nothing counted)", () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserveFor('t', 900)).toBeNull();
    expect(b.tryHoldFor('tenant:a', 101)).toBe('budget');
    expect(b.heldBy('tenant:a')).toBe(0);
    expect(b.owners).toBe(0);
    expect(b.held).toBe(0);
    expect(b.tryHoldFor('tenant:a', 100)).toBeNull();
    expect(b.exhausted).toBe(true);
  });

  it('assign counts bytes already held for an owner, refusing (nothing moved) past its share', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryHold(200)).toBe(true);
    expect(b.assign('tenant:a', 200)).toBe(true);
    expect(b.heldBy('tenant:a')).toBe(200);
    expect(b.held).toBe(200);
    expect(b.tryHold(60)).toBe(true);
    expect(b.assign('tenant:a', 60)).toBe(false);
    expect(b.heldBy('tenant:a')).toBe(200);
    expect(b.assign('tenant:a', 50)).toBe(true);
    expect(b.heldBy('tenant:a')).toBe(250);
    expect(b.assign('tenant:b', 0)).toBe(true);
    expect(b.owners).toBe(1);
  });

  it('releaseFor gives the bytes back to the owner and the budget; an owner at 0 is forgotten', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryHoldFor('tenant:a', 250)).toBeNull();
    b.releaseFor('tenant:a', 100);
    expect(b.heldBy('tenant:a')).toBe(150);
    expect(b.held).toBe(150);
    b.releaseFor('tenant:a', 150);
    expect(b.heldBy('tenant:a')).toBe(0);
    expect(b.owners).toBe(0);
    expect(b.held).toBe(0);
    expect(b.tryHoldFor('tenant:a', 250)).toBeNull();
  });

  it('a resync of the sessions does not drop what owners hold', () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryHoldFor('tenant:a', 200)).toBeNull();
    b.resync(0);
    expect(b.used).toBe(200);
    expect(b.heldBy('tenant:a')).toBe(200);
  });
});

describe('MemoryBudget tenant shares (sessions per tenant, 2026-12-07)', () => {
  it('the default share is half with more than one tenant, the whole budget with one', () => {
    expect(defaultTenantShare(0)).toBe(1);
    expect(defaultTenantShare(1)).toBe(1);
    expect(defaultTenantShare(2)).toBe(0.5);
    expect(new MemoryBudget(1_000).tenantLimit).toBe(1_000);
    expect(new MemoryBudget(1_001, 0.5).tenantLimit).toBe(500);
  });

  it("a tenant's frames reserve up to its share, to the byte ('share', nothing counted); another tenant's still fit", () => {
    const b = new MemoryBudget(1_000, 0.5);
    expect(b.tryReserveFor('a', 400)).toBeNull();
    expect(b.tryReserveFor('a', 101)).toBe('share');
    expect(b.sessionBytesOf('a')).toBe(400);
    expect(b.used).toBe(400);
    expect(b.tenantExhausted('a')).toBe(false);
    expect(b.tryReserveFor('a', 100)).toBeNull();
    expect(b.tenantExhausted('a')).toBe(true);
    expect(b.tryReserveFor('a', 1)).toBe('share');
    expect(b.tryReserveFor('b', 500)).toBeNull();
    expect(b.tenantExhausted('b')).toBe(true);
    expect(b.used).toBe(1_000);
    expect(b.tenants).toBe(2);
  });

  it("the global limit still applies within a tenant's share ('budget', nothing counted)", () => {
    const b = new MemoryBudget(1_000, 0.8);
    expect(b.tryHold(500)).toBe(true);
    expect(b.tryReserveFor('a', 501)).toBe('budget');
    expect(b.sessionBytesOf('a')).toBe(0);
    expect(b.tenants).toBe(0);
    expect(b.tryReserveFor('a', 500)).toBeNull();
    expect(b.exhausted).toBe(true);
  });

  it("with the whole budget as its share (one tenant), a full budget is the proxy's: 'budget', never 'share'", () => {
    const b = new MemoryBudget(1_000);
    expect(b.tryReserveFor('a', 600)).toBeNull();
    expect(b.tryReserveFor('a', 401)).toBe('budget');
    expect(b.sessionBytesOf('a')).toBe(600);
  });

  it('a resync replaces the per-tenant figures with the recount (a tenant without an entry holds nothing)', () => {
    const b = new MemoryBudget(1_000, 0.5);
    expect(b.tryReserveFor('a', 500)).toBeNull();
    expect(b.tryReserveFor('b', 100)).toBeNull();
    b.resync(700, new Map([['a', 700]]));
    expect(b.sessionBytesOf('a')).toBe(700);
    expect(b.tenantExhausted('a')).toBe(true);
    expect(b.sessionBytesOf('b')).toBe(0);
    expect(b.tenants).toBe(1);
    b.resync(0);
    expect(b.tenants).toBe(0);
    expect(b.tenantExhausted('a')).toBe(false);
    expect(b.tryReserveFor('a', 500)).toBeNull();
  });

  it('tenantShareExceeded: memory_budget_exceeded for the tenant; a frame keeps the session, the recount and an upgrade close 4008 (HTTP 429)', () => {
    const frame = tenantShareExceeded('frame', 500);
    expect(frame.code).toBe('memory_budget_exceeded');
    expect(frame.details).toEqual({ scope: 'tenant', limit: 500 });
    expect(frame.closesSession).toBe(false);
    expect(tenantShareExceeded('recount', 500).closeCode).toBe(4008);
    const upgrade = tenantShareExceeded('upgrade', 500);
    expect(upgrade.closeCode).toBe(4008);
    expect(upgrade.httpStatus).toBe(429);
  });
});

describe('MemoryBudget: a tenant share is never below one legal frame', () => {
  it('the share is at least tenantFloorBytes (maxFrameBytes), and never more than the budget', () => {
    expect(new MemoryBudget(16_000, 0.5, 10_000).tenantLimit).toBe(10_000);
    expect(new MemoryBudget(16_000, 0.5, 4_000).tenantLimit).toBe(8_000);
    expect(new MemoryBudget(16_000, 0.5, 20_000).tenantLimit).toBe(16_000);
    // A frame of the floor's size fits a tenant holding nothing.
    expect(new MemoryBudget(16_000, 0.5, 10_000).tryReserveFor('t', 10_000)).toBeNull();
  });
});
