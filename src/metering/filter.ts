import { CONTINUE, DROP, reject, replace, type CloseInfo, type Filter, type SessionContext, type Verdict } from '../pipeline/filter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import { AUDIO_IN, isTranscriptionIntent, type ClientEventOf } from '../protocol/events.js';
import { asObject as obj, asString as str } from '../protocol/json.js';
import { BETA_OUTPUT_LIMIT, exceeds, parseOutputLimit, readOutputLimit, reportedSessionOutputLimit } from '../protocol/limits.js';
import { budgetedInputBytesPerMs } from '../protocol/audio-format.js';
import { add, ConversationEstimate, instructionsEstimate, ITEM_OVERHEAD, NO_TOKENS, promptOf, promptVariablesEstimate, toolsEstimate } from './context.js';
import { firstHit, type Amount, type CapHit, type MaybePromise, type SettledBy, type TenantStatus } from './ledger.js';
import { hasCaps, type EffectiveLimits } from './limits.js';
import { divRound } from './money.js';
import { responseCost, worstCaseOf, type ModalityTokens, type ModelPrice, type PriceLookup } from './pricing.js';
import { LazyMap, LazySet } from '../lazy-collections.js';
import type { Report } from '../pipeline/reports.js';
import { usageProblem } from '../protocol/usage.js';
import { AUDIO_RECHECK_MS } from './tenant-holds.js';
import { budgetError, invalidOutputLimit, pricedForSessions, spentCap, unpricedError } from './refusals.js';
import { reserveFailsOpen, type MeteringRuntime } from './runtime.js';
import { AudioHold } from './audio-hold.js';
import { ItemSizes } from './item-sizes.js';
import { InputTurns, MIN_TURN_MS } from './input-turns.js';
import { estimatedResponseRecord, responseRecord, transcriptionRecord, type RecordOwner } from './usage-records.js';
import { SessionLedger } from './session-ledger.js';
import { SessionTotals } from './session-totals.js';
import { SessionSettings } from './session-settings.js';
import { ResponsesRead } from './responses-read.js';
import { mcpLabelsOf, MCP_OUTPUT, McpTracking } from './mcp-tracking.js';
import { askedTextOnly, clampedBetaOutput, dearerLimit, inputAudioSettings, textOnly } from './session-fields.js';
import { InputTranscriptions, type PendingTranscription, type PricedTranscription } from './transcriptions.js';

/** The filter's name: what it sends, cancels and reports is by it. */
export const BY = 'metering';
/** Dearest shipped prices, used only when a usage arrives for a model the proxy could not price. */
const LAST_RESORT_REALTIME = 'gpt-realtime-2';
const END_GRACE_MS = 3000;
/** After a recheck the ledger could not answer. */
const AUDIO_RECHECK_FAILED_MS = 1000;
/** Distinct models a session's client may have asked for and still see confirmed (#requestedModels). */
const MAX_REQUESTED_MODELS = 16;

function then<T, R>(v: MaybePromise<T>, f: (t: T) => R): MaybePromise<R> {
  return v instanceof Promise ? v.then(f) : f(v);
}

interface Reservation {
  /** Ledger reservation id; null when nothing was reserved (no caps, or fail-open). */
  readonly id: string | null;
  /** The response's worst case: what was reserved, and what is billed if its response.done never comes. */
  readonly amount: Amount;
  timer: NodeJS.Timeout | null;
  /**
   * Responses that read the default conversation: the estimate's `added` when the upstream began
   * reading it (calibration at done). For a client create, taken when the create leaves for the
   * upstream (the relay's `create_sent`): what the client sends after it is added upstream after
   * the response began reading, so it stays in the estimate. Server-started responses: at their
   * `response.created` (the proxy sees nothing earlier). Kept in step with `added` when another
   * response recalibrates first (#calibrate).
   */
  mark: ModalityTokens | null;
  /**
   * The session's truncation epoch when `mark` was taken (#truncationEpoch; -1: a truncation change
   * was not answered yet, so the response may have read under either): a response that read under a
   * truncation since changed does not recalibrate (its count may be only the conversation's newest part).
   */
  markEpoch: number;
  /**
   * The response reads the default conversation (no `input` list of its own): only its usage
   * counts the conversation, so only it may recalibrate the estimate. A create with an `input`
   * list (even in the conversation) reads that list alone.
   */
  readonly readsConversation: boolean;
  /**
   * A create waiting for its `response.created` while the relay did not read the upstream (its
   * client stopped reading): the answer may have sat unread while the response ran. Billed at its
   * reservation if the session ends before it is read.
   */
  unread: boolean;
  /**
   * The model in use when the response started (its `response.created`): the upstream runs and bills
   * the response at it, whatever a `session.update` switches to while it runs (until 2026-12-06 the
   * done was priced at the model in use when it came: a switch to gpt-realtime-mini mid-response
   * billed a gpt-realtime-2 response at a third; test/metering/redteam-money.test.ts). Null: not started.
   */
  started: { readonly model: string; readonly lookup: PriceLookup | null } | null;
  /** A create in the default conversation with an `input` list of its own: it read that list, and its output joins the conversation. */
  readonly ownInputInConversation: boolean;
  /**
   * The response's worst-case output (its `max_output_tokens` as reserved; text only or not): what its
   * items may hold while it still runs, which a response reading them then reads as input (#outputSoFar).
   */
  readonly output: { readonly tokens: number; readonly textOnly: boolean };
  /**
   * The response may call an MCP tool (its own tools, else the session's, have one): the MCP server's
   * output joins the conversation at a size nothing bounds, unknown to the proxy until the call's
   * `conversation.item.done` (#mayAddMcpOutput).
   */
  readonly mcp: boolean;
}

/**
 * A response's worst-case output (`Reservation.output`) as another response reads it: its tokens as
 * text when it is text only, else as audio (the dearer input), plus framing for each of its `items`.
 */
function outputAsInput(output: { readonly tokens: number; readonly textOnly: boolean }, items: number): ModalityTokens {
  return output.textOnly ? { text: ITEM_OVERHEAD * items + output.tokens, audio: 0, image: 0 } : { text: ITEM_OVERHEAD * items, audio: output.tokens, image: 0 };
}

/** Per-session metering: clamps, reservations, settlement, session limits. */
export class MeteringFilter implements Filter {
  readonly #ctx: SessionContext;
  readonly #rt: MeteringRuntime;
  readonly #limits: EffectiveLimits;
  readonly #capped: boolean;
  readonly #slot: string | null;
  #model: string;
  #price: PriceLookup | null;
  /** The session's input transcription: its model and prompt, and what it has in flight (see transcriptions.ts). */
  readonly #tx: InputTranscriptions;
  /** Reserve, release and settle on the ledger for this session (SessionLedger). */
  readonly #sessionLedger: SessionLedger;
  /**
   * Models client `session.update`s asked for (priced; switched to when the upstream reports one),
   * the model in use included: updates apply in order, so the one a `session.updated` answers may be
   * any of them, not only the last (until 2026-12-05 only the last was kept, and a switch answered
   * behind a later ask stayed at the old price). At most MAX_REQUESTED_MODELS, the oldest dropped.
   */
  readonly #requestedModels: string[] = [];
  #clampInjected = false;
  /** Upper-bound estimate of the default conversation (the input of the next response in it). */
  readonly #estimate = new ConversationEstimate();
  /** The session's settings that size a reservation, as reported or asked by an update in flight (SessionSettings). */
  readonly #settings: SessionSettings;
  /** The session's type as the upstream reported it (null: not yet; a preview session reports none). */
  #sessionType: 'realtime' | 'transcription' | null = null;
  /** Client `session.update`s that set `truncation` so far (see Reservation.markEpoch). */
  #truncationEpoch = 0;
  /** `sessionUpdatesSent` numbering of the last of them: unanswered while `sessionUpdatesAnswered` is below it. */
  #truncationAskedN = 0;
  /**
   * The session's `truncation` as the upstream last reported it (JSON), null before: a change the
   * proxy did not relay (a call's browser on its data channel, a policy reload's injected update) counts too.
   */
  #truncationReported: string | null = null;
  /** The session's hold on its input audio, and why (AudioHold). */
  readonly #audio: AudioHold;
  /** This session's place among its tenant's sessions that hold audio together (rt.tenantHolds); null: not joined. */
  #leaveTenantHolds: (() => void) | null = null;
  readonly #peerOverCap = (hit: CapHit): void => {
    if (!this.#closed && !this.#ending) this.#audio.hold(hit, true);
  };
  /**
   * Reservations of creates sent upstream and not started yet, by the create's `event_id` (every
   * create upstream carries one: the client's, or one the proxy adds), so the upstream's `error`
   * about a create releases its reservation at once. Which create a response answers is the
   * conversation view's pairing (`ResponseView.createEventId`).
   */
  readonly #pending = new LazyMap<string, Reservation>();
  /**
   * Creates released unanswered after pendingResponseTimeoutMs (by the id they left with, the most
   * recent 64): a response that still starts for one reserves at least that create's worst case and
   * keeps what it reads (until 2026-12-06 it reserved as a server-started response: the conversation
   * and the session's prompt, without the create's own `input` list or instructions, and admission had
   * let more creates through against the freed budget; test/metering/redteam-money.test.ts).
   */
  readonly #expired = new LazyMap<string, Reservation>();
  /** The key of the create metering let through last, until the relay's create_sent names the id it left with. */
  #lastQueued: string | null = null;
  /** The relay stopped reading the upstream (backpressure from a client that does not read). */
  #upstreamPaused = false;
  /**
   * Reservations of started responses, by response id, until their response.done settles them.
   * Which responses are running is the conversation view's (`activeResponses`).
   */
  readonly #reservations = new LazyMap<string, Reservation>();
  /** The input buffer's turns: turn detection, speech heard, commits and clears in flight (InputTurns). */
  readonly #turns: InputTurns;
  /** MCP servers' tool lists and the model's MCP calls not done yet (McpTracking). */
  readonly #mcp = new McpTracking();
  /** Responses billed, and how far metering read them in the view's order (ResponsesRead). */
  readonly #read: ResponsesRead;
  /** Items sized in the estimate beyond a response's usage, and the ids the upstream made (ItemSizes). */
  readonly #items: ItemSizes;
  #closed = false;
  /** How the session ended (onClose): the rule a response found started after the close is billed by. */
  #closeRule: SettledBy = 'session_end_estimate';
  /** The close billed a server VAD response the relay read started and metering did not (#billStartedUnseen). */
  #unseenVadResponseBilled = false;
  #ending: ProxyError | null = null;
  #endTimer: NodeJS.Timeout | null = null;
  #durationTimer: NodeJS.Timeout | null = null;
  /** Running totals for the session-end log (SessionTotals). */
  readonly #totals = new SessionTotals();
  /** Tokens this session (a call: its sidebands so far, ctx.carried) settled: what its token limit counts. */
  #sessionTokens = 0;
  /**
   * Tokens of the worst cases held by this session's reservations (creates pending and responses
   * running), added and removed with them as the ledger's are: the session token limit admits a
   * response only while settled + held is below it.
   */
  #heldTokens = 0;

