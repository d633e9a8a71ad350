import { BETA_SUBPROTOCOL, KEY_SUBPROTOCOL_PREFIX } from '../protocol/events.js';

/** Subprotocol entries that carry credentials or account ids: never echoed back. */
const PRIVATE_SUBPROTOCOL_PREFIXES = [KEY_SUBPROTOCOL_PREFIX, 'openai-organization.', 'openai-project.'];

export interface PresentedCredentials {
  /** The proxy key the client presented, or null. */
  readonly key: string | null;
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
 * Reads the proxy key from, in order: `Authorization: Bearer`, `api-key` (Azure style), and the
 * browser subprotocol `openai-insecure-api-key.<key>`.
 */
export function presentedCredentials(headers: ReadonlyMap<string, string>): PresentedCredentials {
  const offered = parseSubprotocols(headers.get('sec-websocket-protocol'));
  let key: string | null = null;
  const auth = headers.get('authorization');
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) key = m[1]!;
  }
  if (!key) {
    const apiKey = headers.get('api-key');
    if (apiKey) key = apiKey.trim();
  }
  let fromSubprotocol = false;
  if (!key) {
    const entry = offered.find((p) => p.startsWith(KEY_SUBPROTOCOL_PREFIX));
    if (entry) {
      key = entry.slice(KEY_SUBPROTOCOL_PREFIX.length);
      fromSubprotocol = true;
    }
  }
  const browser = fromSubprotocol || (key === null && offered.length > 0);
  // Browsers fail the handshake unless one offered entry is echoed: prefer `realtime`.
  const publicEntries = offered.filter((p) => !PRIVATE_SUBPROTOCOL_PREFIXES.some((prefix) => p.startsWith(prefix)));
  const protocol = publicEntries.includes('realtime') ? 'realtime' : (publicEntries.find((p) => p !== BETA_SUBPROTOCOL) ?? '');
  const betaHeader = /realtime=v1/i.test(headers.get('openai-beta') ?? '');
  return { key: key && key.length > 0 ? key : null, browser, protocol, betaMarker: betaHeader || offered.includes(BETA_SUBPROTOCOL) };
}
