import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession } from '@openai/agents-realtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, startTestProxy, TestClient, type TestProxy } from '../support/harness.js';

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({ tls: true });
});
afterAll(async () => {
  await tp.stop();
});

describe('real clients through the proxy', () => {
  it('openai SDK (OpenAIRealtimeWS over wss with a test CA) completes a spoken turn', async () => {
    const client = new OpenAI({ apiKey: tp.key(), baseURL: `https://127.0.0.1:${tp.proxy.tlsPort}/v1` });
    const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca: tp.ca! } }, client);
    const types: string[] = [];
    let audioDeltas = 0;
    const done = new Promise<{ status: string; outputTokens: number }>((resolve, reject) => {
      rt.on('error', reject);
      rt.on('response.output_audio.delta', () => audioDeltas++);
      rt.on('event', (e) => types.push(e.type));
      rt.on('response.done', (e) => resolve({ status: e.response.status ?? '', outputTokens: e.response.usage?.output_tokens ?? 0 }));
    });
    await new Promise<void>((resolve, reject) => {
      rt.socket.once('open', () => resolve());
      rt.socket.once('error', reject);
    });
    expect(rt.url.protocol).toBe('wss:');
    for (const ev of appendEvents(speechThenSilence(800, 900))) rt.send(ev);
    const result = await done;
    expect(result.status).toBe('completed');
    expect(result.outputTokens).toBeGreaterThan(0);
    expect(audioDeltas).toBeGreaterThan(0);
    expect(types).toContain('input_audio_buffer.speech_started');
    expect(types).toContain('input_audio_buffer.committed');
    rt.close();
  });

  it('@openai/agents-realtime RealtimeSession completes a turn through the proxy url', async () => {
    const agent = new RealtimeAgent({ name: 'tester', instructions: 'be brief' });
    const transport = new OpenAIRealtimeWebSocket({ url: tp.url });
    const session = new RealtimeSession(agent, { transport, model: 'gpt-realtime' });
    let audioBytes = 0;
    session.on('audio', (e) => (audioBytes += e.data.byteLength));
    const responseDone = new Promise<void>((resolve) => {
      session.on('transport_event', (e) => {
        if (e.type === 'response.done') resolve();
      });
    });
    await session.connect({ apiKey: tp.key() });
    session.sendMessage('say: hello from the agents sdk');
    await responseDone;
    expect(audioBytes).toBeGreaterThan(0);
    const assistant = session.history.filter((h) => h.type === 'message' && h.role === 'assistant');
    expect(assistant.length).toBe(1);
    session.close();
  });

  it('a browser-style client authenticates with subprotocols, gets realtime echoed, and completes a turn', async () => {
    const c = new TestClient(tp.url, { protocols: ['realtime', `openai-insecure-api-key.${tp.key()}`, 'openai-agents-sdk.0.20.0'] });
    await c.opened;
    expect(c.ws.protocol).toBe('realtime');
    await c.next('session.created');
    c.say('say: browser turn');
    const done = await c.next('response.done');
    expect((done['response'] as { status: string }).status).toBe('completed');
    expect(c.ofType('response.output_audio.delta').length).toBeGreaterThan(0);
    c.close();
  });
});
