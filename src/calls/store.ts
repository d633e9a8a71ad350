import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { AppTurnChoice } from './responses-hold.js';
import type { DeliveryClaim } from './webhook.js';

/** What the proxy remembers about a client secret it minted (keyed by the secret's SHA-256, never the secret). */
export interface SecretRecord {
  /** The governed session config the secret's calls are created with (the proxy's key creates them). */
  readonly session: Readonly<Record<string, unknown>>;
  readonly tenant: string;
  /** The tenant's policy name when minted (null: default policy). */
  readonly policy: string | null;
  /** The model the secret's session runs (after aliases). */
  readonly model: string;
  /** Proxy wall clock (epoch ms) after which the proxy refuses the secret. */
  readonly expiresAtMs: number;
  /**
   * SHA-256 (hex) of the tenant key that minted it, never the key: the secret is refused once that
   * key no longer resolves to `tenant` (revoked). Records without it (minted before 2026-12-05) are refused.
   */
  readonly keySha256?: string;
}

/** A call created through the proxy: only this tenant may attach to it. */
export interface CallRecord {
  readonly tenant: string;
  readonly model: string;
  readonly kind: 'webrtc' | 'sip';
  /** Proxy wall clock (epoch ms) after which the binding is forgotten. */
  readonly expiresAtMs: number;
  /**
   * The session.update a sideband sends first (a SIP call accepted with responses held), for every
   * sideband it gets until one turned the call's responses back on (or left them to the app): that
   * one clears it (null), so a sideband taking the call over later leaves the session as the app set
   * it. Until the twenty-third red-team pass (c) it was kept, and a takeover turned server VAD's
   * answers back on behind an app that had turned them off (test/calls/redteam-23c-takeover-app-turns.test.ts).
   */
  readonly onAttach?: Readonly<Record<string, unknown>> | null;
  /**
   * Proxy wall clock (epoch ms) when the call was bound: every sideband it gets measures
   * `maxSessionDurationSec` from it. Absent in records bound before 2026-12-06.
   */
  readonly startedAtMs?: number;
  /**
   * A SIP call: the routing rule that accepted it (`sipRouteKey`: its tenant and conditions), whose
   * `transfer` list in the config in force judges a `/refer`. Absent for WebRTC calls and for SIP
   * calls bound before 2026-12-07 (their transfers are refused).
   */
  readonly sipRoute?: string;
  /**
   * Why the proxy ended the call (a cap, a limit, governance), written by its governing instance
   * before it hangs up: a client socket on the call through another instance or relay worker, whose
   * upstream then closes 1000, ends with this error and close code instead (as the governing
   * process's own client sockets do). Null: cleared (a call taken over after a hang-up that never
   * landed). Absent in records written before 2026-12-07 and in calls the proxy did not end.
   */
  readonly endedByProxy?: CallEndReason | null;
  /**
   * The app's first `session.update` took effect on a client socket of the call (its session.updated
   * seen there), written by that socket's process: a governing sideband elsewhere holding the call's
   * responses for the app (ResponsesHold) releases them on it. Absent until then, and in records
   * written before 2026-12-07.
   */
  readonly appUpdate?: CallAppUpdate;
  /**
   * The ledger token of the call's concurrency slot (its offer's hold, which its sideband took over):
   * a sideband that lets the call go leaves the slot under it, and the one taking the call over takes
   * that slot (AdmissionAsk.holdsSlot) rather than a new one. Absent in records bound before
   * 2026-12-07: `callSlotToken` names their slot.
   */
  readonly slot?: string;
}

/** The error a call's governing sideband ended it with (ProxyError's code, message, close code, details). */
export interface CallEndReason {
  readonly code: string;
  readonly message: string;
  readonly closeCode: number;
  readonly details?: Readonly<Record<string, string | number | boolean | null>> | null;
}

/**
 * What the app's first session.update chose for turn detection, and the turn detection the upstream
 * reported once it took effect (null: off; absent: not reported), in the session.updated whose
 * `event_id` is `answerEventId` (every socket of the call reads that one event: a governing sideband
 * that read it already keeps its own, newer view). Absent in records written before 2026-12-07.
 */
export interface CallAppUpdate {
  readonly choice: AppTurnChoice;
  readonly turnDetection?: Readonly<Record<string, unknown>> | null;
  readonly answerEventId?: string;
}

/** Fields added to a bound call's record after it was bound (CallStore.amendCall). */
export type CallAmendment = Pick<CallRecord, 'endedByProxy' | 'appUpdate' | 'onAttach'>;

