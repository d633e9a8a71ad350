import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { spawnProxy, whenListening } from '../support/spawned-proxy.js';
import { TestClient } from '../support/client.js';
import { ADMIN_KEY, errorCode } from '../metering/support.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * Adversarial review of server.workers: the primary (owner of the SQLite ledger) stops answering
 * (SIGSTOP: a stuck event loop, a debugger, a swapped-out process) while relay workers keep
 * serving. Every wait for it must be bounded and refuse (fail closed): no session or response may
 * be admitted without the ledger, and what the primary grants late must be given back.
 *
 * The primary runs as its own process (the CLI on a config file) so the test can stop it; the
 * upstream is a simulator in the test process.
 */

const KEY_CAPPED = 'rpk_adv_capped_0123456789';
const KEY_SLOTS = 'rpk_adv_slots_01234567890';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function primary(sim: SimulatorHandle, extraMetering = ''): Promise<{ pid: number; port: number; adminUrl: string }> {
  const dir = tempDir('rp-adv-stop-');
  writeFileSync(
    join(dir, 'proxy.yaml'),
    [
      'server: { host: 127.0.0.1, port: 0, workers: 2 }',
      `admin: { host: 127.0.0.1, port: 0, key: ${ADMIN_KEY} }`,
      `metering: { ledger: { kind: sqlite, path: ":memory:"${extraMetering} } }`,
      `upstream: { provider: openai, url: "${sim.url}", apiKey: sk-test }`,
      'logging: { level: info }',
      'tenants:',
      '  capped:',
      `    keys: [{ key: ${KEY_CAPPED} }]`,
      '    limits: { dailyUsd: "1", maxResponseOutputTokens: 64 }',
      '  slots:',
      `    keys: [{ key: ${KEY_SLOTS} }]`,
      '    limits: { maxConcurrentSessions: 1 }',
      '',
    ].join('\n'),
  );
  const { child, exited } = spawnProxy(join(dir, 'proxy.yaml'));
  cleanups.push(async () => {
    try {
      process.kill(child.pid!, 'SIGCONT');
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  });
  const l = await whenListening(child);
  return { pid: child.pid!, port: l.port, adminUrl: `http://127.0.0.1:${l.adminPort}` };
}

const client = (port: number, key: string) => {
  const c = new TestClient(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${key}` } });
  cleanups.push(() => c.ws.terminate());
  return c;
};

const outcome = (c: TestClient) => Promise.race([c.refused, c.opened.then(() => 'admitted' as const, () => 'error' as const)]);

async function spendOf(adminUrl: string, tenant: string): Promise<{ reservedUsd: string; spentNanos: number }> {
  const r = await fetch(`${adminUrl}/admin/tenants/${tenant}/spend`, { headers: { authorization: `Bearer ${ADMIN_KEY}` }, signal: AbortSignal.timeout(10_000) });
  expect(r.status).toBe(200);
  return ((await r.json()) as { day: { reservedUsd: string; spentNanos: number } }).day;
}

async function usage(adminUrl: string, tenant: string): Promise<Record<string, unknown>[]> {
  const r = await fetch(`${adminUrl}/admin/usage?tenant=${tenant}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` }, signal: AbortSignal.timeout(10_000) });
  expect(r.status).toBe(200);
  return (await r.text())
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function askTurn(c: TestClient, eventId: string): void {
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: ok' }] } });
  c.send({ type: 'response.create', event_id: eventId, response: { output_modalities: ['text'] } });
}

describe('adversary: a primary that stops answering (SIGSTOP)', () => {
  it('workers refuse creates and upgrades that need the ledger (budget_unavailable), and give back the late grants after SIGCONT', { timeout: 90_000 }, async () => {
    // Responses take a second upstream: one is still running when the primary stops.
    const sim = await startSimulator({ timing: { firstAudioDelayMs: 1000 } });
    cleanups.push(() => sim.close());
    const p = await primary(sim);
    const c1 = client(p.port, KEY_CAPPED);
    await c1.next('session.created', 15_000);
    askTurn(c1, 'evt_adv_running');
    await c1.next('response.created', 15_000);
    const upstreamCreatesBefore = sim.connections.flatMap((x) => x.received).filter((e) => e.type === 'response.create').length;

    process.kill(p.pid, 'SIGSTOP');
    let stopped = true;
    cleanups.push(() => {
      if (stopped) process.kill(p.pid, 'SIGCONT');
    });
    // The running response completes while the primary is stopped (its settle waits in the IPC channel).
    const running = await c1.next('response.done', 15_000);
    expect((running['response'] as { status: string }).status).toBe('completed');
    // A create in an open session, an upgrade that needs a cap check and one that needs a session slot.
    askTurn(c1, 'evt_adv_stopped');
    const refusedCreate = c1.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_adv_stopped', 20_000, 'the refusal');
    const c2 = client(p.port, KEY_CAPPED);
    const c3 = client(p.port, KEY_SLOTS);
    const [err, o2, o3] = await Promise.all([refusedCreate, outcome(c2), outcome(c3)]);
    expect(errorCode(err)).toBe('budget_unavailable');
    expect(o2).toBe(503);
    expect(o3).toBe(503);
    // Nothing reached the upstream without a reservation.
    expect(sim.connections.flatMap((x) => x.received).filter((e) => e.type === 'response.create')).toHaveLength(upstreamCreatesBefore);

    process.kill(p.pid, 'SIGCONT');
    stopped = false;
    // The late grants (the reserve, the slot) are released: nothing stays reserved, the one slot is free.
    await expect.poll(async () => (await spendOf(p.adminUrl, 'capped')).reservedUsd, { timeout: 10_000 }).toBe('0.00');
    const c4 = client(p.port, KEY_SLOTS);
    expect(await outcome(c4)).toBe('admitted');
    await c4.next('session.created', 15_000);
    const c5 = client(p.port, KEY_SLOTS);
    expect(await outcome(c5)).toBe(429);
    // And the open session works again, billed.
    askTurn(c1, 'evt_adv_after');
    await c1.nth('response.done', 2, 15_000);
    // Both responses billed once each, from their response.done (the late settle was not lost or doubled).
    await expect.poll(async () => (await usage(p.adminUrl, 'capped')).length, { timeout: 10_000 }).toBe(2);
    const records = await usage(p.adminUrl, 'capped');
    expect(records.map((r) => [r['status'], r['estimated']])).toEqual([
      ['completed', false],
      ['completed', false],
    ]);
    const day = await spendOf(p.adminUrl, 'capped');
    expect(day.spentNanos).toBe(records.reduce((n, r) => n + (r['costNanos'] as number), 0));
    expect(day.reservedUsd).toBe('0.00');
  });

  it('with failMode: open on the SQLite ledger a worker still refuses responses it could not reserve (nothing runs unmetered)', { timeout: 90_000 }, async () => {
    const sim = await startSimulator({});
    cleanups.push(() => sim.close());
    const p = await primary(sim, ', failMode: open');
    const c1 = client(p.port, KEY_CAPPED);
    await c1.next('session.created', 15_000);
    const creates = () => sim.connections.flatMap((x) => x.received).filter((e) => e.type === 'response.create').length;
    const before = creates();

    process.kill(p.pid, 'SIGSTOP');
    let stopped = true;
    cleanups.push(() => {
      if (stopped) process.kill(p.pid, 'SIGCONT');
    });
    askTurn(c1, 'evt_adv_open');
    const ev = await c1.waitFor(
      (e) => (e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_adv_open') || e.type === 'response.done',
      20_000,
      'refusal or response.done',
    );
    process.kill(p.pid, 'SIGCONT');
    stopped = false;
    // Actual: the response ran upstream without any reservation (failMode is documented for Redis only;
    // with workers it silently turns the SQLite ledger's unanswered IPC into fail-open).
    expect(ev.type).toBe('error');
    expect(errorCode(ev)).toBe('budget_unavailable');
    expect(creates()).toBe(before);
  });
});
