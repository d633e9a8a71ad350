import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimConnection } from '../../src/simulator/index.js';
import { DEFAULT_INSTRUCTIONS } from '../../src/simulator/session.js';
import { policyDir } from '../policies/support.js';
import { openTextSession } from './edges-support.js';
import { WEBHOOK_SECRET } from '../calls/support.js';
import type { ReceivedEvent } from '../support/client.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the conversation budget (truncation.budget), 2026-12-06, ninth session,
 * continued: `instructions` and `tools` walked around it.
 *
 * The budget deleted conversation items only; the session's `instructions` and `tools` (and a
 * response.create's own, which replace them for that response) were not bounded at all. One
 * session.update with 40,000-character instructions made every response bill ≈ 10,000 input tokens
 * against a 2,000 budget, and the proxy kept deleting the client's items at every response while
 * never getting under the budget (the tracker calibrates from usage, which includes them).
 *
 * Real proxy on loopback, the embedded simulator as upstream (its usage.input_tokens bills
 * 8 + instructions / 4 + JSON(tools) / 4 for the prompt prefix, the proxy's own rates for items),
 * a raw WebSocket client.
 */

const MAX = 2000;
/** maxTokens × targetRatio × INSTRUCTIONS_SHARE: what instructions and tools may take together. */
const SHARE = 500;
const BUDGET = `
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.5, keepFirst: 0, keepLast: 2 }
`;
/** An operator's locked instructions of 3,000 tokens: alone over the whole budget. */
const LOCKED_OVER = `
locks:
  instructions: { locked: "${'L'.repeat(12_000)}" }
truncation:
  budget: { maxTokens: ${MAX}, targetRatio: 0.5, keepFirst: 0, keepLast: 2 }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'budget' }, locked: { policy: 'locked_over' } },
    config: {
      policies: { dir: policyDir({ 'budget.yaml': BUDGET, 'locked_over.yaml': LOCKED_OVER }), watch: false },
      upstream: { allowCallId: true },
      calls: { enabled: true, sip: { webhookSecret: WEBHOOK_SECRET, routes: [] } },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
});

const open = (tenant = 'acme') => openTextSession(tp, tenant);

const deletesSent = (sim: SimConnection) => sim.received.filter((r) => r.type === 'conversation.item.delete').map((r) => (r.event as { item_id: string }).item_id);
const sent = (sim: SimConnection, type: string) => sim.received.filter((r) => r.type === type).map((r) => r.event as Record<string, unknown>);

/** `count` function definitions of ≈ 150 characters each (JSON). */
const manyTools = (count: number) =>
  Array.from({ length: count }, (_, i) => ({ type: 'function', name: `fn_${String(i).padStart(3, '0')}`, description: 'd'.repeat(80), parameters: { type: 'object', properties: {} } }));
const tokensOf = (v: unknown) => Math.ceil(JSON.stringify(v).length / 4);

const MESSAGE = 'The instructions, tools and prompt variables a response would read exceed their share of the context budget.';
const refusal = (eventId: string, param: string, tokens: number): ReceivedEvent => ({
  type: 'error',
  event_id: expect.any(String) as string,
  error: {
    type: 'invalid_request_error',
    code: 'context_budget_exceeded',
    message: MESSAGE,
    param,
    event_id: eventId,
    details: { tokens, limit: SHARE },
  },
});

/** Sends a user message and a response.create and returns the response.done (the n-th of the session). */
async function turn(c: TestClient, text: string, n: number): Promise<{ status: string; usage: { input_tokens: number }; instructionsRead?: string }> {
  c.say(text);
  return (await c.nth('response.done', n))['response'] as { status: string; usage: { input_tokens: number } };
}

describe('adversary (truncation): instructions are bounded by the budget', () => {
  it('a session.update with 40,000-character instructions is refused (context_budget_exceeded, param session.instructions, event_id echoed), never reaches the upstream, and the session keeps what it had', async () => {
    const { c, sim } = await open();
    const updatesBefore = sent(sim, 'session.update').length;
    const from = c.events.length;
    c.send({ type: 'session.update', event_id: 'evt_huge', session: { type: 'realtime', instructions: 'i'.repeat(40_000) } });
    const done = await turn(c, 'say:hello', 1);
    expect(done.status).toBe('completed');

    // What the upstream billed: the response read its default instructions and two items, within the budget.
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    // What the upstream received: no session.update after the refused one, and no delete.
    expect(sent(sim, 'session.update').length).toBe(updatesBefore);
    expect(deletesSent(sim)).toEqual([]);
    // What the client got: the refusal first, then only the turn (no session.updated, no other error).
    const got = c.events.slice(from);
    expect(got[0]).toEqual(refusal('evt_huge', 'session.instructions', 10_000));
    expect(got.slice(1).map((e) => e.type)).not.toContain('session.updated');
    expect(got.slice(1).map((e) => e.type)).not.toContain('error');
    expect(got.slice(1).map((e) => e.type)).toContain('response.created');

    // Within the share (400 + the 0 tools), the same session goes on and takes it.
    c.send({ type: 'session.update', event_id: 'evt_fits', session: { type: 'realtime', instructions: 'j'.repeat(1600) } });
    const updated = (await c.nth('session.updated', 2))['session'] as { instructions: string };
    expect(updated.instructions).toBe('j'.repeat(1600));
    c.close();
  });

  it('exactly at the share passes; one token over is refused', async () => {
    const { c, sim } = await open();
    const updatesBefore = sent(sim, 'session.update').length;
    // 4 × 500 characters: 500 tokens, the share exactly (no tools).
    c.send({ type: 'session.update', event_id: 'evt_at', session: { type: 'realtime', instructions: 'a'.repeat(4 * SHARE) } });
    expect(((await c.nth('session.updated', 2))['session'] as { instructions: string }).instructions).toHaveLength(4 * SHARE);
    // One character more is a token more.
    c.send({ type: 'session.update', event_id: 'evt_over', session: { type: 'realtime', instructions: 'a'.repeat(4 * SHARE + 1) } });
    expect(await c.next('error')).toEqual(refusal('evt_over', 'session.instructions', SHARE + 1));
    const done = await turn(c, 'say:hello', 1);
    expect(done.status).toBe('completed');
    expect(sent(sim, 'session.update').length).toBe(updatesBefore + 1);
    c.close();
  });

  it('a response.create with 40,000-character instructions of its own is refused (param response.instructions); no response starts; the next one reads the session\'s', async () => {
    const { c, sim } = await open();
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say:hello' }] } });
    const from = c.events.length;
    c.send({ type: 'response.create', event_id: 'evt_huge_resp', response: { instructions: 'i'.repeat(40_000) } });
    // Out of band with an input of its own: the instructions are read all the same.
    c.send({ type: 'response.create', event_id: 'evt_huge_oob', response: { conversation: 'none', input: [], instructions: 'i'.repeat(40_000) } });
    c.send({ type: 'response.create', event_id: 'evt_plain', response: {} });
    const done = (await c.next('response.done'))['response'] as { status: string; usage: { input_tokens: number } };
    expect(done.status).toBe('completed');
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    // The upstream got one response.create: the plain one.
    expect(sent(sim, 'response.create').map((e) => (e['response'] as { instructions?: string }).instructions)).toEqual([undefined]);
    expect(deletesSent(sim)).toEqual([]);
    const got = c.events.slice(from);
    expect(got.filter((e) => e.type === 'error')).toEqual([refusal('evt_huge_resp', 'response.instructions', 10_000), refusal('evt_huge_oob', 'response.instructions', 10_000)]);
    expect(got.filter((e) => e.type === 'response.created')).toHaveLength(1);
    c.close();
  });
});

describe('adversary (truncation): tools are bounded by the budget, together with the instructions', () => {
  it('a session.update with 100 function definitions (≈ 3,900 tokens) is refused (param session.tools); the upstream bills none of them', async () => {
    const { c, sim } = await open();
    const tools = manyTools(100);
    const tokens = tokensOf(tools);
    expect(tokens).toBeGreaterThan(3 * MAX / 2);
    c.send({ type: 'session.update', event_id: 'evt_tools', session: { type: 'realtime', tools } });
    expect(await c.next('error')).toEqual(refusal('evt_tools', 'session.tools', tokens + Math.ceil(DEFAULT_INSTRUCTIONS.length / 4)));
    const done = await turn(c, 'say:hello', 1);
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    expect(sent(sim, 'session.update').some((e) => (e['session'] as { tools?: unknown }).tools !== undefined)).toBe(false);
    expect(deletesSent(sim)).toEqual([]);
    c.close();
  });

  it('instructions and tools count together: 400 + 100 tokens pass, 400 + 104 do not; a response.create\'s own instructions replace the session\'s, its own tools the session\'s', async () => {
    const { c, sim } = await open();
    c.send({ type: 'session.update', event_id: 'evt_ins', session: { type: 'realtime', instructions: 'k'.repeat(1600) } });
    await c.nth('session.updated', 2);
    const small = manyTools(2); // ≈ 80 tokens
    const smallTokens = tokensOf(small);
    const big = manyTools(3);
    const bigTokens = tokensOf(big);
    expect(400 + smallTokens).toBeLessThanOrEqual(SHARE);
    expect(400 + bigTokens).toBeGreaterThan(SHARE);
    // Tools alone in the update: the session's 400 tokens of instructions count with them.
    c.send({ type: 'session.update', event_id: 'evt_big_tools', session: { type: 'realtime', tools: big } });
    expect(await c.next('error')).toEqual(refusal('evt_big_tools', 'session.tools', 400 + bigTokens));
    c.send({ type: 'session.update', event_id: 'evt_small_tools', session: { type: 'realtime', tools: small } });
    expect(((await c.nth('session.updated', 3))['session'] as { tools: unknown[] }).tools).toHaveLength(2);

    // A response's own tools replace the session's (not added): 400 + bigTokens, refused.
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say:hi' }] } });
    c.send({ type: 'response.create', event_id: 'evt_resp_tools', response: { tools: big } });
    expect(await c.nth('error', 2)).toEqual(refusal('evt_resp_tools', 'response.tools', 400 + bigTokens));
    // Its own short instructions replace the session's 400: with the big tools, within the share.
    c.send({ type: 'response.create', event_id: 'evt_resp_both', response: { instructions: 'Be brief.', tools: big } });
    const done = (await c.next('response.done'))['response'] as { status: string; usage: { input_tokens: number } };
    expect(done.status).toBe('completed');
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    const creates = sent(sim, 'response.create').map((e) => e['response'] as { instructions?: string; tools?: unknown[] });
    expect(creates.map((r) => [r.instructions, r.tools?.length])).toEqual([['Be brief.', 3]]);
    expect(c.ofType('error')).toHaveLength(2);
    c.close();
  });
});

describe('adversary (truncation): the client secret and the call carry the same bound', () => {
  it('POST /v1/realtime/client_secrets with instructions over the share is refused 400 context_budget_exceeded; within it, minted', async () => {
    const mint = (session: Record<string, unknown>) =>
      fetch(`${tp.httpUrl}/v1/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${tp.key('acme')}`, 'content-type': 'application/json' }, body: JSON.stringify({ session }) });
    const over = await mint({ type: 'realtime', model: 'gpt-realtime', instructions: 'i'.repeat(40_000) });
    expect(over.status).toBe(400);
    expect(await over.json()).toEqual({
      error: {
        type: 'invalid_request_error',
        code: 'context_budget_exceeded',
        message: MESSAGE,
        param: 'session.instructions',
        details: { tokens: 10_000, limit: SHARE },
      },
    });
    const tools = manyTools(100);
    const overTools = await mint({ type: 'realtime', model: 'gpt-realtime', instructions: 'short', tools });
    expect(overTools.status).toBe(400);
    expect(((await overTools.json()) as { error: { param: string } }).error.param).toBe('session.tools');
    const fits = await mint({ type: 'realtime', model: 'gpt-realtime', instructions: 'i'.repeat(2000) });
    expect(fits.status).toBe(200);
    // The operator's locked instructions (3,000 tokens) are never refused; a tenant's tools on top of them are.
    const mintLocked = (session: Record<string, unknown>) =>
      fetch(`${tp.httpUrl}/v1/realtime/client_secrets`, { method: 'POST', headers: { authorization: `Bearer ${tp.key('locked')}`, 'content-type': 'application/json' }, body: JSON.stringify({ session }) });
    expect((await mintLocked({ type: 'realtime', model: 'gpt-realtime' })).status).toBe(200);
    const lockedTools = await mintLocked({ type: 'realtime', model: 'gpt-realtime', tools: manyTools(1) });
    expect(lockedTools.status).toBe(400);
    expect(((await lockedTools.json()) as { error: { code: string; param: string } }).error).toMatchObject({ code: 'context_budget_exceeded', param: 'session.tools' });
  });
});

describe('adversary (truncation): an unreachable target is not chased', () => {
  it('with locked instructions alone over the budget, the proxy does not delete the conversation at every response; it prunes once what may go exceeds the room between prunes, all of it at once, then stops', async () => {
    const { c, sim } = await open('locked');
    // Every response reads the 3,000-token locked instructions: over the 2,000 budget whatever is deleted.
    let done = await turn(c, 'say:one', 1);
    expect(done.usage.input_tokens).toBeGreaterThan(MAX);
    for (let n = 2; n <= 6; n++) done = await turn(c, `say:turn ${n}`, n);
    // Six small turns: nothing deleted (deleting them could not bring a response under the budget;
    // until this fix every response deleted the turns before the latest two: 10 deletes here).
    expect(deletesSent(sim)).toEqual([]);
    // The client's session.update that sets neither instructions nor tools is not refused for the operator's text.
    expect(c.ofType('error')).toEqual([]);
    // A turn of ≈ 1,100 tokens each way: once it is no longer among the latest two, what may go
    // (≈ 1,200) exceeds the room between prunes (maxTokens − target = 1,000), and all of it goes.
    await turn(c, `say:${'w'.repeat(4400)}`, 7);
    for (let n = 8; n <= 11; n++) done = await turn(c, `say:turn ${n}`, n);
    // Every item of turns 1 to 7, oldest first (the 7th's answer a turn later, once it too is not
    // among the latest two); nothing of turns 8 to 11.
    const order = c.ofType('conversation.item.added').map((e) => (e['item'] as { id: string }).id);
    expect(order).toHaveLength(22);
    expect(deletesSent(sim)).toEqual(order.slice(0, 14));
    expect(c.ofType('conversation.item.deleted').map((e) => e['item_id'])).toEqual(order.slice(0, 14));
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });
});

describe('adversary (truncation): an out-of-band response reads its own input within the budget (2026-12-06)', () => {
  it('a response.create whose own input (with the instructions it reads) is over maxTokens is refused (param response.input); one within it runs', async () => {
    const { c, sim } = await open();
    const from = c.events.length;
    const message = (chars: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 's'.repeat(chars) }] });
    // 10 items of ~1,000 tokens: ~10,000 tokens read by one response on a 2,000 budget.
    c.send({ type: 'response.create', event_id: 'evt_big_input', response: { conversation: 'none', input: Array.from({ length: 10 }, () => message(4_000)) } });
    c.send({ type: 'response.create', event_id: 'evt_small_input', response: { conversation: 'none', input: [message(400)] } });
    const done = (await c.next('response.done'))['response'] as { status: string; usage: { input_tokens: number } };
    expect(done.status).toBe('completed');
    expect(done.usage.input_tokens).toBeLessThanOrEqual(MAX);
    // The upstream got the small one only.
    expect(sent(sim, 'response.create').map((e) => (e['response'] as { input: unknown[] }).input.length)).toEqual([1]);
    const errors = c.events.slice(from).filter((e) => e.type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!['error']).toMatchObject({ code: 'context_budget_exceeded', param: 'response.input', event_id: 'evt_big_input', details: { limit: MAX } });
    expect((errors[0]!['error'] as { details: { tokens: number } }).details.tokens).toBeGreaterThan(MAX);
    c.close();
  });
});
