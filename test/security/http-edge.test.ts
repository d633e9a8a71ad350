import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging.js';
import { systemClock } from '../../src/main.js';
import { ProxyServer } from '../../src/server/server.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { RawClient, rawRequest, upgradeRequest } from './support.js';

/**
 * The HTTP edge as an attacker sees it: malformed paths, wrong and duplicated credentials,
 * oversized headers, handlers that throw. Each answer is an HTTP status; the process and every
 * other session survive.
 */

const ADMIN_KEY = 'admin_security_test_key_0123456789';

describe('HTTP edge', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await startTestProxy({ config: { admin: { key: ADMIN_KEY } } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('malformed percent-encoding on every admin route answers 400 and the process and a live session survive', async () => {
    const live = await tp.client();
    await live.next('session.created');
    const auth = { authorization: `Bearer ${ADMIN_KEY}` };
    for (const [method, path] of [
      ['GET', '/admin/tenants/%/spend'],
      ['GET', '/admin/tenants/%E0%A4%A/spend'],
      ['PUT', '/admin/tenants/%/caps'],
      ['POST', '/admin/tenants/%/reset'],
    ] as const) {
      const res = await fetch(`${tp.adminUrl}${path}`, { method, headers: auth, ...(method === 'GET' ? {} : { body: '{}' }) });
      expect(res.status, `${method} ${path}`).toBe(400);
    }
    // Without credentials the same paths are refused before anything is decoded.
    expect((await fetch(`${tp.adminUrl}/admin/tenants/%/spend`)).status).toBe(401);
    live.say('say: still here');
    expect(((await live.next('response.done'))['response'] as { status: string }).status).toBe('completed');
    live.close();
  });

  it('a wrong bearer token, a malformed header and a repeated one on admin routes answer 401 or 400', async () => {
    expect((await fetch(`${tp.adminUrl}/admin/tenants/acme/spend`, { headers: { authorization: 'Bearer wrong_key_0123456789abcdef' } })).status).toBe(401);
    expect((await fetch(`${tp.adminUrl}/admin/tenants/acme/spend`, { headers: { authorization: `Basic ${ADMIN_KEY}` } })).status).toBe(401);
    expect((await fetch(`${tp.adminUrl}/admin/tenants/acme/spend`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(200);
    const port = Number(new URL(tp.adminUrl).port);
    const dup = await rawRequest(port, `GET /admin/tenants/acme/spend HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nAuthorization: Bearer other\r\n\r\n`);
    expect(dup).toMatch(/^HTTP\/1\.1 400/);
  });

  it('the client port serves only /v1/realtime, /healthz and /readyz: no admin API, no /metrics', async () => {
    expect((await fetch(`${tp.httpUrl}/admin/tenants/acme/spend`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(404);
    expect((await fetch(`${tp.httpUrl}/admin/policies`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(404);
    expect((await fetch(`${tp.httpUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`${tp.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${tp.httpUrl}/readyz`)).status).toBe(200);
    // The admin listener is on loopback by default and serves the metrics.
    expect(tp.proxy.config.admin.host).toBe('127.0.0.1');
    const metrics = await fetch(`${tp.adminUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('rtproxy_');
  });

  it('duplicate Authorization or api-key headers on the upgrade are refused with 400, not last-wins', async () => {
    const good = `Bearer ${tp.key()}`;
    expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer rpk_attacker_0123456789abcdef`, `Authorization: ${good}`]))).toMatch(/^HTTP\/1\.1 400/);
    expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`api-key: ${tp.key()}`, 'api-key: x']))).toMatch(/^HTTP\/1\.1 400/);
    // A single header still works.
    expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: ${good}`]))).toMatch(/^HTTP\/1\.1 101/);
  });

  it('oversized headers get 431 before any key is hashed; over-long keys are refused without being cached', async () => {
    const big = 'k'.repeat(120 * 1024);
    expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer ${big}`]))).toMatch(/^HTTP\/1\.1 431/);
    const before = tp.proxy.server.keyCache;
    for (let i = 0; i < 50; i++) {
      const key = `rpk_${i}_${'z'.repeat(300)}`;
      expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer ${key}`]))).toMatch(/^HTTP\/1\.1 401/);
    }
    for (let i = 0; i < 50; i++) {
      expect(await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer rpk_unknown_${i}_0123456789`]))).toMatch(/^HTTP\/1\.1 401/);
    }
    // Rejected keys leave nothing behind.
    expect(tp.proxy.server.keyCache).toEqual(before);
  });
});

describe('handlers are total', () => {
  it('a module route that throws (synchronously or not) answers 500; the server keeps serving', async () => {
    const config = parseConfig({ server: { host: '127.0.0.1', port: 0 }, admin: { port: 0, key: ADMIN_KEY }, logging: { level: 'silent' } }, '(test)', {});
    const lines: string[] = [];
    const log = createLogger('error', { write: (s: string) => void lines.push(s) });
    const server = new ProxyServer({
      config,
      log,
      tenants: new TenantResolver(config),
      clock: systemClock,
      modules: [
        {
          name: 'broken',
          filters: [],
          routes: [
            {
              method: 'GET',
              path: '/throws-now',
              auth: 'none',
              handle: () => {
                throw new Error('boom');
              },
            },
            { method: 'GET', path: '/throws-later', auth: 'none', handle: async () => Promise.reject(new Error('later')) },
            { method: 'POST', path: '/echo/:id', auth: 'admin', handle: (_req, params) => ({ status: 200, body: params['id'] ?? '' }) },
          ],
        },
      ],
    });
    const { adminPort } = await server.listen();
    try {
      const base = `http://127.0.0.1:${adminPort}`;
      expect((await fetch(`${base}/throws-now`)).status).toBe(500);
      expect((await fetch(`${base}/throws-later`)).status).toBe(500);
      const auth = { authorization: `Bearer ${ADMIN_KEY}` };
      expect((await fetch(`${base}/echo/%zz`, { method: 'POST', headers: auth, body: 'x' })).status).toBe(400);
      expect(await (await fetch(`${base}/echo/a%20b`, { method: 'POST', headers: auth, body: 'x' })).text()).toBe('a b');
      // Bodies are bounded.
      expect((await fetch(`${base}/echo/x`, { method: 'POST', headers: auth, body: Buffer.alloc(2 * 1024 * 1024) })).status).toBe(413);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect(lines.join('')).toContain('boom');
    } finally {
      await server.shutdown(0);
    }
  });

  it('a filter that throws while a session opens ends that session with 1011; the server keeps serving', async () => {
    const key = 'rpk_total_test_key_0123456789';
    const config = parseConfig(
      { server: { host: '127.0.0.1', port: 0 }, admin: { port: 0 }, upstream: { provider: 'openai', url: 'ws://127.0.0.1:9/v1/realtime', apiKey: 'sk-x' }, tenants: { t: { keys: [{ key }] } } },
      '(test)',
      {},
    );
    const lines: string[] = [];
    const log = createLogger('error', { write: (s: string) => void lines.push(s) });
    const server = new ProxyServer({
      config,
      log,
      tenants: new TenantResolver(config),
      clock: systemClock,
      modules: [
        {
          name: 'broken',
          filters: [
            {
              name: 'explodes',
              wants: {},
              create: () => {
                throw new Error('filter construction failed');
              },
            },
          ],
        },
      ],
    });
    const { port } = await server.listen();
    try {
      for (let i = 0; i < 3; i++) {
        const c = new RawClient(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`, { authorization: `Bearer ${key}` });
        await c.opened;
        expect((await c.closed).code).toBe(1011);
      }
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect(server.sessionCount).toBe(0);
      expect(lines.join('')).toContain('filter construction failed');
    } finally {
      await server.shutdown(0);
    }
  });

  it('a malformed admin key is refused at boot with a message naming admin.key (it used to crash the first request)', () => {
    for (const key of ['sha256:ABCDEF', 'sha256:', `sha256:${'g'.repeat(64)}`, 'short']) {
      expect(() => parseConfig({ admin: { key } }, '(test)', {}), key).toThrow(/admin\.key/);
    }
    expect(() => parseConfig({ admin: { key: `sha256:${'AB'.repeat(32)}` } }, '(test)', {})).not.toThrow();
  });
});
