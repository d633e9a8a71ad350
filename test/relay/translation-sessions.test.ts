import OpenAI from 'openai';
import { OpenAIRealtimeTranslationWS } from 'openai/realtime/translations/ws';
import { afterEach, describe, expect, it } from 'vitest';
import { meteredProxy, openTranslation as open, type Session } from './translation-support.js';
import type { TranslatedFrame } from '../../src/simulator/index.js';
import { spend, until, usageRecords } from '../metering/support.js';
import { policyDir } from '../policies/support.js';
import { startSimulator } from '../../src/simulator/index.js';
import type { TestProxy } from '../support/harness.js';

/*
 * Translation sessions (`/v1/realtime/translations`) through the proxy, with `openai`'s own
 * OpenAIRealtimeTranslationWS on loopback (TLS: the SDK dials wss: only) and the simulator upstream.
 * Every frame the client receives is asserted.
 */


const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(options: Parameters<typeof meteredProxy>[0] = {}): Promise<TestProxy> {
  const tp = await meteredProxy({ tls: true, ...options });
  cleanups.push(() => tp.stop());
  return tp;
}


/** `ms` of 24 kHz PCM16 silence, base64. */
const pcm = (ms: number) => Buffer.alloc(ms * 48).toString('base64');
const append = (s: Session, ms: number, eventId?: string) => s.translation.send({ type: 'session.input_audio_buffer.append', audio: pcm(ms), ...(eventId ? { event_id: eventId } : {}) });

