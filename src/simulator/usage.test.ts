import { describe, expect, it } from 'vitest';
import { prng } from './audio.js';
import { defaultBrain, type BrainContext } from './brain.js';
import { createRealtimeSession } from './session.js';
import { buildUsage, cachedSplit, commonPrefix, usageViolations, type Segment } from './usage.js';

describe('usage', () => {
  it('splits cached tokens in multiples of 64 without exceeding any modality', () => {
    const rand = prng(42);
    for (let i = 0; i < 5000; i++) {
      const prefix = { text: Math.floor(rand() * 3000), audio: Math.floor(rand() * 3000), image: rand() < 0.2 ? Math.floor(rand() * 800) : 0 };
      const c = cachedSplit(prefix);
      const total = c.text + c.audio + c.image;
      expect(total % 64).toBe(0);
      expect(total).toBe(Math.floor((prefix.text + prefix.audio + prefix.image) / 64) * 64);
      expect(c.text).toBeLessThanOrEqual(prefix.text);
      expect(c.audio).toBeLessThanOrEqual(prefix.audio);
      expect(c.image).toBeLessThanOrEqual(prefix.image);
      expect(Math.min(c.text, c.audio, c.image)).toBeGreaterThanOrEqual(0);
      const input = { text: prefix.text + 10, audio: prefix.audio, image: prefix.image };
      expect(usageViolations(buildUsage(input, c, { text: 7, audio: 30 }))).toEqual([]);
    }
  });

  it('matches the prompt prefix segment by segment', () => {
    const seg = (key: string, text: number, audio = 0): Segment => ({ key, tokens: { text, audio, image: 0 } });
    const prev = [seg('sys', 100), seg('a', 50, 20), seg('b', 10)];
    expect(commonPrefix([seg('sys', 100), seg('a', 50, 20), seg('c', 5)], prev)).toEqual({ text: 150, audio: 20, image: 0 });
    expect(commonPrefix([seg('sys2', 100), seg('a', 50, 20)], prev)).toEqual({ text: 0, audio: 0, image: 0 });
  });

  it('flags broken usage objects', () => {
    expect(usageViolations({ total_tokens: 5, input_tokens: 3, output_tokens: 1, input_token_details: { text_tokens: 3 }, output_token_details: { text_tokens: 1 } })).toEqual(['total_tokens != input + output']);
  });
});

describe('default brain', () => {
  const ctx = (items: BrainContext['items'], audioMs = 0): BrainContext => ({
    items,
    session: createRealtimeSession('gpt-realtime', 0),
    response: { conversation: 'auto', instructions: '', output_modalities: ['audio'], max_output_tokens: 'inf', tools: [], tool_choice: 'auto', voice: 'marin', metadata: null, trigger: 'client' },
    responseId: 'resp_1',
    audioMs: () => audioMs,
  });
  const user = (text: string) => ({ id: 'item_u', type: 'message' as const, role: 'user' as const, content: [{ type: 'input_text' as const, text }] });

  it('follows say:, call:, tool outputs and audio', () => {
    expect(defaultBrain(ctx([user('say: exactly this')]))).toEqual({ text: 'exactly this' });
    expect(defaultBrain(ctx([user('call:lookup {"q":1}')]))).toEqual({ functionCall: { name: 'lookup', arguments: '{"q":1}' } });
    expect(defaultBrain(ctx([user('call:ping')]))).toEqual({ functionCall: { name: 'ping', arguments: '{}' } });
    expect(defaultBrain(ctx([{ type: 'function_call_output', call_id: 'call_1', output: '42' }]))).toEqual({ text: 'The tool returned 42.' });
    expect(defaultBrain(ctx([{ id: 'item_a', type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] }], 2345))).toEqual({ text: 'I heard you speak for 2.3 seconds.' });
    expect(defaultBrain(ctx([user('what time is it?')]))).toEqual({ text: 'Hello from the realtime simulator.' });
    expect(defaultBrain(ctx([]))).toEqual({ text: 'Hello from the realtime simulator.' });
  });
});
