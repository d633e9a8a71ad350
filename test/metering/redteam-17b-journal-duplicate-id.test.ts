import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NO_CAPS } from '../../src/metering/limits.js';
import { record, T0 } from './ledger-contract.js';
import { failingSqliteFiles } from './failing-sqlite.js';

/*
 * The unwritten-records journal (`<path>-unwritten.jsonl`) replayed at start keys each record by its
 * id, and the file's usage.record_id index is UNIQUE. A journal holding one id twice (a backup of it
 * appended back, two files concatenated while moving the ledger, or a second instance on the file
 * during a restart on one host replaying what the first then wrote itself) made the record count
 * twice against the caps, and the second copy's insert failed the UNIQUE index at every retry: it
 * stayed first in the queue, so every later record of every tenant waited behind it, /readyz stayed
 * 503 for good, and once unwrittenMaxBytes filled every reservation was refused (the proxy refused
 * all metered sessions). The file refuses writes as in sqlite-ledger-journal.test.ts: a trigger a
 * second connection installs.
 */

const sqliteFiles = failingSqliteFiles();
const rig = () => sqliteFiles('rp-redteam-17b-journal-');

describe('redteam 17b: a journal holding one record id twice', () => {
  it('counts the record once and does not wedge the records after it', async () => {
    const r = rig();
    const first = r.ledger();
    r.fail();
    first.settle(null, record({ ref: 'resp_1', costNanos: 1_000_000 }));
    await first.close();
    // The same line twice: what appending a backup copy of the journal to it leaves.
    const line = readFileSync(r.journal, 'utf8');
    writeFileSync(r.journal, line + line);
    // Started while the file still refuses writes: the replayed records wait, counted.
    const second = r.ledger();
    // Before the fix: 2,000,000 (the record counted twice against the caps).
    expect(second.status('acme', NO_CAPS, T0).day.spent.nanos).toBe(1_000_000);
    expect(second.unwritten.records).toBe(1);
    r.heal();
    second.settle(null, record({ ref: 'resp_2', costNanos: 5 }));
    // Before the fix: resp_2 waited behind the duplicate forever and /readyz stayed not ready.
    expect(r.onDisk()).toMatchObject({ nanos: 1_000_005, refs: ['resp_1', 'resp_2'] });
    expect(second.unwritten).toEqual({ records: 0, bytes: 0 });
    expect(second.readiness()).toBeNull();
  });

  it('a second instance on the file (a restart on one host) replaying what the first then wrote does not wedge', () => {
    const r = rig();
    const first = r.ledger();
    r.fail();
    first.settle(null, record({ ref: 'resp_1', costNanos: 1_000_000 }));
    // Starts on the file while the first still runs: reads the first's journal, counts its record.
    const second = r.ledger();
    expect(second.unwritten.records).toBe(1);
    r.heal();
    // The first writes its own record (with its id) at its next settle.
    first.settle(null, record({ ref: 'resp_2', costNanos: 10 }));
    expect(r.onDisk().refs).toEqual(['resp_1', 'resp_2']);
    // Before the fix: the second's copy of resp_1 failed the UNIQUE index at every try, and resp_3
    // (and everything after it) never reached the file.
    second.settle(null, record({ ref: 'resp_3', costNanos: 100 }));
    expect(r.onDisk()).toMatchObject({ nanos: 1_000_110, refs: ['resp_1', 'resp_2', 'resp_3'] });
    expect(second.unwritten).toEqual({ records: 0, bytes: 0 });
    expect(second.readiness()).toBeNull();
  });
});
