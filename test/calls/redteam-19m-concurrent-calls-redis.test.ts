/**
 * Red team (calls × metering, 19m): two WebRTC calls of a tenant allowed two sessions, placed at
 * once, on the Redis ledger (and calls store).
 *
 * Each offer holds one of the tenant's concurrent-session slots in the ledger from its check; its
 * sideband's admission (`holdsSlot`) was allowed max + 1 and the offer's slot was given back only
 * after the call was bound (a calls-store write) and governed. When both upstream answers come back
 * together, sideband A is admitted (offer A + offer B + sideband A = 3 = 2 + 1) and sideband B asks
 * before A's offer slot is given back: refused, and call B, created upstream, is hung up and its
 * offer answered 429. An honest tenant within its limit loses a call on every burst (no adversary
 * needed; the same on two instances or relay workers). Broken guarantee: a call admitted at its check
 * holds its place until its sideband (that is what the check's slot is for).
 * Now the sideband's admission takes the offer's slot over by its token: nothing to race.
 * (test/metering/redteam-19m-concurrent-calls.test.ts shows the same sequence deterministically.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, heldOffers, OFFER, until } from './support.js';

let redis: RedisServer;
let upstream: Awaited<ReturnType<typeof heldOffers>>;
let tp: TestProxy;
beforeAll(async () => {
  redis = await startRedis();
  upstream = await heldOffers();
  tp = await callsProxy({
    tenants: { duo: { limits: { maxConcurrentSessions: 2 } } },
    extra: { config: { metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: 'rt19m:', commandTimeoutMs: 2000 } }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
}, 60_000);
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
  await redis?.stop();
});

const offer = (tenant: string): Promise<number> => {
  const form = new FormData();
  form.set('sdp', OFFER);
  form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
  return fetch(`${tp.httpUrl}/v1/realtime/calls`, { method: 'POST', headers: { authorization: `Bearer ${tp.key(tenant)}` }, body: form }).then(async (res) => {
    await res.arrayBuffer();
    return res.status;
  });
};

describe('red team 19m: two calls of a tenant allowed two, created upstream together (Redis ledger)', () => {
  it('both are governed; a third is refused at its check', { timeout: 60_000 }, async () => {
    const both = [offer('duo'), offer('duo')];
    await until(() => upstream.held() === 2, 'both offers held upstream', 30_000);
    upstream.answerAll();
    // Measured before the fix: [201, 429] (call B created upstream, then hung up: concurrent_sessions_exceeded).
    expect((await Promise.all(both)).sort()).toEqual([201, 201]);
    expect(tp.logs.filter((l) => l['event'] === 'call_refused')).toEqual([]);
    // The tenant is at its two sessions: a third call is refused before it reaches the upstream.
    expect(await offer('duo')).toBe(429);
    expect(upstream.held()).toBe(0);
  });
});
