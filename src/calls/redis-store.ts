import { Redis } from 'ioredis';
import type { DeliveryClaim } from './webhook.js';
import { parseRecord, type CallAmendment, type CallLease, type CallRecord, type CallStore, type ClaimedCall, type SecretRecord } from './store.js';

/*
 * Leases live in a sorted set (call id by lease end), a hash (call id → owner) and a hash (call id →
 * the settled tokens its sidebands counted, recordTokens), dropped together; the scripts run
 * atomically in Redis, so instances never claim one call twice. They build the binding keys from
 * ARGV: one Redis, not a cluster (as the ledger).
 */
const CLAIM = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local rec = redis.call('GET', ARGV[5] .. id)
  if rec then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('HSET', KEYS[2], id, ARGV[3])
    out[#out + 1] = id
    out[#out + 1] = rec
    out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
  else
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
return out`;
// A lease whose binding key expired (calls.bindingTtlSec) is lost and dropped, as SQLite drops it with
// its binding: the governor then hangs the call up. (Until 2026-12-06 it was renewed for ever: the call
// outlived its binding governed here, unclaimable after a crash; test/calls/redteam-13-redis-binding.test.ts.)
const RENEW = `
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[2], id) ~= ARGV[1] then
    lost[#lost + 1] = id
  elseif redis.call('EXISTS', ARGV[3] .. id) == 0 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    lost[#lost + 1] = id
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
  end
end
return lost`;
const RELEASE = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
end
return 1`;
// Only the lease's owner writes, and never lower (writes of one owner may land out of order).
const RECORD_TOKENS = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
local n = tonumber(ARGV[3])
if n > (tonumber(redis.call('HGET', KEYS[3], ARGV[1])) or 0) then redis.call('HSET', KEYS[3], ARGV[1], ARGV[3]) end
return 1`;

// A webhook id: `claim:<token>` while in progress (its TTL is the lease), `1` once handled.
const CLAIM_DELIVERY = `
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, 6) == 'claim:' then return 'in_progress' end
  return 'handled'
end
redis.call('SET', KEYS[1], 'claim:' .. ARGV[1], 'PX', ARGV[2])
return 'claimed'`;
const FORGET_DELIVERY = `
if redis.call('GET', KEYS[1]) == 'claim:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`;

// The record replaced only if it is still the one read (another instance may amend it meanwhile), its TTL kept.
const REPLACE_IF_SAME = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
return 1`;
/** Rounds of read and compare-and-set an amendment tries before it fails (each lost only to another amendment). */
const AMEND_ATTEMPTS = 4;

const PROBE_TTL_MS = 10_000;

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

  /**
   * Not ready once the connection failed and is being retried (`reconnecting`, or closed): every
   * mint, offer and `?call_id=` attach fails then. Still connecting at boot counts as ready (not
   * known to fail yet; with metering on, the ledger has just connected to the same Redis).
   */
  readiness(): string | null {
    const status = this.#redis.status;
    return status === 'reconnecting' || status === 'close' || status === 'end' ? 'calls store (redis) unavailable' : null;
  }

  /**
   * A GET, or a SET with a 10 s TTL, of `<prefix>calls:probe`: no record's key (those are
   * `secret:`, `call:`, `webhook:` and the lease keys), and gone by itself once the probes stop.
   */
  async probe(kind: 'read' | 'write'): Promise<void> {
    const key = `${this.#prefix}probe`;
    if (kind === 'read') await this.#redis.get(key);
    else await this.#redis.set(key, '1', 'PX', PROBE_TTL_MS);
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

  get #leaseKeys(): [string, string, string] {
    return [`${this.#prefix}leases`, `${this.#prefix}owners`, `${this.#prefix}tokens`];
  }

  async putCall(callId: string, record: CallRecord, lease: CallLease, wallMs: number): Promise<void> {
    const [leases, owners, tokens] = this.#leaseKeys;
    await this.#redis
      .multi()
      .set(`${this.#prefix}call:${callId}`, JSON.stringify(record), 'PX', this.#ttl(record.expiresAtMs, wallMs))
      .zadd(leases, lease.untilMs, callId)
      .hset(owners, callId, lease.owner)
      .hdel(tokens, callId)
      .exec();
  }

  async renewLeases(owner: string, callIds: readonly string[], untilMs: number): Promise<string[]> {
    if (callIds.length === 0) return [];
    const lost = await this.#redis.eval(RENEW, 3, ...this.#leaseKeys, owner, untilMs, `${this.#prefix}call:`, ...callIds);
    return Array.isArray(lost) ? lost.map(String) : [];
  }

  async claimLapsed(owner: string, untilMs: number, wallMs: number, limit: number): Promise<ClaimedCall[]> {
    const flat = await this.#redis.eval(CLAIM, 3, ...this.#leaseKeys, wallMs, untilMs, owner, limit, `${this.#prefix}call:`);
    const claimed: ClaimedCall[] = [];
    if (!Array.isArray(flat)) return claimed;
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const record = parseRecord<CallRecord>(String(flat[i + 1]));
      const tokens = Number(flat[i + 2]);
      if (record && record.expiresAtMs > wallMs) claimed.push({ callId: String(flat[i]), record, tokens: Number.isFinite(tokens) && tokens > 0 ? tokens : 0 });
      else await this.releaseCall(String(flat[i]), owner, true);
    }
    return claimed;
  }

  async releaseCall(callId: string, owner: string, ended: boolean): Promise<void> {
    await this.#redis.eval(RELEASE, 3, ...this.#leaseKeys, callId, owner, ended ? '1' : '0');
  }

  async recordTokens(callId: string, owner: string, tokens: number): Promise<void> {
    await this.#redis.eval(RECORD_TOKENS, 3, ...this.#leaseKeys, callId, owner, tokens);
  }

  async getCall(callId: string, wallMs: number): Promise<CallRecord | null> {
    const raw = await this.#redis.get(`${this.#prefix}call:${callId}`);
    const rec = raw === null ? null : parseRecord<CallRecord>(raw);
    return rec && rec.expiresAtMs > wallMs ? rec : null;
  }

  async amendCall(callId: string, amendment: CallAmendment, wallMs: number): Promise<void> {
    const key = `${this.#prefix}call:${callId}`;
    // Merged here, not in Lua: cjson would turn the record's empty arrays (a session's `tools: []`) into objects.
    for (let attempt = 0; attempt < AMEND_ATTEMPTS; attempt++) {
      const raw = await this.#redis.get(key);
      const record = raw === null ? null : parseRecord<CallRecord>(raw);
      if (raw === null || !record || record.expiresAtMs <= wallMs) return;
      if ((await this.#redis.eval(REPLACE_IF_SAME, 1, key, raw, JSON.stringify({ ...record, ...amendment }))) === 1) return;
    }
    throw new Error(`the call's record changed under ${AMEND_ATTEMPTS} amendments in a row`);
  }

  async claimDelivery(webhookId: string, token: string, leaseMs: number, _wallMs: number): Promise<DeliveryClaim> {
    const claim = await this.#redis.eval(CLAIM_DELIVERY, 1, `${this.#prefix}webhook:${webhookId}`, token, Math.max(1, Math.ceil(leaseMs)));
    // Anything but the script's two other answers is answered as in progress (retried), never as handled.
    return claim === 'claimed' ? 'claimed' : claim === 'handled' ? 'handled' : 'in_progress';
  }

  async deliveryHandled(webhookId: string, ttlMs: number, _wallMs: number): Promise<void> {
    await this.#redis.set(`${this.#prefix}webhook:${webhookId}`, '1', 'PX', Math.max(1, ttlMs));
  }

  async forgetDelivery(webhookId: string, token: string): Promise<void> {
    await this.#redis.eval(FORGET_DELIVERY, 1, `${this.#prefix}webhook:${webhookId}`, token);
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}
