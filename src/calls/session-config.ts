import type { Logger } from 'pino';
import type { JsonObject } from '../pipeline/frame.js';
import type { CompiledPolicy } from '../policies/compile.js';
import { applyLocks } from '../policies/locks.js';
import { checkSessionConfig } from '../policies/guardrails.js';
import { ProxyError } from '../protocol/errors.js';
import { asObject, asString } from '../protocol/json.js';

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
 * the same locks as a WebSocket session.update (src/policies/locks.ts), applied to the request
 * plus every locked field it left out (a secret may be used without the proxy, so the minted
 * config itself must carry the locks), the guardrail rules and custom guardrails a session.update
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

  // Locked fields the request left out get their defaults first, so that applyLocks fixes them too.
  const locks = policy.locks;
  const added: string[] = [];
  const fill = (key: string, value: unknown) => {
    if (session[key] === undefined) {
      session[key] = value;
      added.push(key);
    }
  };
  if (locks.instructions) fill('instructions', '');
  if (locks.outputModalities) fill('output_modalities', ['audio']);
  if (locks.tracing && locks.tracing.value !== null) fill('tracing', null);
  if (policy.truncation.upstream !== undefined) fill('truncation', 'auto');
  const hold = policy.holdSpokenInput !== null;
  if (locks.voice || locks.inputTranscription || hold) {
    const audio = asObject(session['audio']) ?? {};
    session['audio'] = audio;
    if (locks.voice) {
      const output = asObject(audio['output']) ?? {};
      audio['output'] = output;
      if (output['voice'] === undefined) output['voice'] = locks.voice.default ?? locks.voice.allow[0]!;
    }
    if (locks.inputTranscription) {
      const input = asObject(audio['input']) ?? {};
      audio['input'] = input;
      if (!input['transcription']) input['transcription'] = null;
    }
    if (hold) {
      // Held spoken turns: the server must not start responses itself (the upstream default is server VAD with create_response on).
      const input = asObject(audio['input']) ?? {};
      audio['input'] = input;
      if (input['turn_detection'] === undefined) input['turn_detection'] = { type: 'server_vad' };
    }
  }

  const violations = applyLocks(session, 'session', locks, policy.truncation.upstream, hold);
  // Fails closed, as on a WebSocket: only an explicit rewrite is applied.
  const refused = violations.find((v) => v.mode !== 'rewrite');
  if (refused) {
    const code = refused.field === 'model' ? 'model_not_allowed' : 'session_locked';
    return new ProxyError(code, { message: `${refused.reason} (policy ${policy.name}).`, param: refused.param, close: null, details: { field: refused.field, policy: policy.name } });
  }
  // Defaults that no lock changed are not sent: the upstream's own defaults stay in force.
  for (const key of added) {
    const v = session[key];
    if (v === '' || v === null || v === 'auto' || (Array.isArray(v) && v.length === 1 && v[0] === 'audio')) delete session[key];
  }

  // The guardrail rules a WebSocket session.update meets (instructions, prompt variables, tools).
  const model = asString(session['model']) ?? DEFAULT_CALL_MODEL;
  const { findings, refusal } = await checkSessionConfig(policy, session, { sessionId: '', tenantId: who.tenantId, model, policy: policy.name, log: who.log });
  if (refusal) return refusal;

  const limit = maxOutputTokens(model);
  if (limit !== null) {
    const requested = session['max_output_tokens'];
    if (typeof requested !== 'number' || requested > limit) session['max_output_tokens'] = limit;
  }
  return { session, model, rewritten: [...new Set(violations.map((v) => v.field))], guardrails: findings.map((f) => ({ rule: f.id, action: f.action })) };
}