/** Which proxy instance governs a call (holds its sideband), and until when without renewing. */
export interface CallLease {
  /** The governing instance (random per process: a restarted process is a new owner). */
  readonly owner: string;
  /** Proxy wall clock (epoch ms) after which the call may be claimed by any instance. */
  readonly untilMs: number;
}

/** A call whose lease lapsed, now leased to the instance that claimed it. */
export interface ClaimedCall {
  readonly callId: string;
  readonly record: CallRecord;
  /** The settled tokens its sidebands counted so far (`recordTokens`): its new sideband counts on from them. */
  readonly tokens: number;
}

/**
 * Secret → tenant and call → tenant bindings, kept next to the metering ledger (the same SQLite
 * file, or the same Redis with its key prefix) so that they survive restarts and are shared by
 * every instance that shares the ledger. Expiry is decided against the proxy's clock by the
 * caller's `wallMs`, never by the store's own time (tests do not depend on the calendar).
 */
export interface CallStore {
  putSecret(hash: string, record: SecretRecord, wallMs: number): Promise<void>;
  /** The record, or null when unknown or expired at `wallMs`. */
  getSecret(hash: string, wallMs: number): Promise<SecretRecord | null>;
  /** Binds the call to its tenant and leases it to the instance that governs it. */
  putCall(callId: string, record: CallRecord, lease: CallLease, wallMs: number): Promise<void>;
  getCall(callId: string, wallMs: number): Promise<CallRecord | null>;
  /**
   * Merges `amendment` into the call's record, its expiry kept, for every instance's next getCall; a
   * call unknown or expired at `wallMs` is left alone (nothing is bound again).
   */
  amendCall(callId: string, amendment: CallAmendment, wallMs: number): Promise<void>;
  /** Extends `owner`'s leases on `callIds` to `untilMs`; returns the ids it no longer holds (claimed by another instance, or ended). */
  renewLeases(owner: string, callIds: readonly string[], untilMs: number): Promise<string[]>;
  /**
   * Leases to `owner` (until `untilMs`), atomically across instances, up to `limit` bound calls
   * whose lease lapsed before `wallMs`: their governing instance crashed, was cut off, or handed
   * them over at shutdown. Leases of calls whose binding expired are dropped.
   */
  claimLapsed(owner: string, untilMs: number, wallMs: number, limit: number): Promise<ClaimedCall[]>;
  /**
   * `owner` stops governing the call. `ended`: nobody is to govern it again (the call ended or was
   * hung up); otherwise it is handed over, claimable at once. A lease `owner` no longer holds is left alone.
   */
  releaseCall(callId: string, owner: string, ended: boolean): Promise<void>;
  /**
   * The settled tokens `owner`'s sideband of the call counted in all (those it was seeded with
   * included), toward `metering.maxSessionTokens`: kept with the lease and handed to whoever claims
   * it next. Never lowered; ignored when `owner` no longer holds the lease (or it ended).
   */
  recordTokens(callId: string, owner: string, tokens: number): Promise<void>;
  /** Webhook ids, in progress (claimed, with a lease) or handled: see `DeliveryRecord`. */
  claimDelivery(webhookId: string, token: string, leaseMs: number, wallMs: number): Promise<DeliveryClaim>;
  deliveryHandled(webhookId: string, ttlMs: number, wallMs: number): Promise<void>;
  forgetDelivery(webhookId: string, token: string): Promise<void>;
  /** Null while the store can answer, else a fixed text for /readyz (a store in this process's memory or file has none). */
  readiness?(): string | null;
  /**
   * One cheap call of the kind, on a key of its own (never a record's): how OutageGuardedStore
   * learns that a store it saw fail answers again while no request comes (the instance is out of
   * its load balancer's rotation). A store without it (in this process's file) is never probed.
   */
  probe?(kind: 'read' | 'write'): Promise<void>;
  close(): Promise<void>;
}

/** Rows expired before this long ago are purged on writes (bounded table size). */
const PURGE_EVERY = 256;

export function parseRecord<T>(json: string): T | null {
  try {
    return JSON.parse(json) as T;
  } catch {
    return null;
  }
}

/** A webhook id in progress is stored as its claim; a handled one as `{}` (as every record before 2026-12-05). */
const deliveryClaimJson = (token: string): string => JSON.stringify({ claim: token });
const deliveryClaimOf = (json: string): string | null => {
  const claim = parseRecord<{ claim?: unknown }>(json)?.claim;
  return typeof claim === 'string' ? claim : null;
};

