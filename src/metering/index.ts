import { resolve } from 'node:path';
// The one redaction (userinfo and credential query values: ioredis reads `?password=` too).
import { redactUrl } from '../logging.js';
import type { ModuleDeps, ProxyModule } from '../app/module.js';
import type { Tenant } from '../tenants/tenant.js';
import type { AdmissionAsk } from '../pipeline/filter.js';
import type { ProxyError } from '../protocol/errors.js';
import { createMeteringFilterFactory } from './filter-factory.js';
import type { MeteringRuntime } from './runtime.js';
import { admissionProbe, holdSessionSlot, NO_SLOT, type SessionSlotHold } from './session-slots.js';
import type { Ledger } from './ledger.js';
import { resolveLimits, validatePlans, type EffectiveLimits } from './limits.js';
import { PriceBook } from './pricing.js';
import { meteringRoutes } from './routes.js';
import { UsageFileSink } from './usage-sink.js';
import { speaksPreviewProtocol } from '../upstream/dial.js';
import { TenantAudioHolds } from './tenant-holds.js';

export { PriceBook } from './pricing.js';
export type { Ledger, UsageRecord } from './ledger.js';
export { NO_SLOT, type SessionSlotHold } from './session-slots.js';

/** What other concerns (src/calls) may ask metering outside a session. */
export interface MeteringModule extends ProxyModule {
  /** Price, caps and a free concurrency slot, checked now without holding anything; null: admitted. */
  probe(req: AdmissionAsk): Promise<ProxyError | null>;
  /**
   * Price, caps and a concurrency slot held now (in the ledger, shared by every relay worker) for a
   * session on its way: a call's offer, until its sideband's admission (AdmissionAsk.holdsSlot).
   */
  holdSlot(req: AdmissionAsk): Promise<ProxyError | SessionSlotHold>;
  /** The tenant's max_output_tokens limit for `model` (at most the model's maximum), or null. */
  maxOutputTokens(tenant: Tenant, model: string): number | null;
  /** The tenant's `maxConcurrentSessions` (its plan's included), or null when it has none. */
  maxConcurrentSessions(tenant: Tenant): number | null;
  /** The ledger (null with metering off): the primary serves it to relay workers (src/server/workers.ts). */
  readonly ledger: Ledger | null;
}

/**
 * The metering concern: prices every response and input transcription, enforces tenant cost and
 * token caps and session limits in one filter, keeps spend in a durable ledger (SQLite, or Redis
 * shared by several instances) and serves the admin spend/caps/usage routes.
 */
