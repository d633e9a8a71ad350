/**
 * Which transfer targets (`POST /v1/realtime/calls/{id}/refer`, `target_uri`) a SIP route allows:
 * its `transfer.allow` list. The fear is toll fraud (a tenant, or a prompt-injected agent through its
 * app, transferring calls to premium or foreign numbers on the operator's trunk), so the language is
 * small and anything it cannot judge is refused.
 *
 * An entry is one of:
 * - `tel:+<digits>`: that number; `tel:+<digits>*`: every number starting with those digits (at
 *   least one digit before the `*`). Visual separators (RFC 3966 `-`, `.`, `(`, `)`, and spaces) are
 *   dropped from targets and entries alike before comparing.
 * - `sip:<user>@<host>[:<port>]` (or `sips:`): that address; `sip:<prefix>*@<host>[:<port>]`: every
 *   user starting with `<prefix>` (possibly empty: `sip:*@support.example.com`) at exactly that host
 *   and port. The host is never a pattern (`support.example.com.evil.net` is another host). A user or
  prefix that is a phone number (`sip:+1415555*@trunk.example.com`, `sip:2*@pbx.example.com`) admits
  only users that are phone numbers too: an optional `+` and at most 15 digits, nothing after them.
 * - anything else starting with `sip:`, `sips:` or `tel:` and holding no `*`: compared with the target
 *   exactly, character for character (a URI with parameters or headers, `;transport=tcp`, `?…`, is
 *   allowed only so).
 *
 * A target is allowed when it equals an entry of the last kind exactly, or when it parses as a plain `tel:` global
 * number or a plain `sip:`/`sips:` `user@host[:port]` (ASCII, no parameters, headers, percent-escapes
 * or password) that an entry matches. What goes upstream is what was judged: the exact string, or the
 * parsed target written back canonically (separators dropped, scheme and host lower-cased).
 */

/** The longest target or entry judged (a SIP Request-URI is rarely past 100 characters). */
export const MAX_TRANSFER_URI_CHARS = 256;

/** E.164: at most 15 digits after the `+`. */
const MAX_E164_DIGITS = 15;

/** RFC 3966 visual separators, and spaces (what people and models write between digit groups). */
const VISUAL_SEPARATORS = /[-.() ]/g;
/** RFC 3261 user characters without escapes, `:` (a password) or `;` `?` (parameters, headers). */
const SIP_USER = /^[A-Za-z0-9_.!~'()&=+$,-]+$/;
/**
 * A SIP user that is a telephone number (`+` and digits, or digits: an extension), at most E.164's 15
 * digits: what a route's phone-number user (`sip:+1415555*@trunk`, `sip:2*@pbx`) admits. Anything else
 * after such a prefix rides after the number (`,,,011…` pauses and post-dial digits, `w`/`p`, more
 * digits than a number has) and a gateway may dial it.
 */
const PHONE_USER = new RegExp(`^\\+?\\d{1,${MAX_E164_DIGITS}}$`);
/** An entry's user (or user prefix) that is a telephone number or its start. */
const PHONE_PREFIX = /^\+?\d*$/;
/** A DNS host name (letters, digits, hyphens; dot-separated labels) or an IPv4 address. */
const SIP_HOST = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A target parsed into what entries are compared with. */
type ParsedTarget =
  | { readonly kind: 'tel'; readonly digits: string }
  | { readonly kind: 'sip'; readonly scheme: 'sip' | 'sips'; readonly user: string; readonly hostPort: string };

/** One entry of a route's `transfer.allow`, compiled. */
type AllowEntry =
  | { readonly kind: 'exact'; readonly uri: string }
  | { readonly kind: 'tel'; readonly digits: string; readonly prefix: boolean }
  | { readonly kind: 'sip'; readonly scheme: 'sip' | 'sips'; readonly user: string; readonly prefix: boolean; readonly hostPort: string; readonly phone: boolean };

/** A phone-number user that no target could match (PHONE_USER). */
const PHONE_TOO_LONG = `a phone-number SIP user is an optional + and 1 to ${MAX_E164_DIGITS} digits (E.164)`;

/** A phone-number user in an entry (not `sip:*@host`, which allows any user): its targets must be phone numbers. */
const isPhoneEntryUser = (user: string): boolean => user !== '' && PHONE_PREFIX.test(user);

const printableAscii = (s: string): boolean => /^[\x21-\x7e]*$/.test(s);

function parseTel(rest: string): string | null {
  const digits = rest.replace(VISUAL_SEPARATORS, '');
  if (!/^\+\d+$/.test(digits)) return null;
  const bare = digits.slice(1);
  return bare.length <= MAX_E164_DIGITS ? bare : null;
}

function parseHostPort(hostPort: string): string | null {
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m) return null;
  const host = m[1]!.toLowerCase();
  if (!SIP_HOST.test(host)) return null;
  const port = m[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535 || port.startsWith('0'))) return null;
  return port === undefined ? host : `${host}:${port}`;
}

/** A plain target the language can judge, or null (then only an exact entry allows it). */
export function parseTransferTarget(uri: string): ParsedTarget | null {
  if (uri.length > MAX_TRANSFER_URI_CHARS) return null;
  const colon = uri.indexOf(':');
  if (colon < 0) return null;
  const scheme = uri.slice(0, colon).toLowerCase();
  const rest = uri.slice(colon + 1);
  if (scheme === 'tel') {
    // Spaces are allowed between digit groups only: the rest is checked as printable ASCII once they are gone.
    if (!printableAscii(rest.replace(/ /g, ''))) return null;
    const digits = parseTel(rest);
    return digits === null ? null : { kind: 'tel', digits };
  }
  if (scheme !== 'sip' && scheme !== 'sips') return null;
  if (!printableAscii(rest)) return null;
  const at = rest.indexOf('@');
  if (at < 0 || rest.indexOf('@', at + 1) >= 0) return null;
  const user = rest.slice(0, at);
  const hostPort = parseHostPort(rest.slice(at + 1));
  if (!SIP_USER.test(user) || hostPort === null) return null;
  return { kind: 'sip', scheme, user, hostPort };
}

