import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyDir } from '../policies/support.js';
import { openTextSession } from './edges-support.js';
import { appendEvents, speechThenSilence, startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the conversation budget (truncation.budget), 2026-12-05. Claimed
 * (README "Conversation budget", policies/README.md "Truncation"): the proxy "deletes the oldest
 * items before the next response when over budget, never separating a function call from its
 * output"; it prunes "before a client response.create, and right after each response.done (so
 * server-VAD turns, which start without a client event, already begin under budget)".
 *
 * Real proxy on loopback, the embedded simulator as upstream (its usage.input_tokens is the
 * context the response read), a raw WebSocket client.
 */

const MAX = 600;
/** The default keepLast (2), no keepFirst: the shipped defaults but for the budget itself. */
const BUDGET = `
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.6, keepFirst: 0, keepLast: 2 }
`;

/** The same budget pinning nothing at the end (keepLast 0 is valid: nonnegative). */
const BUDGET_NO_TAIL = `
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.6, keepFirst: 0, keepLast: 0 }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'budget' }, notail: { policy: 'notail' } },
    config: { policies: { dir: policyDir({ 'budget.yaml': BUDGET, 'notail.yaml': BUDGET_NO_TAIL }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

const open = (tenant = 'acme') => openTextSession(tp, tenant);

const userItem = (text: string) => ({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

/** The items of the upstream's conversation as the client saw them (every item added, minus every item deleted). */
function remainingItems(c: TestClient): { id: string; type: string; call_id?: string }[] {
  const gone = new Set(c.ofType('conversation.item.deleted').map((e) => e['item_id'] as string));
  const seen = new Map<string, { id: string; type: string; call_id?: string }>();
  for (const e of c.ofType('conversation.item.added')) {
    const item = e['item'] as { id: string; type: string; call_id?: string };
    if (!gone.has(item.id)) seen.set(item.id, item);
  }
  return [...seen.values()];
}

describe('adversary (locks/truncation): the budget never separates a function call from its output', () => {
  it('a call answered with its output and a response.create back to back is not deleted while its output goes upstream', async () => {
    const { c } = await open();
    // 1. The model calls a function (a large argument: the call is most of the context).
    c.say(`call:lookup_order {"note":"${'x'.repeat(2000)}"}`);
    const first = await c.nth('response.done', 1);
    const call = (first['response'] as { output: { type: string; id: string; call_id: string }[] }).output.find((o) => o.type === 'function_call')!;
    expect(call).toBeDefined();
    // 2. The app adds two short context notes (echoed), so the call is no longer among the last keepLast (2) items.
    c.send(userItem('note one'));
    c.send(userItem('note two'));
    await c.nth('conversation.item.added', 4); // the user's text, the call, note one, note two
    // 3. The usual pattern: the function's output, then response.create, back to back.
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call.call_id, output: '{"status":"shipped"}' } });
    c.send({ type: 'response.create' });
    await c.nth('response.done', 2);

    // The output went upstream before the prune's deletes: whatever was deleted, the conversation
    // must not hold an output whose call is gone (nor a call without its output).
    const remaining = remainingItems(c);
    const calls = new Set(remaining.filter((i) => i.type === 'function_call').map((i) => i.call_id));
    const outputs = new Set(remaining.filter((i) => i.type === 'function_call_output').map((i) => i.call_id));
    expect([...outputs].filter((id) => !calls.has(id)), 'function_call_output left without its function_call').toEqual([]);
    expect([...calls].filter((id) => !outputs.has(id)), 'function_call left without its output').toEqual([]);
    c.close();
  });

  it('the prune right after response.done does not delete a call the client has not answered yet', async () => {
    const { c } = await open('notail');
    c.say(`call:lookup_order {"note":"${'x'.repeat(2000)}"}`);
    const first = await c.nth('response.done', 1);
    const call = (first['response'] as { output: { type: string; id: string; call_id: string }[] }).output.find((o) => o.type === 'function_call')!;
    expect(call).toBeDefined();
    // The client runs the function and answers it, as the model asked.
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call.call_id, output: '{"status":"shipped"}' } });
    c.send({ type: 'response.create' });
    await c.nth('response.done', 2);
    // "A function call and its output are deleted together (never an unanswered call)": the call
    // was deleted at the first response.done, while the client was answering it.
    const remaining = remainingItems(c);
    const calls = new Set(remaining.filter((i) => i.type === 'function_call').map((i) => i.call_id));
    const outputs = new Set(remaining.filter((i) => i.type === 'function_call_output').map((i) => i.call_id));
    expect([...outputs].filter((id) => !calls.has(id)), 'function_call_output left without its function_call').toEqual([]);
    c.close();
  });
});

describe('adversary (locks/truncation): a server-VAD turn starts under the budget', () => {
  it('items the client created since the last response.done are pruned before the server answers a spoken turn', async () => {
    const { c } = await open();
    // Each ~225 tokens: together over the 600-token budget, any two of them under it (keepLast
    // pins two). No response.create: the client never gives the proxy its prune point.
    for (let i = 0; i < 3; i++) c.send(userItem(`context ${i}: ` + 'This sentence pads the context so it fills the budget quickly. '.repeat(14)));
    await c.nth('conversation.item.added', 3);
    // Then the user speaks: server VAD (create_response on) answers the turn by itself.
    for (const ev of appendEvents(speechThenSilence(600, 800), 20)) c.send(ev);
    const done = await c.next('response.done', 10_000);
    const usage = (done['response'] as { usage: { input_tokens: number } }).usage;
    // The response read a context over the budget: nothing was pruned before it started.
    expect(usage.input_tokens).toBeLessThanOrEqual(MAX);
    c.close();
  });
});

describe('adversary (locks/truncation): an out-of-band response without input reads the default conversation', () => {
  it('response.create { conversation: "none" } without input starts under the budget too', async () => {
    const { c } = await open();
    for (let i = 0; i < 3; i++) c.send(userItem(`context ${i}: ` + 'This sentence pads the context so it fills the budget quickly. '.repeat(14)));
    await c.nth('conversation.item.added', 3);
    // `conversation: "none"` only keeps the output out of the conversation: without `input` the
    // response reads the default conversation (the API's field docs; the simulator does the same).
    c.send({ type: 'response.create', response: { conversation: 'none', metadata: { topic: 'classify' } } });
    const done = await c.next('response.done', 10_000);
    const usage = (done['response'] as { usage: { input_tokens: number } }).usage;
    expect(usage.input_tokens).toBeLessThanOrEqual(MAX);
    // And it is never pruned afterwards either: an out-of-band response.done neither calibrates nor prunes.
    expect(c.ofType('conversation.item.deleted')).not.toEqual([]);
    c.close();
  });
});
