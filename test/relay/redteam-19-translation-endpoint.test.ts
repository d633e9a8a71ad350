import OpenAI from 'openai';
import { OpenAIRealtimeTranslationWS } from 'openai/realtime/translations/ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * A new user, not an adversary: a team that already uses `openai`'s Realtime translation client
 * (`OpenAIRealtimeTranslationWS`, `openai@7.57.0`, sessions at `/v1/realtime/translations`) points
 * the same OpenAI client at the proxy, changing only `baseURL`. The proxy prices
 * `gpt-realtime-translate` (src/metering/default-prices.ts) and its guardrails read the translation
 * session's events (`session.input_transcript.delta`, policies/README.md: "Translation sessions add
 * `session.input_transcript.delta`"), but the client port only upgrades paths ending in `/realtime`:
 * the SDK's `/v1/realtime/translations?model=…` gets HTTP 404 "WebSocket path must end in /realtime"
 * and the upstream is never dialled. Nothing in README.md says translation sessions are not served.
 * Guarantee broken: "Existing Realtime clients change only their base URL".
 */

let upstream: RecordingUpstream;
let tp: TestProxy;
beforeAll(async () => {
  upstream = await recordingUpstream();
  tp = await startTestProxy({ tls: true, config: { upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' } } });
});
afterAll(async () => {
  await tp.stop();
  await upstream.close();
});

describe('openai Realtime translation client through the proxy', () => {
  it('OpenAIRealtimeTranslationWS opens a translation session through the proxy, dialled at the upstream translations path', async () => {
    const client = new OpenAI({ apiKey: tp.key(), baseURL: `https://127.0.0.1:${tp.proxy.tlsPort}/v1` });
    const translation = await OpenAIRealtimeTranslationWS.create(client, { model: 'gpt-realtime-translate', options: { ca: tp.ca! } });
    // The SDK reports transport failures (a refused upgrade) through its error event.
    translation.on('error', () => undefined);
    expect(translation.url.pathname).toBe('/v1/realtime/translations');
    const refusedWith = new Promise<number>((resolve) => translation.socket.platformSocket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    const opened = new Promise<void>((resolve) => translation.socket.platformSocket.once('open', () => resolve()));
    const outcome = await Promise.race([opened.then(() => 'open' as const), refusedWith.then((status) => `HTTP ${status}`)]);
    expect(outcome).toBe('open');
    const dialled = await upstream.connection(1);
    expect(new URL(dialled.url, 'http://upstream').pathname).toBe('/v1/realtime/translations');
    expect(new URL(dialled.url, 'http://upstream').searchParams.get('model')).toBe('gpt-realtime-translate');
    translation.close();
  });
});
