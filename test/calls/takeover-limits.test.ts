import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteCallStore } from '../../src/calls/store.js';
import type { SimCall } from '../../src/simulator/index.js';
import { noonClock } from '../support/clock.js';
import { startTestProxy, type TestProxy, type TestTenantInput } from '../support/harness.js';
import { ADMIN_KEY, spend, usageRecords } from '../metering/support.js';
import { receivedTypes, say, types, until } from './support.js';
import { LEASE_SEC, sharedUpstream } from './instances.js';
import type { Clock } from '../../src/pipeline/filter.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * A call taken over by another instance (its governing instance's lease lapsed) keeps its usage
 * toward the per-session limits: the new sideband counts `maxSessionTokens` on from the tokens the
 * call's earlier sidebands settled and measures `maxSessionDurationSec` from the call's start.
 * (Until 2026-12-06 each takeover started both from zero: a fresh allowance per takeover.)
 *
 * Two instances share one simulator and one SQLite ledger file. Instance B's wall clock runs ahead
 * of A's (injected clocks): A's lease, renewed on A's clock, has lapsed on B's, so B claims the call
 * at its first sweep, as after A was cut off; A finds its lease taken and lets its sideband go.
 */
const SIM_KEY = 'sk-simulator-takeover-limits';
const up = sharedUpstream(SIM_KEY, 'rp-takeover-limits-');
const instance = (ledger: string, clock: Clock, tenants: Record<string, TestTenantInput>) => up.instance(ledger, { clock, tenants });

/** `base` shifted `skewMs` ahead (wall clock only). */
const ahead = (base: { now(): number; wall(): number }, skewMs: number) => ({ now: () => base.now(), wall: () => base.wall() + skewMs });

const dones = (call: SimCall) => call.dataChannel.filter((e) => e['type'] === 'response.done');
const hungUp = (call: SimCall) => call.control.some((c) => c.action === 'hangup');
/** Settled response tokens in the shared ledger (every instance's). */
const billedTokens = async (tp: TestProxy) =>
  (await usageRecords(tp.adminUrl, '?tenant=acme')).filter((r) => r['source'] === 'response').reduce((n, r) => n + Number(r['totalTokens']), 0);

/** Takes the call over on a new instance B (wall clock `skewMs` ahead of A's) and waits until A let go. */
async function takeOver(a: TestProxy, ledger: string, base: { now(): number; wall(): number }, skewMs: number, tenants: Record<string, TestTenantInput>, callId: string, call: SimCall): Promise<TestProxy> {
  const b = await instance(ledger, ahead(base, skewMs), tenants);
  await until(() => b.logs.some((l) => l['event'] === 'call_reattached' && l['call'] === callId), 'B claimed the call', 10_000);
  await until(() => call.sidebands.length === 2, "B's sideband", 10_000);
  await until(() => a.logs.some((l) => l['event'] === 'call_released' && l['call'] === callId), 'A let its sideband go', (LEASE_SEC + 3) * 1000);
  return b;
}

