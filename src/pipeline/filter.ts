import type { Logger } from 'pino';
import type { ConversationView, ItemMark } from '../protocol/conversation.js';
import type { ProxyError } from '../protocol/errors.js';
import type { RealtimeClientEvent, RealtimeServerEvent } from '../protocol/events.js';
import type { Tenant } from '../tenants/tenant.js';
import type { AudioCounters } from './audio-meter.js';
import type { Frame } from './frame.js';
import type { Report } from './reports.js';

/** The `by` of the `session.update` carrying a client secret's config (SessionContext.secretSession). */
export const CLIENT_SECRET_UPDATE = 'client_secret';

/**
 * The `by` of what a SIP call's governing sideband sends to turn its held responses back on (a
 * `session.update`, and a `response.create` for a turn spoken meanwhile: src/calls ResponsesHold).
 * No filter's name: it passes every filter (SessionChain.inject).
 */
export const CALL_FIRST_UPDATE = 'call_first_update';

/** `client`: client → upstream. `server`: upstream → client. */
export type Direction = 'client' | 'server';

/**
 * What a filter decides for one frame.
 * - continue: pass the frame (possibly already replaced by an earlier filter) to the next filter.
 * - replace: forward `frame` instead (built with `Frame.fromEvent`).
 * - drop: forward nothing, tell nobody (the filter has informed whoever needs to know).
 * - reject: forward nothing; the client receives `error` (the session continues).
 * - close: forward nothing; the client receives `error`, then both sockets close.
 */
export type Verdict =
  | { readonly kind: 'continue' }
  | { readonly kind: 'replace'; readonly frame: Frame }
  | { readonly kind: 'drop' }
  | { readonly kind: 'reject'; readonly error: ProxyError }
  | { readonly kind: 'close'; readonly error: ProxyError };

export const CONTINUE: Verdict = Object.freeze({ kind: 'continue' });
export const DROP: Verdict = Object.freeze({ kind: 'drop' });
export const replace = (frame: Frame): Verdict => ({ kind: 'replace', frame });
export const reject = (error: ProxyError): Verdict => ({ kind: 'reject', error });
export const closeWith = (error: ProxyError): Verdict => ({ kind: 'close', error });

/**
 * The event types a filter inspects per direction; `'*'` means every type; `{ allBut }` every type
 * except those listed (e.g. telemetry skips audio frames, which the relay accounts for itself).
 * Compiled once.
 */
export type WantedTypes = readonly string[] | '*' | { readonly allBut: readonly string[] };
export interface Wants {
  readonly client?: WantedTypes;
  readonly server?: WantedTypes;
  /**
   * Types a session's filter sees only while it asks for them (`SessionContext.watch`), e.g.
   * metering drops input audio while a cap is spent. Declared here, so which filter may ever see
   * which type stays a static fact; until asked, those frames skip the filter (audio is relayed
   * without building a Frame).
   */
  readonly onRequest?: { readonly client?: readonly string[]; readonly server?: readonly string[] };
}

export interface Clock {
  /** Monotonic milliseconds (sub-ms precision). */
  now(): number;
  /** Wall-clock epoch milliseconds. */
  wall(): number;
}

export interface CloseInfo {
  /** Who ended the session first. */
  readonly initiator: 'client' | 'upstream' | 'proxy';
  readonly code: number;
  readonly reason: string;
}

/**
 * What a call's earlier sidebands used toward the per-session limits (src/calls: kept per call in the
 * call store, so that a call taken over by another instance does not start them afresh).
 */
export interface CarriedUsage {
  /** Proxy wall clock (epoch ms) when the call was bound: `maxSessionDurationSec` runs from it. */
  readonly startedAtWallMs: number;
  /** Settled tokens the call's earlier sidebands counted: `maxSessionTokens` counts on from them. */
  readonly tokens: number;
  /** The session's settled tokens (the carried ones included), after each settle. Never throws. */
  settled(tokens: number): void;
  /**
   * The call had a sideband before this one (taken over from an instance that crashed or handed it
   * over): this one's session.created shows what the call became since, changes made while nobody
   * governed it included, not the config the proxy created it with. Absent: a call starting now.
   */
  readonly takenOver?: boolean;
  /**
   * Asked as the session ends: true when the call goes on under another instance's sideband (handed
   * over at shutdown, or claimed by it), whose admission takes the call's concurrency slot over by its
   * token; the slot is left in the ledger (Ledger.leaveSlot), not given back. Until 2026-12-07 it was
   * given back, and until the next instance claimed the call the tenant's limit did not count it
   * (test/calls/adversary-handover-slot.test.ts). Absent: false.
   */
  readonly slotGoesOn?: () => boolean;
}

