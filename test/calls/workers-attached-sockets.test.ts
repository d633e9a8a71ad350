/**
 * A call's client sockets (`?call_id=`) across relay workers (`server.workers: 2`). The call's
 * sideband lives in one worker; the sockets attached to it land wherever the kernel sends their
 * connections. Until 2026-12-07 each worker counted its own (AttachedSockets), so a call held 4 per
 * worker: 8 with two. Now each attach also takes places in the ledger (the primary's, over IPC),
 * the one count every worker shares (SharedAttachPlaces).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, type TestProxy } from '../support/harness.js';
import { MAX_CLIENT_SOCKETS_PER_CALL } from '../../src/calls/attached-sockets.js';
import { callsProxy, placeCall, until } from './support.js';

// Workers share the calls store and ledger through a file (an in-memory one is each process's own).
const dir = mkdtempSync(join(tmpdir(), 'workers-attach-'));
let tp: TestProxy;
const clients: TestClient[] = [];
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: {} }, extra: { config: { server: { workers: 2 }, metering: { ledger: { path: join(dir, 'ledger.db') } } } } });
}, 60_000);
afterAll(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await tp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const refusedBy = () => new Set(tp.logs.filter((l) => l.msg === 'session refused' && l['code'] === 'call_sockets_exceeded').map((l) => l['worker']));

describe("a call's client sockets across relay workers", () => {
  it(`at most ${MAX_CLIENT_SOCKETS_PER_CALL} in all, whichever worker each lands in; a closed one gives its place back`, { timeout: 90_000 }, async () => {
    const { callId } = await placeCall(tp, 'acme');
    const attach = async (): Promise<{ client: TestClient; outcome: number }> => {
      const client = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${callId}`, { headers: { authorization: `Bearer ${tp.key('acme')}` } });
      clients.push(client);
      return { client, outcome: await Promise.race([client.refused, client.opened.then(() => 101)]) };
    };
    const opened: TestClient[] = [];
    const refused: number[] = [];
    // Attaches (each on a new connection) until both workers have refused one, or too many opened.
    for (let i = 0; i < 40 && refusedBy().size < 2 && opened.length <= MAX_CLIENT_SOCKETS_PER_CALL; i++) {
      const { client, outcome } = await attach();
      if (outcome === 101) opened.push(client);
      else refused.push(outcome);
      // A refusal's log line comes from its worker's stdout: wait for it before counting workers.
      if (outcome !== 101) await until(() => tp.logs.filter((l) => l.msg === 'session refused' && l['code'] === 'call_sockets_exceeded').length >= refused.length, 'the refusal logged', 10_000);
    }
    // Old code: a fifth opened (up to 2 × 4: each worker counted its own).
    expect(opened).toHaveLength(MAX_CLIENT_SOCKETS_PER_CALL);
    expect(new Set(refused)).toEqual(new Set([429]));
    expect(refusedBy()).toEqual(new Set([0, 1]));
    // One closes: its place comes back (in whichever worker the next one lands).
    opened.shift()!.ws.close();
    await until(async () => (await attach()).outcome === 101, 'an attach admitted again', 30_000);
  });
});
