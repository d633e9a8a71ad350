import type { Config } from '../config/schema.js';
import { upstreamTarget, type UpstreamTarget } from '../upstream/dial.js';

export interface UpstreamReply {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
}

export type CallAction = 'accept' | 'reject' | 'hangup' | 'refer';

/** Connection failures that happen before a request can have been sent (nothing reached the upstream). */
const UNSENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Thrown (and caught by the routes) when the upstream cannot be reached or answers too much.
 * `unsent`: the request never left (no connection); otherwise the upstream may have acted on it
 * (its answer was lost: a cut connection, a timeout).
 */
export class UpstreamHttpError extends Error {
  constructor(
    message: string,
    readonly unsent = false,
  ) {
    super(message);
  }
}

function unsentError(err: unknown): boolean {
  const cause = err instanceof Error ? (err as Error & { cause?: { code?: unknown } }).cause : undefined;
  return typeof cause?.code === 'string' && UNSENT_CODES.has(cause.code);
}

/** Reads a response body up to `limit` bytes (a hostile or broken upstream cannot fill memory). */
async function readBounded(res: Response, limit: number): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new UpstreamHttpError(`the upstream answer exceeds ${limit} bytes`);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

/**
 * The upstream's REST side of calls (`/v1/realtime/client_secrets`, `/calls`, `/calls/{id}/…`)
 * and the sideband URL, derived from `upstream.url` (wss → https). Every request is bounded in
 * time and in answer size. The proxy's API key is used unless a call carries its own `ek_`.
 */
export class UpstreamCalls {
  readonly #config: Config['upstream'];
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;

  constructor(config: Config['upstream'], timeoutMs: number, maxBytes: number) {
    if (config.provider === 'azure') throw new Error('calls: the Azure upstream is not supported yet (calls.enabled needs upstream.provider openai or simulator)');
    this.#config = config;
    const url = new URL(config.url);
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    url.search = '';
    this.#base = url.toString().replace(/\/$/, '');
    this.#timeoutMs = timeoutMs;
    this.#maxBytes = maxBytes;
  }

  #headers(bearer: string | null): Record<string, string> {
    const h: Record<string, string> = { authorization: `Bearer ${bearer ?? this.#config.apiKey}`, 'user-agent': 'realtime-governance-proxy/0.1' };
    if (this.#config.organization) h['openai-organization'] = this.#config.organization;
    if (this.#config.project) h['openai-project'] = this.#config.project;
    return h;
  }

  async #post(path: string, headers: Record<string, string>, body: string | Buffer | FormData | null): Promise<UpstreamReply> {
    let res: Response;
    try {
      res = await fetch(`${this.#base}${path}`, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(this.#timeoutMs) });
    } catch (err) {
      throw new UpstreamHttpError(err instanceof Error ? err.message : String(err), unsentError(err));
    }
    const bytes = await readBounded(res, this.#maxBytes);
    return { status: res.status, headers: res.headers, body: bytes };
  }

  /** An SDP offer with the proxy's key and the governed session config. */
  createCall(sdp: string, session: unknown): Promise<UpstreamReply> {
    const form = new FormData();
    form.set('sdp', sdp);
    form.set('session', JSON.stringify(session));
    return this.#post('/calls', this.#headers(null), form);
  }

  control(callId: string, action: CallAction, body: unknown = null): Promise<UpstreamReply> {
    const headers = this.#headers(null);
    if (body !== null) headers['content-type'] = 'application/json';
    return this.#post(`/calls/${encodeURIComponent(callId)}/${action}`, headers, body === null ? null : JSON.stringify(body));
  }

  /** Where the proxy's own sideband for `callId` dials (`?call_id=`, proxy key). */
  sidebandTarget(callId: string): UpstreamTarget {
    return upstreamTarget({ ...this.#config, allowCallId: true }, new Map([['call_id', callId]]), new Map());
  }
}

/** The call id at the end of a `Location` header (`/v1/realtime/calls/rtc_…`), or null. */
export function callIdFromLocation(location: string | null): string | null {
  if (!location) return null;
  const last = location.split('?')[0]!.split('/').filter((p) => p.length > 0).at(-1) ?? '';
  return /^[A-Za-z0-9_-]{1,128}$/.test(last) ? last : null;
}
