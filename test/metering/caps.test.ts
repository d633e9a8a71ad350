import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { appendEvents, speechThenSilence, startTestProxy, TestClient, type TestProxy } from '../support/harness.js';
import { noonClock } from '../support/clock.js';
import { ADMIN_KEY, admin, errorCode, noticeCode, spend, textTurn, usageRecords } from './support.js';
import { tempDir } from '../support/temp-dir.js';

/** The proxies bill on this clock: "today" cannot roll over at midnight during a test. */
const clock = noonClock();

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function proxy(options: Parameters<typeof startTestProxy>[0] = {}): Promise<TestProxy> {
  const dir = tempDir('rp-metering-');
  const tp = await startTestProxy({
    ...options,
    start: { clock, ...options.start },
    config: {
      admin: { key: ADMIN_KEY },
      ...options.config,
      metering: { ledger: { path: join(dir, 'ledger.sqlite') }, ...options.config?.metering },
    },
  });
  proxies.push(tp);
  return tp;
}

/** The HTTP status of a refused upgrade. */
async function refusedStatus(tp: TestProxy, query = 'model=gpt-realtime'): Promise<number> {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?${query}`, { headers: { authorization: `Bearer ${tp.key()}` } });
  const status = await Promise.race([c.refused, c.opened.then(() => 101)]);
  c.ws.terminate();
  return status;
}

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);

describe('metering: tenant cap through the proxy (simulator upstream, real sockets)', () => {
  it('completes turns until the cap, then refuses response.create before it reaches the upstream', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.001' } } } });
    const c = await tp.client();
    await c.next('session.created');
    const completed: string[] = [];
    let refusal = null;
    for (let i = 0; i < 30 && !refusal; i++) {
      const r = await textTurn(c);
      if (r.done) completed.push((r.done['response'] as { id: string }).id);
      else refusal = r.error;
    }
    expect(completed.length).toBeGreaterThanOrEqual(2);
    expect(errorCode(refusal)).toBe('budget_exceeded');
    const details = (refusal!['error'] as { details: Record<string, unknown> }).details;
    expect(details).toMatchObject({ cap: 'daily_usd', limit: '0.001', unit: 'USD' });
    expect(new Date(details['resetsAt'] as string).getUTCHours()).toBe(0);

    // The upstream saw exactly the admitted response.create events.
    const conn = tp.sim.connections[0]!;
    expect(conn.received.filter((e) => e.type === 'response.create')).toHaveLength(completed.length);

    // Spend is over the cap by less than the last response; the records are exportable.
    const s = await spend(tp.adminUrl);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => r['ref'])).toEqual(completed);
    const total = records.reduce((a, r) => a + (r['costNanos'] as number), 0);
    expect(s.day.spentNanos).toBe(total);
    const last = records[records.length - 1]!['costNanos'] as number;
    expect(s.day.spentNanos).toBeGreaterThanOrEqual(nanos('0.001'));
    expect(s.day.spentNanos - last).toBeLessThan(nanos('0.001'));

    // The session goes on (refuse policy) and its end log carries the running totals.
    c.close();
    await c.closed;
    const deadline = Date.now() + 3000;
    let end = tp.logs.find((l) => l['event'] === 'session_end');
    while (!end && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      end = tp.logs.find((l) => l['event'] === 'session_end');
    }
    expect(end).toMatchObject({ meteringResponses: completed.length, meteringRefused: 1, meteringCostNanos: total });

    // A new session of a tenant over budget is refused before the upgrade.
    expect(await refusedStatus(tp)).toBe(429);
  });

  it('cancels a VAD-started response over budget upstream and forwards none of its audio', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.0005' } } } });
    const c = await tp.client();
    await c.next('session.created');
    for (let i = 0; i < 30; i++) if ((await textTurn(c)).error) break;
    const doneBefore = c.ofType('response.done').length;
    // Server VAD (the session default, create_response: true) starts the next response itself.
    for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
    // Nothing the client sent is refused: a notice says why the response was cancelled.
    const notice = await c.waitFor((e) => noticeCode(e) === 'budget_exceeded' && c.ofType('input_audio_buffer.committed').length > 0, 10_000, 'budget notice');
    expect(notice).toBeTruthy();
    const done = await c.nth('response.done', doneBefore + 1, 10_000);
    const response = done['response'] as { id: string; status: string };
    expect(response.status).toBe('cancelled');
    expect(c.ofType('response.created').some((e) => (e['response'] as { id: string }).id === response.id)).toBe(true);
    expect(c.ofType('response.output_audio.delta').filter((e) => e['response_id'] === response.id)).toHaveLength(0);
    expect(c.ofType('response.output_audio_transcript.delta').filter((e) => e['response_id'] === response.id)).toHaveLength(0);
    const conn = tp.sim.connections[0]!;
    const cancels = conn.received.filter((e) => e.type === 'response.cancel');
    expect(cancels.map((e) => (e.event as { response_id?: string }).response_id)).toContain(response.id);
    // Its usage (whatever the upstream produced before the cancel) is billed.
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => r['ref'])).toContain(response.id);
  });

  it('clamps max_output_tokens ("inf" included) before the upstream and tells the client', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { maxResponseOutputTokens: 5 } } } });
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[0]!;
    // The session default ("inf") is clamped by an injected session.update.
    await c.waitFor(() => conn.received.some((e) => e.type === 'session.update'), 5000, 'injected session.update');
    const injected = conn.received.find((e) => e.type === 'session.update')!.event as { session: { max_output_tokens: number } };
    expect(injected.session.max_output_tokens).toBe(5);
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: one two three four five six seven eight nine ten' }] } });
    c.send({ type: 'response.create', event_id: 'evt_inf', response: { output_modalities: ['text'], max_output_tokens: 'inf' } });
    const done = await c.next('response.done');
    // A notice, not an error: the create was forwarded, lowered.
    const notice = c.ofType('rtproxy.notice').find((e) => noticeCode(e) === 'max_output_tokens_clamped');
    expect(c.ofType('error')).toEqual([]);
    expect(notice?.['notice']).toMatchObject({ event_id: 'evt_inf', details: { requested: 'inf', limit: 5 } });
    const upstreamCreate = conn.received.find((e) => e.type === 'response.create')!.event as { response: { max_output_tokens: unknown } };
    expect(upstreamCreate.response.max_output_tokens).toBe(5);
    const r = done['response'] as { status: string; usage: { output_tokens: number } };
    expect(r.usage.output_tokens).toBeLessThanOrEqual(5);
    expect(r.status).toBe('incomplete');
    c.send({ type: 'session.update', event_id: 'evt_su', session: { type: 'realtime', max_output_tokens: 4096 } });
    await c.waitFor((e) => noticeCode(e) === 'max_output_tokens_clamped' && (e['notice'] as { event_id: string }).event_id === 'evt_su');
    await c.waitFor(() => conn.received.filter((e) => e.type === 'session.update').length === 2);
    const second = conn.received.filter((e) => e.type === 'session.update')[1]!.event as { session: { max_output_tokens: number } };
    expect(second.session.max_output_tokens).toBe(5);
  });

  it('the clamp is the session\'s first event upstream: a turn spoken before session.created is answered within it (found 2026-12-05)', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { maxResponseOutputTokens: 5 } } } });
    const c = await tp.client();
    // At once: speech and silence, so the server (VAD) starts a response by itself.
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) c.send(e);
    const done = await c.next('response.done', 10_000);
    const conn = tp.sim.connections[0]!;
    expect(conn.received[0]!.type).toBe('session.update');
    expect((conn.received[0]!.event as { session: { max_output_tokens: number } }).session.max_output_tokens).toBe(5);
    expect((done['response'] as { usage: { output_tokens: number } }).usage.output_tokens).toBeLessThanOrEqual(5);
    // Sent once: session.created (still "inf" then) does not send it again.
    expect(conn.received.filter((e) => e.type === 'session.update')).toHaveLength(1);
  });

  it('end_session policy: the session closes with 4002 once the cap is reached', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.0005' } } }, config: { metering: { onExhausted: 'end_session' } } });
    const c = await tp.client();
    await c.next('session.created');
    const closedAt = c.closed.then(() => null);
    for (let i = 0; i < 30; i++) {
      const r = await Promise.race([textTurn(c), closedAt]);
      if (!r || r.error) break;
    }
    const closed = await c.closed;
    expect(closed.code).toBe(4002);
    expect(c.ofType('error').some((e) => errorCode(e) === 'budget_exceeded')).toBe(true);
  });

  it('admin routes: read spend, raise and restore a cap at runtime, reset a period, export JSON lines', async () => {
    const dir = tempDir('rp-export-');
    const exportFile = join(dir, 'usage.jsonl');
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.0004' } }, beta: {} }, config: { metering: { export: { file: exportFile } } } });
    const c = await tp.client();
    await c.next('session.created');
    let refused = false;
    for (let i = 0; i < 30 && !refused; i++) refused = (await textTurn(c)).error !== null;
    expect(refused).toBe(true);
    let s = await spend(tp.adminUrl);
    expect(s.day.capUsd).toBe('0.0004');

    // Raise today's cap: the same session may continue at once.
    const raised = await admin(tp.adminUrl, 'PUT', '/admin/tenants/acme/caps', { period: 'day', usd: '1' });
    expect(raised.status).toBe(200);
    expect((raised.json['day'] as { capUsd: string }).capUsd).toBe('1.00');
    expect((await textTurn(c)).done).not.toBeNull();

    // Restore the configured cap, then reset the day's spend: allowed again.
    await admin(tp.adminUrl, 'PUT', '/admin/tenants/acme/caps', { period: 'day', usd: null });
    expect((await textTurn(c)).error).not.toBeNull();
    const reset = await admin(tp.adminUrl, 'POST', '/admin/tenants/acme/reset', { period: 'day' });
    expect((reset.json['day'] as { spentUsd: string }).spentUsd).toBe('0.00');
    expect((await textTurn(c)).done).not.toBeNull();
    s = await spend(tp.adminUrl);
    expect(Number(s.month.spentUsd)).toBeGreaterThan(Number(s.day.spentUsd));

    const records = await usageRecords(tp.adminUrl, `?tenant=acme&since=${encodeURIComponent(new Date(clock.wall() - 60_000).toISOString())}`);
    expect(records.length).toBeGreaterThan(2);
    expect(records[0]).toMatchObject({ tenant: 'acme', source: 'response', model: 'gpt-realtime' });
    expect(typeof records[0]!['costUsd']).toBe('string');
    expect(await usageRecords(tp.adminUrl, '?tenant=beta')).toEqual([]);
    expect(await usageRecords(tp.adminUrl, `?since=${clock.wall() + 60_000}`)).toEqual([]);

    // The export file holds the same records (appended asynchronously: wait until all are there).
    const exported = () => readFileSync(exportFile, 'utf8').trim().split('\n').filter((l) => l.length > 0);
    await vi.waitFor(() => expect(exported().length).toBeGreaterThanOrEqual(records.length), { timeout: 5000, interval: 10 });
    const lines = exported().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l['ref'])).toEqual(records.map((r) => r['ref']));

    // Auth and validation.
    expect((await fetch(`${tp.adminUrl}/admin/tenants/acme/spend`)).status).toBe(401);
    // Regression (issue 16): a planted bug accepting any bearer token survived; wrong tokens are refused.
    // Wrong token, its prefix and suffix, empty token, wrong or no scheme, a tenant's key: 401 invalid_admin_key on every route.
    const wrongHeaders = [`Bearer ${ADMIN_KEY}x`, `Bearer x${ADMIN_KEY}`, `Bearer ${ADMIN_KEY.slice(0, -1)}`, `Bearer ${ADMIN_KEY.slice(1)}`, 'Bearer wrong', 'Bearer ', 'Bearer', '', `Basic ${ADMIN_KEY}`, ADMIN_KEY, `Bearer ${tp.key()}`];
    for (const authorization of wrongHeaders) {
      for (const [method, path] of [['GET', '/admin/tenants/acme/spend'], ['PUT', '/admin/tenants/acme/caps'], ['POST', '/admin/tenants/acme/reset'], ['GET', '/admin/usage']] as const) {
        const res = await fetch(`${tp.adminUrl}${path}`, { method, headers: { authorization }, ...(method === 'GET' ? {} : { body: '{"period":"day","usd":1000}' }) });
        expect([res.status, await res.json()], `${method} ${path} ${JSON.stringify(authorization)}`).toEqual([401, { error: { code: 'invalid_admin_key' } }]);
      }
    }
    // Nothing changed through the refused requests.
    expect((await spend(tp.adminUrl)).day.capUsd).toBe('0.0004');
    expect((await fetch(`${tp.adminUrl}/admin/tenants/acme/spend`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(200);
    expect((await admin(tp.adminUrl, 'GET', '/admin/tenants/nobody/spend')).status).toBe(404);
    expect((await admin(tp.adminUrl, 'PUT', '/admin/tenants/acme/caps', { period: 'week', usd: 1 })).status).toBe(400);
    expect((await admin(tp.adminUrl, 'GET', '/admin/usage?since=yesterday')).status).toBe(400);
  });

  it('refuses sessions beyond the concurrent-session cap and for unpriced models', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { maxConcurrentSessions: 2 } } } });
    const a = await tp.client();
    const b = await tp.client();
    await Promise.all([a.next('session.created'), b.next('session.created')]);
    expect(await refusedStatus(tp)).toBe(429);
    a.close();
    await a.closed;
    // The slot is released when the proxy ends the session (its session_end record), not at the client's close.
    await vi.waitFor(() => expect(tp.logs.some((l) => l['event'] === 'session_end')).toBe(true), { timeout: 5000, interval: 10 });
    const c = await tp.client();
    await c.next('session.created');
    expect(await refusedStatus(tp, 'model=gpt-9-realtime')).toBe(400);
  });
});
