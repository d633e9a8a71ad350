/**
 * Red team (18, redsec): WebRTC offers in flight and the tenant's own concurrency limit.
 *
 * An offer (POST /v1/realtime/calls) is checked against the tenant's caps and concurrency with a
 * probe that holds nothing (checkCall), then holds a place among `server.maxSessions` while the
 * upstream answers it (up to `calls.upstreamTimeoutMs`, 10 s). The adversary holds the key of a
 * tenant allowed ONE concurrent session (or a browser secret minted for it) and posts offers while
 * the upstream is slow to answer: every probe sees the tenant's one slot free, so every offer holds a
 * place, and at maxSessions 2 two offers refuse every other tenant `overloaded` (WebSocket upgrades
 * and calls alike) for as long as the adversary keeps offers in flight. The guarantee broken: an
 * authenticated tenant is hostile to the others, and its limits bound what it holds (README,
 * Security: the same class 17b fixed for upgrades waiting on a slow ledger).
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

describe('red team 18: a tenant allowed one session and its offers in flight', () => {
  it('holds at most one place with offers held upstream: its second offer is refused, another tenant still opens a session', async () => {
    const key = (await mint(tp, 'capped')).json['value'] as string;
    const offer = () => post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
    const first = offer();
    await until(() => upstream.held() === 1, 'the first offer held upstream');
    // The tenant's one slot is spoken for by the offer in flight: a second offer is its own limit's
    // refusal, not a second place. (Before the fix it went upstream too: held there, or 502 after 10 s.)
    const second = offer();
    const secondHeld = until(() => upstream.held() === 2, 'the second offer held upstream').then(() => 'held upstream');
    const settled = await Promise.race([second.then((r) => `${r.status} ${String((r.json['error'] as Record<string, unknown> | undefined)?.['code'])}`), secondHeld]);
    expect(settled).toBe('429 concurrent_sessions_exceeded');
    // Another tenant's session opens: the capped tenant holds one place, not every place.
    const other = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key('other')}` } });
    const outcome = await Promise.race([other.refused, other.opened.then(() => 101)]);
    other.ws.terminate();
    expect(outcome).toBe(101);
    upstream.release();
    expect((await first).status).not.toBe(201);
    await second;
    await until(() => tp.proxy.server.sessionsOpen === 0, 'every place given back');
  });

  it('a burst of offers posted at once: one reaches the upstream, the others are refused concurrent_sessions_exceeded', async () => {
    const key = (await mint(tp, 'capped')).json['value'] as string;
    const answered: number[] = [];
    const burst = Array.from({ length: 4 }, () => post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER }).then((r) => (answered.push(r.status), r)));
    // Either three are refused while one is held upstream, or (before the fix) a second one reached it.
    await until(() => answered.length === 3 || upstream.held() > 1, 'three answered or a second offer upstream');
    expect(upstream.held()).toBe(1);
    expect(answered).toEqual([429, 429, 429]);
    upstream.release();
    await Promise.all(burst);
    await until(() => tp.proxy.server.sessionsOpen === 0, 'every place given back');
  });
});
