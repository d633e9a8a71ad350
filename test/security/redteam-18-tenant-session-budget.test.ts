/**
 * Red team (18, redsec): one tenant's sessions and the memory budget every tenant shares.
 *
 * What sessions hold (client frames waiting for the upstream to open or for an asynchronous
 * verdict, both send buffers) counts in `server.memoryBudgetBytes`, and past it every new session is
 * refused 503 `overloaded`. Request bodies have a per-tenant share (a quarter, since 2026-12-06);
 * sessions have none: each is bounded only by `upstreamMaxBufferedBytes` (32 MiB by default, an
 * eighth of the default budget). The adversary holds one tenant's key and opens a few sessions
 * while the upstream is slow to accept them (here it never answers the upgrade; in production
 * OpenAI's connect time, or a spoken turn held for its transcript), and sends audio appends below
 * the 64 KiB reservation size on each: within every per-session bound, together past the budget.
 * Every other tenant is then refused `overloaded` for as long as the adversary keeps that up. The
 * guarantee broken: an authenticated tenant is hostile to the others (README, Security: memory
 * bounded by design; fairness).
 *
 * Fixed 2026-12-07: each tenant's sessions hold at most `server.memoryBudgetTenantShare` of the
 * budget (half with two tenants, here 2 MiB): the recount ends a tenant's largest sessions until the
 * rest fit (4008 `memory_budget_exceeded`), a large frame past the share is refused, and a tenant at
 * its share gets 429 for new sessions. Other tenants open and send throughout.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, TestClient, type TestProxy } from '../support/harness.js';
import { until } from '../calls/support.js';
import { QUEUED_FRAME_OVERHEAD_BYTES } from '../../src/pipeline/chain.js';

const MiB = 1024 * 1024;
/** An append just under the size at which a frame reserves budget on arrival (64 KiB). */
const APPEND = JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(60 * 1024) });
/** An append of exactly `bytes` bytes. */
const appendOf = (bytes: number) => {
  const frame = JSON.stringify({ type: 'input_audio_buffer.append', audio: '' });
  return JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(bytes - frame.length) });
};

let hung: Server;
const held: Socket[] = [];
let tp: TestProxy;
const clients: TestClient[] = [];
beforeAll(async () => {
  // An upstream that accepts connections and never answers the upgrade.
  hung = createServer((s) => {
    held.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
  tp = await startTestProxy({
    tenants: { hog: {}, victim: {} },
    config: {
      logging: { level: 'warn' },
      server: { memoryBudgetBytes: 4 * MiB, maxFrameBytes: 2 * MiB, backpressure: { upstreamMaxBufferedBytes: 2 * MiB } },
      upstream: { provider: 'openai', url: `ws://127.0.0.1:${(hung.address() as AddressInfo).port}/v1/realtime`, apiKey: 'sk-test-upstream', connectTimeoutMs: 60_000 },
    },
  });
});
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await tp?.stop();
  for (const s of held) s.destroy();
  await new Promise<void>((resolve) => hung.close(() => resolve()));
});

interface ErrorBody {
  readonly code: string;
  readonly details?: { readonly scope?: string; readonly limit?: number };
}
const errorsOf = (c: TestClient) => c.ofType('error').map((e) => e['error'] as ErrorBody);

/** Ends every client of an earlier test, and waits for a recount to find no session holding anything. */
async function closeAll(): Promise<void> {
  for (const c of clients.splice(0)) c.ws.terminate();
  await until(() => tp.proxy.server.sessionCount === 0 && tp.proxy.server.memoryBudget.tenants === 0, 'every session gone and recounted', 15_000);
}

