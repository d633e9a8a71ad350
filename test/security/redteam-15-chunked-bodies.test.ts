import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProxyServer } from '../../src/server/server.js';
import { callsProxy, WEBHOOK_SECRET } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';
import { heldBytes } from './support.js';

/**
 * Red team (no key, then a tenant key): a request body sent as many one-byte chunks.
 *
 * With `Transfer-Encoding: chunked`, uWS hands every chunk to `onData` on its own, and the proxy kept
 * each as its own Buffer: about 100 bytes of heap (the Buffer object, its slot in the list) for every
 * body byte, while the memory budget counted the byte alone. Without any key, forged webhook headers
 * (a `v1,` signature of the right length, a current timestamp: all an attacker can write) earn an
 * unauthenticated-body slot; eight such bodies from one address, 32 Ki one-byte chunks each, held
 * ~26 MiB of heap against 256 KiB counted; 64 slots from 8 addresses, each body up to
 * `sip.maxBodyBytes`, hold hundreds of MiB the budget never sees. With a tenant key, the mint route
 * takes any number of bodies, bounded only by the tenant's share of the budget, which counted 1/100
 * of what they held. Rule broken: every buffer has a byte budget (and the budget counts what is held).
 * The assertion is on bytes: heap plus external memory held while the bodies are unfinished, against
 * what the budget counts for them.
 */

const BODIES = 8;
const CHUNKS_PER_BODY = 32 * 1024;
const ONE_BYTE_CHUNK = '1\r\na\r\n';

/** Opens a connection, writes the head and the one-byte chunks (never the final chunk), keeps it open. */
function unfinishedChunkedBody(port: number, head: string, sockets: Socket[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head + ONE_BYTE_CHUNK.repeat(CHUNKS_PER_BODY), () => resolve()));
    socket.on('error', reject);
    sockets.push(socket);
  });
}

/** Waits until the proxy has read `bytes` body bytes (as its budget counts them); no deadline of its own (the test's timeout). */
async function budgetReaches(server: ProxyServer, bytes: number): Promise<void> {
  while (server.memoryBudget.used < bytes) await new Promise((r) => setTimeout(r, 20));
}

let proxy: TestProxy | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  // The aborted bodies are released (their chunks dropped) before the next test measures.
  if (proxy) while (proxy.proxy.server.memoryBudget.used > 0) await new Promise((r) => setTimeout(r, 20));
  await proxy?.stop();
  proxy = null;
});

describe('red team: request bodies in one-byte chunks', () => {
  it('no key: eight forged webhooks trickled as one-byte chunks hold little more than the budget counts (was ~100 bytes of heap per byte)', async () => {
    // A webhook limit large enough that the unauthenticated-body deadline (5 s + length at 16 KiB/s) is far off.
    proxy = await callsProxy({ calls: { sip: { webhookSecret: WEBHOOK_SECRET, routes: [], maxBodyBytes: 1024 * 1024 } } });
    const server = proxy.proxy.server;
    const before = heldBytes();
    const forgedSignature = `v1,${Buffer.alloc(32, 1).toString('base64')}`;
    const head = [
      'POST /v1/realtime/sip/webhook HTTP/1.1',
      'Host: 127.0.0.1',
      'webhook-id: wh_forged',
      `webhook-timestamp: ${Math.floor(Date.now() / 1000)}`,
      `webhook-signature: ${forgedSignature}`,
      'Content-Type: application/json',
      'Transfer-Encoding: chunked',
      '',
      '',
    ].join('\r\n');
    await Promise.all(Array.from({ length: BODIES }, () => unfinishedChunkedBody(proxy!.port, head, sockets)));
    const counted = BODIES * CHUNKS_PER_BODY;
    await budgetReaches(server, counted);
    expect(server.unverifiedBodies).toBe(BODIES);
    const held = heldBytes() - before;
    // Before the fix: ~26 MiB held for 256 KiB counted. A few KiB of slack per body is allowed.
    expect(held).toBeLessThan(4 * counted + 2 * 1024 * 1024);
  });

  it('tenant key: client-secret mint bodies in one-byte chunks hold little more than the tenant share counts', async () => {
    proxy = await callsProxy();
    const server = proxy.proxy.server;
    const before = heldBytes();
    const head = [
      'POST /v1/realtime/client_secrets HTTP/1.1',
      'Host: 127.0.0.1',
      `Authorization: Bearer ${proxy.key('other')}`,
      'Content-Type: application/json',
      'Transfer-Encoding: chunked',
      '',
      '',
    ].join('\r\n');
    await Promise.all(Array.from({ length: BODIES }, () => unfinishedChunkedBody(proxy!.port, head, sockets)));
    const counted = BODIES * CHUNKS_PER_BODY;
    await budgetReaches(server, counted);
    const held = heldBytes() - before;
    expect(held).toBeLessThan(4 * counted + 2 * 1024 * 1024);
  });
});
