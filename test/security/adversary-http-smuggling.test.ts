import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callsProxy } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): request smuggling with two Content-Length
 * headers (CL.CL). RFC 9112 §6.3: a message with differing Content-Length values is an
 * unrecoverable framing error (400, connection closed). uWS takes the *first* value and parses the
 * rest of the bytes as a second request on the same connection; a load balancer in front that takes
 * the *last* value (README: "behind load balancers set server.forwardedForHops") sees one request.
 * The two disagree on where the next request starts: a request the front end never saw (and never
 * authenticated, logged or rate-limited) reaches the proxy, or a victim's request on a reused
 * upstream connection is glued to the attacker's prefix. The proxy copies every header
 * (src/server/http.ts copyHeaders joins the repeated values as "2, 41"), so it can refuse them.
 */

/** Writes `request` on a fresh connection; resolves with every byte received until the proxy closes it (or 3 s pass). */
function exchange(port: number, request: string): Promise<{ text: string; closedByProxy: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(request));
    let text = '';
    // Bounds the wait for a proxy that keeps the connection open (the case under test): not an assertion on time.
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closedByProxy: false });
    }, 3000);
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedByProxy: true });
    });
  });
}

/** Every response's status line on the connection (a response's body is not newline-terminated: the next one follows it directly). */
const statusLines = (text: string) => [...text.matchAll(/HTTP\/1\.1 \d{3} [A-Za-z ]+(?=\r\n)/g)].map((m) => m[0]);

