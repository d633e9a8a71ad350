import { afterAll, beforeAll, expect, it } from 'vitest';
import { asObject } from '../../src/protocol/json.js';
import { defaultBrain, type SimCall } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { emailRedactingCallsProxy, placeCall, say, until } from './support.js';

/**
 * A team on the shipped `pii-safe` policy (its `pii-in-text` rule: input email, phone, card… →
 * `redact`) moves its web voice agent to WebRTC. The page's text box sends a typed message over the
 * data channel (`conversation.item.create`, as `RealtimeSession.sendMessage` does). On a WebSocket
 * the proxy redacts it before the model sees it; on a call the item reaches OpenAI first. Until
 * 2026-12-07 the sideband, which deletes an item a `block` rule stops, did nothing for a `redact`
 * rule: the address stayed in the conversation and every later response of the call read it. Now
 * the sideband deletes the item and creates its redacted copy at its place; the response the
 * browser asked for, started from the unredacted item, is cancelled and asked for again once the
 * copy stands (the browser sees OpenAI's events: the item deleted, the copy added, a cancelled
 * response, then its answer).
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await emailRedactingCallsProxy();
});
afterAll(async () => {
  await tp?.stop();
});

const completed = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.done' && asObject(e['response'])?.['status'] === 'completed');

it('a typed email on the data channel does not stay in the conversation the model reads', async () => {
  const { call } = await placeCall(tp, 'acme');
  // What the model was given for each response of the call.
  const seen: string[] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  say(call, 'my email is bob@example.com, note it');
  await until(() => completed(call).length >= 1, 'the first answer');
  // A later turn: the sideband read the typed item long before.
  say(call, 'say:noted');
  await until(() => completed(call).length >= 2, 'the second answer');
  // The response the browser asked for started before the sideband saw the item (it read the
  // address, and was cancelled); every one after it reads the redacted copy.
  expect(seen[0]).toContain('bob@example.com');
  expect(seen.length).toBeGreaterThanOrEqual(2);
  for (const given of seen.slice(1)) expect(given).not.toContain('bob@example.com');
  expect(seen.at(-1)).toContain('my email is [REDACTED:email]');
});

it('the browser that asked for a response to a redacted item gets one answer, not zero, not two', async () => {
  const { call } = await placeCall(tp, 'acme');
  const answered: string[] = [];
  call.connection!.setBrain((ctx) => {
    answered.push(JSON.stringify(ctx.items.at(-1)));
    return defaultBrain(ctx);
  });
  say(call, 'my email is ann@example.com');
  await until(() => completed(call).length >= 1, 'the answer');
  // A later turn, answered: any answer still to come for the first would have come before it.
  say(call, 'say:noted');
  await until(() => completed(call).some((e) => JSON.stringify(e).includes('noted')), 'the second answer');
  const first = completed(call)[0]!;
  expect(JSON.stringify(first)).not.toContain('noted');
  expect(completed(call)).toHaveLength(2);
  // The cancelled start, then the one answer, from the redacted copy; no error on the data channel.
  expect(call.dataChannel.filter((e) => e['type'] === 'response.done' && asObject(e['response'])?.['status'] === 'cancelled')).toHaveLength(1);
  expect(call.dataChannel.filter((e) => e['type'] === 'error')).toEqual([]);
  expect(answered[1]).toContain('my email is [REDACTED:email]');
  expect(answered[1]).not.toContain('ann@example.com');
  // The browser saw the original deleted and the copy added in its place.
  expect(call.dataChannel.filter((e) => e['type'] === 'conversation.item.deleted')).not.toHaveLength(0);
});

it('the redacted copy still stands when the browser deleted the item before it (its place refused)', async () => {
  const { call } = await placeCall(tp, 'acme');
  const seen: string[] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  call.sendFromBrowser({ type: 'conversation.item.create', item: { id: 'item_before', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] } });
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'write to eve@example.com' }] } });
  // The item the copy would follow leaves before the sideband puts the copy after it.
  call.sendFromBrowser({ type: 'conversation.item.delete', item_id: 'item_before' });
  await until(() => call.dataChannel.filter((e) => e['type'] === 'conversation.item.deleted').length >= 2, 'both deletes');
  await until(() => call.dataChannel.some((e) => e['type'] === 'conversation.item.added' && JSON.stringify(e).includes('write to [REDACTED:email]')), 'the copy');
  say(call, 'say:noted');
  await until(() => completed(call).length >= 1, 'the answer');
  expect(seen.at(-1)).toContain('write to [REDACTED:email]');
  expect(seen.join('\n')).not.toContain('eve@example.com');
});
