import { describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, startTestProxy, type TestProxy } from '../support/harness.js';
import type { TestClient } from '../support/client.js';
import { redisSuite } from './redis-suite.js';
import { ADMIN_KEY, errorCode, spend, textTurn, usageRecords } from './support.js';
import { noonClock } from '../support/clock.js';

/** The proxies bill on this clock: "today" cannot roll over at midnight during a test. */
const clock = noonClock();

const suite = redisSuite();
const proxies = suite.proxies;

async function instance(prefix: string, limits: Record<string, unknown>, failMode: 'closed' | 'open' = 'closed', metering: Record<string, unknown> = {}): Promise<TestProxy> {
  const tp = await startTestProxy({
    start: { clock },
    tenants: { acme: { limits } },
    config: {
      admin: { key: ADMIN_KEY },
      metering: { ledger: { kind: 'redis', url: suite.redis().url, keyPrefix: prefix, failMode, commandTimeoutMs: 3000 }, ...metering },
    },
  });
  proxies.push(tp);
  return tp;
}

async function sessions(tp: TestProxy, n: number): Promise<TestClient[]> {
  const cs = await Promise.all(Array.from({ length: n }, () => tp.client()));
  try {
    await Promise.all(cs.map((c) => c.next('session.created', 10_000)));
  } catch (err) {
    console.log(tp.logText().split('\n').filter((l) => !l.includes('"level":20')).slice(-40).join('\n'));
    throw err;
  }
  return cs;
}

async function readyz(tp: TestProxy): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${tp.httpUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('metering: two proxy instances sharing one real redis-server', () => {
  it('concurrent sessions of one tenant on both instances: total spend ≤ cap + one response', async () => {
    const prefix = suite.keyPrefix('shared');
    const cap = '0.03';
    // Small output limits keep worst-case reservations small, so several responses run at once.
    const limits = { dailyUsd: cap, maxResponseOutputTokens: 16 };
    const a = await instance(prefix, limits, 'closed', { inputAllowanceTokens: 50 });
    const b = await instance(prefix, limits, 'closed', { inputAllowanceTokens: 50 });
    const clients = [...(await sessions(a, 4)), ...(await sessions(b, 4))];
    const final: string[] = [];
    let contended = 0;
    await Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < 400; i++) {
          const r = await textTurn(c);
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
    expect(final).toEqual(Array(8).fill('budget_exceeded'));

    const records = await usageRecords(a.adminUrl, '?tenant=acme');
    const total = records.reduce((s, r) => s + (r['costNanos'] as number), 0);
    const largest = Math.max(...records.map((r) => r['costNanos'] as number));
    const capNanos = Number(cap) * 1e9;
    const sa = await spend(a.adminUrl);
    const sb = await spend(b.adminUrl);
    expect(sa.day.spentNanos).toBe(total);
    expect(sb.day.spentNanos).toBe(total);
    expect(total).toBeGreaterThanOrEqual(capNanos);
    expect(total).toBeLessThanOrEqual(capNanos + largest);
    // Both instances served responses.
    const sessionsSeen = new Set(records.map((r) => r['session']));
    expect(sessionsSeen.size).toBeGreaterThan(4);
    expect(records.length).toBeGreaterThan(20);
    console.log(`redis shared: ${records.length} responses from ${sessionsSeen.size} sessions, ${contended} contended refusals, spend ${total} n$ (cap ${capNanos}, largest ${largest})`);
    expect(sa.day.reservedUsd).toBe('0.00');

    // Over budget, a VAD-started response is cancelled here too (the reservation is an async Redis call).
    const c = clients[0]!;
    const doneBefore = c.ofType('response.done').length;
    for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
    const done = await c.nth('response.done', doneBefore + 1, 10_000);
    const id = (done['response'] as { id: string }).id;
    expect((done['response'] as { status: string }).status).toBe('cancelled');
    expect(c.ofType('response.output_audio.delta').filter((e) => e['response_id'] === id)).toHaveLength(0);
  });

  it('Redis stopped mid-run, failMode closed: new responses are refused with budget_unavailable, sessions stay up, service resumes with Redis', async () => {
    const prefix = suite.keyPrefix('closed');
    const a = await instance(prefix, { dailyUsd: '5' });
    const [c] = await sessions(a, 1);
    expect((await textTurn(c!)).done).not.toBeNull();
    await suite.redis().stop(true);
    try {
      const r1 = await textTurn(c!);
      expect(errorCode(r1.error)).toBe('budget_unavailable');
      const r2 = await textTurn(c!);
      expect(errorCode(r2.error)).toBe('budget_unavailable');
      expect(c!.ws.readyState).toBe(c!.ws.OPEN);
      const ready = await readyz(a);
      expect(ready.status).toBe(503);
      expect(String(ready.body['reason'])).toMatch(/metering: redis ledger unavailable/);
      // The upstream never saw the refused requests.
      expect(a.sim.connections[0]!.received.filter((e) => e.type === 'response.create')).toHaveLength(1);
    } finally {
      await suite.redis().restart();
    }
    const deadline = Date.now() + 8000;
    let ok = false;
    while (!ok && Date.now() < deadline) {
      ok = (await readyz(a)).status === 200;
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ok).toBe(true);
    expect((await textTurn(c!)).done).not.toBeNull();
  });

  it('Redis stopped mid-run, failMode open: responses run unreserved and their spend is written once Redis is back', async () => {
    const prefix = suite.keyPrefix('open');
    const a = await instance(prefix, { dailyUsd: '5' }, 'open');
    const [c] = await sessions(a, 1);
    await suite.redis().stop(true);
    let during = 0;
    try {
      for (let i = 0; i < 3; i++) {
        const r = await textTurn(c!);
        expect(r.done).not.toBeNull();
        during++;
      }
      expect((await readyz(a)).status).toBe(200);
    } finally {
      await suite.redis().restart(); // empty dataset: only the queued settlements land
    }
    const deadline = Date.now() + 8000;
    let records: Record<string, unknown>[] = [];
    while (records.length < during && Date.now() < deadline) {
      records = await usageRecords(a.adminUrl, '?tenant=acme').catch(() => []);
      if (records.length < during) await new Promise((r) => setTimeout(r, 100));
    }
    expect(records).toHaveLength(during);
    const s = await spend(a.adminUrl);
    expect(s.day.spentNanos).toBe(records.reduce((t, r) => t + (r['costNanos'] as number), 0));
  });
});
