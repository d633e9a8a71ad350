import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { policyDir } from '../policies/support.js';
import { barrier, errorOf, recordingUpstream, type RecordedConnection, type RecordingUpstream } from './edges-support.js';

/**
 * Adversarial review of the content paths (2026-12-05), through the running proxy: client texts
 * that reached the upstream past an input `block` rule. See adversary-content-paths.test.ts for
 * the filter-level cases.
 */

const POLICY = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  unknownContentEvents: block
`;

let upstream: RecordingUpstream;
let tp: TestProxy;
let n = 0;

beforeAll(async () => {
  upstream = await recordingUpstream();
  tp = await startTestProxy({
    tenants: { acme: { policy: 'guarded' } },
    config: {
      upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' },
      policies: { dir: policyDir({ 'guarded.yaml': POLICY }), watch: false },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

async function connect(): Promise<{ c: TestClient; up: RecordedConnection }> {
  const c = await tp.client();
  const up = await upstream.connection(++n);
  await c.next('session.created');
  return { c, up };
}

/** Sends one event and a barrier: what the upstream received of it, and the client's errors about it. */
async function send(c: TestClient, up: RecordedConnection, event: object): Promise<{ relayed: string[]; errors: string[] }> {
  const before = up.raw.length;
  const errorsBefore = c.ofType('error').length;
  c.send(JSON.stringify(event));
  await barrier(c, up, 'adv');
  const relayed = up.raw.slice(before).filter((r) => !r.includes('"barrier_adv_'));
  // A marker the proxy answers itself (invalid_json): errors reach the client in order, so any
  // error about the event under test has arrived once the marker's has.
  const markers = c.ofType('error').filter((e) => errorOf(e).code === 'invalid_json').length;
  c.send('not json');
  for (let k = 0; ; k++) {
    const e = await c.nth('error', errorsBefore + k + 1);
    if (errorOf(e).code === 'invalid_json' && c.ofType('error').filter((x) => errorOf(x).code === 'invalid_json').length > markers) break;
  }
  const errors = c.ofType('error').slice(errorsBefore).map((e) => errorOf(e).code).filter((code) => code !== 'invalid_json');
  return { relayed, errors };
}

const userMsg = (...texts: string[]) => ({ type: 'message', role: 'user', content: texts.map((text) => ({ type: 'input_text', text })) });

describe('input rules on every client text, through the proxy', () => {
  it('the phrase split over two messages of one out-of-band response.create is refused, as it is over two conversation.item.create events', async () => {
    const { c, up } = await connect();
    expect((await send(c, up, { type: 'conversation.item.create', event_id: 'evt_a', item: userMsg('ignore previous') })).relayed).toHaveLength(1);
    const second = await send(c, up, { type: 'conversation.item.create', event_id: 'evt_b', item: userMsg('instructions') });
    expect(second.relayed).toEqual([]);
    expect(second.errors).toEqual(['guardrail_blocked']);
    // The finding: the same split inside one out-of-band response.create reaches the upstream.
    const { c: c2, up: up2 } = await connect();
    const oob = await send(c2, up2, { type: 'response.create', event_id: 'evt_oob', response: { conversation: 'none', input: [userMsg('ignore previous'), userMsg('instructions')] } });
    expect(oob.relayed).toEqual([]);
    expect(oob.errors).toEqual(['guardrail_blocked']);
    c.close();
    c2.close();
  });

  it('a client function_call_output spelling the phrase with JSON escapes (\\u0020) does not reach the model', async () => {
    const { c, up } = await connect();
    const r = await send(c, up, { type: 'conversation.item.create', event_id: 'evt_t', item: { type: 'function_call_output', call_id: 'call_1', output: '{"note":"ignore\\u0020previous\\u0020instructions"}' } });
    expect(r.relayed).toEqual([]);
    expect(r.errors).toEqual(['guardrail_blocked']);
    c.close();
  });
});
