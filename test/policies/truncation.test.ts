import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

const MAX = 600;
const BUDGET = `
truncation:
  upstream: { type: retention_ratio, retention_ratio: 0.8, token_limits: { post_instructions: 2000 } }
  budget: { maxTokens: ${MAX}, targetRatio: 0.6, keepFirst: 1, keepLast: 2 }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'budget' } },
    config: { policies: { dir: policyDir({ 'budget.yaml': BUDGET }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

const sentence = (i: number) => `say: Turn ${i}. ` + 'This is a fairly long scripted sentence that fills the context window. '.repeat(2);

describe('conversation truncation through the proxy', () => {
  it('keeps a long conversation under the token budget by deleting the oldest items, never orphaning tool outputs', async () => {
    const before = tp.sim.connections.length;
    const c = await tp.client();
    for (let i = 0; i < 100 && tp.sim.connections.length <= before; i++) await new Promise((r) => setTimeout(r, 10));
    const sim = tp.sim.connections[before]!;
    await c.next('session.created');
    await c.next('session.updated'); // the policy's truncation setting, injected after session.created
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } });
    await c.nth('session.updated', 2);

    const inputTokens: number[] = [];
    let responses = 0;
    const turn = async (send: () => void) => {
      send();
      const done = await c.nth('response.done', ++responses);
      const r = done['response'] as { usage: { input_tokens: number }; output: { type: string; call_id?: string }[] };
      inputTokens.push(r.usage.input_tokens);
      return r;
    };
    for (let i = 0; i < 16; i++) {
      if (i % 4 === 2) {
        const r = await turn(() => c.say(`call:lookup_order {"order":${i}}`));
        const call = r.output.find((o) => o.type === 'function_call')!;
        await turn(() => {
          c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call.call_id, output: `{"order":${i},"status":"shipped"}` } });
          c.send({ type: 'response.create' });
        });
      } else {
        await turn(() => c.say(sentence(i)));
      }
    }

    // Every response after pruning started began under the budget.
    expect(Math.max(...inputTokens)).toBeLessThanOrEqual(MAX);
    expect(inputTokens.length).toBe(20);

    // Deletes went upstream for the oldest items first (the first item is pinned).
    const deleted = sim.received.filter((r) => r.type === 'conversation.item.delete').map((r) => (r.event as { item_id: string }).item_id);
    expect(deleted.length).toBeGreaterThan(4);
    const order = c.ofType('conversation.item.added').map((e) => (e['item'] as { id: string }).id);
    const positions = deleted.map((id) => order.indexOf(id));
    expect(positions.every((p) => p > 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);

    // The upstream's conversation as the client saw it: no output without its call, no call without its output.
    const gone = new Set(c.ofType('conversation.item.deleted').map((e) => e['item_id'] as string));
    expect(gone.size).toBe(deleted.length);
    const remaining = c
      .ofType('conversation.item.done')
      .map((e) => e['item'] as { id: string; type: string; call_id?: string })
      .filter((it) => !gone.has(it.id));
    const calls = new Set(remaining.filter((it) => it.type === 'function_call').map((it) => it.call_id));
    const outputs = new Set(remaining.filter((it) => it.type === 'function_call_output').map((it) => it.call_id));
    expect([...outputs].filter((id) => !calls.has(id))).toEqual([]);
    expect([...calls].filter((id) => !outputs.has(id))).toEqual([]);

    await expect.poll(() => tp.logs.some((l) => l.msg === 'conversation pruned to the context budget')).toBe(true);
    c.close();
  });
});
