import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startFakeUpstream, type FakeUpstream } from '../../bench/fake-upstream.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * The bench's fake upstream must answer as the Realtime API does wherever the proxy's behaviour
 * depends on it: a fake that reports what no create asked for makes the bench measure a proxy that
 * cannot pair its responses (it once invented `metadata` and reported `max_output_tokens: "inf"`
 * whatever the create said; every client close then lingered 5 s for creates never answered).
 */
describe("the bench's fake upstream", () => {
  let up: FakeUpstream;

  beforeAll(async () => {
    up = await startFakeUpstream({ pacing: 'burst', deltasPerResponse: 2 });
  });
  afterAll(async () => {
    await up.close();
  });

  async function createdFor(create: object): Promise<Record<string, unknown>> {
    const ws = new WebSocket(up.url);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const created = new Promise<Record<string, unknown>>((resolve) =>
      ws.on('message', (data: Buffer) => {
        const e = JSON.parse(data.toString('utf8')) as { type: string; response?: Record<string, unknown> };
        if (e.type === 'response.created') resolve(e.response!);
      }),
    );
    ws.send(JSON.stringify(create));
    const response = await created;
    ws.close();
    return response;
  }

  it("echoes a create's max_output_tokens and metadata in response.created, as the API does", async () => {
    const r = await createdFor({ type: 'response.create', event_id: 'c1', response: { max_output_tokens: 4096, metadata: { topic: 'bench' } } });
    expect([r['max_output_tokens'], r['metadata']]).toEqual([4096, { topic: 'bench' }]);
    const plain = await createdFor({ type: 'response.create', event_id: 'c2' });
    expect([plain['max_output_tokens'], plain['metadata']]).toEqual(['inf', null]);
  });

  describe('through the governed proxy (metering clamps the output limit)', () => {
    let tp: TestProxy;
    beforeAll(async () => {
      tp = await startTestProxy({
        config: {
          logging: { level: 'info' },
          upstream: { provider: 'openai', url: up.url, apiKey: 'sk-fake' },
          // A linger far longer than the wait below: a response the proxy could not pair would hold the close.
          metering: { enabled: true, lingerAfterClientCloseMs: 60_000, plans: { p: { maxResponseOutputTokens: 512 } }, defaultPlan: 'p' },
        },
      });
    });
    afterAll(async () => {
      await tp.stop();
    });

    it('every response pairs with its create: a client that leaves after its turns ends the session at once', async () => {
      const c = await tp.client();
      for (let turn = 1; turn <= 3; turn++) {
        c.send({ type: 'response.create', event_id: `r${turn}` });
        await c.nth('response.done', turn, 10_000);
      }
      const created = c.ofType('response.created').map((e) => (e['response'] as { max_output_tokens: unknown }).max_output_tokens);
      expect(created).toEqual([512, 512, 512]);
      c.close();
      await c.closed;
      await expect.poll(() => tp.logs.filter((l) => l.msg === 'session end').length, { timeout: 10_000 }).toBe(1);
      const end = tp.logs.find((l) => l.msg === 'session end')!;
      expect([end['initiator'], end['meteringResponses'], end['meteringEstimated']]).toEqual(['client', 3, 0]);
    });
  });
});
