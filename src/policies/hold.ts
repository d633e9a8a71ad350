import { CONTINUE, DROP, reject, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { JsonObject } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import { asArray, asObject, asString, keptId } from '../protocol/json.js';
import type { SpokenTurnsRecord } from '../protocol/spoken-turns.js';
import { pairStamp } from './util.js';

/** Committed spoken turns (and client commits on their way) one session may have waiting at once. */
export const MAX_HELD_TURNS = 8;
/** Longest a response owed for checked turns waits for the response in flight to end. */
const MAX_RESPONSE_WAIT_MS = 60_000;

/** A client `response.create` paused until the held turns before it are decided. */
interface WaitingCreate {
  readonly inConversation: boolean;
  readonly eventId: string | null;
  readonly resolve: (v: Verdict) => void;
  readonly timer: NodeJS.Timeout;
}

interface InFlightCommit {
  /** The client's own event_id (null: sent without one). */
  readonly eventId: string | null;
  /**
   * The event_id it left with (`commitStamped`): an upstream `error` about it names this one. Never
   * the client's own: an error about another event carrying that id (an unread audio append) would
   * take the commit for refused, and a create could start before the turn is checked.
   */
  upstreamId: string | null;
  readonly timer: NodeJS.Timeout;
}

export interface HoldDetails {
  readonly policy: string;
  readonly policyVersion: string;
}

/** Turns that passed and wait for the response that answers them (the record's `answering` pins, see SpokenTurnHold#turns). */
const MAX_ANSWERING = 2 * MAX_HELD_TURNS;

/**
 * Spoken turns held until their transcript is checked (policy `guardrails.holdSpokenInput`).
 * The locks keep `turn_detection.create_response` off, so the server never answers a turn by
 * itself; this class decides when a response may start:
 *
 * - every committed user audio item is *held* until the guardrail filter decides its transcript
 *   (`passed` / `blocked`; a failed or late transcript follows `inputTranscriptionFailure`);
 * - when nothing is held any more and at least one turn passed, the proxy sends `response.create`
 *   (origin `proxy` in the conversation view), once the in-conversation response in flight, if
 *   any, has ended. A response never starts while a turn is held, so it never hears an unchecked
 *   turn, and a blocked turn is deleted upstream before any response exists;
 * - a client `response.create` sent while a turn is held (or a client commit is on its way) is
 *   paused until the turns are decided: it then goes on and stands for the turn (the proxy sends
 *   none), or is refused with `guardrail_blocked` when the only turns before it were blocked;
 * - a response the server starts on its own while a turn is held (the lock did not take) is
 *   cancelled by the caller (`serverStartedEarly`);
 * - any response (client, proxy or out of band alike) that starts while a turn is held, or while
 *   the delete of a blocked turn is not confirmed yet, is cancelled by the caller too
 *   (`startedUnchecked`): its create reached the upstream after the turn was committed (a create
 *   sent just before the commit reached the proxy), so it heard the unchecked turn. A proxy
 *   response cancelled that way is owed again once the turns are decided; a client one stands
 *   for the turn like a paused create (the proxy answers it if it passes, nothing if blocked).
 *
 * Bounded: at most MAX_HELD_TURNS held turns and in-flight commits, one paused client create,
 * every wait with a timer (the transcript deadline is the guardrail filter's).
 */
export class SpokenTurnHold {
  readonly #ctx: SessionContext;
  readonly #by: string;
  readonly #timeoutMs: number;
  readonly #details: () => HoldDetails;
  /**
   * The session's record of its spoken turns, in the conversation view (`spokenTurns`, until
   * 2026-12-06 sets of this class that the truncation filter reached through a module-level map).
   * This class decides every change; others read it there. It keeps:
   * - `held`: committed user audio items whose transcript is not decided yet;
   * - `answering`: turns that passed and whose response has not started yet. No prune may delete
   *   them (the truncation filter pins them with the held ones), else the response owed for a turn
   *   would answer a conversation without it (until 2026-12-06 with `keepLast: 0` a held turn over
   *   the budget was deleted before the proxy's response). Kept until a create for them leaves (the
   *   proxy's) or the next response ends with nothing owed (a client create stood for them);
   * - `standing`: the client `response.create` this hold let go last stands for turns that passed
   *   (the proxy owes none for them while it does). A later filter that stops it (the chain tells
   *   the view: `ChainSink.stopped`; the truncation budget prunes for the proxy's create first)
   *   leaves them owed again, unless the refusal stops every response (a spending cap):
   *   until 2026-12-06 such a turn went unanswered.
   */
  readonly #turns: SpokenTurnsRecord;
  /** Client commits sent upstream and not answered yet (`committed` or an error): their item is on its way. */
  readonly #commits: InFlightCommit[] = [];
  #waiting: WaitingCreate | null = null;
  #passed = 0;
  #blocked = 0;
  /** A response is owed for turns that passed (sent once nothing is held and no response is in flight). */
  #owed: NodeJS.Timeout | null = null;
  #created = 0;
  #closed = false;
  /**
   * Blocked turns whose `conversation.item.deleted` has not come back yet: a response the upstream
   * started before it read the delete heard them. Each kept at most `timeoutMs` (a delete the
   * upstream refuses, as for an item already gone, never confirms).
   */
  readonly #unconfirmed = new Map<string, NodeJS.Timeout>();
  /** A response the proxy created for checked turns was cancelled (it heard a held turn): owed again. */
  #reowe = false;
  /** The turns the proxy's last create was for: pinned again if that response is cancelled and owed again (`startedUnchecked`). */
  #createdFor: string[] = [];

  constructor(ctx: SessionContext, by: string, timeoutMs: number, details: () => HoldDetails) {
    this.#ctx = ctx;
    this.#by = by;
    this.#timeoutMs = timeoutMs;
    this.#details = details;
    // A later filter (or the upstream) refusing the client create that stands for turns: owed again (the view tells the record).
    this.#turns = ctx.conversation.spokenTurns.open(MAX_ANSWERING, () => this.#owe());
  }

  /** The deadline of every wait (a held turn's transcript, a paused client create). */
  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /** Responses the proxy created for held turns. */
  get created(): number {
    return this.#created;
  }

  /** A turn is held or a client commit is on its way: no response may start now. */
  get busy(): boolean {
    return this.#turns.heldCount > 0 || this.#commits.length > 0;
  }

  isHeld(itemId: string | null): itemId is string {
    return itemId !== null && this.#turns.pinned(itemId) === 'held';
  }

  /** The item is a spoken turn held for its transcript, or one that passed and waits for its response: no prune may delete it. */
  awaitsAnswer(itemId: string): boolean {
    return !this.#closed && this.#turns.pinned(itemId) !== undefined;
  }

  // ---- client → upstream --------------------------------------------------------------------

  /** A client `input_audio_buffer.commit` went upstream: its item will be held once committed. */
  commitSent(eventId: string | null): void {
    if (this.#commits.length >= MAX_HELD_TURNS) clearTimeout(this.#commits.shift()!.timer);
    const entry: InFlightCommit = {
      // As pairStamp compares it (a long client id as its hash: kept until the commit is answered).
      eventId: eventId === null ? null : keptId(eventId),
      upstreamId: null,
      timer: this.#ctx.setTimer(this.#timeoutMs, () => {
        // Never answered: nothing was committed that could be answered.
        const at = this.#commits.indexOf(entry);
        if (at >= 0) this.#commits.splice(at, 1);
        this.#settle();
      }),
    };
    this.#commits.push(entry);
  }

  /** The relay sent a client commit upstream with this id of its own (the first one unstamped with that client id). */
  commitStamped(clientEventId: string | null, upstreamId: string): void {
    pairStamp(this.#commits, clientEventId, upstreamId);
  }

  /**
   * A client `response.create` (already through the content rules). Goes on at once when nothing
   * is held; otherwise waits until the held turns are decided (at most `timeoutMs`).
   */
  clientCreate(ev: JsonObject): Verdict | Promise<Verdict> {
    const inConversation = asObject(ev['response'])?.['conversation'] !== 'none';
    this.#turns.stand(false);
    if (!this.busy || this.#closed) {
      // While an in-conversation response runs, the upstream refuses this create
      // (conversation_already_has_active_response): a response owed for a checked turn still stands.
      // If that response ends first, the client's create answers the turn and the proxy's, sent
      // after it, is refused upstream as a harmless race (RelaySession#isAboutInjected).
      if (inConversation && !this.#inConversationResponseActive()) {
        this.#turns.stand(this.#owed !== null);
        this.#coveredByClient();
      }
      return CONTINUE;
    }
    if (this.#waiting) return CONTINUE; // cannot happen: the client direction is paused on the first
    const eventId = asString(ev['event_id']);
    return new Promise<Verdict>((resolve) => {
      const timer = this.#ctx.setTimer(this.#timeoutMs, () => {
        if (this.#waiting?.resolve !== resolve) return;
        this.#waiting = null;
        resolve(reject(this.#refusal(eventId, 'The spoken turn before this response.create was not checked in time; no response was created.')));
      });
      this.#waiting = { inConversation, eventId, resolve, timer };
    });
  }

  // ---- upstream → client --------------------------------------------------------------------

  /** A user audio item was committed: held until its transcript is decided. False when over the cap (fail it closed). */
  committed(itemId: string): boolean {
    const commit = this.#commits.shift();
    if (commit) clearTimeout(commit.timer);
    if (this.isHeld(itemId)) return true;
    if (this.#turns.heldCount >= MAX_HELD_TURNS) return false;
    this.#turns.hold(itemId);
    return true;
  }

  /**
   * An upstream `error`: a refused client commit (nothing committed) is no longer on its way; a
   * refused client create that stood for passed turns leaves them owed the proxy's own create (as
   * one a later filter refuses, `ChainSink.stopped`; until 2026-12-06 such a turn went unanswered).
   */
  error(ev: JsonObject): void {
    const body = asObject(ev['error']);
    const eventId = asString(body?.['event_id']);
    if (eventId !== null && !this.#closed) this.#turns.refusedUpstream(eventId);
    if (this.#commits.length === 0) return;
    let at = eventId !== null ? this.#commits.findIndex((c) => c.upstreamId === eventId) : -1;
    if (at < 0 && (asString(body?.['code']) ?? '').startsWith('input_audio_buffer_commit')) at = 0;
    if (at < 0) return;
    clearTimeout(this.#commits.splice(at, 1)[0]!.timer);
    this.#settle();
  }

  /** The held turn's transcript passed the input rules (or failed open by policy). */
  passed(itemId: string): void {
    if (!this.#turns.decided(itemId)) return;
    this.#passed++;
    this.#turns.answering(itemId);
    this.#settle();
  }

  /** The held turn was blocked: the caller deleted it upstream. */
  blocked(itemId: string): void {
    if (!this.#turns.decided(itemId)) return;
    this.#blocked++;
    this.deleting(itemId);
    this.#settle();
  }

  /**
   * The caller sent the delete of a committed turn that was never checked (blocked, or over the
   * cap): until the upstream confirms it, a response that starts may have heard the turn.
   */
  deleting(itemId: string): void {
    if (this.#closed || this.#unconfirmed.has(itemId)) return;
    if (this.#unconfirmed.size >= MAX_HELD_TURNS) {
      const [oldest, timer] = this.#unconfirmed.entries().next().value!;
      clearTimeout(timer);
      this.#unconfirmed.delete(oldest);
    }
    this.#unconfirmed.set(itemId, this.#ctx.setTimer(this.#timeoutMs, () => this.itemDeleted(itemId)));
  }

  /** Deletes of blocked turns not confirmed yet (the caller reads `conversation.item.deleted` only then). */
  get awaitingDeletes(): boolean {
    return this.#unconfirmed.size > 0;
  }

  /** The upstream confirmed an item's delete (or the wait for it ended). */
  itemDeleted(itemId: string | null): void {
    const timer = itemId !== null ? this.#unconfirmed.get(itemId) : undefined;
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#unconfirmed.delete(itemId!);
    if (this.#unconfirmed.size === 0 && this.#reowe && !this.busy) {
      this.#reowe = false;
      this.#owe();
    }
  }

  /** True when the server started this response while a turn is held: the caller must cancel it. */
  serverStartedEarly(responseId: string): boolean {
    return this.busy && this.#ctx.conversation.response(responseId)?.origin === 'vad';
  }

  /**
   * True when this response started while a committed turn is held (or a blocked one is not
   * deleted yet): whoever asked for it, the upstream started it with that turn in the conversation,
   * so the caller must cancel it. Includes `serverStartedEarly`. A response the proxy created is
   * owed again once the turns are decided.
   */
  startedUnchecked(responseId: string): boolean {
    const response = this.#ctx.conversation.response(responseId);
    if (!response || this.#closed) return false;
    if (this.#turns.heldCount === 0 && this.#unconfirmed.size === 0) return this.serverStartedEarly(responseId);
    if (response.origin === 'proxy') {
      this.#reowe = true;
      for (const id of this.#createdFor) this.#turns.answering(id);
    }
    return true;
  }

  /** A response ended: an owed response may start now. */
  responseDone(): void {
    // Nothing owed nor to be: the turns that passed were answered (a client create stood for them and left).
    if (this.#owed === null && this.#passed === 0 && !this.#reowe) this.#turns.settled();
    this.#tryCreate();
  }

  close(): void {
    this.#closed = true;
    // Unpins its turns and lets the view go (a newer record of the same session stays).
    this.#turns.close();
    this.#createdFor = [];
    for (const c of this.#commits) clearTimeout(c.timer);
    this.#commits.length = 0;
    for (const timer of this.#unconfirmed.values()) clearTimeout(timer);
    this.#unconfirmed.clear();
    if (this.#owed) clearTimeout(this.#owed);
    this.#owed = null;
    const w = this.#waiting;
    this.#waiting = null;
    if (w) {
      clearTimeout(w.timer);
      w.resolve(DROP);
    }
  }

  // ---- the decision -------------------------------------------------------------------------

  /** Once nothing is held: release a paused client create, or owe the turn a response. */
  #settle(): void {
    if (this.busy || this.#closed) return;
    // A cancelled proxy response was answering turns that passed before: they are still owed one.
    const passed = this.#passed > 0 || this.#reowe;
    const onlyBlocked = this.#blocked > 0 && !passed;
    this.#passed = 0;
    this.#blocked = 0;
    this.#reowe = false;
    const w = this.#waiting;
    this.#waiting = null;
    if (w) {
      clearTimeout(w.timer);
      if (w.inConversation) {
        if (onlyBlocked) {
          w.resolve(reject(this.#refusal(w.eventId, 'The spoken turn this response.create would answer was blocked by policy; no response was created.')));
        } else if (this.#inConversationResponseActive()) {
          // As in clientCreate: the upstream refuses this create while that response runs, so the
          // checked turn is still owed its response (a create that races it is refused harmlessly).
          w.resolve(CONTINUE);
          if (passed) this.#owe();
        } else {
          this.#coveredByClient();
          this.#turns.stand(passed);
          w.resolve(CONTINUE);
        }
        return;
      }
      w.resolve(CONTINUE);
    }
    if (passed) this.#owe();
  }

  /** The client's own in-conversation create answers the turns: the proxy owes none. */
  #coveredByClient(): void {
    if (this.#owed) clearTimeout(this.#owed);
    this.#owed = null;
  }

  #owe(): void {
    if (!this.#owed) {
      this.#owed = this.#ctx.setTimer(MAX_RESPONSE_WAIT_MS, () => {
        this.#owed = null;
        this.#ctx.log.warn({ waitedMs: MAX_RESPONSE_WAIT_MS }, 'held turn: the response in flight did not end; no response was created for the checked turn');
      });
    }
    this.#tryCreate();
  }

  #tryCreate(): void {
    if (!this.#owed || this.#closed || this.busy || this.#inConversationResponseActive()) return;
    clearTimeout(this.#owed);
    this.#owed = null;
    this.#created++;
    // The session's settings apply, as for a VAD response. It passes the filters after this one
    // (truncation prunes for it, metering reserves or refuses it) before it leaves: its turns stay
    // pinned while truncation prunes for it, and are let go once it has passed.
    this.#ctx.sendUpstream({ type: 'response.create' }, this.#by);
    // The turns are in the conversation this create reads: deletes after it are read after it.
    this.#createdFor = this.#turns.answered();
  }

  #inConversationResponseActive(): boolean {
    const view = this.#ctx.conversation;
    return view.activeResponses().some((id) => view.response(id)?.origin !== 'out_of_band');
  }

  #refusal(eventId: string | null, message: string): ProxyError {
    const d = this.#details();
    return new ProxyError('guardrail_blocked', { message, eventId, details: { policy: d.policy, policyVersion: d.policyVersion, rule: 'hold-spoken-input', action: 'block' } });
  }
}

/**
 * True when a client event puts audio into the conversation other than through the input audio
 * buffer (`input_audio` parts with audio data in `conversation.item.create` or `response.input`):
 * the upstream does not transcribe such audio, so a held session cannot check it.
 */
export function carriesItemAudio(type: string, ev: JsonObject): boolean {
  const items = type === 'conversation.item.create' ? [ev['item']] : type === 'response.create' ? (asArray(asObject(ev['response'])?.['input']) ?? []) : [];
  return items.some((raw) => {
    const item = asObject(raw);
    if (item?.['type'] !== 'message') return false;
    return (asArray(item['content']) ?? []).some((p) => {
      const part = asObject(p);
      return part?.['type'] === 'input_audio' && typeof part['audio'] === 'string' && part['audio'].length > 0;
    });
  });
}
