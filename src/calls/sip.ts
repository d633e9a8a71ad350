import type { Logger } from 'pino';
import { json, type HttpReply } from '../app/module.js';
import type { JsonObject } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import { asObject, asString } from '../protocol/json.js';
import type { SessionSlotHold } from '../metering/index.js';
import type { Tenant } from '../tenants/tenant.js';
import { sipRouteConditions, type SipRoute } from './config.js';
import { withResponsesHeld, type GovernedSession } from './session-config.js';
import { UpstreamHttpError, type UpstreamCalls } from './upstream.js';

export interface SipHeader {
  readonly name: string;
  readonly value: string;
}

export interface SipDeps {
  readonly routes: readonly SipRoute[];
  readonly tenants: ReadonlyMap<string, Tenant>;
  readonly log: Logger;
  govern(tenant: Tenant, raw: unknown): Promise<GovernedSession | ProxyError>;
  /**
   * Whether the tenant may open a call now (the proxy's capacity, caps), holding one of its
   * concurrency slots from here until the call is governed or refused (released by the caller).
   * Until 2026-12-07 incoming SIP calls held none and were not counted: a tenant allowed one session
   * had every call dialled at once accepted upstream, each holding a place among `server.maxSessions`
   * (test/calls/redteam-18t-sip-accepts-per-tenant.test.ts).
   */
  hold(tenant: Tenant, model: string): Promise<ProxyError | SessionSlotHold>;
  /**
   * A place under `server.maxSessions` for the call from its check until its sideband started (null:
   * none); the release gives it back. (Until 2026-12-06 a burst of incoming calls all passed the check.)
   */
  holdRoom(): (() => void) | null;
  readonly upstream: Pick<UpstreamCalls, 'control'>;
  /**
   * Admits, binds and governs the call (an error means it was hung up); `offer`: the slot its check
   * holds; `onAttach`: the session.update its sideband sends first (responses turned back on, see withResponsesHeld);
   * `route`: the rule that accepted it (recorded with the call: its `transfer` list judges a `/refer`).
   */
  start(tenant: Tenant, model: string, callId: string, offer: SessionSlotHold, onAttach: Readonly<Record<string, unknown>> | null, route: SipRoute): Promise<ProxyError | null>;
  /** Whether the call is bound already (governed by an instance sharing the store, or to be claimed by one). */
  bound(callId: string): Promise<boolean>;
  /**
   * The call was accepted and its governing started (`start` answered null): announce it to the
   * tenant's app when its route says where (`route.notify`; src/calls/notify.ts). `data`: the
   * incoming event's, as OpenAI sent it. Must not wait for the delivery (OpenAI waits for the answer).
   */
  announce?(route: SipRoute, tenant: Tenant, callId: string, data: JsonObject): void;
  /** Pause before accept attempt `n` + 1 (default 1 s, 2 s). */
  readonly acceptPauseMs?: (n: number) => number;
}

/** Accept attempts for one delivery (1 + retries after 1 and 2 s) when the upstream answers 5xx or 429. */
const ACCEPT_ATTEMPTS = 3;
/** How long a delivery's accept takes at most: every attempt (`timeoutMs` each) and the pauses between them. */
export const acceptBoundMs = (timeoutMs: number): number => ACCEPT_ATTEMPTS * timeoutMs + (2 ** (ACCEPT_ATTEMPTS - 1) - 1) * 1000;

type AcceptOutcome =
  | { readonly kind: 'accepted' }
  /** A 4xx other than 409: the upstream refused this accept (the call is not live through it). */
  | { readonly kind: 'refused'; readonly status: number }
  /** 409: the call is no longer ringing: accepted already (an earlier accept whose answer was lost), or ended. */
  | { readonly kind: 'not_ringing' }
  /** 5xx or 429 on every attempt: the upstream did not act (it said so). */
  | { readonly kind: 'transient'; readonly status: number }
  /** The request never left (no connection): the call still rings. */
  | { readonly kind: 'unsent' }
  /** No answer after the request left (a cut connection, a timeout): the call may be live. */
  | { readonly kind: 'unknown' };

