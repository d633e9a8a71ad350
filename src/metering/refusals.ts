import { reject, type Verdict } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { firstHit, type Amount, type CapHit, type TenantStatus } from './ledger.js';
import { formatUsd } from './money.js';
import type { MeteringRuntime } from './runtime.js';

export function invalidOutputLimit(reason: string, eventId: string | null, param: string): Verdict {
  return reject(new ProxyError('invalid_value', { message: `max_output_tokens must be a whole number of at least 1 or "inf": ${reason}.`, param, eventId }));
}

function capDetails(hit: CapHit): Record<string, string | number | null> {
  const usd = hit.cap.endsWith('_usd');
  const fmt = (n: number) => (usd ? formatUsd(n) : n);
  return {
    cap: hit.cap,
    period: hit.period.key.slice(2),
    limit: fmt(hit.limit),
    spent: fmt(hit.spent),
    reserved: fmt(hit.reserved),
    unit: usd ? 'USD' : 'tokens',
    resetsAt: new Date(hit.period.resetsAt).toISOString(),
  };
}

export function budgetError(hit: CapHit, options: { eventId?: string | null; close?: boolean; param?: string } = {}): ProxyError {
  const what = hit.cap.endsWith('_usd') ? 'cost' : 'token';
  const when = hit.period.kind === 'day' ? 'daily' : 'monthly';
  return new ProxyError('budget_exceeded', {
    message: `The tenant ${when} ${what} budget is exhausted (resets ${new Date(hit.period.resetsAt).toISOString()}).`,
    eventId: options.eventId ?? null,
    details: capDetails(hit),
    ...(options.param ? { param: options.param } : {}),
    ...(options.close ? { close: 'limitExceeded' as const } : {}),
  });
}

const NOTHING: Amount = { nanos: 0, tokens: 0 };

/** The first cap whose settled spend alone has reached its limit (reservations not counted). */
export function spentCap(s: TenantStatus): CapHit | null {
  return firstHit(s.day, s.month, NOTHING, NOTHING, 'remaining');
}

/**
 * Whether `model` can be a session's model: a realtime price (per token, every modality), not retired.
 * A transcription model's price (per minute, or per token without audio output) prices no response:
 * until 2026-12-07 `?model=whisper-1` was admitted and its responses cost $0 against every cap
 * (src/metering/filter.test.ts "refuses a transcription model as the session's model").
 */
export function pricedForSessions(rt: MeteringRuntime, model: string): boolean {
  return rt.prices.retired(model) === null && rt.prices.lookup(model)?.price.kind === 'realtime';
}

export function unpricedError(model: string, rt: MeteringRuntime, options: { eventId?: string | null; param?: string; close?: null } = {}): ProxyError {
  const successor = model ? rt.prices.retired(model) : null;
  if (successor !== null) {
    return new ProxyError('model_retired', {
      message: `The model "${model}" has been shut down by OpenAI; use "${successor}" instead.`,
      details: { model, successor },
      ...options,
    });
  }
  if (model && rt.prices.lookup(model)?.price.kind === 'transcription') {
    return new ProxyError('unknown_model_price', {
      message: `The model "${model}" is priced as a transcription model: a session's model needs a realtime price.`,
      details: { model, kind: 'transcription' },
      ...options,
    });
  }
  return new ProxyError('unknown_model_price', { message: `No price is configured for model "${model || '(unknown)'}".`, ...options });
}
