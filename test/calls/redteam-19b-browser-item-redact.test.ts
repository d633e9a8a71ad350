import { afterAll, beforeAll, expect, it } from 'vitest';
import { defaultBrain } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, placeCall, say, until } from './support.js';

/**
 * A team on the shipped `pii-safe` policy (its `pii-in-text` rule: input email, phone, card… →
 * `redact`) moves its web voice agent to WebRTC. The page's text box sends a typed message over the
 * data channel (`conversation.item.create`, as `RealtimeSession.sendMessage` does). On a WebSocket
 * the proxy redacts it before the model sees it; on a call the item reaches OpenAI first, and the
 * sideband, which deletes an item a `block` rule stops, does nothing for a `redact` rule: the
 * address stays in the conversation and every later response of the call reads it. The README's
 * calls section promises blocked items are deleted and says nothing of redactions.
 */
const PII_POLICY = `
guardrails:
  rules:
    - { id: pii-in-text, sources: [input, tool_output], match: { pii: [email] }, action: redact }
`;

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({ tenants: { acme: { policy: 'pii' } }, extra: { config: { policies: { dir: policyDir({ 'pii.yaml': PII_POLICY }), watch: false } } } });
});
afterAll(async () => {
  await tp?.stop();
});

// Open (2026-12-07): remove `.fails` once an input redact rule holds for items the browser writes.
it.fails('a typed email on the data channel does not stay in the conversation the model reads', async () => {
  const { call } = await placeCall(tp, 'acme');
  // What the model was given for each response of the call.
  const seen: string[] = [];
  call.connection!.setBrain((ctx) => {
    seen.push(JSON.stringify(ctx.items));
    return defaultBrain(ctx);
  });
  say(call, 'my email is bob@example.com, note it');
  await until(() => call.dataChannel.filter((e) => e['type'] === 'response.done').length >= 1, 'the first answer');
  // A later turn: the sideband read the typed item long before.
  say(call, 'say:noted');
  await until(() => call.dataChannel.filter((e) => e['type'] === 'response.done').length >= 2, 'the second answer');
  expect(seen).toHaveLength(2);
  expect(seen[1]).not.toContain('bob@example.com');
});
