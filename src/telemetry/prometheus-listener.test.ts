import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PROMETHEUS_MAX_CONNECTIONS, PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE, PrometheusListener } from './prometheus-listener.js';

/**
 * The separate /metrics listener on its own (test/server/adversary-prometheus-host.test.ts drives it
 * through a running proxy): each answer it gives, on raw sockets so that a request may carry what a
 * Node client would not send (two Host headers).
 */

const listeners: PrometheusListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

async function start(text: () => Promise<string> = async () => 'metric 1\n', host = '127.0.0.1', port = 0): Promise<PrometheusListener> {
  const l = await PrometheusListener.start({ host, port, path: '/metrics' }, text);
  listeners.push(l);
  return l;
}

/**
 * Sends `head` (request line and headers, CRLF-separated, without the final blank line) and reads the
 * whole answer (status 0: closed unanswered). `from`: the local address it connects from.
 */
function raw(port: number, head: string, from = '127.0.0.1'): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: from }, () => s.write(`${head}\r\nConnection: close\r\n\r\n`));
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('error', reject);
    s.on('close', () => {
      const [headers = '', body = ''] = data.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(headers)?.[1] ?? 0), headers: headers.toLowerCase(), body });
    });
  });
}

describe('PrometheusListener', () => {
  it('bound to loopback: a request whose second Host header is not loopback gets 421 (every Host is read), as JSON', async () => {
    const l = await start();
    const ok = await raw(l.port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('metric 1\n');
    const twice = await raw(l.port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}\r\nHost: attacker.example:${l.port}`);
    // Node refuses a request with two Host headers itself (400) or the listener answers 421: never the metrics.
    expect([400, 421]).toContain(twice.status);
    expect(twice.body).not.toContain('metric 1');
    const foreign = await raw(l.port, `GET /metrics HTTP/1.1\r\nHost: attacker.example:${l.port}`);
    expect(foreign.status).toBe(421);
    expect(foreign.headers).toContain('content-type: application/json');
    expect(JSON.parse(foreign.body.slice(foreign.body.indexOf('{'), foreign.body.lastIndexOf('}') + 1))).toMatchObject({ error: { code: 'misdirected_request' } });
  });

  it('answers GET on its path only (a query is ignored): any other path or method is 404', async () => {
    const l = await start();
    const host = `Host: localhost:${l.port}`;
    expect((await raw(l.port, `GET /metrics?x=1 HTTP/1.1\r\n${host}`)).status).toBe(200);
    expect((await raw(l.port, `GET /other HTTP/1.1\r\n${host}`)).status).toBe(404);
    expect((await raw(l.port, `POST /metrics HTTP/1.1\r\n${host}\r\nContent-Length: 0`)).status).toBe(404);
  });

  it('a failing exposition is a 500, and the listener goes on', async () => {
    let fail = true;
    const l = await start(async () => {
      if (fail) throw new Error('collect failed');
      return 'metric 2\n';
    });
    const host = `Host: 127.0.0.1:${l.port}`;
    expect((await raw(l.port, `GET /metrics HTTP/1.1\r\n${host}`)).status).toBe(500);
    fail = false;
    expect((await raw(l.port, `GET /metrics HTTP/1.1\r\n${host}`)).body).toContain('metric 2\n');
  });

  it('an address in use is a rejected start, not an unhandled error; close() stops listening', async () => {
    const l = await start();
    await expect(PrometheusListener.start({ host: '127.0.0.1', port: l.port, path: '/metrics' }, async () => '')).rejects.toThrow(/EADDRINUSE/);
    const port = l.port;
    await l.close();
    listeners.splice(listeners.indexOf(l), 1);
    await expect(raw(port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}`)).rejects.toThrow(/ECONNREFUSED/);
  });
});

/** A connection from `from` that sends nothing; `closed` settles when the listener closes it, with what it answered. */
function silent(port: number, from: string): Promise<{ socket: Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    // A reset (a connection closed as it is accepted) is a close like any other here.
    socket.on('error', () => undefined);
    const closed = new Promise<string>((done) => socket.once('close', () => done(data)));
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

// Two loopback addresses are two sources (Linux routes all of 127.0.0.0/8).
describe('PrometheusListener under idle connections', () => {
  const held: Socket[] = [];
  afterEach(() => {
    for (const s of held.splice(0)) s.destroy();
  });

  it(`one source holds at most ${PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE} connections: ${PROMETHEUS_MAX_CONNECTIONS} idle ones from one address leave room for a scrape from another`, async () => {
    const l = await start();
    const flood: Array<{ socket: Socket; closed: Promise<string> }> = [];
    for (let i = 0; i < PROMETHEUS_MAX_CONNECTIONS; i++) {
      const c = await silent(l.port, '127.0.0.2');
      held.push(c.socket);
      flood.push(c);
    }
    // Accepted in order after the flood: before the bound, the 33rd connection, closed unanswered (status 0).
    const scrape = await raw(l.port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}`, '127.0.0.1');
    expect(scrape.status).toBe(200);
    expect(scrape.body).toContain('metric 1\n');
    // The flood's connections past its share were closed as they were accepted, unanswered; its first ones are still open.
    const refused = flood.slice(PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE);
    expect(await Promise.all(refused.map((c) => c.closed))).toEqual(refused.map(() => ''));
    expect(flood.slice(0, PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE).every((c) => !c.socket.destroyed)).toBe(true);
  });

  it("a source's closed connections leave its share: more scrapes than the share, one after another, are all answered", async () => {
    const l = await start();
    const statuses: number[] = [];
    // Each answer closes its connection (Connection: close) before the next one opens.
    for (let i = 0; i < PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE * 2; i++) statuses.push((await raw(l.port, `GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${l.port}`, '127.0.0.2')).status);
    expect(statuses).toEqual(statuses.map(() => 200));
  });

  it('a connection that sends nothing is closed (408) once a request could have arrived, not held on', { timeout: 25_000 }, async () => {
    const l = await start();
    const c = await silent(l.port, '127.0.0.2');
    held.push(c.socket);
    // Node's default check every 30 s kept it up to 40 s (past this test's timeout); now about 10 s.
    expect(await c.closed).toMatch(/^HTTP\/1\.1 408 /);
  });
});
