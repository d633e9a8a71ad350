import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimConnection } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import { openTextSession } from './edges-support.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the conversation budget (truncation.budget), 2026-12-06: function calls the
 * client never answers. Claimed (policies/README.md "Truncation"): the proxy deletes the oldest
 * items whenever the context exceeds `maxTokens`; a call is kept while its output is pending. Until
 * 2026-12-06 "pending" included "never answered, for good": a client (an end user's browser) that
 * makes the model call functions and never answers them had every call pinned, so the context grew
 * past the tenant's budget with nothing the proxy could prune, and every later response billed it.
 *
 * Real proxy on loopback, the embedded simulator as upstream (its usage.input_tokens is the context
 * the response read), a raw WebSocket client.
 */

/**
 * Target 900; the unanswered calls kept take at most half of it (450, since 2026-12-06: see
 * adversary-truncation-walkaround.test.ts), which 8 of these calls fit in: the count bound is what
 * this file exercises.
 */
const MAX = 1500;
const BUDGET = `
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.6, keepFirst: 0, keepLast: 2 }
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

const open = () => openTextSession(tp);

interface Done {
  usage: { input_tokens: number };
  output: { type: string; id: string; call_id?: string }[];
}

const ROUNDS = 20;
/** ≈ 50 tokens per call (and as much for the user message that asks for it): 20 rounds ≈ 2,100, over the 1,500 budget. */
const ask = (i: number) => `call:lookup_order {"order":${i},"note":"${'x'.repeat(160)}"}`;

/** The model calls a function every round; the client never answers. Returns each response's usage and call. */
async function neverAnswer(c: TestClient): Promise<{ inputTokens: number[]; calls: { id: string; call_id: string }[] }> {
  const inputTokens: number[] = [];
  const calls: { id: string; call_id: string }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    c.say(ask(i));
    const done = (await c.nth('response.done', i + 1))['response'] as Done;
    inputTokens.push(done.usage.input_tokens);
    const call = done.output.find((o) => o.type === 'function_call');
    expect(call?.call_id, `round ${i}: the model called the function`).toBeDefined();
    calls.push({ id: call!.id, call_id: call!.call_id! });
  }
  return { inputTokens, calls };
}

const deletesSent = (sim: SimConnection) => sim.received.filter((r) => r.type === 'conversation.item.delete').map((r) => (r.event as { item_id: string }).item_id);

describe('adversary (truncation): function calls the client never answers do not walk around the budget', () => {
  it('the context stays within the budget: the oldest unanswered calls are deleted, the most recent ones are kept', async () => {
    const { c, sim } = await open();
    const { inputTokens, calls } = await neverAnswer(c);

    // What the upstream billed: once the proxy had something to prune, no response read more than the budget.
    expect(Math.max(...inputTokens.slice(ROUNDS / 2)), `input tokens per response: ${inputTokens.join(', ')}`).toBeLessThanOrEqual(MAX);

    // What the upstream received: deletes for the oldest calls (and no call among the most recent ones).
    const deleted = new Set(deletesSent(sim));
    const callIds = calls.map((k) => k.id);
    expect(callIds.slice(0, 4).every((id) => deleted.has(id)), 'the oldest unanswered calls were deleted').toBe(true);
    expect(callIds.slice(-8).filter((id) => deleted.has(id)), 'the 8 most recent unanswered calls are kept').toEqual([]);
    // Oldest first: a deleted call is never newer than a kept one, but for the kept tail.
    const firstKept = callIds.findIndex((id) => !deleted.has(id));
    expect(callIds.slice(firstKept).filter((id) => deleted.has(id))).toEqual([]);

    // What the client received: the upstream's confirmation of every delete, and no error.
    const confirmed = new Set(c.ofType('conversation.item.deleted').map((e) => e['item_id'] as string));
    expect([...deleted].filter((id) => !confirmed.has(id))).toEqual([]);
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });

  it('a late output for a call the proxy deleted is refused with a stable error (its event_id echoed) and never reaches the upstream; a kept call is answered as usual', async () => {
    const { c, sim } = await open();
    const { calls } = await neverAnswer(c);
    const deleted = new Set(deletesSent(sim));
    const pruned = calls[0]!;
    const kept = calls[ROUNDS - 1]!;
    expect(deleted.has(pruned.id), 'the oldest call was deleted').toBe(true);
    expect(deleted.has(kept.id)).toBe(false);

    // The client finally answers the oldest call: refused by the proxy, not forwarded.
    c.send({ type: 'conversation.item.create', event_id: 'evt_late_output', item: { type: 'function_call_output', call_id: pruned.call_id, output: '{"status":"shipped"}' } });
    // Then the newest call: forwarded, echoed, and the model answers it.
    c.send({ type: 'conversation.item.create', event_id: 'evt_fresh_output', item: { type: 'function_call_output', call_id: kept.call_id, output: '{"status":"delivered"}' } });
    c.send({ type: 'response.create' });
    const done = (await c.nth('response.done', ROUNDS + 1))['response'] as Done & { status: string };
    expect(done.status).toBe('completed');

    const errors = c.ofType('error').map((e) => e['error'] as { type: string; code: string; event_id: string | null; message: string });
    expect(errors).toEqual([
      {
        type: 'invalid_request_error',
        code: 'function_call_pruned',
        event_id: 'evt_late_output',
        param: 'item.call_id',
        message: 'The function call this output answers was deleted from the conversation to keep it within the context budget; the output was not relayed.',
        details: { call_id: pruned.call_id },
      },
    ]);
    // The upstream: no output for the pruned call; the kept call's output, once.
    const outputs = sim.received
      .filter((r) => r.type === 'conversation.item.create')
      .map((r) => (r.event as { item: { type: string; call_id?: string } }).item)
      .filter((i) => i.type === 'function_call_output')
      .map((i) => i.call_id);
    expect(outputs).toEqual([kept.call_id]);
    // The client saw the kept call's output echoed, and the model's answer to it.
    const echoed = c.ofType('conversation.item.added').map((e) => e['item'] as { type: string; call_id?: string });
    expect(echoed.filter((i) => i.type === 'function_call_output').map((i) => i.call_id)).toEqual([kept.call_id]);
    c.close();
  });
});
