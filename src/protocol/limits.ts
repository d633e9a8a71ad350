/**
 * `max_output_tokens` as clients write it, read one way by every concern that clamps or budgets it.
 *
 * The API takes an integer (1–4096 for the first realtime models, up to 32,000 for later ones) or
 * `"inf"` (the model's maximum). Clients also send `"4096"`, `"INF"`, `-5` or `null`: a lenient
 * upstream may accept them, so a value the proxy cannot read must never pass unclamped.
 */

export type OutputLimit = number | 'inf';

export type ParsedOutputLimit =
  | { readonly kind: 'absent' }
  | { readonly kind: 'limit'; readonly value: OutputLimit; readonly canonical: boolean }
  | { readonly kind: 'invalid'; readonly reason: string };

const ABSENT: ParsedOutputLimit = Object.freeze({ kind: 'absent' });
const invalid = (reason: string): ParsedOutputLimit => ({ kind: 'invalid', reason });
const limit = (value: OutputLimit, canonical: boolean): ParsedOutputLimit => ({ kind: 'limit', value, canonical });

const DIGITS = /^\d{1,15}$/;

/**
 * Reads a `max_output_tokens` value. `canonical` is false when the value means a limit but is not
 * written as the API documents it (a numeric string, `"INF"`, `null`, a huge number): the
 * proxy then forwards the canonical form. Zero, negatives, fractions and other types are invalid.
 */
export function parseOutputLimit(v: unknown): ParsedOutputLimit {
  if (v === undefined) return ABSENT;
  // null resets the setting to its default, which is "inf".
  if (v === null) return limit('inf', false);
  if (typeof v === 'number') {
    if (v === Number.POSITIVE_INFINITY) return limit('inf', false);
    if (!Number.isFinite(v) || !Number.isInteger(v)) return invalid(`${String(v)} is not a whole number`);
    if (v < 1) return invalid(`${v} is below 1`);
    return limit(v, Number.isSafeInteger(v));
  }
  if (typeof v === 'string') {
    const s = v.trim();
    if (s.toLowerCase() === 'inf') return limit('inf', v === 'inf');
    if (DIGITS.test(s)) {
      const n = Number(s);
      return n < 1 ? invalid(`"${s}" is below 1`) : limit(n, false);
    }
    return invalid(`"${v.slice(0, 32)}" is neither a whole number nor "inf"`);
  }
  return invalid(`a ${Array.isArray(v) ? 'list' : typeof v} is neither a whole number nor "inf"`);
}

/** The lower of two limits ("inf" is above every number). */
export function minOutputLimit(a: OutputLimit, b: OutputLimit): OutputLimit {
  if (a === 'inf') return b;
  if (b === 'inf') return a;
  return Math.min(a, b);
}

/** Whether `value` exceeds `max`. */
export function exceeds(value: OutputLimit, max: number): boolean {
  return value === 'inf' || value > max;
}

/** The Azure preview protocol's (beta) name of `max_output_tokens` (session and response). */
export const BETA_OUTPUT_LIMIT = 'max_response_output_tokens';

/** A limit the upstream reports (or a client asks): its value when it reads as one, else null. */
export function readOutputLimit(v: unknown): OutputLimit | null {
  const parsed = parseOutputLimit(v);
  return parsed.kind === 'limit' ? parsed.value : null;
}

/**
 * The output limit a `session.created`/`session.updated` reports, in either dialect: GA's
 * `max_output_tokens`, else the preview protocol's `max_response_output_tokens` (a preview session
 * reports only that one).
 */
export function reportedSessionOutputLimit(session: Readonly<Record<string, unknown>>): OutputLimit | null {
  return readOutputLimit(Object.hasOwn(session, 'max_output_tokens') ? session['max_output_tokens'] : session[BETA_OUTPUT_LIMIT]);
}
