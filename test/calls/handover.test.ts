import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteCallStore } from '../../src/calls/store.js';
import type { SimCall } from '../../src/simulator/index.js';
import { defaultKey, type TestProxy } from '../support/harness.js';
import { spawnProxy, whenListening } from '../support/spawned-proxy.js';
import { spend, usageRecords } from '../metering/support.js';
import { receivedTypes, say, types, until } from './support.js';
import { LEASE_SEC, sharedUpstream } from './instances.js';

/*
 * Calls outlive the proxy instance that governs them: a crash, a lost store or a shutdown must not
 * leave a call running unmetered and unguarded, and two instances must never meter one call twice.
 * The instances share one simulator (the upstream) and one SQLite ledger file, as a deployment
 * shares OpenAI and its ledger.
 */
const SIM_KEY = 'sk-simulator-handover';
const up = sharedUpstream(SIM_KEY, 'rp-handover-');

const openSidebands = (call: SimCall) => call.sidebands.length;
/** The response usage records of acme in the ledger `tp` reads (shared by the instances). */
const billedResponses = async (tp: TestProxy) => (await usageRecords(tp.adminUrl, '?tenant=acme')).filter((r) => r['source'] === 'response');
const hungUp = (call: SimCall) => call.control.some((c) => c.action === 'hangup');