describe('translation sessions through the proxy', () => {
  it('relays a whole session (update, audio, transcripts, translated audio, close) and bills its input audio per minute', async () => {
    const tp = await proxy();
    const s = await open(tp);
    const created = await s.next('session.created');
    expect(created['session']).toMatchObject({ type: 'translation', model: 'gpt-realtime-translate' });
    s.translation.send({ type: 'session.update', session: { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } }, output: { language: 'fr' } } } });
    const updated = await s.next('session.updated');
    expect(updated['session']).toMatchObject({ type: 'translation', audio: { input: { transcription: { model: 'gpt-realtime-whisper' } }, output: { language: 'fr' } } });
    append(s, 200);
    append(s, 200);
    append(s, 100);
    s.translation.session.close();
    await s.next('session.closed');
    const { code } = await s.closed;
    expect(code).toBe(1000);
    // Two whole 200 ms frames, then the 100 ms flushed at the close: three of each.
    expect(s.frames.map((f) => f.type)).toEqual([
      'session.created',
      'session.updated',
      ...Array.from({ length: 3 }, () => ['session.input_transcript.delta', 'session.output_transcript.delta', 'session.output_audio.delta']).flat(),
      'session.closed',
    ]);
    expect(s.frames.filter((f) => f.type === 'session.output_transcript.delta').map((f) => f['delta'])).toEqual(['(translated frame 0) ', '(translated frame 1) ', '(translated frame 2) ']);
    expect(s.frames.filter((f) => f.type === 'session.input_transcript.delta').map((f) => f['delta'])).toEqual(['(source frame 0)', '(source frame 1)', '(source frame 2)']);
    expect(s.frames.filter((f) => f.type === 'session.output_audio.delta').map((f) => Buffer.from(f['delta'] as string, 'base64').length)).toEqual([9600, 9600, 4800]);
    // The upstream was dialled at its translations endpoint with the model, and got every event.
    const upstream = tp.sim.connections[0]!;
    expect(new URL(upstream.url, 'http://sim').pathname).toBe('/v1/realtime/translations');
    expect(upstream.received.map((r) => r.type)).toEqual(['session.update', 'session.input_audio_buffer.append', 'session.input_audio_buffer.append', 'session.input_audio_buffer.append', 'session.close']);
    // 0.5 s at $0.034/min: 283,333 nanodollars, billed from the audio forwarded (the upstream reports no usage).
    await until(async () => (await usageRecords(tp.adminUrl)).length === 1, 5000, 'the translation usage record');
    const [record] = await usageRecords(tp.adminUrl);
    expect(record).toMatchObject({ tenant: 'acme', model: 'gpt-realtime-translate', seconds: 0.5, costNanos: 283_333, totalTokens: 0, settledBy: 'translation_audio', estimated: false });
    const day = (await spend(tp.adminUrl)).day;
    expect(day.spentNanos).toBe(283_333);
    expect(day.reservedUsd).toBe('0.00');
  });

  it('refuses every realtime client event in a translation session before the upstream sees it', async () => {
    const tp = await proxy();
    const s = await open(tp);
    await s.next('session.created');
    s.translation.send({ type: 'response.create', event_id: 'evt_create' });
    s.translation.send({ type: 'conversation.item.create', event_id: 'evt_item', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    s.translation.send({ type: 'input_audio_buffer.append', event_id: 'evt_rt_audio', audio: pcm(200) });
    await until(() => s.frames.filter((f) => f.type === 'error').length === 3, 5000, 'three refusals');
    expect(s.frames.map((f) => f.type)).toEqual(['session.created', 'error', 'error', 'error']);
    const errors = s.frames.filter((f) => f.type === 'error').map((f) => f['error'] as Record<string, unknown>);
    expect(errors.map((e) => [e['code'], e['event_id'], e['param']])).toEqual([
      ['invalid_event', 'evt_create', 'type'],
      ['invalid_event', 'evt_item', 'type'],
      ['invalid_event', 'evt_rt_audio', 'type'],
    ]);
    // The session goes on: a translation event after them passes.
    append(s, 200);
    await s.next('session.output_audio.delta');
    expect(tp.sim.connections[0]!.received.map((r) => r.type)).toEqual(['session.input_audio_buffer.append']);
    s.translation.close();
  });

  it('refuses input audio past the tenant cost cap with budget_exceeded, the audio not sent upstream', async () => {
    // worst_case admission: the first minute block ($0.034) does not fit a $0.01 cap.
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.01' } } }, metering: { admission: 'worst_case' } });
    const s = await open(tp);
    await s.next('session.created');
    append(s, 200, 'evt_audio_1');
    const error = await s.next('error');
    expect(s.frames.map((f) => f.type)).toEqual(['session.created', 'error']);
    expect(error['error']).toMatchObject({ code: 'budget_exceeded', event_id: 'evt_audio_1', param: 'audio' });
    expect(tp.sim.connections[0]!.received).toEqual([]);
    s.translation.close();
    await s.closed;
    expect((await spend(tp.adminUrl)).day).toMatchObject({ spentNanos: 0, reservedUsd: '0.00' });
  });

  it('under onExhausted: end_session, the refused append ends the session with 4002', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.01' } } }, metering: { admission: 'worst_case', onExhausted: 'end_session' } });
    const s = await open(tp);
    await s.next('session.created');
    append(s, 200, 'evt_audio_1');
    expect(await s.closed).toEqual({ code: 4002, reason: 'budget_exceeded' });
    expect(s.frames.map((f) => f.type)).toEqual(['session.created', 'error']);
    expect(s.frames[1]!['error']).toMatchObject({ code: 'budget_exceeded', event_id: 'evt_audio_1' });
    expect(tp.sim.connections[0]!.received).toEqual([]);
  });

  it('counts the audio tokens of a model priced per audio token against maxSessionTokens', async () => {
    // With token prices the audio counts 10 tokens a second (its dollars stay per minute).
    const tp = await proxy({
      tenants: { acme: { limits: { maxSessionTokens: 5 } } },
      metering: { prices: { 'gpt-realtime-translate': { textIn: '1.00', audioIn: '1.00', textOut: '1.00' } } },
    });
    const s = await open(tp);
    await s.next('session.created');
    append(s, 200, 'evt_a');
    append(s, 200, 'evt_b');
    append(s, 200, 'evt_c');
    const error = await s.next('error');
    expect(error['error']).toMatchObject({ code: 'token_limit_exceeded', event_id: 'evt_c', param: 'audio' });
    await until(() => s.frames.filter((f) => f.type === 'session.output_audio.delta').length === 2, 5000, 'two translated frames');
    // The refusal and the two frames' output race each other: every frame, in any order.
    expect(s.frames.map((f) => f.type).sort()).toEqual(['error', 'session.created', 'session.output_audio.delta', 'session.output_audio.delta', 'session.output_transcript.delta', 'session.output_transcript.delta']);
    expect(tp.sim.connections[0]!.received.map((r) => (r.event as { event_id?: string }).event_id)).toEqual(['evt_a', 'evt_b']);
    s.translation.session.close();
    await s.closed;
    await until(async () => (await usageRecords(tp.adminUrl)).length === 1, 5000, 'the usage record');
    expect((await usageRecords(tp.adminUrl))[0]).toMatchObject({ seconds: 0.4, totalTokens: 4, costNanos: 226_667 });
  });

  it('a client that disconnects mid-session is billed the audio it sent, and nothing stays reserved', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '5' } } } });
    const s = await open(tp);
    await s.next('session.created');
    for (let i = 0; i < 5; i++) append(s, 200);
    await until(() => s.frames.filter((f) => f.type === 'session.output_audio.delta').length === 5, 5000, 'five translated frames');
    // No source transcription asked: the output transcript and audio of each frame.
    expect(s.frames.map((f) => f.type)).toEqual(['session.created', ...Array.from({ length: 5 }, () => ['session.output_transcript.delta', 'session.output_audio.delta']).flat()]);
    // While it runs, a minute is held against the cap.
    expect((await spend(tp.adminUrl)).day.reservedUsd).toBe('0.034');
    s.translation.socket.platformSocket.terminate();
    await until(async () => (await usageRecords(tp.adminUrl)).length === 1, 5000, 'the usage record at the disconnect');
    expect((await usageRecords(tp.adminUrl))[0]).toMatchObject({ seconds: 1, costNanos: 566_667, settledBy: 'translation_audio' });
    expect((await spend(tp.adminUrl)).day).toMatchObject({ spentNanos: 566_667, reservedUsd: '0.00' });
  });

  it('settles each used-up minute as the next is reserved', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '5' } } } });
    const s = await open(tp);
    await s.next('session.created');
    // 61 s in one-second frames: the first block is used up at 60 s.
    for (let i = 0; i < 61; i++) append(s, 1000);
    await until(() => s.frames.filter((f) => f.type === 'session.output_audio.delta').length === 305, 10_000, 'every translated frame');
    const records = await usageRecords(tp.adminUrl);
    expect(records.map((r) => [r['seconds'], r['costNanos']])).toEqual([[60, 34_000_000]]);
    expect((await spend(tp.adminUrl)).day.reservedUsd).toBe('0.034');
    s.translation.session.close();
    await s.closed;
    expect(s.frames.map((f) => f.type)).toEqual(['session.created', ...Array.from({ length: 305 }, () => ['session.output_transcript.delta', 'session.output_audio.delta']).flat(), 'session.closed']);
    await until(async () => (await usageRecords(tp.adminUrl)).length === 2, 5000, 'the last block settled');
    expect((await usageRecords(tp.adminUrl)).map((r) => r['seconds'])).toEqual([60, 1]);
    expect((await spend(tp.adminUrl)).day).toMatchObject({ spentNanos: 34_566_667, reservedUsd: '0.00' });
  });

  it('refuses a model the tenant policy does not allow, and a realtime model, before the upgrade', async () => {
    const tp = await proxy({
      tenants: { acme: { policy: 'narrow' } },
      config: { policies: { dir: policyDir({ 'narrow.yaml': 'locks:\n  model: { allow: [gpt-realtime] }\n' }), watch: false } },
    });
    const client = new OpenAI({ apiKey: tp.key(), baseURL: `https://127.0.0.1:${tp.proxy.tlsPort}/v1` });
    const status = async (model: string) => {
      const t = await OpenAIRealtimeTranslationWS.create(client, { model, options: { ca: tp.ca! } });
      t.on('error', () => undefined);
      return new Promise<number>((resolve) => {
        t.socket.platformSocket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        t.socket.platformSocket.once('open', () => resolve(101));
      });
    };
    expect(await status('gpt-realtime-translate')).toBe(403);
    expect(await status('gpt-realtime')).toBe(400);
  });

  it('refuses a transcription model (priced per minute too) before the upgrade with a 400 naming the translation models', async () => {
    // Until 2026-12-07 gpt-realtime-whisper was dialled at the translations endpoint and only the upstream refused it.
    const tp = await proxy();
    const client = new OpenAI({ apiKey: tp.key(), baseURL: `https://127.0.0.1:${tp.proxy.tlsPort}/v1` });
    const t = await OpenAIRealtimeTranslationWS.create(client, { model: 'gpt-realtime-whisper', options: { ca: tp.ca! } });
    t.on('error', () => undefined);
    const refusal = await new Promise<{ status: number; body: string }>((resolve) => {
      t.socket.platformSocket.once('open', () => resolve({ status: 101, body: '' }));
      t.socket.platformSocket.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
    });
    expect(refusal.status).toBe(400);
    expect(JSON.parse(refusal.body)).toMatchObject({
      error: {
        code: 'unknown_model_price',
        param: 'model',
        message: 'The model "gpt-realtime-whisper" is a transcription model: a translation session needs a translation model (gpt-realtime-translate).',
      },
    });
    expect(tp.sim.connections).toEqual([]);
  });
});

