import { describe, expect, it } from 'vitest';
import { LiveSecrets } from './live-secrets.js';

describe('live client secrets per tenant', () => {
  it('has room until the limit, per tenant', () => {
    const live = new LiveSecrets(2);
    expect(live.hasRoom('a', 0)).toBe(true);
    live.add('a', 100);
    expect(live.hasRoom('a', 0)).toBe(true);
    live.add('a', 200);
    expect(live.hasRoom('a', 0)).toBe(false);
    expect(live.hasRoom('b', 0)).toBe(true);
    expect(live.count('a')).toBe(2);
  });

  it('forgets a secret at its expiry time exactly, and a tenant with none left', () => {
    const live = new LiveSecrets(1);
    live.add('a', 100);
    expect(live.hasRoom('a', 99)).toBe(false);
    expect(live.hasRoom('a', 100)).toBe(true);
    expect(live.count('a')).toBe(0);
    expect(live.tenants).toBe(0);
  });

  it('keeps expiries sorted whatever the minting order: a shorter TTL minted later leaves first', () => {
    const live = new LiveSecrets(3);
    live.add('a', 300);
    live.add('a', 100);
    live.add('a', 200);
    live.add('a', 200);
    expect(live.hasRoom('a', 150)).toBe(false);
    expect(live.count('a')).toBe(3);
    expect(live.hasRoom('a', 250)).toBe(true);
    expect(live.count('a')).toBe(1);
    expect(live.hasRoom('a', 299)).toBe(true);
    expect(live.count('a')).toBe(1);
    expect(live.tenants).toBe(1);
  });

  it('take checks and counts in one step; release gives back exactly the room taken', () => {
    const live = new LiveSecrets(2);
    expect(live.take('a', 0, 100)).toBe(true);
    expect(live.take('a', 0, 300)).toBe(true);
    expect(live.take('a', 0, 200)).toBe(false);
    expect(live.count('a')).toBe(2);
    live.release('a', 300);
    expect(live.count('a')).toBe(1);
    expect(live.take('a', 0, 200)).toBe(true);
    // Releasing what was never taken (or another tenant's) changes nothing.
    live.release('a', 999);
    live.release('b', 100);
    expect(live.count('a')).toBe(2);
    live.release('a', 100);
    live.release('a', 200);
    expect(live.tenants).toBe(0);
  });
});
