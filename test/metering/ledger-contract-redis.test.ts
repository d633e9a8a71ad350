import pino from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Ledger } from '../../src/metering/ledger.js';
import { RedisLedger } from '../../src/metering/redis-ledger.js';
import { ledgerContract, T0 } from './ledger-contract.js';
import { startRedis, type RedisServer } from './redis-server.js';

/** The ledger contract on a real redis-server, one per file (the SQLite run is ledger-contract-sqlite.test.ts). */

const open: Ledger[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});
ledgerContract({
  name: 'redis',
  sharedReservations: true,
  async open(store) {
    const l = new RedisLedger({
      url: redis.url,
      keyPrefix: `${store}:`,
      // Generous: the test process's own event-loop stalls under load count against this timeout.
      commandTimeoutMs: 3000,
      reservationTtlSec: 600,
      usageStreamMaxLen: 10_000,
      pendingMax: 1000,
      failMode: 'closed',
      tenants: ['acme', 'beta'],
      log: pino({ level: 'silent' }),
      wall: () => T0,
    });
    open.push(l);
    await l.connect();
    if (!l.connected) throw new Error('redis ledger did not connect');
    return l;
  },
});
