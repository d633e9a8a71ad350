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
 * own tenant keys (`rpk_…`) and client secrets (`ek_…`), and bearer tokens / JWTs. The logs promise
 * "no keys"; without this a key with fewer than six digits in a row went through capture whole.
 * Bounded quantifiers keep the scan linear.
 */
const SECRET = /\b(?:sk|rk|pk|ek|rpk)[-_][A-Za-z0-9_-]{12,256}|\bBearer\s+[A-Za-z0-9._~+/=-]{8,2048}|\beyJ[A-Za-z0-9_-]{8,2048}\.[A-Za-z0-9._-]{8,4096}/g;

export function redactPii(text: string): string {
  return text.replace(SECRET, '[secret]').replace(EMAIL, '[email]').replace(IBAN, '[iban]').replace(DIGITS, '[number]');
}

/** The capture function for one session: redact, then cap the length. */
export function captureWith(maxChars: number): (text: string) => string {
  return (text) => {
    const redacted = redactPii(text);
    return redacted.length > maxChars ? `${redacted.slice(0, maxChars)}…` : redacted;
  };
}
