import { Redis } from 'ioredis';
import { parseRecord, type CallRecord, type CallStore, type SecretRecord } from './store.js';

// Its own module so that ioredis is loaded only when the ledger is Redis (calls/index.ts imports it on demand).
export interface RedisCallStoreOptions {
  readonly url: string;
  readonly keyPrefix: string;
  readonly commandTimeoutMs: number;
}

/** Redis: one key per binding, with a TTL so that Redis forgets them by itself. */
export class RedisCallStore implements CallStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(options: RedisCallStoreOptions) {
    this.#prefix = `${options.keyPrefix}calls:`;
    this.#redis = new Redis(options.url, {
      lazyConnect: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs,
    });
    // Errors surface on the commands; the client reconnects by itself.
    this.#redis.on('error', () => undefined);
  }

  #ttl(expiresAtMs: number, wallMs: number): number {
    return Math.max(1, Math.ceil(expiresAtMs - wallMs));
  }

  async putSecret(hash: string, record: SecretRecord, wallMs: number): Promise<void> {
    await this.#redis.set(`${this.#prefix}secret:${hash}`, JSON.stringify(record), 'PX', this.#ttl(record.expiresAtMs, wallMs));
  }

  async getSecret(hash: string, wallMs: number): Promise<SecretRecord | null> {
    const raw = await this.#redis.get(`${this.#prefix}secret:${hash}`);
    const rec = raw === null ? null : parseRecord<SecretRecord>(raw);
    return rec && rec.expiresAtMs > wallMs ? rec : null;
  }

  async putCall(callId: string, record: CallRecord, wallMs: number): Promise<void> {
    await this.#redis.set(`${this.#prefix}call:${callId}`, JSON.stringify(record), 'PX', this.#ttl(record.expiresAtMs, wallMs));
  }

  async getCall(callId: string, wallMs: number): Promise<CallRecord | null> {
    const raw = await this.#redis.get(`${this.#prefix}call:${callId}`);
    const rec = raw === null ? null : parseRecord<CallRecord>(raw);
    return rec && rec.expiresAtMs > wallMs ? rec : null;
  }

  async firstDelivery(webhookId: string, ttlMs: number, _wallMs: number): Promise<boolean> {
    const ok = await this.#redis.set(`${this.#prefix}webhook:${webhookId}`, '1', 'PX', Math.max(1, ttlMs), 'NX');
    return ok === 'OK';
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
