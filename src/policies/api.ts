/**
 * The API for guardrails written in code. A policy names a module under `policies/`:
 *
 * ```ts
 * import { defineGuardrail } from 'realtime-governance-proxy/policies';
 * export default defineGuardrail({
 *   name: 'no-refund-promises',
 *   wants: ['output'],
 *   evaluate(event) {
 *     return /we will refund/i.test(event.text) ? { action: 'cancel_response', reason: 'refund_promise' } : { action: 'allow' };
 *   },
 * });
 * ```
 *
 * `evaluate` runs on the proxy's hot path: return synchronously unless the policy entry sets
 * `mode: blocking` (the direction pauses until the Promise settles or the deadline passes) or
 * `mode: parallel` (the frame passes at once; a late verdict can still cancel the response).
 * A guardrail that throws, rejects or times out gets the policy's `onError` / `onTimeout` action;
 * it never takes the proxy down.
 */

export type GuardrailSource = 'input' | 'output' | 'tool_call' | 'tool_output' | 'image';

export interface GuardrailEvent {
  readonly source: GuardrailSource;
  /** The Realtime event type the text came from. */
  readonly eventType: string;
  /**
   * The text under evaluation. For a streamed delta (`final: false`) this is the recent window
   * (earlier text of the same stream, then the delta); for a complete text it is the whole text.
   */
  readonly text: string;
  /** The new text of a streamed delta, or null for complete texts. */
  readonly delta: string | null;
  /** True for complete texts (items, `.done` / `.completed` events), false for streamed deltas. */
  readonly final: boolean;
  readonly responseId: string | null;
  readonly itemId: string | null;
  /** tool_call: the function name. */
  readonly functionName: string | null;
  /**
   * Set by the proxy only when `text` holds hidden Unicode tag characters (U+E0020–U+E007E outside
   * an emoji flag: invisible on screen, read by models as ASCII, "ASCII smuggling"): `text` with
   * them read as the ASCII they encode, everything else as it is. Absent otherwise. An instruction
   * written in them is invisible in `text`: a guardrail that looks for words should read
   * `event.decodedText ?? event.text` (or both). A JSON text's `\u` escapes are not decoded.
   */
  readonly decodedText?: string;
}

export type Decision =
  | { readonly action: 'allow' }
  | { readonly action: 'log' | 'block' | 'cancel_response' | 'end_session'; readonly reason?: string }
  /** Replace the evaluated text (the delta for streamed events) with `text`. */
  | { readonly action: 'redact'; readonly text: string; readonly reason?: string };

export interface GuardrailLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface GuardrailContext {
  /** Empty for a session config decided before any session exists (a client secret minted, a WebRTC or SIP call created). */
  readonly sessionId: string;
  readonly tenantId: string;
  readonly model: string;
  readonly policy: string;
  /** The `options` of the policy entry. */
  readonly options: Readonly<Record<string, unknown>>;
  /** Aborted when the deadline passes (pass it to fetch and the like). */
  readonly signal: AbortSignal;
  readonly log: GuardrailLogger;
  /** Scratch space kept for the session (per guardrail). */
  readonly state: Map<string, unknown>;
}

export interface GuardrailDefinition {
  readonly name: string;
  /** Sources it evaluates when the policy entry does not list `sources`. */
  readonly wants: readonly GuardrailSource[];
  /** Also call it for streamed deltas (default false: complete texts only). */
  readonly streaming?: boolean;
  evaluate(event: GuardrailEvent, ctx: GuardrailContext): Decision | Promise<Decision>;
}

const GUARDRAIL_MARK: unique symbol = Symbol.for('realtime-proxy.guardrail');

export type DefinedGuardrail = GuardrailDefinition & { readonly [GUARDRAIL_MARK]: true };

export function defineGuardrail(def: GuardrailDefinition): DefinedGuardrail {
  if (typeof def.name !== 'string' || def.name.length === 0) throw new TypeError('defineGuardrail: name is required');
  if (typeof def.evaluate !== 'function') throw new TypeError('defineGuardrail: evaluate must be a function');
  return Object.freeze({ ...def, [GUARDRAIL_MARK]: true as const });
}

export function isDefinedGuardrail(v: unknown): v is DefinedGuardrail {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[GUARDRAIL_MARK] === true;
}
