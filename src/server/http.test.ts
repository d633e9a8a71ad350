import { connect } from 'node:net';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../../test/support/harness.js';
import { ADMIN_ANSWER_HEADERS, adminRouteTable, CLOSE_NOW_PADDING, Exchange, isLoopbackHost, isLoopbackName, jsonReply } from './http.js';

/*
 * The admin listener's front (2026-12-06 HTTP review): bound to loopback it answered any Host, so a
 * page whose name was re-pointed to 127.0.0.1 (DNS rebinding) read /metrics and /demo from the
 * operator's browser; and its answers carried no nosniff / X-Frame-Options / Referrer-Policy.
 * Through the running proxy: test/security/adversary-http-admin-host.test.ts.
 */

describe('isLoopbackName / isLoopbackHost', () => {
  it('loopback names: localhost, 127.0.0.0/8, ::1 in any spelling, IPv4-mapped 127.0.0.0/8', () => {
    for (const name of ['localhost', 'LOCALHOST', '127.0.0.1', '127.255.255.254', '127.0.0.0', '::1', '[::1]', '0:0:0:0:0:0:0:1', '[0000::0001]', '::ffff:127.0.0.1', '[::ffff:7f00:1]']) {
      expect(isLoopbackName(name), name).toBe(true);
    }
    for (const name of ['', '0.0.0.0', '::', '[::]', '10.0.0.1', '128.0.0.1', '126.255.255.255', '127.1', '1.127.0.0', 'localhost.', 'localhost.attacker.example', 'x.localhost', 'rebind.attacker.example', '::2', '::ffff:10.0.0.1', '::ffff:7f00:1:0', 'fe80::1%lo', '[::1', '::1]', '127.0.0.1:80']) {
      expect(isLoopbackName(name), name).toBe(false);
    }
  });

  it('Host headers: a loopback name with or without a port; absent (no browser omits it) counts as loopback', () => {
    for (const host of ['', 'localhost', 'localhost:8081', 'LocalHost:1', '127.0.0.1:8081', '127.9.9.9', '[::1]:8081', '[::1]', '[::1]:', 'localhost:', '[::ffff:7f00:1]:80']) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ['rebind.attacker.example', 'rebind.attacker.example:8081', '10.0.0.1:8081', '::1', '::1:8081', '[::1]x', '[::1]:80:80', 'localhost:80:80', 'localhost:123456', 'localhost:x', ':8081', '[]:80', 'user@localhost', 'localhost.:8081', ' localhost', '[fe80::1%25lo]:80']) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});

/** A uWS app and response that record what the route table does with them. */
function fakes() {
  const registered = new Map<string, (res: HttpResponse, req: HttpRequest) => void>();
  const app = {} as Record<string, unknown>;
  for (const method of ['get', 'post', 'put', 'options', 'del', 'any']) {
    app[method] = (pattern: string, handler: (res: HttpResponse, req: HttpRequest) => void) => {
      registered.set(`${method} ${pattern}`, handler);
      return app;
    };
  }
  const request = (host: string | null) =>
    ({
      getHeader: (name: string) => (name === 'host' && host !== null ? host : ''),
      forEach: (fn: (name: string, value: string) => void) => (host !== null ? fn('host', host) : undefined),
    }) as unknown as HttpRequest;
  const response = () => {
    const written: Array<[string, ...unknown[]]> = [];
    const res = {
      cork: (fn: () => void) => fn(),
      writeStatus: (s: string) => written.push(['status', s]),
      writeHeader: (k: string, v: string) => written.push(['header', k, v]),
      end: (body: string, close: boolean) => written.push(['end', body, close]),
      // A socket that takes every answer at once (what `end` without closing recorded before).
      tryEnd: (body: Buffer) => {
        written.push(['end', body.toString('utf8'), false]);
        return [true, true];
      },
      close: () => written.push(['close']),
      onAborted: () => undefined,
    };
    return { res: res as unknown as HttpResponse, written };
  };
  return { app: app as unknown as TemplatedApp, registered, request, response };
}

describe('adminRouteTable', () => {
  it('registers every method through the app, and each handler answers with the admin headers (a reply\'s own header is not repeated)', () => {
    const { app, registered, request, response } = fakes();
    const table = adminRouteTable(app, false);
    const handler = (reply: Parameters<Exchange['reply']>[0]) => (res: HttpResponse) => new Exchange(res).reply(reply);
    expect(table.get('/a', handler(jsonReply(200, { ok: true })))).toBe(app);
    table.post('/b', handler({ status: 200, headers: { 'Referrer-Policy': 'same-origin', 'x-frame-options': 'SAMEORIGIN' }, body: 'x' }));
    table.put('/c', handler({ status: 204, body: '' }));
    table.options('/d', handler({ status: 204, body: '' }));
    table.del('/e', handler({ status: 204, body: '' }));
    table.any('/*', handler({ status: 404, body: '' }));
    expect([...registered.keys()]).toEqual(['get /a', 'post /b', 'put /c', 'options /d', 'del /e', 'any /*']);

    let r = response();
    registered.get('get /a')!(r.res, request('anything.example'));
    expect(r.written).toEqual([
      ['status', '200 OK'],
      ['header', 'content-type', 'application/json'],
      ['header', 'x-content-type-options', 'nosniff'],
      ['header', 'x-frame-options', 'DENY'],
      ['header', 'referrer-policy', 'no-referrer'],
      ['end', '{"ok":true}', false],
    ]);
    r = response();
    registered.get('post /b')!(r.res, request(null));
    expect(r.written).toEqual([
      ['status', '200 OK'],
      ['header', 'Referrer-Policy', 'same-origin'],
      ['header', 'x-frame-options', 'SAMEORIGIN'],
      ['header', 'x-content-type-options', 'nosniff'],
      ['end', 'x', false],
    ]);
    for (const key of ['put /c', 'options /d', 'del /e', 'any /*']) {
      r = response();
      registered.get(key)!(r.res, request('x'));
      expect(r.written.filter((w) => w[0] === 'header').map((w) => w[1]), key).toEqual(Object.keys(ADMIN_ANSWER_HEADERS));
    }
    // An Exchange on a response that did not come through the table adds nothing.
    r = response();
    new Exchange(r.res).reply(jsonReply(200, {}));
    expect(r.written.filter((w) => w[0] === 'header')).toEqual([['header', 'content-type', 'application/json']]);
  });

  it('bound to loopback: a Host that is not a loopback name gets 421 misdirected_request (connection closed), the handler never runs', () => {
    const { app, registered, request, response } = fakes();
    const table = adminRouteTable(app, true);
    let ran = 0;
    for (const method of ['get', 'post', 'put', 'options', 'del', 'any'] as const) table[method]('/x', () => void ran++);
    for (const key of registered.keys()) {
      const r = response();
      registered.get(key)!(r.res, request('rebind.attacker.example:8081'));
      expect(r.written, key).toEqual([
        ['status', '421 Misdirected Request'],
        ['header', 'content-type', 'application/json'],
        ['header', 'x-content-type-options', 'nosniff'],
        ['header', 'x-frame-options', 'DENY'],
        ['header', 'referrer-policy', 'no-referrer'],
        [
          'end',
          JSON.stringify({ error: { code: 'misdirected_request', message: 'The admin listener is bound to a loopback address and answers loopback Host names only (localhost, 127.0.0.0/8, [::1]).' } }) + CLOSE_NOW_PADDING,
          true,
        ],
      ]);
    }
    expect(ran).toBe(0);
    for (const host of ['localhost:8081', '127.0.0.1', '[::1]:1', null]) registered.get('get /x')!(response().res, request(host));
    expect(ran).toBe(4);
  });

  it('a refusal that cannot be written closes the connection instead of throwing into uWS', () => {
    const { app, registered, request, response } = fakes();
    adminRouteTable(app, true).get('/x', () => undefined);
    const r = response();
    (r.res as unknown as { cork: () => void }).cork = () => {
      throw new Error('gone');
    };
    expect(() => registered.get('get /x')!(r.res, request('evil.example'))).not.toThrow();
    expect(r.written).toEqual([['close']]);
    (r.res as unknown as { close: () => void }).close = () => {
      throw new Error('gone too');
    };
    expect(() => registered.get('get /x')!(r.res, request('evil.example'))).not.toThrow();
  });
});

function rawGet(port: number, path: string, host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(text));
  });
}

