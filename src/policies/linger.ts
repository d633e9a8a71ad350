import type { Logger } from 'pino';
import type { CompiledCustom, CompiledPolicy } from './compile.js';

/**
 * The custom guardrails of `policy` that may hold their direction longer than the close linger
 * (`lingerMs`, metering.lingerAfterClientCloseMs; 0: none): `mode: blocking` pauses every frame behind
 * the one it decides on, up to its `timeoutMs`. A client leaving while one decides is given the linger
 * only: when it ends first, the responses whose response.done waited behind the verdict are billed at
 * their reservation (their worst case), not at the usage OpenAI bills. Neither setting is clamped
 * (each is the operator's explicit choice; a guardrail timing out sooner than configured would apply
 * its `onTimeout` to every session's traffic): `run` and `check-config` warn (warnGuardrailsOutlastingLinger).
 */
export function guardrailsOutlastingLinger(policy: CompiledPolicy, lingerMs: number): CompiledCustom[] {
  if (lingerMs <= 0) return [];
  return policy.custom.filter((c) => c.mode === 'blocking' && c.timeoutMs > lingerMs);
}

/** One warning per guardrail of `policy` outlasting the linger (guardrailsOutlastingLinger). */
export function warnGuardrailsOutlastingLinger(log: Logger, policy: CompiledPolicy, lingerMs: number): void {
  for (const c of guardrailsOutlastingLinger(policy, lingerMs)) {
    log.warn(
      { policy: policy.name, guardrail: c.id, timeoutMs: c.timeoutMs, lingerAfterClientCloseMs: lingerMs },
      `custom guardrail "${c.id}" of policy "${policy.name}" may pause its direction for ${c.timeoutMs} ms (mode blocking), longer than metering.lingerAfterClientCloseMs (${lingerMs} ms): ` +
        'a client leaving while it decides has the responses behind it billed at their reservation (worst case), not at their usage; ' +
        'raise metering.lingerAfterClientCloseMs to at least the timeout, or lower the guardrail\'s timeoutMs',
    );
  }
}
