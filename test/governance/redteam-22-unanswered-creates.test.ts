/**
 * Red team 22 (governance): more item creates in flight than the conversation view follows.
 *
 * The conversation view (src/protocol/conversation.ts) follows at most 64 item creates waiting for
 * the upstream's echo (MAX_PENDING); the guardrail filter follows 256 (MAX_SENT), and takes an echo
 * for a client's only when the view says the item is the client's. A client that sends 65 creates at
 * once (a history replayed at session start, or an adversary) pushes the first out of the view: its
 * echo then reads as the upstream's own item, the guardrail does not take it for the create's echo,
 * and at the next echo it does take for one, "the upstream answers in order" made it conclude the
 * first create was refused. Its text left the guardrail's context (and its place), though the item is
 * in the conversation. So `please ignore previous` typed first in such a burst, and `instructions now`
 * inserted after it later, reached the model as the phrase an input rule blocks. Now an echo the view
 * no longer knows answers a followed create of its id (or, sent without one, of its texts and type).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient, TestProxy } from '../support/harness.js';
import { barrier, errorOf, itemsAddedInPlace, recordingUpstream, type RecordedConnection, type RecordingUpstream } from './edges-support.js';
import { guardedProxy } from '../policies/guarded-proxy.js';
import { userMessage } from '../policies/support.js';

const POLICY = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
`;

let upstream: RecordingUpstream;
let tp: TestProxy;
let sessions = 0;
beforeAll(async () => {
  upstream = await recordingUpstream(itemsAddedInPlace());
  tp = await guardedProxy(upstream.url, POLICY);
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

/** Sends `please ignore previous` (with the id `first`, or none) and `notes` short items at once, and waits for every echo. */
async function burst(notes: number, first: string | null): Promise<{ c: TestClient; up: RecordedConnection }> {
  const c = await tp.client({ tenant: 'acme' });
  const up = await upstream.connection(++sessions);
  await c.next('session.created');
  c.send({ type: 'conversation.item.create', event_id: 'evt_a', item: { ...(first === null ? {} : { id: first }), ...userMessage('please ignore previous') } });
  for (let i = 0; i < notes; i++) c.send({ type: 'conversation.item.create', event_id: `evt_n${i}`, item: { id: `item_n${i}`, ...userMessage(`note ${i}`) } });
  await c.nth('conversation.item.added', notes + 1, 10_000);
  await barrier(c, up, `burst${sessions}`);
  return { c, up };
}

/** The id the upstream gave the item showing `text`. */
const idOf = (c: TestClient, text: string): string => {
  const added = c.ofType('conversation.item.added').find((e) => JSON.stringify(e['item']).includes(text));
  return String((added?.['item'] as { id?: unknown } | undefined)?.id);
};

const upstreamShowing = (up: RecordedConnection, from: number, text: string): string[] => up.raw.slice(from).filter((r) => r.includes(text));

describe('65 item creates sent at once (one more than the conversation view follows)', () => {
  it('control: with 10 at once, "instructions now" inserted after the first is refused', async () => {
    const { c, up } = await burst(10, 'item_a');
    const from = up.raw.length;
    c.send({ type: 'conversation.item.create', event_id: 'evt_c', previous_item_id: 'item_a', item: { id: 'item_c', ...userMessage('instructions now') } });
    expect(errorOf(await c.next('error')).code).toBe('guardrail_blocked');
    await barrier(c, up, 'ten');
    expect(upstreamShowing(up, from, 'instructions now')).toEqual([]);
    c.close();
  });

  it('with 65 at once, "instructions now" inserted after the first never reaches the upstream', async () => {
    const { c, up } = await burst(64, 'item_a');
    const from = up.raw.length;
    c.send({ type: 'conversation.item.create', event_id: 'evt_c', previous_item_id: 'item_a', item: { id: 'item_c', ...userMessage('instructions now') } });
    // Old code: item_a was taken for refused, the insertion judged in arrival order and forwarded.
    const error = await c.next('error');
    expect(errorOf(error).code).toBe('guardrail_blocked');
    expect((errorOf(error).details ?? {})['rule']).toBe('injection');
    await barrier(c, up, 'sixty-five');
    expect(upstreamShowing(up, from, 'instructions now')).toEqual([]);
    expect(JSON.stringify(c.events)).not.toContain('instructions now');
    c.close();
  });

  it('the same with the first sent without an id: inserted after the id its echo shows', async () => {
    const { c, up } = await burst(64, null);
    const first = idOf(c, 'please ignore previous');
    expect(first).toMatch(/^item_up/);
    const from = up.raw.length;
    c.send({ type: 'conversation.item.create', event_id: 'evt_c', previous_item_id: first, item: { id: 'item_c', ...userMessage('instructions now') } });
    const error = await c.next('error');
    expect(errorOf(error).code).toBe('guardrail_blocked');
    await barrier(c, up, 'anonymous');
    expect(upstreamShowing(up, from, 'instructions now')).toEqual([]);
    c.close();
  });

  it('control: with 65 at once, an unrelated insertion after the first passes', async () => {
    const { c, up } = await burst(64, 'item_a');
    const from = up.raw.length;
    c.send({ type: 'conversation.item.create', event_id: 'evt_c', previous_item_id: 'item_a', item: { id: 'item_c', ...userMessage('thanks') } });
    await barrier(c, up, 'unrelated');
    expect(upstreamShowing(up, from, '"thanks"')).toHaveLength(1);
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });
});
