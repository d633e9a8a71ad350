import type { Logger } from 'pino';
import type { Decision, GuardrailContext, GuardrailEvent, GuardrailLogger } from './api.js';
import type { CompiledCustom } from './compile.js';
import type { Action } from './matchers.js';
import { decodeTags } from './normalize.js';
import type { FallbackAction } from './schema.js';

/**
 * A custom guardrail's verdict after validation, fallbacks applied. Only a `redact` carries text
 * (its replacement); `via` says how the verdict came about (reported in logs).
 */
export type CustomVerdict =
  | { readonly action: 'redact'; readonly text: string; readonly via: 'verdict' }
  | { readonly action: Exclude<'allow' | Action, 'redact'>; readonly text: null; readonly via: 'verdict' | 'timeout' | 'error' };

const ACTIONS = new Set(['allow', 'log', 'redact', 'block', 'cancel_response', 'end_session']);

/** The decision as a verdict, or null when malformed. Reading it runs the guardrail's getters: it may throw. */
function normalize(d: unknown): CustomVerdict | null {
  if (typeof d !== 'object' || d === null) return null;
  const action = (d as { action?: unknown }).action;
  if (typeof action !== 'string' || !ACTIONS.has(action)) return null;
  if (action === 'redact') {
    const text = (d as { text?: unknown }).text;
    return typeof text === 'string' ? { action: 'redact', text, via: 'verdict' } : null;
  }
  return { action: action as Exclude<CustomVerdict['action'], 'redact'>, text: null, via: 'verdict' };
}

function fallback(action: FallbackAction, via: 'timeout' | 'error'): CustomVerdict {
  return { action, text: null, via };
}

class Ctx implements GuardrailContext {
  readonly sessionId: string;
  readonly tenantId: string;
  readonly model: string;
  readonly policy: string;
  readonly options: Readonly<Record<string, unknown>>;
  readonly log: GuardrailLogger;
  readonly state: Map<string, unknown>;
  #controller: AbortController | null = null;

  constructor(base: CustomSessionInfo, c: CompiledCustom, state: Map<string, unknown>) {
    this.sessionId = base.sessionId;
    this.tenantId = base.tenantId;
    this.model = base.model;
    this.policy = base.policy;
    this.options = c.options;
    this.log = base.log;
    this.state = state;
  }

  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  /**
   * The guardrail's listeners run on a task of their own: Node reports a listener's throw as an
   * uncaught exception, and with no frame of the proxy's code on its stack (the bound native
   * `abort` adds none) the process's fault handler can tell it is the guardrail's and go on
   * (src/server/process-faults.ts).
   */
  abort(): void {
    const controller = this.#controller;
    if (controller) setImmediate(AbortController.prototype.abort.bind(controller), new Error('guardrail deadline passed'));
  }
}

export interface CustomSessionInfo {
  readonly sessionId: string;
  readonly tenantId: string;
  readonly model: string;
  readonly policy: string;
  readonly log: Logger;
}

/**
 * Logs a guardrail's failure with what it threw. The thrown value is the guardrail's own object:
 * its getters may throw inside pino's error serializer, and then it is logged by its type alone.
 */
function warnFailure(log: Logger, id: string, err: unknown, msg: string): void {
  try {
    log.warn({ guardrail: id, err }, msg);
  } catch {
    log.warn({ guardrail: id, err: { type: typeof err, unreadable: true } }, msg);
  }
}

/** The decision as a verdict; a malformed one, or one whose getters throw, is null. Never throws. */
function readDecision(d: unknown): CustomVerdict | null {
  try {
    return normalize(d);
  } catch {
    return null;
  }
}

/** Whether the answer is a Promise-like; one whose `then` getter throws is not (it is then read as a decision). */
function thenable(result: unknown): result is PromiseLike<unknown> {
  try {
    return isThenable(result);
  } catch {
    return false;
  }
}

/**
 * The event a guardrail is given: as it is, or, when its text holds hidden tag characters, with
 * `decodedText` (their ASCII reading) beside it. Until 2026-12-06 guardrails got the raw text only,
 * in which an instruction written in tag characters is invisible (the rules read it since that day).
 */
function withDecodedTags(event: GuardrailEvent): GuardrailEvent {
  const decoded = decodeTags(event.text);
  return decoded === null ? event : { ...event, decodedText: decoded };
}

/**
 * Runs one custom guardrail. A synchronous answer comes back synchronously; a Promise is raced
 * against the deadline (`onTimeout` when it passes, the guardrail's signal is aborted). A throw,
 * a rejection or a malformed decision (one whose getters throw included) gives `onError`. Never
 * throws, and a Promise it returns always settles by the deadline.
 */
export function runCustom(
  c: CompiledCustom,
  event: GuardrailEvent,
  info: CustomSessionInfo,
  state: Map<string, unknown>,
): CustomVerdict | Promise<CustomVerdict> {
  const ctx = new Ctx(info, c, state);
  let result: Decision | Promise<Decision>;
  try {
    result = c.guardrail.evaluate(withDecodedTags(event), ctx);
  } catch (err) {
    warnFailure(info.log, c.id, err, 'custom guardrail threw');
    return fallback(c.onError, 'error');
  }
  if (!thenable(result)) {
    const v = readDecision(result);
    if (v) return v;
    info.log.warn({ guardrail: c.id }, 'custom guardrail returned an invalid decision');
    return fallback(c.onError, 'error');
  }
  return new Promise<CustomVerdict>((resolve) => {
    const timer = setTimeout(() => {
      ctx.abort();
      info.log.warn({ guardrail: c.id, timeoutMs: c.timeoutMs }, 'custom guardrail timed out');
      resolve(fallback(c.onTimeout, 'timeout'));
    }, c.timeoutMs);
    // Adopting a thenable runs its `then`: a throwing one rejects, handled below.
    Promise.resolve(result).then(
      (d) => {
        clearTimeout(timer);
        const v = readDecision(d);
        if (!v) info.log.warn({ guardrail: c.id }, 'custom guardrail returned an invalid decision');
        resolve(v ?? fallback(c.onError, 'error'));
      },
      (err: unknown) => {
        clearTimeout(timer);
        warnFailure(info.log, c.id, err, 'custom guardrail failed');
        resolve(fallback(c.onError, 'error'));
      },
    );
  });
}

export function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
