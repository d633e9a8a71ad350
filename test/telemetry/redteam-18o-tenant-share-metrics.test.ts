import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { QUEUED_FRAME_OVERHEAD_BYTES } from '../../src/pipeline/chain.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { connectRaw, rawUpgrade, upgradeAnswer } from '../support/raw-upgrade.js';

/*
 * An operator's view of server.memoryBudgetTenantShare. A tenant whose sessions hold their share
 * keeps sending large frames: each is refused `memory_budget_exceeded` (details.scope tenant) and
 * the session goes on. Until 2026-12-07 those refusals showed nowhere in Prometheus (the relay's own
 * frame refusals, before any filter, reported nothing: no rtproxy_errors_total, no
 * rtproxy_verdicts_total), so a tenant refused every large frame looked healthy on the dashboards;
 * only the upgrade refusals (rtproxy_upgrades_refused_total) and the recount's ends
 * (rtproxy_sessions_ended_total) counted. Now each is a `relay` reject verdict, counted per tenant.
 */

const MiB = 1024 * 1024;
const stops: (() => Promise<unknown> | void)[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** An upstream that accepts TCP and never answers the upgrade: client frames wait in the proxy, counted exactly. */
async function hungUpstream(): Promise<string> {
  const hung: Server = createServer(() => undefined).listen(0, '127.0.0.1');
  await new Promise((r) => hung.once('listening', r));
  stops.push(() => void hung.close());
  return `ws://127.0.0.1:${(hung.address() as { port: number }).port}/v1/realtime`;
}

const appendOf = (bytes: number) => JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(bytes - JSON.stringify({ type: 'input_audio_buffer.append', audio: '' }).length) });

async function metricsOf(tp: TestProxy): Promise<string> {
  return (await fetch(`${tp.adminUrl}/metrics`, { headers: { connection: 'close' } })).text();
}

describe('tenant share of the memory budget in Prometheus', () => {
  it('a frame refused for the tenant share counts in rtproxy_errors_total and rtproxy_verdicts_total for that tenant', { timeout: 30_000 }, async () => {
    const tp = await startTestProxy({
      tenants: { a: {}, b: {} },
      config: { upstream: { provider: 'openai', url: await hungUpstream(), apiKey: 'sk-x', connectTimeoutMs: 30_000 }, server: { memoryBudgetBytes: 4 * MiB, maxFrameBytes: 2 * MiB } },
    });
    stops.push(() => tp.stop());
    const budget = tp.proxy.server.memoryBudget;
    const a = await tp.client({ tenant: 'a' });
    a.send(appendOf(2 * MiB - QUEUED_FRAME_OVERHEAD_BYTES));
    await vi.waitFor(() => expect(budget.sessionBytesOf('a')).toBe(budget.tenantLimit), { timeout: 5000, interval: 20 });
    for (let i = 0; i < 3; i++) a.send(appendOf(64 * 1024));
    await a.nth('error', 3);
    expect(a.ofType('error').map((e) => (e['error'] as { details?: unknown }).details)).toEqual(Array(3).fill({ scope: 'tenant', limit: 2 * MiB }));

    const text = await metricsOf(tp);
    expect(text).toMatch(/rtproxy_errors_total\{(?=[^}]*rtproxy_tenant_id="a")(?=[^}]*error_type="memory_budget_exceeded")(?=[^}]*rtproxy_error_origin="proxy")[^}]*\} 3\b/);
    expect(text).toMatch(/rtproxy_verdicts_total\{(?=[^}]*rtproxy_tenant_id="a")(?=[^}]*rtproxy_verdict_filter="relay")(?=[^}]*rtproxy_verdict="reject")(?=[^}]*rtproxy_verdict_code="memory_budget_exceeded")[^}]*\} 3\b/);
    // Tenant b refused nothing.
    expect(text).not.toMatch(/rtproxy_errors_total\{[^}]*rtproxy_tenant_id="b"/);

    // Its new session is refused 429 at the upgrade: counted by reason (held already; kept with the rest).
    const raw = await connectRaw(tp.port, sockets);
    const answer = upgradeAnswer(raw);
    raw.write(rawUpgrade(tp.key('a')));
    expect(await answer).toEqual({ status: 429, code: 'memory_budget_exceeded' });
    expect(await metricsOf(tp)).toMatch(/rtproxy_upgrades_refused_total\{[^}]*rtproxy_refusal_reason="memory_budget_exceeded"[^}]*\} 1\b/);
  });

  it('a frame the relay refuses unparsed (not JSON) counts as the README says: rtproxy_verdicts_total{rtproxy_verdict_filter="relay", code invalid_json}', { timeout: 30_000 }, async () => {
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: await hungUpstream(), apiKey: 'sk-x', connectTimeoutMs: 30_000 } } });
    stops.push(() => tp.stop());
    const c = await tp.client();
    c.send('not json');
    c.send('[1]');
    await c.nth('error', 2);
    const text = await metricsOf(tp);
    expect(text).toMatch(/rtproxy_verdicts_total\{(?=[^}]*rtproxy_verdict_filter="relay")(?=[^}]*rtproxy_verdict_code="invalid_json")[^}]*\} 1\b/);
    expect(text).toMatch(/rtproxy_verdicts_total\{(?=[^}]*rtproxy_verdict_filter="relay")(?=[^}]*rtproxy_verdict_code="invalid_event")[^}]*\} 1\b/);
  });
});
