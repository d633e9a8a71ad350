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
  /**
   * Also reads the text with its line breaks kept (a whitespace run holding one as `\n`, which the
   * pattern does not take as a separator): a match in either reading counts. For a detector that
   * refuses a match inside a longer run (phone), so values one per line are each found while one
   * broken across lines still is as before.
   */
  readonly readsLineBreaks?: boolean;
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

/**
 * The shape of a calendar date (isCalendarDate, without its month and day check), one separator
 * spelt out per alternative (a lookbehind reads right to left, so it cannot refer back to a group).
 */
const DATE_SHAPE = `(?:${['-', '\\.', '/'].flatMap((sep) => [`\\d{4}${sep}\\d{1,2}${sep}\\d{1,2}`, `\\d{1,2}${sep}\\d{1,2}${sep}\\d{4}`]).join('|')})`;
const YEAR_FIRST = /^(\d{4})([./-])(\d{1,2})\2(\d{1,2})$/;
const YEAR_LAST = /^(\d{1,2})([./-])(\d{1,2})\2(\d{4})$/;
const isYear = (y: number) => y >= 1900 && y <= 2199;
const isMonthDay = (month: number, day: number) => month >= 1 && month <= 12 && day >= 1 && day <= 31;

/** True for a date written year-month-day, day-month-year or month-day-year with one separator (`-`, `.`, `/`). */
export function isCalendarDate(candidate: string): boolean {
  const ymd = YEAR_FIRST.exec(candidate);
  if (ymd) return isYear(Number(ymd[1])) && isMonthDay(Number(ymd[3]), Number(ymd[4]));
  const dmy = YEAR_LAST.exec(candidate);
  if (!dmy) return false;
  const [a, b] = [Number(dmy[1]), Number(dmy[3])];
  return isYear(Number(dmy[4])) && (isMonthDay(b, a) || isMonthDay(a, b));
}

/**
 * A lookbehind: not right after a letter, a digit or one of `also`, but a letter after a backslash
 * is an escape (`\n`, `\t`: a line break written out, as in JSON or code shown as text), not a word.
 * Until 2026-12-07 `Numbers:\n415-555-0100\n415-555-0199` was glued to the `n`s and passed `phone`
 * (and an IBAN after `\n` passed `iban`): test/policies/redteam-19p-escaped-line-breaks.test.ts.
 */
const NOT_AFTER_WORD_OR = (also: string): string => `(?<![0-9${also}]|(?<!\\\\)[A-Za-z])`;

/**
 * The end of a text that an IBAN may still complete, as the pattern below spells one: a word
 * starting with a letter, then a second letter, the two check digits and up to 30 alphanumerics
 * (one space or hyphen allowed before each), every part after the first letter optional. Country code and
 * check digits are written together: a two-letter word and a space ("is ", "to ") is settled.
 */
const IBAN_TAIL = new RegExp(`${NOT_AFTER_WORD_OR('')}[A-Za-z](?:[A-Za-z](?:\\d(?:\\d(?:[ -]?[A-Za-z0-9]){0,30}[ -]?)?)?)?$`);

/** IBAN: the earliest word of the text's last 68 characters from which the rest can still be an IBAN. */
function ibanHoldStart(text: string): number {
  const from = Math.max(0, text.length - 68);
  const m = IBAN_TAIL.exec(text.slice(from));
  return m === null ? text.length : from + m.index;
}

const DIGIT = /\d/g;
/** True when `text` has a digit at or after `from`. */
export function hasDigit(text: string, from: number): boolean {
  DIGIT.lastIndex = from;
  return DIGIT.test(text);
}

/** A digit's contribution when the Luhn check doubles it (the digits of 2d, summed). */
const LUHN_DOUBLED = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/** Luhn check over the digits of `s` (other characters ignored). */
export function luhnValid(s: string): boolean {
  let sum = 0;
  let digits = 0;
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) continue;
    // Every second digit from the right is doubled.
    sum += digits % 2 === 1 ? LUHN_DOUBLED[c]! : c;
    digits++;
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
  const s = raw.replace(/[ -]/g, '').toUpperCase();
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

/**
 * Length of the longest prefix of `candidate` that `ok` accepts, among the whole candidate and its
 * prefixes ending before a separator (candidates have single separators: their patterns allow one
 * between two characters); 0 when none is.
 */
