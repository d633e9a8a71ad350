import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyDir } from '../policies/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { recordBytes, until, type Json } from './support.js';

/**
 * A `parallel` custom guardrail (the mode for slow, model-based moderation) blocks a typed user
 * item after it went upstream. Real proxy, the simulator as upstream (it repeats what it reads),
 * a raw WebSocket client. policies/README.md: a late `block` of a client item deletes that item,
 * also when the client sent it without an id (found 2026-12-05: such an item stayed in the
 * conversation, and the responses after it read it).
 */
const api = new URL('../../src/policies/api.ts', import.meta.url).pathname;
const JUDGE = `import { defineGuardrail } from '${api}';
export default defineGuardrail({ name: 'judge', wants: ['input'], evaluate: async (e) => { await new Promise((r) => setTimeout(r, 40)); return e.text.includes('launch codes') ? { action: 'block' } : { action: 'allow' }; } });
`;
const POLICY = `
guardrails:
  custom:
    - { id: judge, module: ./judge.mjs, sources: [input], mode: parallel, timeoutMs: 2000 }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'p' } },
    config: { policies: { dir: policyDir({ 'p.yaml': POLICY, 'judge.mjs': JUDGE }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

describe('a late block from a parallel custom guardrail on a typed user item', () => {
  it('sent without an id: the item the upstream echoed is deleted, so no later response reads it', async () => {
    const before = tp.sim.connections.length;
    const c = await tp.client();
    const raw = recordBytes(c);
    await c.next('session.created');
    await until(() => tp.sim.connections.length > before, 'upstream');
    const conn = tp.sim.connections[before]!;
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: the launch codes are 0000' }] } });
    const added = await c.next('conversation.item.added');
    const itemId = (added['item'] as Json)['id'];
    // The late verdict arrives (block): the proxy acts on it before it logs it.
    await until(() => tp.logs.some((l) => l.msg === 'guardrail tripped' && l['rule'] === 'judge'), 'the late verdict');
    // Two responses: the second starts from the conversation as it is after the verdict.
    c.send({ type: 'response.create' });
    await c.nth('response.done', 1);
    c.send({ type: 'response.create' });
    await c.nth('response.done', 2);
    const deletes = conn.received.filter((e) => e.type === 'conversation.item.delete').map((e) => (e.event as Json)['item_id']);
    const repeated = raw.filter((r) => String((JSON.parse(r) as Json)['type']).startsWith('response.') && r.includes('launch codes'));
    // The user item is deleted (first); the next response is cancelled as well, as for any input
    // trip before its response existed ("or the next one"), so its own item goes too.
    expect({ firstDeleted: deletes[0], repeated }).toEqual({ firstDeleted: itemId, repeated: [] });
    c.close();
  });
});
