import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): DNS rebinding against the loopback admin
 * listener.
 *
 * The admin listener binds 127.0.0.1 by default so that only the machine can read it; `/metrics`
 * (per-tenant cost, tokens, guardrail activity) and `/demo` need no key there. The listener answers
 * any `Host`. A web page the operator opens (http://rebind.attacker.example:8081/) whose name is
 * re-pointed to 127.0.0.1 after it loads reads `/metrics` same-origin from the operator's browser
 * and posts it home: the loopback bind is the only protection of these routes, and DNS rebinding
 * walks around it. A listener bound to loopback can refuse names that are not loopback
 * (`127.0.0.1`, `[::1]`, `localhost`, with the port): those are the only ones a legitimate
 * client on the same machine uses. (Admin routes with the bearer key are not affected: a rebinding
 * page does not have the key.)
 */

/** `host`: one Host header, or several in order. */
function get(port: number, path: string, host: string | readonly string[]): Promise<{ status: number; text: string }> {
  const hostLines = typeof host === 'string' ? [host] : host;
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\n${hostLines.map((h) => `Host: ${h}\r\n`).join('')}Connection: close\r\n\r\n`));
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
  });
}

describe('adversary: Host names on the loopback admin listener', () => {
  let tp: TestProxy;
  let port = 0;

  beforeAll(async () => {
    tp = await startTestProxy({ tenants: { acme: {} }, config: { server: { demo: true } } });
    port = Number(new URL(tp.adminUrl).port);
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('control: /metrics answers loopback names (127.0.0.1, localhost, [::1])', async () => {
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      const r = await get(port, '/metrics', host);
      expect(r.status, host).toBe(200);
      expect(r.text).toContain('# TYPE');
    }
  });

  for (const path of ['/metrics', '/demo']) {
    it(`${path} is not served to a rebound name (Host: rebind.attacker.example): today 200`, async () => {
      const r = await get(port, path, `rebind.attacker.example:${port}`);
      expect(r.status).not.toBe(200);
      expect([400, 403, 421]).toContain(r.status);
      expect(r.text).not.toContain('# TYPE');
      expect(r.text).not.toContain('<!doctype html>');
    });
  }

  /**
   * Red team, no key: the loopback admin listener answers loopback Host names only (DNS rebinding,
   * src/server/http.ts adminRouteTable). It read the first `Host` header only (`getHeader`): a
   * request carrying `Host: localhost` and then a foreign `Host` was served (`/metrics`, `/demo`),
   * while the separate metrics listener already required every `Host` to be loopback. RFC 9112 §3.2:
   * a request with more than one Host is invalid; a front end (or a cache keyed by Host) may read the
   * other one. Now every Host must be a loopback name, else 421 misdirected_request as for one foreign Host.
   */
  for (const path of ['/metrics', '/demo', '/healthz']) {
    for (const hosts of [
      ['localhost', 'rebind.attacker.example'],
      ['rebind.attacker.example', '127.0.0.1'],
    ]) {
      it(`${path} with Host: ${hosts.join(' and Host: ')} is refused 421 misdirected_request, nothing served`, async () => {
        const r = await get(port, path, hosts);
        expect(r.status).toBe(421);
        expect(r.text).toContain('"code":"misdirected_request"');
        expect(r.text).not.toContain('# TYPE');
        expect(r.text).not.toContain('<!doctype html>');
        expect(r.text).not.toContain('"status":"ok"');
      });
    }
  }

  it('control: two loopback Host headers, or one, are still served', async () => {
    const two = await get(port, '/metrics', ['localhost', `127.0.0.1:${port}`]);
    expect(two.status).toBe(200);
    expect(two.text).toContain('# TYPE');
    expect((await get(port, '/metrics', [`[::1]:${port}`])).status).toBe(200);
  });
});
