import type { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { appendEvents } from '../support/harness.js';
import { meteredProxy, until, usageRecords } from './support.js';

/*
 * Red team (metering, 17d): a beta transcription session (Azure preview, `?intent=transcription`).
 * A transcribed commit reserves its estimate under the transcription setting in force or asked by a
 * `session.update` in flight; a `transcription_session.update` in flight is not read. An adversary
 * sends `transcription_session.update` turning on gpt-4o-transcribe with a 40,000-character prompt
 * and 20 short commits in the same write: no commit reserves (the session "does not transcribe"
 * yet), all leave, the upstream bills the prompt on each transcription. The proxy finds the cap only
 * at the committed events, once every transcription is running. Broken guarantee: spend bounded by
 * the tenant's caps (a commit refused over a cap before it leaves).
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, unknown>;

/** 40,000 bytes: 40,000 tokens by the estimate's rule, $0.10 at gpt-4o-transcribe's $2.50/M. */
const PROMPT = 'Glossary: '.padEnd(40_000, 'x');
const PROMPT_ESTIMATE_NANOS = 40_000 * 2_500;

/** An Azure preview transcription session: commits answered, transcriptions never completed (the estimate bills them). */
function previewUpstream(ws: WebSocket): void {
  let seq = 0;
  const send = (e: Json) => ws.send(JSON.stringify({ event_id: `event_pv_${++seq}`, ...e }));
  send({ type: 'session.created', session: { object: 'realtime.session', id: 'sess_preview', model: 'gpt-realtime', modalities: ['audio', 'text'], input_audio_format: 'pcm16', input_audio_transcription: null, turn_detection: null, tools: [] } });
  ws.on('message', (data) => {
    const ev = JSON.parse(String(data)) as Json;
    if (ev['type'] === 'transcription_session.update') {
      send({ type: 'transcription_session.updated', session: { object: 'realtime.transcription_session', input_audio_format: 'pcm16', turn_detection: null, ...(ev['session'] as Json) } });
    } else if (ev['type'] === 'input_audio_buffer.commit') {
      const itemId = `item_pv_${++seq}`;
      send({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });
    }
  });
}

describe('red team 17d: a transcription_session.update in flight', () => {
  it('the update and 20 commits in one write, $0.05 worst_case cap: spend stays within one transcription of the cap', async () => {
    const up = await scriptedUpstream((ws) => previewUpstream(ws));
    cleanups.push(() => up.close());
    const endpoint = new URL(up.url).origin.replace(/^ws/, 'http');
    const tp = await meteredProxy(cleanups, {
      tenants: { acme: { limits: { dailyUsd: '0.05' } } },
      metering: { admission: 'worst_case' },
      config: { upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } },
    });
    const c = await tp.client({ query: 'intent=transcription' });
    await c.next('session.created');
    c.send({ type: 'transcription_session.update', session: { input_audio_transcription: { model: 'gpt-4o-transcribe', prompt: PROMPT }, turn_detection: null } });
    for (let i = 0; i < 20; i++) {
      for (const ev of appendEvents(Buffer.alloc(4_800))) c.send(ev);
      c.send({ type: 'input_audio_buffer.commit' });
    }
    await until(() => c.ofType('input_audio_buffer.committed').length + c.ofType('error').filter((e) => (e['error'] as Json)['param'] === 'input_audio_buffer.commit').length >= 20, 10_000, 'the commits answered');
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 10_000, 'session end');
    const spent = (await usageRecords(tp.adminUrl, '?tenant=acme')).reduce((a, r) => a + (r['costNanos'] as number), 0);
    // Measured before the fix: every commit left and was billed its estimate ($2).
    expect(spent).toBeLessThanOrEqual(50_000_000 + PROMPT_ESTIMATE_NANOS + 1_000_000);
  });
});
