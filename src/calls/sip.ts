import type { Logger } from 'pino';
import { json, type HttpReply } from '../app/module.js';
import type { JsonObject } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import { asObject, asString } from '../protocol/json.js';
import type { Tenant } from '../tenants/tenant.js';
import type { SipRoute } from './config.js';
import type { GovernedSession } from './session-config.js';
import type { UpstreamCalls } from './upstream.js';

export interface SipHeader {
  readonly name: string;
  readonly value: string;
}

export interface SipDeps {
  readonly routes: readonly SipRoute[];
  readonly tenants: ReadonlyMap<string, Tenant>;
  readonly log: Logger;
  govern(tenant: Tenant, raw: unknown): Promise<GovernedSession | ProxyError>;
  admit(tenant: Tenant, model: string): Promise<ProxyError | null>;
  readonly upstream: UpstreamCalls;
  /** Binds and governs the call; an error means it was hung up. */
  start(tenant: Tenant, model: string, callId: string): Promise<ProxyError | null>;
}

/**
 * The user part of a SIP URI in a header value: `"Bob" <sip:+15551234567@host;x=y>` → `+15551234567`.
 * Null when there is none, or when its percent-encoding is malformed (the caller's SIP client writes
 * it): no called number, so no `to` rule matches. (Until 2026-12-05 the decode threw: the webhook
 * answered 500 and the call kept ringing.)
 */
export function sipUser(value: string): string | null {
  const m = /sips?:([^@;>\s]+)@/i.exec(value) ?? /tel:([^;>\s]+)/i.exec(value);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
}

function headersOf(data: JsonObject | null): SipHeader[] {
  const raw = data?.['sip_headers'];
  if (!Array.isArray(raw)) return [];
  const out: SipHeader[] = [];
  for (const h of raw.slice(0, 128)) {
    const header = asObject(h);
    const name = asString(header?.['name']);
    const value = asString(header?.['value']);
    if (name !== null && value !== null) out.push({ name, value: value.slice(0, 2048) });
  }
  return out;
}

/** The first rule whose conditions all hold (a rule with no condition matches every call). */
export function matchSipRoute(routes: readonly SipRoute[], headers: readonly SipHeader[]): SipRoute | null {
  const header = (name: string) => headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value ?? null;
  const to = header('to');
  const called = to === null ? null : sipUser(to);
  for (const r of routes) {
    if (r.to !== undefined && called !== r.to) continue;
    if (r.header !== undefined && header(r.header.name) !== r.header.equals) continue;
    return r;
  }
  return null;
}

/**
 * `realtime.call.incoming`: the routing rule picks the tenant; the call is accepted with the
 * tenant's governed session config and then governed over the sideband, or refused with
 * `/reject` when no rule matches, the config breaks the policy, or the tenant is over a cap.
 * Acknowledged (200) once handled, whatever the call's fate, so OpenAI does not redeliver it; an
 * accept that cannot reach OpenAI answers 502 (OpenAI redelivers any non-2xx: the call gets another
 * chance, see `WebhookDeliveries` for how redeliveries are acted on once).
 */
export async function routeSipCall(event: JsonObject, deps: SipDeps): Promise<HttpReply> {
  const data = asObject(event['data']);
  const callId = typeof data?.['call_id'] === 'string' ? data['call_id'] : '';
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(callId)) return json(400, { error: { type: 'invalid_request_error', code: 'invalid_webhook', message: 'data.call_id is missing or malformed.' } });
  const log = deps.log.child({ call: callId, transport: 'sip' });
  const reject = async (why: string, statusCode: number, extra: Record<string, unknown> = {}): Promise<HttpReply> => {
    log.info({ event: 'sip_call_rejected', why, statusCode, ...extra }, 'SIP call rejected');
    try {
      const r = await deps.upstream.control(callId, 'reject', { status_code: statusCode });
      if (r.status >= 300) log.warn({ status: r.status }, 'upstream refused the reject');
    } catch (err) {
      log.error({ err: err instanceof Error ? err.message : String(err) }, 'reject failed');
    }
    return json(200, { status: 'rejected', reason: why });
  };
  const route = matchSipRoute(deps.routes, headersOf(data));
  const tenant = route ? deps.tenants.get(route.tenant) : undefined;
  if (!route || !tenant) return reject('no routing rule matches the call', 404);
  const governed = await deps.govern(tenant, route.session);
  if (governed instanceof ProxyError) return reject('the configured session breaks the tenant policy', 500, { tenant: tenant.id, code: governed.code });
  const refused = await deps.admit(tenant, governed.model);
  // 486 Busy Here: over a cap or at the concurrency limit.
  if (refused) return reject('the tenant may not open a session now', 486, { tenant: tenant.id, code: refused.code });
  let status: number;
  try {
    status = (await deps.upstream.control(callId, 'accept', governed.session)).status;
  } catch (err) {
    log.error({ err: err instanceof Error ? err.message : String(err) }, 'accept failed');
    return json(502, { error: { type: 'server_error', code: 'upstream_unavailable', message: 'The call could not be accepted upstream.' } });
  }
  if (status >= 300) {
    log.warn({ status, tenant: tenant.id }, 'upstream refused the accept');
    return json(200, { status: 'accept_failed' });
  }
  const ungoverned = await deps.start(tenant, governed.model, callId);
  if (ungoverned) return json(200, { status: 'hung_up', reason: ungoverned.message });
  return json(200, { status: 'accepted', tenant: tenant.id });
}
