import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Red team (a tenant key): pings, and never a read.
 *
 * uWS answers every client ping with a pong on its own; the proxy never sees those writes. A client
 * that pings and stops reading fills its send buffer with pongs up to `backpressure.maxBufferedBytes`
 * (uWS drops what is past it), and the slow-client check started its grace only after a send of
 * the proxy's own: in a quiet session there is none, so the session was never ended, and the pings
 * kept uWS's idle timeout from ending it either. Each such session held `maxBufferedBytes` (16 MiB by
 * default) in the shared memory budget for as long as the client liked: 16 of them fill the default
 * 256 MiB, and then every tenant's new sessions get 503 `overloaded`. Rule broken: a client that
 * stops reading is ended (4008 `slow_consumer`) once over the high watermark past the grace, and no
 * session starves the others. Asserted on what the sessions end with, not on when.
 */

const BUFFER_LIMIT = 4 * 1024 * 1024;
const ATTACKERS = 3;
/** Pongs enough to take each attacker's send buffer to its limit (125-byte payloads). */
const PINGS = 50_000;

let tp: TestProxy;

beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: {}, other: {} },
    config: {
      server: {
        memoryBudgetBytes: 8 * 1024 * 1024,
        backpressure: { maxBufferedBytes: BUFFER_LIMIT, highWatermarkBytes: 256 * 1024, lowWatermarkBytes: 64 * 1024, slowClientGraceMs: 100 },
      },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
});

/** Opens a session, stops reading from it and pings it PINGS times. */
async function pingWithoutReading(): Promise<{ ws: WebSocket }> {
  const ws = new WebSocket(tp.url, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
  ws.on('error', () => undefined);
  await new Promise((resolve) => ws.once('open', resolve));
  const socket = (ws as unknown as { _socket: Socket })._socket;
  socket.pause();
  socket.removeAllListeners('data');
  const payload = Buffer.alloc(125, 1);
  for (let i = 0; i < PINGS; i++) ws.ping(payload);
  return { ws };
}

describe('red team: a client that pings and never reads', () => {
  it('is ended with 4008 slow_consumer (was held for good at the buffer limit, the budget full: other tenants got 503)', async () => {
    const attackers = await Promise.all(Array.from({ length: ATTACKERS }, () => pingWithoutReading()));
    const slowEnds = () => tp.logs.filter((l) => l['event'] === 'session_end' && l['clientCloseCode'] === 4008).length;
    // Until their pongs pass the high watermark in the budget's count (resynced each second), or they are ended.
    const budget = tp.proxy.server.memoryBudget;
    while (slowEnds() === 0 && budget.used < 2 * 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
    // A generous bound on the wait (the grace is 100 ms, the check runs each second); before the fix they were never ended.
    for (let waited = 0; slowEnds() < ATTACKERS && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    // The client reads nothing, so it never sees the close frame: the proxy's own record says how each ended.
    expect(slowEnds()).toBe(ATTACKERS);
    expect(tp.proxy.server.sessionCount).toBe(0);
    // Another tenant's session opens (the budget is given back once uWS lets the ended sockets go).
    const other = await tp.client({ tenant: 'other' });
    await other.next('session.created');
    other.close();
    for (const a of attackers) a.ws.terminate();
  });
});
