import type { Logger } from 'pino';
import type { JsonObject } from '../pipeline/frame.js';
import type { CompiledPolicy } from '../policies/compile.js';
import { applyLocks, lockedSessionUpdate, startingSession } from '../policies/locks.js';
import { applySessionUpdate } from '../protocol/session-update.js';
import { checkSessionConfig } from '../policies/session-config-check.js';
import { checkPromptPrefix, instructionsTokens } from '../policies/truncation.js';
import { ProxyError } from '../protocol/errors.js';
import { asObject, asObjectOrEmpty, asString } from '../protocol/json.js';

/** The model a call or secret runs when the request names none (OpenAI's default). */
export const DEFAULT_CALL_MODEL = 'gpt-realtime';

export interface GovernedSession {
  /** The session config to send upstream (`type: realtime`, model, locked fields, clamp). */
  readonly session: JsonObject;
  readonly model: string;
  /** Lock fields that were rewritten (for the log; never content). */
  readonly rewritten: readonly string[];
  /** Guardrail rules that matched the config and let it through (log, redact): for the log, never content. */
  readonly guardrails: readonly { readonly rule: string; readonly action: string }[];
}

/**
 * A requested session config (client secret, WebRTC call, SIP accept) after the tenant's policy:
 * the same locks as a WebSocket session.update (src/policies/locks.ts) on what the request set,
 * and the locked start state of a WebSocket session for what it left out (a call's browser talks
 * to the upstream over its data channel, so the config itself must carry the locks), the
 * guardrail rules and custom guardrails a session.update
 * meets (`checkSessionConfig`), and `max_output_tokens` clamped to the tenant limit.
 */
export async function governSession(
  raw: unknown,
  policy: CompiledPolicy,
  maxOutputTokens: (model: string) => number | null,
  who: { readonly tenantId: string; readonly log: Logger },
): Promise<GovernedSession | ProxyError> {
  if (raw !== undefined && raw !== null && asObject(raw) === null) return new ProxyError('invalid_request', { message: 'session must be an object.', param: 'session', close: null });
  const session: JsonObject = structuredClone(asObject(raw) ?? {});
  const type = session['type'] ?? 'realtime';
  if (type !== 'realtime') return new ProxyError('invalid_request', { message: "Only session.type 'realtime' is supported for calls and client secrets.", param: 'session.type', close: null });
  session['type'] = 'realtime';
  if (session['model'] === undefined) session['model'] = DEFAULT_CALL_MODEL;
  if (typeof session['model'] !== 'string' || session['model'] === '') return new ProxyError('invalid_request', { message: 'session.model must be a non-empty string.', param: 'session.model', close: null });

  const locks = policy.locks;
  const hold = policy.holdSpokenInput !== null;
  // A voice the request does not name: the lock's default (the API's default voice is not known here
  // and may be outside the lock). Allowed by construction, so judging it below refuses nothing.
  if (locks.voice) {
    const audio = asObject(session['audio']) ?? {};
    const output = asObject(audio['output']) ?? {};
    if (output['voice'] === undefined) session['audio'] = { ...audio, output: { ...output, voice: locks.voice.default ?? locks.voice.allow[0]! } };
  }

  // What the request set is judged as a client session.update is: a reject lock refuses it, a
  // rewrite fixes it. (Only what it set: a field it left out is never its violation.)
  const violations = applyLocks(session, 'session', locks, policy.truncation.upstream, hold);
  const refused = violations.find((v) => v.mode !== 'rewrite');
  if (refused) {
    const code = refused.field === 'model' ? 'model_not_allowed' : 'session_locked';
    return new ProxyError(code, { message: `${refused.reason} (policy ${policy.name}).`, param: refused.param, close: null, details: { field: refused.field, policy: policy.name } });
  }
  // What it left out is what the upstream starts with (its defaults, as a WebSocket session's start
  // assumes them: locks.ts startingSession, with audio output), locked as that start is: the
  // config carries every lock itself (tool_choice, a pinned prompt, tracing, transcription, ...).
  const filled = lockedSessionUpdate(applySessionUpdate({ ...startingSession(), output_modalities: ['audio'] }, session), policy);
  const governed = filled === null ? session : applySessionUpdate(session, filled);
  // A lock that fixes the instructions is sent even when they equal the assumed default (""), so
  // the upstream's own default instructions never run.
  if (locks.instructions?.locked !== undefined && governed['instructions'] === undefined) governed['instructions'] = locks.instructions.locked;

  // With a truncation budget, the instructions and tools every response of the session reads fit
  // its share (src/policies/truncation.ts INSTRUCTIONS_SHARE), as a session.update's must: what the
  // policy alone sets (locked instructions) is the operator's and never refused.
  const budget = policy.truncation.budget;
  if (budget) {
    const refused = checkPromptPrefix(budget, { instructions: instructionsTokens(locks.instructions?.locked), tools: 0 }, governed, 'session', null);
    if (refused) return refused;
  }

  // The guardrail rules a WebSocket session.update meets (instructions, prompt variables, tools).
  const model = asString(governed['model']) ?? DEFAULT_CALL_MODEL;
  const { findings, refusal } = await checkSessionConfig(policy, governed, { sessionId: '', tenantId: who.tenantId, model, policy: policy.name, log: who.log });
  if (refusal) return refusal;

  const limit = maxOutputTokens(model);
  if (limit !== null) {
    const requested = governed['max_output_tokens'];
    if (typeof requested !== 'number' || requested > limit) governed['max_output_tokens'] = limit;
  }
  const rewritten = [...violations.map((v) => v.field), ...(filled === null ? [] : lockedFields(filled))];
  return { session: governed, model, rewritten: [...new Set(rewritten)], guardrails: findings.map((f) => ({ rule: f.id, action: f.action })) };
}

/** The lock fields a locked start update sets (named as applyLocks names its violations; a voice is filled before, never here). */
function lockedFields(update: JsonObject): string[] {
  const fields = Object.keys(update).filter((k) => k !== 'type' && k !== 'audio');
  const audio = asObject(update['audio']);
  const input = asObject(audio?.['input']);
  if (input?.['transcription'] !== undefined) fields.push('input_transcription');
  if (input?.['turn_detection'] !== undefined) fields.push('turn_detection');
  return fields;
}

/**
 * A SIP call's media starts at its accept, and its sideband attaches after: a response the
 * server started in between (server VAD) would reach the caller unguarded and unmetered. So the
 * call is accepted with `create_response` off, and the sideband, once attached, turns it back on
 * (`restore`, null when there is nothing to turn back: turn detection off, or responses already
 * held, as a policy that holds spoken turns holds them). Until 2026-12-05 the call was accepted
 * with responses on.
 */
export function withResponsesHeld(session: Readonly<Record<string, unknown>>): { accept: Record<string, unknown>; restore: Record<string, unknown> | null } {
  const audio = asObjectOrEmpty(session['audio']);
  const input = asObjectOrEmpty(audio['input']);
  const turn = input['turn_detection'];
  // Off (null), or already holding responses: the call starts as governed.
  if (turn === null) return { accept: { ...session }, restore: null };
  // Absent: the upstream's default, server VAD answering every turn.
  const detection: Record<string, unknown> = { ...(asObject(turn) ?? { type: 'server_vad' }) };
  if (detection['create_response'] === false) return { accept: { ...session }, restore: null };
  const held = { ...detection, create_response: false };
  return {
    accept: { ...session, audio: { ...audio, input: { ...input, turn_detection: held } } },
    restore: { type: 'realtime', audio: { input: { turn_detection: { ...detection, create_response: true } } } },
  };
}
