/**
 * Red team (metering, twenty-second pass): a client's `response.create`, reserved and sent, whose
 * `response.created` the relay had read (its conversation view knew the response was running) but
 * metering had not, because the server direction waited behind an earlier frame's verdict (metering's
 * own reservation of a server-started response on an asynchronous ledger; a guardrail's asynchronous
 * verdict up to its `timeoutMs`, which may exceed the linger). When the session ended then (the upstream
 * closing, the linger's bound passing), the frames queued behind that verdict were dropped and metering
 * took the create for one the upstream never started: its reservation was released, nothing billed,
 * while OpenAI bills the response that ran.
 *
 * Measured before the fix: an out-of-band create reserved under a $1 cap, Redis stalled (SIGSTOP) for
 * a server-started response's reservation, then the create's `response.created` and the upstream's
 * close: no record for it, its reservation released. Now it is billed at its reservation
 * (`upstream_drop_estimate`, ref the response's id).
 */
import type WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { redisForFile } from './redis-server.js';
import { scriptedMeteredProxy, scriptedResponse, scriptedSession, spend, until, usageRecords } from './support.js';

const file = redisForFile();
const { cleanups } = file;

describe('red team 22: a create whose response.created the relay read but metering had not, at the close', () => {
  let sessions = 0;

  /**
   * An out-of-band create reserved and sent (with `expire`: once its reservation was released unanswered,
   * after `pendingResponseTimeoutMs`); then Redis stalls, the upstream starts a response
   * of its own (its reservation waits for Redis, and the server direction with it), then the create's
   * response, and the connection drops. Returns the usage records once Redis answers again.
   */
  async function startedBehindAStall(metering: Record<string, unknown>, expire: boolean): Promise<Record<string, unknown>[]> {
    let upstream: { ws: WebSocket; send: (event: Record<string, unknown>) => void } | null = null;
    const creates: Record<string, unknown>[] = [];
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        upstream = { ws, send };
        send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as Record<string, unknown>;
          if (ev['type'] === 'response.create') creates.push(ev);
        });
      },
      {
        tenants: { acme: { limits: { dailyUsd: 1 } } },
        metering: { ledger: { kind: 'redis', url: file.redis.url, keyPrefix: `rt22b${++sessions}:`, commandTimeoutMs: 1_000 }, ...metering },
      },
    );
    const c = await tp.client();
    await c.next('session.created');

    c.send({ type: 'response.create', event_id: 'evt_oob', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 100, input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(2_000) }] }] } });
    await until(() => creates.length === 1, 10_000, 'the create upstream');
    if (expire) await until(async () => (await spend(tp.adminUrl)).day.reservedUsd === '0.00', 10_000, 'the unanswered create released');

    file.redis.pause();
    const up = upstream!;
    up.send({ type: 'response.created', event_id: 'event_r1', response: scriptedResponse('resp_vad', 'in_progress') });
    up.send({ type: 'response.created', event_id: 'event_r2', response: scriptedResponse('resp_oob', 'in_progress', { conversation_id: null, max_output_tokens: 100 }) });
    up.ws.terminate();
    const closed = await c.closed;
    expect(closed.code).not.toBe(1000);
    file.redis.resume();

    const billed = async (): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, '?tenant=acme');
    await until(async () => (await billed()).length >= 2, 10_000, 'both started responses billed');
    return billed();
  }

  /** Both started: both billed, each at its reservation; the create's is its 2,000-byte input and 100 output tokens at least. */
  function expectBothBilled(records: Record<string, unknown>[]): void {
    expect(records.map((r) => r['ref']).sort()).toEqual(['resp_oob', 'resp_vad']);
    for (const r of records) expect(r).toMatchObject({ source: 'response', estimated: true, settledBy: 'upstream_drop_estimate' });
    const oob = records.find((r) => r['ref'] === 'resp_oob')!;
    expect(oob['costNanos']).toBeGreaterThanOrEqual(2_000 * 4_000 + 100 * 16_000);
  }

  it('is billed at its reservation (it started), not released as never started', async () => {
    expectBothBilled(await startedBehindAStall({}, false));
  });

  it('is billed too when its reservation was released unanswered (pendingResponseTimeoutMs) before the relay read it start', async () => {
    // The create waits longer than pendingResponseTimeoutMs for its response.created: released, remembered as expired.
    expectBothBilled(await startedBehindAStall({ pendingResponseTimeoutMs: 100 }, true));
  });
});
