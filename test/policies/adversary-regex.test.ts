import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRegex } from '../../src/policies/regex-safety.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Adversarial review (policy loading): a careless but screen-approved regex against hostile client text.
 *
 * The pattern is an everyday unanchored e-mail pattern. The safety screen accepts it (no nested
 * quantifiers, the two repeats are separated by a mandatory, disjoint `@`), yet on a run of word
 * characters with no `@` each start position runs the first repeat to the end of the window and backs
 * off: quadratic in the window (`maxInputChars`, 16384 by default), on the relay's single thread.
 * Every session of the process waits meanwhile.
 */
const CARELESS = { pattern: '[\\w.+-]+@[\\w-]+\\.\\w+', flags: 'i' };
const POLICY = `
guardrails:
  rules:
    - id: no-emails
      sources: [input]
      match: { regex: [{ pattern: ${JSON.stringify(CARELESS.pattern)}, flags: ${CARELESS.flags} }] }
      action: block
`;
/** The brief's bound: one client event must not stall the event loop longer than this. */
const MAX_STALL_MS = 50;

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'careless' } },
    config: { policies: { dir: policyDir({ 'careless.yaml': POLICY }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

/**
 * The longest event-loop stall (ms) while one user text of `chars` word characters is judged and
 * relayed: the longest gap between ticks of a 5 ms interval timer (perf_hooks' histogram drops the
 * samples of a long block), counted in the CPU time this process spent in it when that is less
 * than the wall time. The proxy runs in this process: a block it makes costs its CPU; a gap the
 * machine makes (the process preempted by others: CI runs test files side by side on 2 cores) does
 * not. Until 2026-12-06 it was wall time, and failed at 90 ms under load while the work was ~5 ms.
 */
async function stallOf(chars: number): Promise<{ stallMs: number; answer: Record<string, unknown> }> {
  const c = await tp.client();
  await c.next('session.created');
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  let stallMs = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    const cpu = process.cpuUsage(lastCpu);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    stallMs = Math.max(stallMs, Math.min(now - last, cpuMs) - 5);
    last = now;
    lastCpu = process.cpuUsage();
  }, 5);
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a'.repeat(chars) }] } });
  const answer = await c.waitFor((e) => e.type === 'conversation.item.added' || e.type === 'error', 60_000, 'the item added, or an error');
  clearInterval(tick);
  c.close();
  return { stallMs, answer };
}

/** The text was relayed whole (the rule did not trip). */
function expectRelayed(answer: Record<string, unknown>, chars: number): void {
  expect(answer['type']).toBe('conversation.item.added');
  expect((answer['item'] as { content: { text: string }[] }).content[0]!.text).toHaveLength(chars);
}

describe('adversary: regexes the safety screen accepts', () => {
  it('the careless e-mail pattern passes the load-time screen (precondition)', () => {
    expect(checkRegex(CARELESS.pattern, CARELESS.flags)).toEqual([]);
  });

  it('one 16 KiB hostile user text does not stall the event loop for more than 50 ms under a screened regex', async () => {
    const { stallMs, answer } = await stallOf(16_384);
    // The text had no e-mail address: it is relayed (the rule did not trip).
    expectRelayed(answer, 16_384);
    expect(stallMs).toBeLessThan(MAX_STALL_MS);
  }, 60_000);

  it('one event at the default maxScanChars (1,000,000 characters) does not stall the event loop for more than 50 ms', async () => {
    const { stallMs, answer } = await stallOf(1_000_000);
    // This text costs about the whole scan budget (SCAN_BUDGET_MS of CPU, ~2.0 s measured on this
    // machine alone): relayed whole, or, on a machine slower or busier than that (CI files side by
    // side on 2 cores), refused by the budget's own rule, never a wrong answer. The bench, not this
    // test, judges scanning speed; the bound under test is the stall.
    if (answer['type'] === 'error') expect((answer['error'] as { code: string; details: { rule: string } })).toMatchObject({ code: 'guardrail_blocked', details: { rule: 'scan_limit' } });
    else expectRelayed(answer, 1_000_000);
    expect(stallMs).toBeLessThan(MAX_STALL_MS);
  }, 90_000);
});
