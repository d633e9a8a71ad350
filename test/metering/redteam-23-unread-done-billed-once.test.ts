/**
 * Red team 23 (metering): the close bills a response whose `response.created` and `response.done` both
 * waited behind an asynchronous verdict (test/metering/redteam-22-close-during-reserve.test.ts, "both
 * waited") by walking the responses the conversation view keeps. The view keeps responses otherwise
 * than metering's memory of the ones it billed (#settledIds) drops them: it never drops a running
 * response, so 300 running at once are all kept once done, while metering remembered the last 256 it
 * billed (8,192 since this pass: src/metering/filter-unread-at-close.test.ts runs past that). A walk
 * that took "kept by the view, not remembered by metering" for "never billed" billed 299 of them a
 * second time at the close (its own marks pushed the rest out). Only the responses metering read no
 * frame of are walked. Since the bounds pass (2026-12-07) the view runs at most MAX_RUNNING_RESPONSES
 * (64) at once, and an upstream past that ends the session (test/metering/redteam-23-endless-responses.test.ts):
 * the upstream here runs as many as it may, all at once.
 */
import type WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { MAX_RUNNING_RESPONSES } from '../../src/protocol/conversation.js';
import { redisForFile } from './redis-server.js';
import { scriptedMeteredProxy, scriptedResponse, scriptedSession, textUsage, until, usageRecords } from './support.js';

const file = redisForFile();
const { cleanups } = file;

const RUNNING_AT_ONCE = MAX_RUNNING_RESPONSES;

describe('red team 23: the close bills the unread responses, and no response billed long ago again', () => {
  it(`bills each of ${RUNNING_AT_ONCE} responses run at once once by its usage, and the two unread at the close once each`, async () => {
    let upstream: WebSocket | null = null;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        upstream = ws;
        send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
        let items = 0;
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as { type: string };
          if (ev.type !== 'conversation.item.create') return;
          if (++items === 1) {
            // The upstream's own responses (out of band: they may run side by side), all running, then all done.
            const ids = Array.from({ length: RUNNING_AT_ONCE }, (_, i) => `resp_${String(i).padStart(3, '0')}`);
            for (const id of ids) send({ type: 'response.created', response: scriptedResponse(id, 'in_progress', { conversation_id: null }) });
            for (const id of ids) send({ type: 'response.done', response: scriptedResponse(id, 'completed', { conversation_id: null, usage: textUsage(10, 5) }) });
            return;
          }
          // Redis is stalled now: the first response's reservation waits, the second's created and done behind it.
          send({ type: 'response.created', response: scriptedResponse('resp_vad', 'in_progress') });
          send({ type: 'response.created', response: scriptedResponse('resp_idle', 'in_progress') });
          send({ type: 'response.done', response: scriptedResponse('resp_idle', 'completed', { usage: textUsage(10, 5) }) });
          ws.terminate();
        });
      },
      {
        tenants: { acme: { limits: { dailyUsd: 100_000 } } },
        metering: { ledger: { kind: 'redis', url: file.redis.url, keyPrefix: 'rt23-once:', commandTimeoutMs: 1_000 } },
      },
    );
    const records = async (): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, '?tenant=acme');
    const c = await tp.client();
    await c.next('session.created');
    expect(upstream).not.toBeNull();
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    await until(async () => (await records()).length >= RUNNING_AT_ONCE, 20_000, `the ${RUNNING_AT_ONCE} responses billed`);

    file.redis.pause();
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'again' }] } });
    const closed = await c.closed;
    expect(closed.code).not.toBe(1000);
    file.redis.resume();

    await until(() => tp.logs.some((l) => l.msg === 'session end'), 10_000, 'the session ended');
    await until(async () => (await records()).length >= RUNNING_AT_ONCE + 2, 10_000, 'the unread responses billed');
    const all = await records();
    expect(all).toHaveLength(RUNNING_AT_ONCE + 2);
    const byRef = new Map<unknown, Record<string, unknown>[]>();
    for (const r of all) byRef.set(r['ref'], [...(byRef.get(r['ref']) ?? []), r]);
    expect(byRef.size).toBe(RUNNING_AT_ONCE + 2);
    for (const [ref, billed] of byRef) {
      expect(billed).toHaveLength(1);
      const estimated = ref === 'resp_vad' || ref === 'resp_idle';
      expect(billed[0]).toMatchObject({ source: 'response', estimated, settledBy: estimated ? 'upstream_drop_estimate' : 'response.done' });
    }
  });
});
