/**
 * Red team (metering, twenty-second pass): a usage count the parser takes (a finite, non-negative
 * number) but so large that its price is no exact integer of nano-dollars: `input_tokens: 1e16` from
 * the upstream priced at 3.2e20 nano-dollars. The Redis ledger's settle script (HINCRBY) refuses such
 * an amount, and its settle queue retries its head in order, forever: that record and every later
 * settlement of every tenant on the instance stayed queued, never reached Redis (the instances sharing
 * it never saw that spend, so each let its tenants past their caps), and at `pendingMax` the instance
 * refused every new response.
 *
 * Measured before the fix: after that response.done, another tenant's normal response on the same
 * instance (10 + 5 tokens) was never written to Redis: no usage record at all 10 s later (and the
 * tenant that got the huge count was refused every further response: 3.2e20 counted as spent here).
 * Now a usage whose price (or token total) is not a safe integer is unreadable, billed at its
 * reservation (`unreadable_usage_estimate`), and the next record is written behind it. The same for a
 * transcription (`seconds: 1e300` priced at Infinity): billed by the audio committed.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PriceBook } from '../../src/metering/pricing.js';
import { InputTranscriptions } from '../../src/metering/transcriptions.js';
import { redisForFile } from './redis-server.js';
import { scriptedMeteredProxy, scriptedResponse, textUsage, until, usageRecords, sessionThenClientEvents } from './support.js';

const file = redisForFile();
const { cleanups } = file;

const HUGE = 1e16;

describe('red team 22: a usage count too large to price exactly', () => {
  it("is billed at its reservation, and the settlements behind it (another tenant's) still reach Redis", async () => {
    let n = 0;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        sessionThenClientEvents(ws, send, (ev) => {
          if (ev.type !== 'response.create') return;
          const id = `resp_${++n}`;
          const usage = n === 1 ? { total_tokens: HUGE, input_tokens: HUGE, output_tokens: 0 } : textUsage(10, 5);
          send({ type: 'response.created', event_id: `event_c${n}`, response: scriptedResponse(id, 'in_progress') });
          send({ type: 'response.done', event_id: `event_d${n}`, response: scriptedResponse(id, 'completed', { usage }) });
        });
      },
      {
        tenants: { acme: { limits: { dailyUsd: 1 } }, globex: { limits: { dailyUsd: 1 } } },
        metering: { ledger: { kind: 'redis', url: file.redis.url, keyPrefix: 'rt22c:' } },
      },
    );
    // acme's response reports the huge count; then globex's a normal one, on the same instance.
    for (const [i, tenant] of [[1, 'acme'], [2, 'globex']] as const) {
      const c = await tp.client({ tenant });
      await c.next('session.created');
      c.send({ type: 'response.create', event_id: `evt_${i}`, response: { output_modalities: ['text'], max_output_tokens: 100 } });
      await c.waitFor((e) => e.type === 'response.done' && (e['response'] as { id?: string }).id === `resp_${i}`, 10_000, `resp_${i} done`);
    }

    const records = async (tenant: string): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, `?tenant=${tenant}`);
    await until(async () => (await records('acme')).length + (await records('globex')).length >= 2, 10_000, 'both records in Redis');
    const [acme, globex] = [await records('acme'), await records('globex')];
    expect(acme.map((r) => [r['ref'], r['settledBy'], r['estimated']])).toEqual([['resp_1', 'unreadable_usage_estimate', true]]);
    // At its reservation: an exact amount under the $1 cap it was admitted against (not 3.2e20 nano-dollars).
    expect(Number.isSafeInteger(acme[0]!['costNanos'])).toBe(true);
    expect(acme[0]!['costNanos']).toBeGreaterThan(0);
    expect(acme[0]!['costNanos']).toBeLessThan(1_000_000_000);
    expect(globex.map((r) => [r['ref'], r['settledBy'], r['costNanos']])).toEqual([['resp_2', 'response.done', 10 * 4_000 + 5 * 16_000]]);
  });

  it('a transcription whose duration prices at Infinity (seconds: 1e300) is billed by the audio committed, an exact amount', () => {
    const tx = new InputTranscriptions(new PriceBook(), pino({ level: 'silent' }), () => 0);
    const committed = { ms: 2_000, model: 'whisper-1', promptTokens: 0, reservations: [] };
    const priced = tx.price('item_1', 'whisper-1', { type: 'duration', seconds: 1e300 }, 'transcription.completed', committed);
    // 2 s at $0.006 a minute; before the fix: Infinity nano-dollars.
    expect(priced).toMatchObject({ model: 'whisper-1', settledBy: 'unreadable_usage_estimate', cost: { nanos: 200_000, seconds: 2 } });
  });
});
