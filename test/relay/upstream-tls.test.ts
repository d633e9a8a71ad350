import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { TestClient } from '../support/client.js';
import { whenListening } from '../support/spawned-proxy.js';
import { testTls } from '../support/tls.js';
import { tempDir } from '../support/temp-dir.js';

// The real upstream is wss://: the proxy's own TLS dial (src/upstream/handshake.ts) is exercised
// here end to end, as a process, against a TLS server with a certificate from a test CA.
const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
const KEY = 'rpk_upstream_tls_0123456789';

let sim: SimulatorHandle;
let terminator: TlsServer;
let tlsPort = 0;
/** The SNI name of each TLS connection the terminator accepted. */
const serverNames: (string | false)[] = [];

beforeAll(async () => {
  sim = await startSimulator();
  const tls = testTls();
  // TLS in front of the simulator: decrypts and passes the bytes through.
  terminator = createTlsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, (socket: TLSSocket) => {
    // Set at runtime, not declared by @types/node.
    serverNames.push((socket as TLSSocket & { servername: string | false }).servername);
    const plain = netConnect(sim.port, '127.0.0.1');
    socket.pipe(plain).pipe(socket);
    socket.on('error', () => plain.destroy());
    plain.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => terminator.listen(0, '127.0.0.1', r));
  tlsPort = (terminator.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((r) => terminator.close(() => r()));
  await sim.close();
});

async function proxyProcess(env: Record<string, string>) {
  const dir = tempDir('rp-uptls-');
  const file = join(dir, 'proxy.yaml');
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { port: 0 }\nupstream: { url: "wss://localhost:${tlsPort}/v1/realtime", apiKey: sk-test-upstream }\ntenants:\n  t1:\n    keys: [{ key: ${KEY} }]\n`,
  );
  const base = { ...process.env };
  delete base['NODE_EXTRA_CA_CERTS'];
  const child = spawn(process.execPath, [bin, '--config', file], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const listening = await whenListening(child);
  return { child, url: `ws://127.0.0.1:${listening.port}/v1/realtime?model=gpt-realtime`, outputMatching: listening.outputMatching };
}

describe('the upstream over TLS', () => {
  it('a turn through a wss:// upstream whose certificate a configured CA signed; SNI names the host', async () => {
    const before = serverNames.length;
    const { child, url } = await proxyProcess({ NODE_EXTRA_CA_CERTS: testTls().certFile.replace('server.crt', 'ca.crt') });
    try {
      const c = new TestClient(url, { headers: { authorization: `Bearer ${KEY}` } });
      await c.next('session.created', 10_000);
      c.say('say: over tls');
      const done = await c.next('response.done', 15_000);
      expect((done['response'] as { status: string }).status).toBe('completed');
      expect(c.ofType('response.output_audio.delta').length).toBeGreaterThan(0);
      c.close();
      expect(serverNames.slice(before)).toEqual(['localhost']);
    } finally {
      child.kill('SIGKILL');
    }
  }, 40_000);

  it('a certificate no trusted CA signed is refused: upstream_unavailable, the TLS detail only in the log', async () => {
    const { child, url, outputMatching } = await proxyProcess({});
    try {
      const c = new TestClient(url, { headers: { authorization: `Bearer ${KEY}` } });
      const err = await c.next('error', 10_000);
      expect((err['error'] as { code: string }).code).toBe('upstream_unavailable');
      const closed = await c.closed;
      expect(closed.code).toBe(1013);
      expect(JSON.stringify(c.events)).not.toMatch(/certificate|self.signed|issuer/i);
      // The warning is logged before the error event is sent, but the child's stdout is a pipe: wait for it.
      await outputMatching(/upstream connect failed.*unable to verify the first certificate|unable to verify the first certificate.*upstream connect failed/);
    } finally {
      child.kill('SIGKILL');
    }
  }, 40_000);
});
