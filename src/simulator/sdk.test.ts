import { readFileSync } from 'node:fs';
import { OpenAIRealtimeWebSocket, RealtimeAgent, RealtimeSession, tool } from '@openai/agents-realtime';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { testTls } from '../../test/support/tls.js';
import { concatPcm, silence, startSimulator, synthesizeSpeech, type SimulatorHandle } from './index.js';

const KEY = 'sk-sim-agents-sdk';
let sim: SimulatorHandle;

beforeAll(async () => {
  sim = await startSimulator({ apiKey: KEY });
});
afterAll(async () => {
  await sim.close();
});

function waitFor<T>(register: (resolve: (v: T) => void) => void, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
    register((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

describe('real clients against the simulator', () => {
  it('@openai/agents-realtime RealtimeSession completes a spoken turn', async () => {
    const transport = new OpenAIRealtimeWebSocket({ url: `${sim.url}?model=gpt-realtime` });
    const agent = new RealtimeAgent({ name: 'Simulated', instructions: 'Answer briefly.' });
    const session = new RealtimeSession(agent, { transport, model: 'gpt-realtime' });
    const errors: unknown[] = [];
    session.on('error', (e) => errors.push(e));
    let audioBytes = 0;
    session.on('audio', (e) => (audioBytes += e.data.byteLength));
    const ended = waitFor<string>((resolve) => session.on('agent_end', (_ctx, _agent, text) => resolve(text)));
    await session.connect({ apiKey: KEY });
    session.sendMessage('say: Hello from the agents SDK test.');
    expect(await ended).toBe('Hello from the agents SDK test.');
    expect(audioBytes).toBeGreaterThan(30 * 60 * 48 * 0.9);
    const conn = sim.connections[sim.connections.length - 1]!;
    expect(conn.headers['authorization']).toBe(`Bearer ${KEY}`);
    // The SDK's initial session.update (semantic VAD, transcription) was accepted, not refused.
    const updates = conn.received.filter((r) => r.type === 'session.update');
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(conn.sent.filter((s) => s.type === 'session.updated').length).toBe(updates.length);
    expect(conn.sent.some((s) => s.type === 'error')).toBe(false);
    const assistant = session.history.find((h) => h.type === 'message' && h.role === 'assistant');
    expect(assistant).toBeDefined();
    expect(errors).toEqual([]);
    session.close();
  });

  it('@openai/agents-realtime completes a turn from microphone audio (semantic VAD, transcription, retrieve)', async () => {
    const transport = new OpenAIRealtimeWebSocket({ url: `${sim.url}?model=gpt-realtime` });
    const session = new RealtimeSession(new RealtimeAgent({ name: 'Ears', instructions: 'Listen.' }), { transport });
    const errors: unknown[] = [];
    session.on('error', (e) => errors.push(e));
    const ended = waitFor<string>((resolve) => session.on('agent_end', (_ctx, _agent, text) => resolve(text)));
    await session.connect({ apiKey: KEY });
    const pcm = concatPcm([silence(300), synthesizeSpeech('what is the weather like today'), silence(900)]);
    for (let i = 0; i < pcm.length; i += 2400) {
      const chunk = pcm.slice(i, i + 2400);
      session.sendAudio(chunk.buffer);
    }
    expect(await ended).toMatch(/^I heard you speak for \d\.\d seconds\.$/);
    const conn = sim.connections[sim.connections.length - 1]!;
    // The SDK retrieves the user item after its transcription completes.
    await vi.waitFor(() => expect(conn.sent.some((x) => x.type === 'conversation.item.retrieved')).toBe(true));
    const user = session.history.find((h) => h.type === 'message' && h.role === 'user');
    expect(JSON.stringify(user)).toContain('s of audio)');
    expect(errors).toEqual([]);
    session.close();
  });

  it('@openai/agents-realtime handles a barge-in: server cancels, SDK truncates what was played', async () => {
    const slow = await startSimulator({ timing: { deltaIntervalMs: 20 } });
    try {
      const transport = new OpenAIRealtimeWebSocket({ url: `${slow.url}?model=gpt-realtime` });
      const session = new RealtimeSession(new RealtimeAgent({ name: 'Talker', instructions: 'Talk.' }), { transport });
      const errors: unknown[] = [];
      session.on('error', (e) => errors.push(e));
      const interrupted = waitFor<void>((resolve) => session.on('audio_interrupted', () => resolve()));
      const firstAudio = waitFor<void>((resolve) => session.on('audio', () => resolve()));
      await session.connect({ apiKey: 'any' });
      session.sendMessage('say: ' + 'This is a long answer that the user will interrupt. '.repeat(5));
      await firstAudio;
      const pcm = concatPcm([synthesizeSpeech('wait stop'), silence(700)]);
      for (let i = 0; i < pcm.length; i += 2400) session.sendAudio(pcm.slice(i, i + 2400).buffer);
      await interrupted;
      const conn = slow.connections[0]!;
      await vi.waitFor(() => expect(conn.sent.some((x) => x.type === 'conversation.item.truncated')).toBe(true));
      const cancelled = conn.sent.findIndex((x) => x.type === 'response.done');
      expect(cancelled).toBeGreaterThan(0);
      expect(conn.sent.some((x) => x.type === 'error')).toBe(false);
      expect(errors).toEqual([]);
      session.close();
    } finally {
      await slow.close();
    }
  });

  it('@openai/agents-realtime runs a tool call round trip', async () => {
    const transport = new OpenAIRealtimeWebSocket({ url: `${sim.url}?model=gpt-realtime-2.1` });
    let called: unknown = null;
    const weather = tool({
      name: 'get_weather',
      description: 'Weather for a city',
      parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        called = city;
        return `sunny in ${city}`;
      },
    });
    const agent = new RealtimeAgent({ name: 'Tools', instructions: 'Use tools.', tools: [weather] });
    const session = new RealtimeSession(agent, { transport });
    const texts: string[] = [];
    const second = waitFor<string>((resolve) =>
      session.on('agent_end', (_ctx, _agent, text) => {
        texts.push(text);
        if (text.startsWith('The tool returned')) resolve(text);
      }),
    );
    await session.connect({ apiKey: KEY });
    session.sendMessage('call:get_weather {"city":"Oslo"}');
    expect(await second).toBe('The tool returned sunny in Oslo.');
    expect(called).toBe('Oslo');
    const conn = sim.connections[sim.connections.length - 1]!;
    expect(conn.received.some((r) => r.type === 'conversation.item.create' && JSON.stringify(r.event).includes('function_call_output'))).toBe(true);
    session.close();
  });
});

describe('openai Node SDK (wss only)', () => {
  it('OpenAIRealtimeWS completes a turn against the simulator over TLS', async () => {
    const tls = testTls();
    const secure = await startSimulator({ apiKey: KEY, tls: { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } });
    try {
      expect(secure.url.startsWith('wss://')).toBe(true);
      const client = new OpenAI({ apiKey: KEY, baseURL: `https://127.0.0.1:${secure.port}/v1` });
      const rt = new OpenAIRealtimeWS({ model: 'gpt-realtime', options: { ca: tls.caCert } }, client);
      const errors: unknown[] = [];
      rt.on('error', (e) => errors.push(e));
      let audio = 0;
      rt.on('response.output_audio.delta', (e) => (audio += Buffer.from(e.delta, 'base64').length));
      const created = waitFor<string>((resolve) => rt.on('session.created', (e) => resolve(String(e.session.type))));
      const done = waitFor<{ status: string; transcript: string }>((resolve) =>
        rt.on('response.done', (e) => {
          const first = e.response.output?.[0];
          const part = first?.type === 'message' ? first.content[0] : undefined;
          resolve({ status: String(e.response.status), transcript: part && 'transcript' in part ? String(part.transcript) : '' });
        }),
      );
      expect(await created).toBe('realtime');
      rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: Hello over TLS.' }] } });
      rt.send({ type: 'response.create' });
      expect(await done).toEqual({ status: 'completed', transcript: 'Hello over TLS.' });
      expect(audio).toBeGreaterThan(0);
      expect(secure.connections[0]!.headers['user-agent']).toMatch(/^OpenAI\/JS/);
      expect(errors).toEqual([]);
      rt.close();
    } finally {
      await secure.close();
    }
  });
});
