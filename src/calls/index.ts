import { randomBytes, randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { json, type BodyAdmission, type HttpReply, type HttpRequestHead, type HttpRequestInfo, type HttpRoute, type ModuleDeps, type ProxyModule } from '../app/module.js';
import { NO_SLOT, type MeteringModule, type SessionSlotHold } from '../metering/index.js';
import { ChainTemplate } from '../pipeline/chain.js';
import { CALL_FIRST_UPDATE, CONTINUE, type AdmissionTicket, type FilterFactory } from '../pipeline/filter.js';
import type { JsonObject } from '../pipeline/frame.js';
import type { PolicyRegistry } from '../policies/registry.js';
import { ProxyError } from '../protocol/errors.js';
import { asObject } from '../protocol/json.js';
import { CLIENT_SECRET_PREFIX, type RealtimeClientEvent } from '../protocol/events.js';
import { parseStrict } from '../protocol/strict-json.js';
import { presentedCredentials } from '../server/auth.js';
import { RefusalLog } from '../server/refusal-log.js';
import { MAX_KEY_CHARS, sha256Hex } from '../tenants/resolver.js';
import type { Tenant } from '../tenants/tenant.js';
import { withoutAccountIds } from '../upstream/account-ids.js';
import { authRefusalOfReply, logUpstreamAuthRefused, upstreamAuthRejected } from '../upstream/auth-refusal.js';
import { AttachedSockets, MAX_CLIENT_SOCKETS_PER_CALL, SharedAttachPlaces } from './attached-sockets.js';
import { CallGovernors, callSlotToken, type CallAdmission } from './governor.js';
import { LiveSecrets } from './live-secrets.js';
import { governSession, type GovernedSession } from './session-config.js';
import type { CallRecord, CallStore, SecretRecord } from './store.js';
import { CallNotifier, notifyTenantShare, type NotifyOutcome } from './notify.js';
import { appTurnChoice, reportedTurnDetection, ResponsesHold, writtenTurnDetection, type AppTurnChoice, type WrittenTurnDetection } from './responses-hold.js';
import { settledWithin } from '../bounded.js';
import { appUpdateOf, END_REASON_READ_MS, errorOfEndReason } from './end-reason.js';
import { acceptBoundMs, routeSipCall, sipRouteKey, type SipDeps } from './sip.js';
import { TransferAllowList } from './transfer.js';
import { CallStoreUnavailable, OutageGuardedStore, storeUnavailableError, storeUnavailableReply } from './store-outage.js';
import { callIdFromLocation, UpstreamCalls, UpstreamHttpError, type UpstreamReply } from './upstream.js';
import { REDELIVERY_WAIT_MS, verifyWebhook, WebhookDeliveries, webhookHeadersProblem, type DeliveryClaim } from './webhook.js';

export const CALLS_FILTER = 'calls';
export const SIP_WEBHOOK_PATH = '/v1/realtime/sip/webhook';
/** A SIP delivery's handling past its upstream request: a few store round trips (each bounded by the store's own timeout). */
const SIP_STORE_MARGIN_MS = 20_000;

export interface CallsModuleDeps extends ModuleDeps {
  readonly registry: PolicyRegistry;
  readonly metering: MeteringModule;
  /** Every other module's filters, in chain order: the sideband sessions run them all. */
  readonly filters: readonly FilterFactory[];
  /** A route refused a request with one of the proxy's error codes: the other modules' `onRequestRefused` (telemetry counts it). */
  readonly requestRefused?: (route: string, code: string) => void;
  /** What became of an announcement to a tenant's app (`notify`): the other modules' `onCallNotified` (telemetry counts it). */
  readonly callNotified?: (tenant: string, outcome: NotifyOutcome) => void;
  /** What became of a transfer a tenant asked for (`/refer`): the other modules' `onCallTransferred` (telemetry counts it). */
  readonly callTransferred?: (tenant: string, outcome: TransferOutcome) => void;
}

/**
 * A transfer (`/refer`): refused by the proxy (transfer_not_allowed), answered 2xx upstream, or not
 * (an error, or never sent); `unconfirmed`: sent, but its answer was lost (a cut, a timeout), so
 * OpenAI may have transferred the call (until 2026-12-07 counted failed: the audit missed it).
 */
export type TransferOutcome = 'transferred' | 'refused' | 'failed' | 'unconfirmed';

/** How much of a refused transfer target is logged. */
const MAX_LOGGED_TARGET_CHARS = 256;
/** The app's updates a socket follows from its filter to the relay's `stamped` report (one at a time in practice: the report follows synchronously). */
const MAX_LEAVING_UPDATES = 16;

/** The calls routes' own 413 (src/server answers a declared oversize body before them). */
const TOO_LARGE = 'request_too_large';

/** A refusal with one of the proxy's error codes: its JSON body, and the code typed for the refusal count (HttpReply.refusal). */
function errorReply(error: ProxyError): HttpReply {
  // A store outage also tells the client when to retry.
  return error.code === 'calls_store_unavailable' ? storeUnavailableReply(error) : { ...json(error.httpStatus, error.toHttpBody()), refusal: error.code };
}

/**
 * An upstream answer passed on as it is (OpenAI's own error bodies), except that 5xx becomes 502 and
 * a refusal of the proxy's own credentials (401, 403, an auth error code) becomes `upstream_rejected`
 * with a fixed message: the upstream's text names the proxy's key as OpenAI masks it, and its code
 * `invalid_api_key` would tell the tenant its own key is wrong (src/upstream/auth-refusal.ts). Logged.
 */
function relayUpstream(reply: UpstreamReply, log: Logger, what: string): HttpReply {
  const refusal = authRefusalOfReply(reply.status, reply.body);
  if (refusal) {
    logUpstreamAuthRefused(log, refusal, { route: what });
    return errorReply(upstreamAuthRejected(refusal, null));
  }
  const status = reply.status >= 500 ? 502 : reply.status;
  // OpenAI's own words (what was wrong with the offer), without the operator's account ids.
  return { status, headers: { 'content-type': reply.headers.get('content-type') ?? 'application/json' }, body: Buffer.from(withoutAccountIds(reply.body.toString('utf8'))) };
}

/** The upstream could not be reached: logged with why; the tenant hears a fixed message (a socket error names internal addresses). */
function unavailable(err: unknown, log: Logger): HttpReply {
  log.warn({ err: err instanceof Error ? err.message : String(err) }, 'calls: the Realtime upstream could not be reached');
  return errorReply(new ProxyError('upstream_unavailable', { message: 'The Realtime upstream could not be reached.', close: null }));
}

function parseJsonObject(buf: Buffer, what: string): JsonObject | ProxyError {
  let parsed: unknown;
  try {
    parsed = buf.length === 0 ? {} : parseStrict(buf);
  } catch {
    return new ProxyError('invalid_request', { message: `The ${what} is not valid JSON (or repeats a member).`, close: null });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return new ProxyError('invalid_request', { message: `The ${what} must be a JSON object.`, close: null });
  return parsed as JsonObject;
}

/**
 * The browser (WebRTC) and phone (SIP) path: mints client secrets under the tenant's policy,
 * forwards SDP offers, binds every call id to its tenant, and governs every call over the
 * proxy's own sideband WebSocket. Its filter refuses a client's `?call_id=` socket for a call
 * that is not its tenant's, and ends a call on a cap.
 */
export async function createCallsModule(deps: CallsModuleDeps): Promise<ProxyModule> {
  const cfg = deps.config.calls;
  if (!cfg.enabled) return { name: 'calls', filters: [] };
  const log = deps.log.child({ module: 'calls' });
  const unknownTenants = cfg.sip.routes.filter((r) => !deps.tenants.tenants.has(r.tenant)).map((r) => r.tenant);
  if (unknownTenants.length > 0) throw new Error(`calls.sip.routes: no tenant named ${unknownTenants.join(', ')}`);
  const upstream = new UpstreamCalls(deps.config.upstream, cfg.upstreamTimeoutMs, Math.max(cfg.maxBodyBytes, 1024 * 1024));
  const ledger = deps.config.metering.ledger;
  // Loaded on demand: a proxy without calls never loads ioredis or better-sqlite3 for them.
  const store: CallStore =
    ledger.kind === 'redis'
      ? new (await import('./redis-store.js')).RedisCallStore({ url: ledger.url, keyPrefix: ledger.keyPrefix, commandTimeoutMs: ledger.commandTimeoutMs })
      : new (await import('./store.js')).SqliteCallStore(ledger.path === ':memory:' ? ':memory:' : resolve(deps.baseDir, ledger.path));
  const governors = new CallGovernors({
    config: deps.config,
    log,
    clock: deps.clock,
    upstream,
    store,
    tenant: (id) => deps.tenants.tenants.get(id),
    // A call taken over from another instance takes over the slot its last sideband left in the ledger
    // (CallRecord.slot): the tenant's limit counted it all through the handover. Nothing of this
    // instance's check to hand over.
    admitTakenOver: (call) => admitCall(call.tenant, call.model, call.slot ?? callSlotToken(call.callId), NO_SLOT),
    giveBackSlot: (tenantId, slot) => deps.metering.ledger?.releaseSlot(tenantId, slot),
    // The app's own sockets on a call the proxy ends hear why, as its sideband closes (see clientsOf).
    ending(callId, error) {
      for (const close of [...(clientsOf.get(callId) ?? [])]) {
        try {
          close(error);
        } catch (err) {
          // One socket's failure to close leaves the others told (and the hang-up going).
          log.error({ err, call: callId }, 'closing a client socket of an ending call failed');
        }
      }
    },
  });
  /**
   * Each call's client sockets (`?call_id=`) on this process, by the way to close them: a call the
   * proxy ends (GovernorDeps.ending) closes them with its error (`budget_exceeded`, close 4002;
   * `policy_violation`, 4003; …) before it hangs up. Until 2026-12-07 the app's sideband got only
   * the upstream's 1000 "call ended" of the hang-up, a caller hanging up to the app
   * (test/calls/redteam-20-phone-app.test.ts). Sockets on another process (relay worker or instance)
   * read the error from the call's record when the hang-up closes their upstream (CallRecord.endedByProxy,
   * written by the governing instance before it hangs up); until 2026-12-07 they got that 1000 still.
   */
  const clientsOf = new Map<string, Set<(error: ProxyError) => void>>();
  /**
   * The store as requests use it: a failure there is answered 503 `calls_store_unavailable` and
   * logged once per outage (store-outage.ts). The governors keep the store itself (their lease
   * renewals and sweeps log and retry on their own).
   */
  const requestStore = new OutageGuardedStore(store, log);
  /** A store outage answered 503 (with the route's CORS headers); anything else goes on to the server's 500. */
  const outageReply = (err: unknown, req: HttpRequestHead | null = null): HttpReply => {
    if (!(err instanceof CallStoreUnavailable)) throw err;
    return req ? withCors(req, storeUnavailableReply()) : storeUnavailableReply();
  };
  const wall = () => deps.clock.wall();
  const liveSecrets = new LiveSecrets(cfg.maxLiveSecretsPerTenant);
  const attached = new AttachedSockets();
  // Across relay workers and instances too, where there is a ledger (metering on).
  const sharedAttached = deps.metering.ledger ? new SharedAttachPlaces(deps.metering.ledger, () => deps.clock.wall()) : null;
  const attachingTenant = (tenant: Tenant) => ({ id: tenant.id, maxConcurrentSessions: deps.metering.maxConcurrentSessions(tenant) });
  const socketsExceeded = () => new ProxyError('call_sockets_exceeded', { details: { limit: MAX_CLIENT_SOCKETS_PER_CALL } });

  /**
   * SIP calls whose governing sideband on this process holds their responses for the tenant's app
   * (ResponsesHold, `notify.waitForAppMs`), by call id: the app's first session.update on one of this
   * process's sockets, or its announcement failing, releases them. An app socket on another process
   * (relay worker or instance) records its update's effect in the call's record (CallRecord.appUpdate),
   * which the hold asks for while it waits (until 2026-12-07 that call waited its `waitForAppMs` out).
   */
  const heldForApp = new Map<string, ResponsesHold>();
  /** The call record each attach was admitted on (by its ticket), for its socket: whether the call holds responses for its app. */
  const attachedTo = new WeakMap<AdmissionTicket, CallRecord>();

  const filter: FilterFactory = {
    name: CALLS_FILTER,
    // session.created: a call's sideband is ready (its answer waits for it). A session opened with a
    // client secret gets the secret's config from the relay, first thing. The rest: a SIP call's
    // responses held for its app (ResponsesHold), and the app's first session.update that releases them
    // (conversation.item.deleted: a held turn governance deleted is owed no answer).
    // (error: the answer to an update the upstream refused, which the hold counts as it counts session.updated.)
    wants: { client: ['session.update'], server: ['session.created', 'session.updated', 'input_audio_buffer.committed', 'conversation.item.deleted', 'response.created', 'error'] },
    // An attach admitted but not opened: its places in the ledger go back now.
    withdraw(req) {
      sharedAttached?.withdraw(req.ticket);
    },
    admit(req) {
      const callId = req.query.get('call_id');
      // Synchronous unless there is a call to look up: plain sessions keep a synchronous admission.
      if (callId === undefined) return null;
      // Only the tenant that created the call (through this proxy) may attach to it.
      return requestStore.getCall(callId, wall()).then(
        (record) => {
          if (record && record.tenant === req.tenant.id) {
            attachedTo.set(req.ticket, record);
            const tenant = attachingTenant(req.tenant);
            if (attached.full(callId, tenant)) return socketsExceeded();
            return sharedAttached ? sharedAttached.take(req.ticket, callId, tenant).then((placed) => (placed ? null : socketsExceeded())) : null;
          }
          log.info({ event: 'call_attach_refused', tenant: req.tenant.id }, 'client attach to a call of another tenant (or unknown) refused');
          return new ProxyError('call_not_found');
        },
        (err: unknown) => {
          if (err instanceof CallStoreUnavailable) return storeUnavailableError();
          throw err;
        },
      );
    },
    create(ctx) {
      if (!ctx.callId) return {};
      if (!governors.governs(ctx.id)) {
        // A client's own socket on the call: counted (see AttachedSockets). Admissions run
        // concurrently, so one admitted while the call filled up is ended as it starts.
        const shared = sharedAttached?.claim(ctx.admission) ?? null;
        const release = attached.attach(ctx.callId, attachingTenant(ctx.tenant));
        if (release === null) {
          shared?.();
          return { onStart: () => ctx.close(socketsExceeded()) };
        }
        const callId = ctx.callId;
        const closeWith = (error: ProxyError): void => ctx.close(error);
        const clients = clientsOf.get(callId) ?? new Set<(error: ProxyError) => void>();
        clients.add(closeWith);
        clientsOf.set(callId, clients);
        const admittedOn = ctx.admission ? attachedTo.get(ctx.admission) : undefined;
        // A SIP call accepted with its responses held, its app's update not recorded yet: this socket's
        // first update is recorded once it took effect, for a governing sideband on another process.
        let appChoice: AppTurnChoice | null = null;
        let recordAppUpdate = admittedOn?.kind === 'sip' && Boolean(admittedOn.onAttach) && admittedOn.appUpdate === undefined;
        /** The choices of the app's updates on their way upstream, told to a hold here by the id each left with (the relay's `stamped` report). */
        const leaving: { readonly choice: AppTurnChoice; readonly written: WrittenTurnDetection | null }[] = [];
        return {
          onClient(frame, injectedBy) {
            if (injectedBy) return CONTINUE;
            // The app's own update, past every other filter (this one is last): on its way upstream.
            const session = frame.json()['session'];
            const choice = appTurnChoice(session);
            appChoice ??= choice;
            // What it wrote in its turn detection too: the hold releases on an answer that shows it.
            if (heldForApp.has(callId) && leaving.length < MAX_LEAVING_UPDATES) leaving.push({ choice, written: writtenTurnDetection(session) });
            return CONTINUE;
          },
          onReport(report) {
            // The relay sends every session.update with an event_id of its own (Conversation.stamp): the
            // upstream's error about the app's update names that one. Until the twenty-third red-team
            // pass the hold waited for one naming the app's, which never came, and a refused update
            // held the call its whole waitForAppMs (test/calls/redteam-23-hold-app-updates.test.ts).
            if (report.kind !== 'stamped' || report.eventType !== 'session.update' || leaving.length === 0) return;
            const update = leaving.shift()!;
            heldForApp.get(callId)?.appUpdated(update.choice, report.eventId, update.written);
          },
          onServer(frame) {
            if (frame.type !== 'session.updated' || appChoice === null || !recordAppUpdate) return CONTINUE;
            recordAppUpdate = false;
            // Governed here: the hold saw the update itself.
            if (heldForApp.has(callId)) return CONTINUE;
            const detection = reportedTurnDetection(frame.json()['session']);
            const answerEventId = frame.string('event_id');
            const appUpdate = { choice: appChoice, ...(detection !== undefined ? { turnDetection: detection } : {}), ...(answerEventId !== null ? { answerEventId } : {}) };
            requestStore.amendCall(callId, { appUpdate }, wall()).catch((err: unknown) => {
              // An outage is logged once by the guarded store: the governing sideband waits its bound out.
              if (!(err instanceof CallStoreUnavailable)) ctx.log.warn({ call: callId, err: err instanceof Error ? err.message : String(err) }, 'the app\'s update could not be recorded for the call\'s governing instance');
            });
            return CONTINUE;
          },
          // The hang-up of a call the proxy ended from another process closes the upstream 1000: that
          // process recorded why first, and this socket ends with the same error and close code.
          onUpstreamClosed(code) {
            if (code !== 1000) return null;
            const record = requestStore.getCall(callId, wall());
            return settledWithin(record, END_REASON_READ_MS, null).then((found) => errorOfEndReason(found?.endedByProxy));
          },
          onClose() {
            release();
            shared?.();
            clients.delete(closeWith);
            if (clients.size === 0 && clientsOf.get(callId) === clients) clientsOf.delete(callId);
          },
        };
      }
      const callId = ctx.callId;
      const call = governors.callOf(ctx.id);
      // Last in the chain, this filter's onStart runs after the others' (the locked state goes first).
      const hold = new ResponsesHold({
        restore: call?.onAttach ?? null,
        waitForAppMs: call?.waitForAppMs ?? 0,
        send: (event) => ctx.sendUpstream(event as RealtimeClientEvent, CALL_FIRST_UPDATE),
        setTimer: (ms, fn) => ctx.setTimer(ms, fn),
        log: ctx.log,
        // An app attached through another process: its update's effect, as that process recorded it.
        appUpdatedElsewhere: () => requestStore.getCall(callId, wall()).then((record) => appUpdateOf(record?.appUpdate)),
        // Released once for the call: a sideband taking it over later finds nothing to turn back on
        // (the app may have turned answers off since). A crash before this write lands resends it, as before.
        released: () => {
          requestStore.amendCall(callId, { onAttach: null }, wall()).catch((err: unknown) => {
            if (!(err instanceof CallStoreUnavailable)) ctx.log.warn({ call: callId, err: err instanceof Error ? err.message : String(err) }, "the call's released responses could not be recorded: a takeover would turn them on again");
          });
        },
      });
      const forget = (): void => {
        if (heldForApp.get(callId) === hold) heldForApp.delete(callId);
      };
      return {
        onStart() {
          hold.start();
          if (hold.held) heldForApp.set(callId, hold);
        },
        // Every update this sideband sends (the filters' before this one: the locked state, a relock)
        // is answered before an app's update forwarded after it: the hold counts them. They are the
        // proxy's own (injected): they leave with the event_id they have here (no restamp).
        onClient(frame) {
          hold.updateSent(frame.string('event_id'));
          return CONTINUE;
        },
        onServer(frame) {
          // Server frames run the chain backwards: this filter first. The waiter resumes after the
          // whole chain ran on this frame (a microtask later), the locked state already queued.
          if (frame.type === 'session.created') governors.governing(callId);
          if (hold.held) hold.onServer(frame.type, ResponsesHold.readsBody(frame.type) ? frame.json() : {});
          if (!hold.held) forget();
          return CONTINUE;
        },
        onClose() {
          hold.stop();
          forget();
        },
        onReport(report) {
          if (report.kind === 'budget' && (report.action === 'cancelled' || report.action === 'refused' || report.action === 'ended')) governors.capReached(callId, report.action === 'cancelled', { scope: report.scope, name: report.limit, code: report.code });
        },
      };
    },
  };
  // The sideband sessions run the whole chain, this module's filter last (as the server's chain does).
  const template = new ChainTemplate([...deps.filters, filter]);
  governors.useTemplate(template);
  // Calls an instance that went away left (a crash, a handover at shutdown) are looked for at once.
  void governors.sweep();

  const tenantOf = (req: HttpRequestHead): Tenant | ProxyError => {
    const key = presentedCredentials(req.headers).key;
    if (!key) return new ProxyError('missing_api_key', { close: null });
    const tenant = deps.tenants.resolve(key);
    return tenant ?? new ProxyError('invalid_api_key', { close: null });
  };
  const governFor = (tenant: Tenant, raw: unknown): Promise<GovernedSession | ProxyError> =>
    governSession(raw, deps.registry.resolve(tenant.policy).current, (model) => deps.metering.maxOutputTokens(tenant, model), { tenantId: tenant.id, log });
  /**
   * What a stored secret stands for now: its tenant and its config governed again under the policy in
   * force (idempotent when the policy did not change since the mint). Null when the tenant is no longer
   * configured, or the key that minted the secret is no longer one of its keys (revoking a key revokes
   * its secrets; a record that does not name its key, minted before 2026-12-05, is refused too).
   */
  const secretGrant = async (record: SecretRecord): Promise<{ tenant: Tenant; governed: GovernedSession | ProxyError } | null> => {
    const tenant = deps.tenants.tenants.get(record.tenant);
    if (!tenant) return null;
    if (typeof record.keySha256 !== 'string' || deps.tenants.resolveHash(record.keySha256)?.id !== tenant.id) {
      log.info({ event: 'client_secret_refused', tenant: tenant.id, reason: record.keySha256 === undefined ? 'minting_key_unknown' : 'minting_key_revoked' }, 'client secret refused: the key that minted it is no longer the tenant\'s');
      return null;
    }
    return { tenant, governed: await governFor(tenant, record.session) };
  };
  const tooLarge = (req: HttpRequestInfo): HttpReply | null =>
    req.body.length > cfg.maxBodyBytes ? { ...json(413, { error: { type: 'invalid_request_error', code: TOO_LARGE, message: `The body exceeds ${cfg.maxBodyBytes} bytes.` } }), refusal: TOO_LARGE } : null;
  // Body admission (src/app/module.ts BodyAdmission): the server reads no body byte before these answer.
  /** A tenant key, from the headers: 401 before the body is read. */
  const tenantAdmission = (req: HttpRequestHead): BodyAdmission => {
    const tenant = tenantOf(req);
    return tenant instanceof ProxyError ? errorReply(tenant) : 'authenticated';
  };
  /**
   * A tenant key, or a client secret this proxy minted: a secret is looked up in the store while the
   * body arrives (counted as unauthenticated until then), and an unknown or expired one gets its 401
   * as soon as the store answers. The handler checks the secret fully (tenant, minting key) again.
   */
  const callAdmission = (req: HttpRequestHead): BodyAdmission => {
    const key = presentedCredentials(req.headers).key;
    if (!key) return withCors(req, errorReply(new ProxyError('missing_api_key', { close: null })));
    if (deps.tenants.resolve(key)) return 'authenticated';
    if (!key.startsWith(CLIENT_SECRET_PREFIX) || key.length > MAX_KEY_CHARS) {
      return withCors(req, errorReply(key.startsWith('ek_') ? new ProxyError('invalid_client_secret', { close: null }) : new ProxyError('invalid_api_key', { close: null })));
    }
    return requestStore.getSecret(sha256Hex(key), wall()).then(
      (record) => (record ? 'authenticated' : withCors(req, errorReply(new ProxyError('invalid_client_secret', { close: null })))),
      (err: unknown) => outageReply(err, req),
    );
  };

  /**
   * Offers on their way upstream, not governed yet: they count toward `server.maxSessions` from the
   * check to their sideband's start. (Until 2026-12-06 only started sidebands counted: a burst of
   * offers all passed the check, six calls at maxSessions 2; test/calls/redteam-13-calls.test.ts.)
   */
  let creating = 0;
  /**
   * This module's sessions against `server.maxSessions`: the sidebands and the offers in flight. The
   * server's sessionsOpen sums them with its own (until 2026-12-07 it read the sidebands only, and
   * WebSocket upgrades passed while offers were held upstream: four sessions at maxSessions 2,
   * test/calls/redteam-17-offers-in-flight.test.ts).
   */
  const callSessions = (): number => governors.size + creating;
  const roomForCall = (): boolean => (deps.sessionsOpen?.() ?? callSessions()) < deps.config.server.maxSessions;
  /**
   * A place for a call on its way (checked and counted in one synchronous step, after the caps'
   * probe: concurrent offers and webhooks), or null when there is none; the release gives it back, once.
   */
  const holdRoom = (): (() => void) | null => {
    if (!roomForCall()) return null;
    creating++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      creating--;
    };
  };
  /**
   * Before a call is created or accepted upstream: the proxy's capacity, the tenant's caps, and one
   * of its concurrency slots held in the ledger (metering's holdSlot) from here until its sideband is
   * admitted (`startGoverned`, whose admission takes that very slot over by its token: `holdsSlot`)
   * or the call is refused; the caller releases it either way (nothing once handed over).
   *
   * The slot is the ledger's, the one count that every relay worker (the primary's ledger, over IPC)
   * and instance (Redis) shares. Until 2026-12-07 offers in flight were counted in this process only
   * (an in-memory map read by upgrades as `alsoHeld`): with `server.workers: 2` a tenant allowed one
   * session held an offer in one worker and a session or a second offer in the other
   * (test/calls/workers-offers-in-flight.test.ts). Before that they were not counted at all
   * (test/calls/redteam-18-offers-per-tenant.test.ts). And until 2026-12-05 the slot was taken here
   * and parked for the sideband with nobody releasing it: an offer the upstream refused kept it 30 s.
   */
  const holdCall = async (tenant: Tenant, model: string): Promise<ProxyError | SessionSlotHold> => {
    // Sideband sessions count against the same bound as client sessions (memory, sockets): sessionsOpen.
    if (!roomForCall()) return new ProxyError('overloaded', { close: null });
    return deps.metering.holdSlot({ tenant, model, query: new Map([['model', model]]) });
  };

  /**
   * Admission as for a WebSocket session (model allowlist, caps, concurrency), once the call exists
   * upstream: the slot it takes is the sideband's, started right after (`startGoverned`), and a
   * call taken over from another instance (`CallGovernors`). `slot`: the token of the call's slot
   * (CallRecord.slot), which the admission takes over if the ledger still holds it (an offer's
   * check, or the call's last sideband elsewhere), else takes anew within the limit. `offer`: the
   * check's hold of that slot, handed over once admitted.
   */
  const admitCall = async (tenant: Tenant, model: string, slot: string, offer: SessionSlotHold): Promise<ProxyError | CallAdmission> => {
    const decision = await template.admit({ tenant, model, query: new Map([['model', model]]), holdsSlot: slot });
    if (decision instanceof ProxyError) return decision;
    // The offer's slot is the admission's now (parked under its ticket for the sideband, or given back).
    offer.handOver();
    if (decision.model !== model) {
      // Admitted as another model: refused, and what the admission took goes back now.
      template.withdraw(decision);
      return new ProxyError('model_not_allowed', { message: `Model ${model} is not allowed for this tenant.`, close: null });
    }
    return { ticket: decision.ticket, withdraw: () => template.withdraw(decision) };
  };

  /**
   * Admits the call (its sideband's slot), binds it to its tenant and starts its sideband; a call
   * refused admission (a concurrent call took the tenant's last slot since `checkCall`) or that
   * cannot be bound is hung up (never left ungoverned).
   */
  const startGoverned = async (tenant: Tenant, model: string, kind: 'webrtc' | 'sip', callId: string, callLog: Logger, offer: SessionSlotHold, onAttach: Readonly<Record<string, unknown>> | null = null, sipRoute: string | null = null, waitForAppMs = 0): Promise<ProxyError | null> => {
    // The admission's slot is the sideband's, by its ticket: given back if the sideband never starts.
    let admission: CallAdmission | null = null;
    // The call's slot, under one token for its whole life: every sideband it gets takes it over (CallRecord.slot).
    const slot = offer.token ?? callSlotToken(callId);
    try {
      const admitted = await admitCall(tenant, model, slot, offer);
      if (admitted instanceof ProxyError) {
        callLog.info({ event: 'call_refused', tenant: tenant.id, call: callId, code: admitted.code }, 'the call was refused admission once created: hanging it up');
        void governors.hangup(callId, callLog, `the call was refused admission (${admitted.code})`);
        return admitted;
      }
      admission = admitted;
      // Its start is kept with the binding: a sideband that takes it over measures its duration from it.
      const startedAtMs = wall();
      await requestStore.putCall(callId, { tenant: tenant.id, model, kind, expiresAtMs: startedAtMs + cfg.bindingTtlSec * 1000, ...(onAttach ? { onAttach } : {}), startedAtMs, ...(sipRoute !== null ? { sipRoute } : {}), slot }, governors.lease(), wall());
      governors.start({ callId, tenant, model, kind, onAttach, waitForAppMs, usage: { startedAtMs, tokens: 0 }, admission });
    } catch (err) {
      admission?.withdraw();
      const storeDown = err instanceof CallStoreUnavailable;
      // The store's outage is logged once (store-outage.ts); the call hung up is logged each time.
      callLog.error({ call: callId, err: storeDown ? 'calls store unavailable' : err instanceof Error ? err.message : String(err) }, 'the call could not be bound or governed: hanging it up');
      governors.hangup(callId, callLog, 'the call could not be bound or governed');
      return storeDown ? new ProxyError('calls_store_unavailable', { message: 'The calls store is unavailable: the call was ended; retry shortly.', close: null }) : new ProxyError('upstream_unavailable', { message: 'The call could not be governed and was ended.', close: null });
    }
    callLog.info({ event: 'call_created', tenant: tenant.id, call: callId, transport: kind, model }, 'call created');
    return null;
  };

  const mint: HttpRoute = {
    method: 'POST',
    path: '/v1/realtime/client_secrets',
    auth: 'tenant',
    startsSession: true,
    maxBodyBytes: cfg.maxBodyBytes,
    admit: tenantAdmission,
    async handle(req) {
      const big = tooLarge(req);
      if (big) return big;
      const tenant = tenantOf(req);
      if (tenant instanceof ProxyError) return errorReply(tenant);
      const body = parseJsonObject(req.body, 'request body');
      if (body instanceof ProxyError) return errorReply(body);
      const after = body['expires_after'];
      let seconds = cfg.defaultSecretTtlSec;
      if (after !== undefined) {
        const a = asObject(after);
        const s = a?.['seconds'];
        if (!a || (a['anchor'] !== undefined && a['anchor'] !== 'created_at') || (s !== undefined && (typeof s !== 'number' || !Number.isInteger(s) || s < 10 || s > 7200))) {
          return errorReply(new ProxyError('invalid_request', { message: 'expires_after must be { anchor: "created_at", seconds: 10..7200 }.', param: 'expires_after', close: null }));
        }
        if (typeof s === 'number') seconds = s;
      }
      seconds = Math.min(seconds, cfg.maxSecretTtlSec);
      const governed = await governFor(tenant, body['session']);
      if (governed instanceof ProxyError) return errorReply(governed);
      const refused = await deps.metering.probe({ tenant, model: governed.model, query: new Map([['model', governed.model]]) });
      if (refused) return errorReply(refused);
      const now = wall();
      const expiresAtMs = now + seconds * 1000;
      // Checked and counted in one step, before the store's await: a burst of concurrent mints cannot
      // all pass the check (until 2026-12-05 the count followed the write: 40 of 40 got a secret on Redis).
      if (!liveSecrets.take(tenant.id, now, expiresAtMs)) return errorReply(new ProxyError('client_secrets_exceeded', { close: null, details: { limit: cfg.maxLiveSecretsPerTenant } }));
      // The proxy's own secret, not an OpenAI one: it is good only here, where the call is created with
      // the proxy's key and governed over its sideband. (An OpenAI `ek_` would let a browser take its
      // session straight to OpenAI, unmetered and unguarded.) `ek_` so the SDKs' browser guards take it.
      const value = `${CLIENT_SECRET_PREFIX}${randomBytes(24).toString('base64url')}`;
      // The minting key's hash (never the key): the secret is good only while that key is still the tenant's.
      const keySha256 = sha256Hex(presentedCredentials(req.headers).key ?? '');
      try {
        await requestStore.putSecret(sha256Hex(value), { tenant: tenant.id, policy: tenant.policy, model: governed.model, expiresAtMs, session: governed.session, keySha256 }, wall());
      } catch (err) {
        liveSecrets.release(tenant.id, expiresAtMs);
        return outageReply(err);
      }
      log.info({ event: 'client_secret_minted', tenant: tenant.id, model: governed.model, seconds, locked: governed.rewritten, guardrails: governed.guardrails }, 'client secret minted');
      return json(200, { value, expires_at: Math.floor(expiresAtMs / 1000), session: governed.session });
    },
  };

  /** CORS for the browser's offer: bearer-authenticated (never cookies), so no credentials mode. */
  const cors = (req: HttpRequestHead): Record<string, string> => {
    const allowed = cfg.corsAllowOrigins;
    const origin = req.headers.get('origin');
    if (allowed.includes('*')) return { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'Location' };
    if (origin && allowed.includes(origin)) return { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': 'Location' };
    return {};
  };
  const withCors = (req: HttpRequestHead, reply: HttpReply): HttpReply => ({ ...reply, headers: { ...reply.headers, ...cors(req) } });

  const preflight: HttpRoute = {
    method: 'OPTIONS',
    path: '/v1/realtime/calls',
    auth: 'tenant',
    // A CORS preflight carries no body.
    maxBodyBytes: 0,
    handle(req) {
      const headers = cors(req);
      if (!headers['access-control-allow-origin']) return { status: 403, body: '' };
      const asked = req.headers.get('access-control-request-headers') ?? '';
      // Echo the requested header names when they are plain tokens (the SDKs add their own metadata headers).
      const allowHeaders = asked.length <= 1024 && /^[A-Za-z0-9_,\s-]*$/.test(asked) && asked.trim() !== '' ? asked : 'authorization, content-type';
      return { status: 204, headers: { ...headers, 'access-control-allow-methods': 'POST', 'access-control-allow-headers': allowHeaders, 'access-control-max-age': '600' }, body: '' };
    },
  };

  const createCall = async (req: HttpRequestInfo): Promise<HttpReply> => {
    const big = tooLarge(req);
    if (big) return big;
    const contentType = req.headers.get('content-type') ?? '';
    // Lower-cased to compare media types only: a multipart boundary is case-sensitive (RFC 2046
    // §5.1.1; browsers write `----WebKitFormBoundaryAbC…`), so the parser gets the header as sent.
    const type = contentType.toLowerCase();
    const key = presentedCredentials(req.headers).key;
    let tenant: Tenant;
    let model: string;
    let send: () => Promise<UpstreamReply>;
    const secretRecord = key && key.startsWith('ek_') ? await requestStore.getSecret(sha256Hex(key), wall()) : null;
    // A static tenant key may also start with ek_ (browser WebSocket clients): it takes the tenant path.
    if (key && key.startsWith('ek_') && (secretRecord || !deps.tenants.resolve(key))) {
      // A browser with a secret this proxy minted: the call is created with its (governed) config.
      const grant = secretRecord ? await secretGrant(secretRecord) : null;
      if (!grant) return errorReply(new ProxyError('invalid_client_secret', { close: null }));
      if (!type.startsWith('application/sdp')) return errorReply(new ProxyError('invalid_request', { message: 'A client secret posts the SDP offer as application/sdp.', close: null }));
      tenant = grant.tenant;
      const governed = grant.governed;
      if (governed instanceof ProxyError) return errorReply(governed);
      model = governed.model;
      const sdp = req.body.toString('utf8');
      if (!sdp.startsWith('v=0')) return errorReply(new ProxyError('invalid_request', { message: 'The SDP offer is missing or not valid.', param: 'sdp', close: null }));
      send = () => upstream.createCall(sdp, governed.session);
    } else {
      const t = tenantOf(req);
      if (t instanceof ProxyError) return errorReply(t);
      tenant = t;
      let sdp: string;
      let rawSession: unknown = {};
      if (type.startsWith('multipart/form-data')) {
        let form: FormData;
        try {
          form = await new Response(req.body, { headers: { 'content-type': contentType } }).formData();
        } catch {
          return errorReply(new ProxyError('invalid_request', { message: 'The multipart body could not be parsed.', close: null }));
        }
        const part = form.get('sdp');
        sdp = typeof part === 'string' ? part : '';
        const sessionPart = form.get('session');
        if (typeof sessionPart === 'string') {
          const parsed = parseJsonObject(Buffer.from(sessionPart, 'utf8'), "'session' part");
          if (parsed instanceof ProxyError) return errorReply(parsed);
          rawSession = parsed;
        }
      } else if (type.startsWith('application/sdp')) {
        sdp = req.body.toString('utf8');
      } else {
        return errorReply(new ProxyError('invalid_request', { message: 'Content-Type must be application/sdp (with a client secret) or multipart/form-data (sdp + session).', close: null }));
      }
      if (!sdp.startsWith('v=0')) return errorReply(new ProxyError('invalid_request', { message: 'The SDP offer is missing or not valid.', param: 'sdp', close: null }));
      const governed = await governFor(tenant, rawSession);
      if (governed instanceof ProxyError) return errorReply(governed);
      model = governed.model;
      send = () => upstream.createCall(sdp, governed.session);
    }
    const offer = await holdCall(tenant, model);
    if (offer instanceof ProxyError) return errorReply(offer);
    let callId: string;
    let answer: Buffer;
    try {
      const release = holdRoom();
      if (release === null) return errorReply(new ProxyError('overloaded', { close: null }));
      try {
        let reply: UpstreamReply;
        try {
          reply = await send();
        } catch (err) {
          return unavailable(err, log);
        }
        if (reply.status !== 201 && reply.status !== 200) return relayUpstream(reply, log, 'create_call');
        const id = callIdFromLocation(reply.headers.get('location'));
        if (!id) return errorReply(new ProxyError('upstream_rejected', { message: 'The upstream answered the offer without a call id.', close: null }));
        callId = id;
        const ungoverned = await startGoverned(tenant, model, 'webrtc', callId, log, offer);
        if (ungoverned) return errorReply(ungoverned);
        answer = reply.body;
      } finally {
        release();
      }
    } finally {
      // Its sideband holds its slot from here (startGoverned handed it over), or it ended.
      offer.release();
    }
    // The browser gets its answer once the call is governed: with it, it could open the data channel
    // and change the session (tools, instructions) before the proxy's sideband sees anything.
    if (!(await governors.ready(callId, cfg.sidebandReadyTimeoutMs))) {
      // Ended by the proxy, the sideband hangs its call up (as any sideband end but the call's own does).
      governors.session(callId)?.close(new ProxyError('upstream_unavailable', { message: 'The call sideband did not become ready.' }));
      return errorReply(new ProxyError('upstream_unavailable', { message: 'The call could not be governed and was ended.', close: null }));
    }
    return { status: 201, headers: { 'content-type': 'application/sdp', location: `/v1/realtime/calls/${callId}` }, body: answer };
  };

  const calls: HttpRoute = {
    method: 'POST',
    path: '/v1/realtime/calls',
    auth: 'tenant',
    startsSession: true,
    maxBodyBytes: cfg.maxBodyBytes,
    // The server's own refusals (413, 503 draining or overloaded, 408) reach the page readable too.
    answerHeaders: cors,
    admit: callAdmission,
    async handle(req) {
      try {
        return withCors(req, await createCall(req));
      } catch (err) {
        return outageReply(err, req);
      }
    },
  };

  /** A refusal the `openai` SDK must not retry by itself (it retries 409s and 5xx): `x-should-retry: false`. */
  const notRetried = (reply: HttpReply): HttpReply => ({ ...reply, headers: { ...reply.headers, 'x-should-retry': 'false' } });

  /**
   * A call control route (`/hangup`, `/refer`): the tenant key, the call its own (404
   * `call_not_found` for another tenant's or an unknown call, 503 on a store outage), then `check`
   * (the request's own refusals, or the body the upstream gets), then the upstream's answer passed
   * on (relayUpstream: without the operator's account ids) with the proxy's key. One implementation
   * for both: a refer is refused and answered exactly as a hangup is.
   */
  interface ControlRequest {
    /** What the upstream gets (null: no body). */
    readonly upstreamBody: JsonObject | null;
    /** Told of the upstream's answer (null: none came; `unsent`: the request never left, else it may have been acted on). */
    readonly sent?: (reply: UpstreamReply | null, unsent: boolean) => void | Promise<void>;
  }
  type ControlCheck = (req: HttpRequestInfo, tenant: Tenant, callId: string, record: CallRecord) => ControlRequest | HttpReply | Promise<ControlRequest | HttpReply>;
  const controlRoute = (action: 'hangup' | 'refer' | 'accept' | 'reject', check: ControlCheck): HttpRoute => ({
    method: 'POST',
    path: `/v1/realtime/calls/:callId/${action}`,
    auth: 'tenant',
    maxBodyBytes: cfg.maxBodyBytes,
    admit: tenantAdmission,
    async handle(req, params) {
      const tenant = tenantOf(req);
      if (tenant instanceof ProxyError) return errorReply(tenant);
      const callId = params['callId'] ?? '';
      let record: CallRecord | null;
      try {
        record = await requestStore.getCall(callId, wall());
      } catch (err) {
        return outageReply(err);
      }
      if (!record || record.tenant !== tenant.id) return errorReply(new ProxyError('call_not_found', { close: null }));
      const checked = await check(req, tenant, callId, record);
      if (!('upstreamBody' in checked)) return checked;
      let reply: UpstreamReply;
      try {
        reply = await upstream.control(callId, action, checked.upstreamBody);
      } catch (err) {
        await checked.sent?.(null, err instanceof UpstreamHttpError && err.unsent);
        return unavailable(err, log);
      }
      // Told once: outside the try, a failure of its own is not told again as an unanswered request.
      await checked.sent?.(reply, false);
      return relayUpstream(reply, log, action);
    },
  });
  // A hangup's body is not read (OpenAI's takes none).
  const hangup = controlRoute('hangup', () => ({ upstreamBody: null }));

  /** Each route's `transfer.allow`, compiled once, by the route's identity (sipRouteKey: one rule each, duplicate conditions are refused at load). */
  const transferLists = new Map(cfg.sip.routes.map((route) => [sipRouteKey(route), new TransferAllowList(route.transfer?.allow ?? [])] as const));
  const transferred = (tenant: string, outcome: TransferOutcome): void => deps.callTransferred?.(tenant, outcome);
  /**
   * Calls with a transfer on its way upstream from this process: one at a time per call (409
   * `transfer_in_progress` for another meanwhile), so a looping agent or a burst of requests cannot
   * send one call's REFERs upstream without bound. Checked here first (no store round trip), then
   * claimed in the calls store (transferClaim) that every relay worker and instance shares.
   */
  const transfersInFlight = new Set<string>();
  /**
   * A transfer in flight as the shared calls store knows it: a delivery-style claim (claimDelivery,
   * leased for the refer's own bound, forgotten once its answer came or it failed) under a key no
   * webhook id of OpenAI's takes. Until 2026-12-07 only the Set above knew it: with
   * `server.workers: 2` a refer on another connection landed in the other worker (SO_REUSEPORT) and
   * went upstream while the first waited (test/calls/redteam-21-refer-workers.test.ts). A claim left by
   * a process that died mid-refer lapses after its lease.
   */
  const transferClaim = (callId: string): string => `transfer ${callId}`;
  const transferLeaseMs = cfg.upstreamTimeoutMs + SIP_STORE_MARGIN_MS;
  const transferInProgress = (): HttpReply => notRetried(errorReply(new ProxyError('transfer_in_progress', { close: null })));
  /**
   * A transfer (SIP REFER): only `target_uri`, and only to a target the call's route allows
   * (`transfer.allow`, src/calls/transfer.ts): toll fraud is what the operator fears (a tenant, or a
   * prompt-injected agent through its app, sending callers to premium or foreign numbers on the
   * operator's trunk). What goes upstream is the target as judged. Logged with the target (the
   * operator's audit: the number dialled out on its trunk; never the caller's) and counted by outcome.
   */
  const refer = controlRoute('refer', async (req, tenant, callId, record) => {
    const big = tooLarge(req);
    if (big) return big;
    const body = parseJsonObject(req.body, 'request body');
    if (body instanceof ProxyError) return errorReply(body);
    const extra = Object.keys(body).find((k) => k !== 'target_uri');
    if (extra !== undefined) return errorReply(new ProxyError('invalid_request', { message: `Unknown parameter: '${extra.slice(0, 64)}' (a refer takes target_uri only).`, param: extra.slice(0, 64), close: null }));
    const target = body['target_uri'];
    if (typeof target !== 'string' || target.length === 0) return errorReply(new ProxyError('invalid_request', { message: 'target_uri must be a non-empty string (tel:+14155550100 or sip:agent@example.com).', param: 'target_uri', close: null }));
    if (record.kind !== 'sip') return errorReply(new ProxyError('invalid_request', { message: 'Only a SIP call can be transferred (SIP REFER); this call is WebRTC.', param: 'call_id', close: null }));
    const route = record.sipRoute === undefined ? undefined : transferLists.get(record.sipRoute);
    const verdict = route?.judge(target) ?? { allowed: false as const };
    // A refused target is the tenant's text: bounded in the log (the body may be up to maxBodyBytes).
    const logged = target.slice(0, MAX_LOGGED_TARGET_CHARS);
    // Not retried by the SDK on its own (it retries a 409): once the first answered, its retry would be a second transfer.
    if (transfersInFlight.has(callId)) return transferInProgress();
    if (!verdict.allowed) {
      log.warn({ event: 'call_transfer_refused', tenant: tenant.id, call: callId, target: logged, reason: route ? 'not_on_allow_list' : record.sipRoute === undefined ? 'call_has_no_route' : 'route_no_longer_configured' }, 'call transfer refused: the call\'s route does not allow the target');
      transferred(tenant.id, 'refused');
      return errorReply(new ProxyError('transfer_not_allowed', { param: 'target_uri', close: null }));
    }
    transfersInFlight.add(callId);
    const token = randomUUID();
    let claim: DeliveryClaim;
    try {
      claim = await requestStore.claimDelivery(transferClaim(callId), token, transferLeaseMs, wall());
    } catch (err) {
      transfersInFlight.delete(callId);
      return outageReply(err);
    }
    // Claimed by another worker or instance (a transfer claim is never recorded handled): in progress there.
    if (claim !== 'claimed') {
      transfersInFlight.delete(callId);
      return transferInProgress();
    }
    return {
      upstreamBody: { target_uri: verdict.target },
      async sent(reply, unsent) {
        transfersInFlight.delete(callId);
        // No answer to a refer that left: OpenAI may have acted on it, so the audit must not call it failed.
        const outcome: TransferOutcome = reply === null ? (unsent ? 'failed' : 'unconfirmed') : reply.status < 300 ? 'transferred' : 'failed';
        const event = outcome === 'transferred' ? 'call_transferred' : outcome === 'unconfirmed' ? 'call_transfer_unconfirmed' : 'call_transfer_failed';
        const fields = { event, tenant: tenant.id, call: callId, target: verdict.target, allowedBy: verdict.entry, status: reply?.status ?? null };
        if (outcome === 'transferred') log.info(fields, 'call transferred (SIP REFER)');
        else if (outcome === 'unconfirmed') log.warn(fields, 'call transfer unconfirmed: the refer was sent but its answer was lost (OpenAI may have transferred the call)');
        else log.warn(fields, 'call transfer failed upstream');
        transferred(tenant.id, outcome);
        // Before the tenant's answer: its next refer, on any worker or instance, finds the call free.
        // A claim that cannot be forgotten (a store outage) lapses with its lease.
        await requestStore.forgetDelivery(transferClaim(callId), token).catch((err: unknown) => log.error({ err: err instanceof Error ? err.message : String(err), call: callId }, "a transfer claim could not be forgotten: the call's next transfer waits for its lease"));
      },
    };
  });

  /**
   * `accept` and `reject` (the openai SDK's `calls.accept` / `calls.reject`): the proxy accepts and
   * rejects SIP calls by its routes, so a phone app moved here with its webhook handler unchanged
   * calls them on a call the proxy already accepted. It gets a refusal saying what to do instead
   * (409 `call_accepted_by_proxy`, `x-should-retry: false` so the SDK does not retry it), its own
   * call checked first as for /hangup; nothing goes upstream. Until 2026-12-07 both were 404 with a
   * body of `{"code":"not_found"}` only: the SDK showed `404 {"code":"not_found"}`, the app's handler
   * failed on every announcement and the call ran without the app
   * (test/calls/redteam-20-phone-app.test.ts).
   */
  const acceptedByProxy = (action: 'accept' | 'reject'): HttpRoute => controlRoute(action, () => notRetried(errorReply(new ProxyError('call_accepted_by_proxy', { close: null }))));

  /** Announces accepted calls to the tenants' apps: only where a route says where (`notify`). */
  const tenantsAnnounced = new Set(cfg.sip.routes.filter((route) => route.notify).map((route) => route.tenant)).size;
  const notifier =
    tenantsAnnounced > 0
      ? new CallNotifier({
          log,
          bounds: cfg.sip.notifyDelivery,
          tenantShare: cfg.sip.notifyDelivery.tenantShare ?? notifyTenantShare(tenantsAnnounced),
          wall,
          ...(deps.callNotified ? { outcome: deps.callNotified } : {}),
        })
      : null;
  /**
   * A call accepted and being governed is announced once its sideband read `session.created` (the
   * call is live upstream and governed: the app's `?call_id=` attach then finds it), within
   * `sidebandReadyTimeoutMs`. One whose accept's answer was lost is announced only so; one whose
   * sideband ends first is not. Waited for apart from the delivery: OpenAI's answer never waits.
   */
  const announce: NonNullable<SipDeps['announce']> = (route, tenant, callId, data) => {
    const target = route.notify;
    if (!target || !notifier) return;
    // An app that will not come: the call's responses are not held for it any longer.
    const noApp = (): void => heldForApp.get(callId)?.noApp();
    void governors.ready(callId, cfg.sidebandReadyTimeoutMs).then((live) => {
      if (live) {
        notifier.announce(target, tenant.id, callId, data, (outcome) => {
          if (outcome !== 'delivered') noApp();
        });
      } else {
        log.warn({ event: 'sip_notify_skipped', call: callId, tenant: tenant.id, transport: 'sip' }, 'SIP call not announced: its sideband did not find it live');
        noApp();
      }
    });
  };

  /** The body of an authenticated webhook delivery: a `realtime.call.incoming` is routed (SIP). */
  const webhookEvent = async (body: Buffer): Promise<HttpReply> => {
    const event = parseJsonObject(body, 'webhook body');
    if (event instanceof ProxyError) return errorReply(event);
    if (event['type'] !== 'realtime.call.incoming') return json(200, { status: 'ignored' });
    return routeSipCall(event, {
      routes: cfg.sip.routes,
      tenants: deps.tenants.tenants,
      log,
      govern: governFor,
      hold: holdCall,
      holdRoom,
      upstream,
      start: (tenant, model, callId, offer, onAttach, route) => startGoverned(tenant, model, 'sip', callId, log, offer, onAttach, sipRouteKey(route), route.notify?.waitForAppMs ?? 0),
      bound: async (callId) => (await requestStore.getCall(callId, wall())) !== null,
      announce,
    });
  };
  /**
   * Deliveries whose signature and timestamp were verified, acted on once per webhook id: a failed
   * one is forgotten (its redelivery is handled); a redelivery while the same id is handled here
   * waits for that outcome (bounded; then 503, which OpenAI retries), never "duplicate" for a
   * handling that may still fail (until 2026-12-05 it was, and the call kept ringing). Instances
   * sharing the store see the id as in progress (503 too) until handled or forgotten; its claim is
   * leased for the handling's bound (the accept's attempts and the store's few round trips), after
   * which another instance takes it over (the first died mid-handling).
   */
  const deliveries = new WebhookDeliveries<HttpReply>({
    record: requestStore,
    ttlMs: 2 * cfg.sip.toleranceSec * 1000,
    leaseMs: acceptBoundMs(cfg.upstreamTimeoutMs) + SIP_STORE_MARGIN_MS,
    wall,
    waitMs: REDELIVERY_WAIT_MS,
    duplicate: () => json(200, { status: 'duplicate' }),
    busy: () => json(503, { status: 'in_progress' }),
    onRecordFailed: (err, step) =>
      log.error({ err: err instanceof Error ? err.message : String(err), step }, step === 'forget' ? 'a failed webhook delivery could not be forgotten' : 'a handled webhook delivery could not be recorded as handled'),
    onWait: (webhookId) => log.info({ event: 'webhook_redelivery_waits', webhookId }, 'webhook redelivered while its first delivery is handled: waiting for its outcome'),
  });
  // A delivery the store cannot record is 503, which OpenAI retries.
  const webhookDelivery = (webhookId: string, body: Buffer): Promise<HttpReply> => deliveries.deliver(webhookId, () => webhookEvent(body)).catch((err: unknown) => outageReply(err));

  /**
   * The route with its refusals counted (route and code, `rtproxy_http_refused_total`): until
   * 2026-12-07 a store outage's 503s showed on no dashboard, only in one log line per outage
   * (test/calls/redteam-18o-store-outage-ops.test.ts). Refusals src/server answers before the
   * route (413 on a declared length, 503 while draining) are not the route's and are not counted.
   * The code is the one the refusal was built with (HttpReply.refusal): until 2026-12-07 it was
   * parsed back out of the reply's body, and an upstream answer passed on whose code is also one of
   * the proxy's (OpenAI's `invalid_value`) counted as the proxy's refusal.
   */
  const counted = (route: HttpRoute): HttpRoute => {
    const report = deps.requestRefused;
    if (!report) return route;
    const seen = (reply: HttpReply): HttpReply => {
      if (reply.refusal !== undefined) report(route.path, reply.refusal);
      return reply;
    };
    const admit = route.admit;
    return {
      ...route,
      ...(admit
        ? {
            admit(req, params) {
              const verdict = admit.call(route, req, params);
              if (typeof verdict === 'string') return verdict;
              if (verdict instanceof Promise) return verdict.then((v) => (typeof v === 'string' ? v : seen(v)));
              return seen(verdict);
            },
          }
        : {}),
      async handle(req, params) {
        return seen(await route.handle(req, params));
      },
    };
  };
  const routes: HttpRoute[] = [counted(mint), preflight, counted(calls), counted(hangup), counted(refer), counted(acceptedByProxy('accept')), counted(acceptedByProxy('reject'))];
  const secret = cfg.sip.webhookSecret;
  /**
   * Refused webhooks, logged once per source and reason per `logging.refusalIntervalSec` with a count
   * (as refused upgrades are): anyone reaching the client port can forge one, and until 2026-12-06
   * each wrote a line (test/security/redteam-15-webhook-log-flood.test.ts).
   */
  const webhookRefusals = new RefusalLog(log, deps.config.logging.refusalIntervalSec * 1000, () => deps.clock.now(), { event: 'webhook_refused', message: 'SIP webhook refused' });
  // Writes the counts of a finished interval even when no refusal follows it.
  const refusalFlush = setInterval(() => webhookRefusals.flush(), 1000);
  refusalFlush.unref();
  const webhookRefused = (req: HttpRequestHead, reason: string): HttpReply => {
    webhookRefusals.refused(reason, req.source ?? 'unknown');
    return errorReply(new ProxyError('invalid_webhook', { message: `The webhook was refused: ${reason}.`, close: null }));
  };
  if (secret) {
    routes.push(counted({
      method: 'POST',
      path: SIP_WEBHOOK_PATH,
      auth: 'tenant',
      // An incoming call while draining: refused (503), so that its retry reaches an instance in rotation.
      startsSession: true,
      // The signature covers the body: the headers are checked first, then at most this much is read.
      maxBodyBytes: cfg.sip.maxBodyBytes,
      admit(req) {
        const problem = webhookHeadersProblem(req.headers, wall(), cfg.sip.toleranceSec);
        return problem === null ? 'unverified' : webhookRefused(req, problem);
      },
      async handle(req) {
        const big = tooLarge(req);
        if (big) return big;
        const check = verifyWebhook(secret, req.headers, req.body, wall(), cfg.sip.toleranceSec);
        if (!check.ok) return webhookRefused(req, check.reason);
        return webhookDelivery(check.id, req.body);
      },
    }));
  }

  log.info({ sipWebhook: secret ? SIP_WEBHOOK_PATH : null, sipRoutes: cfg.sip.routes.length, sipRoutesNotifying: cfg.sip.routes.filter((route) => route.notify).length, store: ledger.kind }, 'calls enabled');
  return {
    name: 'calls',
    filters: [filter],
    routes,
    // /readyz: with the store down every mint, offer and attach fails (until 2026-12-07 /readyz said
    // ready meanwhile). failMode open keeps the instance in, as it does for the ledger.
    // And while requests find it failing (readiness of OutageGuardedStore: writes refused, commands hung).
    readiness: () => (ledger.failMode === 'closed' ? requestStore.readiness() : null),
    sessions: callSessions,
    // Calls drain like WebSocket sessions before they are hung up; handed-over ones go on elsewhere.
    drainingSessions: () => (cfg.onShutdown === 'hangup' ? governors.size : 0),
    // A browser may also open a WebSocket with its secret (OpenAI allows ek_ there too).
    async resolveSecret(key) {
      let record: SecretRecord | null;
      try {
        record = await requestStore.getSecret(sha256Hex(key), wall());
      } catch (err) {
        if (err instanceof CallStoreUnavailable) return storeUnavailableError();
        throw err;
      }
      const grant = record ? await secretGrant(record) : null;
      if (!grant || grant.governed instanceof ProxyError) return null;
      return { tenant: grant.tenant, model: grant.governed.model, session: grant.governed.session };
    },
    async close() {
      clearInterval(refusalFlush);
      notifier?.close();
      webhookRefusals.flush(true);
      await requestStore.close();
      await governors.close();
      await store.close();
    },
  };
}

