import { describe, expect, it } from 'vitest';
import type { SimCall } from '../../src/simulator/index.js';
import { until } from './support.js';
import { LEASE_SEC, sharedUpstream } from './instances.js';

/*
 * Adversary review (2026-12-05): a call another instance takes over (handover at shutdown, or a
 * crash) gets a new sideband without admission, so it holds no concurrent-session slot there: the
 * tenant's maxConcurrentSessions no longer counts it, and the tenant can open as many more calls
 * (or WebSocket sessions) as its limit allows on top of it.
 */
const SIM_KEY = 'sk-simulator-adv-handover';
const up = sharedUpstream(SIM_KEY, 'rp-adv-handover-');
const TENANTS = { acme: { limits: { maxConcurrentSessions: 1 } }, other: {} };

describe('adversary: a taken-over call and the concurrency limit', () => {
  it('control: on the instance that created it, a call holds the tenant\'s only slot (a second call is refused 429)', async () => {
    const one = await up.instance(up.ledger('control'), { tenants: TENANTS });
    try {
      const first = await up.offer(one.httpUrl);
      expect(first.status).toBe(201);
      const second = await up.offer(one.httpUrl);
      expect(second.status).toBe(429);
      expect(second.json).toMatchObject({ error: { code: 'concurrent_sessions_exceeded' } });
    } finally {
      await one.stop();
    }
  });

  it('a call handed over to another instance still holds the tenant\'s slot there: a second call is refused 429', async () => {
    const ledger = up.ledger('handover');
    const leaving = await up.instance(ledger, { calls: { onShutdown: 'handover' }, tenants: TENANTS });
    const staying = await up.instance(ledger, { tenants: TENANTS });
    try {
      const first = await up.offer(leaving.httpUrl);
      expect(first.status).toBe(201);
      const call: SimCall = up.sim.calls.calls.get(first.headers.get('location')!.split('/').at(-1)!)!;
      await until(() => call.sidebands.length === 1, 'the first sideband');
      await leaving.stop();
      await until(() => call.sidebands.length === 2, 'the staying instance re-attached the call', (LEASE_SEC / 3 + 3) * 1000);
      expect(call.state).toBe('active');
      // The taken-over call is the tenant's one concurrent session: another is over the limit.
      const second = await up.offer(staying.httpUrl);
      expect(second.status).toBe(429);
      expect(second.json).toMatchObject({ error: { code: 'concurrent_sessions_exceeded' } });
    } finally {
      await staying.stop();
    }
  }, 30_000);

  it('an instance at server.maxSessions does not leave a crashed/handed-over call running ungoverned: it is re-attached or hung up', async () => {
    const ledger = up.ledger('full');
    const leaving = await up.instance(ledger, { calls: { onShutdown: 'handover' }, tenants: TENANTS });
    // The only instance left is full: one call of its own at server.maxSessions: 1.
    const staying = await up.instance(ledger, { server: { maxSessions: 1 }, tenants: TENANTS });
    try {
      const own = await up.offer(staying.httpUrl, 'other');
      expect(own.status).toBe(201);
      const first = await up.offer(leaving.httpUrl);
      expect(first.status).toBe(201);
      const call: SimCall = up.sim.calls.calls.get(first.headers.get('location')!.split('/').at(-1)!)!;
      await until(() => call.sidebands.length === 1, 'the first sideband');
      await leaving.stop();
      expect(call.control.map((c) => c.action)).not.toContain('hangup');
      // README: a call whose instance went away runs ungoverned for at most about leaseSec; a call
      // the proxy cannot govern does not go on. Several sweeps later it must be one or the other.
      const hungUp = () => call.control.some((c) => c.action === 'hangup');
      await until(() => call.sidebands.length === 2 || hungUp() || call.state === 'ended', 'the call re-attached or hung up', 4 * LEASE_SEC * 1000).catch(() => undefined);
      expect(call.sidebands.length === 2 || hungUp()).toBe(true);
    } finally {
      await staying.stop();
    }
  }, 40_000);
});