describe('a call taken over by another instance keeps its per-session limits', () => {
  it('maxSessionTokens: B counts on from the tokens A settled, and refuses the response that starts once the call is over the limit', async () => {
    const ledger = up.ledger('tokens');
    // The two text turns below settle 99 and 151 tokens (the simulator is deterministic; checked
    // below): the limit lets both run (the second starts at 99 settled) and the call's total passes
    // it (250 >= 200), while neither sideband's own count does (99, 151 < 200).
    const LIMIT = 200;
    const tenants = { acme: { limits: { maxSessionTokens: LIMIT } } };
    const base = noonClock();
    const a = await instance(ledger, base, tenants);
    let b: TestProxy | null = null;
    try {
      const { callId, call } = await up.createCall(a.httpUrl);
      say(call, 'say: first answer on instance A');
      await until(() => dones(call).length === 1, 'the first response');
      await until(async () => (await billedTokens(a)) > 0, "the first response billed by A's sideband");
      const onA = await billedTokens(a);
      expect(onA).toBeGreaterThan(0);
      expect(onA).toBeLessThan(LIMIT);

      b = await takeOver(a, ledger, base, 30_000, tenants, callId, call);
      // Under the limit with A's tokens: B lets the next response run.
      say(call, 'say: second answer on instance B');
      await until(() => dones(call).length === 2, 'the second response');
      expect(dones(call)[1]!['response']).toMatchObject({ status: 'completed' });
      await until(async () => (await billedTokens(b!)) > onA, "the second response billed by B's sideband");
      const total = await billedTokens(b);
      expect(total - onA).toBeLessThan(LIMIT);
      expect(total).toBeGreaterThanOrEqual(LIMIT);
      expect(receivedTypes(call)).not.toContain('response.cancel');

      // The call's total (A's and B's) passed the limit: the next response B sees start is cancelled.
      say(call, `say: ${'a third answer that must not run past the session token limit '.repeat(4)}`);
      await until(() => dones(call).length === 3, 'the third response');
      expect(receivedTypes(call)).toContain('response.cancel');
      expect(dones(call)[2]!['response']).toMatchObject({ status: 'cancelled' });
      await until(() => hungUp(call), 'the hang-up over the limit (calls.onCap: hangup)', 10_000);
      // B's sideband counted the call's whole usage: A's tokens it was seeded with, and its own.
      await until(() => b!.logs.some((l) => l['msg'] === 'call sideband end' && l['call'] === callId), "B's sideband end");
      const end = b.logs.find((l) => l['msg'] === 'call sideband end' && l['call'] === callId)!;
      expect(end['meteringSessionTokens']).toBe(await billedTokens(b));
    } finally {
      await b?.stop();
      await a.stop();
    }
  }, 60_000);

  it.each([
    { bound: 'with its start in its record', legacy: false },
    { bound: 'before 2026-12-06 (no start in its record: its binding expiry less calls.bindingTtlSec)', legacy: true },
  ])('maxSessionDurationSec: B measures the duration from the call\'s start on A, and ends the call once it passed (a call bound $bound)', async ({ legacy }) => {
    const ledger = up.ledger(`duration-${legacy}`);
    const tenants = { acme: { limits: { maxSessionDurationSec: 60 } } };
    const base = noonClock();
    const a = await instance(ledger, base, tenants);
    let b: TestProxy | null = null;
    try {
      const { callId, call } = await up.createCall(a.httpUrl);
      say(call, 'say: an answer on instance A');
      await until(() => types(call).includes('response.done'), 'the response on A');
      if (legacy) {
        // The record as an instance before 2026-12-06 wrote it.
        const db = new Database(ledger);
        const row = db.prepare("SELECT json FROM call_bindings WHERE kind = 'call' AND id = ?").get(callId) as { json: string };
        const { startedAtMs: _dropped, ...old } = JSON.parse(row.json) as Record<string, unknown>;
        db.prepare("UPDATE call_bindings SET json = ? WHERE kind = 'call' AND id = ?").run(JSON.stringify(old), callId);
        db.close();
      }
      // B's clock is 59 s ahead: to B the call has run 59 s (and whatever the test took) of its 60.
      b = await takeOver(a, ledger, base, 59_000, tenants, callId, call);
      await until(() => hungUp(call), 'the hang-up at the duration limit', 10_000);
      // Ended by B's sideband at the duration limit (which hangs its call up), nothing else.
      expect(b.logs.filter((l) => l['msg'] === 'proxy ends session' && l['call'] === callId).map((l) => l['code'])).toEqual(['session_duration_exceeded']);
      // And its hang-up names that limit (until 2026-12-06 it said "the call reached its cost cap").
      expect(b.logs.filter((l) => l['event'] === 'call_hangup' && l['call'] === callId).map((l) => l['why'])).toEqual(['the call reached its session limit (session_duration_exceeded)']);
      // A ended nothing: to A the call was seconds old.
      expect(a.logs.some((l) => l['event'] === 'call_hangup')).toBe(false);
    } finally {
      await b?.stop();
      await a.stop();
    }
  }, 60_000);

  it('calls.onShutdown: handover: the next instance counts on from every token the leaving one settled, a response billed as it let go included', async () => {
    const ledger = up.ledger('handover');
    // Far-off limits: the test reads the counts, not a refusal (the cap makes the leaving sideband
    // reserve each response it reads, which the test can see).
    const tenants = { acme: { limits: { maxSessionTokens: 1_000_000, dailyTokens: 100_000_000 } } };
    const base = noonClock();
    const a = await startTestProxy({
      tenants,
      config: {
        admin: { key: ADMIN_KEY, port: 0 },
        upstream: { provider: 'openai', url: up.sim.url, apiKey: SIM_KEY, allowCallId: true },
        metering: { ledger: { path: ledger } },
        calls: { enabled: true, leaseSec: LEASE_SEC, onShutdown: 'handover' },
      },
      start: { clock: base },
    });
    let b: TestProxy | null = null;
    try {
      const { callId, call } = await up.createCall(a.httpUrl);
      say(call, 'say: first answer on instance A');
      await until(() => dones(call).length === 1, 'the first response');
      // Stopped mid-response: A's sideband bills that response at its response.done, then hands over.
      say(call, `say: ${'a long answer that is still playing when the instance stops '.repeat(6)}`);
      await until(() => types(call).filter((t) => t === 'output_audio_buffer.started').length === 2, 'the second response under way');
      await until(async () => Number((await spend(a.adminUrl)).day.reservedUsd) > 0, "A's sideband read the second response");
      await a.stop();
      expect(dones(call)).toHaveLength(2);
      expect(hungUp(call)).toBe(false);
      // The same wall clock: the lease was released, not lapsed.
      b = await instance(ledger, base, tenants);
      await until(() => b!.logs.some((l) => l['event'] === 'call_reattached' && l['call'] === callId), 'B claimed the call', 10_000);
      await until(() => call.sidebands.length === 2, "B's sideband", 10_000);
      const onA = await billedTokens(b);
      expect(onA).toBeGreaterThan(0);
      say(call, 'say: an answer on instance B');
      await until(async () => (await billedTokens(b!)) > onA, "B's response billed");
      const total = await billedTokens(b);
      const logs = b.logs;
      // B's sideband ends (hung up at B's shutdown): its count is the call's whole usage.
      await b.stop();
      b = null;
      const end = logs.find((l) => l['msg'] === 'call sideband end' && l['call'] === callId);
      expect(end?.['meteringSessionTokens']).toBe(total);
    } finally {
      await b?.stop();
    }
  }, 60_000);
});

