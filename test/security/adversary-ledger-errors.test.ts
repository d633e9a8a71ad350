import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../metering/redis-server.js';
import { errorCode, textTurn } from '../metering/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Adversary review (2026-12-05): the Redis ledger's socket error text reaches people who must not
 * see it. The README promises that addresses and socket error texts are logged, never put in
 * client error messages; the Redis ledger's last error (`connect ECONNREFUSED <host>:<port>`, or
 * `getaddrinfo ENOTFOUND <internal name>`) is
 *   - served by `/readyz` on the public client port, to anyone, without a key, and
 *   - put in `budget_unavailable` `details.reason`, sent to every tenant's clients mid-session.
 * It names the internal address of the ledger (network topology for an attacker).
 */

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function readyz(tp: TestProxy): Promise<{ status: number; text: string }> {
  const res = await fetch(`${tp.httpUrl}/readyz`);
  return { status: res.status, text: await res.text() };
}

/** Waits (bounded) until /readyz reports the ledger down and the connect error is in the logs. */
async function ledgerDown(tp: TestProxy): Promise<{ status: number; text: string }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await readyz(tp);
    if (r.status === 503 && /ECONNREFUSED/.test(tp.logText())) return r;
    if (Date.now() > deadline) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe('adversary: the ledger socket error text stays in the logs', () => {
  const proxies: TestProxy[] = [];
  let redis: RedisServer | null = null;

  afterAll(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await redis?.stop();
  });

  it('/readyz on the client port (no key) does not name the Redis ledger address', async () => {
    const port = await freePort();
    const tp = await startTestProxy({
      tenants: { acme: { limits: { dailyUsd: '5' } } },
      config: { metering: { ledger: { kind: 'redis', url: `redis://127.0.0.1:${port}`, failMode: 'closed', commandTimeoutMs: 500 } } },
    });
    proxies.push(tp);
    // Precondition: the ledger is down, and the proxy knows why (the address is in its logs).
    await ledgerDown(tp);
    expect(tp.logText()).toContain(`127.0.0.1:${port}`);
    const r = await readyz(tp);
    expect(r.status).toBe(503);
    // Correct: not ready, with a reason that does not carry the socket error text.
    expect(r.text).not.toContain(`${port}`);
    expect(r.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
  });

  it('budget_unavailable sent to a tenant mid-session does not carry the Redis socket error text', async () => {
    redis = await startRedis();
    const tp = await startTestProxy({
      tenants: { acme: { limits: { dailyUsd: '5' } } },
      config: { metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: 'adv:', failMode: 'closed', commandTimeoutMs: 1000 } } },
    });
    proxies.push(tp);
    const c = await tp.client();
    await c.next('session.created');
    expect((await textTurn(c)).done).not.toBeNull();
    await redis.stop(true);
    await ledgerDown(tp);
    const { error } = await textTurn(c);
    expect(errorCode(error)).toBe('budget_unavailable');
    const text = JSON.stringify(error);
    expect(text).not.toContain(`${redis.port}`);
    expect(text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
  });
});