/**
 * The address of a SIP `To`/`From` header value (RFC 3261 §20.10): what `<…>` encloses after an
 * optional display name, else the value up to its header parameters. A quoted display name is
 * skipped whole, escapes included. Null when the value is malformed (an unterminated quote or `<`).
 * Until 2026-12-06 the first `sip:` anywhere in the value was read, so a caller could write another
 * number in the display name (`"sip:+1555…@x" <sip:+1666…@x>`) and pick another tenant's route.
 */
export function sipAddress(value: string): string | null {
  let rest = value.trimStart();
  if (rest.startsWith('"')) {
    const quoted = /^"(?:[^"\\]|\\[\s\S])*"/.exec(rest);
    if (!quoted) return null;
    rest = rest.slice(quoted[0].length);
  }
  const open = rest.indexOf('<');
  if (open >= 0) {
    const close = rest.indexOf('>', open);
    return close < 0 ? null : rest.slice(open + 1, close).trim();
  }
  // addr-spec without brackets: a URI with parameters must be bracketed, so `;` starts the header's.
  return rest.split(';', 1)[0]!.trim();
}

/**
 * The user part of the SIP or tel URI a header value addresses: `"Bob" <sip:+15551234567@host;x=y>`
 * → `+15551234567`. Null when there is none, or when its percent-encoding is malformed (the caller's
 * SIP client writes it): no called number, so no `to` rule matches. (Until 2026-12-05 the decode
 * threw: the webhook answered 500 and the call kept ringing.)
 */
