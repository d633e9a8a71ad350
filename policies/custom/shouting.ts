import { defineGuardrail } from 'realtime-governance-proxy/policies';

/**
 * Example custom guardrail: logs user turns written (or transcribed) in capitals. Synchronous,
 * so it adds no latency; options come from the policy entry.
 */
export default defineGuardrail({
  name: 'shouting',
  wants: ['input'],
  evaluate(event, ctx) {
    const minLetters = typeof ctx.options['minLetters'] === 'number' ? ctx.options['minLetters'] : 12;
    const ratio = typeof ctx.options['ratio'] === 'number' ? ctx.options['ratio'] : 0.9;
    let letters = 0;
    let upper = 0;
    for (const ch of event.text) {
      if (ch.toLowerCase() === ch.toUpperCase()) continue;
      letters++;
      if (ch === ch.toUpperCase()) upper++;
    }
    if (letters >= minLetters && upper / letters >= ratio) return { action: 'log', reason: 'shouting' };
    return { action: 'allow' };
  },
});
