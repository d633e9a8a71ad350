import { describe, expect, it } from 'vitest';
import { policyFrom } from '../../test/policies/support.js';
import { callRelock } from './locks.js';

/**
 * Written against the mutants of callRelock's prompt allowlist (twenty-third session, b) that survived
 * their tests (test/mutation/open-survivors.md, "twenty-third (b)").
 */
describe('callRelock under a prompt lock that pins none (an allowlist only)', () => {
  it('takes out a prompt outside the allowlist; leaves an allowed one, none and null alone', async () => {
    const policy = await policyFrom('locks:\n  prompt: { allow: [{ id: pmpt_support, versions: ["2"] }] }');
    expect(callRelock({ type: 'realtime', prompt: { id: 'pmpt_other' } }, policy)).toEqual({ update: { type: 'realtime', prompt: null }, cannot: null });
    expect(callRelock({ type: 'realtime', prompt: { id: 'pmpt_support', version: '1' } }, policy)).toEqual({ update: { type: 'realtime', prompt: null }, cannot: null });
    expect(callRelock({ type: 'realtime', prompt: { id: 'pmpt_support', version: '2' } }, policy)).toEqual({ update: null, cannot: null });
    expect(callRelock({ type: 'realtime', prompt: null }, policy)).toEqual({ update: null, cannot: null });
    expect(callRelock({ type: 'realtime' }, policy)).toEqual({ update: null, cannot: null });
  });

  it('without a prompt lock a prompt stays', async () => {
    const policy = await policyFrom('locks:\n  toolChoice: { allow: [auto, none] }');
    expect(callRelock({ type: 'realtime', prompt: { id: 'pmpt_any' } }, policy)).toEqual({ update: null, cannot: null });
  });
});
