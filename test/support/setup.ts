/**
 * Runs before every test file (vitest.config.ts `setupFiles`).
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeEach, expect } from 'vitest';
import { observeSentEvents } from '../../src/simulator/index.js';
import { serverEventViolations, type ContractViolation } from '../contract/server-events.js';

// A test that makes no assertion cannot fail for the reason its name gives.
beforeEach(() => {
  expect.hasAssertions();
});

// The simulator is held to the SDK: every event it sends in this file's tests is validated against
// the `openai` package's server event types (test/contract/server-events.ts). A violation fails the
// file; the counts go to the directory test/contract/global-setup.ts created, for its summary.
const contractDir = process.env['RTPROXY_SIM_CONTRACT_DIR'];
if (contractDir) {
  const counts = new Map<string, number>();
  const violations = new Map<string, ContractViolation>();
  const stop = observeSentEvents((event) => {
    const type = String((event as { type?: unknown }).type);
    counts.set(type, (counts.get(type) ?? 0) + 1);
    if (violations.size >= 200) return; // a byte budget: the first 200 distinct problems are plenty
    for (const v of serverEventViolations(event)) {
      const key = `${v.type}: ${v.problem}`;
      if (!violations.has(key)) violations.set(key, v);
    }
  });
  afterAll(() => {
    stop();
    const file = expect.getState().testPath ?? 'unknown';
    appendFileSync(
      join(contractDir, `${process.pid}.jsonl`),
      `${JSON.stringify({ file, counts: Object.fromEntries(counts), violations: [...violations.values()] })}\n`,
    );
    // Fails this file (a failed afterAll hook fails the run; a globalTeardown error would not).
    if (violations.size > 0) {
      const list = [...violations.values()].slice(0, 20).map((v) => `${v.type}: ${v.problem}\n  ${JSON.stringify(v.event).slice(0, 300)}`);
      throw new Error(`The simulator sent events that do not match the openai SDK's types:\n${list.join('\n')}`);
    }
  });
}
