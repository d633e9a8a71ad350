import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteCallStore } from '../../src/calls/store.js';
import { leaseContract } from './lease-contract.js';

const fileIn = (prefix: string) => join(mkdtempSync(join(tmpdir(), prefix)), 'ledger.sqlite');
const call = (expiresAtMs: number) => ({ tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc' as const, expiresAtMs });

describe('the binding store (SQLite)', () => {
  it('keeps secrets and call bindings across a restart and forgets them at expiry (by the proxy clock)', async () => {
    const path = fileIn('rp-calls-');
    const a = new SqliteCallStore(path);
    await a.putSecret('h1', { tenant: 'acme', policy: 'locked', model: 'gpt-realtime', expiresAtMs: 2000, session: { type: 'realtime', instructions: 'kept' }, keySha256: 'a'.repeat(64) }, 1000);
    await a.putCall('rtc_1', call(5000), { owner: 'gov_a', untilMs: 2000 }, 1000);
    await a.close();
    const b = new SqliteCallStore(path);
    expect(await b.getSecret('h1', 1999)).toMatchObject({ tenant: 'acme', policy: 'locked', session: { instructions: 'kept' }, keySha256: 'a'.repeat(64) });
    expect(await b.getSecret('h1', 2000)).toBeNull();
    expect(await b.getSecret('h2', 1000)).toBeNull();
    expect(await b.getCall('rtc_1', 4999)).toMatchObject({ tenant: 'acme' });
    expect(await b.getCall('rtc_1', 5000)).toBeNull();
    expect(await b.getCall('rtc_2', 1000)).toBeNull();
    expect(await b.firstDelivery('wh_1', 1000, 1000)).toBe(true);
    expect(await b.firstDelivery('wh_1', 1000, 1500)).toBe(false);
    expect(await b.firstDelivery('wh_1', 1000, 2500)).toBe(true);
    expect(await b.firstDelivery('wh_2', 1000, 2500)).toBe(true);
    // A delivery whose handling failed is forgotten: its redelivery is a first delivery again.
    await b.forgetDelivery('wh_2');
    await b.forgetDelivery('wh_never_seen');
    expect(await b.firstDelivery('wh_2', 1000, 2600)).toBe(true);
    expect(await b.firstDelivery('wh_2', 1000, 2600)).toBe(false);
    await b.close();
    await b.close();
  });

  it('creates the ledger directory; an unreadable record is no record; a closed store answers nothing', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'rp-nested-')), 'not', 'yet', 'ledger.sqlite');
    const s = new SqliteCallStore(path);
    await s.putSecret('h1', { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: 9000, session: {} }, 1000);
    await s.putCall('rtc_1', call(9000), { owner: 'gov_a', untilMs: 2000 }, 1000);
    const db = new Database(path);
    db.prepare("UPDATE call_bindings SET json = '{broken'").run();
    db.close();
    expect(await s.getSecret('h1', 1000)).toBeNull();
    expect(await s.getCall('rtc_1', 1000)).toBeNull();
    await s.close();
    await expect(s.getCall('rtc_1', 1000)).rejects.toThrow();
  });

  it('a webhook id is delivered once within its window, again after it, and once more within the new window', async () => {
    const s = new SqliteCallStore(':memory:');
    expect(await s.firstDelivery('wh', 1000, 1000)).toBe(true);
    expect(await s.firstDelivery('wh', 1000, 1999)).toBe(false);
    // The window is [1000, 2000): at 2000 it is over.
    expect(await s.firstDelivery('wh', 1000, 2000)).toBe(true);
    expect(await s.firstDelivery('wh', 1000, 2999)).toBe(false);
    expect(await s.firstDelivery('wh', 1000, 3000)).toBe(true);
    await s.close();
  });

  it('a secret and a call may share an id: they are different kinds', async () => {
    const s = new SqliteCallStore(':memory:');
    await s.putSecret('same', { tenant: 'acme', policy: null, model: 'gpt-realtime', expiresAtMs: 9000, session: {} }, 1000);
    await s.putCall('same', { ...call(9000), tenant: 'globex' }, { owner: 'gov_a', untilMs: 2000 }, 1000);
    expect(await s.getSecret('same', 1000)).toMatchObject({ tenant: 'acme' });
    expect(await s.getCall('same', 1000)).toMatchObject({ tenant: 'globex' });
    await s.close();
  });

  it('purges expired rows every 256 writes (a bounded table), never live ones', async () => {
    const path = fileIn('rp-purge-');
    const s = new SqliteCallStore(path);
    const db = new Database(path, { readonly: true });
    const rows = () => (db.prepare('SELECT COUNT(*) AS n FROM call_bindings').get() as { n: number }).n;
    await s.putCall('rtc_old', call(1500), { owner: 'gov_a', untilMs: 1200 }, 1000);
    await s.putCall('rtc_live', call(1_000_000), { owner: 'gov_a', untilMs: 1200 }, 1000);
    for (let i = 0; i < 253; i++) await s.firstDelivery(`wh_${i}`, 100_000, 2000);
    expect(rows()).toBe(255);
    await s.firstDelivery('wh_last', 100_000, 2000);
    // The 256th write purged what expired before its clock; the rest stays.
    expect(rows()).toBe(255);
    expect(await s.getCall('rtc_live', 2000)).not.toBeNull();
    db.close();
    await s.close();
  });

  it('call leases, two instances on one file: claimed once when lapsed or handed over, never while renewed, never after the end', async () => {
    const path = fileIn('rp-leases-');
    const a = new SqliteCallStore(path);
    const b = new SqliteCallStore(path);
    try {
      expect(await a.renewLeases('gov_a', [], 2000)).toEqual([]);
      await leaseContract(a, b, 1_000_000);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a lapsed lease whose binding is unreadable is dropped, not claimed, and does not use up a sweep', async () => {
    const path = fileIn('rp-broken-');
    const s = new SqliteCallStore(path);
    await s.putCall('rtc_x', call(1_000_000), { owner: 'gov_dead', untilMs: 1000 }, 1000);
    await s.putCall('rtc_ok', call(1_000_000), { owner: 'gov_dead', untilMs: 1001 }, 1000);
    const db = new Database(path);
    db.prepare("UPDATE call_bindings SET json = 'not json' WHERE id = 'rtc_x'").run();
    expect((await s.claimLapsed('gov_b', 9000, 2000, 1)).map((c) => c.callId)).toEqual([]);
    expect((db.prepare('SELECT call_id FROM call_leases').all() as { call_id: string }[]).map((r) => r.call_id)).toEqual(['rtc_ok']);
    expect((await s.claimLapsed('gov_b', 9000, 2000, 1)).map((c) => c.callId)).toEqual(['rtc_ok']);
    db.close();
    await s.close();
  });

  it('leases of expired bindings are dropped at the next sweep', async () => {
    const path = fileIn('rp-expired-');
    const s = new SqliteCallStore(path);
    await s.putCall('rtc_gone', call(1500), { owner: 'gov_a', untilMs: 1400 }, 1000);
    expect(await s.claimLapsed('gov_b', 9000, 1500, 10)).toEqual([]);
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT COUNT(*) AS n FROM call_leases').get()).toEqual({ n: 0 });
    db.close();
    await s.close();
  });
});
