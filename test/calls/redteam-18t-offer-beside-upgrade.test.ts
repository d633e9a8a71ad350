/**
 * Red team 18t (calls × metering): a tenant's WebRTC offer in flight and its WebSocket upgrades.
 *
 * f28aa7d made a tenant's offers in flight count against its `maxConcurrentSessions` in the calls
 * module's own check (holdOffer / `alsoHeld`), but a WebSocket upgrade's admission (metering's
 * `admit`, a ledger slot) does not see them: the offer holds no slot until its sideband starts. A
 * tenant allowed ONE session posts an offer the upstream is slow to answer and opens a WebSocket
 * session meanwhile: both hold a place among `server.maxSessions`, and at `maxSessions: 2` every
 * other tenant is refused `overloaded` for as long as offers are kept in flight (the class
 * test/calls/redteam-18-offers-per-tenant.test.ts closed for two offers). Guarantee broken: a
 * tenant's limits bound what it holds (README, Security).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, heldOffers, mint, OFFER, post, until } from './support.js';

let upstream: Awaited<ReturnType<typeof heldOffers>>;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await heldOffers();
  tp = await callsProxy({
    tenants: { capped: { limits: { maxConcurrentSessions: 1 } }, other: {} },
    extra: { config: { server: { maxSessions: 2 }, logging: { level: 'warn' }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  upstream?.release();
  await tp?.stop();
  await upstream?.close();
});

const upgrade = async (tenant: string): Promise<number> => {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key(tenant)}` } });
  const outcome = await Promise.race([c.refused, c.opened.then(() => 101)]);
  c.ws.terminate();
  return outcome;
};

describe('red team 18t: a tenant allowed one session, an offer in flight and a WebSocket upgrade', () => {
  it("the upgrade is refused 429 while the offer holds the tenant's one session; another tenant still opens", async () => {
    const key = (await mint(tp, 'capped')).json['value'] as string;
    const offer = post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
    await until(() => upstream.held() === 1, 'the offer held upstream');
    const capped = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key('capped')}` } });
    const cappedOutcome = await Promise.race([capped.refused, capped.opened.then(() => 101)]);
    // Another tenant, while the capped one's socket (if it opened) is still open.
    const otherOutcome = await upgrade('other');
    capped.ws.terminate();
    // Old code: [101, 503] (the capped tenant held both places: its offer and its session).
    expect([cappedOutcome, otherOutcome]).toEqual([429, 101]);
    upstream.release();
    await offer;
    await until(() => tp.proxy.server.sessionsOpen === 0, 'every place given back');
  });
});
