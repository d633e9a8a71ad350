import { afterAll, beforeAll, expect, it } from 'vitest';
import { asObject, asString } from '../../src/protocol/json.js';
import { defaultBrain, type SimCall } from '../../src/simulator/index.js';
import { ADMIN_KEY, usageRecords } from '../metering/support.js';
import type { TestProxy } from '../support/harness.js';
import { emailRedactingCallsProxy, placeCall, say, until } from './support.js';

/**
 * The browser-item redaction of a call (test/calls/redteam-19b-browser-item-redact.test.ts) when
 * the response the browser asked for completes before the proxy's `response.cancel` reaches OpenAI
 * (the simulator's `cancelsArriveLate`: the cancel, and every sideband event after it, is handled
 * once the response is done). That response read the unredacted item: its output items are deleted
 * (README: "its items are deleted: it read the address"), the turn is not asked for again (the
 * browser has its answer: one answer, not two), the late cancel is answered
 * `response_cancel_not_active` by OpenAI, and each response is billed once, from its response.done.
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await emailRedactingCallsProxy({ admin: { key: ADMIN_KEY } });
});
afterAll(async () => {
  await tp?.stop();
});

const ofType = (call: SimCall, type: string) => call.dataChannel.filter((e) => e['type'] === type);
const responseOf = (e: Record<string, unknown>) => asObject(e['response']) ?? {};
const fromSideband = (call: SimCall, type: string) => call.received.filter((r) => r.from === 'sideband' && r.type === type).map((r) => r.event);

it('a response that completes before the cancel reaches the upstream: its items are deleted, the turn is not answered again, each response billed once', async () => {
  const { call } = await placeCall(tp, 'acme');
  call.cancelsArriveLate();
  // What the model was given for each response of the call.
  const seen: string[] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  // The answer says what it read: the address, before the redaction replaced the item.
  say(call, 'say: I will write to bob@example.com');
  await until(() => ofType(call, 'response.done').length >= 1, 'the first response done');
  const first = responseOf(ofType(call, 'response.done')[0]!);
  expect(first['status']).toBe('completed');
  expect(JSON.stringify(first)).toContain('bob@example.com');
  const firstId = asString(first['id'])!;
  const answerItems = (Array.isArray(first['output']) ? first['output'] : []).map((o) => asString(asObject(o)?.['id']));
  expect(answerItems).toHaveLength(1);

  // The sideband's late cancel is answered as OpenAI answers a cancel of a finished response.
  await until(() => ofType(call, 'error').length >= 1, 'the late cancel answered');
  // The answer's item, which read the address, leaves the conversation.
  await until(() => ofType(call, 'conversation.item.deleted').some((e) => e['item_id'] === answerItems[0]), 'the answer item deleted');

  // A later turn, answered: a re-answer of the first turn would have come before it.
  say(call, 'say:noted');
  await until(() => ofType(call, 'response.done').some((e) => JSON.stringify(e).includes('noted')), 'the second answer');

  // The browser: two answers (the first completed, not cancelled; none asked for again), the
  // original deleted and its redacted copy added, and OpenAI's answer to the late cancel.
  const dones = ofType(call, 'response.done').map(responseOf);
  expect(dones.map((r) => r['status'])).toEqual(['completed', 'completed']);
  expect(ofType(call, 'response.created')).toHaveLength(2);
  expect(ofType(call, 'error').map((e) => asObject(e['error'])?.['code'])).toEqual(['response_cancel_not_active']);
  const added = ofType(call, 'conversation.item.added').map((e) => JSON.stringify(e));
  expect(added.filter((a) => a.includes('I will write to [REDACTED:email]'))).toHaveLength(1);

  // The upstream, from the sideband: the original and the answer's item deleted, the copy created
  // at the original's place, the first response cancelled (late), and no response asked for.
  const userItem = ofType(call, 'conversation.item.added').find((e) => JSON.stringify(e).includes('bob@example.com'));
  const originalId = asString(asObject(userItem?.['item'])?.['id']);
  expect(originalId).not.toBeNull();
  expect(fromSideband(call, 'conversation.item.delete').map((e) => e['item_id'])).toEqual([originalId, answerItems[0]]);
  const creates = fromSideband(call, 'conversation.item.create');
  expect(creates).toHaveLength(1);
  expect(JSON.stringify(creates[0])).toContain('I will write to [REDACTED:email]');
  expect(fromSideband(call, 'response.cancel').map((e) => e['response_id'])).toEqual([firstId]);
  expect(fromSideband(call, 'response.create')).toEqual([]);
  // With the cancel, the browser's playback is cleared: after a completed response.done OpenAI may
  // still be playing its audio, which this cuts (the simulator stops playing at response.done).
  expect(fromSideband(call, 'output_audio_buffer.clear')).toHaveLength(1);

  // The model: the later turn read the copy, neither the address nor the first answer.
  expect(seen).toHaveLength(2);
  expect(seen[0]).toContain('bob@example.com');
  expect(seen[1]).toContain('I will write to [REDACTED:email]');
  expect(seen[1]).not.toContain('bob@example.com');

  // Metering: each response the call ran billed once, from its own response.done (none estimated).
  const started = ofType(call, 'response.created').map((e) => asString(responseOf(e)['id']));
  const billed = async () => (await usageRecords(tp.adminUrl, '?tenant=acme')).filter((r) => r['source'] === 'response');
  await until(async () => (await billed()).length >= started.length, 'both responses billed');
  const records = await billed();
  expect(records.map((r) => r['ref']).sort()).toEqual([...started].sort());
  for (const r of records) expect(r).toMatchObject({ settledBy: 'response.done', estimated: false });
  const usageOf = (id: string) => responseOf(ofType(call, 'response.done').find((e) => responseOf(e)['id'] === id)!)['usage'];
  expect(records.find((r) => r['ref'] === firstId)!['totalTokens']).toBe(asObject(usageOf(firstId))?.['total_tokens']);
}, 20_000);
