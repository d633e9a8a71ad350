import type { CapHit } from './ledger.js';

type Hold = (hit: CapHit) => void;

/**
 * The metered sessions of each tenant on this instance (this process or relay worker), so that
 * input audio held back over a tenant cap in one session is held in all of them. A server-VAD
 * response cancelled at `response.created` over a cap is billed for the conversation it read; the
 * session that had one holds its audio, and until 2026-12-07 only that session did: a tenant with
 * several sessions paid one such response per session (test/metering/redteam-16-sessions-vad-cap.test.ts).
 * Each session still asks the ledger again on its own (AUDIO_RECHECK_MS) and lifts its hold once
 * the tenant is under its caps.
 */
export class TenantAudioHolds {
  readonly #byTenant = new Map<string, Set<Hold>>();

  /** Registers a session's hold; the returned function unregisters it (session closed). */
  join(tenant: string, hold: Hold): () => void {
    let sessions = this.#byTenant.get(tenant);
    if (!sessions) this.#byTenant.set(tenant, (sessions = new Set()));
    sessions.add(hold);
    return () => {
      sessions.delete(hold);
      if (sessions.size === 0 && this.#byTenant.get(tenant) === sessions) this.#byTenant.delete(tenant);
    };
  }

  /** One session of `tenant` found it over a cap: every other one holds its input audio too. */
  overCap(tenant: string, hit: CapHit, from: Hold): void {
    const sessions = this.#byTenant.get(tenant);
    if (!sessions) return;
    for (const hold of [...sessions]) if (hold !== from) hold(hit);
  }

  /** Tenants with a registered session (tests). */
  get size(): number {
    return this.#byTenant.size;
  }
}