describe('a call outlives the instance that governs it', () => {
  it('SIGKILL: the call is not left ungoverned; an instance on the same ledger re-attaches a sideband within the lease, meters it and enforces its cap', async () => {
    const ledger = up.ledger('crash');
    const file = join(up.dir, 'crash.yaml');
    writeFileSync(
      file,
      [
        'server: { host: 127.0.0.1, port: 0, workers: 1 }',
        'logging: { level: info }',
        `upstream: { provider: openai, url: "${up.sim.url}", apiKey: ${SIM_KEY}, allowCallId: true }`,
        `metering: { ledger: { path: ${ledger} } }`,
        `calls: { enabled: true, leaseSec: ${LEASE_SEC} }`,
        'tenants:',
        '  acme:',
        `    keys: [{ key: ${defaultKey('acme')} }]`,
        '    limits: { dailyTokens: 1 }',
        '',
      ].join('\n'),
    );
    const { child, exited } = spawnProxy(file);
    let call: SimCall;
    try {
      const { port } = await whenListening(child);
      ({ call } = await up.createCall(`http://127.0.0.1:${port}`));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    // The sideband died with the process; the call (the browser's media) goes on.
    expect(call.state).toBe('active');
    const survivor = await up.instance(ledger, { tenants: { acme: { limits: { dailyTokens: 1 } } } });
    try {
      await until(() => openSidebands(call) === 2, 'a new sideband from the surviving instance', (LEASE_SEC + 3) * 1000);
      expect(call.sidebands[1]!.headers['authorization']).toBe(`Bearer ${SIM_KEY}`);
      expect(survivor.logs.some((l) => l['event'] === 'call_reattached' && l['call'] === call.id)).toBe(true);
      // Governed again: the first response is metered there, the second is over the cap and ends the call.
      say(call, 'say: first answer after the crash');
      await until(() => types(call).includes('response.done'), 'the first response');
      await until(async () => (await billedResponses(survivor)).length > 0, 'the response billed by the survivor');
      say(call, 'say: second answer is over the cap');
      await until(() => hungUp(call), 'the hang-up by the survivor', 10_000);
      expect(receivedTypes(call)).toContain('response.cancel');
    } finally {
      await survivor.stop();
    }
  }, 40_000);

  it('two live instances on one ledger: a renewed lease is never claimed, so one sideband meters the call', async () => {
    const ledger = up.ledger('two');
    const one = await up.instance(ledger);
    const two = await up.instance(ledger);
    // A third claimer sweeping faster than the instances: it gets the call the moment a lease lapses.
    const rival = new SqliteCallStore(ledger);
    const rivalClaims: string[] = [];
    const sweeping = setInterval(() => void rival.claimLapsed('gov_rival', Date.now() + 60_000, Date.now(), 10).then((c) => rivalClaims.push(...c.map((x) => x.callId))), 100);
    try {
      const { call } = await up.createCall(one.httpUrl);
      // Two lease periods: both instances renew and sweep several times.
      await new Promise((r) => setTimeout(r, (LEASE_SEC * 2 + 1) * 1000));
      expect(rivalClaims).toEqual([]);
      expect(openSidebands(call)).toBe(1);
      expect(two.logs.some((l) => l['event'] === 'call_reattached')).toBe(false);
      say(call, 'say: one response');
      await until(() => types(call).includes('response.done'), 'the response');
      await until(async () => (await billedResponses(one)).length > 0, 'billed');
      const refs = (await billedResponses(one)).map((r) => r['ref']);
      // One ledger, one record per response: never billed by both.
      expect(refs).toHaveLength(1);
    } finally {
      clearInterval(sweeping);
      await rival.close();
      await one.stop();
      await two.stop();
    }
  }, 30_000);

  it('an instance that lost its lease (another took the call while it was cut off) lets its sideband go without hanging up', async () => {
    const ledger = up.ledger('lost');
    const one = await up.instance(ledger);
    const db = new Database(ledger);
    try {
      const { callId, call } = await up.createCall(one.httpUrl);
      // What a claim by another instance leaves in the store while this one could not renew.
      db.prepare("UPDATE call_leases SET owner = 'gov_elsewhere', until_ms = ? WHERE call_id = ?").run(Date.now() + 60_000, callId);
      await until(() => one.logs.some((l) => l['event'] === 'call_released' && l['call'] === callId), 'the sideband let go', (LEASE_SEC / 3 + 2) * 1000);
      await new Promise((r) => setTimeout(r, 300));
      expect(hungUp(call)).toBe(false);
      expect(call.state).toBe('active');
    } finally {
      db.close();
      await one.stop();
    }
  }, 20_000);

  it('calls.onShutdown: handover: a stopping instance leaves its calls running and another takes them over at once', async () => {
    const ledger = up.ledger('handover');
    // A cap (far off): the leaving sideband reserves each response it reads, which the test can see.
    const capped = { acme: { limits: { dailyTokens: 100_000_000 } } };
    const leaving = await up.instance(ledger, { calls: { onShutdown: 'handover' }, tenants: capped });
    const staying = await up.instance(ledger, { tenants: capped });
    try {
      const { call } = await up.createCall(leaving.httpUrl);
      // Stopped mid-response: the leaving sideband bills that response (at its response.done) before it lets go.
      say(call, `say: ${'a long answer that is still playing when the instance stops '.repeat(6)}`);
      await until(() => types(call).includes('output_audio_buffer.started'), 'the response under way');
      // The browser's data channel can run ahead of the sideband (a loaded machine): stop once the
      // leaving sideband has read the response (its reservation), as the handover is about.
      await until(async () => Number((await spend(leaving.adminUrl)).day.reservedUsd) > 0, 'the leaving sideband read the response');
      await leaving.stop();
      expect(types(call)).toContain('response.done');
      expect(hungUp(call)).toBe(false);
      expect(call.state).toBe('active');
      // Released, not lapsed: the next sweep (a third of the lease) takes it.
      await until(() => openSidebands(call) === 2, 'the sideband of the staying instance', (LEASE_SEC / 3 + 2) * 1000);
      expect(hungUp(call)).toBe(false);
      say(call, 'say: still governed');
      await until(async () => (await billedResponses(staying)).length >= 2, 'the second response billed by the staying instance');
      await new Promise((r) => setTimeout(r, 200));
      // Each response once: the one in flight at the handover was not billed again by the new sideband.
      const refs = (await billedResponses(staying)).map((r) => r['ref']);
      expect(refs).toHaveLength(2);
      expect(new Set(refs).size).toBe(2);
    } finally {
      await staying.stop();
    }
  }, 30_000);

  it('by default a stopping instance hangs its calls up, and nobody re-attaches them', async () => {
    const ledger = up.ledger('hangup');
    const leaving = await up.instance(ledger);
    const staying = await up.instance(ledger);
    try {
      const { call } = await up.createCall(leaving.httpUrl);
      await leaving.stop();
      await until(() => call.state === 'ended', 'the hang-up');
      await new Promise((r) => setTimeout(r, (LEASE_SEC + 1) * 1000));
      expect(openSidebands(call)).toBe(1);
      expect(staying.logs.some((l) => l['event'] === 'call_reattached')).toBe(false);
    } finally {
      await staying.stop();
    }
  }, 30_000);
});
