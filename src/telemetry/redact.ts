/**
 * Redaction for the opt-in transcript capture on spans and logs. Deliberately blunter than the
 * guardrail PII detectors (which must avoid false positives because they change what users see):
 * telemetry only needs to never keep contact data or numbers, so it over-redacts.
 */

const EMAIL = /[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}/g;
/** IBAN-shaped: two letters, two digits, then 11+ alphanumerics (spaces allowed). */
const IBAN = /\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b/g;
/** Any run of 6+ digits, allowing common separators (phones, cards, ids, account numbers). */
const DIGITS = /\+?\d(?:[\s().-]{0,2}\d){5,}/g;

export function redactPii(text: string): string {
  return text.replace(EMAIL, '[email]').replace(IBAN, '[iban]').replace(DIGITS, '[number]');
}

/** The capture function for one session: redact, then cap the length. */
export function captureWith(maxChars: number): (text: string) => string {
  return (text) => {
    const redacted = redactPii(text);
    return redacted.length > maxChars ? `${redacted.slice(0, maxChars)}…` : redacted;
  };
}
