import { reject, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { Frame, JsonObject } from '../pipeline/frame.js';
import { malformedError, type ContentText } from './content-paths.js';
import { decodeTags } from './normalize.js';
import { isThenable } from './custom.js';
import { asArray, asObject, asObjectOrEmpty, asString } from '../protocol/json.js';
import { clientEventId } from './util.js';

/** Small readings and verdict helpers of the guardrail filter's events (malformed members, log excerpts, spoken turns, blanked audio). */

/** A client event with a member of another shape than the protocol's (content-paths.ts `malformedError`): refused, `invalid_event`. */
export function refuseMalformed(frame: Frame, texts: readonly ContentText[]): Verdict | null {
  const error = malformedError(texts, clientEventId(frame.json()));
  return error === null ? null : reject(error);
}

/**
 * The matched text as a log line shows it: hidden tag characters (a match in the tag reading,
 * normalize.ts) are invisible in a log, so they are shown as the ASCII they encode, and the line
 * says so (`matchTagsDecoded`). Until 2026-12-06 they were logged raw: an empty-looking `match`.
 */
export function matchExcerpt(excerpt: string): { match: string; matchTagsDecoded?: true } {
  const decoded = decodeTags(excerpt);
  return decoded === null ? { match: excerpt } : { match: decoded, matchTagsDecoded: true };
}

/** Runs `next` only when `first` let the frame go on (continue or replace), keeping a replacement. */
export function afterContinue(first: Verdict | Promise<Verdict>, next: () => Verdict | Promise<Verdict>): Verdict | Promise<Verdict> {
  const combine = (v: Verdict): Verdict | Promise<Verdict> => {
    if (v.kind !== 'continue' && v.kind !== 'replace') return v;
    const n = next();
    const keep = (w: Verdict): Verdict => (w.kind === 'continue' ? v : w);
    return isThenable(n) ? n.then(keep) : keep(n);
  };
  return isThenable(first) ? first.then(combine) : combine(first);
}

/** A user message with an audio part: a spoken turn, whose text comes later (its transcript). */
export function isSpokenTurn(item: JsonObject | null): boolean {
  if (item === null || item['type'] !== 'message' || item['role'] !== 'user') return false;
  return asArray(item['content'])?.some((p) => asObject(p)?.['type'] === 'input_audio') === true;
}

/** An item (as retrieve shows it) of a stopped response, or one the policy stopped now or before, loses its audio too. */
export function blankAudioOfStopped(copy: JsonObject, ctx: SessionContext, cancelled: { has(responseId: string): boolean }, trippedNow: boolean): void {
  // The copy has texts of its item, so the item is an object.
  const item = asObjectOrEmpty(copy['item']);
  const view = ctx.conversation.item(asString(item['id']) ?? '');
  // The view may not know the item (pruned): a trip on this very event stops it all the same.
  const stopped = trippedNow || (view?.responseId && (ctx.isSuppressed(view.responseId) || cancelled.has(view.responseId))) || view?.marks.some((m) => m.kind !== 'redacted');
  if (!stopped) return;
  asArray(item['content'])?.forEach((p) => {
    const part = asObject(p);
    if (part && typeof part['audio'] === 'string') part['audio'] = '';
  });
}
