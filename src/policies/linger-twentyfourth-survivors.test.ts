import { describe, expect, it } from 'vitest';
import { policyFrom } from '../../test/policies/support.js';
import { capturedLog } from '../../test/support/captured-log.js';
import { defineGuardrail } from './api.js';
import type { ModuleLoader } from './compile.js';
import { warnGuardrailsOutlastingLinger } from './linger.js';

/**
 * Written against the mutants of linger.ts that survived their tests (twenty-fourth session:
 * test/mutation/open-survivors.md, "twenty-fourth"): the red-team test checked the warning names the
 * setting, not that it says what the operator loses and what to change.
 */

const neverAnswers: ModuleLoader = async () => ({ default: defineGuardrail({ name: 'slow', wants: ['output'], evaluate: () => new Promise(() => {}) }) });

describe('warnGuardrailsOutlastingLinger', () => {
  it('says what a client leaving costs and both ways out, once per guardrail that outlasts the linger', async () => {
    const policy = await policyFrom(
      'guardrails:\n  custom:\n    - { id: slow-check, module: ./slow.mjs, sources: [output], mode: blocking, timeoutMs: 8000 }\n    - { id: quick-check, module: ./slow.mjs, sources: [output], mode: blocking, timeoutMs: 5000 }',
      'test',
      neverAnswers,
    );
    const { log, lines } = capturedLog();
    warnGuardrailsOutlastingLinger(log, policy, 5_000);
    expect(lines.map((l) => [l.level, l['policy'], l['guardrail'], l['timeoutMs'], l['lingerAfterClientCloseMs'], l.msg])).toEqual([
      [
        40,
        'test',
        'slow-check',
        8_000,
        5_000,
        'custom guardrail "slow-check" of policy "test" may pause its direction for 8000 ms (mode blocking), longer than metering.lingerAfterClientCloseMs (5000 ms): ' +
          'a client leaving while it decides has the responses behind it billed at their reservation (worst case), not at their usage; ' +
          "raise metering.lingerAfterClientCloseMs to at least the timeout, or lower the guardrail's timeoutMs",
      ],
    ]);
  });
});
