import type { HoldLink } from './hold-link.js';
import type { CapHit } from './ledger.js';

type Hold = (hit: CapHit) => void;

/** While input audio is held back over a cap, each session asks the ledger again this often (caps may be raised). */
export const AUDIO_RECHECK_MS = 5000;

/** The latest hold of a tenant (found here or elsewhere) and when it reached this process. */
interface LatestHold {
  readonly hit: CapHit;
  readonly at: number;
}

/** A tenant's sessions here, and its latest hold while a session joining would still start held by it. */
interface TenantSessions {
  readonly holds: Set<Hold>;
  latest: LatestHold | null;
}

/**
 * The metered sessions of each tenant in this process (one proxy, or one relay worker), so that
 * input audio held back over a tenant cap in one session is held in all of them, and in the
 * tenant's sessions in the other processes sharing the ledger (`link`, the ledger's `holds`: the
 * other relay workers, through the primary; the other instances on a Redis ledger, over pub/sub;
 * src/metering/hold-link.ts). A server-VAD response cancelled at `response.created` over a cap is
 * billed for the conversation it read; the session that had one holds its audio, and until
 * 2026-12-07 only that session did: a tenant with several sessions paid one such response per
 * session (test/metering/redteam-16-sessions-vad-cap.test.ts). Until 2026-12-07 (later that day)
 * the hold stayed in its process: each session on another relay worker or instance still paid one
 * (test/relay/workers-tenant-holds.test.ts, test/metering/redis-tenant-holds.test.ts).
 * Each session still asks the ledger again on its own (AUDIO_RECHECK_MS) and lifts its hold once
 * the tenant is under its caps, so a hold from elsewhere that is stale (a cap raised since) or
 * forged costs at most one recheck period of audio, and a hold that never arrives (Redis down, a
 * worker restarting) leaves that process's sessions the bound they had: one such response each.
 * A session that joins within AUDIO_RECHECK_MS of the tenant's latest hold starts held by it (then
 * lifts it by its own recheck, as the others): until 2026-12-07 a session opened after the hold was
 * not held and paid one such response (test/metering/redteam-16c-late-session-hold.test.ts). The
 * latest hold is one entry per tenant with a session here, gone with the tenant's last session.
 */
export class TenantAudioHolds {
  readonly #byTenant = new Map<string, TenantSessions>();
  readonly #link: HoldLink | null;

  constructor(link: HoldLink | null = null) {
    this.#link = link;
  }

  /**
   * Registers a session's hold; the returned function unregisters it (session closed). A hold of the
   * tenant found within AUDIO_RECHECK_MS before `now` (and of a period not over) is `hold`'s at once.
   */
  join(tenant: string, hold: Hold, now: number): () => void {
    let sessions = this.#byTenant.get(tenant);
    if (!sessions) this.#byTenant.set(tenant, (sessions = { holds: new Set(), latest: null }));
    sessions.holds.add(hold);
    const latest = sessions.latest;
    if (latest !== null) {
      // A clock gone back counts as stale too: the entry would otherwise outlive its period.
      const age = now - latest.at;
      if (age >= 0 && age < AUDIO_RECHECK_MS && latest.hit.period.resetsAt > now) hold(latest.hit);
      else sessions.latest = null;
    }
    return () => {
      sessions.holds.delete(hold);
      if (sessions.holds.size === 0 && this.#byTenant.get(tenant) === sessions) this.#byTenant.delete(tenant);
    };
  }

  /**
   * One session of `tenant` found it over a cap: every other one here holds its input audio too,
   * and the other processes are told once (one message per hold, not per session: the sessions
   * held here by it, and those held elsewhere, pass it on to nobody).
   */
  overCap(tenant: string, hit: CapHit, from: Hold, now: number): void {
    const sessions = this.#byTenant.get(tenant);
    if (sessions) {
      sessions.latest = { hit, at: now };
      for (const hold of [...sessions.holds]) if (hold !== from) hold(hit);
    }
    this.#link?.publish({ tenant, hit });
  }

  /** Another process found `tenant` over a cap: every session of it here holds its input audio. Returns how many. */
  overCapElsewhere(tenant: string, hit: CapHit, now: number): number {
    const sessions = this.#byTenant.get(tenant);
    if (!sessions) return 0;
    sessions.latest = { hit, at: now };
    for (const hold of [...sessions.holds]) hold(hit);
    return sessions.holds.size;
  }

  /** Tenants with a registered session (tests). */
  get size(): number {
    return this.#byTenant.size;
  }
}
