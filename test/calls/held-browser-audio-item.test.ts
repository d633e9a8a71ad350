import { afterAll, beforeAll, expect, it } from 'vitest';
import { asObject } from '../../src/protocol/json.js';
import { defaultBrain, type SimCall } from '../../src/simulator/index.js';
import { heldPolicy, policyDir } from '../policies/support.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, placeCall, until } from './support.js';

/*
 * A policy that holds spoken turns (`guardrails.holdSpokenInput`) promises that no response hears a
 * turn its input rules have not judged. On a WebSocket an item carrying audio
 * (`conversation.item.create` with an `input_audio` part) is refused: the upstream never transcribes
 * such audio, so it could never be judged. A browser on WebRTC writes that item on its data channel,
 * straight to OpenAI; the proxy's sideband sees only the server's events for it. Until 2026-12-07 the
 * sideband let it be (nothing was held: no commit made it) and the browser's response.create was
 * answered from it. Now the sideband deletes it and cancels the response that heard it.
 */

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: { policy: 'held' } }, extra: { config: { policies: { dir: policyDir({ 'held.yaml': heldPolicy(2000) }), watch: false } } } });
});
afterAll(async () => {
  await tp?.stop();
});

const done = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.done').map((e) => asObject(e['response'])?.['status']);
/** 200 ms of 24 kHz PCM16 silence: what the model would hear. */
const AUDIO = Buffer.alloc(24_000 * 2 * 0.2).toString('base64');

const added = (call: SimCall) => call.dataChannel.find((e) => e['type'] === 'conversation.item.added' && asObject(e['item'])?.['role'] === 'user');

it('a browser\'s audio item on the data channel is deleted, and the response the browser asked for is cancelled: no answer hears unjudged audio', async () => {
  const { call } = await placeCall(tp, 'acme');
  // What each response of the call was given, as it ended (a cancelled one too).
  const heard: string[] = [];
  call.connection!.setBrain((ctx) => {
    heard.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: AUDIO }] } });
  call.sendFromBrowser({ type: 'response.create' });
  await until(() => done(call).length >= 1, 'the browser\'s response done');
  const itemId = asObject(added(call)?.['item'])?.['id'];
  await until(() => call.dataChannel.some((e) => e['type'] === 'conversation.item.deleted' && e['item_id'] === itemId), 'the audio item deleted');
  // Until 2026-12-07: ['completed'], the model's answer to audio no input rule judged.
  expect(done(call)).toEqual(['cancelled']);
  expect(call.received.filter((r) => r.from === 'sideband' && r.type === 'conversation.item.delete').map((r) => r.event['item_id'])).toEqual([itemId]);
  expect(tp.logs.some((l) => l['item'] === itemId && String(l['msg']).includes('audio item was added over the data channel'))).toBe(true);
  // A later turn the browser types is judged as ever, and answered from a conversation without the audio.
  call.sendFromBrowser({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say:hello' }] } });
  call.sendFromBrowser({ type: 'response.create' });
  await until(() => done(call).length >= 2, 'the typed turn answered');
  expect(done(call)).toEqual(['cancelled', 'completed']);
  expect(heard.at(-1)).not.toContain('input_audio');
});

it('a turn spoken into the call (committed from the input buffer) is still held for its transcript and answered, not taken for an audio item', async () => {
  const { call } = await placeCall(tp, 'acme');
  call.sendFromBrowser({ type: 'input_audio_buffer.append', audio: AUDIO });
  call.sendFromBrowser({ type: 'input_audio_buffer.commit' });
  // The proxy's sideband asks for the answer once the transcript passed the input rules.
  await until(() => done(call).length >= 1, 'the spoken turn answered');
  expect(done(call)).toEqual(['completed']);
  expect(call.received.filter((r) => r.from === 'sideband').map((r) => r.type)).toContain('response.create');
  expect(call.received.filter((r) => r.type === 'conversation.item.delete')).toEqual([]);
});