describe('the SQLite call store of a ledger file made before 2026-12-06', () => {
  it('gets the leases\' tokens column: its leases are claimed with 0 and count from there', async () => {
    const path = join(tempDir('rp-old-leases-'), 'ledger.sqlite');
    const old = new Database(path);
    old.exec('CREATE TABLE call_bindings (kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (kind, id))');
    old.exec('CREATE TABLE call_leases (call_id TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL)');
    const rec = { tenant: 'acme', model: 'gpt-realtime', kind: 'webrtc', expiresAtMs: 90_000 };
    old.prepare("INSERT INTO call_bindings VALUES ('call', 'rtc_old', ?, 90000)").run(JSON.stringify(rec));
    old.prepare("INSERT INTO call_leases VALUES ('rtc_old', 'gov_old', 1000, 90000)").run();
    old.close();
    const store = new SqliteCallStore(path);
    try {
      expect(await store.claimLapsed('gov_new', 9000, 2000, 10)).toEqual([{ callId: 'rtc_old', record: rec, tokens: 0 }]);
      await store.recordTokens('rtc_old', 'gov_new', 42);
      await store.releaseCall('rtc_old', 'gov_new', false);
      expect(await store.claimLapsed('gov_next', 9000, 2000, 10)).toEqual([{ callId: 'rtc_old', record: rec, tokens: 42 }]);
    } finally {
      await store.close();
    }
    // Opened again: the column is there already.
    const again = new SqliteCallStore(path);
    try {
      await again.recordTokens('rtc_old', 'gov_next', 50);
      await again.releaseCall('rtc_old', 'gov_next', false);
      expect(await again.claimLapsed('gov_last', 9000, 2000, 10)).toEqual([{ callId: 'rtc_old', record: rec, tokens: 50 }]);
    } finally {
      await again.close();
    }
  });
});