export function sipUser(value: string): string | null {
  const address = sipAddress(value);
  if (address === null) return null;
  const m = /^sips?:([^@;>\s]+)@/i.exec(address) ?? /^tel:([^;>\s]+)/i.exec(address);
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

/**
 * A routing rule's identity as recorded with the calls it accepts: its tenant and its conditions
 * (`to`, `header`), not its place in the list, so that a `/refer` is judged by the same rule in the
 * config in force (another instance's, or after a restart); a rule edited away or handed to another
 * tenant no longer allows its calls' transfers. Two rules with the same conditions are refused at
 * load (the second could never accept a call).
 */
export function sipRouteKey(route: Pick<SipRoute, 'tenant' | 'to' | 'header'>): string {
  return JSON.stringify([route.tenant, ...sipRouteConditions(route)]);
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
 * Acknowledged (200) once handled, whatever the call's fate, so OpenAI does not redeliver it.
 *
 * An accept is never left with a call running ungoverned. The upstream answering 5xx or 429 is
 * retried (after 1 and 2 s); still failing, or unreachable (the request never left), the delivery
 * answers 502, which OpenAI redelivers: the call, still ringing, gets another chance (until
 * 2026-12-05 a 5xx was acknowledged `accept_failed` and never redelivered). An accept whose answer
 * was lost (the connection cut, the request timed out) may have been acted on: the call is governed
 * (a sideband that cannot attach to it hangs it up) and the delivery answers 502. An accept answered
 * 409 (not ringing: an earlier accept whose answer was lost, this delivery's first one or a
 * redelivery's) is governed likewise unless the call is bound already (an instance governs it).
 * Until 2026-12-05 both were left running ungoverned. See `WebhookDeliveries` for how redeliveries
 * are acted on once.
 */
export async function routeSipCall(event: JsonObject, deps: SipDeps): Promise<HttpReply> {
  const data = asObject(event['data']);
  const callId = typeof data?.['call_id'] === 'string' ? data['call_id'] : '';
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(callId)) return { ...json(400, { error: { type: 'invalid_request_error', code: 'invalid_webhook', message: 'data.call_id is missing or malformed.' } }), refusal: 'invalid_webhook' };
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
  const offer = await deps.hold(tenant, governed.model);
  // 486 Busy Here: over a cap or at the concurrency limit.
  if (offer instanceof ProxyError) return reject('the tenant may not open a session now', 486, { tenant: tenant.id, code: offer.code });
  try {
    const release = deps.holdRoom();
    if (release === null) return reject('the proxy is at capacity', 486, { tenant: tenant.id, code: 'overloaded' });
    try {
      // Only a call this delivery accepted and governs is announced: a rejected one never is.
      const announce = (): void => deps.announce?.(route, tenant, callId, data ?? {});
      return await acceptAndGovern(callId, route, tenant, governed, offer, deps, log, announce);
    } finally {
      release();
    }
  } finally {
    // Its sideband holds its slot from here (handed over), or it was refused.
    offer.release();
  }
}

/** Accepts the call and governs it (or hangs it up when it cannot be governed). */
async function acceptAndGovern(callId: string, route: SipRoute, tenant: Tenant, governed: GovernedSession, offer: SessionSlotHold, deps: SipDeps, log: Logger, announce: () => void): Promise<HttpReply> {
  // Accepted with responses held until the sideband reads the call (media starts at the accept).
  const { accept: acceptSession, restore } = withResponsesHeld(governed.session);
  const outcome = await accept(callId, acceptSession, deps, log);
  const unavailable = (message: string): HttpReply => ({ ...json(502, { error: { type: 'server_error', code: 'upstream_unavailable', message } }), refusal: 'upstream_unavailable' });
  /** Starts governing the call (null), or hangs it up when it cannot be governed (why); a governed call is announced. */
  const start = async (): Promise<ProxyError | null> => {
    const ungoverned = await deps.start(tenant, governed.model, callId, offer, restore, route);
    if (!ungoverned) announce();
    return ungoverned;
  };
  /** The call is live: governed, or hung up when it cannot be. */
  const govern = async (): Promise<HttpReply> => {
    const ungoverned = await start();
    if (ungoverned) return json(200, { status: 'hung_up', reason: ungoverned.message });
    return json(200, { status: 'accepted', tenant: tenant.id });
  };
  switch (outcome.kind) {
    case 'accepted':
      return govern();
    case 'refused':
      log.warn({ status: outcome.status, tenant: tenant.id }, 'upstream refused the accept');
      return json(200, { status: 'accept_failed' });
    case 'transient':
      log.warn({ status: outcome.status, tenant: tenant.id }, 'upstream failed the accept: left for a redelivery');
      return unavailable('The call could not be accepted upstream.');
    case 'unsent':
      return unavailable('The call could not be accepted upstream.');
    case 'unknown': {
      log.warn({ event: 'sip_accept_unknown', tenant: tenant.id }, 'the accept\'s answer was lost: the call may be live, and is governed (or hung up)');
      // Announced only if its sideband finds the call live (the caller of `announce` waits for that).
      await start();
      return unavailable('The accept\'s answer was lost: the call is governed if it was accepted, else hung up.');
    }
    case 'not_ringing': {
      if (await deps.bound(callId).catch(() => false)) return json(200, { status: 'already_accepted', tenant: tenant.id });
      log.warn({ event: 'sip_accept_not_ringing', tenant: tenant.id }, 'the call is no longer ringing and nobody governs it: it is governed (or hung up)');
      return govern();
    }
  }
}

/** The accept, retried on 5xx and 429 (the upstream did not act); never throws. */
async function accept(callId: string, session: unknown, deps: SipDeps, log: Logger): Promise<AcceptOutcome> {
  for (let n = 1; ; n++) {
    let status: number;
    try {
      status = (await deps.upstream.control(callId, 'accept', session)).status;
    } catch (err) {
      const unsent = err instanceof UpstreamHttpError && err.unsent;
      log.error({ err: err instanceof Error ? err.message : String(err), attempt: n, unsent }, 'accept failed');
      return unsent ? { kind: 'unsent' } : { kind: 'unknown' };
    }
    if (status < 300) return { kind: 'accepted' };
    if (status === 409) return { kind: 'not_ringing' };
    if (status < 500 && status !== 429) return { kind: 'refused', status };
    log.warn({ status, attempt: n }, 'upstream failed the accept');
    if (n >= ACCEPT_ATTEMPTS) return { kind: 'transient', status };
    await new Promise((resolve) => setTimeout(resolve, deps.acceptPauseMs?.(n) ?? 1000 * 2 ** (n - 1)));
  }
}
