import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestProxy, TestClient, type TestProxy } from '../support/harness.js';

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({ tenants: { acme: {}, globex: {} } });
});
afterAll(async () => {
  await tp.stop();
});

describe('tenant authentication', () => {
  it('refuses a header client without a key with HTTP 401 and never dials the upstream', async () => {
    const before = tp.sim.connections.length;
    const c = new TestClient(tp.url);
    expect(await c.refused).toBe(401);
    expect(tp.sim.connections.length).toBe(before);
  });

  it('refuses an unknown bearer key with HTTP 401 and never dials the upstream', async () => {
    const before = tp.sim.connections.length;
    const c = new TestClient(tp.url, { headers: { authorization: 'Bearer rpk_wrong_key_0000000000' } });
    expect(await c.refused).toBe(401);
    expect(tp.sim.connections.length).toBe(before);
  });

  it('answers a browser with a bad key by an error event and close 4001', async () => {
    const before = tp.sim.connections.length;
    const c = new TestClient(tp.url, { protocols: ['realtime', 'openai-insecure-api-key.ek_not_a_real_key'] });
    await c.opened;
    expect(c.ws.protocol).toBe('realtime');
    const err = await c.next('error');
    expect(err['error']).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
    expect((await c.closed).code).toBe(4001);
    expect(tp.sim.connections.length).toBe(before);
  });

  it('sends only the upstream key upstream; no tenant key reaches the upstream and no key reaches the logs', async () => {
    const c = await tp.client({ tenant: 'globex', clientOptions: { headers: { 'openai-beta': 'realtime=v1', 'x-custom': 'kept-here' } } });
    await c.next('session.created');
    c.say('say: keys stay home');
    await c.next('response.done');
    const endsBefore = tp.logs.filter((l) => l['event'] === 'session_end').length;
    c.close();
    await c.closed;
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    expect(conn.headers['authorization']).toBe('Bearer sk-simulator-local');
    const upstreamSaw = JSON.stringify(conn.headers) + JSON.stringify(conn.received);
    expect(upstreamSaw).not.toContain(tp.key('globex'));
    expect(conn.headers['openai-beta']).toBeUndefined();
    expect(conn.headers['x-custom']).toBeUndefined();
    for (const e of c.events) expect(JSON.stringify(e)).not.toContain('sk-simulator-local');
    // The session-end record is the session's last log line: wait for it, then read everything.
    await vi.waitFor(() => expect(tp.logs.filter((l) => l['event'] === 'session_end').length).toBe(endsBefore + 1), { timeout: 5000, interval: 10 });
    const logs = tp.logText();
    expect(logs).not.toContain('sk-simulator-local');
    expect(logs).not.toContain(tp.key('globex'));
  });

  it('forwards only allowed query parameters to the upstream (issue 10): unknown ones are dropped, the session works', async () => {
    const c = await tp.client({ query: 'model=gpt-realtime&tenant_hint=abc' });
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    expect(conn.url).toBe('/v1/realtime?model=gpt-realtime');
    c.close();
  });
});
