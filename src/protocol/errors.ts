import type { RealtimeErrorEvent } from 'openai/resources/realtime/realtime';

/**
 * Close codes the proxy sends. Policy and budget ends use 4xxx so that clients with automatic
 * reconnect (openai `reconnect: true` retries 1001/1005/1006/1011/1012/1013) do not silently
 * reopen a session the proxy ended on purpose.
 */
export const CloseCode = {
  normal: 1000,
  /** Only relayed from upstream (`session_expired`), never chosen by the proxy for a policy end. */
  goingAway: 1001,
  messageTooBig: 1009,
  internalError: 1011,
  serviceRestart: 1012,
  tryAgainLater: 1013,
  badRequest: 4000,
  unauthorized: 4001,
  limitExceeded: 4002,
  policyViolation: 4003,
  slowConsumer: 4008,
  /** The upstream closed with an application code (4001–4999) that would collide with the proxy's own; its code is in the error event's details. */
  upstreamApplication: 4100,
  /**
   * The upstream refused the proxy's *own* credentials (`upstream_rejected`, src/upstream/auth-refusal.ts):
   * the operator must fix the upstream key, so no retry can succeed (1011 would be retried by the SDK;
   * 4001 would say the tenant's key is wrong).
   */
  upstreamCredentialsRefused: 4101,
} as const;
export type CloseCodeName = keyof typeof CloseCode;

export type ErrorType = 'invalid_request_error' | 'server_error' | 'rate_limit_error' | 'policy_error';

interface CatalogueEntry {
  readonly type: ErrorType;
  /** HTTP status when the error is answered before the WebSocket upgrade. */
  readonly http?: number;
  /** Close the session after the error event, with this close code. Absent: the session continues. */
  readonly close?: CloseCodeName;
  readonly message: string;
  /**
   * A spending limit (or the ledger that keeps them) refuses new responses now: a turn the refused
   * `response.create` stood for is not answered by the proxy's own create either (it would be refused
   * or cancelled the same way).
   */
  readonly refusesResponses?: true;
}