export async function createMeteringModule(deps: ModuleDeps): Promise<MeteringModule> {
  const cfg = deps.config.metering;
  if (!cfg.enabled) return { name: 'metering', filters: [], probe: async () => null, holdSlot: async () => NO_SLOT, maxOutputTokens: () => null, maxConcurrentSessions: () => null, ledger: null };

  // Bad prices, plans or tenant limits fail the boot with the config path in the message.
  const prices = new PriceBook({ prices: cfg.prices, aliases: cfg.aliases, fallbackPrice: cfg.fallbackPrice });
  validatePlans(cfg);
  const limits = new Map<string, EffectiveLimits>();
  for (const t of deps.tenants.tenants.values()) limits.set(t.id, resolveLimits(t, cfg));
  // A limit above a model's maximum is clamped to that maximum (an upstream refuses more): say so at boot.
  const realtime = prices.models.filter((m) => m.kind === 'realtime');
  for (const [tenant, l] of limits) {
    const cap = l.maxResponseOutputTokens;
    const below = cap === null ? [] : realtime.filter((m) => m.maxOutputTokens < cap).map((m) => `${m.id} (${m.maxOutputTokens})`);
    if (below.length > 0) deps.log.warn({ tenant, maxResponseOutputTokens: cap, models: below }, 'metering: maxResponseOutputTokens is above these models\' maximum; their sessions are clamped to the model maximum');
  }
  const limitsOf = (t: Tenant): EffectiveLimits => {
    let l = limits.get(t.id);
    if (!l) limits.set(t.id, (l = resolveLimits(t, cfg)));
    return l;
  };

  const wall = () => deps.clock.wall();
  let ledger: Ledger;
  const owned = deps.ledger === undefined;
  // Only the configured ledger's client is loaded (ioredis or better-sqlite3): startup time and RSS.
  if (deps.ledger) {
    ledger = deps.ledger;
  } else if (cfg.ledger.kind === 'redis') {
    const { RedisLedger } = await import('./redis-ledger.js');
    const redis = new RedisLedger({
      url: cfg.ledger.url,
      keyPrefix: cfg.ledger.keyPrefix,
      commandTimeoutMs: cfg.ledger.commandTimeoutMs,
      reservationTtlSec: cfg.ledger.reservationTtlSec,
      usageStreamMaxLen: cfg.ledger.usageStreamMaxLen,
      pendingMax: cfg.ledger.pendingMax,
      failMode: cfg.ledger.failMode,
      tenants: [...deps.tenants.tenants.keys()],
      log: deps.log,
      wall,
    });
    await redis.connect(Math.max(1000, cfg.ledger.commandTimeoutMs * 4));
    if (!redis.connected) deps.log.error({ url: redactUrl(cfg.ledger.url), failMode: cfg.ledger.failMode }, 'metering: redis ledger unreachable at startup; retrying in the background');
    ledger = redis;
  } else {
    const path = cfg.ledger.path === ':memory:' ? ':memory:' : resolve(deps.baseDir, cfg.ledger.path);
    const { SqliteLedger } = await import('./sqlite-ledger.js');
    ledger = new SqliteLedger(path, {
      synchronous: cfg.ledger.synchronous,
      retentionDays: cfg.ledger.retentionDays,
      wall,
      onError: (message) => deps.log.warn({ err: message }, 'metering sqlite ledger'),
    });
    deps.log.info({ path, synchronous: cfg.ledger.synchronous, retentionDays: cfg.ledger.retentionDays }, 'metering ledger: sqlite');
  }
  const sink = cfg.export.file ? new UsageFileSink(resolve(deps.baseDir, cfg.export.file), deps.log) : null;
  const tenantHolds = new TenantAudioHolds(ledger.holds ?? null);
  // A tenant found over a cap in another relay worker or instance: its sessions here hold their audio too.
  const stopHolds = ledger.holds?.subscribe((hold) => {
    // A hold of a period already over (a late message) would only be lifted again at the recheck.
    if (hold.hit.period.resetsAt <= wall()) return;
    const held = tenantHolds.overCapElsewhere(hold.tenant, hold.hit, wall());
    if (held > 0) deps.log.info({ tenant: hold.tenant, cap: hold.hit.cap, sessions: held }, 'metering: tenant over a cap in another relay worker or instance: its sessions here hold their input audio');
  });

  const runtime: MeteringRuntime = {
    config: cfg,
    prices,
    ledger,
    limitsOf,
    onRecord: sink ? (r) => sink.write(r) : () => undefined,
    log: deps.log,
    wall,
    callsGoverned: deps.config.calls.enabled,
    previewUpstream: speaksPreviewProtocol(deps.config.upstream),
    tenantHolds,
  };

  return {
    name: 'metering',
    filters: [createMeteringFilterFactory(runtime)],
    probe: (req) => admissionProbe(runtime, req),
    holdSlot: (req) => holdSessionSlot(runtime, req),
    maxConcurrentSessions: (tenant) => limitsOf(tenant).maxConcurrentSessions,
    maxOutputTokens(tenant, model) {
      const limit = limitsOf(tenant).maxResponseOutputTokens;
      const max = prices.lookup(model)?.price.maxOutputTokens;
      return limit === null ? null : max === undefined ? limit : Math.min(limit, max);
    },
    ledger,
    routes: meteringRoutes({ ledger, tenants: deps.tenants.tenants, limitsOf, wall, log: deps.log }),
    readiness: () => ledger.readiness(),
    async close() {
      stopHolds?.();
      if (owned) await ledger.close();
      await sink?.close();
    },
  };
}
