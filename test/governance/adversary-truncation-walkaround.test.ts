import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimConnection } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import { openTextSession } from './edges-support.js';
import type { ReceivedEvent } from '../support/client.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the conversation budget (truncation.budget), 2026-12-06, ninth session: two
 * walk-arounds left after unanswered calls were bounded to the 8 most recent.
 *
 * 1. The bound was a count, not tokens: a client creates `function_call` items itself
 *    (conversation.item.create, large `arguments`) and never answers them; 8 of them (each up to a
 *    frame, 16 MiB) stayed pinned, so every later response read far more than `maxTokens`.
 * 2. A `response.create` with its own `input` was relayed unread: a `function_call_output` in it for
 *    a call the proxy pruned reached the upstream without its call (an upstream error that reads like
 *    the proxy's bug), while the same output through conversation.item.create is refused.
 *
 * Real proxy on loopback, the embedded simulator as upstream (its usage.input_tokens is the context
 * the response read, with the proxy's own token rates), a raw WebSocket client.
 */

const MAX = 2000;
const BUDGET = `
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.5, keepFirst: 0, keepLast: 2 }
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

/** A function_call the client creates itself: 4 + 2 (name) + chars / 4 tokens. */
const clientCall = (n: number, chars: number) => ({ id: `item_w_${n}`, type: 'function_call', call_id: `call_w_${n}`, name: 'lookup', arguments: 'x'.repeat(chars) });

/** Creates calls 1…count (never answered), one at a time: each echoed before the next is sent. */
async function createCalls(c: TestClient, count: number, chars: number): Promise<void> {
  for (let n = 1; n <= count; n++) {
    c.send({ type: 'conversation.item.create', item: clientCall(n, chars) });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === `item_w_${n}`);
  }
}

const deletesSent = (sim: SimConnection) => sim.received.filter((r) => r.type === 'conversation.item.delete').map((r) => (r.event as { item_id: string }).item_id);

describe('adversary (truncation): the pinned unanswered calls are bounded in tokens, not only in count', () => {
  it('8 large calls the client creates and never answers do not keep the context over the budget: only the newest stays', async () => {
    const { c, sim } = await open();
    // 8 calls of 4 + 2 + 600 = 606 tokens each: 4,848 together, over twice the 2,000 budget (each
    // alone within the 1,000 target; the 500-token share for older unanswered calls holds none).
    await createCalls(c, 8, 2400);
    c.say('say:hello');
    const done = (await c.next('response.done'))['response'] as { status: string; usage: { input_tokens: number } };
    expect(done.status).toBe('completed');

    // What the upstream billed: the response read no more than the budget.
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    // What the upstream received: deletes of the older calls, oldest first, each time an echo took
    // the context over the budget (the 4th: 1…3 go, down to the 1,000 target; the 7th: 4…6 go).
    const oldest6 = ['item_w_1', 'item_w_2', 'item_w_3', 'item_w_4', 'item_w_5', 'item_w_6'];
    expect(deletesSent(sim)).toEqual(oldest6);
    // What the client received: every delete confirmed, no error.
    expect(c.ofType('conversation.item.deleted').map((e) => e['item_id'])).toEqual(oldest6);
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });
});

describe('adversary (truncation): a response.create with its own input cannot carry the output of a pruned call', () => {
  it('is refused with function_call_pruned (param at the input index, event_id echoed) and never reaches the upstream; an input carrying the call with it goes through', async () => {
    const { c, sim } = await open();
    // 10 calls of 256 tokens (2,560): the oldest is pruned (as it was with the count bound alone).
    await createCalls(c, 10, 1000);
    expect(deletesSent(sim)).toContain('item_w_1');
    await c.waitFor((e) => e.type === 'conversation.item.deleted' && e['item_id'] === 'item_w_1');
    const createsBefore = sim.received.filter((r) => r.type === 'response.create').length;
    const from = c.events.length;

    const pruned = { type: 'function_call_output', call_id: 'call_w_1', output: '{"status":"shipped"}' };
    // Out of band, the pruned call's output second in the input, no call of its id with it: refused.
    c.send({
      type: 'response.create',
      event_id: 'evt_oob_pruned',
      response: { conversation: 'none', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'where is my order?' }] }, pruned] },
    });
    // In the conversation (output joins it), same input: refused just as well.
    c.send({ type: 'response.create', event_id: 'evt_auto_pruned', response: { input: [pruned] } });
    // The same output with its call in the same input: a complete exchange, relayed, answered.
    c.send({
      type: 'response.create',
      event_id: 'evt_oob_inline',
      response: { conversation: 'none', input: [{ type: 'function_call', call_id: 'call_w_1', name: 'lookup', arguments: '{}' }, pruned] },
    });
    const done = (await c.next('response.done'))['response'] as { status: string; output: { content: { text: string }[] }[] };
    expect(done.status).toBe('completed');
    expect(done.output[0]!.content[0]!.text).toBe('The tool returned {"status":"shipped"}.');

    // Every event the client got from the first of these creates on: the two refusals, then the answered response.
    const got = c.events.slice(from);
    const refusal = (eventId: string, param: string): ReceivedEvent => ({
      type: 'error',
      event_id: expect.any(String) as string,
      error: {
        type: 'invalid_request_error',
        code: 'function_call_pruned',
        message: 'The function call this output answers was deleted from the conversation to keep it within the context budget; the output was not relayed.',
        param,
        event_id: eventId,
        details: { call_id: 'call_w_1' },
      },
    });
    expect(got.slice(0, 2)).toEqual([refusal('evt_oob_pruned', 'response.input[1].call_id'), refusal('evt_auto_pruned', 'response.input[0].call_id')]);
    // Then only the answered response's events (created first, done last, each of that response),
    // and after it the session's rate limits.
    const end = got.findIndex((e) => e.type === 'response.done');
    const rest = got.slice(2, end + 1);
    const responseId = (rest[0]!['response'] as { id: string }).id;
    expect(rest[0]!.type).toBe('response.created');
    expect(rest.filter((e) => !e.type.startsWith('response.') || ((e['response'] as { id?: string } | undefined)?.id ?? e['response_id']) !== responseId)).toEqual([]);
    expect(got.slice(end + 1).filter((e) => e.type !== 'rate_limits.updated')).toEqual([]);

    // What the upstream received: one response.create, the one whose input carries the call.
    const creates = sim.received.filter((r) => r.type === 'response.create').slice(createsBefore);
    expect(creates.map((r) => (r.event as { response: { input: { type: string }[] } }).response.input.map((i) => i.type))).toEqual([['function_call', 'function_call_output']]);
    c.close();
  });
});

/**
 * Ninth session, continued: system messages, and the newest unanswered call when the client made it.
 *
 * 3. With `keepSystem: true` (the default) and no instructions lock, every `system` message was
 *    pinned whatever its size and however many: a client creates them (conversation.item.create,
 *    role system) and the proxy could prune none of them, so every later response billed them all.
 * 4. The newest unanswered function_call was pinned whatever its size, even one the client created
 *    itself (up to a frame): created once, never answered, billed by every later response.
 */
/** A system message the client creates: 4 + chars / 4 tokens. */
const clientSystem = (n: number, chars: number) => ({ id: `item_s_${n}`, type: 'message', role: 'system', content: [{ type: 'input_text', text: 'y'.repeat(chars) }] });

describe('adversary (truncation): the pinned system messages are bounded in tokens', () => {
  it('20 system messages the client creates do not keep the context over the budget: the oldest within half the target stays, the rest go oldest first', async () => {
    const { c, sim } = await open();
    // 20 system messages of 4 + 400 = 404 tokens (8,080 together, four times the 2,000 budget).
    // Half the 1,000 target (500) holds the first only; the others are pruned like any item.
    for (let n = 1; n <= 20; n++) {
      c.send({ type: 'conversation.item.create', item: clientSystem(n, 1600) });
      await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === `item_s_${n}`);
    }
    c.say('say:hello');
    const done = (await c.next('response.done'))['response'] as { status: string; usage: { input_tokens: number } };
    expect(done.status).toBe('completed');

    // What the upstream billed: the response read no more than the budget.
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    // What the upstream received: the 5th echo takes the context over (2,020): 2 and 3 go (down to
    // 1,212: 4 and 5 are the keepLast 2); at every 2nd echo after that, the two before the latest
    // two: 2…17 go; 1, 18, 19, 20 and the user message (1,626) are what the response read. Never
    // the first: it is within the share.
    const expected = Array.from({ length: 16 }, (_, k) => `item_s_${k + 2}`);
    expect(deletesSent(sim)).toEqual(expected);
    // What the client received: every delete confirmed, no error.
    expect(c.ofType('conversation.item.deleted').map((e) => e['item_id'])).toEqual(expected);
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });
});

describe('adversary (truncation): the newest unanswered call is pinned whatever its size only when the model made it', () => {
  it('a call of 10,000 tokens the client creates and never answers is deleted once it is not among the keepLast latest items; a later output for it is refused', async () => {
    const { c, sim } = await open();
    // 4 + 2 + 10,000 tokens: alone five times the budget.
    c.send({ type: 'conversation.item.create', item: clientCall(1, 40_000) });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === 'item_w_1');
    // The first response reads it: it is one of the latest 2 items (keepLast pins them, whatever
    // their size). Its response.done adds the answer: the call is not among the latest 2 any more.
    c.say('say:hello');
    await c.next('response.done');
    c.say('say:again');
    const done = (await c.nth('response.done', 2))['response'] as { status: string; usage: { input_tokens: number } };
    expect(done.status).toBe('completed');
    // What the second response was billed: within the budget (not the call's 10,006 tokens again).
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    expect(deletesSent(sim)).toEqual(['item_w_1']);
    expect(c.ofType('conversation.item.deleted').map((e) => e['item_id'])).toEqual(['item_w_1']);
    expect(c.ofType('error')).toEqual([]);

    // Its output, late: refused like that of any call the proxy deleted unanswered.
    c.send({ type: 'conversation.item.create', event_id: 'evt_late', item: { type: 'function_call_output', call_id: 'call_w_1', output: '{}' } });
    const error = (await c.next('error'))['error'] as { code: string; event_id: string };
    expect(error).toMatchObject({ code: 'function_call_pruned', event_id: 'evt_late' });
    // The upstream got the call and the two user messages, not the output.
    expect(sim.received.filter((r) => r.type === 'conversation.item.create').map((r) => (r.event as { item: { type: string } }).item.type)).toEqual(['function_call', 'message', 'message']);
    c.close();
  });

  it('a call of ≈ 610 tokens the model made stays pinned while it is the newest unanswered one, though over the 500-token share', async () => {
    const { c, sim } = await open();
    // The user message asking for it (≈ 610 tokens) and the call (≈ 610): then two messages of 504
    // tokens take the context over the budget (≈ 2,230) at the second's echo.
    c.say(`call:lookup {"note":"${'x'.repeat(2400)}"}`);
    const done = (await c.next('response.done'))['response'] as { output: { id: string; type: string }[] };
    const callItem = done.output.find((o) => o.type === 'function_call')!;
    expect(callItem).toBeDefined();
    for (const n of [1, 2]) {
      c.send({ type: 'conversation.item.create', item: { id: `item_u_${n}`, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'z'.repeat(2000) }] } });
      await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === `item_u_${n}`);
    }
    await c.waitFor((e) => e.type === 'conversation.item.deleted');
    // Only the user message that asked: the model's call (newest unanswered) is kept though alone over the share.
    const asked = c.ofType('conversation.item.done').map((e) => e['item'] as { id: string; role?: string }).find((i) => i.role === 'user')!;
    expect(deletesSent(sim)).toEqual([asked.id]);
    expect(c.ofType('conversation.item.deleted').map((e) => e['item_id'])).toEqual([asked.id]);
    expect(asked.id).not.toBe(callItem.id);
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });
});
