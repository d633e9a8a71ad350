import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { Ledger } from '../../src/metering/ledger.js';
import { SqliteLedger } from '../../src/metering/sqlite-ledger.js';
import { ledgerContract, T0 } from './ledger-contract.js';
import { tempDir } from '../support/temp-dir.js';

/** The ledger contract on a real SQLite file (the Redis run is ledger-contract-redis.test.ts). */

const open: Ledger[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

const dir = tempDir('rp-contract-');
ledgerContract({
  name: 'sqlite (file)',
  sharedReservations: false,
  async open(store) {
    const l = new SqliteLedger(join(dir, `${store}.sqlite`), { wall: () => T0 });
    open.push(l);
    return l;
  },
});
