import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { startSimulator, type SimCall, type SimulatorHandle } from '../../src/simulator/index.js';
import type { Clock } from '../../src/pipeline/filter.js';
import { defaultKey, startTestProxy, type TestProxy, type TestTenantInput } from '../support/harness.js';
import { ADMIN_KEY } from '../metering/support.js';
import { OFFER, post, until } from './support.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * Proxy instances that share one simulator (the upstream) and one SQLite ledger file, as a
 * deployment shares OpenAI and its ledger: the tests of calls outliving the instance that governs
 * them (handover, takeover, their red teams). Short leases, so a lapsed one is claimed within seconds.
 */
export const LEASE_SEC = 3;

export interface InstanceOptions {
  readonly tenants?: Record<string, TestTenantInput>;
  readonly calls?: Record<string, unknown>;
  readonly server?: Record<string, unknown>;
  /** An injected clock (e.g. a wall clock running ahead of another instance's). */
  readonly clock?: Clock;
  /** The `policies` section (a tenant's policy with guardrail rules). */
  readonly policies?: Record<string, unknown>;
}

/** Starts a simulator and a temporary directory for the file's ledgers (beforeAll), closes it (afterAll). */
export function sharedUpstream(simKey: string, dirPrefix: string) {
  let sim: SimulatorHandle | null = null;
  let dir = '';
  beforeAll(async () => {
    sim = await startSimulator({ apiKey: simKey });
    dir = tempDir(dirPrefix);
  });
  afterAll(async () => {
    await sim?.close();
  });
  const upstream = {
    get sim(): SimulatorHandle {
      if (!sim) throw new Error('the simulator is not started (beforeAll)');
      return sim;
    },
    /** This test file's temporary directory. */
    get dir(): string {
      return dir;
    },
    /** A ledger file of this test file's directory. */
    ledger: (name: string) => join(dir, `${name}.sqlite`),
    /** A proxy instance on `ledger` (a SQLite file's path, or a ledger's config: one Redis), relaying to the shared simulator, with calls enabled. */
    instance(ledger: string | Record<string, unknown>, o: InstanceOptions = {}): Promise<TestProxy> {
      return startTestProxy({
        tenants: o.tenants ?? { acme: {} },
        config: {
          ...(o.server ? { server: o.server } : {}),
          ...(o.policies ? { policies: o.policies } : {}),
          admin: { key: ADMIN_KEY, port: 0 },
          upstream: { provider: 'openai', url: upstream.sim.url, apiKey: simKey, allowCallId: true },
          metering: { ledger: typeof ledger === 'string' ? { path: ledger } : ledger },
          calls: { enabled: true, leaseSec: LEASE_SEC, ...o.calls },
        },
        ...(o.clock ? { start: { clock: o.clock } } : {}),
      });
    },
    /** A WebRTC offer of `tenant` (the proxy's answer, as it came). */
    offer: (httpUrl: string, tenant = 'acme') => {
      const form = new FormData();
      form.set('sdp', OFFER);
      form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
      return post(`${httpUrl}/v1/realtime/calls`, { key: defaultKey(tenant), body: form });
    },
    /** A call created through `httpUrl`, once its first sideband is open. */
    async createCall(httpUrl: string, tenant = 'acme'): Promise<{ callId: string; call: SimCall }> {
      const res = await upstream.offer(httpUrl, tenant);
      expect(res.status).toBe(201);
      const callId = res.headers.get('location')!.split('/').at(-1)!;
      const call = upstream.sim.calls.calls.get(callId)!;
      await until(() => call.sidebands.length === 1, 'the first sideband');
      return { callId, call };
    },
  };
  return upstream;
}
