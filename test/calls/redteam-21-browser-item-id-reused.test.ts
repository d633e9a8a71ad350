import { afterAll, beforeAll, expect, it } from 'vitest';
import { asObject } from '../../src/protocol/json.js';
import { defaultBrain, type SimCall } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { emailRedactingCallsProxy, placeCall, say, until } from './support.js';

/**
 * A call's browser (the untrusted end of a WebRTC call: anyone on the page) writes a typed item with
 * an id of its own choosing, with an address a `redact` rule covers. The sideband deletes it and
 * creates its redacted copy (a new id). The id is free again upstream: the browser writes a second
 * item under the same id, with another address. The guardrail remembers the first id as "replaced"
 * (so that its judgement is not repeated in a loop) and skips the second item: the address stays
 * in the conversation the model reads, for every later response of the call. Guarantee broken: a
 * browser's item a `redact` rule changes is replaced by its redacted copy (README, *Browser and phone
 * calls*).
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await emailRedactingCallsProxy();
});
afterAll(async () => {
  await tp?.stop();
});

const completed = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.done' && asObject(e['response'])?.['status'] === 'completed');
const typed = (id: string, text: string) => ({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
const copyShown = (call: SimCall, text: string) => call.dataChannel.some((e) => e['type'] === 'conversation.item.added' && JSON.stringify(e).includes(text));

it('an item id the sideband replaced, reused by the browser for a second address: that one is replaced too', async () => {
  const { call } = await placeCall(tp, 'acme');
  const seen: string[] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  call.sendFromBrowser(typed('item_mine', 'first: ann@example.com'));
  await until(() => copyShown(call, 'first: [REDACTED:email]'), 'the first copy');
  // The original is gone upstream: its id may be used again.
  call.sendFromBrowser(typed('item_mine', 'second: bob@example.com'));
  await until(() => call.dataChannel.filter((e) => e['type'] === 'conversation.item.added' && JSON.stringify(e).includes('bob@example.com')).length === 1, 'the second item upstream');
  // A later turn, answered: the sideband read both items long before.
  say(call, 'say:noted');
  await until(() => completed(call).length >= 1, 'the answer');
  expect(call.dataChannel.filter((e) => e['type'] === 'error')).toEqual([]);
  // Old code: the second address is in what the model reads.
  expect(seen.at(-1)).not.toContain('bob@example.com');
  expect(seen.at(-1)).toContain('second: [REDACTED:email]');
});

it('the redacted copy\'s id, deleted by the browser and reused for a second address: that one is replaced too', async () => {
  const { call } = await placeCall(tp, 'acme');
  const seen: string[] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  call.sendFromBrowser(typed('item_theirs', 'first: cat@example.com'));
  await until(() => copyShown(call, 'first: [REDACTED:email]'), 'the copy');
  // The browser sees the copy's id on its data channel.
  const copy = call.dataChannel.find((e) => e['type'] === 'conversation.item.added' && JSON.stringify(e).includes('first: [REDACTED:email]'))!;
  const copyId = String(asObject(copy['item'])?.['id']);
  call.sendFromBrowser({ type: 'conversation.item.delete', item_id: copyId });
  call.sendFromBrowser(typed(copyId, 'second: dan@example.com'));
  await until(() => call.dataChannel.filter((e) => e['type'] === 'conversation.item.added' && JSON.stringify(e).includes('dan@example.com')).length === 1, 'the second item upstream');
  say(call, 'say:noted');
  await until(() => completed(call).length >= 1, 'the answer');
  expect(call.dataChannel.filter((e) => e['type'] === 'error')).toEqual([]);
  expect(seen.at(-1)).not.toContain('dan@example.com');
  expect(seen.at(-1)).toContain('second: [REDACTED:email]');
});
