import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Frame } from '../../src/pipeline/frame.js';
import { TelemetrySession } from '../../src/telemetry/session.js';
import { appendEvents, speechThenSilence } from '../support/client.js';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Issue 13: the telemetry filter is off the audio path. Audio frames reach no filter (the relay
 * meters them); telemetry still gets first audio per response (one report each), audio durations
 * and frame counts from the relay's counters.
 */

let p: TelemetryProxy;
const seen: string[] = [];

beforeAll(async () => {
  const onClient = TelemetrySession.prototype.onClient;
  const onServer = TelemetrySession.prototype.onServer;
  vi.spyOn(TelemetrySession.prototype, 'onClient').mockImplementation(function (this: TelemetrySession, frame: Frame) {
    seen.push(frame.type);
    return onClient.call(this, frame);
  });
  vi.spyOn(TelemetrySession.prototype, 'onServer').mockImplementation(function (this: TelemetrySession, frame: Frame) {
    seen.push(frame.type);
    return onServer.call(this, frame);
  });
  p = await startTelemetryProxy({ simulator: { timing: { firstAudioDelayMs: 20, deltaIntervalMs: 1 } } });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await p?.stop();
});

describe('telemetry off the audio path', () => {
  it('a VAD turn: no audio frame reaches the filter; first audio is one report per response; durations and counts come from the relay', async () => {
    const c = await p.client();
    await c.next('session.created');
    const pcm = speechThenSilence(600, 700);
    const appends = appendEvents(pcm, 20);
    for (const e of appends) {
      c.send(e);
      await new Promise((r) => setImmediate(r));
    }
    const done = await c.next('response.done');
    const responseId = (done['response'] as { id: string }).id;
    const deltas = c.ofType('response.output_audio.delta');
    expect(deltas.length).toBeGreaterThan(0);
    c.close();
    await c.closed;

    // Not one audio frame went through the telemetry filter, in either direction.
    expect(seen).toContain('response.done');
    expect(seen.filter((t) => t === 'input_audio_buffer.append' || t === 'response.output_audio.delta' || t === 'response.audio.delta')).toEqual([]);

    // Exactly one first-audio report for the response; the input start report is push-to-talk only.
    const first = p.reports.filter((r) => r.kind === 'output_audio_started');
    expect(first).toEqual([expect.objectContaining({ kind: 'output_audio_started', responseId })]);
    expect(p.reports.filter((r) => r.kind === 'input_audio_started')).toEqual([]);

    // The response span still carries time to first audio and its audio duration (from byte counts).
    const deadline = Date.now() + 5000;
    let inf = p.spans.getFinishedSpans().find((s) => s.attributes['gen_ai.response.id'] === responseId);
    while (!inf && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      inf = p.spans.getFinishedSpans().find((s) => s.attributes['gen_ai.response.id'] === responseId);
    }
    expect(inf).toBeDefined();
    const audioBytes = deltas.reduce((n, e) => n + Buffer.from(String(e['delta']), 'base64').length, 0);
    expect(inf!.attributes['rtproxy.response.output_audio_ms']).toBeCloseTo(audioBytes / 48, 3);
    expect(inf!.attributes['rtproxy.response.time_to_first_audio'] as number).toBeGreaterThan(0);

    // Frame and audio metrics include the audio the filter never saw.
    const text = await p.telemetry.sdk!.metricsText();
    const frames = (direction: string) => {
      const m = new RegExp(`rtproxy_relay_frames_total\\{[^}]*direction="${direction}"[^}]*\\} (\\d+)`).exec(text);
      return m ? Number(m[1]) : NaN;
    };
    expect(frames('client')).toBeGreaterThanOrEqual(appends.length);
    expect(frames('server')).toBeGreaterThanOrEqual(deltas.length);
  });

  it('push-to-talk: the first append after idle opens the user turn (one report per burst)', async () => {
    const before = p.reports.filter((r) => r.kind === 'input_audio_started').length;
    const c = await p.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.next('session.updated');
    for (let turn = 0; turn < 2; turn++) {
      for (const e of appendEvents(speechThenSilence(200, 0), 20)) c.send(e);
      c.send({ type: 'input_audio_buffer.commit' });
      c.send({ type: 'response.create' });
      await c.nth('response.done', turn + 1);
    }
    c.close();
    await c.closed;
    expect(p.reports.filter((r) => r.kind === 'input_audio_started').length - before).toBe(2);
  });
});
