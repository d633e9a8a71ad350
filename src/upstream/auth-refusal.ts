import type { Logger } from 'pino';
import { ProxyError } from '../protocol/errors.js';

/**
 * The upstream refusing the *proxy's own* credentials (its API key, organization or project):
 * rotated, revoked, a project's key deleted. OpenAI's error names the key as it masks it ("Incorrect
 * API key provided: sk-proj-****…WXYZ.": prefix, last four, length), and its code `invalid_api_key`
 * is the proxy's own code for "the tenant's key is not valid". Tenants never see either: every path
 * that meets such a refusal (an `error` event or close reason on a session or a call's sideband, an
 * HTTP answer on the calls routes; a refused WebSocket handshake carries only its status already)
 * answers `upstream_rejected` with UPSTREAM_CREDENTIALS_MESSAGE, and logs the upstream's detail.
 * (Until 2026-12-06 the upstream's error was relayed as it came.) The tenant's credentials never
 * reach the upstream, so any such refusal is about the proxy's.
 */

/** OpenAI's codes for a refused credential, organization or project (an `error` event's or body's `error.code`). */
const AUTH_CODES: ReadonlySet<string> = new Set(['invalid_api_key', 'invalid_organization', 'mismatched_organization', 'invalid_project', 'mismatched_project', 'account_deactivated']);
/** OpenAI's error types for the same (`error.type`). */
const AUTH_TYPES: ReadonlySet<string> = new Set(['authentication_error', 'permission_error']);

export const UPSTREAM_CREDENTIALS_MESSAGE = "The Realtime upstream refused the proxy's own credentials; the proxy's operator must fix its upstream key.";

/** What is logged of the upstream's refusal: short names, and its message cut to 200 characters. */
export interface UpstreamAuthDetail {
  readonly status: number | null;
  readonly code: string | null;
  readonly type: string | null;
  readonly message: string | null;
}

const token = (v: unknown): string | null => (typeof v === 'string' && /^[\w.-]{1,100}$/.test(v) ? v : null);

/** The `error` object of an upstream error event or error body: its detail when it refuses the proxy's credentials, else null. */
export function authRefusalOf(error: unknown, status: number | null = null): UpstreamAuthDetail | null {
  const e = error !== null && typeof error === 'object' && !Array.isArray(error) ? (error as Record<string, unknown>) : null;
  const code = token(e?.['code']);
  const type = token(e?.['type']);
  const byStatus = status === 401 || status === 403;
  if (!byStatus && !(code !== null && AUTH_CODES.has(code)) && !(type !== null && AUTH_TYPES.has(type))) return null;
  const message = typeof e?.['message'] === 'string' ? (e['message'] as string).slice(0, 200) : null;
  return { status, code, type, message };
}

/** An HTTP answer of the upstream (the calls routes): its detail when it refuses the proxy's credentials (401, 403, or such an error body), else null. */
export function authRefusalOfReply(status: number, body: Buffer | string): UpstreamAuthDetail | null {
  let error: unknown = null;
  try {
    const text = typeof body === 'string' ? body : body.subarray(0, 64 * 1024).toString('utf8');
    const parsed: unknown = JSON.parse(text);
    error = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>)['error'] : null;
  } catch {
    error = null;
  }
  const refusal = authRefusalOf(error, status);
  // A 2xx never refuses; a body naming an auth code on another status does.
  return status >= 200 && status < 300 ? null : refusal;
}

/** A WebSocket close reason the upstream sends with such a refusal (OpenAI: `invalid_request_error.invalid_api_key`). */
export function authRefusalOfCloseReason(reason: string): UpstreamAuthDetail | null {
  const parts = reason.split('.');
  const code = parts.at(-1) ?? '';
  const type = parts.length > 1 ? parts[0]! : null;
  if (!AUTH_CODES.has(code) && !(type !== null && AUTH_TYPES.has(type))) return null;
  return { status: null, code: token(code), type: token(type), message: null };
}

/**
 * What the tenant gets instead: `upstream_rejected` with a fixed message (close 4101 on a session;
 * HTTP 502 on a route, `close` null). Not the catalogue's 1011: the `openai` SDK's `reconnect: true`
 * retries 1011 (up to 5 times per session), and every retry meets the same refused key until the
 * operator fixes it (OpenAI itself closes such a session with 3000, not retried). `details.status`
 * names the upstream's HTTP status when there was one (as for a refused handshake).
 */
export function upstreamAuthRejected(detail: UpstreamAuthDetail, close?: null): ProxyError {
  return new ProxyError('upstream_rejected', {
    message: UPSTREAM_CREDENTIALS_MESSAGE,
    ...(detail.status !== null ? { details: { status: detail.status } } : {}),
    close: close === null ? null : 'upstreamCredentialsRefused',
  });
}

/** Logs such a refusal (error level, `upstream_auth_refused`): the operator's only view of the upstream's detail. `fields`: where it happened. */
export function logUpstreamAuthRefused(log: Logger, detail: UpstreamAuthDetail, fields: Record<string, string> = {}): void {
  log.error(
    { event: 'upstream_auth_refused', ...fields, upstreamStatus: detail.status, upstreamCode: detail.code, upstreamType: detail.type, upstreamMessage: detail.message },
    "the Realtime upstream refused the proxy's own credentials",
  );
}
