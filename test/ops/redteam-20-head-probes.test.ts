import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { connectRaw } from '../support/raw-upgrade.js';

/*
 * An operator puts the proxy behind a load balancer that probes with HEAD: Azure Front Door's
 * default health probe method for new profiles is HEAD (it counts any status but 200 as down),
 * as are many uptime monitors'. Until 2026-12-07 `HEAD /healthz` and `HEAD /readyz` fell through
 * to the catch-all route: 404 `not_found`, with a 30-byte JSON body a HEAD answer must not carry
 * (RFC 9110 §9.3.2; a keep-alive prober then reads those bytes as the start of its next answer).
 * Every instance was marked down, on the client port and on the admin listener alike.
 *
 * Each probe below is written byte for byte as such a prober sends it, on its own connection.
 */

let proxy: TestProxy;
const sockets: Socket[] = [];

beforeAll(async () => {
  proxy = await startTestProxy({ config: { policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await proxy?.stop();
});

/** Writes `request` on a new connection and returns every byte the proxy sent until it closed. */
async function exchange(port: number, request: string): Promise<string> {
  const s = await connectRaw(port, sockets);
  const answer = new Promise<string>((resolve) => {
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.once('close', () => resolve(text));
  });
  s.write(request);
  return answer;
}

const frontDoorHead = (path: string) =>
  `HEAD ${path} HTTP/1.1\r\nHost: origin.example.net\r\nUser-Agent: Edge Health Probe\r\nConnection: close\r\n\r\n`;

function parse(answer: string): { status: number; headers: Record<string, string>; body: string } {
  const end = answer.indexOf('\r\n\r\n');
  const head = end < 0 ? answer : answer.slice(0, end);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body: end < 0 ? '' : answer.slice(end + 4) };
}

describe('HEAD health probes (Azure Front Door, uptime monitors)', () => {
  it('HEAD /healthz and /readyz on the client port answer as GET does, without a body', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const got = parse(await exchange(proxy.port, frontDoorHead(path)));
      expect(got.status, `HEAD ${path}`).toBe(200);
      expect(got.body, `HEAD ${path} carries no body`).toBe('');
    }
  });

  it('HEAD /readyz on the admin listener answers 200 without a body', async () => {
    const admin = Number(new URL(proxy.adminUrl).port);
    const got = parse(await exchange(admin, `HEAD /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    expect(got.status).toBe(200);
    expect(got.body).toBe('');
  });

  it('a HEAD answer on a kept-alive connection does not corrupt the next answer', async () => {
    // HEAD then GET on one connection, as a keep-alive prober does: the GET's status line must come
    // right after the HEAD answer's headers.
    const text = await exchange(
      proxy.port,
      `HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n` + `GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    );
    const first = text.indexOf('\r\n\r\n');
    expect(text.slice(0, 15)).toBe('HTTP/1.1 200 OK');
    expect(text.slice(first + 4, first + 4 + 15)).toBe('HTTP/1.1 200 OK');
  });

  it('a HEAD of an unknown path is a 404 without a body, and the connection serves the next request', async () => {
    const text = await exchange(proxy.port, `HEAD /nope HTTP/1.1\r\nHost: a\r\n\r\n` + `GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    const first = text.indexOf('\r\n\r\n');
    expect(text.slice(0, 22)).toBe('HTTP/1.1 404 Not Found');
    expect(text.slice(first + 4, first + 4 + 15)).toBe('HTTP/1.1 200 OK');
  });
});
