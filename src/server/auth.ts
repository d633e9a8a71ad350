import { BETA_SUBPROTOCOL, KEY_SUBPROTOCOL_PREFIX } from '../protocol/events.js';

/** Subprotocol entries that carry credentials or account ids: never echoed back. */
const PRIVATE_SUBPROTOCOL_PREFIXES = [KEY_SUBPROTOCOL_PREFIX, 'openai-organization.', 'openai-project.'];

export interface PresentedCredentials {
  /** The proxy key the client presented, or null (also when it presented more than one). */
  readonly key: string | null;
  /**
   * True when more than one carrier (`Authorization: Bearer`, `api-key`, `openai-insecure-api-key.`
   * subprotocols) presents a key: the request is ambiguous and refused (400 `invalid_request`), the
   * same as a repeated `Authorization` or `api-key` header, instead of letting one of them win.
   */
  readonly ambiguous: boolean;
  /** True when the client authenticates the browser way (subprotocols): it cannot read HTTP statuses. */
  readonly browser: boolean;
  /** The subprotocol to answer ('' for none). */
  readonly protocol: string;
  /** The client announced the retired beta protocol (header or subprotocol). */
  readonly betaMarker: boolean;
}

export function parseSubprotocols(header: string | undefined): string[] {
  if (!header) return [];
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/**
 * Reads the proxy key from `Authorization: Bearer`, `api-key` (Azure style), or the browser
 * subprotocol `openai-insecure-api-key.<key>`. Exactly one of them may present a key: two carriers
 * (two headers, a header and a subprotocol, two subprotocols), whether they name the same key or
 * not, make the request `ambiguous` (a front end that authenticates, logs or rate-limits by one of
 * them must not be steered into a session billed to another). An `Authorization` of another scheme
 * (`Basic`) or a blank `api-key` presents no key.
 */
export function presentedCredentials(headers: ReadonlyMap<string, string>): PresentedCredentials {
  const offered = parseSubprotocols(headers.get('sec-websocket-protocol'));
  /** What each carrier presents: a key, or '' for a carrier that names one malformed (`Bearer a b`). */
  const fromHeaders: string[] = [];
  const auth = headers.get('authorization');
  if (auth && /^Bearer(\s|$)/i.test(auth)) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    // A malformed bearer (`Bearer`, `Bearer a b`) is no key, but still a carrier: beside another
    // credential, a front end may read it otherwise.
    if (m || auth.trim().length > 'bearer'.length) fromHeaders.push(m ? m[1]! : '');
  }
  const apiKey = headers.get('api-key')?.trim();
  if (apiKey) fromHeaders.push(apiKey);
  const fromSubprotocols = offered
    .filter((p) => p.startsWith(KEY_SUBPROTOCOL_PREFIX) && p.length > KEY_SUBPROTOCOL_PREFIX.length)
    .map((p) => p.slice(KEY_SUBPROTOCOL_PREFIX.length));
  const carriers = fromHeaders.length + fromSubprotocols.length;
  const ambiguous = carriers > 1;
  const key = ambiguous ? null : (fromHeaders[0] ?? fromSubprotocols[0] ?? null);
  // A client that set a credential header can read an HTTP status; one that could only offer
  // subprotocols (a browser) cannot.
  const browser = fromHeaders.length === 0 && offered.length > 0;
  // Browsers fail the handshake unless one offered entry is echoed: prefer `realtime`.
  const publicEntries = offered.filter((p) => !PRIVATE_SUBPROTOCOL_PREFIXES.some((prefix) => p.startsWith(prefix)));
  const protocol = publicEntries.includes('realtime') ? 'realtime' : (publicEntries.find((p) => p !== BETA_SUBPROTOCOL) ?? '');
  const betaHeader = /realtime=v1/i.test(headers.get('openai-beta') ?? '');
  return { key: key && key.length > 0 ? key : null, ambiguous, browser, protocol, betaMarker: betaHeader || offered.includes(BETA_SUBPROTOCOL) };
}
