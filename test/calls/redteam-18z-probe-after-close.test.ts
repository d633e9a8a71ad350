/**
 * Red team 18z (calls): OutageGuardedStore's background probe restarted after close.
 *
 * The calls module closes its request store (stopping the probe), then the governors and the store
 * itself; a request or SIP delivery still in flight then fails on the closed store (or on the
 * outage that was on), and that failure started a new probe interval: never stopped again, probing
 * a closed Redis every second for as long as the process lives (an embedder that closes the proxy
 * and goes on, a test run). Adversary: none needed; a store call in flight during shutdown.
 * Guarantee broken: "stopped then and on close" (src/calls/store-outage.ts #startProbing).
 *
 * Fixed 2026-12-07: a closed OutageGuardedStore starts no probe.
 * Fake timers: rounds are stepped by hand, nothing here waits on the clock.
 */
import pino from 'pino';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { CallStoreUnavailable, OutageGuardedStore, PROBE_EVERY_MS } from '../../src/calls/store-outage.js';
import { SqliteCallStore, type SecretRecord } from '../../src/calls/store.js';

const RECORD: SecretRecord = { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: 60_000, session: { type: 'realtime' }, keySha256: 'a'.repeat(64) };

/** A store whose write is answered (refused) only when the test says, and which counts its probes. */
class HeldWriteStore extends SqliteCallStore {
  readonly probes: string[] = [];
  refuseHeldWrite: (err: Error) => void = () => {};

  override putSecret(): Promise<void> {
    return new Promise((_resolve, reject) => {
      this.refuseHeldWrite = reject;
    });
  }

  probe(kind: 'read' | 'write'): Promise<void> {
    this.probes.push(kind);
    return Promise.reject(new Error('Connection is closed.'));
  }
}

const log = pino({ level: 'silent' });
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
});
afterEach(() => {
  vi.useRealTimers();
});

it('a store call failing after close starts no probe', async () => {
  const store = new HeldWriteStore(':memory:');
  const guarded = new OutageGuardedStore(store, log);
  const inFlight = guarded.putSecret('h', RECORD, 0);
  await guarded.close();
  // The module closes the store under it: the write in flight fails.
  store.refuseHeldWrite(new Error('Connection is closed.'));
  await expect(inFlight).rejects.toBeInstanceOf(CallStoreUnavailable);
  // Old code: 1 timer, and a probe of the closed store each round (5 here).
  expect(vi.getTimerCount()).toBe(0);
  for (let round = 0; round < 5; round++) await vi.advanceTimersByTimeAsync(PROBE_EVERY_MS);
  expect(store.probes).toEqual([]);
  await store.close();
});
