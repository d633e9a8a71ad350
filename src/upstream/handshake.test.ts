import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { testTls } from '../../test/support/tls.js';
import { requestUpgrade, type HandshakeEvents } from './handshake.js';

async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(pred()).toBe(true);
}

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

type Outcome = { kind: 'upgraded'; head: string; socket: Socket } | { kind: 'rejected'; status: number } | { kind: 'failed'; message: string };

/** Every event a handshake reported within 150 ms of its first (exactly one is expected). */
let reports: string[] = [];

function dial(url: string, headers: Record<string, string> = {}): Promise<Outcome> {
  reports = [];
  return new Promise((resolve) => {
    const events: HandshakeEvents = {
      upgraded: (socket, head) => {
        reports.push('upgraded');
        resolve({ kind: 'upgraded', head: head.toString(), socket });
      },
      rejected: (status) => {
        reports.push('rejected');
        resolve({ kind: 'rejected', status });
      },
      failed: (err) => {
        reports.push('failed');
        resolve({ kind: 'failed', message: err.message });
      },
    };
    requestUpgrade({ url, headers }, events);
  }).then(async (out) => {
    await new Promise((r) => setTimeout(r, 150));
    expect(reports).toHaveLength(1);
    return out as Outcome;
  });
}

/** A raw TCP server that answers the first request with `answer(key)` (the request's key). */
async function rawServer(answer: (key: string, request: string) => string): Promise<{ port: number; requests: string[] }> {
  const requests: string[] = [];
  const server: Server = createServer((socket) => {
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      requests.push(got);
      const key = /sec-websocket-key: (\S+)/i.exec(got)?.[1] ?? '';
      socket.write(answer(key, got));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push({ close: () => server.close() });
  return { port: (server.address() as AddressInfo).port, requests };
}

const accept = (key: string) => createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
const switching = (key: string, extra = '') => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\n${extra}\r\n`;

describe('requestUpgrade', () => {
  it('upgrades with a real ws server that offers compression: no extension is offered or accepted, headers and query arrive', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true });
    await new Promise<void>((r) => wss.once('listening', r));
    servers.push({ close: () => wss.close() });
    const seen: { url: string; headers: IncomingHttpHeaders; extensions: string }[] = [];
    wss.on('connection', (ws, req) => {
      seen.push({ url: req.url ?? '', headers: req.headers, extensions: ws.extensions });
      ws.send('{"type":"session.created"}');
    });
    const port = (wss.address() as AddressInfo).port;
    const out = await dial(`ws://127.0.0.1:${port}/v1/realtime?model=m`, { authorization: 'Bearer sk-x', 'openai-safety-identifier': 'u1' });
    expect(out.kind).toBe('upgraded');
    if (out.kind === 'upgraded') out.socket.destroy();
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe('/v1/realtime?model=m');
    expect(seen[0]!.headers['authorization']).toBe('Bearer sk-x');
    expect(seen[0]!.headers['openai-safety-identifier']).toBe('u1');
    expect(seen[0]!.headers['sec-websocket-extensions']).toBeUndefined();
    expect(seen[0]!.headers['sec-websocket-protocol']).toBeUndefined();
    expect(seen[0]!.headers['host']).toBe(`127.0.0.1:${port}`);
    expect(seen[0]!.extensions).toBe('');
  });

  it('bytes the server sent right behind the 101 are handed over as the head', async () => {
    const { port } = await rawServer((key) => switching(key) + '\x81\x02hi');
    const out = await dial(`ws://127.0.0.1:${port}/`);
    expect(out.kind).toBe('upgraded');
    if (out.kind !== 'upgraded') return;
    out.socket.destroy();
    // The head may be empty if the bytes came in a later packet; then they are on the socket.
    expect(['', '\x81\x02hi']).toContain(out.head);
  });

  it.each([
    ['a wrong Sec-WebSocket-Accept', (key: string) => switching(key).replace(accept(key), accept(key + 'x')), /Accept/],
    ['no Sec-WebSocket-Accept', () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n', /Accept/],
    ['an upgrade to another protocol', (key: string) => switching(key).replace('Upgrade: websocket', 'Upgrade: h2c'), /not to websocket/],
    ['an extension that was not offered', (key: string) => switching(key, 'Sec-WebSocket-Extensions: permessage-deflate\r\n'), /extension/],
    ['a subprotocol that was not offered', (key: string) => switching(key, 'Sec-WebSocket-Protocol: realtime\r\n'), /subprotocol/],
    ['garbage instead of HTTP', () => 'SSH-2.0-OpenSSH_9.2\r\n\r\n', /Parse Error|HPE_/],
  ])('refuses %s', async (_name, answer, why) => {
    const { port } = await rawServer(answer);
    const out = await dial(`ws://127.0.0.1:${port}/`);
    expect(out.kind).toBe('failed');
    expect(out.kind === 'failed' && out.message).toMatch(why);
  });

  it('a 101 without an Upgrade header is no upgrade: a rejection with status 101', async () => {
    const { port } = await rawServer((key) => switching(key).replace('Upgrade: websocket\r\n', ''));
    expect(await dial(`ws://127.0.0.1:${port}/`)).toEqual({ kind: 'rejected', status: 101 });
  });

  it.each([302, 401, 429, 503])('an HTTP %i answer is a rejection with its status; a redirect is not followed', async (status) => {
    const { port, requests } = await rawServer(() => `HTTP/1.1 ${status} No\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 5\r\n\r\nnope!`);
    expect(await dial(`ws://127.0.0.1:${port}/`)).toEqual({ kind: 'rejected', status });
    expect(requests).toHaveLength(1);
  });

  it('a refused TCP connection fails; an aborted handshake reports nothing', async () => {
    const { port } = await rawServer(() => '');
    servers.pop()!.close();
    await new Promise((r) => setTimeout(r, 20));
    const out = await dial(`ws://127.0.0.1:${port}/`);
    expect(out).toEqual({ kind: 'failed', message: expect.stringMatching(/ECONNREFUSED/) });

    // Aborted once the request reached the server, which then accepts: nothing is reported and the connection is gone.
    const requests: string[] = [];
    let serverSide: Socket | null = null;
    const late = createServer((socket) => {
      serverSide = socket;
      socket.on('error', () => undefined);
      socket.once('data', (d) => {
        requests.push(d.toString('latin1'));
        const key = /sec-websocket-key: (\S+)/i.exec(d.toString('latin1'))?.[1] ?? '';
        setTimeout(() => !socket.destroyed && socket.write(switching(key)), 100);
      });
    });
    await new Promise<void>((r) => late.listen(0, '127.0.0.1', r));
    servers.push({ close: () => late.close() });
    let reported = false;
    const h = requestUpgrade(
      { url: `ws://127.0.0.1:${(late.address() as AddressInfo).port}/`, headers: {} },
      { upgraded: () => (reported = true), rejected: () => (reported = true), failed: () => (reported = true) },
    );
    await until(() => requests.length === 1);
    h.abort();
    await new Promise((r) => setTimeout(r, 250));
    expect(reported).toBe(false);
    expect(serverSide!.destroyed || serverSide!.readableEnded).toBe(true);
  });

  it('a rejection whose body never ends: reported once, the connection dropped, nothing thrown', async () => {
    let serverSide: Socket | null = null;
    const slow = createServer((socket) => {
      serverSide = socket;
      socket.on('error', () => undefined);
      socket.once('data', () => socket.write('HTTP/1.1 503 Busy\r\nContent-Length: 1000000\r\n\r\npartial'));
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    servers.push({ close: () => slow.close() });
    expect(await dial(`ws://127.0.0.1:${(slow.address() as AddressInfo).port}/`)).toEqual({ kind: 'rejected', status: 503 });
    await until(() => serverSide!.destroyed || serverSide!.readableEnded);
  });

  it('an IPv6 literal: the address without brackets is dialled, the Host header has them', async () => {
    const wss = new WebSocketServer({ host: '::1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', r));
    servers.push({ close: () => wss.close() });
    const hosts: string[] = [];
    wss.on('connection', (_ws, req) => hosts.push(req.headers.host ?? ''));
    const port = (wss.address() as AddressInfo).port;
    const out = await dial(`ws://[::1]:${port}/v1/realtime`);
    expect(out.kind).toBe('upgraded');
    if (out.kind === 'upgraded') out.socket.destroy();
    expect(hosts).toEqual([`[::1]:${port}`]);
  });

  it('wss:// speaks TLS, verifies the certificate against the CA store (a test CA is not in it) and sends SNI for names, not addresses', async () => {
    const tls = testTls();
    const snis: string[] = [];
    const server = createTlsServer(
      {
        cert: readFileSync(tls.certFile),
        key: readFileSync(tls.keyFile),
        // Called only when the client sent a server name.
        SNICallback: (name, cb) => {
          snis.push(name);
          cb(null);
        },
      },
      (s) => s.destroy(),
    );
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push({ close: () => server.close() });
    const port = (server.address() as AddressInfo).port;
    const byName = await dial(`wss://localhost:${port}/v1/realtime`);
    const byAddress = await dial(`wss://127.0.0.1:${port}/v1/realtime`);
    expect(byName).toEqual({ kind: 'failed', message: expect.stringMatching(/unable to verify|self.signed|local issuer/) });
    expect(byAddress).toEqual({ kind: 'failed', message: expect.stringMatching(/unable to verify|self.signed|local issuer/) });
    expect(snis).toEqual(['localhost']);
    // And a plain TCP server is not mistaken for TLS.
    const plain = createServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\n\r\n')));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    servers.push({ close: () => plain.close() });
    expect(await dial(`wss://127.0.0.1:${(plain.address() as AddressInfo).port}/`)).toEqual({ kind: 'failed', message: expect.stringMatching(/SSL|TLS|wrong version|EPROTO/i) });
  });

  it('refuses a URL that is not ws:// or wss://', () => {
    expect(() => requestUpgrade({ url: 'https://example.com/', headers: {} }, { upgraded: () => undefined, rejected: () => undefined, failed: () => undefined })).toThrow(/ws:\/\/ or wss:\/\//);
  });
});