describe('translation sessions: admission and upstreams', () => {
  it('a tenant whose policy locks realtime settings and truncates runs translation sessions: nothing of theirs is sent upstream but the locked source transcription', async () => {
    const tp = await proxy({
      tenants: { acme: { policy: 'locked' } },
      config: { policies: { dir: policyDir({ 'locked.yaml': 'locks:\n  instructions: { locked: "Be brief." }\n  inputTranscription: { model: gpt-4o-mini-transcribe }\ntruncation:\n  budget: { maxTokens: 2000 }\n' }), watch: false } },
    });
    const s = await open(tp);
    await s.next('session.created');
    append(s, 200);
    await s.next('session.output_audio.delta');
    s.translation.session.close();
    expect((await s.closed).code).toBe(1000);
    // The inputTranscription lock turns the source transcription on, with its model only (test/relay/redteam-19t-translation.test.ts).
    expect(s.frames.map((f) => f.type)).toEqual(['session.created', 'session.updated', 'session.input_transcript.delta', 'session.output_transcript.delta', 'session.output_audio.delta', 'session.closed']);
    expect(tp.sim.connections[0]!.received.map((r) => r.type)).toEqual(['session.update', 'session.input_audio_buffer.append', 'session.close']);
    expect(tp.sim.connections[0]!.received[0]!.event).toMatchObject({ type: 'session.update', session: { audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } } } });
  });

  it("counts against the tenant's concurrent sessions like any session", async () => {
    const tp = await proxy({ tenants: { acme: { limits: { maxConcurrentSessions: 1 } } } });
    const first = await open(tp);
    await first.next('session.created');
    await expect(open(tp)).rejects.toThrow('HTTP 429');
    first.translation.close();
    await first.closed;
    await until(async () => (await open(tp).then((s) => (s.translation.close(), true), () => false)), 5000, 'a slot given back at the close');
  });

  it('dials an Azure GA upstream at /openai/v1/realtime/translations?model=<deployment>', async () => {
    const sim = await startSimulator({ apiKey: 'azure-key-123' });
    cleanups.push(() => sim.close());
    const tp = await proxy({
      config: { upstream: { provider: 'azure', apiKey: 'azure-key-123', azure: { endpoint: `http://127.0.0.1:${sim.port}`, deployment: 'my-realtime', model: 'gpt-realtime', deployments: { 'gpt-realtime-translate': 'my-translate' } } } },
    });
    const s = await open(tp);
    const created = await s.next('session.created');
    expect(created['session']).toMatchObject({ type: 'translation', model: 'my-translate' });
    const dialled = new URL(sim.connections[0]!.url, 'http://sim');
    expect([dialled.pathname, [...dialled.searchParams]]).toEqual(['/openai/v1/realtime/translations', [['model', 'my-translate']]]);
    expect(sim.connections[0]!.headers['api-key']).toBe('azure-key-123');
    s.translation.close();
  });

  it('refuses translation sessions before the upgrade when the Azure upstream speaks the preview protocol', async () => {
    const sim = await startSimulator();
    cleanups.push(() => sim.close());
    const tp = await proxy({
      config: { upstream: { provider: 'azure', apiKey: 'k', azure: { endpoint: `http://127.0.0.1:${sim.port}`, deployment: 'gpt-realtime-translate', apiVersion: '2025-04-01-preview' } } },
    });
    await expect(open(tp)).rejects.toThrow('HTTP 400');
    expect(sim.connections).toEqual([]);
  });
});