function open(tenant: string): TestClient {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${tp.key(tenant)}` } });
  clients.push(c);
  return c;
}

describe('red team 18: one tenant and the sessions memory budget', () => {
  it('a tenant whose sessions queue frames for a slow upstream cannot take the whole budget: another tenant still opens', async () => {
    const budget = tp.proxy.server.memoryBudget;
    expect(budget.tenantLimit).toBe(2 * MiB);
    // Three sessions, each within its own 2 MiB bound (30 × 60 KiB), 5.3 MiB together against 4 MiB.
    const hogs: TestClient[] = [];
    const closes: { code: number; reason: string }[] = [];
    for (let i = 0; i < 3; i++) {
      const hog = open('hog');
      hogs.push(hog);
      void hog.closed.then((c) => closes.push(c));
      await hog.opened;
      for (let n = 0; n < 30; n++) hog.send(APPEND);
    }
    // Any two of them hold more than the hog's 2 MiB share: once every frame has arrived, the recount
    // has ended the largest sessions until one is left.
    await until(() => closes.length >= 2, "two of the hog's sessions ended for its share", 15_000);
    expect(closes.slice(0, 2)).toEqual([
      { code: 4008, reason: 'memory_budget_exceeded' },
      { code: 4008, reason: 'memory_budget_exceeded' },
    ]);
    const ended = hogs.filter((h) => h.ws.readyState === h.ws.CLOSED);
    expect(ended).toHaveLength(2);
    for (const h of ended) expect(errorsOf(h).at(-1)).toMatchObject({ code: 'memory_budget_exceeded', details: { scope: 'tenant', limit: 2 * MiB } });
    expect(budget.sessionBytesOf('hog')).toBeLessThanOrEqual(budget.tenantLimit);
    expect(budget.exhausted).toBe(false);
    const victim = open('victim');
    const outcome = await Promise.race([victim.refused, victim.opened.then(() => 101)]);
    expect(outcome).toBe(101);
  });

  it("a large frame that would take a tenant past its share is refused (the session goes on); another tenant's fits", async () => {
    await closeAll();
    const budget = tp.proxy.server.memoryBudget;
    const hog = open('hog');
    await hog.opened;
    hog.send(appendOf(1.5 * MiB));
    await until(() => budget.sessionBytesOf('hog') >= 1.5 * MiB, "the hog's first frame counted", 15_000);
    hog.send(appendOf(1.5 * MiB));
    await hog.next('error', 15_000);
    expect(errorsOf(hog)).toEqual([expect.objectContaining({ code: 'memory_budget_exceeded', details: { scope: 'tenant', limit: 2 * MiB } })]);
    expect(hog.ws.readyState).toBe(hog.ws.OPEN);
    // 2.5 MiB of the global budget is left: the victim's frame of the same size is counted, not refused.
    const victim = open('victim');
    await victim.opened;
    victim.send(appendOf(1.5 * MiB));
    await until(() => budget.sessionBytesOf('victim') >= 1.5 * MiB, "the victim's frame counted", 15_000);
    expect(errorsOf(victim)).toEqual([]);
    expect(victim.ws.readyState).toBe(victim.ws.OPEN);
  });

  it('a tenant whose sessions hold exactly its share gets 429 for a new session; another tenant still opens', async () => {
    await closeAll();
    const budget = tp.proxy.server.memoryBudget;
    const hog = open('hog');
    await hog.opened;
    // Held while the upstream never opens: the frame and its queueing overhead, exactly the share
    // (within the session's own 2 MiB bound too), so the recount finds the hog at it, not past it.
    hog.send(appendOf(2 * MiB - QUEUED_FRAME_OVERHEAD_BYTES));
    await until(() => budget.tenantExhausted('hog') && budget.sessionBytesOf('hog') === 2 * MiB, 'a recount finding the hog at its share', 15_000);
    expect(hog.ws.readyState).toBe(hog.ws.OPEN);
    const another = open('hog');
    expect(await another.refused).toBe(429);
    // A browser cannot read the status: its upgrade is accepted, told why, and closed 4008.
    const browser = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { protocols: ['realtime', `openai-insecure-api-key.${tp.key('hog')}`] });
    clients.push(browser);
    expect(await browser.closed).toEqual({ code: 4008, reason: 'memory_budget_exceeded' });
    expect(errorsOf(browser)).toEqual([expect.objectContaining({ code: 'memory_budget_exceeded', details: { scope: 'tenant', limit: 2 * MiB } })]);
    const victim = open('victim');
    const outcome = await Promise.race([victim.refused, victim.opened.then(() => 101)]);
    expect(outcome).toBe(101);
  });
});
