import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from '../policies/support.js';

/**
 * No single frame holds the event loop for a scan of unbounded length: texts over the policy's
 * `maxScanChars` are neither matched nor handed to custom guardrails; the policy decides whether
 * they are blocked (default) or relayed unscanned. The per-frame time this bounds is measured by
 * bench/security.ts (README, security section).
 */

const RULES = `
  rules:
    - id: no-secrets
      sources: [input]
      match: { phrases: ["open sesame"] }
      action: block
  custom:
    - id: count-calls
      module: ./count.mjs
      sources: [input]
`;
const COUNT = `
import { defineGuardrail } from '${new URL('../../src/policies/api.ts', import.meta.url).pathname}';
export default defineGuardrail({ name: 'count-calls', wants: ['input'], evaluate(event) { globalThis.__customCalls = (globalThis.__customCalls ?? 0) + 1; return { action: 'allow' }; } });
`;

describe('guardrail scan limit', () => {
  let dir: string;
  let tp: TestProxy;

  beforeAll(async () => {
    dir = policyDir({
      'strict.yaml': `guardrails:\n  maxScanChars: 4096\n${RULES}`,
      'lenient.yaml': `guardrails:\n  maxScanChars: 4096\n  overScanLimit: pass_unscanned\n${RULES}`,
      'count.mjs': COUNT,
    });
    tp = await startTestProxy({
      tenants: { strict: { policy: 'strict' }, lenient: { policy: 'lenient' } },
      config: { policies: { dir, watch: false } },
    });
  });

  afterAll(async () => {
    await tp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const item = (text: string, id: string) => ({ type: 'conversation.item.create', event_id: id, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  /** The texts of the item creates the upstream got (they carry the proxy's event_ids: Conversation.stamp). */
  const relayedTexts = (conn: { received: readonly { type: string; event: unknown }[] }) =>
    conn.received.filter((r) => r.type === 'conversation.item.create').map((r) => (r.event as { item: { content: { text: string }[] } }).item.content[0]!.text);
  const calls = () => (globalThis as { __customCalls?: number }).__customCalls ?? 0;

  it('block (default): a text over maxScanChars is refused with rule scan_limit, unscanned; shorter texts are scanned as before', async () => {
    const c = await tp.client({ tenant: 'strict' });
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    const before = calls();
    c.send(item('harmless '.repeat(1000), 'evt_long'));
    const err = (await c.next('error'))['error'] as { code: string; event_id: string; details: { rule: string } };
    expect(err).toMatchObject({ code: 'guardrail_blocked', event_id: 'evt_long' });
    expect(JSON.stringify(err.details)).toContain('scan_limit');
    expect(calls()).toBe(before);
    c.send(item('please open sesame', 'evt_short'));
    await c.nth('error', 2);
    expect(calls()).toBe(before + 1);
    c.send(item('hello', 'evt_ok'));
    await c.next('conversation.item.done');
    // Only the short harmless text went up: neither the unscanned long one nor the blocked one.
    expect(relayedTexts(conn)).toEqual(['hello']);
    c.close();
  });

  it('pass_unscanned: the long text is relayed without running rules or custom code, and logged', async () => {
    const c = await tp.client({ tenant: 'lenient' });
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    const before = calls();
    // Contains the blocked phrase, past the limit: relayed because the policy says so.
    c.send(item('open sesame '.repeat(500), 'evt_long'));
    await c.next('conversation.item.done');
    expect(c.ofType('error')).toEqual([]);
    expect(calls()).toBe(before);
    expect(relayedTexts(conn)).toEqual(['open sesame '.repeat(500)]);
    expect(tp.logText()).toContain('scan_limit');
    c.close();
  });
});
