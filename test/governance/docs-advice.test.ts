import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_PATHS } from '../../src/policies/content-paths.js';
import { policyDir } from '../policies/support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { govUpstream, until, type GovUpstream, type Json } from './support.js';

/**
 * The advice policies/README.md gives for keeping an input rule off the tenant's own tool
 * definitions (an `events:` list), taken from the README itself: a rule limited that way still
 * reads every path user text takes. Found 2026-12-05: the advised list left out `response.create`,
 * so typed text in `response.input[]` (in the conversation or out of band) passed the rule.
 */
const README = readFileSync(new URL('../../policies/README.md', import.meta.url), 'utf8');
const advised = (): string[] => {
  const at = README.indexOf('An input rule therefore also sees');
  const line = README.slice(at).match(/events:[^[]*\[([^\]]+)\]/);
  if (at < 0 || !line) throw new Error('policies/README.md: the events: advice is gone');
  return line[1]!.split(',').map((s) => s.trim());
};

let up: GovUpstream;
let tp: TestProxy;
beforeAll(async () => {
  up = await govUpstream([]);
  const policy = `
guardrails:
  rules:
    - id: scoped
      sources: [input]
      events: [${advised().join(', ')}]
      match: { phrases: ["transfer money"] }
      action: block
`;
  tp = await startTestProxy({
    tenants: { acme: { policy: 'p' } },
    config: { upstream: { provider: 'openai', url: up.url, apiKey: 'sk-test' }, policies: { dir: policyDir({ 'p.yaml': policy }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
  await up?.close();
});

describe('policies/README.md: the advised events: list for input rules', () => {
  it('names every event that carries user input, and leaves out only the session configuration (session.update, the preview transcription_session.update) and the translation sessions\' transcript', () => {
    // Where user input first crosses the proxy: every client event with content, and the transcripts
    // of what users say (the upstream's items repeat texts already judged on these paths).
    const inputTypes = CONTENT_PATHS.filter((p) => p.direction === 'client' || p.sources === 'input').map((p) => p.type);
    const leftOut = inputTypes.filter((t) => !advised().includes(t));
    expect(leftOut.sort()).toEqual(['session.input_transcript.delta', 'session.update', 'transcription_session.update']);
    for (const t of advised()) expect(inputTypes, t).toContain(t);
  });

  it('a rule limited that way still refuses typed user text in response.create input, in the conversation and out of band', async () => {
    const before = up.received.length;
    const c = await tp.client({ tenant: 'acme' });
    await c.next('session.created');
    await until(() => up.received.length > before, 'upstream');
    const upstream = up.received[before]!;
    const user = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'please transfer money to account 7' }] };
    c.send({ type: 'conversation.item.create', event_id: 'e_item', item: user });
    c.send({ type: 'response.create', event_id: 'e_in', response: { input: [user] } });
    c.send({ type: 'response.create', event_id: 'e_oob', response: { conversation: 'none', output_modalities: ['text'], input: [user] } });
    // Control: the session's own tool definitions are not read by the rule.
    c.send({ type: 'session.update', event_id: 'e_tools', session: { type: 'realtime', tools: [{ type: 'function', name: 'transfer_money', description: 'Transfers money.', parameters: { type: 'object' } }] } });
    // The update leaves with the proxy's event_id (Conversation.stamp): it is known by its tool.
    const toolsUpdate = (e: Json): boolean => e['type'] === 'session.update' && JSON.stringify(e['session']).includes('"transfer_money"');
    await until(() => upstream.some(toolsUpdate) && c.ofType('error').length >= 3, 'three refusals and the session update');
    expect(c.ofType('error').map((e) => [(e['error'] as Json)['code'], (e['error'] as Json)['event_id']])).toEqual([
      ['guardrail_blocked', 'e_item'],
      ['guardrail_blocked', 'e_in'],
      ['guardrail_blocked', 'e_oob'],
    ]);
    expect(JSON.stringify(upstream)).not.toContain('account 7');
    c.close();
  });
});
