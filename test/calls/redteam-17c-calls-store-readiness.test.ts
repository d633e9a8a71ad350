import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { closedPort } from '../support/ports.js';

/**
 * An operator runs calls (WebRTC/SIP) with the Redis store (`metering.ledger.kind: redis`) and
 * metering off, or on with `failMode: open`. Redis goes away (a port nothing listens on). Every
 * client-secret mint then fails (500), every SDP offer and `?call_id=` attach too, while /readyz said
 * 200 "ready": the load balancer kept sending browsers to an instance that could serve none of them.
 * The guarantee broken: /readyz is 503 when the proxy cannot serve. Now the calls module reports
 * its store (`calls: calls store (redis) unavailable`), under failMode closed (the default).
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxyWithStoreDown(failMode: 'closed' | 'open'): Promise<{ tp: TestProxy; port: number }> {
  const port = await closedPort();
  const tp = await startTestProxy({
    config: { metering: { enabled: false, ledger: { kind: 'redis', url: `redis://127.0.0.1:${port}`, failMode, commandTimeoutMs: 250 } }, calls: { enabled: true } },
  });
  cleanups.push(() => tp.stop());
  return { tp, port };
}

async function mint(tp: TestProxy): Promise<number> {
  const res = await fetch(`${tp.httpUrl}/v1/realtime/client_secrets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tp.key()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ session: { type: 'realtime', model: 'gpt-realtime' } }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe('/readyz with the calls store unreachable', () => {
  it('is 503 naming the store while mints fail (failMode closed)', async () => {
    const { tp, port } = await proxyWithStoreDown('closed');
    // The mint's failed command is what tells the client the store is down: /readyz is asked after it.
    expect(await mint(tp)).toBeGreaterThanOrEqual(500);
    const ready = await fetch(`${tp.httpUrl}/readyz`);
    const body = await ready.text();
    expect(body).toContain('calls: calls store (redis) unavailable');
    expect(body).not.toContain(String(port));
    expect(ready.status).toBe(503);
  });

  it('stays 200 with failMode open (the operator keeps the instance in, as for the ledger)', async () => {
    const { tp } = await proxyWithStoreDown('open');
    expect(await mint(tp)).toBeGreaterThanOrEqual(500);
    const ready = await fetch(`${tp.httpUrl}/readyz`);
    await ready.text();
    expect(ready.status).toBe(200);
  });
});