describe('the admin listener through the running proxy', () => {
  const proxies: TestProxy[] = [];
  afterAll(async () => {
    for (const p of proxies) await p.stop();
  });

  it('bound to loopback: every route (health, metrics, not found) refuses a foreign Host with 421 and answers a loopback one with the admin headers', async () => {
    const tp = await startTestProxy({ tenants: { acme: {} } });
    proxies.push(tp);
    const port = Number(new URL(tp.adminUrl).port);
    for (const path of ['/healthz', '/readyz', '/metrics', '/nothing-here']) {
      const refused = await rawGet(port, path, `rebind.attacker.example:${port}`);
      expect(refused, path).toMatch(/^HTTP\/1\.1 421 Misdirected Request\r\n/);
      expect(refused).toContain('"code":"misdirected_request"');
      const answered = await rawGet(port, path, `localhost:${port}`);
      expect(answered, path).toMatch(/^HTTP\/1\.1 (200|404) /);
      expect(answered.toLowerCase()).toContain('\r\nx-content-type-options: nosniff\r\n');
      expect(answered.toLowerCase()).toContain('\r\nx-frame-options: deny\r\n');
      expect(answered.toLowerCase()).toContain('\r\nreferrer-policy: no-referrer\r\n');
    }
    // The client port is not the admin listener: it answers any Host, without the admin headers.
    const client = await rawGet(tp.port, '/healthz', 'rebind.attacker.example');
    expect(client).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(client.toLowerCase()).not.toContain('x-frame-options');
  });

  it('bound to a non-loopback address: any Host is answered (the operator\'s network controls decide who reaches it)', async () => {
    const tp = await startTestProxy({ tenants: { acme: {} }, config: { admin: { host: '0.0.0.0' } } });
    proxies.push(tp);
    const port = Number(new URL(tp.adminUrl).port);
    const r = await rawGet(port, '/metrics', `proxy-admin.internal:${port}`);
    expect(r).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(r).toContain('# TYPE');
    expect(r.toLowerCase()).toContain('\r\nx-content-type-options: nosniff\r\n');
  });
});
