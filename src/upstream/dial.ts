import WebSocket from 'ws';
import type { Config } from '../config/schema.js';

export interface UpstreamTarget {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Client headers that may reach the upstream. Everything else (tenant keys, beta markers, cookies) stays here. */
const FORWARDED_CLIENT_HEADERS = ['openai-safety-identifier'] as const;

/**
 * The upstream URL and headers for one session. The client's query parameters pass through
 * (`model`, `intent`, `call_id`, anything unknown); credentials come only from the proxy config.
 */
export function upstreamTarget(
  config: Config['upstream'],
  clientQuery: ReadonlyMap<string, string>,
  clientHeaders: ReadonlyMap<string, string>,
): UpstreamTarget {
  const headers: Record<string, string> = { 'user-agent': 'realtime-governance-proxy/0.1' };
  for (const name of FORWARDED_CLIENT_HEADERS) {
    const v = clientHeaders.get(name);
    if (v) headers[name] = v;
  }
  let url: URL;
  if (config.provider === 'azure') {
    if (!config.azure) throw new Error('upstream.azure is required when upstream.provider is azure');
    url = new URL('/openai/realtime', config.azure.endpoint.replace(/^http/, 'ws'));
    url.searchParams.set('api-version', config.azure.apiVersion);
    url.searchParams.set('deployment', config.azure.deployment);
    for (const [k, v] of clientQuery) if (k !== 'model') url.searchParams.set(k, v);
    headers['api-key'] = config.apiKey;
  } else {
    url = new URL(config.url);
    for (const [k, v] of clientQuery) url.searchParams.set(k, v);
    headers['authorization'] = `Bearer ${config.apiKey}`;
    if (config.organization) headers['openai-organization'] = config.organization;
    if (config.project) headers['openai-project'] = config.project;
  }
  return { url: url.toString(), headers };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/**
 * Client frames must be masked (RFC 6455) so that attacker-chosen bytes never appear in clear to a
 * transparent intermediary. Over TLS no intermediary sees them, and loopback has none: there an
 * all-zero mask is equivalent, and it lets `ws` write the relayed bytes without copying them.
 */
export function maskingIsMoot(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'wss:' || LOOPBACK.test(u.hostname);
}

const zeroMask = (mask: Uint8Array): void => {
  mask.fill(0);
};

export function dialUpstream(target: UpstreamTarget, connectTimeoutMs: number, validateUtf8 = true): WebSocket {
  return new WebSocket(target.url, {
    ...(maskingIsMoot(target.url) ? { generateMask: zeroMask } : {}),
    headers: target.headers,
    handshakeTimeout: connectTimeoutMs,
    // Audio is base64 and the CPU matters more than the bytes; compression stays off both ways.
    perMessageDeflate: false,
    // conversation.item.retrieved carries whole audio items.
    maxPayload: 64 * 1024 * 1024,
    // Frames are relayed as bytes: invalid UTF-8 would break every compliant client, so it is
    // checked here (upstream.validateUtf8) and ends the session instead of reaching the client.
    skipUTF8Validation: !validateUtf8,
    followRedirects: false,
  });
}