  constructor(ctx: SessionContext, rt: MeteringRuntime, slot: string | null) {
    this.#ctx = ctx;
    this.#rt = rt;
    this.#slot = slot;
    this.#limits = rt.limitsOf(ctx.tenant);
    this.#capped = hasCaps(this.#limits.caps);
    this.#model = ctx.model;
    this.#price = ctx.model ? rt.prices.lookup(ctx.model) : null;
    this.#sessionLedger = new SessionLedger(rt, ctx.id, ctx.tenant.id, this.#limits.caps, ctx.log);
    this.#settings = new SessionSettings(rt.prices, rt.previewUpstream === true, ctx.conversation);
    this.#tx = new InputTranscriptions(rt.prices, ctx.log, () => ctx.conversation.sessionUpdatesAnswered);
    this.#turns = new InputTurns(ctx.clock, ctx.conversation);
    this.#read = new ResponsesRead(ctx.conversation);
    this.#items = new ItemSizes(this.#estimate, ctx.conversation, this.#mcp);
    this.#audio = new AudioHold({
      wall: () => rt.wall(),
      watchAudio: (on) => ctx.watch(BY, 'client', AUDIO_IN, on),
      inFlightOverLimit: () => !this.#closed && this.#overSessionTokens(),
      tellPeers: (hit) => rt.tenantHolds?.overCap(ctx.tenant.id, hit, this.#peerOverCap, rt.wall()),
    });
    // A call's sideband carries on what the call's earlier sidebands used (another instance's, before
    // a takeover): its token limit counts on from their settled tokens and its duration runs from the
    // call's start. (Until 2026-12-06 each sideband started both afresh: every takeover gave the call
    // a new allowance; test/calls/takeover-limits.test.ts.)
    const carried = ctx.carried ?? null;
    if (carried && Number.isFinite(carried.tokens) && carried.tokens > 0) this.#sessionTokens = carried.tokens;
    const maxMs = this.#limits.maxSessionDurationMs;
    if (maxMs !== null) {
      const elapsedMs = carried && Number.isFinite(carried.startedAtWallMs) ? Math.max(0, rt.wall() - carried.startedAtWallMs) : 0;
      // A call already past its duration ends as the limit ends sessions (the timer's next turn).
      this.#durationTimer = ctx.setTimer(Math.max(0, maxMs - elapsedMs), () => {
        this.#durationTimer = null;
        this.#endSession(new ProxyError('session_duration_exceeded', { details: { limitSec: maxMs / 1000 } }));
      });
    }
  }

  /**
   * The output clamp is the session's first event upstream: a response the server starts (VAD)
   * before session.created reached the proxy obeys it too. A call's sideband skips it: its call was
   * created with the clamp in its governed config.
   */
  onStart(): void {
    // At its token limit already as it starts (a call taken over at it, ctx.carried; or a limit of 0):
    // as after the settle that reached it. (Until 2026-12-06 a limit of 0 let a server-VAD turn start
    // upstream, cancelled at its response.created and billed, before the session's audio was held.)
    if (this.#sessionSpent()) {
      if (this.#rt.config.onExhausted === 'end_session') this.#endSession(this.#tokenLimitError(null));
      else this.#audio.hold(null);
    }
    // Over a cap found by another session of the tenant: this one's input audio is held too, from the
    // start when one was found within a recheck period before it opened (TenantAudioHolds.join). Not
    // a call's sideband: a call's audio never passes the proxy (its cap ends the call instead).
    if (this.#capped && !this.#ctx.callId && this.#rt.tenantHolds) this.#leaveTenantHolds = this.#rt.tenantHolds.join(this.#ctx.tenant.id, this.#peerOverCap, this.#rt.wall());
    const limit = this.#outputCap();
    // A transcription session produces no responses (and takes no max_output_tokens).
    if (limit === null || this.#ctx.callId || isTranscriptionIntent(this.#ctx.query)) return;
    this.#injectClamp(limit);
  }

  /**
   * Clamps the session's max_output_tokens upstream; not again until a session shows it applied. In
   * the upstream's dialect: a preview session has no `type` and names the limit its beta way. Until
   * 2026-12-07 it was GA-shaped on a preview upstream too, where a strict upstream refused the
   * unknown members and the session failed (test/metering/preview-dialect-clamps.test.ts).
   */
  #injectClamp(limit: number): void {
    this.#clampInjected = true;
    const session = this.#rt.previewUpstream ? { [BETA_OUTPUT_LIMIT]: limit } : { type: 'realtime', max_output_tokens: limit };
    this.#ctx.sendUpstream({ type: 'session.update', session: session as ClientEventOf<'session.update'>['session'] }, BY);
  }

  /**
   * The relay sent a create upstream: a response reading the conversation takes its calibration
   * mark now. The relay paused or resumed reading the upstream (its client stopped reading): the
   * release of creates never answered waits while the upstream is not read (#armPending).
   */
  onReport(report: Report): void {
    if (report.kind === 'backpressure' && report.direction === 'server') {
      this.#upstreamPaused = report.state === 'paused';
      for (const r of this.#pending.values()) {
        if (r.timer) clearTimeout(r.timer);
        r.timer = null;
        if (this.#upstreamPaused) r.unread = true;
        else this.#armPending(r);
      }
      return;
    }
    if (report.kind === 'stamped' && report.eventType === 'input_audio_buffer.commit') {
      // Stamped events leave in the order the client sent them: the oldest commit not named yet.
      this.#tx.commitStamped(report.eventId);
      this.#turns.commitStamped(report.eventId);
      return;
    }
    if (report.kind === 'injected_create_refused') {
      // The proxy's own create (the spoken-turn hold's), refused upstream: the relay keeps the error from the chain.
      const refused = this.#pending.get(report.eventId);
      if (refused) this.#releasePending(report.eventId, refused);
      return;
    }
    if (report.kind !== 'create_sent') return;
    const key = this.#lastQueued;
    this.#lastQueued = null;
    const queued = key !== null ? this.#pending.get(key) : undefined;
    if (queued && key !== report.eventId && !this.#pending.has(report.eventId)) {
      // The relay gave it another id (its own collided with an event still unread upstream).
      this.#pending.delete(key!);
      this.#pending.set(report.eventId, queued);
    }
    const r = this.#pending.get(report.eventId);
    if (r && r.readsConversation && r.mark === null) {
      r.mark = this.#estimate.addedMark();
      // Stamped events leave in order: the upstream reads this create after every update sent before it.
      r.markEpoch = this.#truncationEpoch;
    }
  }

  // ---- client → upstream --------------------------------------------------------------------

  onClient(frame: Frame, injectedBy: string | null = null): Verdict | Promise<Verdict> {
    switch (frame.type) {
      case AUDIO_IN:
        return this.#audio.blocked !== null ? this.#onBlockedAudio() : CONTINUE;
      case 'response.create':
        return this.#onResponseCreate(frame);
      case 'session.update':
        return this.#onSessionUpdate(frame, injectedBy);
      case 'transcription_session.update':
        return this.#unpricedTranscriptionRefusal(obj(frame.json()['session']), str(frame.json()['event_id'])) ?? this.#onTranscriptionSessionUpdate(frame);
      case 'conversation.item.create': {
        const item = obj(frame.json()['item']);
        if (item) this.#items.clientItemCreate(item);
        return CONTINUE;
      }
      case 'input_audio_buffer.commit':
        return this.#onClientCommit(str(frame.json()['event_id']));
      case 'input_audio_buffer.clear':
        // The buffer starts again here, as the upstream reads it: audio appended after this clear is
        // in the new buffer even if it leaves before the upstream's "cleared" comes back (which is
        // therefore not a new start: nothing else clears the input buffer but the proxy's own, InputTurns.cleared).
        this.#turns.clientClear(this.#estimate.uncommittedMs(this.#ctx.audio.inputWireBytes) >= MIN_TURN_MS);
        this.#estimate.onBufferCleared(this.#ctx.audio.inputWireBytes);
        return CONTINUE;
      default:
        return CONTINUE;
    }
  }

  /** A beta transcription session's update on its way upstream: its transcription counts from here (InputTranscriptions). */
  #onTranscriptionSessionUpdate(frame: Frame): Verdict {
    const ev = frame.json();
    this.#tx.transcriptionSessionUpdateSent(str(ev['event_id']), obj(inputAudioSettings(obj(ev['session']))?.['transcription']));
    // Its input format counts ahead as a GA transcription session's does (#guess), the denser of it
    // and the current, until the upstream next reports the format (its transcription_session.updated).
    const session = obj(ev['session']);
    const asked = session ? budgetedInputBytesPerMs(session) : null;
    if (asked !== null) this.#estimate.setFormat(Math.min(this.#estimate.bytesPerMs, asked), this.#ctx.audio.inputWireBytes, false);
    return CONTINUE;
  }

  /**
   * A session.update on its way upstream: the client's, or the proxy's own (`injectedBy`: the locks'
   * state or relock, the guardrails' redaction, a client secret's or a SIP call's config). Both count
   * from here on and both are clamped; the proxy's own is never refused (see #checkSessionUpdate).
   * Until 2026-12-07 the proxy's own counted only from its session.updated (the client secret's from
   * 2026-12-06): creates sent meanwhile were reserved without the locks' instructions
   * (test/metering/injected-session-update.test.ts: $0.60 spent against a $0.30 worst_case cap).
   */
  #onSessionUpdate(frame: Frame, injectedBy: string | null): Verdict {
    const verdict = this.#checkSessionUpdate(frame, injectedBy);
    if (verdict.kind === 'continue' || verdict.kind === 'replace') {
      const session = obj((verdict.kind === 'replace' ? verdict.frame : frame).json()['session']);
      this.#guess(session);
      if (session !== null && Object.hasOwn(session, 'truncation')) {
        this.#truncationAskedN = this.#ctx.conversation.sessionUpdatesSent + 1;
        this.#truncationChanged();
      }
      const input = inputAudioSettings(session);
      this.#tx.sessionUpdateSent(obj(input?.['transcription']), this.#ctx.conversation.sessionUpdatesSent + 1);
      const td = obj(input?.['turn_detection']);
      if (td) this.#turns.turnDetectionAsked(td, this.#ctx.conversation.sessionUpdatesSent + 1);
    }
    return verdict;
  }

  /**
   * A client session.update on its way upstream: what it asks counts at once, pessimistically
   * (SessionSettings). `n`: its place among the session's updates (the next one sent, unless it left already).
   */
  #guess(session: JsonObject | null, n = this.#ctx.conversation.sessionUpdatesSent + 1): void {
    if (!session) return;
    let bytesPerMs: number | null = null;
    if (session['type'] === 'transcription') {
      // In a transcription session only its input format counts ahead (audio right behind the update
      // is in it once applied): until 2026-12-07 nothing did, and G.711 appended behind a transcription
      // session's switch to it was sized as PCM16 (test/metering/redteam-18t-transcription-format-switch.test.ts).
      // A realtime session refuses it (no session changes its type).
      if (this.#sessionType !== 'realtime') bytesPerMs = this.#settings.guessFormat(n, budgetedInputBytesPerMs(session));
    } else {
      bytesPerMs = this.#settings.guess(session, n, this.#model);
    }
    if (bytesPerMs !== null) this.#estimate.setFormat(Math.min(this.#estimate.bytesPerMs, bytesPerMs), this.#ctx.audio.inputWireBytes, false);
  }

  /** What the last calibration counted may be a truncated read: see ConversationEstimate.distrustCalibration. */
  #truncationChanged(): void {
    this.#truncationEpoch++;
    this.#estimate.distrustCalibration();
  }

  /**
   * The truncation epoch of a response starting now (its `response.created` read): -1 while a
   * truncation change is unanswered, since the upstream may have started it before applying that change.
   */
  #startEpoch(): number {
    return this.#ctx.conversation.sessionUpdatesAnswered < this.#truncationAskedN ? -1 : this.#truncationEpoch;
  }

  /**
   * The MCP tool lists a response reads: those of its MCP servers (its own `tools`' if it sets them,
   * else the session's), and, reading the default conversation, those of the session's (the list items
   * are in it). A list the session has (McpTracking) is in the conversation estimate already: counted
   * again only for a response that does not read the conversation. A server without one yet (its
   * listing not done: added by an update a create is sent right behind, or never listed in this
   * session) has a list of unknown size (MCP_OUTPUT). Until the twelfth session a create right behind
   * the update adding a server was reserved without its list (src/metering/filter-twelfth.test.ts).
   */
  #mcpListInput(ownTools: unknown, readsConversation: boolean): ModalityTokens {
    const session = this.#settings.mcpLabelsNow();
    const labels = new Set(ownTools !== undefined ? mcpLabelsOf(ownTools) : session);
    if (readsConversation) for (const l of session) labels.add(l);
    return this.#mcp.listInput(labels, readsConversation);
  }

  /**
   * A session.update's refusal (an unpriced model or transcription model, an invalid output limit),
   * its clamped form, or CONTINUE. The proxy's own (`injectedBy`) is clamped but never refused: it
   * carries the policy's or a minted config, and refusing it would leave the session unlocked. What
   * a client's would be refused for is logged and sent as it is (an unpriced model is not taken as
   * asked: its responses stay priced at the model in use). Its clamp tells no client (not theirs).
   */
  #checkSessionUpdate(frame: Frame, injectedBy: string | null): Verdict {
    const ev = frame.json();
    const eventId = str(ev['event_id']);
    const session = obj(ev['session']);
    if (!session) return CONTINUE;
    const own = injectedBy !== null;
    // A model switch is priced from session.updated on; a model with no price never reaches the upstream.
    const model = str(session['model']);
    if (model !== null) {
      if (model !== this.#model && !pricedForSessions(this.#rt, model)) {
        if (!own) {
          this.#totals.refused++;
          return reject(unpricedError(model, this.#rt, { eventId, param: 'session.model', close: null }));
        }
        this.#ownUnrefused(injectedBy, 'session.model');
      } else if ((model !== this.#model || this.#requestedModels.length > 0) && !this.#requestedModels.includes(model)) {
        // The model in use too once a switch was asked: an update still in flight may switch away
        // before this one (back) applies. Alone, it asks nothing new.
        if (this.#requestedModels.length >= MAX_REQUESTED_MODELS) this.#requestedModels.shift();
        this.#requestedModels.push(model);
      }
    }
    const unpricedTranscription = this.#unpricedTranscriptionRefusal(session, eventId);
    if (unpricedTranscription) {
      if (!own) return unpricedTranscription;
      this.#ownUnrefused(injectedBy, 'session.audio.input.transcription.model');
    }
    const limit = this.#outputCap();
    const beta = clampedBetaOutput(session, limit);
    const governed = beta?.holder ?? session;
    const withSession = (s: JsonObject): Verdict => {
      if (beta) this.#notifyClamp(beta.requested, beta.limit, eventId, `session.${BETA_OUTPUT_LIMIT}`, !own);
      const event: { type: string; session: JsonObject } = { ...ev, type: 'session.update', session: s };
      return replace(Frame.fromEvent(event));
    };
    const parsed = parseOutputLimit(session['max_output_tokens']);
    if (parsed.kind === 'absent') return beta ? withSession(governed) : CONTINUE;
    if (parsed.kind === 'invalid') {
      if (!own) return invalidOutputLimit(parsed.reason, eventId, 'session.max_output_tokens');
      // The proxy's own with no limit it can read: the tenant's limit is what it gets.
      this.#ownUnrefused(injectedBy, 'session.max_output_tokens');
      return limit === null ? CONTINUE : withSession({ ...governed, max_output_tokens: limit });
    }
    let value = parsed.value;
    if (limit !== null && exceeds(value, limit)) {
      this.#notifyClamp(value, limit, eventId, 'session.max_output_tokens', !own);
      value = limit;
    } else if (parsed.canonical) return beta ? withSession(governed) : CONTINUE;
    // Clamped, or written another way ("4096", "INF", null): the upstream gets the value governed.
    return withSession({ ...governed, max_output_tokens: value });
  }

  /** The proxy's own session.update asks what a client's may not: logged, and sent (see #checkSessionUpdate). */
  #ownUnrefused(by: string, param: string): void {
    this.#ctx.log.warn({ by, param }, "metering: the proxy's own session.update asks what a client's may not; sent as it is");
  }

  /**
   * The refusal of a session (or beta transcription session) update asking for a transcription
   * model with no price, or null. GA's member and the Azure preview protocol's (beta) flat one are
   * both priced.
   */
  #unpricedTranscriptionRefusal(session: JsonObject | null, eventId: string | null): Verdict | null {
    if (!session) return null;
    for (const [holder, key, param] of [
      [obj(obj(session['audio'])?.['input']), 'transcription', 'session.audio.input.transcription.model'],
      [session, 'input_audio_transcription', 'session.input_audio_transcription.model'],
    ] as const) {
      const txModel = str(obj(holder?.[key])?.['model']);
      if (txModel !== null && !this.#rt.prices.lookup(txModel)) {
        this.#totals.refused++;
        return reject(new ProxyError('unknown_model_price', { message: `No price is configured for transcription model "${txModel}".`, param, eventId, close: null }));
      }
    }
    return null;
  }

  #onResponseCreate(frame: Frame): Verdict | Promise<Verdict> {
    const ev = frame.json();
    const clientEventId = str(ev['event_id']);
    if (this.#ending) return reject(this.#withEvent(this.#ending, clientEventId));
    const price = this.#price?.price ?? null;
    if (!price) {
      this.#totals.refused++;
      return reject(unpricedError(this.#model, this.#rt, { eventId: clientEventId, close: null }));
    }
    // The relay gives every create an event_id no other client event still unread upstream has
    // (Conversation.stamp), so an upstream refusal of it names it and releases its
    // reservation at once, and the conversation view's pairing (createEventId) names exactly one
    // reservation. The reservation waits under a key of its own until the relay's `create_sent`
    // tells the id the create left with (onReport).
    const eventId = clientEventId !== null && !this.#pending.has(clientEventId) ? clientEventId : this.#ctx.nextEventId();
    if (this.#overSessionTokens()) {
      return this.#refuse(this.#tokenLimitError(clientEventId));
    }
    const response = obj(ev['response']) ?? {};
    const parsed = parseOutputLimit(response['max_output_tokens']);
    if (parsed.kind === 'invalid') return invalidOutputLimit(parsed.reason, clientEventId, 'response.max_output_tokens');
    const limit = this.#outputCap();
    // A preview upstream reads the beta member: what the response asks there is its own limit.
    const previewUpstream = this.#rt.previewUpstream === true;
    // Both members named: the larger counts, whichever the upstream reads (until 2026-12-07 GA's won
    // whenever it was there: `max_output_tokens: 1` beside a beta 4096 reserved 1 token;
    // test/metering/redteam-16-preview-both-limits.test.ts).
    const gaLimit = parsed.kind === 'limit' ? parsed.value : null;
    const betaLimit = previewUpstream ? readOutputLimit(response[BETA_OUTPUT_LIMIT]) : null;
    const requested = dearerLimit(gaLimit, betaLimit);
    const requestedMember = betaLimit !== null && requested !== gaLimit ? BETA_OUTPUT_LIMIT : 'max_output_tokens';
    let effective: number | 'inf' = requested ?? this.#settings.maxOutput() ?? 'inf';
    let rewrite: JsonObject | null = null;
    let clampNotice: (() => void) | null = null;
    // Written another way ("4096", "INF"): the upstream gets the value governed.
    if (parsed.kind === 'limit' && !parsed.canonical) rewrite = { ...response, max_output_tokens: parsed.value };
    if (limit !== null && (effective === 'inf' || effective > limit)) {
      const from = effective;
      // Set explicitly (in the member the upstream reads): the session default may not be clamped upstream yet.
      rewrite = { ...response, [previewUpstream ? BETA_OUTPUT_LIMIT : 'max_output_tokens']: limit };
      if (requested !== null) clampNotice = () => this.#notifyClamp(from, limit, clientEventId, `response.${requestedMember}`);
      effective = limit;
    }
    const beta = clampedBetaOutput(rewrite ?? response, limit);
    if (beta !== null) {
      rewrite = beta.holder;
      const gaNotice = clampNotice;
      clampNotice = () => {
        gaNotice?.();
        this.#notifyClamp(beta.requested, beta.limit, clientEventId, `response.${BETA_OUTPUT_LIMIT}`);
      };
    }
    const rewritten = rewrite !== null ? Frame.rewritten('response.create', { ...ev, type: 'response.create', response: rewrite }) : null;
    const ok = (): Verdict => {
      clampNotice?.();
      return rewritten ? replace(rewritten) : CONTINUE;
    };
    // What the response does not set, it takes from the session: the session's tools stay with per-response instructions.
    const prompt = promptOf(
      'instructions' in response ? instructionsEstimate(response['instructions']) : this.#settings.instructions(),
      'tools' in response ? toolsEstimate(response['tools']) : this.#settings.tools(),
    );
    // Output of responses still running that this one may read: reading the default conversation, every
    // response in it running or waiting to start (the upstream refuses a conversation create while one is
    // active, but runs it if that one finished just before it read the create; an out-of-band create
    // without an `input` list reads the conversation as it is, a response streaming into it included);
    // an `item_reference` to an item of a response still streaming, that response's (#outputSoFar; until
    // 2026-12-06 neither counted: test/metering/redteam-money-2.test.ts; the out-of-band create reading
    // the conversation until the twelfth session: src/metering/filter-twelfth.test.ts). An MCP call's
    // output counts from the start of a response that may make one (#mayAddMcpOutput).
    const counted = new LazySet<string>();
    const streaming = response['conversation'] !== 'none' || !Array.isArray(response['input']) ? this.#conversationOutputsInFlight(counted) : { ...NO_TOKENS };
    const referenced = (itemId: string, again: boolean): Readonly<ModalityTokens> | null => this.#streamingItem(itemId, again ? new LazySet<string>() : counted);
    // A reusable prompt's variables are input too: the response's own and the session's (pessimistically both).
    const input = add(add(add(this.#estimate.responseInput(response, referenced), streaming), this.#settings.promptNow()), promptVariablesEstimate(response['prompt']) ?? NO_TOKENS);
    // The tool lists of its MCP servers (a server's list the proxy has not seen: of unknown size).
    add(input, this.#mcpListInput('tools' in response ? response['tools'] : undefined, !Array.isArray(response['input'])));
    // A response reading the default conversation may also read the input buffer: the upstream
    // (server VAD) may commit it before it reads this create.
    if (response['conversation'] !== 'none' || !Array.isArray(response['input'])) add(input, this.#estimate.uncommitted(this.#ctx.audio.inputWireBytes));
    const textOnlyOutput = askedTextOnly(response, previewUpstream) ?? this.#settings.textOnlyNow();
    const amount = this.#worstCase(price, input, prompt, effective, textOnlyOutput);
    const output = { tokens: this.#outputLimitTokens(price, effective), textOnly: textOnlyOutput };
    const readsConversation = response['conversation'] !== 'none' && !Array.isArray(response['input']);
    const ownInputInConversation = response['conversation'] !== 'none' && Array.isArray(response['input']);
    const mcp = 'tools' in response ? mcpLabelsOf(response['tools']).length > 0 : this.#settings.mcpNow();
    const pending = (id: string | null): Reservation => ({ id, amount, timer: null, mark: null, markEpoch: -1, readsConversation, unread: false, started: null, ownInputInConversation, output, mcp });
    if (!this.#capped) {
      this.#queuePending(eventId, pending(null));
      return ok();
    }
    const id = this.#sessionLedger.nextId();
    return then(this.#sessionLedger.reserve(id, amount), (result): Verdict => {
      if (this.#closed) {
        if (result.kind === 'ok') this.#sessionLedger.release(id);
        return DROP;
      }
      switch (result.kind) {
        case 'ok':
          this.#audio.release();
          this.#queuePending(eventId, pending(id));
          return ok();
        case 'over':
          return this.#refuse(budgetError(result.hit, { eventId: clientEventId }));
        case 'unavailable':
          if (reserveFailsOpen(this.#rt, result)) {
            this.#queuePending(eventId, pending(null));
            return ok();
          }
          return this.#refuseLedgerUnavailable(clientEventId);
        default: {
          const never: never = result;
          return never;
        }
      }
    });
  }

  /** `max_output_tokens` as a number of tokens: "inf" is the largest maximum of the models a response starting now may run at. */
  #outputLimitTokens(price: ModelPrice, effective: number | 'inf'): number {
    const most = Math.max(...this.#settings.pricesNow(price).map((p) => p.maxOutputTokens));
    return effective === 'inf' ? most : Math.min(effective, most);
  }

  /**
   * What the items of a response still running may hold so far, read as input by another response:
   * its worst-case output (text at one token a token when it is text only, else as audio, the dearer
   * input), plus framing per item. A response metering holds no reservation for counts the model's
   * maximum output as audio.
   */
  #outputSoFar(responseId: string): ModalityTokens {
    const r = this.#reservations.get(responseId);
    const items = Math.max(1, this.#ctx.conversation.response(responseId)?.itemIds.length ?? 1);
    const out = r?.output ?? { tokens: this.#price?.price.maxOutputTokens ?? this.#rt.prices.own(LAST_RESORT_REALTIME)!.maxOutputTokens, textOnly: false };
    return outputAsInput(out, items);
  }

  /**
   * An `item_reference` to an item of a response still running (the conversation view: the item's
   * response, and its state): that response's output so far (#outputSoFar), once per response
   * (`counted`); null for any other item (the estimate's own rules apply).
   */
  #streamingItem(itemId: string, counted: LazySet<string>): Readonly<ModalityTokens> | null {
    const view = this.#ctx.conversation;
    // An MCP call not done yet: the server's output may be in it already, of a size the proxy cannot know.
    const mcp = this.#mcp.mayBeOpenCall(itemId) && !counted.has(`mcp:${itemId}`);
    if (mcp) counted.add(`mcp:${itemId}`);
    const responseId = view.item(itemId)?.responseId ?? null;
    if (responseId === null || counted.has(responseId) || view.response(responseId)?.state !== 'in_progress') return mcp ? MCP_OUTPUT : null;
    counted.add(responseId);
    const t = this.#outputSoFar(responseId);
    return mcp ? add(t, MCP_OUTPUT) : t;
  }

  /**
   * A response that may call an MCP tool (`Reservation.mcp`; one metering holds no reservation for, by
   * the session's tools) or has a call not done yet: the MCP server's output joins the conversation,
   * and the proxy learns its size only at the call's `conversation.item.done`, after the upstream
   * may have read a create sent meanwhile (until the twelfth session such a create was reserved
   * without it: src/metering/filter-twelfth.test.ts, test/metering/redteam-money-3.test.ts).
   */
  #mayAddMcpOutput(responseId: string): boolean {
    const r = this.#reservations.get(responseId);
    return this.#mcp.mayHaveOpenCall(responseId) || (r ? r.mcp : this.#settings.mcpNow());
  }

  /**
   * The output the default conversation may gain before the upstream reads a create sent now: every
   * response in it still running (the conversation view's), and the worst-case output of every
   * conversation create waiting for its `response.created`, the response of a turn server VAD committed
   * whose `response.created` is not read yet (InputTurns.vadResponseDue: the session's max_output_tokens), and an
   * MCP output of unknown size when one of them may call an MCP tool (#mayAddMcpOutput). Responses
   * counted go into `counted`.
   */
  #conversationOutputsInFlight(counted: LazySet<string>): ModalityTokens {
    const t: ModalityTokens = { ...NO_TOKENS };
    const view = this.#ctx.conversation;
    let mcp = false;
    for (const id of view.activeResponses()) {
      if (counted.has(id) || view.response(id)?.outOfBand !== false) continue;
      counted.add(id);
      add(t, this.#outputSoFar(id));
      mcp ||= this.#mayAddMcpOutput(id);
    }
    for (const r of this.#pending.values()) {
      if (!r.readsConversation && !r.ownInputInConversation) continue;
      add(t, outputAsInput(r.output, 1));
      mcp ||= r.mcp;
    }
    if (this.#turns.vadResponseDue) {
      // Server VAD committed a turn whose response.created is not read yet: that response may be done
      // upstream before this create is read (until the twelfth session it did not count).
      const price = this.#price?.price ?? this.#rt.prices.own(LAST_RESORT_REALTIME)!;
      add(t, outputAsInput({ tokens: this.#outputLimitTokens(price, this.#settings.maxOutput() ?? 'inf'), textOnly: this.#settings.textOnlyNow() }, 1));
      mcp ||= this.#settings.mcpNow();
    }
    // The window is filled once: one unknown output counts as much as several.
    return mcp ? add(t, MCP_OUTPUT) : t;
  }

  #queuePending(eventId: string, r: Reservation): void {
    this.#armPending(r);
    this.#pending.set(eventId, r);
    this.#heldTokens += r.amount.tokens;
    // Metering runs last for client frames: the next create_sent is this create's.
    this.#lastQueued = eventId;
  }

  /**
   * No `response.created` for a create within `pendingResponseTimeoutMs` of the upstream being
   * read: the upstream never started it (refused it, or the client raced another), so it is freed.
   * Only while the relay reads the upstream: while it is paused (a client that stops reading) the
   * `response.created` may sit unread while the response runs, so the reservation is kept, and the
   * wait starts again in full when reading resumes (the backlog is read first). Until 2026-12-05 the
   * timer ran regardless, so such reservations were released and more creates admitted against the
   * freed budget. Every other way out of #pending (started, refused upstream, session closed)
   * clears this timer.
   * Under `admission: worst_case` (never over a cap) no timer releases anything: a timer cannot tell
   * a create the upstream never started from a `response.created` not read yet (an event loop
   * stalled past the timeout runs its timers before it reads the socket), so the create stays
   * reserved until its response starts, the upstream refuses it, or the session ends. Until
   * 2026-12-06 it was released, and a stall let the next create through against the freed budget
   * (test/metering/redteam-money.test.ts, "a stalled event loop").
   */
  #armPending(r: Reservation): void {
    if (this.#upstreamPaused) {
      r.unread = true;
      return;
    }
    if (this.#rt.config.admission === 'worst_case') return;
    r.timer = this.#ctx.setTimer(this.#rt.config.pendingResponseTimeoutMs, () => {
      r.timer = null;
      if (this.#upstreamPaused) return;
      for (const [key, held] of this.#pending) {
        if (held !== r) continue;
        this.#releasePending(key, r);
        if (this.#expired.size >= 64) this.#expired.delete(this.#expired.keys().next().value!);
        this.#expired.set(key, r);
        return;
      }
    });
  }

  #releasePending(eventId: string, r: Reservation): void {
    this.#pending.delete(eventId);
    this.#heldTokens -= r.amount.tokens;
    if (r.timer) clearTimeout(r.timer);
    r.timer = null;
    if (r.id !== null) this.#sessionLedger.release(r.id);
    this.#liftInFlightHold();
  }

  /** A reservation the ledger could not answer (`responseId`: the response it was for, if any). */
  #reportLedgerUnavailable(responseId: string | null = null): void {
    this.#ctx.report({ kind: 'budget', action: 'ledger_unavailable', scope: 'tenant', limit: 'ledger', code: 'budget_unavailable', responseId });
  }

  /**
   * A client event refused because the ledger could not answer its reservation. The text is fixed:
   * the ledger's own error (its address) is logged, not sent.
   */
  #refuseLedgerUnavailable(eventId: string | null, param?: string): Verdict {
    this.#reportLedgerUnavailable();
    this.#totals.refused++;
    return reject(new ProxyError('budget_unavailable', { eventId, ...(param ? { param } : {}), details: { reason: 'ledger unavailable' } }));
  }

  #refuse(error: ProxyError): Verdict {
    this.#totals.refused++;
    this.#ctx.report(this.#budgetReport('refused', error, null));
    if (this.#rt.config.onExhausted === 'end_session') {
      this.#endSession(error);
      return DROP;
    }
    return reject(error);
  }

  /**
   * The budget report of a refusal, cancel or end for `error`: the code the client got, the cap or
   * limit by name, and whose it is (the tenant's caps and ledger, else the session's own limits and
   * model). Until 2026-12-06 a refusal or cancel scoped everything but the token limit as the
   * tenant's, so a call whose model was not priced was hung up as over its cost cap.
   */
  #budgetReport(action: 'refused' | 'cancelled' | 'ended', error: ProxyError, responseId: string | null): Report {
    const cap = error.details?.['cap'];
    const limit = typeof cap === 'string' ? cap : error.code === 'token_limit_exceeded' ? 'max_session_tokens' : error.code;
    const scope = error.code === 'budget_exceeded' || error.code === 'budget_unavailable' ? 'tenant' : 'session';
    return { kind: 'budget', action, scope, limit, code: error.code, responseId };
  }

  /** The session's settled tokens alone have reached its token limit: no response can run in it any more. */
  #sessionSpent(): boolean {
    const max = this.#limits.maxSessionTokens;
    return max !== null && this.#sessionTokens >= max;
  }

  /** The session token limit is reached by settled tokens plus the worst cases held now (creates pending, responses running). */
  #overSessionTokens(): boolean {
    const max = this.#limits.maxSessionTokens;
    // Transcriptions still awaited hold their estimate too (eighteenth red-team pass: they held
    // nothing, and 20 transcribed commits in one write ran 200,000 tokens past a 20,000-token limit;
    // test/metering/redteam-18-session-tokens-transcription.test.ts).
    return max !== null && this.#sessionTokens + this.#heldTokens + this.#tx.heldTokens() >= max;
  }

  /** A started response's reservation, held until its response.done (its tokens count toward the session limit). */
  #holdResponse(responseId: string, r: Reservation): void {
    const old = this.#reservations.get(responseId);
    if (old) this.#heldTokens -= old.amount.tokens;
    this.#reservations.set(responseId, r);
    this.#heldTokens += r.amount.tokens;
  }

  #tokenLimitError(eventId: string | null, param?: string): ProxyError {
    return new ProxyError('token_limit_exceeded', {
      eventId,
      ...(param === undefined ? {} : { param }),
      details: { limit: this.#limits.maxSessionTokens, used: this.#sessionTokens, reserved: this.#heldTokens + this.#tx.heldTokens() },
    });
  }

  /**
   * The tenant's max_output_tokens limit, never above the model's maximum: a clamp the upstream
   * refuses (e.g. 8000 for a 4,096-token model) would leave VAD responses unclamped.
   */
  #outputCap(): number | null {
    const tenant = this.#limits.maxResponseOutputTokens;
    const model = this.#price?.price.maxOutputTokens;
    return tenant === null ? null : model === undefined ? tenant : Math.min(tenant, model);
  }

  /** `tellClient` false: the proxy's own event was clamped, which no client sent (counted and reported only). */
  #notifyClamp(requested: number | 'inf', limit: number, eventId: string | null, param: string, tellClient = true): void {
    this.#totals.clamped++;
    const notice = new ProxyError('max_output_tokens_clamped', {
      message: `max_output_tokens ${requested} was lowered to ${limit} (the tenant limit, at most the model's maximum).`,
      param,
      eventId,
      details: { requested: String(requested), limit },
    });
    // The event was forwarded, lowered: a notice, not an error (SessionContext.notify).
    if (tellClient) this.#ctx.notify(notice, BY);
    this.#ctx.report({ kind: 'budget', action: 'clamped', scope: 'tenant', limit: 'max_response_output_tokens', code: 'max_output_tokens_clamped', responseId: null });
  }

  // ---- upstream → client --------------------------------------------------------------------

  onServer(frame: Frame): Verdict | Promise<Verdict> {
    switch (frame.type) {
      case 'response.created':
        return this.#onResponseCreated(frame);
      case 'response.done':
        this.#onResponseDone(frame);
        return CONTINUE;
      case 'conversation.item.input_audio_transcription.completed':
        this.#onTranscription(frame);
        return CONTINUE;
      case 'conversation.item.input_audio_transcription.failed': {
        // Not billed: what its commit reserved is free again.
        const itemId = str(frame.json()['item_id']) ?? '';
        const failed = this.#tx.take(itemId);
        if (failed) this.#sessionLedger.releaseAll(failed.reservations);
        this.#liftInFlightHold();
        return CONTINUE;
      }
      case 'input_audio_buffer.committed':
        return this.#onCommitted(frame);
      case 'input_audio_buffer.speech_started':
        this.#turns.speechStarted(frame.json());
        return CONTINUE;
      case 'conversation.item.done':
        this.#items.itemDone(obj(frame.json()['item']));
        return CONTINUE;
      case 'conversation.item.added':
        this.#mcp.itemAdded(obj(frame.json()['item']));
        return CONTINUE;
      case 'mcp_list_tools.failed':
        this.#mcp.listFailed(str(frame.json()['item_id']) ?? '');
        return CONTINUE;
      case 'response.output_item.added': {
        const ev = frame.json();
        const item = obj(ev['item']);
        const itemId = str(item?.['id']);
        if (itemId !== null) this.#items.upstreamItemAdded(itemId);
        if (itemId !== null && item?.['type'] === 'mcp_call') this.#mcp.callAdded(itemId, str(ev['response_id']));
        return CONTINUE;
      }
      case 'session.created':
      case 'session.updated':
        this.#onSession(frame);
        return CONTINUE;
      case 'transcription_session.updated':
        this.#onInputAudio(obj(frame.json()['session']));
        this.#tx.transcriptionSessionUpdateAnswered(null);
        return CONTINUE;
      case 'error':
        this.#onError(frame);
        return CONTINUE;
      case 'input_audio_buffer.cleared':
        // Ours (the client is gone): the buffer is empty upstream now.
        if (this.#turns.cleared()) this.#estimate.onBufferCleared(this.#ctx.audio.inputWireBytes);
        return CONTINUE;
      default:
        return CONTINUE;
    }
  }

  #onSession(frame: Frame): void {
    // The view counted this answer already: the update it answers is applied upstream.
    if (frame.type === 'session.updated') this.#settings.pruneGuesses();
    const session = obj(frame.json()['session']);
    if (!session) return;
    if (session['type'] === 'realtime' || session['type'] === 'transcription') this.#sessionType = session['type'];
    const model = str(session['model']);
    if (model && model !== this.#model && (!this.#model || !this.#price || this.#isRequestedModel(model))) {
      // The model in use is the one the upstream reports: call_id sessions learn it here, and a
      // session.update that switched models is priced at the new model from here on. Another id
      // the upstream reports for the URL model (a snapshot name, an Azure deployment's model)
      // keeps the URL model's price.
      const lookup = pricedForSessions(this.#rt, model) ? this.#rt.prices.lookup(model) : null;
      if (!lookup) {
        this.#endSession(unpricedError(model, this.#rt));
        return;
      }
      if (this.#model) this.#ctx.log.info({ from: this.#model, to: model }, 'metering: model switched');
      this.#model = model;
      this.#price = lookup;
    }
    this.#onInputAudio(session);
    if (session['type'] === 'transcription') return;
    if ('truncation' in session) {
      const reported = JSON.stringify(session['truncation'] ?? null);
      if (this.#truncationReported !== null && reported !== this.#truncationReported) this.#truncationChanged();
      this.#truncationReported = reported;
    }
    this.#settings.reported(session);
    const mot = reportedSessionOutputLimit(session);
    const limit = this.#outputCap();
    if (limit === null || mot === null) return;
    if (mot === 'inf' || mot > limit) {
      // The upstream default is "inf": clamp the session so server-started (VAD) responses obey too.
      if (!this.#clampInjected) this.#injectClamp(limit);
    } else {
      this.#clampInjected = false;
    }
  }

  /** The session's input audio settings as the upstream reports them (`inputAudioSettings`, and its format). */
  #onInputAudio(session: JsonObject | null): void {
    const input = inputAudioSettings(session);
    if (input && 'transcription' in input) this.#tx.reported(obj(input['transcription']));
    if (input && 'turn_detection' in input) {
      this.#turns.turnDetectionReported(obj(input['turn_detection']));
    }
    const reported = session ? budgetedInputBytesPerMs(session) : null;
    // An update still in flight asking for the denser format keeps it (the estimate stays high).
    const bytesPerMs = this.#settings.denserFormat(reported ?? this.#estimate.bytesPerMs);
    this.#estimate.setFormat(bytesPerMs, this.#ctx.audio.inputWireBytes, reported !== null);
  }

  /** The upstream reports a model a client `session.update` asked for (or its snapshot). */
  #isRequestedModel(reported: string): boolean {
    if (this.#requestedModels.includes(reported)) return true;
    const a = this.#rt.prices.own(reported);
    return a !== null && this.#requestedModels.some((m) => this.#rt.prices.own(m) === a);
  }

  #onResponseCreated(frame: Frame): Verdict | Promise<Verdict> {
    // Nothing the session reads after its close (the relay delivers no frame then) is billed.
    if (this.#closed) return CONTINUE;
    const response = obj(frame.json()['response']);
    const id = str(response?.['id']);
    if (!response || !id) return CONTINUE;
    const view = this.#ctx.conversation.response(id);
    this.#read.noteRead(view);
    // A conversation response started: the turn server VAD committed has its response (or one runs instead).
    if (view?.outOfBand !== true) this.#turns.responseStarted();
    if (this.#reservations.has(id)) return CONTINUE;
    // A response already billed by its response.done, started again (an upstream's bug, a replay): a
    // hold now would outlive the repeat's response.done (refused as a repeat) and be billed again at
    // the close (test/metering/redteam-22b-replayed-response.test.ts).
    if (this.#read.isSettled(id)) {
      this.#ctx.log.warn({ responseId: id }, 'metering: a response.created for a response already billed; not held again');
      return CONTINUE;
    }
    const started = { model: this.#model, lookup: this.#price };
    // Input audio held back already: no turn the client spoke started this one (server VAD's idle
    // timeout needs no audio, and re-arms after every response.done, a cancelled one's included).
    // Held by a peer only: a turn this session sent before the hold is no idle-timeout loop.
    const heldBefore = this.#audio.blocked !== null && this.#audio.blocked.peer !== true;
    // Calibration at response.done uses it only for a response in the default conversation. The
    // upstream started it before the client events still on their way to it were read (see serverStartMark).
    const mark = this.#estimate.serverStartMark();
    const createEventId = view?.createEventId ?? null;
    const pending = createEventId !== null ? this.#pending.get(createEventId) : undefined;
    if (pending) {
      this.#pending.delete(createEventId!);
      if (pending.timer) clearTimeout(pending.timer);
      pending.timer = null;
      // Its create_sent was not seen (no relay report): the start is the best mark known.
      if (pending.readsConversation && pending.mark === null) {
        pending.mark = mark;
        pending.markEpoch = this.#startEpoch();
      }
      pending.started = started;
      this.#reservations.set(id, pending);
      return CONTINUE;
    }
    // Started by the server (VAD create_response, idle timeout), or its create's reservation
    // already timed out: reserve now, before any output. A response cancelled right here still
    // holds its worst case (at the last-resort price when the model has none): the upstream may
    // bill the input it read before the cancel, and if its response.done never comes (client and
    // upstream gone) the hold is what gets billed. One rule for every cancel, never a free response.
    const expired = createEventId !== null ? this.#expired.get(createEventId) : undefined;
    if (expired) this.#expired.delete(createEventId!);
    const price = this.#price?.price ?? null;
    const effective = view?.maxOutputTokens ?? this.#settings.maxOutput() ?? 'inf';
    const textOnlyOutput = textOnly(response['output_modalities']) ?? this.#settings.textOnlyNow();
    const priced = price ?? this.#rt.prices.own(LAST_RESORT_REALTIME)!;
    const computed = this.#serverStartedWorstCase(priced, effective, textOnlyOutput);
    const ownOutput = { tokens: this.#outputLimitTokens(priced, effective), textOnly: textOnlyOutput };
    const unreserved = (amount: Amount): Reservation => ({
      id: null,
      amount,
      timer: null,
      mark,
      markEpoch: this.#startEpoch(),
      readsConversation: expired?.readsConversation ?? true,
      unread: false,
      started,
      ownInputInConversation: expired?.ownInputInConversation ?? false,
      output: expired ? { tokens: Math.max(expired.output.tokens, ownOutput.tokens), textOnly: expired.output.textOnly && ownOutput.textOnly } : ownOutput,
      mcp: (expired?.mcp ?? false) || this.#settings.mcpNow(),
    });
    const amount: Amount = expired ? { nanos: Math.max(computed.nanos, expired.amount.nanos), tokens: Math.max(computed.tokens, expired.amount.tokens) } : computed;
    // On a call the browser's response.create travels on its data channel, where the proxy cannot
    // clamp it: a response the upstream reports over the tenant's limit is cancelled instead.
    const cap = this.#outputCap();
    const asked = view?.maxOutputTokens ?? null;
    if (this.#ctx.callId && cap !== null && asked !== null && (asked === 'inf' || asked > cap)) {
      this.#holdResponse(id, unreserved(amount));
      this.#totals.cancelled++;
      // A lock refusal, not a cap: the call goes on (a cap would hang it up).
      this.#ctx.report({ kind: 'lock', field: 'max_output_tokens', action: 'rejected', direction: 'server' });
      this.#ctx.cancelResponse(id, BY, new ProxyError('max_output_tokens_exceeded', { details: { requested: String(asked), limit: cap } }));
      return CONTINUE;
    }
    if (this.#ending) {
      this.#holdResponse(id, unreserved(amount));
      this.#cancel(id, this.#ending);
      return CONTINUE;
    }
    if (!price || this.#overSessionTokens()) {
      const error = price ? this.#tokenLimitError(null) : unpricedError(this.#model, this.#rt, { close: null });
      this.#holdResponse(id, unreserved(amount));
      this.#cancel(id, error);
      // Over on settled tokens alone: hold the audio now (its response.done will too). Over only
      // with what running responses hold: their settles decide (#afterSettle); a cancelled response
      // is what the limit does to a turn, and the client's audio keeps flowing (barge-in). Not so a
      // transcription, which nothing cancels (#holdInFlight).
      if (price && this.#sessionSpent() && !this.#ending) {
        this.#audio.hold(null);
        if (heldBefore) this.#endIdleLoop(this.#tokenLimitError(null));
      }
      return CONTINUE;
    }
    if (!this.#capped) {
      this.#holdResponse(id, unreserved(amount));
      return CONTINUE;
    }
    // An asynchronous ledger pauses this direction while it answers; a tenant known to be at its
    // cap is cancelled right away instead.
    const known = this.#rt.ledger.knownOver?.(this.#ctx.tenant.id, this.#rt.wall()) ?? null;
    if (known) {
      this.#holdResponse(id, unreserved(amount));
      this.#cancel(id, budgetError(known));
      this.#audio.hold(known);
      if (heldBefore) this.#endIdleLoop(budgetError(known));
      return CONTINUE;
    }
    const rid = this.#sessionLedger.nextId();
    return then(this.#sessionLedger.reserve(rid, amount), (result): Verdict => {
      if (this.#closed) {
        // The session ended while the ledger answered (the upstream closed right behind this
        // response.created, say): the response started, and OpenAI bills what it read; the close
        // could not bill it (it was not held yet). Billed at its reservation, as a response whose
        // response.done never came. Until 2026-12-07 it was released unbilled
        // (test/metering/redteam-22-close-during-reserve.test.ts). Once: the close bills a response the
        // relay read running (#billStartedUnseen), this one among them.
        if (!this.#read.markSettled(id)) {
          if (result.kind === 'ok') this.#sessionLedger.release(rid);
          return CONTINUE;
        }
        this.#settleEstimate(id, { id: result.kind === 'ok' ? rid : null, amount }, this.#closeRule);
        return CONTINUE;
      }
      if (result.kind === 'ok') {
        this.#holdResponse(id, { ...unreserved(amount), id: rid });
        return CONTINUE;
      }
      this.#holdResponse(id, unreserved(amount));
      if (result.kind === 'unavailable') {
        if (reserveFailsOpen(this.#rt, result)) return CONTINUE;
        this.#reportLedgerUnavailable(id);
        this.#cancel(id, new ProxyError('budget_unavailable', { details: { reason: 'ledger unavailable' } })); // fixed, as above
        // No cap can be checked: the next spoken turn would be started, cancelled and billed too
        // (until 2026-12-06 every turn was, for as long as the ledger was down;
        // test/metering/redteam-money.test.ts). Held until the ledger answers again.
        this.#audio.hold('ledger');
        return CONTINUE;
      }
      this.#cancel(id, budgetError(result.hit));
      this.#audio.hold(result.hit);
      if (heldBefore) this.#endIdleLoop(budgetError(result.hit));
      return CONTINUE;
    });
  }

  /**
   * A server-started response cancelled over a cap or the session limit while input audio was held
   * back already: nothing the client sends can stop the next (the idle timeout starts one after every
   * response.done, each billed for the conversation it read), so the session ends (4002) whatever
   * `onExhausted` says, as a call is hung up (until 2026-12-06 a silent client over its cap was billed
   * an idle-timeout response every `idle_timeout_ms` without bound; test/metering/redteam-money.test.ts).
   */
  #endIdleLoop(error: ProxyError): void {
    this.#ctx.log.warn({ code: error.code }, 'metering: a server-started response while input audio is held back over a limit (idle timeout); ending the session');
    this.#endSession(error);
  }

  #cancel(responseId: string, error: ProxyError): void {
    this.#totals.cancelled++;
    this.#ctx.report(this.#budgetReport('cancelled', error, responseId));
    // Never a closing error here (the ending error is stored non-closing): the notice leaves the session up.
    this.#ctx.cancelResponse(responseId, BY, error);
    if (this.#rt.config.onExhausted === 'end_session' && (error.code === 'budget_exceeded' || error.code === 'token_limit_exceeded')) {
      this.#endSession(error);
    }
  }

  #onResponseDone(frame: Frame): void {
    const response = obj(frame.json()['response']);
    const id = str(response?.['id']);
    if (!response || !id) return;
    const view = this.#ctx.conversation.response(id);
    this.#read.noteRead(view);
    if (!this.#read.markSettled(id)) {
      this.#ctx.log.warn({ responseId: id }, 'metering: a second response.done for one response; not billed again');
      return;
    }
    const reservation = this.#reservations.get(id) ?? null;
    this.#reservations.delete(id);
    if (reservation) this.#heldTokens -= reservation.amount.tokens;
    this.#mcp.responseDone(id);
    const t = view?.usage ?? null;
    // The model the response started at (a switch while it ran applies to later responses only).
    const model = reservation?.started ? reservation.started.model : this.#model;
    let lookup = reservation?.started ? reservation.started.lookup : this.#price;
    const priceOf = (): PriceLookup => lookup ?? { price: this.#rt.prices.own(LAST_RESORT_REALTIME)!, fallback: true };
    const cost = t === null ? 0 : responseCost(priceOf().price, t, textOnly(response['output_modalities']) === true);
    // A count so large that its price (or the token total) is no exact integer: no ledger can add
    // it (Redis refuses it, and its settle queue retried it ahead of every later record, forever:
    // test/metering/redteam-22-huge-usage.test.ts), and no real response reports it.
    const problem = usageProblem(response['usage']) ?? (t !== null && !(Number.isSafeInteger(cost) && Number.isSafeInteger(t.totalTokens)) ? 'a count too large to price exactly' : null);
    if (view?.outOfBand === true) this.#items.outOfBandOutput(response, problem === null ? t : null);
    if (t === null || problem !== null) {
      // A response that started may have cost anything: a usage that cannot be priced is never
      // taken as zero; the response is billed at its reservation, as if its response.done never came.
      if (reservation) {
        this.#ctx.log.warn({ responseId: id, status: str(response['status']), problem: problem ?? 'no usage' }, 'metering: response.done with a usage that cannot be priced; billed at its reservation');
        this.#settleEstimate(id, reservation, 'unreadable_usage_estimate');
      } else {
        this.#ctx.log.warn({ responseId: id, problem: problem ?? 'no usage' }, 'metering: response.done with a usage that cannot be priced, for a response this session never saw start; not billed');
      }
      this.#afterSettle();
      return;
    }
    if (!lookup) {
      lookup = priceOf();
      this.#ctx.log.error({ model, responseId: id }, `metering: usage for an unpriced model billed at ${LAST_RESORT_REALTIME} prices`);
    }
    const record = responseRecord(this.#recordOwner(), id, model || lookup.price.id, str(response['status']), cost, t, lookup.fallback);
    this.#totals.responses++;
    this.#totals.costNanos += cost;
    this.#totals.inputTokens += t.inputTokens;
    this.#totals.outputTokens += t.outputTokens;
    this.#totals.cachedTokens += t.cachedTokens;
    this.#sessionTokens += t.totalTokens;
    this.#ctx.carried?.settled(this.#sessionTokens);
    // The upstream's count of a response that read the default conversation recalibrates its
    // estimate; an out-of-band response, or one with its own `input` list (it read that list, not
    // the conversation), leaves the estimate as it was.
    // A response that read under a truncation the client has changed since counted perhaps only the
    // conversation's newest part: its output joins the estimate, its count does not replace it.
    const readConversation = reservation?.mark && reservation.readsConversation && view && !view.outOfBand;
    if (readConversation && reservation.markEpoch === this.#truncationEpoch) this.#calibrate(reservation.mark!, t);
    else if (readConversation || reservation?.ownInputInConversation) {
      // A conversation response that read an `input` list of its own: its output joins the default
      // conversation all the same (until 2026-12-06 it was not counted: the next response reading the
      // conversation, or an out-of-band reference to that output, was reserved without it;
      // test/metering/redteam-money.test.ts).
      const items = Array.isArray(response['output']) ? response['output'].length : 0;
      this.#estimate.addItem(null, { text: ITEM_OVERHEAD * Math.max(1, items) + Math.max(t.output.text, t.outputTokens - t.output.audio), audio: t.output.audio, image: 0 });
    }
    this.#ctx.report({
      kind: 'usage',
      responseId: id,
      model: record.model,
      costMicros: divRound(cost, 1000),
      inputTokens: t.inputTokens,
      outputTokens: t.outputTokens,
      cachedTokens: t.cachedTokens,
      source: 'response',
    });
    this.#sessionLedger.settle(reservation?.id ?? null, record);
    this.#afterSettle();
  }

  /**
   * Recalibrates the estimate from a response's usage: `added` loses what was added before `mark`,
   * and so does every mark still outstanding (a create sent while this response ran took its mark
   * from the same `added`), so no later calibration subtracts it twice.
   */
  #calibrate(mark: ModalityTokens, t: { readonly input: ModalityTokens; readonly output: { readonly text: number; readonly audio: number } }): void {
    this.#estimate.calibrate(mark, t.input, t.output);
    const rebase = (r: Reservation): void => {
      if (r.mark) r.mark = { text: Math.max(0, r.mark.text - mark.text), audio: Math.max(0, r.mark.audio - mark.audio), image: Math.max(0, r.mark.image - mark.image) };
    };
    for (const r of this.#pending.values()) rebase(r);
    for (const r of this.#reservations.values()) rebase(r);
  }

  /**
   * A client commit. In a session that transcribes, under caps, the transcription's estimate (its
   * audio by its length, its prompt: InputTranscriptions.estimate) is reserved before the commit leaves,
   * as a response.create's worst case is; refused over a cap (as a create is, `param`
   * `input_audio_buffer.commit`), and input audio is held back. Until 2026-12-07 transcription was
   * billed only as it arrived: 20 commits of 100 ms in one write under a 40,000-character prompt
   * spent $0.50 against a $0.05 `worst_case` cap (test/metering/redteam-17-transcription-prompt.test.ts).
   */
  #onClientCommit(clientEventId: string | null): Verdict | Promise<Verdict> {
    // An update turning transcription on applies upstream before this commit, even if its session.updated is still on its way.
    // Appends behind the commit wait for its verdict (the chain queues them): the buffer is as now when it leaves.
    const ms = this.#estimate.uncommittedMs(this.#ctx.audio.inputWireBytes);
    const { model, promptTokens } = this.#tx.now(ms);
    // The session token limit counts transcription tokens: a commit is admitted, as a create is, only
    // while settled tokens plus what is held (responses, transcriptions awaited) are below it.
    if (model !== null && ms > 0 && !this.#closed && this.#overSessionTokens()) return this.#refuse(this.#tokenLimitError(clientEventId, 'input_audio_buffer.commit'));
    // An empty buffer: the upstream refuses the commit, nothing is transcribed.
    if (model === null || !this.#capped || ms <= 0 || this.#closed) return this.#commitLeaves(model === null ? null : { ms, model, promptTokens, reservations: [] });
    const id = this.#sessionLedger.nextId();
    return then(this.#sessionLedger.reserve(id, this.#tx.estimate(model, ms, promptTokens)), (result): Verdict => {
      if (this.#closed) {
        if (result.kind === 'ok') this.#sessionLedger.release(id);
        return DROP;
      }
      switch (result.kind) {
        case 'ok':
          return this.#commitLeaves({ ms, model, promptTokens, reservations: [id] });
        case 'over':
          this.#audio.hold(result.hit, false, !this.#ownSizeOver(result.hit));
          return this.#refuse(budgetError(result.hit, { eventId: clientEventId, param: 'input_audio_buffer.commit' }));
        case 'unavailable':
          if (reserveFailsOpen(this.#rt, result)) return this.#commitLeaves({ ms, model, promptTokens, reservations: [] });
          this.#audio.hold('ledger');
          return this.#refuseLedgerUnavailable(clientEventId, 'input_audio_buffer.commit');
        default: {
          const never: never = result;
          return never;
        }
      }
    });
  }

  /**
   * A client commit leaving for the upstream; `tx`: its transcription (null: the session does not
   * transcribe), tracked until its `committed` is read (InputTranscriptions.commitLeft).
   */
  #commitLeaves(tx: PendingTranscription | null): Verdict {
    // Metering runs last: the commit leaves for the upstream now, and a create sent right
    // behind it reads the committed audio (until 2026-12-05 the audio counted only at the
    // upstream's `committed`, after such a create had been reserved without it).
    const ms = this.#estimate.onClientCommit(this.#ctx.audio.inputWireBytes);
    if (tx !== null && !this.#closed) this.#tx.commitLeft({ ...tx, ms });
    this.#turns.clientCommitLeft();
    return CONTINUE;
  }

  /**
   * A committed item of a transcribed session that no client commit reserved for (server VAD
   * committed it on its own): its estimate is reserved now. The transcription runs upstream
   * whatever the answer (it is billed), so a refusal only holds input audio back: no further turn
   * is transcribed or started. The upstream's events wait for the answer (an asynchronous ledger),
   * so the item's completed event never comes before its reservation.
   */
  #reserveTranscription(itemId: string, pending: PendingTranscription): Verdict | Promise<Verdict> {
    const id = this.#sessionLedger.nextId();
    return then(this.#sessionLedger.reserve(id, this.#tx.estimate(pending.model, pending.ms, pending.promptTokens)), (result): Verdict => {
      if (result.kind === 'ok') {
        // Billed meanwhile (the close): nothing left to hold.
        if (!this.#closed && this.#tx.awaits(itemId, pending)) pending.reservations.push(id);
        else this.#sessionLedger.release(id);
        return CONTINUE;
      }
      if (this.#closed || this.#ending) return CONTINUE;
      if (result.kind === 'unavailable') {
        if (reserveFailsOpen(this.#rt, result)) return CONTINUE;
        this.#reportLedgerUnavailable();
        this.#audio.hold('ledger');
        return CONTINUE;
      }
      this.#audio.hold(result.hit, false, !this.#ownSizeOver(result.hit));
      return CONTINUE;
    });
  }

  /**
   * A transcription's reservation refused while the tenant's settled spend is under the cap: its
   * size is this session's doing (its transcription prompt), nothing the tenant's other sessions
   * would meet, so its hold is this session's alone. Until 2026-12-07 it reached every session of
   * the tenant (and any joining within a recheck period): one session's 40,000-character prompt
   * dropped the audio of all of them against a cap not a cent spent
   * (test/metering/redteam-17d-commit-hold-peers.test.ts).
   */
  #ownSizeOver(hit: CapHit): boolean {
    return hit.spent < hit.limit;
  }


  /**
   * At the close: a turn server VAD committed (and the upstream transcribes, which OpenAI bills) whose
   * `input_audio_buffer.committed` was never read (the client left, the upstream dropped, the proxy
   * ended the session). Billed by its audio length, estimated, when the session transcribes and turn
   * detection is on, and either
   * - server VAD heard speech in the buffer (`speech_started` read, its `committed` not): the audio
   *   from its `audio_start_ms` (the item starts there, padding included) to the end of the buffer;
   *   over when the upstream never committed it (the client left mid-speech), by at most that turn; or
   * - the client sent the buffer faster than real time (more audio than wall time since the buffer
   *   started, by more than REAL_TIME_SLACK_MS): the upstream's answers about that audio could not
   *   have come back yet, so a whole turn may be in it; the excess audio plus the prefix padding, within
   *   the buffer. Audio streamed in real time had its speech_started read (the first case) or was silence.
   * Until 2026-12-06 neither was billed (test/metering/redteam-money-2.test.ts).
   */
  #billUnreadTurn(rule: SettledBy): void {
    const { model, promptTokens } = this.#tx.now();
    const vad = this.#turns.vadNow();
    if (model === null || vad === null) return;
    const { ms, ref } = this.#unreadTurn(vad);
    if (ms > 0) this.#billUntranscribed(ref, { ms, model, promptTokens, reservations: [] }, rule);
  }

  /** A turn server VAD may have committed unread (InputTurns.unreadTurn), in the buffer as metering counts it now. */
  #unreadTurn(vad: { readonly padMs: number }): { ms: number; ref: string } {
    // The upstream's audio clock counts every byte appended in the session (ctx.audio, decoded).
    return this.#turns.unreadTurn(vad, this.#estimate.uncommittedMs(this.#ctx.audio.inputWireBytes), this.#ctx.audio.inputBytes / this.#estimate.bytesPerMs);
  }

  /**
   * At the close: the response server VAD starts for a turn it commits (`create_response`, on by
   * default), when the proxy never read its `response.created`: the turn's `committed` was read and no
   * conversation response started since (InputTurns.vadResponseDue), or the turn itself was never read (the
   * buffer holds speech server VAD heard, or audio sent faster than real time: #unreadTurn). Nothing
   * runs in the relay's view then, so it does not linger, and OpenAI bills the response (the whole
   * conversation it read, and its output until it stops). Billed at a server-started response's worst
   * case (the conversation, the buffer, the session's prompt, its max_output_tokens), `estimated`, ref
   * `vad:unread-response`. Until the twelfth session it was free: one conversation read for nothing a
   * session (src/metering/filter-twelfth.test.ts, test/metering/redteam-money-3.test.ts). Over: by that
   * worst case when the upstream never started it (a client leaving mid-speech, or a client's own
   * commit under server VAD left unanswered), or stopped it early (the output part). Not a call's
   * sideband (its call ends before the sideband closes, every response read) nor a transcription session.
   */
  #billUnreadVadResponse(rule: SettledBy): void {
    if (this.#ctx.callId || isTranscriptionIntent(this.#ctx.query)) return;
    const vad = this.#turns.vadNow();
    if (vad === null || !vad.createResponse) return;
    if (!this.#turns.vadResponseDue && this.#unreadTurn(vad).ms <= 0) return;
    // The response server VAD started for the turn metering never read was billed by its id
    // (#billStartedUnseen): its audio is that turn's, not one more (until 2026-12-07 billed twice:
    // test/metering/redteam-22b-unseen-vad-response-twice.test.ts).
    if (this.#unseenVadResponseBilled) return;
    const priced = this.#price?.price ?? this.#rt.prices.own(LAST_RESORT_REALTIME)!;
    const amount = this.#serverStartedWorstCase(priced, this.#settings.maxOutput() ?? 'inf', this.#settings.textOnlyNow(), this.#estimate.uncommitted(this.#ctx.audio.inputWireBytes));
    this.#settleEstimate('vad:unread-response', { id: null, amount }, rule);
  }

  #onCommitted(frame: Frame): Verdict | Promise<Verdict> {
    // The upstream's answer to the oldest client commit in flight (or a commit of its own: server VAD).
    const ahead = this.#tx.takeCommitAhead();
    this.#turns.committed(!isTranscriptionIntent(this.#ctx.query));
    const itemId = str(frame.json()['item_id']);
    const ms = this.#estimate.onCommitted(itemId, this.#ctx.audio.inputWireBytes);
    if (this.#tx.model === null || itemId === null || this.#closed) {
      // Not transcribed after all (turned off meanwhile): what its commit reserved is free again.
      if (ahead) this.#sessionLedger.releaseAll(ahead.reservations);
      return CONTINUE;
    }
    // The commit's reservation (if its client commit made one) is the item's now.
    // An item of the same id replaced: what it reserved is free again.
    const { pending, freed, dropped } = this.#tx.itemCommitted(itemId, ms, ahead);
    this.#sessionLedger.releaseAll(freed);
    if (dropped) this.#billUntranscribed(dropped[0], dropped[1], 'upstream_drop_estimate');
    if (!ahead && ms > 0) this.#holdInFlight();
    // A turn server VAD committed (no client commit reserved for it), or a commit made before the session transcribed.
    if (ahead || !this.#capped || ms <= 0 || !this.#tx.awaits(itemId, pending)) return CONTINUE;
    return this.#reserveTranscription(itemId, pending);
  }

  #onTranscription(frame: Frame): void {
    const ev = frame.json();
    const itemId = str(ev['item_id']) ?? 'item_unknown';
    if (this.#tx.takeDropped(itemId)) return;
    const pending = this.#tx.take(itemId);
    // The model the audio was committed under (a session.update may have changed it since).
    this.#billTranscription(itemId, this.#tx.price(itemId, pending ? pending.model : this.#tx.model, ev['usage'], 'transcription.completed', pending), pending?.reservations ?? []);
  }

  /** A committed item whose transcription never reported: billed by its audio length, estimated. */
  #billUntranscribed(itemId: string, pending: PendingTranscription, rule: SettledBy): void {
    this.#billTranscription(itemId, this.#tx.price(itemId, pending.model, { type: 'duration', seconds: pending.ms / 1000 }, rule, undefined, pending.promptTokens), pending.reservations);
  }

  /**
   * A transcription's record, as InputTranscriptions.price prices it (null: not billed; nothing was
   * reserved for it then), settling `reservations`.
   */
  #billTranscription(itemId: string, priced: PricedTranscription | null, reservations: readonly string[]): void {
    if (priced === null) return;
    const { cost, settledBy } = priced;
    const record = transcriptionRecord(this.#recordOwner(), itemId, priced);
    if (settledBy !== 'transcription.completed') {
      this.#totals.estimated++;
      this.#ctx.log.warn({ itemId, rule: settledBy, costNanos: cost.nanos }, 'metering: transcription without its completed event billed by its audio length');
    }
    this.#totals.transcriptionNanos += cost.nanos;
    this.#totals.costNanos += cost.nanos;
    this.#sessionTokens += cost.totalTokens;
    this.#ctx.carried?.settled(this.#sessionTokens);
    this.#ctx.report({
      kind: 'usage',
      responseId: itemId,
      model: record.model,
      costMicros: divRound(cost.nanos, 1000),
      inputTokens: cost.inputTokens,
      outputTokens: cost.outputTokens,
      cachedTokens: 0,
      source: 'transcription',
    });
    // Its reservation (its commit's estimate) gives way to what it cost; any more (a fold's) are freed.
    this.#sessionLedger.settle(reservations[0] ?? null, record);
    this.#sessionLedger.releaseAll(reservations.slice(1));
    // Transcription counts against the caps as it arrives: over a cap, the next response is
    // refused (reservations see the spend) and end_session ends the session now.
    this.#afterSettle();
  }

  #onError(frame: Frame): void {
    this.#settings.pruneGuesses();
    const eventId = str(obj(frame.json()['error'])?.['event_id']);
    if (eventId === null) return;
    this.#tx.transcriptionSessionUpdateAnswered(eventId);
    // A commit the upstream refused (an empty or too short buffer): no item, nothing transcribed.
    this.#sessionLedger.releaseAll(this.#tx.commitRefused(eventId));
    this.#liftInFlightHold();
    this.#turns.refused(eventId);
    // Not pending: paired already (a server-started response the view could not tell from this
    // create took its place, e.g. VAD won the race and the create was refused as a second active
    // response): the reservation stays with the response that runs.
    const r = this.#pending.get(eventId);
    if (r) this.#releasePending(eventId, r);
  }

  // ---- ledger -------------------------------------------------------------------------------

  /**
   * The worst case of a response the server starts (VAD, idle timeout): it reads the whole
   * conversation, the session's prompt and MCP tool lists, and `extra` input (audio not committed yet).
   */
  #serverStartedWorstCase(priced: ModelPrice, maxOutput: number | 'inf', textOnlyOutput: boolean, extra: Readonly<ModalityTokens> = NO_TOKENS): Amount {
    const input = add(add(add(this.#estimate.total(), this.#settings.promptNow()), extra), this.#mcpListInput(undefined, true));
    return this.#worstCase(priced, input, promptOf(this.#settings.instructions(), this.#settings.tools()), maxOutput, textOnlyOutput);
  }

  /** Context estimate × input rates + output cap × output rate (see context.ts for the estimate). */
  #worstCase(price: ModelPrice, input: ModalityTokens, promptTokens: number, maxOutput: number | 'inf', textOnlyOutput: boolean): Amount {
    // At the dearest of the model in use and any a switch in flight asks (until 2026-12-05 the
    // model in use only: a create right behind a switch to a dearer model was under-reserved).
    let worst: Amount | null = null;
    for (const p of this.#settings.pricesNow(price)) {
      const out = maxOutput === 'inf' ? p.maxOutputTokens : maxOutput;
      const a = worstCaseOf(p, input, promptTokens + this.#rt.config.inputAllowanceTokens, out, textOnlyOutput);
      worst = worst === null ? a : { nanos: Math.max(worst.nanos, a.nanos), tokens: Math.max(worst.tokens, a.tokens) };
    }
    return worst!;
  }

  /** After a response settles: enforce session limits and the end_session policy. */
  #afterSettle(): void {
    if (this.#ending) {
      if (this.#ctx.conversation.activeResponses().length === 0) this.#finishEnding();
      return;
    }
    const endOnExhaust = this.#rt.config.onExhausted === 'end_session';
    if (this.#sessionSpent()) {
      // Nothing more can run in this session: end it, or (refuse) hold its input audio back, so
      // no further turn is transcribed or started upstream (each would be cancelled and billed).
      if (endOnExhaust) this.#endSession(this.#tokenLimitError(null));
      else this.#audio.hold(null);
      return;
    }
    this.#liftInFlightHold();
    // Refuse policy: only sessions with input transcription need the check (their audio is gated).
    if (!this.#capped || (!endOnExhaust && this.#tx.model === null)) return;
    let status;
    try {
      status = this.#rt.ledger.status(this.#ctx.tenant.id, this.#limits.caps, this.#rt.wall());
    } catch {
      return;
    }
    const check = then(status, (s) => {
      if (this.#closed || this.#ending) return;
      const hit = spentCap(s);
      if (!hit) return;
      if (endOnExhaust) this.#endSession(budgetError(hit));
      else this.#audio.hold(hit);
    });
    if (check instanceof Promise) check.catch(() => undefined);
  }

  /**
   * Whether the tenant's caps let this session's input audio flow again: settled spend under every
   * cap and, under `worst_case` admission, room for the worst case of the server-VAD response its
   * next turn would start (that reservation refused is what held it). Until 2026-12-07 only settled
   * spend was asked: a tenant just under its cap had its holds, its peers' too, lifted at every
   * recheck, and each session's next turn was started, cancelled and billed for the conversation it
   * read (test/metering/redteam-16b-peer-hold-recheck.test.ts).
   */
  #audioFits(s: TenantStatus): boolean {
    if (spentCap(s) !== null) return false;
    // A call's sideband or a transcription session starts no response: its audio costs transcription only.
    if (this.#rt.config.admission !== 'worst_case' || this.#ctx.callId || isTranscriptionIntent(this.#ctx.query)) return true;
    const priced = this.#price?.price ?? this.#rt.prices.own(LAST_RESORT_REALTIME)!;
    const next = this.#serverStartedWorstCase(priced, this.#settings.maxOutput() ?? 'inf', this.#settings.textOnlyNow());
    return firstHit(s.day, s.month, s.day.reserved, next, 'worst_case') === null;
  }

  /**
   * A turn server VAD committed on its own (no client commit was checked for it): it is transcribed
   * upstream whatever the proxy answers (nothing cancels a transcription, unlike its response), as is
   * every turn already in the audio sent behind it. When the session's settled tokens plus what its
   * transcriptions (this one's estimate included) and responses in flight hold reach its token limit,
   * input audio is held back from here, as a refused transcription reservation holds it over a cap,
   * so audio the client sends on does not reach the upstream to be turned into more turns: until
   * 2026-12-07 only settled tokens held it, and every turn the client sent before the first
   * transcription settled was transcribed past the limit (test/metering/redteam-19-vad-burst.test.ts).
   * Lifted when what is in flight leaves (#liftInFlightHold: settled, failed, refused or released) with
   * the session under its limit again; held for good when its settled tokens reach it.
   */
  #holdInFlight(): void {
    if (this.#closed || this.#ending || !this.#overSessionTokens()) return;
    this.#audio.hold('in_flight', false, false);
  }

  /** Something in flight left (settled, failed, refused upstream, released) and the session is under its token limit: a hold of what was in flight is lifted. */
  #liftInFlightHold(): void {
    if (!this.#closed && this.#audio.blocked?.hit === 'in_flight' && !this.#overSessionTokens()) this.#audio.release();
  }

  /** An input audio frame while over a cap: dropped; the client hears why once; the ledger is asked again now and then. */
  #onBlockedAudio(): Verdict {
    const blocked = this.#audio.blocked!;
    const hit = blocked.hit;
    if (hit === 'in_flight') {
      // Lifted by the settles (#afterSettle), not by the ledger.
      if (blocked.notified) return DROP;
      blocked.notified = true;
      this.#totals.refused++;
      this.#ctx.report({ kind: 'budget', action: 'refused', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null });
      const e = this.#tokenLimitError(null);
      return reject(new ProxyError('token_limit_exceeded', { message: `${e.message} Input audio is not accepted until the transcriptions and responses in flight are billed.`, details: e.details ?? {}, param: 'input_audio_buffer.append', close: null }));
    }
    if (hit === null) {
      if (blocked.notified) return DROP;
      blocked.notified = true;
      this.#totals.refused++;
      this.#ctx.report({ kind: 'budget', action: 'refused', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null });
      const e = this.#tokenLimitError(null);
      return reject(new ProxyError('token_limit_exceeded', { message: `${e.message} Input audio is not accepted for the rest of the session.`, details: e.details ?? {}, param: 'input_audio_buffer.append', close: null }));
    }
    const now = this.#rt.wall();
    if (!blocked.checking && now - blocked.since >= AUDIO_RECHECK_MS) {
      blocked.checking = true;
      // A failed recheck is retried sooner than a refusing one, but not at the next frame: with the
      // ledger down every 20-40 ms frame would ask (one IPC round trip each in a relay worker).
      const failed = (): void => {
        blocked.checking = false;
        blocked.since = this.#rt.wall() - AUDIO_RECHECK_MS + AUDIO_RECHECK_FAILED_MS;
      };
      let status: MaybePromise<TenantStatus> | null = null;
      try {
        status = this.#rt.ledger.status(this.#ctx.tenant.id, this.#limits.caps, now);
      } catch {
        // SQLite answers synchronously and throws when its file cannot be read: until 2026-12-07
        // that left `checking` true and the session's audio held for good
        // (test/metering/redteam-17b-recheck-throws.test.ts).
        failed();
      }
      const recheck =
        status === null
          ? null
          : then(status, (s) => {
              blocked.checking = false;
              blocked.since = this.#rt.wall();
              if (this.#audioFits(s) && this.#audio.blocked === blocked && blocked.hit !== null) this.#audio.release();
            });
      if (recheck instanceof Promise) recheck.catch(failed);
    }
    if (blocked.notified) return DROP;
    blocked.notified = true;
    this.#totals.refused++;
    if (hit === 'ledger') {
      this.#reportLedgerUnavailable();
      return reject(new ProxyError('budget_unavailable', { message: 'The spend ledger is unavailable: input audio is not accepted until it answers again.', details: { reason: 'ledger unavailable' }, param: 'input_audio_buffer.append', close: null }));
    }
    this.#ctx.report({ kind: 'budget', action: 'refused', scope: 'tenant', limit: hit.cap, code: 'budget_exceeded', responseId: null });
    const e = budgetError(hit);
    return reject(new ProxyError('budget_exceeded', { message: `${e.message} Input audio is not accepted until the budget allows.`, details: e.details ?? {}, param: 'input_audio_buffer.append', close: null }));
  }

  /**
   * Ends the session for a limit: running responses are cancelled and the session closes once
   * their response.done (with its usage) has been billed, or after END_GRACE_MS.
   */
  #endSession(error: ProxyError): void {
    if (this.#closed || this.#ending) return;
    this.#ending = error.closesSession ? new ProxyError(error.code, { message: error.message, details: error.details ?? {}, close: null }) : error;
    this.#ctx.report(this.#budgetReport('ended', error, null));
    for (const id of [...this.#ctx.conversation.activeResponses()]) {
      if (!this.#ctx.isSuppressed(id)) this.#ctx.cancelResponse(id, BY, this.#ending);
    }
    if (this.#ctx.conversation.activeResponses().length === 0) {
      this.#finishEnding();
      return;
    }
    this.#endTimer = this.#ctx.setTimer(END_GRACE_MS, () => this.#finishEnding());
  }

  #finishEnding(): void {
    if (this.#closed || !this.#ending) return;
    if (this.#endTimer) clearTimeout(this.#endTimer);
    this.#endTimer = null;
    const e = this.#ending;
    this.#ctx.close(new ProxyError(e.code, { message: e.message, details: e.details ?? {}, close: 'limitExceeded' }));
  }

  #withEvent(error: ProxyError, eventId: string | null): ProxyError {
    return new ProxyError(error.code, { message: error.message, details: error.details ?? {}, eventId, close: null });
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * The client left with audio in the input buffer under turn detection: server VAD may still commit
   * a turn in it and start its response, which OpenAI bills and nobody would read. The proxy clears
   * the buffer and the relay keeps reading the upstream (awaitingUpstream) until the `cleared` comes
   * back and any response due for a turn committed before it has started (the relay cancels it and
   * its `response.done` bills what ran). So what a client sends before leaving is billed as it ran,
   * not at the close's estimate, which stays for an upstream that does not answer within
   * `metering.lingerAfterClientCloseMs` (#billUnreadTurn, #billUnreadVadResponse). Until 2026-12-06
   * (twelfth session) the close estimated such a turn and its response whenever speech had been heard:
   * an honest caller hanging up mid-sentence was billed a whole worst-case response that never ran.
   * Not a call's sideband (its call ends before the sideband closes).
   */
  onClientGone(): void {
    if (this.#closed || this.#ctx.callId || this.#turns.vadNow() === null) return;
    if (!this.#turns.mayHoldTurn(this.#estimate.uncommittedMs(this.#ctx.audio.inputWireBytes))) return;
    const eventId = this.#ctx.nextEventId();
    this.#turns.clearSentForGoneClient(eventId);
    this.#ctx.sendUpstream({ type: 'input_audio_buffer.clear', event_id: eventId }, BY);
  }

  awaitingUpstream(): boolean {
    return !this.#closed && this.#turns.awaitingUpstream();
  }

  onClose(info: CloseInfo): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#leaveTenantHolds?.();
    this.#leaveTenantHolds = null;
    if (this.#durationTimer) clearTimeout(this.#durationTimer);
    if (this.#endTimer) clearTimeout(this.#endTimer);
    // Responses that started but whose response.done never came (the relay lingered for it after
    // a client close): OpenAI bills them, so they are billed at their reservation, marked estimated.
    const rule: SettledBy = info.initiator === 'client' ? 'client_gone_estimate' : info.initiator === 'upstream' ? 'upstream_drop_estimate' : 'session_end_estimate';
    this.#closeRule = rule;
    // What a response the view forgot unread may have cost at most, were it one of these creates' (#billForgotten).
    const dearestCreate = this.#dearestCreate();
    for (const [eventId, r] of this.#pending) {
      // Creates the upstream never started (no response.created): nothing ran, nothing is billed.
      // Unless it was not read while they waited: the response may have run unseen, billed as one
      // whose response.done never came (by the create's event_id, its only name here). Until
      // 2026-12-05 they were released as never started. Or the relay read its response.created
      // and metering did not (queued behind an asynchronous verdict when the session ended): it
      // started, billed the same way (until 2026-12-07 it was released unbilled;
      // test/metering/redteam-22-started-unread-create.test.ts).
      const started = this.#startedUnseen(eventId);
      // Its response was learned unread and forgotten since: billed by its place (#billForgotten), at
      // no less than this create's reservation (dearestCreate). Until 2026-12-07 (red team) it was
      // billed by this event id too, twice (src/metering/filter-unread-at-close.test.ts, "once").
      if (started === null && (!r.unread || this.#read.forgottenUnread(eventId))) {
        this.#releasePending(eventId, r);
        continue;
      }
      if (r.timer) clearTimeout(r.timer);
      this.#pending.delete(eventId);
      this.#settleEstimate(started ?? eventId, r, rule);
    }
    // The same for a create released unanswered (pendingResponseTimeoutMs, its reservation freed)
    // whose response the relay read started while its response.created waited behind a verdict.
    for (const [eventId, r] of this.#expired) {
      const started = this.#startedUnseen(eventId);
      if (started !== null) this.#settleEstimate(started, { id: null, amount: r.amount }, rule);
    }
    this.#expired.clear();
    this.#billStartedUnseen(rule, dearestCreate);
    for (const [responseId, r] of this.#reservations) this.#settleEstimate(responseId, r, rule);
    this.#reservations.clear();
    this.#heldTokens = 0;
    // Committed items, then commits the upstream got whose committed event was never read (named by their stamped id).
    for (const [ref, pending] of this.#tx.takeAllUnreported()) this.#billUntranscribed(ref, pending, rule);
    this.#billUnreadVadResponse(rule);
    this.#billUnreadTurn(rule);
    if (this.#slot) this.#giveUpSlot(this.#slot);
  }

  /** The session's concurrency slot at its end: left for the call's next sideband (CarriedUsage.slotGoesOn), else given back. */
  #giveUpSlot(slot: string): void {
    const ledger = this.#rt.ledger;
    if (this.#ctx.carried?.slotGoesOn?.() === true && ledger.leaveSlot) ledger.leaveSlot(this.#ctx.tenant.id, slot);
    else ledger.releaseSlot(this.#ctx.tenant.id, slot);
  }

  /**
   * At the close, after the creates' own (#startedUnseen): responses the relay read started (its
   * conversation view reads every upstream frame as it arrives) that metering holds nothing for and
   * never billed: running ones whose response.created queued behind an asynchronous verdict when the
   * session ended, and ones whose response.done queued there too (no longer running, but never read
   * here: learned after ResponsesRead's last read). The upstream's own (server VAD, the idle timeout) above
   * all. OpenAI bills them: each at a server-started response's worst case; the upstream's own in the
   * conversation is the response a committed turn was due (not billed again as `vad:unread-response`).
   * Until 2026-12-07 they were free (test/metering/redteam-22-close-during-reserve.test.ts); the done
   * ones until the twenty-third pass (same file, "both waited"). A done response is walked only when
   * metering read no frame of it, never because ResponsesRead forgot its id: the view keeps responses
   * otherwise than that memory drops them, and a response billed long ago must not be billed again
   * (test/metering/redteam-23-unread-done-billed-once.test.ts).
   */
  #billStartedUnseen(rule: SettledBy, dearestCreate: Amount): void {
    const conversation = this.#ctx.conversation;
    const { ids: unseen, kept } = this.#read.unreadAtClose();
    const priced = this.#price?.price ?? this.#rt.prices.own(LAST_RESORT_REALTIME)!;
    for (const id of unseen) {
      const view = conversation.response(id);
      if (!view || this.#reservations.has(id) || !this.#read.markSettled(id)) continue;
      if (!view.outOfBand && view.createEventId === null) {
        this.#turns.responseStarted();
        this.#unseenVadResponseBilled = true;
      }
      this.#settleEstimate(id, { id: null, amount: this.#serverStartedWorstCase(priced, view.maxOutputTokens ?? this.#settings.maxOutput() ?? 'inf', this.#settings.textOnlyNow()) }, rule);
    }
    this.#billForgotten(rule, kept, dearestCreate, priced);
  }

  /**
   * At the close, the responses the view learned of after metering's last read and has forgotten
   * since (it keeps the most recent MAX_RESPONSES, 256, and forgets done ones first): at most 64 run
   * at once, but done ones free their place, so a client's creates (and server VAD) go on while one
   * verdict (a blocking guardrail's, up to 30 s) holds the server direction, and past 256 the oldest
   * of them were neither billed nor released as billed. Their ids are gone; their places (`learned`)
   * are not: each is billed once under `unread-response:<place>`, at the most it may have cost: a
   * server-started response's worst case, or the dearest create waiting here (a create metering read
   * and whose response.created it did not: that create is released as never started, so its response
   * is billed here, never twice). Until 2026-12-07 they were free (src/metering/filter-unread-at-close.test.ts,
   * "300"). How many: no more than the responses whose frames wait in the server direction's queue,
   * which its byte budget bounds.
   */
  #billForgotten(rule: SettledBy, kept: ReadonlySet<number>, dearestCreate: Amount, priced: ModelPrice): void {
    const places = this.#read.forgotten(kept);
    if (places.length === 0) return;
    const serverStarted = this.#serverStartedWorstCase(priced, this.#settings.maxOutput() ?? 'inf', this.#settings.textOnlyNow());
    const amount: Amount = { nanos: Math.max(serverStarted.nanos, dearestCreate.nanos), tokens: Math.max(serverStarted.tokens, dearestCreate.tokens) };
    for (const place of places) this.#settleEstimate(`unread-response:${place}`, { id: null, amount }, rule);
  }

  /** The largest reservation of a create still waiting for its response.created, or released unanswered (#expired). */
  #dearestCreate(): Amount {
    let nanos = 0;
    let tokens = 0;
    for (const r of [...this.#pending.values(), ...this.#expired.values()]) {
      nanos = Math.max(nanos, r.amount.nanos);
      tokens = Math.max(tokens, r.amount.tokens);
    }
    return { nanos, tokens };
  }

  /**
   * A response the relay read started for the create sent with `eventId` (the conversation view reads
   * every upstream frame as it arrives) that metering has neither held nor billed: its
   * response.created waits behind an asynchronous verdict (a reservation on an asynchronous ledger, a
   * guardrail's). Its id (taken as billed from now: never named twice), or null.
   */
  #startedUnseen(eventId: string): string | null {
    for (const view of this.#ctx.conversation.responsesOfCreate(eventId)) {
      if (!this.#reservations.has(view.id) && this.#read.markSettled(view.id)) return view.id;
    }
    return null;
  }

  /** Whose a record settled now is: this session's, at the wall time. */
  #recordOwner(): RecordOwner {
    return { ts: this.#rt.wall(), tenant: this.#ctx.tenant.id, session: this.#ctx.id };
  }

  #settleEstimate(responseId: string, r: Pick<Reservation, 'id' | 'amount'>, rule: SettledBy): void {
    // No price for the session's model: the hold was taken at the last-resort price (a fallback price).
    const record = estimatedResponseRecord(this.#recordOwner(), responseId, this.#model || (this.#price?.price.id ?? LAST_RESORT_REALTIME), r.amount, rule, this.#price?.fallback ?? true);
    this.#totals.responses++;
    this.#totals.estimated++;
    this.#totals.costNanos += r.amount.nanos;
    this.#sessionTokens += r.amount.tokens;
    this.#ctx.carried?.settled(this.#sessionTokens);
    if (rule !== 'unreadable_usage_estimate') this.#ctx.log.warn({ responseId, rule, costNanos: r.amount.nanos }, 'metering: response without response.done billed at its reservation');
    this.#ctx.report({ kind: 'usage', responseId, model: record.model, costMicros: divRound(r.amount.nanos, 1000), inputTokens: 0, outputTokens: 0, cachedTokens: 0, source: 'response' });
    this.#sessionLedger.settle(r.id, record);
  }

  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return this.#totals.summary(this.#model, this.#sessionTokens);
  }
}
