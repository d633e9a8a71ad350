import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConversationEstimate } from '../../src/metering/context.js';
import { policyDir } from '../policies/support.js';
import { heldBytes } from '../support/heap.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Red team 16 (denial of service, a tenant WITH a key): `conversation.item.create` with an item id
 * of 1 MiB (frames may carry 16 MiB). The upstream refuses ids over 32 characters, but metering's
 * conversation estimate had already keyed the id (up to 10,000 of them, kept after the refusal) and
 * the conversation view listed it as a pending create: 100 such frames left ~200 MiB on the heap for
 * the session's life, outside `memoryBudgetBytes` (which counts frames only while they are held). A
 * few sessions of 15 MiB ids take the process down, and every tenant's sessions with it. Now a
 * client id longer than MAX_KEPT_ID_CHARS is kept as a short token (src/protocol/json.ts keptId).
 * Bytes are measured on the heap after a forced collection (the test proxy runs in this process).
 */

const MiB = 1024 * 1024;

describe('client item ids of 1 MiB', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy({ config: { logging: { level: 'info' } } });
  });
  afterAll(async () => {
    await tp?.stop();
  });

  it('100 creates the upstream refuses leave well under their size on the heap (before: ~200 MiB)', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const before = heldBytes();
    for (let i = 0; i < 100; i++) {
      const id = `item_${i}_${'x'.repeat(MiB)}`;
      c.send({ type: 'conversation.item.create', event_id: `e${i}`, item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    }
    // A last create behind them: once it is answered, every earlier one was read and refused.
    c.send({ type: 'conversation.item.create', event_id: 'last', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    await c.waitFor((e) => e.type === 'conversation.item.done', 60_000);
    expect(c.ofType('error')).toHaveLength(100);
    // The simulator (the upstream, in this process) logs every event it receives: not the proxy's.
    // Readonly to tests that read it; emptied here so that only the proxy's heap is measured.
    for (const conn of tp.sim.connections) (conn.received as unknown[]).splice(0);
    const retained = heldBytes() - before;
    expect(retained).toBeLessThan(16 * MiB);
    // The session goes on.
    c.say('say: still here');
    await c.next('response.done', 20_000);
    c.close();
  }, 120_000);
});

describe('client event ids of 1 MiB on item creates, under a policy with an input rule', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy({
      tenants: { acme: { policy: 'input' } },
      config: {
        logging: { level: 'info' },
        policies: { dir: policyDir({ 'input.yaml': 'guardrails:\n  rules:\n    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }\n' }), watch: false },
      },
    });
  });
  afterAll(async () => {
    await tp?.stop();
  });

  it('50 creates leave well under their size on the heap (before: ~50 MiB in the guardrail\'s unanswered creates)', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const before = heldBytes();
    for (let i = 0; i < 50; i++) {
      c.send({ type: 'conversation.item.create', event_id: `e${i}_${'z'.repeat(MiB)}`, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `hi ${i}` }] } });
    }
    await c.nth('conversation.item.done', 50, 60_000);
    // Readonly to tests that read it; emptied here so that only the proxy's heap is measured.
    for (const conn of tp.sim.connections) (conn.received as unknown[]).splice(0);
    const retained = heldBytes() - before;
    expect(retained).toBeLessThan(16 * MiB);
    c.close();
  }, 120_000);
});

describe('ConversationEstimate', () => {
  it('does not key an id too long for the upstream, still counts its tokens, and still matches its acknowledgement exactly', () => {
    const estimate = new ConversationEstimate();
    const long = 'y'.repeat(10_000);
    estimate.onItemCreate({ id: long, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello there' }] });
    const total = estimate.total().text;
    expect(total).toBeGreaterThan(0);
    // Listed while unacknowledged (a server-started response's mark leaves it out), by its hash.
    expect(estimate.serverStartMark().text).toBe(0);
    estimate.itemAcknowledged(`${long}z`);
    expect(estimate.serverStartMark().text).toBe(0);
    estimate.itemAcknowledged(long);
    expect(estimate.serverStartMark().text).toBe(total);
  });
});
