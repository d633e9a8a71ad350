import type { ProxyError } from './errors.js';

/**
 * Spoken turns awaiting the proxy's answer (policy `guardrails.holdSpokenInput`): the conversation
 * view's record of them (`ConversationView.spokenTurns`), the one place a session says which of its
 * items no prune may delete now and why, and whether the client `response.create` let go last
 * stands for turns that passed.
 *
 * Written by the spoken-turn hold only (src/policies/hold.ts decides every transition), through the
 * `SpokenTurnsRecord` it opens; read by the filters that must not act against those turns (the
 * truncation filter's prunes). Until 2026-12-06 the truncation filter found the hold through a
 * module-level map of hold.ts: one filter reaching into another's private state.
 *
 * The view itself tells the record which client create left with which `event_id` and which one's
 * response started (`createLeft`, `createStarted`), so an upstream `error` naming the create that
 * stood is known for its refusal.
 *
 * One record speaks for the session at a time: a record opened later replaces the earlier one (as
 * the newest hold of a session did), and closing the earlier one then leaves the newer alone.
 */

/**
 * Why no prune may delete a spoken turn now:
 * - `held`: committed, its transcript not decided yet;
 * - `answering`: its transcript passed, and the response that answers it has not left yet.
 */
export type TurnPin = 'held' | 'answering';

/** What every filter reads of the spoken turns (and the one thing a later filter tells them). */
export interface SpokenTurnsView {
  /** Why this item may not be pruned now; undefined when nothing pins it (or no record is open). */
  pinned(itemId: string): TurnPin | undefined;
  /**
   * The client `response.create` the hold let go last stands for turns that passed: the proxy
   * owes them no response of its own while it does.
   */
  readonly clientCreateStands: boolean;
  /**
   * Opens the session's record, owned by the caller (the spoken-turn hold) until it closes it.
   * `maxAnswering` bounds the `answering` pins; `onRefused` runs when the create that stands is
   * refused after the hold let it go: by a later filter (`SpokenTurns#createStopped`) or by the upstream
   * (`SpokenTurnsRecord#refusedUpstream`).
   */
  open(maxAnswering: number, onRefused: () => void): SpokenTurnsRecord;
}

/** The session's spoken-turn record as its owner writes it (see the module comment). */
export class SpokenTurnsRecord {
  readonly #view: SpokenTurns;
  readonly #maxAnswering: number;
  readonly #onRefused: () => void;
  /** Committed turns whose transcript is not decided yet. */
  readonly #held = new Set<string>();
  /** Turns that passed and whose response has not left yet, oldest first. */
  readonly #answering = new Set<string>();
  #standing = false;
  /**
   * The create that stands was let go by the hold and is still in the chain (neither left nor
   * stopped). Client frames go through the chain one at a time, in order, so the next client
   * `response.create` that leaves or stops is that one.
   */
  #standingInChain = false;
  /**
   * The `event_id` the create that stood left with (null: none left, or a later create decision
   * replaced it). Kept past the end of a response that settles the record (`settled`): a client
   * create sent as the response before it ended still stands for the turns until the upstream
   * starts or refuses it.
   */
  #standingLeft: string | null = null;

  constructor(view: SpokenTurns, maxAnswering: number, onRefused: () => void) {
    this.#view = view;
    this.#maxAnswering = maxAnswering;
    this.#onRefused = onRefused;
  }

  pinned(itemId: string): TurnPin | undefined {
    return this.#held.has(itemId) ? 'held' : this.#answering.has(itemId) ? 'answering' : undefined;
  }

  /** Turns held for their transcript. */
  get heldCount(): number {
    return this.#held.size;
  }

  /** A committed turn is held until its transcript is decided. */
  hold(itemId: string): void {
    this.#held.add(itemId);
  }

  /** Its transcript was decided (passed or blocked): no longer held. False when it was not. */
  decided(itemId: string): boolean {
    return this.#held.delete(itemId);
  }

