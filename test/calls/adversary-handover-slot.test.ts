import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type SimCall, type SimulatorHandle } from '../../src/simulator/index.js';
import { defaultKey, startTestProxy, type TestProxy } from '../support/harness.js';
import { OFFER, post, until } from './support.js';

/*
 * Adversary review (2026-12-05): a call another instance takes over (handover at shutdown, or a
 * crash) gets a new sideband without admission, so it holds no concurrent-session slot there: the
 * tenant's maxConcurrentSessions no longer counts it, and the tenant can open as many more calls
 * (or WebSocket sessions) as its limit allows on top of it.
 */
const SIM_KEY = 'sk-simulator-adv-handover';
const LEASE_SEC = 3;
let sim: SimulatorHandle;
let dir: string;
beforeAll(async () => {
  sim = await startSimulator({ apiKey: SIM_KEY });
  dir = mkdtempSync(join(tmpdir(), 'rp-adv-handover-'));
});
afterAll(async () => {
  await sim?.close();
});

function instance(ledger: string, calls: Record<string, unknown> = {}, server: Record<string, unknown> = {}): Promise<TestProxy> {
  return startTestProxy({
    tenants: { acme: { limits: { maxConcurrentSessions: 1 } }, other: {} },
    config: {
      ...(Object.keys(server).length > 0 ? { server } : {}),
      upstream: { provider: 'openai', url: sim.url, apiKey: SIM_KEY, allowCallId: true },
      metering: { ledger: { path: ledger } },
      calls: { enabled: true, leaseSec: LEASE_SEC, ...calls },
    },
  });
}

function offer(httpUrl: string, tenant = 'acme') {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  return post(`${httpUrl}/v1/realtime/calls`, { key: defaultKey(tenant), body: form });
}

describe('adversary: a taken-over call and the concurrency limit', () => {
  it('control: on the instance that created it, a call holds the tenant\'s only slot (a second call is refused 429)', async () => {
    const one = await instance(join(dir, 'control.sqlite'));
    try {
      const first = await offer(one.httpUrl);
      expect(first.status).toBe(201);
      const second = await offer(one.httpUrl);
      expect(second.status).toBe(429);
      expect(second.json).toMatchObject({ error: { code: 'concurrent_sessions_exceeded' } });
    } finally {
      await one.stop();
    }
  });

  it('a call handed over to another instance still holds the tenant\'s slot there: a second call is refused 429', async () => {
    const ledger = join(dir, 'handover.sqlite');
    const leaving = await instance(ledger, { onShutdown: 'handover' });
    const staying = await instance(ledger);
    try {
      const first = await offer(leaving.httpUrl);
      expect(first.status).toBe(201);
      const call: SimCall = sim.calls.calls.get(first.headers.get('location')!.split('/').at(-1)!)!;
      await until(() => call.sidebands.length === 1, 'the first sideband');
      await leaving.stop();
      await until(() => call.sidebands.length === 2, 'the staying instance re-attached the call', (LEASE_SEC / 3 + 3) * 1000);
      expect(call.state).toBe('active');
      // The taken-over call is the tenant's one concurrent session: another is over the limit.
      const second = await offer(staying.httpUrl);
      expect(second.status).toBe(429);
      expect(second.json).toMatchObject({ error: { code: 'concurrent_sessions_exceeded' } });
    } finally {
      await staying.stop();
    }
  }, 30_000);

  it('an instance at server.maxSessions does not leave a crashed/handed-over call running ungoverned: it is re-attached or hung up', async () => {
    const ledger = join(dir, 'full.sqlite');
    const leaving = await instance(ledger, { onShutdown: 'handover' });
    // The only instance left is full: one call of its own at server.maxSessions: 1.
    const staying = await instance(ledger, {}, { maxSessions: 1 });
    try {
      const own = await offer(staying.httpUrl, 'other');
      expect(own.status).toBe(201);
      const first = await offer(leaving.httpUrl);
      expect(first.status).toBe(201);
      const call: SimCall = sim.calls.calls.get(first.headers.get('location')!.split('/').at(-1)!)!;
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
