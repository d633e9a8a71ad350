import { join } from 'node:path';
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { ADMIN_KEY, spend, usageRecords } from './support.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * Adversary review (metering): a client that stops reading.
 *
 * When the client's send buffer passes the high watermark the proxy stops reading the upstream, so
 * the upstream's `response.created` for a create the proxy already let through sits unread in the
 * upstream socket. Metering releases a create's reservation when no `response.created` came within
 * `pendingResponseTimeoutMs` ("the upstream never started it"), but here the upstream did start it:
 * the proxy just has not read it. The client keeps sending creates (client → upstream still flows),
 * each admitted against the budget the released reservations freed, and the upstream runs them all.
 *
 * Guarantee under test (src/metering/README.md "The guarantee"): `admission: worst_case` never goes
 * over the cap, under any client behaviour.
 *
 * The test shortens `pendingResponseTimeoutMs` to 300 ms so it runs in seconds; with the defaults
 * (15 s, `slowClientGraceMs` 10 s) the same holds for a client that drains below the low watermark
 * once in a while (the slow-client clock restarts at each drain, so it is never closed) while
 * megabytes of a long audio answer still sit ahead of each `response.created`.
 * Since 2026-12-06 no timer releases a create under `worst_case` at all (a CPU-starved run released
 * one whose answer was waiting unread: test/metering/redteam-money.test.ts, "a stalled event loop");
 * this test holds the guarantee end to end; the paused-reading rule of `remaining`'s timer is held by
 * src/metering/filter.test.ts ("creates while the upstream is not read").
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** 4,096 audio output tokens: $0.262144 at gpt-realtime (64 µ$ a token). */
const USAGE = {
  total_tokens: 4106,
  input_tokens: 10,
  output_tokens: 4096,
  input_token_details: { text_tokens: 10, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
  output_token_details: { text_tokens: 0, audio_tokens: 4096 },
};

/** 64 KiB of base64 audio per delta; the first (in-conversation) response streams DELTAS of them. */
const DELTA = 'A'.repeat(64 * 1024);
const DELTAS = 640;

describe('adversary: a client that stops reading while creates wait for response.created', () => {
  it('admission worst_case: released-by-timeout reservations of responses the upstream did start do not let spend pass the cap', async () => {
    const creates: Array<{ oob: boolean; key: string | null }> = [];
    const up = await scriptedUpstream((ws: WebSocket, n) => {
      ws.send(sessionCreated(n));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { type: string; response?: { conversation?: string; metadata?: Record<string, string>; max_output_tokens?: unknown } };
        if (ev.type !== 'response.create') return;
        const r = ev.response ?? {};
        const oob = r.conversation === 'none';
        const key = r.metadata?.['k'] ?? null;
        creates.push({ oob, key });
        const id = `resp_${creates.length}`;
        const body = {
          object: 'realtime.response',
          id,
          conversation_id: oob ? null : 'conv_1',
          output: [],
          output_modalities: ['audio'],
          max_output_tokens: r.max_output_tokens ?? 'inf',
          metadata: r.metadata ?? null,
        };
        ws.send(JSON.stringify({ type: 'response.created', event_id: `e_c_${id}`, response: { ...body, status: 'in_progress', usage: null } }));
        if (!oob) {
          // A long spoken answer: megabytes of audio the client will not read.
          for (let i = 0; i < DELTAS; i++) {
            ws.send(JSON.stringify({ type: 'response.output_audio.delta', event_id: `e_d_${id}_${i}`, response_id: id, item_id: 'item_long', output_index: 0, content_index: 0, delta: DELTA }));
          }
        }
        ws.send(JSON.stringify({ type: 'response.done', event_id: `e_x_${id}`, response: { ...body, status: 'completed', usage: USAGE } }));
      });
    });
    cleanups.push(() => up.close());

    const dir = tempDir('rp-adv-bp-');
    const cap = '1';
    const tp: TestProxy = await startTestProxy({
      tenants: { acme: { limits: { dailyUsd: cap } } },
      config: {
        logging: { level: 'info' },
        admin: { key: ADMIN_KEY },
        upstream: { provider: 'openai', url: up.url, apiKey: 'sk-x' },
        server: { backpressure: { highWatermarkBytes: 256 * 1024, lowWatermarkBytes: 64 * 1024, maxBufferedBytes: 64 * 1024 * 1024 } },
        metering: { admission: 'worst_case', pendingResponseTimeoutMs: 300, ledger: { path: join(dir, 'ledger.sqlite') } },
      },
    });
    cleanups.push(() => tp.stop());

    const c = await tp.client();
    await c.next('session.created');
    // The client stops reading, then asks for a long spoken answer in the conversation ...
    c.ws.pause();
    c.send({ type: 'response.create', event_id: 'evt_long', response: { max_output_tokens: 4096 } });
    await until(() => creates.length === 1, 5000, 'the long response to start upstream');
    // ... and keeps asking for out-of-band answers (each worst case ≈ $0.262; $1 fits three in all).
    for (let i = 0; i < 12; i++) {
      c.send({ type: 'response.create', event_id: `evt_oob_${i}`, response: { conversation: 'none', input: [], metadata: { k: `oob_${i}` }, max_output_tokens: 4096 } });
      await sleep(400);
    }
    const reachedUpstream = creates.length;
    // Read everything again: every response the upstream ran reaches the proxy and is billed.
    c.ws.resume();
    await until(() => c.ofType('response.done').length >= reachedUpstream, 60_000, 'every response.done');
    c.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'the session to end');

    const records = (await usageRecords(tp.adminUrl, '?tenant=acme')).filter((r) => r['source'] === 'response');
    const spent = records.reduce((a, r) => a + (r['costNanos'] as number), 0);
    expect(records).toHaveLength(reachedUpstream);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(spent);
    // worst_case admission: never over the cap (at most 3 responses of $0.262 run).
    expect(spent, `${reachedUpstream} responses ran upstream`).toBeLessThanOrEqual(nanos(cap));
  }, 90_000);
});