/** The target as it goes upstream once judged by its parsed form. */
function canonical(target: ParsedTarget): string {
  return target.kind === 'tel' ? `tel:+${target.digits}` : `${target.scheme}:${target.user}@${target.hostPort}`;
}

/** Why an allow-list entry cannot be used, or null (config load: src/config/compile.ts). */
export function transferEntryProblem(entry: string): string | null {
  const compiled = compileEntry(entry);
  return typeof compiled === 'string' ? compiled : null;
}

function compileEntry(entry: string): AllowEntry | string {
  if (entry.length > MAX_TRANSFER_URI_CHARS) return `is longer than ${MAX_TRANSFER_URI_CHARS} characters`;
  if (!printableAscii(entry.replace(/ /g, ''))) return 'holds characters other than printable ASCII (a look-alike digit or letter would never match)';
  const scheme = /^(sips?|tel):/i.exec(entry)?.[1]?.toLowerCase();
  if (!scheme) return 'must start with tel:, sip: or sips:';
  const star = entry.indexOf('*');
  if (star < 0) {
    const parsed = parseTransferTarget(entry);
    if (parsed === null) return entry.includes(' ') ? 'holds a space that is not between the digits of a tel: number' : { kind: 'exact', uri: entry };
    if (parsed.kind === 'sip' && isPhoneEntryUser(parsed.user) && !PHONE_USER.test(parsed.user)) return PHONE_TOO_LONG;
    return parsed.kind === 'tel' ? { kind: 'tel', digits: parsed.digits, prefix: false } : { kind: 'sip', scheme: parsed.scheme, user: parsed.user, prefix: false, hostPort: parsed.hostPort, phone: isPhoneEntryUser(parsed.user) };
  }
  if (entry.indexOf('*', star + 1) >= 0) return 'holds more than one *';
  if (scheme === 'tel') {
    if (star !== entry.length - 1) return 'a tel: pattern ends with its * (tel:+1415555*)';
    const digits = parseTel(entry.slice('tel:'.length, -1));
    if (digits === null || digits.length === 0) return 'a tel: pattern is tel:+ and at least one digit before its * (tel:+1415555*)';
    return { kind: 'tel', digits, prefix: true };
  }
  // sip: the * ends the user part: sip:<prefix>*@host[:port].
  const rest = entry.slice(scheme.length + 1);
  const at = rest.indexOf('@');
  if (at < 0 || star - scheme.length - 1 !== at - 1) return 'a sip: pattern has its * at the end of the user part, right before @ (sip:*@support.example.com)';
  const user = rest.slice(0, at - 1);
  const hostPort = parseHostPort(rest.slice(at + 1));
  if (hostPort === null || rest.indexOf('@', at + 1) >= 0) return 'the host of a sip: pattern must be a plain host name or IPv4 address, with an optional port, and no parameters';
  if (user !== '' && !SIP_USER.test(user)) return 'the user prefix of a sip: pattern holds characters a plain SIP user cannot';
  if (isPhoneEntryUser(user) && user.replace('+', '').length > MAX_E164_DIGITS) return PHONE_TOO_LONG;
  return { kind: 'sip', scheme: scheme as 'sip' | 'sips', user, prefix: true, hostPort, phone: isPhoneEntryUser(user) };
}

function entryMatches(entry: AllowEntry, target: ParsedTarget): boolean {
  if (entry.kind === 'exact') return false;
  if (entry.kind === 'tel') return target.kind === 'tel' && (entry.prefix ? target.digits.startsWith(entry.digits) : target.digits === entry.digits);
  if (target.kind !== 'sip' || target.scheme !== entry.scheme || target.hostPort !== entry.hostPort) return false;
  // A number block written as SIP users is judged as numbers, as its tel: form is (until 2026-12-07 any user starting so).
  if (entry.phone && !PHONE_USER.test(target.user)) return false;
  return entry.prefix ? target.user.startsWith(entry.user) : target.user === entry.user;
}

export type TransferVerdict =
  /** `target`: what goes upstream; `entry`: the allow-list entry that allowed it. */
  | { readonly allowed: true; readonly target: string; readonly entry: string }
  | { readonly allowed: false };

/** A route's allow list, compiled once; entries that do not compile (refused at load) never match. */
export class TransferAllowList {
  readonly #entries: readonly { readonly text: string; readonly entry: AllowEntry }[];

  constructor(allow: readonly string[]) {
    this.#entries = allow.flatMap((text) => {
      const entry = compileEntry(text);
      return typeof entry === 'string' ? [] : [{ text, entry }];
    });
  }

  judge(target: string): TransferVerdict {
    if (target.length > MAX_TRANSFER_URI_CHARS) return { allowed: false };
    // Only entries the language cannot judge are compared as written: a plain one is judged parsed.
    const exact = this.#entries.find((e) => e.entry.kind === 'exact' && e.text === target);
    if (exact) return { allowed: true, target, entry: exact.text };
    const parsed = parseTransferTarget(target);
    if (parsed === null) return { allowed: false };
    const match = this.#entries.find((e) => entryMatches(e.entry, parsed));
    return match ? { allowed: true, target: canonical(parsed), entry: match.text } : { allowed: false };
  }
}
