/**
 * Red team (18): a tenant's concurrent-session slot travels with the upgrade that took it.
 *
 * Until 2026-12-07 admission parked the slot it took under the TENANT (a queue per tenant id), and
 * whichever of the tenant's upgrades opened (or was withdrawn) next claimed the oldest parked slot.
 * An upgrade admitted WITHOUT one (ledger.failMode open while the ledger could not answer) that
 * opened or was withdrawn while another upgrade's slot was parked took that slot: the other
 * session then ran uncounted, and once the first left (giving back a slot that was never its own)
 * the tenant opened one session more than `maxConcurrentSessions` with the ledger healthy. A slot
 * taken by an upgrade that a later admission check refused stayed parked for 30 s instead of going
 * back, and the next session of the tenant to open claimed it.
 *
 * The adversary holds one tenant's key (maxConcurrentSessions 1, failMode open) and times its
 * upgrades against a ledger that answers slowly and, once, not at all; the ledger here is one whose
 * answers the test hands out, in the order it chooses.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging.js';
import { systemClock } from '../../src/main.js';
import { ProxyError } from '../../src/protocol/errors.js';
import { ChainTemplate } from '../../src/pipeline/chain.js';
import type { AdmissionRequest, FilterFactory } from '../../src/pipeline/filter.js';
import { ProxyServer } from '../../src/server/server.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startSimulator } from '../../src/simulator/index.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import type { Tenant } from '../../src/tenants/tenant.js';
import { connectRaw, rawUpgrade, upgradeAnswer } from '../support/raw-upgrade.js';
import { FakeSession } from '../support/fake-session.js';
import { AsyncLedger, setup } from './filter-harness.js';
import { sharedUpstream } from '../calls/instances.js';

const KEY = 'rpk_test_acme_0123456789abcdef';
const TENANT = 'acme';

/** The asynchronous (Redis-like) ledger, but each acquireSlot waits until the test answers it. */
class SlotGate extends AsyncLedger {
  readonly waiting: { answer(how: 'ledger' | 'unavailable'): void }[] = [];

  override acquireSlot(tenant: string, token: string, max: number): Promise<boolean | 'unavailable'> {
    return new Promise((resolve) => {
      this.waiting.push({ answer: (how) => resolve(how === 'unavailable' ? 'unavailable' : this.inner.acquireSlot(tenant, token, max)) });
    });
  }

