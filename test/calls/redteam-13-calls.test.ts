import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { callsProxy, mint, OFFER, post } from './support.js';

/**
 * Red team 13 (2026-12-06), a browser holding one proxy-minted secret: `server.maxSessions` is
 * checked before the offer goes upstream (`governors.size`), and the call counts only once its
 * sideband started, after the upstream answered. A burst of concurrent offers all passed the check
 * (none was governed yet): with maxSessions 2, six offers posted at once made six calls upstream
 * and six sidebands here; any burst size went through for a tenant without maxConcurrentSessions.
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: { policy: 'locked' }, other: {} }, extra: { config: { server: { maxSessions: 2 } } } });
});
afterAll(async () => {
  await tp?.stop();
});

describe('server.maxSessions holds against a burst of offers (red team 13)', () => {
  it('six offers posted at once with one secret at maxSessions 2: two calls, four 503 overloaded that never reach the upstream', async () => {
    const secret = await mint(tp, 'other');
    expect(secret.status).toBe(200);
    const key = secret.json['value'] as string;
    const before = tp.sim.calls.calls.size;
    const burst = await Promise.all(Array.from({ length: 6 }, () => post(`${tp.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER })));
    const created = burst.filter((r) => r.status === 201);
    const refused = burst.filter((r) => r.status !== 201);
    expect(created).toHaveLength(2);
    for (const r of created) expect(r.text.startsWith('v=0\r\n')).toBe(true);
    expect(refused).toHaveLength(4);
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(r.json).toEqual({ error: { type: 'server_error', code: 'overloaded', message: 'The proxy is at capacity.', param: null } });
      expect(r.headers.get('access-control-allow-origin')).toBe('*');
    }
    // Nothing was created upstream for the refused offers.
    expect(tp.sim.calls.calls.size - before).toBe(2);
  });
});

// Regression (2026-12-06, thirteenth session, red team): a call's sidebands and the WebSocket
// sessions counted apart, each against all of server.maxSessions: the process held twice the bound.
describe('server.maxSessions counts calls and WebSocket sessions together', () => {
  it('at maxSessions 2, one WebSocket session: one offer is governed, the next refused 503; with both places taken, a WebSocket upgrade is refused 503', async () => {
    const both = await callsProxy({ tenants: { acme: {} }, extra: { config: { server: { maxSessions: 2 } } } });
    try {
      const ws = await both.client({ tenant: 'acme' });
      await ws.next('session.created');
      const key = (await mint(both, 'acme')).json['value'] as string;
      const offer = () => post(`${both.httpUrl}/v1/realtime/calls`, { key, contentType: 'application/sdp', body: OFFER });
      expect((await offer()).status).toBe(201);
      const over = await offer();
      expect([over.status, over.json]).toEqual([503, { error: { type: 'server_error', code: 'overloaded', message: 'The proxy is at capacity.', param: null } }]);
      expect(both.sim.calls.calls.size).toBe(1);
      const third = new TestClient(`ws://127.0.0.1:${both.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${both.key('acme')}` } });
      expect(await third.refused).toBe(503);
      ws.close();
    } finally {
      await both.stop();
    }
  });
});
