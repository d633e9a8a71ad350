import type { Logger } from 'pino';
import type { Tenant } from '../tenants/tenant.js';
import type { MeteringConfig } from './config.js';
import type { Ledger, UsageRecord } from './ledger.js';
import type { EffectiveLimits } from './limits.js';
import type { PriceBook } from './pricing.js';
import type { TenantAudioHolds } from './tenant-holds.js';

export interface MeteringRuntime {
  readonly config: MeteringConfig;
  readonly prices: PriceBook;
  readonly ledger: Ledger;
  limitsOf(tenant: Tenant): EffectiveLimits;
  /** Called for every settled record (export file). */
  onRecord(record: UsageRecord): void;
  readonly log: Logger;
  readonly wall: () => number;
  /** Calls are governed (and metered) by the proxy's own sideband sessions (`calls.enabled`). */
  readonly callsGoverned?: boolean;
  /**
   * The upstream speaks the Azure preview protocol (`upstream.azure.apiVersion`): what the proxy
   * writes itself (its session clamp, a response's limit) uses the beta member `max_response_output_tokens`.
   */
  readonly previewUpstream?: boolean;
  /** The tenant's other sessions on this instance hold input audio when one finds a cap spent (TenantAudioHolds). */
  readonly tenantHolds?: TenantAudioHolds;
}

/**
 * `ledger.failMode: open` lets responses run unreserved when the ledger cannot answer. It is a
 * Redis setting (a shared ledger an instance may lose); the SQLite ledger, in this process or in
 * the primary reached over IPC by relay workers (server.workers), always fails closed: an
 * unanswered IPC call means a stalled primary, not a lost network, and open there would run
 * every response of every worker unmetered while it stalls (found 2026-12-06,
 * test/server/adversary-workers-primary-stopped.test.ts).
 */
export function ledgerFailsOpen(rt: Pick<MeteringRuntime, 'config' | 'ledger'>): boolean {
  return rt.config.ledger.failMode === 'open' && rt.ledger.kind === 'redis';
}

/**
 * A reserve the ledger could not answer runs unreserved: failMode open, Redis (not a silent
 * primary) was the one down, and its queue of unwritten settlements still has room.
 */
export function reserveFailsOpen(rt: Pick<MeteringRuntime, 'config' | 'ledger'>, result: { readonly ownerSilent?: true; readonly queueFull?: true }): boolean {
  return ledgerFailsOpen(rt) && result.ownerSilent !== true && result.queueFull !== true;
}