  /** Slots the tenant holds in the ledger now (counted by filling the rest with probes, then giving them back). */
  held(limit: number): number {
    const probes: string[] = [];
    while (probes.length < limit && this.inner.acquireSlot(TENANT, `probe_${probes.length}`, limit)) probes.push(`probe_${probes.length}`);
    for (const p of probes) this.inner.releaseSlot(TENANT, p);
    return limit - probes.length;
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxyWith(factories: readonly FilterFactory[], upstream: ConfigInput['upstream']): Promise<{ server: ProxyServer; port: number }> {
  const config = parseConfig(
    {
      server: { host: '127.0.0.1', port: 0, workers: 1 },
      admin: { port: 0 },
      upstream,
      logging: { level: 'silent' },
      tenants: { [TENANT]: { keys: [{ key: KEY }], limits: { maxConcurrentSessions: 1 } } },
    },
    '(test)',
    {},
  );
  const server = new ProxyServer({ config, log: createLogger('silent'), tenants: new TenantResolver(config), clock: systemClock, modules: [{ name: 'metering', filters: factories }] });
  const { port } = await server.listen();
  cleanups.push(() => server.shutdown(0));
  return { server, port };
}

/** Writes an upgrade and resolves once admission waits on the ledger for it (the `n`-th slot asked). */
async function upgradeWaiting(port: number, gate: SlotGate, n: number, model = 'gpt-realtime'): Promise<{ socket: Socket; answer: Promise<{ status: number; code: string }> }> {
  const socket = await connectRaw(port, sockets);
  const answer = upgradeAnswer(socket);
  socket.write(rawUpgrade(KEY).replace('model=gpt-realtime', `model=${model}`));
  await expect.poll(() => gate.waiting.length).toBe(n);
  return { socket, answer };
}

function gatedSetup(): { gate: SlotGate; factory: FilterFactory } {
  let gate: SlotGate | null = null;
  const s = setup({ ledger: { path: ':memory:', failMode: 'open' } }, undefined, (l) => (gate = new SlotGate(l)));
  return { gate: gate!, factory: s.factory };
}

describe('red team: a concurrent-session slot belongs to the upgrade that took it', () => {
  it('an upgrade admitted without a slot (fail open) that opens beside one holding a slot: after it leaves, the tenant still cannot open a second session', async () => {
    const sim = await startSimulator({});
    cleanups.push(() => sim.close());
    const { gate, factory } = gatedSetup();
    const { server, port } = await proxyWith([factory], { provider: 'openai', url: sim.url, apiKey: 'sk-test' });

    const x = await upgradeWaiting(port, gate, 1);
    const y = await upgradeWaiting(port, gate, 2);
    // The ledger cannot answer x (fail open: admitted without a slot), then grants y the tenant's one
    // slot: both answers arrive together, x's first, as replies read in one chunk do.
    gate.waiting[0]!.answer('unavailable');
    gate.waiting[1]!.answer('ledger');
    expect((await x.answer).status).toBe(101);
    expect((await y.answer).status).toBe(101);
    expect(server.sessionCount).toBe(2);
    expect(gate.held(1)).toBe(1);

    // x leaves: what it gives back is its own, nothing (before the fix: y's slot).
    x.socket.destroy();
    await expect.poll(() => server.sessionCount).toBe(1);
    expect(gate.held(1)).toBe(1);

    // The ledger answers again: y still holds the tenant's one slot, so z is refused.
    const z = await upgradeWaiting(port, gate, 3);
    gate.waiting[2]!.answer('ledger');
    expect(await z.answer).toEqual({ status: 429, code: 'concurrent_sessions_exceeded' });
    expect(server.sessionCount).toBe(1);

    y.socket.destroy();
    await expect.poll(() => server.sessionCount).toBe(0);
    expect(gate.held(1)).toBe(0);
  });

  it('an upgrade admitted (slot taken) as a model the Azure upstream does not deploy (an alias rewritten after metering) is refused, and its slot goes back at once', async () => {
    const { gate, factory } = gatedSetup();
    // After metering took the slot, a later factory rewrites one model to a successor not deployed.
    const aliases: FilterFactory = { name: 'aliases', wants: {}, admit: (r) => (r.model === 'gpt-realtime-mini' ? { model: 'gpt-realtime-next' } : null), create: () => ({}) };
    // Nothing listens there: a session that opens ends when the dial fails, which is all this needs.
    const azure = { endpoint: 'http://127.0.0.1:9', deployment: 'prod-realtime', model: 'gpt-realtime', deployments: { 'gpt-realtime-mini': 'prod-mini' } };
    const { port } = await proxyWith([factory, aliases], { provider: 'azure', apiKey: 'azure-key', azure });
    const undialable = await upgradeWaiting(port, gate, 1, 'gpt-realtime-mini');
    gate.waiting[0]!.answer('ledger');
    expect(await undialable.answer).toEqual({ status: 400, code: 'invalid_request' });
    expect(gate.held(1)).toBe(0);
    const deployed = await upgradeWaiting(port, gate, 2);
    gate.waiting[1]!.answer('ledger');
    expect((await deployed.answer).status).toBe(101);
  });

  // The same interleavings at the chain, where the server hands admission's result on.
  const acme: Tenant = { id: TENANT, name: 'Acme', policy: null, plan: null, limits: { maxConcurrentSessions: 1 } };
  const ask = () => ({ tenant: acme, model: 'gpt-realtime', query: new Map([['model', 'gpt-realtime']]) });
  const admitted = async (pending: Promise<ProxyError | AdmissionRequest>): Promise<AdmissionRequest> => {
    const r = await pending;
    if (r instanceof ProxyError) throw r;
    return r;
  };
  const open = (factory: FilterFactory, request: AdmissionRequest) => {
    const ctx = new FakeSession({ tenant: acme, admission: request.ticket });
    const f = factory.create(ctx);
    return () => f.onClose?.({ initiator: 'client', code: 1000, reason: '' });
  };

  it('an upgrade admitted without a slot and withdrawn (its client left) gives back nothing: the one that opens keeps its slot', async () => {
    const { gate, factory } = gatedSetup();
    const template = new ChainTemplate([factory]);
    const pendingX = template.admit(ask()) as Promise<ProxyError | AdmissionRequest>;
    const pendingY = template.admit(ask()) as Promise<ProxyError | AdmissionRequest>;
    await expect.poll(() => gate.waiting.length).toBe(2);
    gate.waiting[0]!.answer('unavailable');
    gate.waiting[1]!.answer('ledger');
    const [x, y] = [await admitted(pendingX), await admitted(pendingY)];
    template.withdraw(x);
    expect(gate.held(1)).toBe(1);
    const closeY = open(factory, y);
    expect(gate.held(1)).toBe(1);
    closeY();
    expect(gate.held(1)).toBe(0);
  });

  it('three upgrades of one tenant interleaved (limit 2): each slot goes back once, by its own upgrade', async () => {
    const { gate, factory } = gatedSetup();
    const template = new ChainTemplate([factory]);
    const two: Tenant = { ...acme, limits: { maxConcurrentSessions: 2 } };
    const pending = [0, 1, 2].map(() => template.admit({ ...ask(), tenant: two }) as Promise<ProxyError | AdmissionRequest>);
    await expect.poll(() => gate.waiting.length).toBe(3);
    gate.waiting[0]!.answer('ledger');
    gate.waiting[1]!.answer('unavailable');
    gate.waiting[2]!.answer('ledger');
    const [a, b, c] = [await admitted(pending[0]!), await admitted(pending[1]!), await admitted(pending[2]!)];
    expect(gate.held(2)).toBe(2);
    // b (no slot) opens first, then a is withdrawn, then c opens.
    const ctxB = new FakeSession({ tenant: two, admission: b.ticket });
    const fB = factory.create(ctxB);
    template.withdraw(a);
    expect(gate.held(2)).toBe(1);
    const ctxC = new FakeSession({ tenant: two, admission: c.ticket });
    const fC = factory.create(ctxC);
    // b leaving gives back nothing: c's slot stays counted.
    fB.onClose?.({ initiator: 'client', code: 1000, reason: '' });
    expect(gate.held(2)).toBe(1);
    // a withdrawn twice (a retried cleanup) still gives back nothing more.
    template.withdraw(a);
    expect(gate.held(2)).toBe(1);
    fC.onClose?.({ initiator: 'client', code: 1000, reason: '' });
    expect(gate.held(2)).toBe(0);
  });

  it('a slot taken for an upgrade a later admission check refuses goes back at once, and no other session claims it', async () => {
    const { gate, factory } = gatedSetup();
    let refuse = true;
    const later: FilterFactory = { name: 'later', wants: {}, admit: () => (refuse ? new ProxyError('model_not_allowed') : null), create: () => ({}) };
    const template = new ChainTemplate([factory, later]);
    const pendingX = template.admit(ask());
    await expect.poll(() => gate.waiting.length).toBe(1);
    gate.waiting[0]!.answer('ledger');
    expect(await pendingX).toBeInstanceOf(ProxyError);
    expect(gate.held(1)).toBe(0);
    // An upgrade admitted without a slot then opens: it holds none, and the tenant's one slot is free.
    refuse = false;
    const pendingY = template.admit(ask()) as Promise<ProxyError | AdmissionRequest>;
    await expect.poll(() => gate.waiting.length).toBe(2);
    gate.waiting[1]!.answer('unavailable');
    const closeY = open(factory, await admitted(pendingY));
    expect(gate.held(1)).toBe(0);
    closeY();
    expect(gate.held(1)).toBe(0);
  });
});

describe('red team: a call\'s sideband holds the slot its admission took, by the ticket', () => {
  const up = sharedUpstream('sk-simulator-slot-ticket', 'rp-slot-ticket-');
  it('the sideband claims the call\'s slot (a second call is refused) and gives it back when the call ends (not 30 s later)', async () => {
    const one = await up.instance(up.ledger('ticket'), { tenants: { acme: { limits: { maxConcurrentSessions: 1 } } } });
    cleanups.push(() => one.stop());
    const { call } = await up.createCall(one.httpUrl);
    expect((await up.offer(one.httpUrl)).status).toBe(429);
    call.end();
    await expect.poll(() => one.proxy.server.sessionsOpen).toBe(0);
    expect((await up.offer(one.httpUrl)).status).toBe(201);
  });
});
