import { describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, startTestProxy, type TestProxy } from '../support/harness.js';
import type { TestClient } from '../support/client.js';
import { noonClock } from '../support/clock.js';
import { redisSuite } from './redis-suite.js';
import { ADMIN_KEY, errorCode, noticeCode, spend, textTurn, usageRecords } from './support.js';

/*
 * Caps stay exact when sessions of one tenant run in different relay workers (server.workers: 2):
 * with SQLite every worker's reservation goes through the primary's one ledger; with Redis every
 * worker (of every instance) reserves with one Lua script on the shared server.
 */

const clock = noonClock();
const CAP = '0.03';
const CAP_NANOS = Number(CAP) * 1e9;
// Small output limits keep worst-case reservations small, so several responses run at once.
const LIMITS = { dailyUsd: CAP, maxResponseOutputTokens: 16 };

const suite = redisSuite();
const proxies = suite.proxies;

async function instance(ledger: Record<string, unknown>): Promise<TestProxy> {
  const tp = await startTestProxy({
    start: { clock },
    tenants: { acme: { limits: LIMITS } },
    config: {
      server: { workers: 2 },
      admin: { key: ADMIN_KEY },
      metering: { ledger, inputAllowanceTokens: 50 },
    },
  });
  proxies.push(tp);
  return tp;
}

async function workerStarts(tp: TestProxy): Promise<number[]> {
  const text = await (await fetch(`${tp.adminUrl}/metrics`)).text();
  return [0, 1].map((w) => Number(/\S+ (\d+)/.exec(text.split('\n').find((l) => l.startsWith(`rtproxy_worker_sessions_started_total{worker="${w}"}`)) ?? 'x 0')![1]));
}

/** Sessions on every instance until each instance has sessions on both of its workers. */
async function sessionsOnEveryWorker(instances: readonly TestProxy[], atLeast: number): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (const tp of instances) {
    for (let i = 0; i < 40; i++) {
      const c = await tp.client();
      await c.next('session.created', 15_000);
      clients.push(c);
      const [a, b] = await workerStarts(tp);
      if (a! > 0 && b! > 0 && i + 1 >= atLeast) break;
    }
  }
  return clients;
}

/** Every client runs turns until refused for good; returns the final codes and the contended retries. */
async function spendItAll(clients: readonly TestClient[]): Promise<{ final: string[]; contended: number }> {
  const final: string[] = [];
  let contended = 0;
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 400; i++) {
        const r = await textTurn(c, 'say: ok', 15_000);
        if (!r.error) continue;
        const d = (r.error['error'] as { details?: { spent: string; limit: string } }).details;
        // Refused only because other responses hold reservations: try again.
        if (errorCode(r.error) === 'budget_exceeded' && d && Number(d.spent) < Number(d.limit)) {
          contended++;
          await new Promise((res) => setTimeout(res, 2));
          continue;
        }
        final.push(errorCode(r.error) ?? '');
        return;
      }
    }),
  );
  return { final, contended };
}

async function expectCapHeld(adminUrls: readonly string[], clients: number): Promise<void> {
  const records = await usageRecords(adminUrls[0]!, '?tenant=acme');
  const total = records.reduce((s, r) => s + (r['costNanos'] as number), 0);
  const largest = Math.max(...records.map((r) => r['costNanos'] as number));
  // The single-process guarantee (admission "remaining"): spend reaches the cap and passes it by at most one response.
  expect(total).toBeGreaterThanOrEqual(CAP_NANOS);
  expect(total).toBeLessThanOrEqual(CAP_NANOS + largest);
  for (const url of adminUrls) {
    const s = await spend(url);
    expect(s.day.spentNanos).toBe(total);
    expect(s.day.reservedUsd).toBe('0.00');
  }
  expect(new Set(records.map((r) => r['session'])).size).toBe(clients);
}

describe('caps across relay workers', () => {
  it('SQLite: one tenant, sessions on both workers, concurrent responses: spend ≤ cap + one response, nothing left reserved', { timeout: 120_000 }, async () => {
    const tp = await instance({ kind: 'sqlite' });
    const clients = await sessionsOnEveryWorker([tp], 8);
    const { final } = await spendItAll(clients);
    expect(final).toEqual(Array(clients.length).fill('budget_exceeded'));
    await expectCapHeld([tp.adminUrl], clients.length);
    // Both workers billed responses.
    const bySession = new Map<string, number>();
    for (const l of tp.logs) if (l.msg === 'session start') bySession.set(String(l['session']), l['worker'] as number);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(new Set(records.map((r) => bySession.get(String(r['session']))))).toEqual(new Set([0, 1]));

    // Over budget, a VAD-started response is cancelled before any of its audio passes, in every worker
    // (the reservation is an IPC call to the primary: the direction waits for its answer).
    await new Promise((r) => setTimeout(r, 1100)); // past the one-second "cap spent" hint: the IPC path itself
    // Every client (they span both workers).
    await Promise.all(
      clients.map(async (c) => {
        const doneBefore = c.ofType('response.done').length;
        // The cancel of a VAD response refuses nothing the client sent: told as a notice.
        const toldBefore = c.ofType('rtproxy.notice').filter((e) => noticeCode(e) === 'budget_exceeded').length;
        for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
        const done = await c.nth('response.done', doneBefore + 1, 15_000);
        const id = (done['response'] as { id: string }).id;
        // Cancelled upstream, unless the 16-token response ended on its own before the cancel arrived
        // (the upstream starts VAD responses by itself); either way none of it reached the client.
        expect(['cancelled', 'incomplete']).toContain((done['response'] as { status: string }).status);
        expect(c.ofType('response.output_audio.delta').filter((e) => e['response_id'] === id)).toHaveLength(0);
        expect(c.ofType('response.output_audio_transcript.delta').filter((e) => e['response_id'] === id)).toHaveLength(0);
        expect(c.ofType('rtproxy.notice').filter((e) => noticeCode(e) === 'budget_exceeded').length).toBeGreaterThan(toldBefore);
      }),
    );
  });

  it('Redis: two instances (separate ports, two worker processes each) share one redis-server: spend ≤ cap + one response', { timeout: 120_000 }, async () => {
    const ledger = { kind: 'redis', url: suite.redis().url, keyPrefix: suite.keyPrefix('workers'), commandTimeoutMs: 3000 };
    const a = await instance(ledger);
    const b = await instance(ledger);
    expect(a.port).not.toBe(b.port);
    const clients = await sessionsOnEveryWorker([a, b], 4);
    const { final } = await spendItAll(clients);
    expect(final).toEqual(Array(clients.length).fill('budget_exceeded'));
    await expectCapHeld([a.adminUrl, b.adminUrl], clients.length);
    // Four relay processes took part: both workers of both instances.
    for (const tp of [a, b]) expect(new Set(tp.logs.filter((l) => l.msg === 'session start').map((l) => l['worker']))).toEqual(new Set([0, 1]));
  });
});
