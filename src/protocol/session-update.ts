import type { JsonObject } from '../pipeline/frame.js';
import { asObject } from './json.js';

/**
 * `session` as the upstream holds it once `update` (a `session.update` body) is applied: members
 * replaced, and inside `audio` each of `input` and `output` member by member (a partial update
 * leaves the others alone).
 */
export function applySessionUpdate(session: JsonObject, update: JsonObject): JsonObject {
  // Built by spreading (own data properties): a client's `__proto__` member stays a member.
  const out: JsonObject = { ...session, ...Object.fromEntries(Object.entries(update).filter(([key]) => key !== 'audio')) };
  const audio = asObject(update['audio']);
  if (audio) {
    const merged: JsonObject = { ...(asObject(session['audio']) ?? {}) };
    for (const side of ['input', 'output']) {
      const part = asObject(audio[side]);
      if (part) merged[side] = { ...(asObject(merged[side]) ?? {}), ...part };
    }
    out['audio'] = merged;
  }
  return out;
}