/** What a filter may do to its session. Filters never see sockets. */
export interface SessionContext {
  readonly id: string;
  readonly tenant: Tenant;
  /** The model from the client URL (`?model=`), or '' for `intent=transcription` / `call_id` sessions. */
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  /** The WebRTC/SIP call this session is a sideband of, or null for a plain WebSocket session. */
  readonly callId?: string | null;
  /**
   * A client's own socket on a call the proxy governs through its sideband (`?call_id=` with
   * `calls.enabled`): the sideband meters, records and acts for the call; this session only relays
   * (and holds back) for its own client. Decided once, where the session is made (src/server).
   */
  readonly watchesGovernedCall?: boolean;
  /**
   * The client authenticated with a proxy client secret: its governed session config (src/calls), else
   * null. The relay sends it upstream first, as a `session.update` injected by `CLIENT_SECRET_UPDATE`.
   */
  readonly secretSession?: Readonly<Record<string, unknown>> | null;
  /** A call's sideband: the call's usage toward the per-session limits so far (metering carries it on); else null. */
  readonly carried?: CarriedUsage | null;
  /**
   * The admission this session opens with (ChainTemplate.admit's ticket): what the factories' `admit`
   * took for it (a concurrent-session slot) is the session's to claim in `create`. Null or absent: a
   * session admitted by nobody here (it holds nothing).
   */
  readonly admission?: AdmissionTicket | null;
  readonly startedAt: number;
  readonly clock: Clock;
  readonly log: Logger;
  /**
   * Audio the relay forwarded, counted by the relay (audio frames reach only the filters that
   * name their types in `wants`): read at boundaries, never per frame.
   */
  readonly audio: AudioCounters;
  /**
   * The conversation as the relay core knows it (items, responses, origins, usage, marks),
   * updated once per control event before the filters see it. Read it instead of re-deriving it.
   */
  readonly conversation: ConversationView;
  /** Records a governance fact on an item (redacted, blocked, cancelled, deleted) in the conversation view. */
  markItem(itemId: string, mark: ItemMark): void;
  /**
   * A fresh `event_id` for an event the proxy creates or completes (notices, injected events, a
   * client create that came without one): one scheme per session, `event_proxy_<session>_<n>`.
   * What leaves upstream with one adds 48 random bits (`_<12 hex>`): a client cannot predict it.
   */
  nextEventId(): string;
  /**
   * Send an event to the upstream that no client sent (e.g. `response.cancel`). Skips the chain,
   * but for a `response.create` or `session.update`: those pass the client filters after `by`
   * first (Filter.onClient's `injectedBy` names `by`), then leave. A create is reserved by metering
   * or refused over a cap (the client gets the error; since 2026-12-06, until then the spoken-turn
   * hold's create left unreserved). An update counts in metering (clamped, priced) and truncation
   * from the moment it leaves, as a client's does, and no filter refuses it (since 2026-12-07; until
   * then metering met the locks', guardrails' and a SIP call's updates only at their session.updated).
   */
  sendUpstream(event: RealtimeClientEvent, by: string): void;
  /** Send an event to the client that the upstream did not send (e.g. held text). Skips the chain. */
  sendClient(event: RealtimeServerEvent, by: string): void;
  /**
   * Tell the client what the proxy did to an event it forwarded (rewritten, redacted, clamped) or to
   * the server stream (an item removed, a response stopped), refusing nothing the client sent: as
   * `policies.notices` says (a `rtproxy.notice` event by default). Never for a refusal (a `reject`
   * verdict) or a session end (`close`): those are `error` events, as OpenAI's are. Skips the chain.
   */
  notify(notice: ProxyError, by: string): void;
  /** End the session: error event to the client, then close both sides. */
  close(error: ProxyError): void;
  /**
   * A timer of this session (unref'd; clear it with clearTimeout). Its callback runs outside the
   * chain, so it is guarded like a handler: a throw is logged and ends this session
   * (`internal_error`), never another session or the process.
   */
  setTimer(ms: number, fn: () => void): NodeJS.Timeout;
  /** Publish a governance fact to every filter's `onReport`. */
  report(report: Report): void;
  /**
   * Stop a response now: sends `response.cancel` upstream, tells the client `notice` (`notify`; a
   * closing one ends the session instead), and from here on the relay forwards none of that
   * response's output (audio, text, transcripts, item content) to the client. Its `response.done` still runs through the
   * filters (so usage is metered) and reaches the client with status `cancelled` and the output
   * text blanked. Idempotent per response id.
   */
  cancelResponse(responseId: string, by: string, notice: ProxyError): void;
  /** True when `cancelResponse` was called for this response id. */
  isSuppressed(responseId: string): boolean;
  /**
   * Starts (`on`) or stops routing frames of `type` to the filter named `filter`; the type must be
   * in that factory's `wants.onRequest[direction]` (else this throws: a programming error).
   */
  watch(filter: string, direction: Direction, type: string, on: boolean): void;
}

/**
 * A per-session concern. Handlers run synchronously when they return a Verdict; a handler that
 * returns a Promise pauses its direction (later frames queue in order) until it settles.
 * Handlers MUST NOT throw; a throw is logged, reported, and treated per the factory's `failMode`.
 */
