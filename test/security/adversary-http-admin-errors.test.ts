import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): error answers carry internal detail.
 *
 * The admin API answers a ledger failure with `budget_unavailable` and the ledger library's own
 * error text appended to the message (src/metering/routes.ts `unavailable`: "The ledger is
 * unavailable: " + err.message): ioredis internals ("Stream isn't writeable and enableOfflineQueue
 * options is false"), and for other failures the socket error, which names the ledger's internal
 * address ("connect ECONNREFUSED 10.0.3.7:6379"). README (threat model): "Ledger (Redis, SQLite)
 * error texts likewise [are logged, never put in client error messages]: budget_unavailable carries
 * details.reason: "ledger unavailable"" — the admin answers were left out when /readyz and the
 * session errors were fixed (test/security/adversary-ledger-errors.test.ts). The admin listener is
 * scraped and called by dashboards and scripts that log answers: the detail belongs in the proxy's
 * log, which already has it.
 */

const ADMIN_KEY = 'admin_adversary_http_key_0123456789';
/** Internal detail that must stay in the proxy's log. */
const INTERNAL = /Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|ETIMEDOUT|ENOTFOUND|127\.0\.0\.1|redis:\/\/|Connection is closed|ioredis/;

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

describe('adversary: admin API error answers with the Redis ledger down', () => {
  let tp: TestProxy;
  let redisPort = 0;

  beforeAll(async () => {
    redisPort = await freePort();
    tp = await startTestProxy({
      tenants: { acme: { limits: { dailyUsd: '5' } } },
      config: { admin: { key: ADMIN_KEY }, metering: { ledger: { kind: 'redis', url: `redis://127.0.0.1:${redisPort}`, failMode: 'closed', commandTimeoutMs: 300 } } },
    });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  for (const [method, path, body] of [
    ['GET', '/admin/tenants/acme/spend', undefined],
    ['PUT', '/admin/tenants/acme/caps', '{"period":"day","usd":"1"}'],
    ['POST', '/admin/tenants/acme/reset', '{"period":"day"}'],
    ['GET', '/admin/usage?tenant=acme', undefined],
  ] as const) {
    it(`${method} ${path.split('?')[0]} answers 503 budget_unavailable without the ledger's error text`, async () => {
      const res = await fetch(`${tp.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, ...(body ? { body } : {}) });
      const text = await res.text();
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toBe('application/json');
      const json = JSON.parse(text) as { error: { code: string; message: string } };
      expect(Object.keys(json)).toEqual(['error']);
      expect(json.error.code).toBe('budget_unavailable');
      // Today: "The ledger is unavailable: Stream isn't writeable and enableOfflineQueue options is false".
      expect(json.error.message).not.toMatch(INTERNAL);
      expect(text).not.toContain(String(redisPort));
    });
  }
});
