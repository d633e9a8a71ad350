import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * Content capture and the credentials the proxy is configured with (2026-12-06), through the real
 * proxy (loopback, the embedded simulator, pino lines captured): tenant keys need not look like
 * `rpk_…` or `sk-…` (any string of 16+ characters), and such a key, read out by a user or pasted
 * into a chat, went whole into the turn-end line and the spans. Every configured key is replaced.
 */

const ACME_KEY = 'Acme-Pass-correct-horse-battery';
const BETA_KEY = 'BetaTenantPassphraseXYZ';
const UPSTREAM_KEY = 'upstream-credential-for-the-test';
const ADMIN_KEY = 'admin-secret-value-abcdef';
const WEBHOOK = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

let sim: SimulatorHandle;
let tp: TestProxy;
beforeAll(async () => {
  // A simulator of our own, dialled as the OpenAI upstream: the embedded one replaces the configured key with its own.
  sim = await startSimulator({ apiKey: UPSTREAM_KEY, timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } });
  tp = await startTestProxy({
    tenants: { acme: { key: ACME_KEY }, beta: { key: BETA_KEY } },
    config: {
      upstream: { provider: 'openai', url: sim.url, apiKey: UPSTREAM_KEY },
      admin: { key: ADMIN_KEY },
      calls: { enabled: true, sip: { webhookSecret: WEBHOOK } },
      telemetry: { captureContent: { enabled: true }, logTurns: 'info' },
    },
  });
});
afterAll(async () => {
  await tp?.stop();
  await sim?.close();
});

describe('captured transcripts carry no configured credential, whatever its shape', () => {
  it('tenant keys (its own and another tenant\'s), the upstream key, the admin key and the bare webhook key in the user text and the spoken answer are [secret] on the turn line', async () => {
    const bareWebhook = WEBHOOK.slice('whsec_'.length);
    const c = await tp.client();
    await c.next('session.created');
    c.say(`say:keys ${ACME_KEY} and ${BETA_KEY} then ${UPSTREAM_KEY} also ${ADMIN_KEY} last ${bareWebhook} please keep them`);
    const done = await c.next('response.done');
    expect((done['response'] as { status?: string }).status).toBe('completed');
    c.close();
    await c.closed;
    for (let i = 0; i < 500 && !tp.logs.some((l) => l.msg === 'session end'); i++) await new Promise((r) => setTimeout(r, 10));
    const turn = tp.logs.find((l) => l['event'] === 'turn_end');
    // Capture ran: the words around the keys are kept, each key replaced.
    expect(String(turn?.['inputTranscript'])).toContain('please keep them');
    expect(String(turn?.['outputTranscript'])).toContain('please keep them');
    expect(String(turn?.['inputTranscript']).match(/\[secret\]/g)).toHaveLength(5);
    expect(String(turn?.['outputTranscript']).match(/\[secret\]/g)).toHaveLength(5);
    const all = tp.logText();
    for (const secret of [ACME_KEY, BETA_KEY, UPSTREAM_KEY, ADMIN_KEY, bareWebhook]) expect(all).not.toContain(secret);
  });
});
