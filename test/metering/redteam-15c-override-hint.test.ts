import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { caps, record, T0 } from './ledger-contract.js';
import { startRedis, type RedisServer } from './redis-server.js';

/**
 * Two instances share a Redis ledger. The operator had lowered a tenant's daily cap below the
 * configured one with an override (PUT /admin/tenants/:id/caps, usd 1 under a configured 10); the
 * tenant reached it, and instance B remembered "at the cap" (its 30 s over-hint). The operator then
 * clears the override on instance A (usd: null: the configured $10 again). B's background re-check
 * compared the spend with the override or, without one, with the old hint's own limit ($1), never
 * with the configured cap: B kept cancelling every response of the tenant with budget_exceeded for
 * the rest of the hint, though the ledger's README promises a cap raised on another instance counts
 * from the next response.
 */

let redis: RedisServer;
const open: RedisLedger[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

async function instance(prefix: string): Promise<RedisLedger> {
  const l = new RedisLedger({
    url: redis.url,
    keyPrefix: prefix,
    commandTimeoutMs: 3000,
    reservationTtlSec: 600,
    usageStreamMaxLen: 10_000,
    pendingMax: 1000,
    failMode: 'closed',
    tenants: ['acme'],
    log: pino({ level: 'silent' }),
    wall: () => T0,
  });
  open.push(l);
  await l.connect();
  if (!l.connected) throw new Error('redis ledger did not connect');
  return l;
}

const USD = 1_000_000_000;

describe('an override cleared on another instance', () => {
  it('lifts the other instance\'s "at the cap" hint when the configured cap is above the spend', async () => {
    const a = await instance('rt15c-hint:');
    const b = await instance('rt15c-hint:');
    const configured = caps({ dayNanos: 10 * USD });
    await a.setOverride('acme', 'day', { nanos: 1 * USD });
    await a.settle(null, record({ tenant: 'acme', costNanos: 1 * USD, ts: T0 }));
    const refused = await b.reserve({ tenant: 'acme', id: 's:1', amount: { nanos: 1000, tokens: 0 }, caps: configured, wallMs: T0, mode: 'remaining' });
    expect(refused.kind).toBe('over');
    expect(b.knownOver('acme', T0)).not.toBeNull();

    await a.setOverride('acme', 'day', { nanos: null });
    // B re-checks in the background each time the hint is used; bounded by tries, not by time.
    for (let tries = 0; tries < 200 && b.knownOver('acme', T0) !== null; tries++) await new Promise((r) => setTimeout(r, 10));
    expect(b.knownOver('acme', T0)).toBeNull();
    const granted = await b.reserve({ tenant: 'acme', id: 's:2', amount: { nanos: 1000, tokens: 0 }, caps: configured, wallMs: T0, mode: 'remaining' });
    expect(granted.kind).toBe('ok');
  });
});
