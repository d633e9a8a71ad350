import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteCallStore } from '../../src/calls/store.js';
import { deliveryContract } from './delivery-contract.js';
import { leaseContract } from './lease-contract.js';
import { tempDir } from '../support/temp-dir.js';

const fileIn = (prefix: string) => join(tempDir(prefix), 'ledger.sqlite');
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
    expect(await b.claimDelivery('wh_1', 'tok_1', 100, 1000)).toBe('claimed');
    await b.deliveryHandled('wh_1', 1000, 1000);
    expect(await b.claimDelivery('wh_1', 'tok_2', 100, 1500)).toBe('handled');
    expect(await b.claimDelivery('wh_1', 'tok_3', 100, 2500)).toBe('claimed');
    expect(await b.claimDelivery('wh_2', 'tok_4', 100, 2500)).toBe('claimed');
    // A delivery whose handling failed is forgotten: its redelivery is claimed again.
    await b.forgetDelivery('wh_2', 'tok_4');
    await b.forgetDelivery('wh_never_seen', 'tok_4');
    expect(await b.claimDelivery('wh_2', 'tok_5', 100, 2600)).toBe('claimed');
    expect(await b.claimDelivery('wh_2', 'tok_6', 100, 2600)).toBe('in_progress');
    await b.close();
    await b.close();
  });

  it('creates the ledger directory; an unreadable record is no record; a closed store answers nothing', async () => {
    const path = join(tempDir('rp-nested-'), 'not', 'yet', 'ledger.sqlite');
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

  it('a webhook id: handled once within its window, again after it; a claim holds for its lease, then is taken over (its instance died)', async () => {
    const s = new SqliteCallStore(':memory:');
    expect(await s.claimDelivery('wh', 'tok_1', 500, 1000)).toBe('claimed');
    expect(await s.claimDelivery('wh', 'tok_2', 500, 1499)).toBe('in_progress');
    // The lease is [1000, 1500): at 1500 it lapsed, and another delivery takes it over.
    expect(await s.claimDelivery('wh', 'tok_2', 500, 1500)).toBe('claimed');
    // The dead instance's claim is no longer its own to forget.
    await s.forgetDelivery('wh', 'tok_1');
    expect(await s.claimDelivery('wh', 'tok_3', 500, 1501)).toBe('in_progress');
    await s.deliveryHandled('wh', 1000, 1000);
    expect(await s.claimDelivery('wh', 'tok_3', 500, 1999)).toBe('handled');
    // The window is [1000, 2000): at 2000 it is over.
    expect(await s.claimDelivery('wh', 'tok_3', 500, 2000)).toBe('claimed');
    await s.deliveryHandled('wh', 1000, 2000);
    expect(await s.claimDelivery('wh', 'tok_4', 500, 2999)).toBe('handled');
    expect(await s.claimDelivery('wh', 'tok_4', 500, 3000)).toBe('claimed');
    await s.close();
  });

  it('webhook ids, two instances on one file: one claim at a time, the outcome known to both, forgotten only by its holder', async () => {
    const path = fileIn('rp-deliveries-');
    const a = new SqliteCallStore(path);
    const b = new SqliteCallStore(path);
    try {
      await deliveryContract(a, b, 1_000_000);
      // A handled record written before 2026-12-05 (`{}`) or an unreadable one is handled, never claimed again.
      const db = new Database(path);
      // Handled is stored as every handled record before it: `{}`.
      expect(db.prepare("SELECT json FROM call_bindings WHERE kind = 'webhook' AND id = 'wh_c'").get()).toEqual({ json: '{}' });
      db.prepare("INSERT INTO call_bindings (kind, id, json, expires_at) VALUES ('webhook', 'wh_old', '{}', 9000000), ('webhook', 'wh_bad', '{broken', 9000000)").run();
      db.close();
      expect(await a.claimDelivery('wh_old', 'tok', 1000, 1_000_000)).toBe('handled');
      expect(await a.claimDelivery('wh_bad', 'tok', 1000, 1_000_000)).toBe('handled');
    } finally {
      await a.close();
      await b.close();
    }
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
    for (let i = 0; i < 253; i++) await s.claimDelivery(`wh_${i}`, 'tok', 100_000, 2000);
    expect(rows()).toBe(255);
    await s.claimDelivery('wh_last', 'tok', 100_000, 2000);
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
