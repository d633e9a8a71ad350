import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging.js';
import { systemClock } from '../../src/main.js';
import { ProxyServer } from '../../src/server/server.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import { callsProxy } from '../calls/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { FLOOD_BYTES, pipelineWithoutReading } from '../support/raw-upgrade.js';

/**
 * Red team, no key: one connection that pipelines requests and never reads the answers.
 *
 * uWS answers pipelined requests one after the other, and `res.end` buffers in the process whatever
 * the socket does not take. Until 2026-12-06 every answer was ended that way, and uWS went on
 * reading: a client sending `GET /healthz` (or any 404, or a keyless upgrade, or a CORS preflight)
 * back to back without reading made the proxy hold about 7 bytes of answers per byte it sent, with
 * no bound and outside the memory budget (200 MB sent on one connection: 1.4 GB resident, 0 in
 * the budget; memory came back only when the client closed). Now an answer is written with
 * `tryEnd`: one the socket cannot take stays pending (sent as the socket drains), and uWS closes a
 * connection whose next request arrives behind a pending answer; an answer without a body closes
 * the connection. The bound asserted is in bytes the client could hand over before the proxy cut
 * the connection (loopback socket buffers hold a few MiB); before the fix every byte was taken.
 */

async function healthz(base: string): Promise<number> {
  return (await fetch(`${base}/healthz`)).status;
}

const UPGRADE_WITHOUT_KEY = [
  'GET /v1/realtime?model=gpt-realtime HTTP/1.1',
  'Host: 127.0.0.1',
  'Upgrade: websocket',
  'Connection: Upgrade',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  '',
  '',
].join('\r\n');

describe('red team (no key): pipelined requests whose answers are never read', () => {
  let tp: TestProxy | null = null;

  afterEach(async () => {
    await tp?.stop();
    tp = null;
  });

  it.each([
    ['GET /healthz', 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['GET of an unknown path (404)', 'GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a keyless upgrade (401 missing_api_key)', UPGRADE_WITHOUT_KEY],
  ])('%s back to back on one connection: the proxy cuts the connection instead of buffering every answer; it still serves and relays after', async (_what, request) => {
    tp = await startTestProxy();
    const flood = await pipelineWithoutReading(tp.port, request);
    expect(flood.cut).toBe(true);
    expect(flood.sent).toBeLessThan(FLOOD_BYTES);
    // The process is alive and serves: a health check and a session with a turn.
    expect(await healthz(tp.httpUrl)).toBe(200);
    const c = await tp.client();
    c.send({ type: 'response.create' });
    const done = await c.next('response.done');
    expect(done['response']).toMatchObject({ status: 'completed' });
  });

  it('CORS preflights (no body) back to back on one connection are cut the same way (calls module on)', async () => {
    tp = await callsProxy({ tenants: { acme: {} } });
    const flood = await pipelineWithoutReading(tp.port, 'OPTIONS /v1/realtime/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n');
    expect(flood.cut).toBe(true);
    expect(flood.sent).toBeLessThan(FLOOD_BYTES);
    expect(await healthz(tp.httpUrl)).toBe(200);
  });

  it('control: over TLS too (the TLS path of uWS cut such a connection before the fix as well)', async () => {
    tp = await startTestProxy({ tls: true });
    const flood = await pipelineWithoutReading(tp.proxy.tlsPort!, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { tls: true });
    expect(flood.cut).toBe(true);
    expect(flood.sent).toBeLessThan(FLOOD_BYTES);
    expect(await healthz(tp.httpUrl)).toBe(200);
  });

  it('control: an answer larger than the socket takes at once reaches a client that reads late, whole and byte for byte; a kept-alive request after it is answered', async () => {
    const config = parseConfig({ server: { host: '127.0.0.1', port: 0 }, admin: { port: 0 }, logging: { level: 'silent' } }, '(test)', {});
    const big = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
    const server = new ProxyServer({
      config,
      log: createLogger('silent'),
      tenants: new TenantResolver(config),
      clock: systemClock,
      modules: [{ name: 'big', filters: [], routes: [{ method: 'GET', path: '/big', auth: 'none', handle: () => ({ status: 200, headers: { 'content-type': 'application/octet-stream' }, body: big }) }] }],
    });
    const { adminPort } = await server.listen();
    try {
      const received = await new Promise<Buffer>((resolve, reject) => {
        const socket = connect(adminPort!, '127.0.0.1');
        socket.pause();
        const chunks: Buffer[] = [];
        let total = 0;
        let asked = false;
        socket.on('error', reject);
        /** Where the body of the first answer starts, once its head is in. */
        let bodyAt = -1;
        socket.on('data', (d: Buffer) => {
          chunks.push(d);
          total += d.length;
          if (bodyAt < 0) {
            const all = Buffer.concat(chunks);
            const head = all.indexOf('\r\n\r\n');
            if (head < 0) return;
            bodyAt = head + 4;
          }
          if (total - bodyAt < big.length) return;
          if (!asked) {
            // The whole first answer is in: ask again on the same connection.
            asked = true;
            socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
          }
          const all = Buffer.concat(chunks);
          if (/\r\n\r\n\{"status":"ok"[^}]*\}$/.test(all.subarray(bodyAt + big.length).toString('latin1'))) {
            socket.destroy();
            resolve(all);
          }
        });
        socket.on('connect', () => {
          socket.write('GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
          // Reads only once the proxy could not write the answer at once (the socket buffers are full by then).
          setTimeout(() => socket.resume(), 300);
        });
      });
      const head = received.indexOf('\r\n\r\n');
      const headers = received.subarray(0, head).toString('latin1');
      expect(headers).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(headers).toContain(`Content-Length: ${big.length}`);
      expect(received.subarray(head + 4, head + 4 + big.length).equals(big)).toBe(true);
      expect(received.subarray(head + 4 + big.length).toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    } finally {
      await server.shutdown(0);
    }
  });
});
