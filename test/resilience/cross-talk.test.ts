import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../../bench/fake-upstream.js';
import { sniffString } from '../../src/protocol/sniff.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';

/**
 * 1,000 concurrent sessions through the proxy to the fast fake upstream: each client's events must
 * reach only its own upstream connection, and each client must see only its own session's events.
 * The fake upstream stamps its connection number into every id it sends (session, response, item)
 * and echoes the client's response.create event_id in response.metadata.
 */

const N = 1000;
const TURNS = 2;

describe('cross-talk', () => {
  let up: FakeUpstream;
  let tp: TestProxy;
  /** Upstream connection number → the client tag seen on it first; any other tag is cross-talk. */
  const owner = new Map<number, string>();
  const crossed: string[] = [];

  beforeAll(async () => {
    up = await startFakeUpstream({
      pacing: 'burst',
      deltasPerResponse: 8,
      onClientFrame: (conn, _type, payload) => {
        const id = sniffString(payload, 'event_id');
        if (typeof id !== 'string' || !id.startsWith('ct_')) return;
        const tag = id.split('_')[1]!;
        const first = owner.get(conn.n);
        if (first === undefined) owner.set(conn.n, tag);
        else if (first !== tag && crossed.length < 20) crossed.push(`upstream ${conn.n} got client ${tag} after client ${first}`);
      },
    });
    tp = await startTestProxy({
      config: {
        logging: { level: 'warn' },
        server: { maxSessions: 5000 },
        upstream: { provider: 'openai', url: up.url, apiKey: 'sk-fake' },
      },
    });
  });

  afterAll(async () => {
    await tp.stop();
    await up.close();
  });

  it(`keeps ${N} concurrent sessions apart in both directions`, async () => {
    const clients: TestClient[] = [];
    // Connect in batches: a burst of 1,000 upgrades at once only tests the accept backlog.
    for (let i = 0; i < N; i += 100) clients.push(...(await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => tp.client()))));
    const created = await Promise.all(clients.map((c) => c.next('session.created', 20_000)));
    const sessionOf = created.map((e) => (e['session'] as { id: string }).id);
    expect(new Set(sessionOf).size).toBe(N);
    const connOf = sessionOf.map((s) => s.replace('sess_bench_', ''));

    for (let turn = 1; turn <= TURNS; turn++) {
      clients.forEach((c, i) => {
        c.send({ type: 'input_audio_buffer.append', event_id: `ct_${i}_a${turn}`, audio: Buffer.alloc(960, i % 256).toString('base64') });
        c.send({ type: 'input_audio_buffer.commit', event_id: `ct_${i}_c${turn}` });
        // The fake upstream echoes the create's metadata, as the API does: it names the create each response answers.
        c.send({ type: 'response.create', event_id: `ct_${i}_r${turn}`, response: { metadata: { client_event_id: `ct_${i}_r${turn}` } } });
      });
      await Promise.all(clients.map((c) => c.nth('response.done', turn, 20_000)));
    }

    const problems: string[] = [];
    clients.forEach((c, i) => {
      const n = connOf[i]!;
      const created = c.ofType('response.created');
      if (created.length !== TURNS) problems.push(`client ${i}: ${created.length} responses`);
      created.forEach((e, k) => {
        const r = e['response'] as { id: string; metadata: { client_event_id: string } | null };
        if (r.metadata?.client_event_id !== `ct_${i}_r${k + 1}`) problems.push(`client ${i}: response ${r.id} answers ${r.metadata?.client_event_id}`);
      });
      for (const e of c.events) {
        const rid = (e['response_id'] as string | undefined) ?? (e['response'] as { id?: string } | undefined)?.id;
        if (rid !== undefined && !rid.startsWith(`resp_${n}_`)) problems.push(`client ${i} (upstream ${n}): ${e.type} of ${rid}`);
        const item = (e['item_id'] as string | undefined) ?? (e['item'] as { id?: string } | undefined)?.id;
        if (item !== undefined && !item.startsWith(`item_${n}_`) && !item.startsWith(`item_user_${n}_`)) problems.push(`client ${i} (upstream ${n}): ${e.type} of item ${item}`);
        if (e.type === 'error') problems.push(`client ${i}: error ${JSON.stringify(e['error'])}`);
      }
      const deltas = c.ofType('response.output_audio.delta').length;
      if (deltas !== 8 * TURNS) problems.push(`client ${i}: ${deltas} audio deltas`);
      if (owner.get(Number(n)) !== String(i)) problems.push(`upstream ${n} belongs to client ${owner.get(Number(n))}, not ${i}`);
    });
    expect(problems.slice(0, 20)).toEqual([]);
    expect(crossed).toEqual([]);
    expect(owner.size).toBe(N);
    for (const c of clients) c.close();
    await Promise.all(clients.map((c) => c.closed));
  }, 60_000);
});
