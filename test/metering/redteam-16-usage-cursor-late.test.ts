import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLedger } from '../../src/metering/sqlite-ledger.js';
import type { Ledger } from '../../src/metering/ledger.js';
import { record, T0 } from './ledger-contract.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * Red team, sixteenth session (/admin/usage cursor, SQLite): pages go by (record time, row id), but
 * the SQLite ledger does not receive records in time order. With relay workers every worker's
 * settle carries the time the worker stamped and reaches the primary's file later, behind records
 * the primary (or another worker) settled meanwhile; a worker whose primary was slow queues them
 * (RemoteLedger never refuses a settle for a backlog). A billing export that follows
 * `x-next-cursor` to the tail (the point of the cursor) has its cursor past such a record's time
 * when the record is written: following the cursor never returns it. Guarantee broken: "following
 * `next` returns every record exactly once" (src/metering/README.md, GET /admin/usage). The Redis
 * ledger pages by stream entry id, where a late record is placed where it was written.
 */

const open: Ledger[] = [];
afterEach(async () => {
  for (const l of open.splice(0)) await l.close();
});

describe('sqlite ledger: a usage record written after a newer one', () => {
  it('a reader following the cursor to the tail still gets it', async () => {
    const l = new SqliteLedger(join(tempDir('rp-cursor-late-'), 'm.sqlite'), { wall: () => T0 });
    open.push(l);
    // The primary's own response, settled at T0 + 5 ms.
    l.settle(null, record({ ref: 'primary_resp', ts: T0 + 5 }));
    // The export reads to the tail: its cursor is just after primary_resp.
    const first = l.usagePage(null, T0, 100);
    expect(first.records.map((r) => r.ref)).toEqual(['primary_resp']);
    // A worker's response, settled at T0 + 1 ms on the worker, reaches the primary's file now.
    l.settle(null, record({ ref: 'worker_resp', ts: T0 + 1 }));
    const seen: string[] = [];
    let page = l.usagePage(null, first.next!, 100);
    for (let pages = 0; pages < 5 && page.records.length > 0; pages++) {
      seen.push(...page.records.map((r) => r.ref));
      page = l.usagePage(null, page.next!, 100);
    }
    // Before a fix: [] (the record is in the file, in /admin/usage?since=, but behind every cursor).
    expect(seen).toEqual(['worker_resp']);
    // `since` still reads the record's own time, and a full page is still full.
    expect(l.usagePage(null, T0 + 2, 100).records.map((r) => r.ref)).toEqual(['primary_resp']);
    expect(l.usagePage('acme', T0 + 1, 1).records.map((r) => r.ref)).toEqual(['primary_resp']);
    expect(l.usagePage(null, T0, 100).records.map((r) => r.ref)).toEqual(['primary_resp', 'worker_resp']);
  });

  it('after a restart too: the newest row time is read from the file when it opens', async () => {
    const path = join(tempDir('rp-cursor-late-reopen-'), 'm.sqlite');
    const before = new SqliteLedger(path, { wall: () => T0 });
    before.settle(null, record({ ref: 'primary_resp', ts: T0 + 5 }));
    const first = before.usagePage(null, T0, 100);
    await before.close();
    // The ledger keeps that time in memory since 2026-12-07 (no MAX(ts) per settle): a reopened one starts from the file's.
    const l = new SqliteLedger(path, { wall: () => T0 });
    open.push(l);
    l.settle(null, record({ ref: 'worker_resp', ts: T0 + 1 }));
    expect(l.usagePage(null, first.next!, 100).records.map((r) => r.ref)).toEqual(['worker_resp']);
  });
});
