import type { ProxyErrorCode } from '../protocol/errors.js';
import type { Direction } from './filter.js';

/**
 * Governance facts that concerns publish inside a session so that other concerns (telemetry, logs,
 * metering) can record them without coupling to each other. Reports carry ids, codes and numbers,
 * never transcript or audio content.
 */
export type Report =
  | {
      readonly kind: 'verdict';
      readonly filter: string;
      readonly direction: Direction;
      readonly eventType: string;
      readonly verdict: 'replace' | 'drop' | 'reject' | 'close';
      readonly code: string | null;
    }
  | { readonly kind: 'filter_error'; readonly filter: string; readonly direction: Direction; readonly eventType: string }
  | { readonly kind: 'injected'; readonly direction: Direction; readonly eventType: string; readonly by: string }
  /**
   * The relay sent a client `response.create` upstream (after every filter) with this `event_id`:
   * the key of `ResponseView.createEventId` and of an upstream `error` about it. Creates leave in
   * the order the client sent them.
   */
  | { readonly kind: 'create_sent'; readonly eventId: string }
  /**
   * The upstream refused a `response.create` the proxy injected (SessionChain.inject: metering
   * reserved it), this `event_id`: the relay keeps the error from the client and the chain, so this
   * tells the filters that no response will start for it.
   */
  | { readonly kind: 'injected_create_refused'; readonly eventId: string }
  /**
   * The relay sent a client event of a stamped type (`Conversation.stamps`) upstream, after every
   * filter, with this `event_id` of the proxy's in place of the client's own (`clientEventId`, null
   * when it sent none). An upstream `error` about the event names `eventId`; one naming the
   * client's own id is about some other event. Stamped events leave in the order the client sent them.
   */
  | { readonly kind: 'stamped'; readonly eventType: string; readonly eventId: string; readonly clientEventId: string | null }
  /** The upstream refused an event the proxy injected (`by` = the filter): governance failed for the session. */
  | { readonly kind: 'injected_error'; readonly eventType: string; readonly by: string; readonly code: string }
  | {
      readonly kind: 'usage';
      readonly responseId: string;
      readonly model: string;
      /** Cost of this response in micro-dollars (USD × 1e6), integer. */
      readonly costMicros: number;
      readonly inputTokens: number;
      readonly outputTokens: number;
      readonly cachedTokens: number;
      readonly source: 'response' | 'transcription';
    }
  | {
      readonly kind: 'budget';
      readonly action: 'refused' | 'cancelled' | 'clamped' | 'ended' | 'ledger_unavailable';
      readonly scope: 'tenant' | 'session';
      readonly limit: string;
      /** The error code the client was given (`budget_exceeded`, `token_limit_exceeded`, `model_retired`, …). */
      readonly code: ProxyErrorCode;
      readonly responseId: string | null;
    }
  | {
      readonly kind: 'guardrail';
      readonly policyId: string;
      readonly policyVersion: string;
      readonly ruleId: string;
      readonly action: 'log' | 'redact' | 'block' | 'cancel_response' | 'end_session';
      readonly source: 'input' | 'output' | 'tool_input' | 'tool_output' | 'session';
      /**
       * The direction of the event the finding was on: `client` for what this session's client sent,
       * `server` for what the upstream sent (a transcript, model output, a call's session or browser
       * item), which every socket on a call reads alike. Timers of a held turn are `server`.
       */
      readonly direction: Direction;
      readonly responseId: string | null;
      /** Proxy time from the offending frame's arrival to the verdict being applied, in ms. */
      readonly decisionMs: number;
    }
  /**
   * `direction`: of the event the lock acted on: `client` for what this session's client sent,
   * `server` for what the upstream sent (a call's session.updated, an item or tool call on a call),
   * which every socket on a call reads alike.
   */
  | { readonly kind: 'lock'; readonly field: string; readonly action: 'rewritten' | 'rejected'; readonly direction: Direction }
  /** An event (or item, content part) type the guardrails' content-path table does not know, and what the policy did with it. */
  | { readonly kind: 'unknown_content'; readonly direction: Direction; readonly action: 'pass' | 'block' }
  | {
      readonly kind: 'prune';
      readonly itemIds: readonly string[];
      readonly tokensBefore: number;
      readonly tokensAfter: number;
    }
  | { readonly kind: 'backpressure'; readonly direction: Direction; readonly state: 'paused' | 'resumed' }
  /** The upstream WebSocket opened, `ms` after the dial started (proxy clock). */
  | { readonly kind: 'upstream_connected'; readonly ms: number }
  /**
   * Proxy processing time of one relayed frame, `ms` from the socket read to the socket write
   * (proxy clock). Sampled by the relay (e.g. one frame in 64 per direction); feeds telemetry.
   */
  | { readonly kind: 'relay_latency'; readonly direction: Direction; readonly ms: number }
  /**
   * The relay forwarded the first output audio of a response (one report per response; the audio
   * frames themselves reach no filter). Byte counts: SessionContext.audio.
   */
  | { readonly kind: 'output_audio_started'; readonly responseId: string; readonly at: number }
  /** The first `input_audio_buffer.append` after `SessionContext.audio.watchInputStart()`. */
  | { readonly kind: 'input_audio_started'; readonly at: number };

export type ReportKind = Report['kind'];
