/**
 * A response billed under its hashed ref (`keptId` of an id over 256 characters: `\u0000sha256:…`)
 * on the Redis ledger, end to end: the NUL goes through the settle script's record key, the usage
 * stream and the admin listing; the response is billed once. (Until 2026-12-07 only the SQLite ledger
 * saw such a ref: test/metering/redteam-23-endless-responses.test.ts.)
 */
import type WebSocket from 'ws';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { keptId, MAX_KEPT_ID_CHARS } from '../../src/protocol/json.js';
import { redisSuite } from './redis-suite.js';
import { scriptedMeteredProxy, scriptedResponse, scriptedSession, spend, textUsage, until, usageRecords } from './support.js';

const suite = redisSuite();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a hashed response ref on the Redis ledger', () => {
  it('a response id over 256 characters: the session ends at its response.created, the response is billed once under its hash, listed and counted as spent', async () => {
    const long = `resp_${'y'.repeat(1024 * 1024)}`;
    const ref = keptId(long);
    expect(ref.startsWith('\u0000sha256:')).toBe(true);
    const keyPrefix = suite.keyPrefix('hashedref');
    let closed: () => void = () => undefined;
    const upstreamClosed = new Promise<void>((resolve) => (closed = resolve));
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws: WebSocket, send) => {
        ws.once('close', () => closed());
        send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
        ws.on('message', (data) => {
          if ((JSON.parse(String(data)) as { type: string }).type !== 'conversation.item.create') return;
          // Its done right behind: never read (the session ends at the created), never billed again.
          send({ type: 'response.created', event_id: 'event_c', response: scriptedResponse(long, 'in_progress') });
          send({ type: 'response.done', event_id: 'event_d', response: scriptedResponse(long, 'completed', { usage: textUsage(10, 10) }) });
        });
      },
      { tenants: { acme: { limits: { dailyUsd: 10_000 } } }, metering: { ledger: { kind: 'redis', url: suite.redis().url, keyPrefix } } },
    );
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    const close = await c.closed;
    await upstreamClosed;
    expect(close).toEqual({ code: 1011, reason: 'upstream_protocol_violation' });
    expect(c.events.map((e) => e.type)).toEqual(['session.created', 'error']);
    expect((c.events.at(-1)!['error'] as Record<string, unknown>)['details']).toEqual({ bound: 'id_length', limit: MAX_KEPT_ID_CHARS });

    await until(() => tp.logs.some((l) => l.msg === 'session end'), 10_000, 'the session ended');
    await until(async () => (await usageRecords(tp.adminUrl, '?tenant=acme')).length >= 1, 10_000, 'the record listed');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['ref'], r['estimated'], r['settledBy']])).toEqual([[ref, true, 'session_end_estimate']]);
    const cost = records[0]!['costNanos'] as number;
    expect(cost).toBeGreaterThan(0);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(cost);

    // In Redis as written: one stream entry, its key the session, source and the hash (NUL included).
    const r = new Redis(suite.redis().url);
    try {
      const entries = await r.xrange(`${keyPrefix}{acme}:usage`, '-', '+');
      expect(entries).toHaveLength(1);
      const fields = entries[0]![1];
      expect(fields[0]).toBe('k');
      expect(fields[1]!.endsWith(`/${ref}`)).toBe(true);
      expect((JSON.parse(fields[3]!) as { ref: string }).ref).toBe(ref);
    } finally {
      r.disconnect();
    }
  });
});
