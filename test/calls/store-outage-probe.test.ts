/**
 * OutageGuardedStore's readiness and background probe (src/calls/store-outage.ts): not ready while
 * a kind of store call fails, probed with the store's own cheap call while out of rotation (no
 * request would end the outage), the probe's timer gone once the outage ends and on close.
 * Fake timers: rounds are stepped by hand, nothing here waits on the clock.
 */
import pino from 'pino';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { CallStoreUnavailable, OutageGuardedStore, PROBE_EVERY_MS } from '../../src/calls/store-outage.js';
import { SqliteCallStore, type SecretRecord } from '../../src/calls/store.js';

const RECORD: SecretRecord = { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: 60_000, session: { type: 'realtime' }, keySha256: 'a'.repeat(64) };

/** A store refusing writes (READONLY) until told otherwise; `probe` only when `probes` is given. */
class WriteRefusingStore extends SqliteCallStore {
  writesFail = true;

  override putSecret(hash: string, record: SecretRecord, wallMs: number): Promise<void> {
    return this.writesFail ? Promise.reject(new Error('READONLY')) : super.putSecret(hash, record, wallMs);
  }
}

class ProbedStore extends WriteRefusingStore {
  readonly probes: string[] = [];

  probe(kind: 'read' | 'write'): Promise<void> {
    this.probes.push(kind);
    return kind === 'write' && this.writesFail ? Promise.reject(new Error('READONLY')) : Promise.resolve();
  }
}

const log = pino({ level: 'silent' });
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
});
afterEach(() => {
  vi.useRealTimers();
});

it('a store refusing writes is not ready, probed (the failing kind only) each round until it takes writes again, then ready with no timer left', async () => {
  const store = new ProbedStore(':memory:');
  const guarded = new OutageGuardedStore(store, log);
  expect(guarded.readiness()).toBeNull();
  expect(vi.getTimerCount()).toBe(0);
  await expect(guarded.putSecret('h', RECORD, 0)).rejects.toBeInstanceOf(CallStoreUnavailable);
  expect(guarded.readiness()).toBe('calls store failing writes');
  expect(vi.getTimerCount()).toBe(1);
  await vi.advanceTimersByTimeAsync(PROBE_EVERY_MS);
  await vi.advanceTimersByTimeAsync(PROBE_EVERY_MS);
  expect(store.probes).toEqual(['write', 'write']);
  expect(guarded.readiness()).toBe('calls store failing writes');
  // The failover ends; no request comes (out of rotation): the next round alone finds it.
  store.writesFail = false;
  await vi.advanceTimersByTimeAsync(PROBE_EVERY_MS);
  expect(guarded.readiness()).toBeNull();
  expect(vi.getTimerCount()).toBe(0);
  await guarded.close();
  await store.close();
});

it('close stops the probes of an outage still on', async () => {
  const store = new ProbedStore(':memory:');
  const guarded = new OutageGuardedStore(store, log);
  await expect(guarded.putSecret('h', RECORD, 0)).rejects.toBeInstanceOf(CallStoreUnavailable);
  expect(vi.getTimerCount()).toBe(1);
  await guarded.close();
  expect(vi.getTimerCount()).toBe(0);
  await store.close();
});

it('a store that cannot be probed keeps its own readiness through an outage (no request would end it out of rotation)', async () => {
  const store = new WriteRefusingStore(':memory:');
  const guarded = new OutageGuardedStore(store, log);
  await expect(guarded.putSecret('h', RECORD, 0)).rejects.toBeInstanceOf(CallStoreUnavailable);
  expect(guarded.readiness()).toBeNull();
  expect(vi.getTimerCount()).toBe(0);
  await guarded.close();
  await store.close();
});
