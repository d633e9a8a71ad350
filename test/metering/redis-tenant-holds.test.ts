import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { TenantHold } from '../../src/metering/hold-link.js';
import type { CapHit } from '../../src/metering/ledger.js';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { noonClock } from '../support/clock.js';
import { redisSuite } from './redis-suite.js';
import { ADMIN_KEY, until } from './support.js';
import { HOLD_LIMITS, holdArrived, secondSessionPaysNothing } from './tenant-holds-support.js';

/*
 * Over-cap audio holds across instances sharing one real redis-server. A server-VAD response the
 * proxy cancels at `response.created` over a cap is billed for the conversation it read; one
 * session that had one holds the input audio of every session of its tenant in its process
 * (test/metering/redteam-16-sessions-vad-cap.test.ts). Until 2026-12-07 that was all: a session of
 * the tenant on another instance still started, and paid, one more. Each case has a relay-worker
 * instance on one side (the hold goes worker → primary → Redis, or Redis → primary → worker).
 */

const clock = noonClock();
const suite = redisSuite();
const proxies = suite.proxies;

async function instance(keyPrefix: string, workers: number): Promise<TestProxy> {
  const tp = await startTestProxy({
    start: { clock },
    tenants: { acme: { limits: HOLD_LIMITS } },
    config: {
      server: { workers },
      admin: { key: ADMIN_KEY },
      logging: { level: 'info' },
      metering: { admission: 'worst_case', ledger: { kind: 'redis', url: suite.redis().url, keyPrefix, commandTimeoutMs: 3000 } },
    },
  });
  proxies.push(tp);
  return tp;
}

describe('over-cap audio holds across instances sharing a Redis ledger', () => {
  for (const [name, workers] of [
    ['relay workers → one process', [2, 1]],
    ['one process → relay workers', [1, 2]],
  ] as const) {
    it(`${name}: after a session on one instance had its VAD response cancelled over the cap, a session on the other speaking pays none`, { timeout: 120_000 }, async () => {
      const keyPrefix = suite.keyPrefix('holds');
      const a = await instance(keyPrefix, workers[0]);
      const b = await instance(keyPrefix, workers[1]);
      const first = await a.client();
      const second = await b.client();
      await first.next('session.created', 15_000);
      await second.next('session.created', 15_000);
      await secondSessionPaysNothing(first, second, a.adminUrl, () => holdArrived(b));
    });
  }
});

describe('the holds channel through a Redis outage', () => {
  const HIT: CapHit = { cap: 'daily_usd', period: { kind: 'day', key: 'd:2026-12-07', startsAt: 1, resetsAt: 2 }, limit: 10, spent: 10, reserved: 0 };
  const ledger = (keyPrefix: string): RedisLedger =>
    new RedisLedger({ url: suite.redis().url, keyPrefix, commandTimeoutMs: 2000, reservationTtlSec: 600, usageStreamMaxLen: 1000, pendingMax: 10, failMode: 'open', tenants: ['acme'], log: pino({ level: 'silent' }) });

  /** Publishes from `from` until `got` has a hold of `tenant` (a subscription is ready some time after its connection). */
  async function delivered(from: RedisLedger, got: readonly TenantHold[], tenant: string): Promise<void> {
    await until(() => {
      if (got.some((h) => h.tenant === tenant)) return true;
      from.holds.publish({ tenant, hit: HIT });
      return false;
    }, 15_000, `a hold of ${tenant}`);
  }

  // Last in this file: it stops and restarts the shared redis-server.
  it('publishing while Redis is down throws nothing; once Redis is back the other instance gets holds again; its own never come back to it', { timeout: 60_000 }, async () => {
    const keyPrefix = suite.keyPrefix('outage');
    const one = ledger(keyPrefix);
    const two = ledger(keyPrefix);
    // Another prefix is another ledger: its holds are not these.
    const other = ledger(suite.keyPrefix('other'));
    try {
      await one.connect();
      await two.connect();
      await other.connect();
      const atOne: TenantHold[] = [];
      const atTwo: TenantHold[] = [];
      one.holds.subscribe((h) => void atOne.push(h));
      two.holds.subscribe((h) => void atTwo.push(h));
      await delivered(one, atTwo, 'before');
      await delivered(two, atOne, 'back');
      other.holds.publish({ tenant: 'elsewhere', hit: HIT });
      // Both subscribed: one's own hold, published before the fence, would reach it before the fence.
      await delivered(one, atTwo, 'own');
      await delivered(two, atOne, 'fence');
      expect(atOne.map((h) => h.tenant)).not.toContain('own');

      await suite.redis().stop(true);
      expect(() => one.holds.publish({ tenant: 'during', hit: HIT })).not.toThrow();
      await suite.redis().restart();
      await delivered(one, atTwo, 'after');
      expect(atTwo[atTwo.length - 1]).toEqual({ tenant: 'after', hit: HIT });
      expect(atTwo.map((h) => h.tenant)).not.toContain('elsewhere');
    } finally {
      await Promise.all([one.close(), two.close(), other.close()]);
    }
  });
});
