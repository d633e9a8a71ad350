/**
 * PII detectors: a candidate pattern (global, linear by construction) plus an optional validator
 * that confirms the candidate (checksum) and may shorten it. Built-ins: email, phone, card (Luhn),
 * iban (ISO 13616 mod-97). Policies add detectors with `guardrails.piiDetectors` (a screened
 * regex and a named validator), code adds them with `definePiiDetector` (src/policies/api.ts).
 */

export interface PiiDetector {
  readonly name: string;
  /** Candidate finder; compiled with the `g` flag added. */
  readonly pattern: RegExp;
  /**
   * Confirms a candidate. Returns the length of the valid prefix of `candidate` (the whole
   * candidate, or a shorter one when the pattern overran into neighbouring text), or 0 to reject.
   */
  readonly validate?: (candidate: string) => number;
  /** Longest text a match can span (bounds the streaming window). */
  readonly maxLength: number;
  /** Cheap check that `text` (from `from`) can contain a match at all; skips the pattern when false. */
  readonly prefilter?: (text: string, from: number) => boolean;
  /**
   * Streaming: where a match could begin that the text does not complete yet (text.length when
   * none can). Default: the last `maxLength` characters are held back.
   */
  readonly holdStart?: (text: string) => number;
}

/**
 * A holdStart for detectors whose matches are runs of `run` characters: the trailing run, from
 * its first character that can begin a match (`begins`), at most `maxLength` back.
 */
function trailingRun(run: RegExp, begins: RegExp, maxLength: number): (text: string) => number {
  return (text) => {
    const n = text.length;
    let i = n;
    while (i > 0 && n - i < maxLength && run.test(text[i - 1]!)) i--;
    while (i < n && !begins.test(text[i]!)) i++;
    return i;
  };
}

const IBAN_PREFIX = /^(?:[A-Za-z]{1,2}|[A-Za-z]{2}\d{1,2}|[A-Za-z]{2}\d{2}[A-Za-z0-9]{0,30})$/;

/** IBAN: the earliest word of the trailing alphanumeric run from which the rest can still be an IBAN. */
function ibanHoldStart(text: string): number {
  const n = text.length;
  let i = n;
  while (i > 0 && n - i < 68 && /[A-Za-z0-9 ]/.test(text[i - 1]!)) i--;
  for (let p = i; p < n; p++) {
    // Candidates start a word with a letter.
    if ((p > i && text[p - 1] !== ' ') || !/[A-Za-z]/.test(text[p]!)) continue;
    if (IBAN_PREFIX.test(text.slice(p).replace(/ /g, ''))) return p;
  }
  return n;
}

const DIGIT = /\d/g;
/** True when `text` has a digit at or after `from`. */
export function hasDigit(text: string, from: number): boolean {
  DIGIT.lastIndex = from;
  return DIGIT.test(text);
}

/** Luhn check over the digits of `s` (other characters ignored). */
export function luhnValid(s: string): boolean {
  let sum = 0;
  let double = false;
  let digits = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) continue;
    digits++;
    let d = c;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits > 0 && sum % 10 === 0;
}

const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, CH: 21, CR: 22,
  CY: 28, CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22,
  GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IS: 26, IT: 27, JO: 30,
  KW: 30, KZ: 20, LB: 28, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27,
  MT: 31, MU: 30, NL: 18, NO: 15, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24,
  SE: 24, SI: 19, SK: 24, SM: 27, TN: 24, TR: 26, UA: 29, VG: 24, XK: 20,
};

/** ISO 13616 check: country length (when known) and mod-97 == 1, over the compact form. */
export function ibanValid(raw: string): boolean {
  const s = raw.replace(/ /g, '').toUpperCase();
  if (s.length < 15 || s.length > 34 || !/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(s)) return false;
  const expected = IBAN_LENGTHS[s.slice(0, 2)];
  if (expected !== undefined && expected !== s.length) return false;
  const rearranged = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    const v = c >= 65 ? c - 55 : c - 48;
    rem = v >= 10 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

/** Tries the candidate, then shorter prefixes ending before a separator, until `ok` accepts one. */
function longestValidPrefix(candidate: string, ok: (s: string) => boolean, separators: RegExp, minLength: number): number {
  let s = candidate;
  for (;;) {
    if (s.length >= minLength && ok(s)) return s.length;
    const cut = lastIndexOfRe(s, separators);
    if (cut <= 0) return 0;
    s = s.slice(0, cut).replace(/[ -]+$/, '');
  }
}

function lastIndexOfRe(s: string, re: RegExp): number {
  for (let i = s.length - 1; i >= 0; i--) if (re.test(s[i]!)) return i;
  return -1;
}

const SEPARATOR = /[ -]/;

export const BUILTIN_PII: readonly PiiDetector[] = [
  {
    name: 'email',
    pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/g,
    maxLength: 64 + 1 + 8 * 64 + 24,
    prefilter: (text, from) => text.indexOf('@', from) >= 0,
    holdStart: trailingRun(/[A-Za-z0-9._%+@-]/, /[A-Za-z0-9._%+-]/, 64 + 1 + 8 * 64 + 24),
  },
  {
    name: 'card',
    pattern: /(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])/g,
    validate: (c) => longestValidPrefix(c, (s) => {
      const n = s.replace(/\D/g, '').length;
      return n >= 13 && n <= 19 && luhnValid(s);
    }, SEPARATOR, 13),
    maxLength: 19 * 2,
    prefilter: hasDigit,
    holdStart: trailingRun(/[\d -]/, /\d/, 19 * 2),
  },
  {
    name: 'iban',
    pattern: /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])/g,
    validate: (c) => longestValidPrefix(c, ibanValid, / /, 15),
    maxLength: 34 * 2,
    prefilter: hasDigit,
    holdStart: ibanHoldStart,
  },
  {
    // International (+ / 00) or national numbers of 8-15 digits with common separators; a run
    // that continues into more digits (card numbers, long ids) is not a phone number.
    name: 'phone',
    pattern: /(?<![\w+])(?<!\d[ .-])(?:\+|00)?\(?\d(?:[ .()-]{0,2}\d){7,14}(?![ .-]?\d)(?!\w)/g,
    maxLength: 3 + 15 * 3,
    prefilter: hasDigit,
    holdStart: trailingRun(/[\d +().-]/, /[\d+(]/, 3 + 15 * 3),
  },
];

export type PiiValidatorName = 'none' | 'luhn' | 'mod97';

export function validatorFor(name: PiiValidatorName): ((candidate: string) => number) | undefined {
  switch (name) {
    case 'none':
      return undefined;
    case 'luhn':
      return (c) => (luhnValid(c) ? c.length : 0);
    case 'mod97':
      return (c) => (ibanValid(c) ? c.length : 0);
    default: {
      const unreachable: never = name;
      return unreachable;
    }
  }
}
