import { afterAll, beforeAll, expect, it } from 'vitest';
import { asObject } from '../../src/protocol/json.js';
import { defaultBrain, type SimCall } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';
import { emailRedactingCallsProxy, placeCall, say, until } from './support.js';

/**
 * A call's browser writes a tool exchange into the conversation over its data channel (a function
 * call and its output, as an SDK restoring history does), both with an address a `redact` rule
 * covers, then asks for a response. Since 2026-12-07 the sideband replaces a browser's function call
 * by its redacted copy too. The output's copy was to go after the function call's original, which
 * the sideband had just deleted itself: the upstream refused it (`item_not_found`, an error on the
 * browser's data channel), and the copy went at the end of the conversation once it could, after
 * the turns that came meanwhile. The next response read the function call without its output, and
 * the output then stood after later turns: the tool exchange's pairing broken (guarantee: the copy
 * is created at its item's place, so every later response reads the conversation as it was, redacted).
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await emailRedactingCallsProxy();
});
afterAll(async () => {
  await tp?.stop();
});

const done = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.done');
type Item = { type: string; call_id?: string; role?: string };

it('a browser\'s function call and its output, both redacted: the copies stand in order, the output right after its call', async () => {
  const { call } = await placeCall(tp, 'acme');
  const seen: Item[][] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.parse(JSON.stringify(ctx.items)) as Item[]);
    return defaultBrain(ctx);
  });
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"email":"ann@example.com"}' } });
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_1', output: '{"found":"bob@example.com"}' } });
  call.sendFromBrowser({ type: 'response.create' });
  // The browser's response (cancelled: it read the originals), then the one answer from the copies.
  await until(() => done(call).some((e) => asObject(e['response'])?.['status'] === 'completed'), 'the answer');
  say(call, 'say:noted');
  await until(() => done(call).some((e) => JSON.stringify(e).includes('noted')), 'the next turn answered');

  // Old code: item_not_found for the output's copy (its place, the call's original, deleted by the sideband).
  expect(call.dataChannel.filter((e) => e['type'] === 'error')).toEqual([]);
  // Every response after the first reads the call with its output, right after it.
  for (const items of seen.slice(1)) {
    const at = items.findIndex((i) => i.type === 'function_call');
    expect(at).toBeGreaterThanOrEqual(0);
    expect(items[at + 1]).toMatchObject({ type: 'function_call_output', call_id: 'call_1' });
  }
  expect(JSON.stringify(seen.at(-1))).not.toMatch(/ann@|bob@/);
});