  /**
   * A turn that passed waits for the response that answers it: pinned until that response leaves.
   * Bounded: past `maxAnswering` the oldest is let go (a turn pinned already keeps its place).
   */
  answering(itemId: string): void {
    if (this.#answering.size >= this.#maxAnswering && !this.#answering.has(itemId)) this.#answering.delete(this.#answering.values().next().value!);
    this.#answering.add(itemId);
  }

  /** The response for the turns that passed left (the proxy's create): they are unpinned, and returned. */
  answered(): string[] {
    const ids = [...this.#answering];
    this.#answering.clear();
    return ids;
  }

  /** A response ended with nothing owed: a client create stood for the turns and left; none stands any more. */
  settled(): void {
    this.#answering.clear();
    this.#standing = false;
  }

  get standing(): boolean {
    return this.#standing;
  }

  /** Whether the client create let go last stands for turns that passed (a new decision: the previous create is forgotten). */
  stand(standing: boolean): void {
    this.#standing = standing;
    this.#standingInChain = standing;
    this.#standingLeft = null;
  }

  /** A client create left with this id: the one that stands, if one does. */
  left(eventId: string | null): void {
    if (this.#standing) this.#standingLeft = eventId;
    this.#standingInChain = false;
  }

  /**
   * A filter stopped a client create (`refusal`: the error the client got; null: dropped). When it is
   * the one that stands (still in the chain), it stands no more: its turns are owed the proxy's own
   * response, unless the refusal says no response may be made now (a spending cap or the ledger:
   * `ProxyError#refusesResponses`; the proxy's create would be refused or cancelled the same way).
   */
  stopped(refusal: ProxyError | null): void {
    if (!this.#standingInChain) return;
    this.#standingInChain = false;
    if (refusal?.refusesResponses) {
      this.#standing = false;
      this.#standingLeft = null;
      return;
    }
    this.refused();
  }

  /** The response of a client create that left with this id started: if it stood, it is answering the turns. */
  started(eventId: string | null): void {
    if (eventId !== null && this.#standingLeft === eventId) this.#standingLeft = null;
  }

  /** A later filter refused the create that stands: it stands no more, and its owner owes the turns again. */
  refused(): void {
    if (!this.#standing) return;
    this.#standing = false;
    this.#standingInChain = false;
    this.#standingLeft = null;
    this.#onRefused();
  }

  /**
   * An upstream `error` named this event: when it is the create that stood, the upstream refused
   * it (no response answers the turns), so its owner owes them again, once. True when it was.
   */
  refusedUpstream(eventId: string): boolean {
    if (this.#standingLeft === null || this.#standingLeft !== eventId) return false;
    this.#standing = false;
    this.#standingLeft = null;
    this.#onRefused();
    return true;
  }

  /** The owner ends (the session ends, or the hold is let go): nothing is pinned, nothing stands. */
  close(): void {
    this.#held.clear();
    this.#answering.clear();
    this.#standing = false;
    this.#standingInChain = false;
    this.#standingLeft = null;
    this.#view.closed(this);
  }
}

/** The view's side of the record (`Conversation.spokenTurns`): which record speaks for the session. */
export class SpokenTurns implements SpokenTurnsView {
  #current: SpokenTurnsRecord | null = null;

  pinned(itemId: string): TurnPin | undefined {
    return this.#current?.pinned(itemId);
  }

  get clientCreateStands(): boolean {
    return this.#current?.standing ?? false;
  }

  /**
   * A client `response.create` left for the upstream with this `event_id` (the relay's, after every
   * filter): if it is the create that stands, an upstream `error` naming that id means it was
   * refused there (`SpokenTurnsRecord#refusedUpstream`). Called by the view (`observeClient`).
   */
  createLeft(eventId: string | null): void {
    this.#current?.left(eventId);
  }

  /** A filter stopped a client `response.create` (see `SpokenTurnsRecord#stopped`). Called by the view (`clientStopped`). */
  createStopped(refusal: ProxyError | null): void {
    this.#current?.stopped(refusal);
  }

  /** The upstream started the response of the client create that left with this id: it cannot be refused any more. Called by the view. */
  createStarted(eventId: string | null): void {
    this.#current?.started(eventId);
  }

  open(maxAnswering: number, onRefused: () => void): SpokenTurnsRecord {
    const record = new SpokenTurnsRecord(this, maxAnswering, onRefused);
    this.#current = record;
    return record;
  }

  /** `record` closed: it no longer speaks for the session (a newer one still does). */
  closed(record: SpokenTurnsRecord): void {
    if (this.#current === record) this.#current = null;
  }
}