/** The stable error codes the proxy itself emits (upstream errors pass through untouched). */
export const ErrorCatalogue = {
  missing_api_key: { type: 'invalid_request_error', http: 401, close: 'unauthorized', message: 'No proxy API key was provided (Authorization: Bearer, api-key header, or the openai-insecure-api-key subprotocol).' },
  invalid_api_key: { type: 'invalid_request_error', http: 401, close: 'unauthorized', message: 'The proxy API key is not valid.' },
  invalid_request: { type: 'invalid_request_error', http: 400, close: 'badRequest', message: 'The connection request is not valid.' },
  headers_too_large: { type: 'invalid_request_error', http: 431, close: 'badRequest', message: 'The request headers exceed the size limit.' },
  invalid_json: { type: 'invalid_request_error', message: 'The frame is not valid JSON.' },
  invalid_event: { type: 'invalid_request_error', message: 'The frame is not a Realtime event.' },
  frame_too_large: { type: 'invalid_request_error', message: 'The frame exceeds the maximum frame size and was not relayed.' },
  upstream_unavailable: { type: 'server_error', http: 502, close: 'tryAgainLater', message: 'The Realtime upstream could not be reached.' },
  upstream_rejected: { type: 'server_error', http: 502, close: 'internalError', message: 'The Realtime upstream refused the connection.' },
  upstream_closed: { type: 'server_error', close: 'internalError', message: 'The Realtime upstream closed the connection unexpectedly.' },
  upstream_timeout: { type: 'server_error', close: 'internalError', message: 'The Realtime upstream stopped answering.' },
  upstream_protocol_violation: { type: 'server_error', close: 'internalError', message: 'The Realtime upstream went past a bound the proxy keeps; the session was ended.' },
  upstream_backpressure: { type: 'server_error', close: 'slowConsumer', message: 'The client sends faster than the upstream accepts.' },
  slow_consumer: { type: 'server_error', close: 'slowConsumer', message: 'The client does not read events fast enough.' },
  server_shutting_down: { type: 'server_error', http: 503, close: 'serviceRestart', message: 'The proxy is restarting; reconnect to continue.' },
  overloaded: { type: 'server_error', http: 503, close: 'tryAgainLater', message: 'The proxy is at capacity.' },
  memory_budget_exceeded: { type: 'server_error', http: 429, message: 'The proxy is holding too much data for all sessions; the frame was not relayed. Retry shortly.' },
  internal_error: { type: 'server_error', message: 'The proxy failed to process the event.' },
  budget_exceeded: { type: 'rate_limit_error', http: 429, refusesResponses: true, message: 'The tenant cost budget is exhausted.' },
  budget_unavailable: { type: 'server_error', http: 503, refusesResponses: true, message: 'The budget ledger is unavailable; new responses are refused.' },
  too_many_responses: { type: 'rate_limit_error', message: 'Too many responses are running on this session; the response.create was not sent upstream.' },
  token_limit_exceeded: { type: 'rate_limit_error', refusesResponses: true, message: 'The session token limit is reached.' },
  session_duration_exceeded: { type: 'rate_limit_error', close: 'limitExceeded', refusesResponses: true, message: 'The session reached its maximum duration.' },
  concurrent_sessions_exceeded: { type: 'rate_limit_error', http: 429, close: 'limitExceeded', refusesResponses: true, message: 'The tenant has too many concurrent sessions.' },
  client_secrets_exceeded: { type: 'rate_limit_error', http: 429, message: 'The tenant holds too many unexpired client secrets; retry when one expires.' },
  unknown_model_price: { type: 'invalid_request_error', http: 400, close: 'badRequest', message: 'The model has no configured price.' },
  model_retired: { type: 'invalid_request_error', http: 400, close: 'badRequest', message: 'The model has been shut down by OpenAI; use its successor.' },
  max_output_tokens_clamped: { type: 'invalid_request_error', message: 'max_output_tokens was lowered to the tenant limit.' },
  max_output_tokens_exceeded: { type: 'invalid_request_error', message: 'The response asked for more output tokens than the tenant limit and was cancelled.' },
  invalid_value: { type: 'invalid_request_error', message: 'A parameter has a value the proxy does not accept.' },
  function_call_pruned: {
    type: 'invalid_request_error',
    message: 'The function call this output answers was deleted from the conversation to keep it within the context budget; the output was not relayed.',
  },
  context_budget_exceeded: { type: 'invalid_request_error', http: 400, message: 'The instructions, tools and prompt variables a response would read exceed their share of the context budget.' },
  governance_failed: { type: 'server_error', http: 500, close: 'policyViolation', message: 'The upstream refused a setting the proxy enforces; the session cannot be governed.' },
  guardrail_blocked: { type: 'policy_error', http: 403, message: 'The event was blocked by a guardrail policy.' },
  guardrail_redacted: { type: 'policy_error', message: 'Part of the event was redacted by a guardrail policy.' },
  response_cancelled_by_policy: { type: 'policy_error', message: 'The response was cancelled by a guardrail policy.' },
  policy_violation: { type: 'policy_error', close: 'policyViolation', message: 'The session was ended by a guardrail policy.' },
  session_locked: { type: 'policy_error', http: 403, message: 'The session setting is locked by policy.' },
  model_not_allowed: { type: 'policy_error', http: 403, close: 'badRequest', message: 'The model is not allowed for this tenant.' },
  // Browser and phone calls (src/calls).
  invalid_client_secret: { type: 'invalid_request_error', http: 401, close: 'unauthorized', message: 'The client secret was not minted by this proxy, has expired, or the key that minted it was revoked.' },
  call_not_found: { type: 'invalid_request_error', http: 404, close: 'badRequest', message: 'No call with this id belongs to this tenant.' },
  call_sockets_exceeded: { type: 'rate_limit_error', http: 429, close: 'limitExceeded', message: 'The call has as many client sockets (?call_id=) as allowed.' },
  invalid_webhook: { type: 'invalid_request_error', http: 400, message: 'The webhook signature, timestamp or body is not valid.' },
  calls_store_unavailable: { type: 'server_error', http: 503, close: 'tryAgainLater', message: 'The calls store is unavailable; retry shortly.' },
  transfer_not_allowed: { type: 'policy_error', http: 403, message: "The call's route does not allow a transfer to this target." },
  transfer_in_progress: { type: 'invalid_request_error', http: 409, message: 'A transfer of this call is already in progress; wait for its answer.' },
  call_accepted_by_proxy: {
    type: 'invalid_request_error',
    http: 409,
    message:
      "The proxy accepts and rejects SIP calls by its routes (calls.sip.routes): this call is already accepted and governed. Do not accept or reject it: attach your sideband (wss://<proxy>/v1/realtime?call_id=<id>, your tenant key) and send your session config there; end the call with /hangup.",
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ProxyErrorCode = keyof typeof ErrorCatalogue;

export interface ProxyErrorOptions {
  readonly message?: string;
  readonly param?: string | null;
  /** The client event that caused the error (echoed as `error.event_id`). */
  readonly eventId?: string | null;
  /** Override or suppress the catalogue's close behaviour. */
  readonly close?: CloseCodeName | null;
  /** Small machine-readable facts for the client (cap, reset time, rule id). Never content. */
  readonly details?: Readonly<Record<string, string | number | boolean | null>>;
}

/** A proxy-originated failure. It is data: filters return it in verdicts, they never throw it. */
export class ProxyError {
  readonly code: ProxyErrorCode;
  readonly type: ErrorType;
  readonly message: string;
  readonly param: string | null;
  readonly eventId: string | null;
  readonly closeCode: number | null;
  readonly httpStatus: number;
  readonly details: Readonly<Record<string, string | number | boolean | null>> | null;
  /** See `CatalogueEntry.refusesResponses`. */
  readonly refusesResponses: boolean;

  constructor(code: ProxyErrorCode, options: ProxyErrorOptions = {}) {
    const entry: CatalogueEntry = ErrorCatalogue[code];
    this.code = code;
    this.type = entry.type;
    this.refusesResponses = entry.refusesResponses === true;
    this.message = options.message ?? entry.message;
    this.param = options.param ?? null;
    this.eventId = options.eventId ?? null;
    const close = options.close === undefined ? entry.close : options.close;
    this.closeCode = close ? CloseCode[close] : null;
    this.httpStatus = entry.http ?? 500;
    this.details = options.details ?? null;
  }

  get closesSession(): boolean {
    return this.closeCode !== null;
  }

  /** Close reason: the code, trimmed to the 123 bytes a close frame allows. */
  get closeReason(): string {
    return this.code.slice(0, 123);
  }

  /** The body of an HTTP error answer (before an upgrade, and the HTTP routes): OpenAI's `{error: {...}}` shape. */
  toHttpBody(): { error: Omit<ProxyErrorBody, 'event_id'> } {
    const error: Omit<ProxyErrorBody, 'event_id'> = { type: this.type, code: this.code, message: this.message, param: this.param };
    if (this.details) error.details = this.details;
    return { error };
  }

  toEvent(eventId: string): ProxyErrorEvent {
    // The HTTP body's fields, with the client's event_id before `details` (wire order kept).
    const { details, ...head } = this.toHttpBody().error;
    const error: ProxyErrorBody = { ...head, event_id: this.eventId };
    if (details) error.details = details;
    return { type: 'error', event_id: eventId, error };
  }

  /** The same fields as a notice (`policies.notices: event`): see ProxyNoticeEvent. */
  toNotice(eventId: string): ProxyNoticeEvent {
    const { error } = this.toEvent(eventId);
    return { type: NOTICE_EVENT_TYPE, event_id: eventId, notice: error };
  }
}

/**
 * How the client hears of something the proxy did to an event it forwarded, or to the server stream,
 * without refusing anything the client sent (a lock's rewrite, a redaction, a clamp, a response
 * cancelled by policy): `event` (default) sends a NOTICE_EVENT_TYPE event; `error` an `error` event
 * (the behaviour until 2026-12-07); `off` nothing. A refusal or a session end is always an `error`.
 */
export type NoticeMode = 'event' | 'error' | 'off';

/**
 * A type no Realtime event has, so both SDKs pass it by: `openai`'s OpenAIRealtimeWS emits it under
 * its own type (no listener, no effect) and `@openai/agents-realtime` parses it as a generic event
 * (`transport_event` only). An `error` event makes either throw in an app without an error listener
 * (ERR_UNHANDLED_ERROR, an unhandled rejection): OpenAI never sends one for a valid event.
 */
export const NOTICE_EVENT_TYPE = 'rtproxy.notice';

/** The wire shape of a notice: the `error` event's fields under `notice`. */
export interface ProxyNoticeEvent {
  type: typeof NOTICE_EVENT_TYPE;
  event_id: string;
  notice: ProxyErrorBody;
}

interface ProxyErrorBody {
  type: ErrorType;
  code: ProxyErrorCode;
  message: string;
  param: string | null;
  event_id: string | null;
  details?: Readonly<Record<string, string | number | boolean | null>>;
}

/** The wire shape: a Realtime `error` event every client library already handles. */
export interface ProxyErrorEvent {
  type: 'error';
  event_id: string;
  error: ProxyErrorBody;
}

// Compile-time proof that the proxy's error event is a valid Realtime error event.
type AssertAssignable<T extends U, U> = T;
export type _ProxyErrorIsRealtimeError = AssertAssignable<ProxyErrorEvent, RealtimeErrorEvent>;
