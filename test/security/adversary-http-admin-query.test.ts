import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): a repeated query parameter on the admin API.
 *
 * The upgrade refuses a repeated `model`, `intent` or `call_id` (400: "given more than once") so
 * that no two readers of the request (a gateway in front, the proxy) can act on different values.
 * `GET /admin/usage` reads `tenant`, `since` and `limit` with URLSearchParams.get: the first one
 * wins, silently. A gateway that delegates the admin API per tenant and checks the *last*
 * `tenant=` (or one that joins repeated values) lets `?tenant=acme&tenant=globex` through for
 * globex's operator while the proxy answers acme's usage records: the cross-tenant read the
 * upgrade path was hardened against. Low on its own (the admin key is needed), but the same
 * ambiguity rule should hold on every route.
 */

const ADMIN_KEY = 'admin_adversary_http_key_0123456789';

describe('adversary: repeated query parameters on GET /admin/usage', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await startTestProxy({ tenants: { acme: {}, globex: {} }, config: { admin: { key: ADMIN_KEY } } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  const usage = async (query: string) => {
    const res = await fetch(`${tp.adminUrl}/admin/usage?${query}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
  };

  for (const query of ['tenant=acme&tenant=globex', 'since=0&since=9999999999999', 'limit=1&limit=100000']) {
    it(`?${query} is refused 400 invalid_request (today: the first value wins, 200)`, async () => {
      const r = await usage(query);
      expect(r.status).toBe(400);
      expect(r.type).toBe('application/json');
      expect((JSON.parse(r.body) as { error: { code: string } }).error.code).toBe('invalid_request');
    });
  }

  it('control: each parameter once answers 200 with JSON lines', async () => {
    const r = await usage('tenant=acme&since=0&limit=10');
    expect(r).toEqual({ status: 200, type: 'application/x-ndjson', body: '' });
  });
});
