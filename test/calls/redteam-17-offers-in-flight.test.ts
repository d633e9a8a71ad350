/**
 * Red team (seventeenth pass): WebRTC offers on their way upstream and WebSocket upgrades share
 * `server.maxSessions`.
 *
 * The calls module counts an offer from its check until its sideband starts (`creating`, since the
 * thirteenth session), but only in its own check: the server's upgrade check read the sidebands
 * (`governors.size`) and not the offers in flight. A tenant (or a browser holding one of its
 * secrets) posts offers while the upstream takes its time to answer, and opens WebSocket sessions
 * meanwhile: every upgrade passes, and once the offers are answered their sidebands start too. At
 * `maxSessions: 2`, two offers in flight and two upgrades made four sessions. The guarantee broken:
 * calls and WebSocket sessions count together against `maxSessions` (README, Browser and phone calls).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, heldOffers, mint, OFFER, post, until } from './support.js';

let upstream: Awaited<ReturnType<typeof heldOffers>>;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await heldOffers();
  tp = await callsProxy({
    tenants: { acme: {} },
    extra: { config: { server: { maxSessions: 2 }, logging: { level: 'warn' }, upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-test-upstream', allowCallId: true } } },
  });
});
afterAll(async () => {
  upstream?.release();
  await tp?.stop();
  await upstream?.close();
});

describe('server.maxSessions counts offers in flight for WebSocket upgrades too', () => {
  it('at maxSessions 2, two offers held upstream: a WebSocket upgrade is refused 503, as a third offer is', async () => {
    const key = (await mint(tp, 'acme')).json['value'] as string;
    const offer = () => post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
    const inFlight = [offer(), offer()];
    await until(() => upstream.held() === 2, 'both offers held upstream');
    const upgrade = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
    const outcome = await Promise.race([upgrade.refused, upgrade.opened.then(() => 101)]);
    upgrade.ws.terminate();
    expect(outcome).toBe(503);
    expect(tp.proxy.server.sessionsOpen).toBe(2);
    expect((await offer()).status).toBe(503);
    upstream.release();
    for (const r of await Promise.all(inFlight)) expect(r.status).not.toBe(201);
    expect(tp.proxy.server.sessionsOpen).toBe(0);
  });
});
