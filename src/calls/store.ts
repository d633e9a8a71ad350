import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

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
}

/** A call created through the proxy: only this tenant may attach to it. */
export interface CallRecord {
  readonly tenant: string;
  readonly model: string;
  readonly kind: 'webrtc' | 'sip';
  /** Proxy wall clock (epoch ms) after which the binding is forgotten. */
  readonly expiresAtMs: number;
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
  putCall(callId: string, record: CallRecord, wallMs: number): Promise<void>;
  getCall(callId: string, wallMs: number): Promise<CallRecord | null>;
  /** Records a webhook id; false when it was already seen (a replay) within `ttlMs`. */
  firstDelivery(webhookId: string, ttlMs: number, wallMs: number): Promise<boolean>;
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

export class SqliteCallStore implements CallStore {
  readonly #db: Database.Database;
  readonly #stmt: {
    put: Database.Statement<[string, string, string, number]>;
    get: Database.Statement<[string, string], { json: string; expires_at: number }>;
    insertOnce: Database.Statement<[string, string, string, number]>;
    purge: Database.Statement<[number]>;
  };
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
    this.#stmt = {
      put: db.prepare('INSERT OR REPLACE INTO call_bindings (kind, id, json, expires_at) VALUES (?, ?, ?, ?)'),
      get: db.prepare('SELECT json, expires_at FROM call_bindings WHERE kind = ? AND id = ?'),
      insertOnce: db.prepare('INSERT OR IGNORE INTO call_bindings (kind, id, json, expires_at) VALUES (?, ?, ?, ?)'),
      purge: db.prepare('DELETE FROM call_bindings WHERE expires_at < ?'),
    };
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

  async putCall(callId: string, record: CallRecord, wallMs: number): Promise<void> {
    this.#stmt.put.run('call', callId, JSON.stringify(record), record.expiresAtMs);
    this.#afterWrite(wallMs);
  }

  async getCall(callId: string, wallMs: number): Promise<CallRecord | null> {
    const row = this.#stmt.get.get('call', callId);
    if (!row || row.expires_at <= wallMs) return null;
    return parseRecord<CallRecord>(row.json);
  }

  async firstDelivery(webhookId: string, ttlMs: number, wallMs: number): Promise<boolean> {
    const existing = this.#stmt.get.get('webhook', webhookId);
    if (existing && existing.expires_at > wallMs) return false;
    const info = existing ? this.#stmt.put.run('webhook', webhookId, '{}', wallMs + ttlMs) : this.#stmt.insertOnce.run('webhook', webhookId, '{}', wallMs + ttlMs);
    this.#afterWrite(wallMs);
    return info.changes > 0;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
