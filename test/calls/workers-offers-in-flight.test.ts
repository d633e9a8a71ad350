/**
 * Offers in flight across relay workers (`server.workers: 2`). Each worker runs its own client
 * listener, so an offer (POST /v1/realtime/calls) and a WebSocket upgrade of the same tenant may land
 * in different processes. Until 2026-12-07 a tenant's offers in flight were counted in the worker
 * that held them (the calls module's holdOffer, read by the upgrade's admission as `alsoHeld`): the
 * other worker saw none, and a tenant allowed ONE session held an offer upstream in one worker and a
 * WebSocket session (or a second offer) in the other, one extra place per worker. Now an offer holds
 * a concurrent-session slot in the ledger (the primary's, reached over the workers' IPC channel) from
 * its check until its sideband takes that slot over: one owner of the count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, heldOffers, OFFER, until } from './support.js';

// Workers share the calls store and ledger through a file (an in-memory one is each process's own).
const dir = mkdtempSync(join(tmpdir(), 'workers-offers-'));
let upstream: Awaited<ReturnType<typeof heldOffers>>;
let tp: TestProxy;
const clients: TestClient[] = [];
beforeAll(async () => {
  upstream = await heldOffers();
  tp = await callsProxy({
    tenants: { capped: { limits: { maxConcurrentSessions: 1 } }, other: {} },
    extra: { config: { server: { workers: 2 }, metering: { ledger: { path: join(dir, 'ledger.db') } }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
}, 60_000);
afterAll(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  upstream?.release();
  await tp?.stop();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An offer with the tenant key (no secret: nothing to look up in a store), on a connection of its own. */
const offer = (tenant: string): Promise<number> => {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  return fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'POST', headers: { authorization: `Bearer ${tp.key(tenant)}`, connection: 'close' }, body: form }).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
};

/** An upgrade on a connection of its own (the kernel picks its worker); an admitted one stays open. */
const upgrade = async (tenant: string): Promise<number> => {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key(tenant)}` } });
  clients.push(c);
  return Promise.race([c.refused, c.opened.then(() => 101)]);
};

const workersThatRefused = () => new Set(tp.logs.filter((l) => l.msg === 'session refused' && l['code'] === 'concurrent_sessions_exceeded').map((l) => l['worker']));

describe('offers in flight across relay workers: a tenant allowed one session', () => {
  it('with its offer held upstream, no upgrade in either worker is admitted, nor a second offer; another tenant opens', { timeout: 90_000 }, async () => {
    const first = offer('capped');
    await until(() => upstream.held() === 1, 'the offer held upstream', 30_000);
    // Upgrades until both workers have answered one (each on a new connection).
    const outcomes: number[] = [];
    for (let i = 0; i < 40 && (workersThatRefused().size < 2 || outcomes.length < 8) && !outcomes.includes(101); i++) outcomes.push(await upgrade('capped'));
    // Old code: a 101 from the worker that did not hold the offer (two places for a tenant allowed one).
    expect(new Set(outcomes)).toEqual(new Set([429]));
    await expect.poll(() => workersThatRefused()).toEqual(new Set([0, 1]));
    // Further offers (spread over both workers too) are refused before they reach the upstream.
    const more: Array<number | 'held upstream'> = [];
    for (let i = 0; i < 6; i++) {
      more.push(await Promise.race([offer('capped'), until(() => upstream.held() > 1, 'a second offer upstream', 60_000).then(() => 'held upstream' as const)]));
      if (more.includes('held upstream')) break;
    }
    // Old code: 'held upstream' (an offer in the other worker passed its check).
    expect(new Set(more)).toEqual(new Set([429]));
    expect(await upgrade('other')).toBe(101);
    upstream.release();
    expect(await first).toBe(502);
    // The offer's slot is given back with it: the tenant opens a session again.
    await until(async () => (await upgrade('capped')) === 101, 'the capped tenant admitted again', 30_000);
  });
});