describe('guardrails in translation sessions', () => {
  const POLICY = `
guardrails:
  rules:
    - { id: card, sources: [input], match: { pii: [card] }, action: redact }
    - { id: secret, sources: [output], match: { phrases: ["launch codes"] }, action: block }
`;
  const said: TranslatedFrame[] = [
    { source: 'my card is 4111 1111 1111 1111', translated: 'hello ' },
    { source: 'and more', translated: 'the launch codes are ' },
    { source: 'never sent', translated: 'never sent ' },
  ];

  it('redacts the input transcript, and a block on the translation ends the session with the policy close code', async () => {
    const tp = await proxy({
      tenants: { acme: { policy: 'translate' } },
      config: { policies: { dir: policyDir({ 'translate.yaml': POLICY }), watch: false } },
      simulator: { translate: ({ frame }) => said[Math.min(frame, said.length - 1)]! },
    });
    const s = await open(tp);
    await s.next('session.created');
    s.translation.send({ type: 'session.update', session: { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } } } } });
    await s.next('session.updated');
    append(s, 200);
    append(s, 200);
    const { code, reason } = await s.closed;
    expect(code).toBe(4003);
    expect(reason).toBe('policy_violation');
    const types = s.frames.map((f) => f.type);
    // Frame 0 passes (its card number redacted); frame 1's translation trips the block: the session
    // ends there, before its transcript or audio reaches the client.
    expect(types.slice(0, 6)).toEqual(['session.created', 'session.updated', 'session.input_transcript.delta', 'session.output_transcript.delta', 'session.output_audio.delta', 'session.input_transcript.delta']);
    expect(types.slice(6)).toEqual(['error']);
    expect(s.frames[2]!['delta']).not.toContain('4111');
    expect(s.frames[3]!['delta']).toBe('hello ');
    expect(s.frames[6]!['error']).toMatchObject({ code: 'policy_violation' });
    expect(JSON.stringify(s.frames)).not.toContain('launch codes');
  });
});