export interface Filter {
  /**
   * Once, when the session starts: before the upstream is dialled and before any client event,
   * so what a filter sends upstream here is what the upstream reads first (the locked state).
   */
  onStart?(): void;
  /**
   * A client event on its way upstream. `injectedBy`: the filter (or relay part) that made it
   * (`sendUpstream`: a response.create or session.update passes the filters after its sender),
   * null (or absent) for the client's own. The proxy's own session config is no client's request:
   * a filter that refuses or rewrites client updates by policy (locks, guardrails, truncation's
   * share) lets it through; one that must know what the upstream will run (metering) still counts
   * and clamps it.
   */
  onClient?(frame: Frame, injectedBy?: string | null): Verdict | Promise<Verdict>;
  onServer?(frame: Frame): Verdict | Promise<Verdict>;
  onReport?(report: Report): void;
  /**
   * The client left while the upstream is still open (only when the relay may linger: metering on).
   * A filter that must read what the upstream does with what the client already sent (a turn server
   * VAD may still commit, a response it may start) may send events upstream now and answer true from
   * `awaitingUpstream` until it has read them: the relay keeps reading the upstream, to no client,
   * until no filter awaits anything and no response runs, or `metering.lingerAfterClientCloseMs`.
   */
  onClientGone?(): void;
  awaitingUpstream?(): boolean;
  /**
   * The upstream ended the session (its socket closed, with a close frame or without): before the
   * client is told, what the filter still holds back for the client is settled as at the end of the
   * upstream's stream (guardrails: a translation session's held transcripts, as at `session.closed`).
   * An error ends the session with it instead of the upstream's close; null lets the end go on.
   * Not called once the session ended (the proxy's or the client's close came first), nor while an
   * upstream frame is with a filter deciding on it or queued (its verdict never comes: held stays held).
   */
  onUpstreamEnd?(): ProxyError | null;
  /**
   * The upstream closed the session with `code` (after `onUpstreamEnd` let the end go on): a filter
   * that can learn why elsewhere (src/calls: a call the proxy ended from another process) answers a
   * promise of the error the session ends with instead of the upstream's close (null: the close goes
   * on as it came). The first filter, in chain order, that answers one is waited for; the promise
   * must settle within a bound of the filter's and never reject. Null or absent: nothing to learn.
   */
  onUpstreamClosed?(code: number): Promise<ProxyError | null> | null;
  /** The single cleanup point: cancel timers, settle reservations, end spans. */
  onClose?(info: CloseInfo): void;
  /** Facts merged into the session-end log line (totals, counts). Called once, after `onClose`. */
  summary?(): Readonly<Record<string, string | number | boolean | null>>;
}

/** Built once at boot from validated config; `create` runs once per session. */
export interface FilterFactory {
  readonly name: string;
  readonly wants: Wants;
  /** On a throwing handler: `open` forwards the frame, `closed` (default) rejects it. */
  readonly failMode?: 'open' | 'closed';
  /**
   * Runs before the upgrade is accepted (after authentication), in chain order. A ProxyError
   * refuses the session (e.g. concurrent-session cap, unknown model price); `{ model }` admits it
   * with the model rewritten (an alias to its successor): later factories and the upstream dial
   * see the new model. May be async.
   */
  admit?(request: AdmissionRequest): Admission | Promise<Admission>;
  /**
   * An admission that will not open a session (its client left, the proxy filled up while it was
   * being admitted, or a later factory refused it): what `admit` took for `request.ticket` (a
   * concurrent-session slot) goes back now. At most once per ticket, whatever the calls: a ticket
   * already withdrawn, or claimed by `create`, gives back nothing.
   */
  withdraw?(request: AdmissionRequest): void;
  create(ctx: SessionContext): Filter;
}

/** Refuse (ProxyError), admit as asked (null), or admit with another model. */
export type Admission = ProxyError | null | { readonly model: string };

/** What an upgrade (or a call) asks admission for. */
export interface AdmissionAsk {
  readonly tenant: Tenant;
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  /**
   * The ledger token of one of the tenant's concurrent-session slots the ask holds already: a call's
   * offer (or incoming SIP call), whose slot was taken at its check (MeteringModule.holdSlot). Its
   * admission takes that slot over (the session holds it from here: the holder hands it over, see
   * SessionSlotHold) rather than taking another beside it. Absent: it holds none.
   */
  readonly holdsSlot?: string;
}

/**
 * One admission, by object identity. What a factory's `admit` takes (a concurrent-session slot) is
 * kept under the ticket, never under the tenant, and goes back by that ticket only: claimed by the
 * session made with it (SessionContext.admission), or given back by `withdraw`. Until 2026-12-07
 * slots were parked per tenant, and an upgrade of the tenant that had taken none (failMode open, the
 * ledger down) claimed or gave back another's: the tenant ran one session over maxConcurrentSessions
 * (test/metering/redteam-18-slot-ticket.test.ts).
 */
export class AdmissionTicket {
  // A private member makes the type nominal: no object literal stands in for a ticket.
  readonly #nominal = undefined;
}

/** An ask under admission, with its ticket (what every factory's `admit` and `withdraw` get). */
export interface AdmissionRequest extends AdmissionAsk {
  readonly ticket: AdmissionTicket;
}