describe('adversary: two Content-Length headers on a tenant route', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: {} }, extra: { config: { logging: { level: 'info' } } } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  const minted = () => tp.logs.filter((l) => l['event'] === 'client_secret_minted').length;

  it('CL.CL: differing Content-Length values are refused 400 and the connection closed; the bytes after the first length are not served as a second request', async () => {
    const smuggled = 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n';
    const body = `{}${smuggled}`;
    const before = minted();
    const { text, closedByProxy } = await exchange(
      tp.port,
      [
        'POST /v1/realtime/client_secrets HTTP/1.1',
        'Host: x',
        `Authorization: Bearer ${tp.key('acme')}`,
        'Content-Type: application/json',
        // uWS reads 2 bytes of body ("{}") and serves the rest as GET /readyz; a front end that
        // takes the last value forwarded one request with a 38-byte body.
        'Content-Length: 2',
        `Content-Length: ${body.length}`,
        '',
        body,
      ].join('\r\n'),
    );
    // Today: two responses on one connection (200 with a minted secret, then the smuggled /readyz).
    expect(statusLines(text)).toEqual(['HTTP/1.1 400 Bad Request']);
    const json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error?: { code?: string } };
    expect(json.error?.code).toBe('invalid_request');
    expect(text).not.toContain('"status":"ready"');
    expect(closedByProxy).toBe(true);
    // Nothing was minted from an ambiguously framed request.
    expect(minted()).toBe(before);
  });

  it('CL.CL in the other order (the larger first) is refused the same way, not read as a 38-byte body', async () => {
    const smuggled = 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n';
    const body = `{}${smuggled}`;
    const { text, closedByProxy } = await exchange(
      tp.port,
      ['POST /v1/realtime/client_secrets HTTP/1.1', 'Host: x', `Authorization: Bearer ${tp.key('acme')}`, 'Content-Type: application/json', `Content-Length: ${body.length}`, 'Content-Length: 2', '', body].join('\r\n'),
    );
    // Today: 400 "The request body is not valid JSON" (the 38 bytes were read as the body), the connection kept open.
    expect(statusLines(text)).toEqual(['HTTP/1.1 400 Bad Request']);
    expect(text).not.toContain('not valid JSON');
    expect(closedByProxy).toBe(true);
  });

  // Added with the fix (2026-12-06): the same framing on every route and listener, and the other
  // values a front end and uWS may read apart. Each failed before the fix (served, or the connection kept).
  const refusedAndClosed = async (port: number, request: string) => {
    const { text, closedByProxy } = await exchange(port, request);
    expect(statusLines(text)).toEqual(['HTTP/1.1 400 Bad Request']);
    expect((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error?: { code?: string } }).error?.code).toBe('invalid_request');
    expect(text).not.toContain('"status":"ready"');
    expect(closedByProxy).toBe(true);
  };
  const smuggledReadyz = 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n';

  it('CL.CL on a route that reads no body (/healthz) and on an unknown path is refused too', async () => {
    for (const path of ['/healthz', '/nowhere']) {
      await refusedAndClosed(tp.port, [`GET ${path} HTTP/1.1`, 'Host: x', 'Content-Length: 0', `Content-Length: ${smuggledReadyz.length}`, '', smuggledReadyz].join('\r\n'));
    }
  });

  it('CL.CL behind a foreign Host on the loopback admin listener: the 421 closes at once, the smuggled request is not served', async () => {
    const adminPort = Number(new URL(tp.adminUrl).port);
    const { text, closedByProxy } = await exchange(adminPort, ['GET /healthz HTTP/1.1', 'Host: rebind.example', 'Content-Length: 0', `Content-Length: ${smuggledReadyz.length}`, '', smuggledReadyz].join('\r\n'));
    expect(statusLines(text)).toEqual(['HTTP/1.1 421 Misdirected Request']);
    expect(text).not.toContain('"status":"ready"');
    expect(closedByProxy).toBe(true);
  });

  it('CL.CL on the admin listener is refused too', async () => {
    const adminPort = Number(new URL(tp.adminUrl).port);
    expect(adminPort).toBeGreaterThan(0);
    // A loopback Host: the admin listener answers others 421 before any route runs.
    await refusedAndClosed(adminPort, ['GET /healthz HTTP/1.1', 'Host: 127.0.0.1', 'Content-Length: 0', `Content-Length: ${smuggledReadyz.length}`, '', smuggledReadyz].join('\r\n'));
  });

  it('CL.CL on a WebSocket upgrade request is refused before any key is looked at', async () => {
    await refusedAndClosed(
      tp.port,
      ['GET /v1/realtime?model=gpt-realtime HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Authorization: Bearer rpk_nobody', 'Content-Length: 0', `Content-Length: ${smuggledReadyz.length}`, '', smuggledReadyz].join('\r\n'),
    );
  });

  it('a Content-Length that is a list, signed, hex, or beside Transfer-Encoding is never served: closed unanswered by uWS, or 400 and closed', async () => {
    const head = ['POST /v1/realtime/client_secrets HTTP/1.1', 'Host: x', `Authorization: Bearer ${tp.key('acme')}`, 'Content-Type: application/json'];
    const before = minted();
    for (const framing of [['Content-Length: 2, 2'], ['Content-Length: +2'], ['Content-Length: 0x2'], ['Content-Length: 2', 'Transfer-Encoding: chunked'], ['Transfer-Encoding: chunked', 'Content-Length: 2']]) {
      const chunked = framing.some((h) => h.startsWith('Transfer-Encoding'));
      const { text, closedByProxy } = await exchange(tp.port, [...head, ...framing, '', chunked ? `2\r\n{}\r\n0\r\n\r\n${smuggledReadyz}` : `{}${smuggledReadyz}`].join('\r\n'));
      // uWS closes most of these itself before a handler runs (no answer); one that reaches a handler gets the 400.
      expect({ framing, statuses: statusLines(text).filter((l) => l !== 'HTTP/1.1 400 Bad Request'), closedByProxy }).toEqual({ framing, statuses: [], closedByProxy: true });
      expect(statusLines(text).length).toBeLessThanOrEqual(1);
      expect(text).not.toContain('"status":"ready"');
    }
    expect(minted()).toBe(before);
  });

  it('control: one Content-Length mints as usual', async () => {
    const { text } = await exchange(
      tp.port,
      ['POST /v1/realtime/client_secrets HTTP/1.1', 'Host: x', `Authorization: Bearer ${tp.key('acme')}`, 'Content-Type: application/json', 'Content-Length: 2', 'Connection: close', '', '{}'].join('\r\n'),
    );
    expect(statusLines(text)).toEqual(['HTTP/1.1 200 OK']);
    expect(text).toMatch(/"value":"ek_proxy_[A-Za-z0-9_-]{32}"/);
  });
});
