import type { ConversationView, ResponseView } from '../protocol/conversation.js';
import { SettledIds } from './settled-ids.js';

/**
 * Which responses metering has billed, and how far it has read them in the order the conversation
 * view learned of them: at the close, the responses the view learned of that metering never read.
 */
export class ResponsesRead {
  /**
   * Responses billed (by their response.done, or at the close's estimate): the API sends one
   * response.done per response; a second, or a response.created again after it (an upstream's bug, a
   * replay), is logged, not billed twice. The most recent MAX_SETTLED_IDS (settled-ids.ts).
   */
  #settledIds: SettledIds | null = null;
  /**
   * The latest place (ResponseView.learned) of a response whose `response.created` or `response.done`
   * metering read: the conversation view learns every upstream frame as it arrives, and metering reads
   * them in that order, so a response the view learned of after it has had no frame read here (queued
   * behind an asynchronous verdict when the session ended: MeteringFilter.#billStartedUnseen).
   */
  #responsesReadUpTo = 0;

  constructor(private readonly conversation: Pick<ConversationView, 'activeResponses' | 'responsesLearnedAfter' | 'responsesLearned' | 'forgottenResponseOf'>) {}

  /** A response.created or response.done read for `view`'s response (#responsesReadUpTo). */
  noteRead(view: ResponseView | undefined): void {
    if (view !== undefined && view.learned > this.#responsesReadUpTo) this.#responsesReadUpTo = view.learned;
  }

  /** `id` was billed (among the most recent MAX_SETTLED_IDS). */
  isSettled(id: string): boolean {
    return this.#settledIds?.has(id) === true;
  }

  /** Takes `id` as billed (the most recent MAX_SETTLED_IDS are kept): false when it was already. */
  markSettled(id: string): boolean {
    return (this.#settledIds ??= new SettledIds()).add(id);
  }

  /**
   * At the close: the responses the relay read started that metering may never have read (running
   * ones, and ones learned after #responsesReadUpTo), and the places (`learned`) of those learned
   * after it that the view still keeps. A done response is walked only when metering read no frame of
   * it, never because #settledIds forgot it.
   */
  unreadAtClose(): { readonly ids: ReadonlySet<string>; readonly kept: ReadonlySet<number> } {
    const ids = new Set(this.conversation.activeResponses());
    const learnedAfter = this.conversation.responsesLearnedAfter(this.#responsesReadUpTo);
    for (const view of learnedAfter) ids.add(view.id);
    return { ids, kept: new Set(learnedAfter.map((view) => view.learned)) };
  }

  /** Whether the create sent with `eventId` was answered by a response the view forgot and metering never read (billed by its place: `forgotten`). */
  forgottenUnread(eventId: string): boolean {
    const place = this.conversation.forgottenResponseOf(eventId);
    return place !== null && place > this.#responsesReadUpTo;
  }

  /** The places of responses learned after #responsesReadUpTo that the view forgot (not in `kept`), oldest first. */
  forgotten(kept: ReadonlySet<number>): number[] {
    const learned = this.conversation.responsesLearned;
    if (learned - this.#responsesReadUpTo <= kept.size) return [];
    const places: number[] = [];
    for (let place = this.#responsesReadUpTo + 1; place <= learned; place++) {
      if (!kept.has(place)) places.push(place);
    }
    return places;
  }
}
