import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Adversarial review of content capture (2026-12-06), through the real proxy (loopback, the
 * simulator upstream, spans in memory, pino lines captured). With `captureContent` on, transcripts
 * go to the turn-end line and the spans, redacted: README ("Bounds on what clients and the upstream
 * name") promises credentials are replaced by `[secret]`, and the brief's list of credentials the
 * proxy handles includes the OpenAI webhook signing secret (`whsec_…`, `calls.sip.webhookSecret`),
 * which a user pasting a config or a support agent reading one out puts in a transcript.
 */

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({
    config: { telemetry: { captureContent: { enabled: true }, logTurns: 'info' } },
    simulator: { timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } },
  });
});
afterAll(async () => {
  await p?.stop();
});

describe('captured transcripts carry no webhook signing secret', () => {
  it('a whsec_ secret in the user text and in the spoken answer is [secret] on the turn line and the spans', async () => {
    // The shape calls/config.ts accepts: whsec_ + the base64 signing key (no run of six digits in it).
    const secret = 'whsec_c2VjcmV0S2V5Rm9yV2ViaG9va1NpZ25pbmdYWVo=';
    const c = await p.client();
    await c.next('session.created');
    c.say(`say:our webhook secret is ${secret} please keep it`);
    const done = await c.next('response.done');
    expect((done['response'] as { status?: string }).status).toBe('completed');
    c.close();
    await c.closed;
    for (let i = 0; i < 500 && !p.lines.some((l) => l.includes('"session end"')); i++) await new Promise((r) => setTimeout(r, 10));
    const turnLine = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['event'] === 'turn_end');
    // Capture ran: the words around the secret are kept.
    expect(String(turnLine?.['inputTranscript'])).toContain('our webhook secret is');
    expect(String(turnLine?.['outputTranscript'])).toContain('please keep it');
    const everything = p.lines.join('\n') + JSON.stringify(p.spans.getFinishedSpans().map((s) => ({ a: s.attributes, e: s.events })));
    expect(everything).not.toContain('c2VjcmV0S2V5Rm9yV2ViaG9va1NpZ25pbmdYWVo');
  });
});
