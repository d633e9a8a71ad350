/**
 * Red team (metering, twenty-second pass): a response the upstream started on its own (server VAD's
 * `create_response`, the idle timeout) is reserved at its `response.created`; with an asynchronous
 * ledger (Redis, a relay worker's primary) the server direction waits for that answer. When the
 * session ended meanwhile (here the upstream closes right behind the `response.created`: a dropped
 * connection, an expiry), the answer found the filter closed and released the reservation: the
 * response had started (OpenAI bills what it read), yet nothing was billed, and the close had not
 * billed it either (it was not held yet, and its turn no longer counted as due).
 *
 * Measured before the fix: Redis stalled (SIGSTOP) for the reserve, the upstream closing right behind
 * the server-started `response.created`: no usage record at all, $0 spent; a second server-started
 * response queued behind that one (the relay had read it running, metering had not) free too. Now
 * each is billed (`upstream_drop_estimate`), as every response that started and whose `response.done`
 * never came.
 */
import type WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { redisForFile } from './redis-server.js';
import { scriptedMeteredProxy, scriptedResponse, until, usageRecords, sessionThenClientEvents } from './support.js';

const file = redisForFile();
const { cleanups } = file;

describe('red team 22: the session ends while a server-started response waits for its reservation', () => {
  let sessions = 0;

  /**
   * Redis stalls (SIGSTOP); the upstream starts `started` responses of its own for a client item (the
   * first one's reservation waits for Redis, and the server direction with it), with `doneToo` ends
   * them, then the connection drops. Returns the usage records once Redis answers again and one per started response is written.
   */
  async function startedThenDropped(started: readonly string[], doneToo = false): Promise<Record<string, unknown>[]> {
    let upstream: WebSocket | null = null;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        upstream = ws;
        sessionThenClientEvents(ws, send, (ev) => {
          if (ev.type !== 'conversation.item.create') return;
          for (const [i, id] of started.entries()) send({ type: 'response.created', event_id: `event_r${i}`, response: scriptedResponse(id, 'in_progress') });
          // Its response.done too (no usage the proxy will read: it waits behind the reservation).
          if (doneToo) for (const [i, id] of started.entries()) send({ type: 'response.done', event_id: `event_d${i}`, response: scriptedResponse(id, 'cancelled') });
          ws.terminate();
        });
      },
      {
        tenants: { acme: { limits: { dailyUsd: 1 } } },
        metering: { ledger: { kind: 'redis', url: file.redis.url, keyPrefix: `rt22a${++sessions}:`, commandTimeoutMs: 1_000 } },
      },
    );
    const c = await tp.client();
    await c.next('session.created');
    expect(upstream).not.toBeNull();

    file.redis.pause();
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    const closed = await c.closed;
    expect(closed.code).not.toBe(1000);
    file.redis.resume();

    const records = async (): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, '?tenant=acme');
    await until(async () => (await records()).length >= started.length, 10_000, 'the started responses billed');
    return records();
  }

  it('bills the response at its reservation instead of releasing it unbilled', async () => {
    const records = await startedThenDropped(['resp_vad']);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ ref: 'resp_vad', source: 'response', estimated: true, settledBy: 'upstream_drop_estimate' });
    expect(records[0]!['costNanos']).toBeGreaterThan(0);
  });

  it('bills it at its reservation when its response.done too came before the close (the relay no longer lists it running)', async () => {
    const records = await startedThenDropped(['resp_vad'], true);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ ref: 'resp_vad', source: 'response', estimated: true, settledBy: 'upstream_drop_estimate' });
    expect(records[0]!['costNanos']).toBeGreaterThan(0);
  });

  it("bills a second server-started response too, whose response.created the relay read but metering had not (queued behind the first's reservation)", async () => {
    const records = await startedThenDropped(['resp_vad', 'resp_idle']);
    expect(records.map((r) => r['ref']).sort()).toEqual(['resp_idle', 'resp_vad']);
    for (const r of records) {
      expect(r).toMatchObject({ source: 'response', estimated: true, settledBy: 'upstream_drop_estimate' });
      expect(r['costNanos']).toBeGreaterThan(0);
    }
  });

  // Twenty-third pass: the second response's response.created AND response.done both waited behind the
  // first one's reservation. The relay no longer listed it running (its done was read), and no create
  // named it: the close walked the running responses only, and it was free.
  it("bills a second server-started response whose response.created and response.done both waited behind the first's reservation", async () => {
    const records = await startedThenDropped(['resp_vad', 'resp_idle'], true);
    expect(records.map((r) => r['ref']).sort()).toEqual(['resp_idle', 'resp_vad']);
    for (const r of records) {
      expect(r).toMatchObject({ source: 'response', estimated: true, settledBy: 'upstream_drop_estimate' });
      expect(r['costNanos']).toBeGreaterThan(0);
    }
  });
});