function longestValidPrefix(candidate: string, ok: (s: string) => boolean): number {
  const ends = [...candidate.matchAll(/[ ./_-]/g)].map((m) => m.index);
  ends.push(candidate.length);
  for (let k = ends.length - 1; k >= 0; k--) if (ok(candidate.slice(0, ends[k]))) return ends[k]!;
  return 0;
}

/**
 * `longestValidPrefix` for a card candidate (a prefix of 13 digits or more, Luhn-valid), without a
 * copy per prefix: a candidate the validator refuses is looked for again from its next character
 * (matchers.ts regexFinder), so a run of `1 1 1 …` asks this once per digit.
 */
function longestCardPrefix(candidate: string): number {
  const digits: number[] = [];
  const ends: number[] = [];
  for (let i = 0; i < candidate.length; i++) {
    const d = candidate.charCodeAt(i) - 48;
    if (d < 0 || d > 9) continue;
    digits.push(d);
    ends.push(i + 1);
  }
  for (let k = digits.length; k >= 13; k--) {
    const end = ends[k - 1]!;
    // Whole, or ending before a separator (the pattern allows one between two digits).
    if (end !== candidate.length && /\d/.test(candidate[end]!)) continue;
    let sum = 0;
    for (let j = k - 1, n = 0; j >= 0; j--, n++) sum += n % 2 === 1 ? LUHN_DOUBLED[digits[j]!]! : digits[j]!;
    if (sum % 10 === 0) return end;
  }
  return 0;
}

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
    pattern: /(?<![\d])\d(?:[ ./_-]?\d){12,18}(?![\d])/g,
    // The pattern bounds a candidate to 19 digits; a shorter prefix must keep 13.
    validate: longestCardPrefix,
    maxLength: 19 * 2,
    prefilter: hasDigit,
    holdStart: trailingRun(/[\d ./_-]/, /\d/, 19 * 2),
  },
  {
    name: 'iban',
    pattern: new RegExp(`${NOT_AFTER_WORD_OR('')}[A-Za-z]{2}\\d{2}(?:[ -]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])`, 'g'),
    validate: (c) => longestValidPrefix(c, ibanValid),
    maxLength: 34 * 2,
    prefilter: hasDigit,
    holdStart: ibanHoldStart,
  },
  {
    // International (+ / 00) or national numbers of 8-15 digits with common separators; a run
    // that continues into more digits (card numbers, long ids) or a word is not a phone number.
    // `_` is no part of a word here (markdown `_+1 415 555 2671_`, `call_4155552671`): until
    // 2026-12-05 the lookarounds were `\w`, and underscores around a number hid it.
    // A calendar date right before or after it, one separator between (`2026-12-01 415-555-0100`, a
    // call log's line), is no part of its run: until 2026-12-07 the two were one run of 18 digits,
    // no phone number, and the number passed (test/policies/redteam-19g-date-boundaries.test.ts).
    name: 'phone',
    pattern: new RegExp(`${NOT_AFTER_WORD_OR('+')}(?:(?<!\\d[ .-])|(?<=(?<!\\d)${DATE_SHAPE}[ .-]))(?:\\+|00)?\\(?\\d(?:[ .()-]{0,2}\\d){7,14}(?:(?![ .-]\\d)|(?=[ .-]${DATE_SHAPE}(?!\\d)))(?![A-Za-z0-9])`, 'g'),
    // A calendar date (2026-12-01, 01.12.2026) has 8 digits too, and identifies nobody: until
    // 2026-12-07 pii-safe redacted dates as [phone] (test/policies/redteam-19-dates-as-phones.test.ts).
    validate: (c) => (isCalendarDate(c) ? 0 : c.length),
    // Numbers one per line (a contact list, a call log) are each a number: until 2026-12-07 the fold
    // made them one long run, and they passed (test/policies/redteam-19g-date-boundaries.test.ts).
    readsLineBreaks: true,
    maxLength: 3 + 15 * 3,
    prefilter: hasDigit,
    holdStart: trailingRun(/[\d +().-]/, /[\d+(]/, 3 + 15 * 3),
  },
];

export type PiiValidatorName = 'none' | 'luhn' | 'mod97';

const VALIDATORS: Readonly<Record<PiiValidatorName, ((candidate: string) => number) | undefined>> = {
  none: undefined,
  luhn: (c) => (luhnValid(c) ? c.length : 0),
  mod97: (c) => (ibanValid(c) ? c.length : 0),
};

export function validatorFor(name: PiiValidatorName): ((candidate: string) => number) | undefined {
  return VALIDATORS[name];
}
