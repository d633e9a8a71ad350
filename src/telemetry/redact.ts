/**
 * Redaction for the opt-in transcript capture on spans and logs. Deliberately blunter than the
 * guardrail PII detectors (which must avoid false positives because they change what users see):
 * telemetry only needs to never keep contact data or numbers, so it over-redacts.
 */

/** Letters and digits of any script: transcripts carry internationalised addresses (jörg@müller.de). */
const EMAIL = /[\p{L}\p{N}._%+-]{1,64}@(?:[\p{L}\p{N}-]{1,63}\.){1,8}\p{L}{2,24}/gu;
/** IBAN-shaped: two letters, two digits, then 11+ alphanumerics (spaces allowed). */
const IBAN = /\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b/g;
/**
 * Any run of 6+ digits of any script (fullwidth ４１１１, Arabic-Indic, Devanagari), allowing the
 * separators people and transcribers put between them (spaces, dots, dashes of any width, slashes,
 * parentheses; up to three in a row: "555 - 123").
 */
const DIGITS = /\+?\p{Nd}(?:[\s().\-/\u2010-\u2015\u2212\uFF0D\uFF0E\uFF0F]{0,3}\p{Nd}){5,}/gu;

/**
 * Credentials a user may read out or paste: OpenAI-style keys (`sk-…`, `sk-proj-…`), the proxy's
 * own tenant keys (`rpk_…`) and client secrets (`ek_…`), webhook signing secrets (`whsec_` and the
 * base64 key: `calls.sip.webhookSecret`; let through until 2026-12-06), and bearer tokens / JWTs.
 * The logs promise "no keys"; without this a key with fewer than six digits in a row went through
 * capture whole. Bounded quantifiers keep the scan linear. Keys of other shapes are caught only as
 * configured (literalSecrets).
 */
const SECRET =
  /\b(?:sk|rk|pk|ek|rpk)[-_][A-Za-z0-9_-]{12,256}|\bwhsec_[A-Za-z0-9+/]{16,512}={0,2}|\bBearer\s+[A-Za-z0-9._~+/=-]{8,2048}|\beyJ[A-Za-z0-9_-]{8,2048}\.[A-Za-z0-9._-]{8,4096}/g;

/** Configured secrets shorter than this are not searched for (a word of the conversation, not a key). */
const MIN_LITERAL_SECRET = 8;
/**
 * Text past `maxChars` is dropped after redaction; what lies beyond it by more than the longest
 * credential pattern (a JWT: ~6 KiB) cannot change what is kept, so it is cut before the scan.
 */
const SCAN_MARGIN = 8192;

export function redactPii(text: string, literals: RegExp | null = null): string {
  const t = literals ? text.replace(literals, '[secret]') : text;
  return t.replace(SECRET, '[secret]').replace(EMAIL, '[email]').replace(IBAN, '[iban]').replace(DIGITS, '[number]');
}

/**
 * One pattern for the credentials the proxy is configured with (tenant keys, the upstream key,
 * the admin key, the webhook secret), whatever their shape: a tenant key need not look like
 * `rpk_…` or `sk-…`, and one that did not went through capture whole until 2026-12-06. Longest
 * first, so a key that contains another is replaced whole. Null when there is none.
 */
export function literalSecrets(secrets: Iterable<string>): RegExp | null {
  const list = [...new Set([...secrets].filter((s) => s.length >= MIN_LITERAL_SECRET))].sort((a, b) => b.length - a.length);
  if (list.length === 0) return null;
  return new RegExp(list.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
}

/** The capture function for one session: redact (configured secrets first, then patterns), then cap the length. */
export function captureWith(maxChars: number, literals: RegExp | null = null): (text: string) => string {
  return (text) => {
    const scanned = text.length > maxChars + SCAN_MARGIN ? text.slice(0, maxChars + SCAN_MARGIN) : text;
    const redacted = redactPii(scanned, literals);
    return redacted.length > maxChars ? `${redacted.slice(0, maxChars)}…` : redacted;
  };
}