export class SqliteCallStore implements CallStore {
  readonly #db: Database.Database;
  readonly #stmt: {
    put: Database.Statement<[string, string, string, number]>;
    get: Database.Statement<[string, string], { json: string; expires_at: number }>;
    dropIf: Database.Statement<[string, string, string]>;
    purge: Database.Statement<[number]>;
    lease: Database.Statement<[string, string, number, number]>;
    renew: Database.Statement<[number, string, string]>;
    lapsed: Database.Statement<[number, number, number], { call_id: string; json: string; tokens: number }>;
    claim: Database.Statement<[string, number, string]>;
    dropExpiredLeases: Database.Statement<[number]>;
    dropLease: Database.Statement<[string]>;
    drop: Database.Statement<[string, string]>;
    endLease: Database.Statement<[string, string]>;
    handOver: Database.Statement<[string, string]>;
    tokens: Database.Statement<[number, string, string]>;
  };
  readonly #putCall: (callId: string, record: CallRecord, lease: CallLease) => void;
  readonly #renew: (owner: string, callIds: readonly string[], untilMs: number) => string[];
  readonly #claim: (owner: string, untilMs: number, wallMs: number, limit: number) => ClaimedCall[];
  readonly #claimDelivery: (webhookId: string, token: string, leaseMs: number, wallMs: number) => DeliveryClaim;
  readonly #amendCall: (callId: string, amendment: CallAmendment, wallMs: number) => void;
  #writes = 0;

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    this.#db = db;
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 5000');
    db.exec(`CREATE TABLE IF NOT EXISTS call_bindings (
      kind TEXT NOT NULL,
      id TEXT NOT NULL,
      json TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      PRIMARY KEY (kind, id)
    )`);
    // One row per governed call: the instance holding its sideband and until when.
    db.exec(`CREATE TABLE IF NOT EXISTS call_leases (
      call_id TEXT PRIMARY KEY,
      owner TEXT NOT NULL,
      until_ms INTEGER NOT NULL,
      expires_at INTEGER NOT NULL
    )`);
    // The settled tokens the call's sidebands counted (recordTokens); added 2026-12-06 to files made
    // before. Another instance opening the same file may add it first: then it is there.
    const hasTokens = () => (db.pragma('table_info(call_leases)') as { name: string }[]).some((c) => c.name === 'tokens');
    if (!hasTokens()) {
      try {
        db.exec('ALTER TABLE call_leases ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0');
      } catch (err) {
        if (!hasTokens()) throw err;
      }
    }
    this.#stmt = {
      put: db.prepare('INSERT OR REPLACE INTO call_bindings (kind, id, json, expires_at) VALUES (?, ?, ?, ?)'),
      get: db.prepare('SELECT json, expires_at FROM call_bindings WHERE kind = ? AND id = ?'),
      dropIf: db.prepare('DELETE FROM call_bindings WHERE kind = ? AND id = ? AND json = ?'),
      purge: db.prepare('DELETE FROM call_bindings WHERE expires_at < ?'),
      lease: db.prepare('INSERT OR REPLACE INTO call_leases (call_id, owner, until_ms, expires_at) VALUES (?, ?, ?, ?)'),
      renew: db.prepare('UPDATE call_leases SET until_ms = ? WHERE call_id = ? AND owner = ?'),
      lapsed: db.prepare(
        "SELECT l.call_id, b.json, l.tokens FROM call_leases l JOIN call_bindings b ON b.kind = 'call' AND b.id = l.call_id WHERE l.until_ms <= ? AND l.expires_at > ? ORDER BY l.until_ms LIMIT ?",
      ),
      claim: db.prepare('UPDATE call_leases SET owner = ?, until_ms = ? WHERE call_id = ?'),
      dropExpiredLeases: db.prepare('DELETE FROM call_leases WHERE expires_at <= ?'),
      dropLease: db.prepare('DELETE FROM call_leases WHERE call_id = ?'),
      drop: db.prepare('DELETE FROM call_bindings WHERE kind = ? AND id = ?'),
      endLease: db.prepare('DELETE FROM call_leases WHERE call_id = ? AND owner = ?'),
      handOver: db.prepare('UPDATE call_leases SET until_ms = 0 WHERE call_id = ? AND owner = ?'),
      tokens: db.prepare('UPDATE call_leases SET tokens = MAX(tokens, ?) WHERE call_id = ? AND owner = ?'),
    };
    const stmt = this.#stmt;
    this.#putCall = db.transaction((callId: string, record: CallRecord, lease: CallLease) => {
      stmt.put.run('call', callId, JSON.stringify(record), record.expiresAtMs);
      stmt.lease.run(callId, lease.owner, lease.untilMs, record.expiresAtMs);
    });
    this.#renew = db.transaction((owner: string, callIds: readonly string[], untilMs: number) =>
      callIds.filter((id) => stmt.renew.run(untilMs, id, owner).changes === 0),
    );
    // Read and update in one write transaction: instances sharing the file never claim a call twice.
    const claim = db.transaction((owner: string, untilMs: number, wallMs: number, limit: number) => {
      stmt.dropExpiredLeases.run(wallMs);
      const claimed: ClaimedCall[] = [];
      for (const row of stmt.lapsed.all(wallMs, wallMs, limit)) {
        const record = parseRecord<CallRecord>(row.json);
        // Unreadable: nobody can govern it from here; its lease goes (it would fill every sweep's limit).
        if (!record) {
          stmt.dropLease.run(row.call_id);
          continue;
        }
        stmt.claim.run(owner, untilMs, row.call_id);
        claimed.push({ callId: row.call_id, record, tokens: row.tokens });
      }
      return claimed;
    });
    this.#claim = (owner, untilMs, wallMs, limit) => claim.immediate(owner, untilMs, wallMs, limit);
    // Read and claim in one write transaction: two instances never both claim one webhook id.
    const claimDelivery = db.transaction((webhookId: string, token: string, leaseMs: number, wallMs: number): DeliveryClaim => {
      const existing = stmt.get.get('webhook', webhookId);
      if (existing && existing.expires_at > wallMs) return deliveryClaimOf(existing.json) === null ? 'handled' : 'in_progress';
      stmt.put.run('webhook', webhookId, deliveryClaimJson(token), wallMs + leaseMs);
      return 'claimed';
    });
    this.#claimDelivery = (webhookId, token, leaseMs, wallMs) => claimDelivery.immediate(webhookId, token, leaseMs, wallMs);
    // Read and rewrite in one write transaction: two instances amending one call keep both fields.
    const amend = db.transaction((callId: string, amendment: CallAmendment, wallMs: number) => {
      const row = stmt.get.get('call', callId);
      if (!row || row.expires_at <= wallMs) return;
      const record = parseRecord<CallRecord>(row.json);
      if (!record) return;
      stmt.put.run('call', callId, JSON.stringify({ ...record, ...amendment }), row.expires_at);
    });
    this.#amendCall = (callId, amendment, wallMs) => amend.immediate(callId, amendment, wallMs);
  }

  #afterWrite(wallMs: number): void {
    if (++this.#writes % PURGE_EVERY === 0) this.#stmt.purge.run(wallMs);
  }

  async putSecret(hash: string, record: SecretRecord, wallMs: number): Promise<void> {
    this.#stmt.put.run('secret', hash, JSON.stringify(record), record.expiresAtMs);
    this.#afterWrite(wallMs);
  }

  async getSecret(hash: string, wallMs: number): Promise<SecretRecord | null> {
    const row = this.#stmt.get.get('secret', hash);
    if (!row || row.expires_at <= wallMs) return null;
    return parseRecord<SecretRecord>(row.json);
  }

  async putCall(callId: string, record: CallRecord, lease: CallLease, wallMs: number): Promise<void> {
    this.#putCall(callId, record, lease);
    this.#afterWrite(wallMs);
  }

  async renewLeases(owner: string, callIds: readonly string[], untilMs: number): Promise<string[]> {
    return callIds.length === 0 ? [] : this.#renew(owner, callIds, untilMs);
  }

  async claimLapsed(owner: string, untilMs: number, wallMs: number, limit: number): Promise<ClaimedCall[]> {
    return this.#claim(owner, untilMs, wallMs, limit);
  }

  async releaseCall(callId: string, owner: string, ended: boolean): Promise<void> {
    (ended ? this.#stmt.endLease : this.#stmt.handOver).run(callId, owner);
  }

  async recordTokens(callId: string, owner: string, tokens: number): Promise<void> {
    this.#stmt.tokens.run(tokens, callId, owner);
  }

  async getCall(callId: string, wallMs: number): Promise<CallRecord | null> {
    const row = this.#stmt.get.get('call', callId);
    if (!row || row.expires_at <= wallMs) return null;
    return parseRecord<CallRecord>(row.json);
  }

  async amendCall(callId: string, amendment: CallAmendment, wallMs: number): Promise<void> {
    this.#amendCall(callId, amendment, wallMs);
  }

  async claimDelivery(webhookId: string, token: string, leaseMs: number, wallMs: number): Promise<DeliveryClaim> {
    const claim = this.#claimDelivery(webhookId, token, leaseMs, wallMs);
    this.#afterWrite(wallMs);
    return claim;
  }

  async deliveryHandled(webhookId: string, ttlMs: number, wallMs: number): Promise<void> {
    this.#stmt.put.run('webhook', webhookId, '{}', wallMs + ttlMs);
  }

  async forgetDelivery(webhookId: string, token: string): Promise<void> {
    this.#stmt.dropIf.run('webhook', webhookId, deliveryClaimJson(token));
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
