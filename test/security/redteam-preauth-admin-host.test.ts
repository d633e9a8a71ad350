import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Red team, no key: the loopback admin listener answers loopback Host names only (DNS rebinding,
 * src/server/http.ts adminRouteTable). It read the first `Host` header only (`getHeader`): a
 * request carrying `Host: localhost` and then a foreign `Host` was served (`/metrics`, `/demo`),
 * while the separate metrics listener already required every `Host` to be loopback. RFC 9112 §3.2:
 * a request with more than one Host is invalid; a front end (or a cache keyed by Host) may read the
 * other one. Now every Host must be a loopback name, else 421 misdirected_request as for one foreign Host.
 */

function get(port: number, path: string, hostLines: readonly string[]): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\n${hostLines.map((h) => `Host: ${h}\r\n`).join('')}Connection: close\r\n\r\n`));
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
  });
}

describe('red team (no key): two Host headers on the loopback admin listener', () => {
  let tp: TestProxy;
  let port = 0;

  beforeAll(async () => {
    tp = await startTestProxy({ tenants: { acme: {} }, config: { server: { demo: true } } });
    port = Number(new URL(tp.adminUrl).port);
  });

  afterAll(async () => {
    await tp?.stop();
  });

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
