import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Red team (2026-12-06, observability): the audio seconds counter and the PCM rate the upstream
 * confirms. Telemetry turns relayed audio bytes into milliseconds with the session's input and
 * output format, read from session.created/updated; for `audio/pcm` it took `rate` as the upstream
 * wrote it. An upstream that confirms what a client asked without checking (OpenAI itself only
 * takes 24000; a lax compatible upstream, or a hostile one, echoes anything) and a client that asks
 * for `rate: 0` or a negative rate: the session's audio milliseconds are bytes / 0 = Infinity (or
 * negative). They are summed into the tenant's retired totals, so `rtproxy_audio_duration_total`
 * of that tenant stays `+Inf` (or goes down: Prometheus reads a reset) for the life of the process,
 * with every later honest session of the tenant lost in it: the dashboards' audio minutes and
 * $/audio-minute are wrong until restart.
 */

let upstream: RecordingUpstream;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await recordingUpstream();
  tp = await startTestProxy({ tenants: { acme: {} }, config: {
      upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' },
      // This upstream never answers the appended audio: the session ends when the client leaves (no wait for a turn).
      metering: { lingerAfterClientCloseMs: 0 },
    } });
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

function audioSeconds(text: string, direction: string): number {
  const line = text.split('\n').find((l) => l.startsWith('rtproxy_audio_duration_total{') && l.includes('rtproxy_tenant_id="acme"') && l.includes(`direction="${direction}"`));
  expect(line).toBeDefined();
  return Number(line!.slice(line!.lastIndexOf(' ') + 1).replace('+Inf', 'Infinity'));
}

/** One session: the formats asked for (and echoed by the upstream), then 1 s of PCM16 input; closed, its totals retired. */
async function session(rate: number | null, sessions: number): Promise<void> {
  const c = await tp.client();
  await c.next('session.created');
  if (rate !== null) {
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate } }, output: { format: { type: 'audio/pcm', rate } } } } });
    await c.next('session.updated');
  }
  // 1 s of PCM16 at 24 kHz, the only rate the audio really has.
  c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(48_000).toString('base64') });
  const up = await upstream.connection(sessions);
  await up.waitFor((raw) => raw.includes('input_audio_buffer.append'));
  c.close();
  await c.closed;
  for (let i = 0; i < 500 && tp.logs.filter((l) => l['event'] === 'session_end').length < sessions; i++) await new Promise((r) => setTimeout(r, 10));
}

describe('audio seconds stay finite and monotonic whatever PCM rate the upstream confirms', () => {
  it('rate 0, then a negative rate, then an honest session: the tenant\'s input audio is a finite count that never went down', async () => {
    await session(null, 1);
    const honest = audioSeconds(await (await fetch(`${tp.adminUrl}/metrics`)).text(), 'input');
    expect(honest).toBeCloseTo(1, 3);
    await session(-24_000, 2);
    const afterNegative = audioSeconds(await (await fetch(`${tp.adminUrl}/metrics`)).text(), 'input');
    // A counter never decreases (Prometheus would read a reset and count the whole total again).
    expect(afterNegative).toBeGreaterThanOrEqual(honest);
    await session(0, 3);
    await session(null, 4);
    const total = audioSeconds(await (await fetch(`${tp.adminUrl}/metrics`)).text(), 'input');
    expect(Number.isFinite(total)).toBe(true);
    expect(total).toBeGreaterThanOrEqual(afterNegative);
    // Four sessions of 1 s of audio each, counted at most at the real rate.
    expect(total).toBeLessThanOrEqual(4.001);
  });
});
