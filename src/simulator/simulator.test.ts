import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { concatPcm, encodeAudio, pcmToBase64, silence, startSimulator, synthesizeSpeech, usageViolations, type SimulatorHandle } from './index.js';
import { connectClient, type AnyEvent, type TestClient } from './test-client.js';
import type { RealtimeResponseUsage } from 'openai/resources/realtime/realtime';

const KEY = 'sk-sim-test-0123456789';
let sim: SimulatorHandle;

beforeAll(async () => {
  sim = await startSimulator({ apiKey: KEY });
});
afterAll(async () => {
  await sim.close();
});

async function open(query = '?model=gpt-realtime', headers: Record<string, string> = { authorization: `Bearer ${KEY}` }): Promise<TestClient> {
  const c = await connectClient(sim.url + query, { headers });
  await c.waitFor('session.created');
  return c;
}

function say(c: TestClient, text: string, response: Record<string, unknown> | null = {}): void {
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  if (response) c.send({ type: 'response.create', response });
}

function typesBetween(events: readonly AnyEvent[], from: string, to: string): string[] {
  const start = events.findIndex((e) => e.type === from);
  const end = events.findIndex((e, i) => i >= start && e.type === to);
  return events.slice(start, end + 1).map((e) => e.type);
}

function collapse(types: string[]): string[] {
  return types.filter((t, i) => !(t.endsWith('.delta') && types[i - 1] === t));
}

function usageOf(e: AnyEvent): RealtimeResponseUsage {
  return (e['response'] as { usage: RealtimeResponseUsage }).usage;
}

describe('handshake', () => {
  it('sends a realistic session.created first, with type first in every frame', async () => {
    const c = await open();
    const created = c.events[0]!;
    expect(created.type).toBe('session.created');
    expect(c.raw[0]!.startsWith('{"type":"session.created","event_id":"event_')).toBe(true);
    const session = created['session'] as Record<string, unknown>;
    expect(session).toMatchObject({
      type: 'realtime', object: 'realtime.session', model: 'gpt-realtime', output_modalities: ['audio'],
      tools: [], tool_choice: 'auto', max_output_tokens: 'inf', truncation: 'auto', tracing: null, prompt: null, include: null,
      audio: {
        input: {
          format: { type: 'audio/pcm', rate: 24000 }, transcription: null, noise_reduction: null,
          turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 200, idle_timeout_ms: null, create_response: true, interrupt_response: true },
        },
        output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'marin', speed: 1 },
      },
    });
    expect(String(session['id'])).toMatch(/^sess_/);
    expect(Number(session['expires_at'])).toBeGreaterThan(Date.now() / 1000 + 3500);
    expect(typeof session['instructions']).toBe('string');
    const conn = sim.connections[sim.connections.length - 1]!;
    expect(conn.headers['authorization']).toBe(`Bearer ${KEY}`);
    expect(conn.url).toBe('/v1/realtime?model=gpt-realtime');
    await c.close();
  });

  it('refuses a wrong key after the upgrade: error invalid_api_key, close 3000', async () => {
    const c = await connectClient(sim.url + '?model=gpt-realtime', { headers: { authorization: 'Bearer sk-wrong-key-abcdefgh' } });
    const closed = await c.closed;
    expect(closed).toEqual({ code: 3000, reason: 'invalid_request_error.invalid_api_key' });
    expect(c.events).toHaveLength(1);
    expect(c.events[0]).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_api_key', param: null, event_id: null } });
    expect(JSON.stringify(c.events[0])).not.toContain('sk-wrong-key-abcdefgh');
  });

  it('refuses a missing key: code null, close 3000', async () => {
    const c = await connectClient(sim.url + '?model=gpt-realtime');
    expect(await c.closed).toEqual({ code: 3000, reason: 'invalid_request_error' });
    expect(c.events[0]).toMatchObject({ type: 'error', error: { code: null, message: 'Missing bearer or basic authentication in header' } });
  });

  it('refuses the beta header and the beta subprotocol with 4000 beta_api_shape_disabled', async () => {
    const a = await connectClient(sim.url + '?model=gpt-realtime', { headers: { authorization: `Bearer ${KEY}`, 'OpenAI-Beta': 'realtime=v1' } });
    expect((await a.closed).code).toBe(4000);
    expect(a.events[0]).toMatchObject({ error: { code: 'beta_api_shape_disabled' } });
    const b = await connectClient(sim.url + '?model=gpt-realtime', { protocols: ['realtime', `openai-insecure-api-key.${KEY}`, 'openai-beta.realtime-v1'] });
    expect((await b.closed).code).toBe(4000);
    expect(b.events[0]).toMatchObject({ error: { code: 'beta_api_shape_disabled' } });
  });

  it('refuses a missing or unknown model with 4000', async () => {
    const a = await connectClient(sim.url, { headers: { authorization: `Bearer ${KEY}` } });
    expect((await a.closed).code).toBe(4000);
    expect(a.events[0]).toMatchObject({ error: { code: 'missing_model' } });
    const b = await connectClient(sim.url + '?model=gpt-4o-realtime-preview', { headers: { authorization: `Bearer ${KEY}` } });
    expect((await b.closed).code).toBe(4000);
    expect(b.events[0]).toMatchObject({ error: { code: 'invalid_model' } });
  });

  it('accepts dated models, the key subprotocol (answering realtime) and the Azure path', async () => {
    const a = await connectClient(sim.url + '?model=gpt-realtime-mini-2025-12-15', { protocols: ['realtime', `openai-insecure-api-key.${KEY}`] });
    expect(a.ws.protocol).toBe('realtime');
    expect((await a.waitFor('session.created'))['session']).toMatchObject({ model: 'gpt-realtime-mini-2025-12-15' });
    await a.close();
    const azureUrl = sim.url.replace('/v1/realtime', '/openai/realtime') + '?api-version=2025-08-28&deployment=my-deploy';
    const b = await connectClient(azureUrl, { headers: { 'api-key': KEY } });
    expect((await b.waitFor('session.created'))['session']).toMatchObject({ model: 'my-deploy' });
    await b.close();
  });

  it('answers upgrades with rejectUpgradeStatus', async () => {
    const s = await startSimulator({ rejectUpgradeStatus: 429 });
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(s.url + '?model=gpt-realtime');
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => {});
    });
    expect(status).toBe(429);
    await s.close();
  });

  it('echoes a client close 1000', async () => {
    const c = await open();
    expect((await c.close(1000)).code).toBe(1000);
    const conn = sim.connections[sim.connections.length - 1]!;
    expect((await conn.closed).code).toBe(1000);
  });
});

describe('validation errors keep the session open', () => {
  it('answers bad frames with the OpenAI codes and echoes event_id', async () => {
    const c = await open();
    c.send('not json');
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'invalid_json', event_id: null } });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'invalid_event', message: expect.stringContaining('Expected a text WebSocket message') } });
    c.send({ event_id: 'evt_1' });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'invalid_event', event_id: 'evt_1', message: "The 'type' field is missing." } });
    c.send({ type: 'response.make', event_id: 'evt_2' });
    const unknown = await c.waitFor('error');
    expect(unknown).toMatchObject({ error: { code: 'invalid_value', param: 'type', event_id: 'evt_2' } });
    expect(String((unknown['error'] as { message: string }).message)).toContain("'session.update'");
    c.send({ type: 'session.update', event_id: 'evt_3', session: { instructions: 'x' } });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'missing_required_parameter', param: 'session.type', event_id: 'evt_3' } });
    c.send({ type: 'session.update', session: { type: 'realtime', bogus_field: 1 } });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'unknown_parameter', param: 'session.bogus_field' } });
    c.send({ type: 'session.update', session: { type: 'realtime', temperature: 0.7 } });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'unknown_parameter', param: 'session.temperature' } });
    c.send({ type: 'input_audio_buffer.commit' });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'input_audio_buffer_commit_empty' } });
    c.send({ type: 'response.cancel' });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'response_cancel_not_active' } });
    c.send({ type: 'conversation.item.delete', item_id: 'item_nope' });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'item_not_found' } });
    c.send({ type: 'conversation.item.create', previous_item_id: 'item_nope', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
    expect(await c.waitFor('error')).toMatchObject({ error: { param: 'previous_item_id' } });
    // Still open and working.
    say(c, 'say: still here');
    const done = await c.waitFor('response.done');
    expect(done['response']).toMatchObject({ status: 'completed' });
    await c.close();
  });

  it('merges session.update partially and keeps the model', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-2.1', instructions: 'Be brief.', audio: { input: { turn_detection: { type: 'semantic_vad' }, transcription: { model: 'gpt-4o-mini-transcribe' } }, output: { speed: 1.2 } } } });
    const updated = await c.waitFor('session.updated');
    expect(updated['session']).toMatchObject({
      model: 'gpt-realtime',
      instructions: 'Be brief.',
      audio: {
        input: { turn_detection: { type: 'semantic_vad', eagerness: 'auto', create_response: true, interrupt_response: true }, transcription: { model: 'gpt-4o-mini-transcribe' }, format: { type: 'audio/pcm', rate: 24000 } },
        output: { speed: 1.2, voice: 'marin' },
      },
    });
    c.send({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 5000 } });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'integer_above_max_value', param: 'session.max_output_tokens' } });
    await c.close();
  });
});

describe('responses', () => {
  it('emits a text turn in the exact GA order', async () => {
    const c = await open();
    say(c, 'say: one two three', { output_modalities: ['text'], metadata: { turn: '1' } });
    await c.waitFor('rate_limits.updated');
    const order = collapse(typesBetween(c.events, 'conversation.item.added', 'rate_limits.updated'));
    expect(order).toEqual([
      'conversation.item.added', 'conversation.item.done', 'response.created', 'response.output_item.added',
      'conversation.item.added', 'response.content_part.added', 'response.output_text.delta', 'response.output_text.done',
      'response.content_part.done', 'conversation.item.done', 'response.output_item.done', 'response.done', 'rate_limits.updated',
    ]);
    const deltas = c.events.filter((e) => e.type === 'response.output_text.delta').map((e) => e['delta']);
    expect(deltas).toEqual(['one', ' two', ' three']);
    const created = c.events.find((e) => e.type === 'response.created')!;
    expect(created['response']).toMatchObject({ status: 'in_progress', usage: null, output_modalities: ['text'], metadata: { turn: '1' }, max_output_tokens: 'inf' });
    expect(String((created['response'] as { conversation_id: string }).conversation_id)).toMatch(/^conv_/);
    const done = c.events.find((e) => e.type === 'response.done')!;
    expect(done['response']).toMatchObject({ status: 'completed', status_details: null, metadata: { turn: '1' }, output: [{ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'one two three' }] }] });
    for (const raw of c.raw) expect(raw).toMatch(/^\{"type":"[^"]+","event_id":"event_/);
    await c.close();
  });

  it('emits an audio turn with real, variably-chunked audio and an interleaved transcript', async () => {
    const c = await open();
    const text = 'The quick brown fox jumps over the lazy dog, twice.';
    say(c, `say: ${text}`);
    await c.waitFor('response.done');
    const order = collapse(typesBetween(c.events, 'response.created', 'response.done'));
    expect(order.slice(0, 4)).toEqual(['response.created', 'response.output_item.added', 'conversation.item.added', 'response.content_part.added']);
    expect(order.slice(-6)).toEqual(['response.output_audio.done', 'response.output_audio_transcript.done', 'response.content_part.done', 'conversation.item.done', 'response.output_item.done', 'response.done']);
    expect(new Set(order.slice(4, -6))).toEqual(new Set(['response.output_audio.delta', 'response.output_audio_transcript.delta']));
    const audio = c.events.filter((e) => e.type === 'response.output_audio.delta').map((e) => Buffer.from(String(e['delta']), 'base64'));
    const sizes = new Set(audio.map((b) => b.length));
    expect(audio.length).toBeGreaterThan(3);
    expect(sizes.size).toBeGreaterThan(2);
    for (const b of audio.slice(0, -1)) {
      expect(b.length).toBeGreaterThanOrEqual(2400);
      expect(b.length).toBeLessThanOrEqual(9600);
    }
    const total = Buffer.concat(audio);
    const ms = total.length / 48;
    expect(ms).toBeGreaterThanOrEqual(text.length * 60);
    expect(ms).toBeLessThanOrEqual(text.length * 70);
    // Real signal, not silence: RMS well above the noise floor.
    const pcm = new Int16Array(total.buffer, total.byteOffset, total.length / 2);
    let sum = 0;
    for (const v of pcm) sum += v * v;
    expect(Math.sqrt(sum / pcm.length) / 32768).toBeGreaterThan(0.05);
    const transcript = c.events.filter((e) => e.type === 'response.output_audio_transcript.delta').map((e) => e['delta']).join('');
    expect(transcript).toBe(text);
    const firstAudio = c.events.findIndex((e) => e.type === 'response.output_audio.delta');
    const lastTranscript = c.events.findLastIndex((e) => e.type === 'response.output_audio_transcript.delta');
    expect(lastTranscript).toBeGreaterThan(firstAudio);
    expect(c.events.find((e) => e.type === 'response.done')!['response']).toMatchObject({ output: [{ content: [{ type: 'output_audio', transcript: text }] }] });
    await c.close();
  });

  it('keeps the usage invariants over many turns, re-billing the conversation with growing cache hits', async () => {
    const c = await open();
    const usages: RealtimeResponseUsage[] = [];
    for (let i = 0; i < 12; i++) {
      say(c, `say: Turn number ${i} of a fairly long conversation about nothing in particular.`);
      usages.push(usageOf(await c.waitFor('response.done')));
    }
    for (const u of usages) {
      expect(usageViolations(u)).toEqual([]);
      expect((u.input_token_details?.cached_tokens ?? 0) % 64).toBe(0);
      expect(u.output_token_details?.audio_tokens).toBeGreaterThan(0);
    }
    for (let i = 1; i < usages.length; i++) expect(usages[i]!.input_tokens).toBeGreaterThan(usages[i - 1]!.input_tokens!);
    expect(usages[0]!.input_token_details?.cached_tokens).toBe(0);
    expect(usages.at(-1)!.input_token_details?.cached_tokens).toBeGreaterThan(0);
    expect(usages.at(-1)!.input_token_details?.cached_tokens_details?.audio_tokens).toBeGreaterThan(0);
    await c.close();
  });

  it('respects max_output_tokens (session and per response) with status incomplete', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 20 } });
    await c.waitFor('session.updated');
    say(c, 'say: This sentence is much too long to fit into twenty output tokens of audio and text.');
    const done = await c.waitFor('response.done');
    expect(done['response']).toMatchObject({ status: 'incomplete', status_details: { type: 'incomplete', reason: 'max_output_tokens' }, max_output_tokens: 20 });
    const u = usageOf(done);
    expect(u.output_tokens).toBeLessThanOrEqual(20);
    expect(usageViolations(u)).toEqual([]);
    say(c, 'say: short', { max_output_tokens: 4096, output_modalities: ['text'] });
    expect((await c.waitFor('response.done'))['response']).toMatchObject({ status: 'completed', max_output_tokens: 4096 });
    await c.close();
  });

  it('paces audio at playback speed in realtime mode', async () => {
    const s = await startSimulator({ timing: { realtime: true } });
    const c = await connectClient(s.url + '?model=gpt-realtime');
    await c.waitFor('session.created');
    const text = 'About two seconds of paced speech here.';
    say(c, `say: ${text}`);
    const arrivals: number[] = [];
    c.ws.on('message', (d) => {
      if (d.toString().startsWith('{"type":"response.output_audio.delta"')) arrivals.push(performance.now());
    });
    await c.waitFor('response.done', 10_000);
    const audioMs = text.length * 65;
    // Deltas are released no earlier than playback time minus the 250 ms lead.
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(audioMs - 250 - 250);
    await c.close();
    await s.close();
  });

  it('cancels on response.cancel with partial usage, and refuses a second default-conversation response', async () => {
    const s = await startSimulator({ timing: { deltaIntervalMs: 10 } });
    const c = await connectClient(s.url + '?model=gpt-realtime');
    await c.waitFor('session.created');
    say(c, 'say: ' + 'A long answer that keeps going. '.repeat(8));
    await c.waitFor('response.output_audio.delta');
    c.send({ type: 'response.create', event_id: 'evt_dup' });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'conversation_already_has_active_response', event_id: 'evt_dup' } });
    c.send({ type: 'response.cancel' });
    const done = await c.waitFor('response.done');
    expect(done['response']).toMatchObject({ status: 'cancelled', status_details: { type: 'cancelled', reason: 'client_cancelled' }, output: [{ status: 'incomplete' }] });
    const u = usageOf(done);
    expect(usageViolations(u)).toEqual([]);
    expect(u.output_token_details?.audio_tokens).toBeGreaterThan(0);
    expect(u.output_token_details?.audio_tokens).toBeLessThan(200);
    // Anything the cancelled response still had scheduled would arrive before the answer to a later event.
    c.send({ type: 'input_audio_buffer.clear', event_id: 'evt_marker' });
    const marker = await c.waitFor('input_audio_buffer.cleared');
    const between = c.events.slice(c.events.indexOf(done) + 1, c.events.indexOf(marker));
    // rate_limits.updated follows response.done legitimately; nothing of the response may.
    expect(between.map((e) => e.type).filter((t) => t !== 'rate_limits.updated')).toEqual([]);
    await c.close();
    await s.close();
  });

  it('runs out-of-band responses concurrently with the default conversation', async () => {
    const s = await startSimulator({ timing: { deltaIntervalMs: 5 } });
    const c = await connectClient(s.url + '?model=gpt-realtime');
    await c.waitFor('session.created');
    say(c, 'say: main answer with several words in it');
    c.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], metadata: { job: 'a' }, input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'say: side job a' }] }] } });
    c.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], metadata: { job: 'b' } } });
    const dones: AnyEvent[] = [];
    while (dones.length < 3) dones.push(await c.waitFor('response.done'));
    const byJob = new Map(dones.map((d) => [(d['response'] as { metadata: { job?: string } | null }).metadata?.job ?? 'main', d['response'] as Record<string, unknown>]));
    expect(byJob.get('a')).toMatchObject({ status: 'completed', conversation_id: null, output: [{ content: [{ type: 'output_text', text: 'side job a' }] }] });
    expect(byJob.get('b')).toMatchObject({ status: 'completed', conversation_id: null });
    expect(byJob.get('main')).toMatchObject({ status: 'completed' });
    // Out-of-band output is not written to the conversation.
    const added = c.events.filter((e) => e.type === 'conversation.item.added').length;
    expect(added).toBe(2);
    await c.close();
    await s.close();
  });

  it('round-trips a function call', async () => {
    const c = await open();
    say(c, 'call:get_weather {"city":"Paris"}');
    const argsDone = await c.waitFor('response.function_call_arguments.done');
    expect(argsDone).toMatchObject({ name: 'get_weather', arguments: '{"city":"Paris"}' });
    const callId = String(argsDone['call_id']);
    expect(callId).toMatch(/^call_/);
    const deltas = c.events.filter((e) => e.type === 'response.function_call_arguments.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((d) => d['delta']).join('')).toBe('{"city":"Paris"}');
    const done = await c.waitFor('response.done');
    expect(done['response']).toMatchObject({ status: 'completed', output: [{ type: 'function_call', name: 'get_weather', call_id: callId, arguments: '{"city":"Paris"}', status: 'completed' }] });
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: callId, output: '{"temp":21}' } });
    c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    const second = await c.waitFor('response.done');
    expect(second['response']).toMatchObject({ output: [{ content: [{ text: 'The tool returned {"temp":21}.' }] }] });
    await c.close();
  });

  it('encodes G.711 μ-law and A-law output at 8 kHz', async () => {
    for (const type of ['audio/pcmu', 'audio/pcma'] as const) {
      const c = await open();
      c.send({ type: 'session.update', session: { type: 'realtime', audio: { output: { format: { type } } } } });
      await c.waitFor('session.updated');
      const text = 'Telephony audio sounds like this.';
      say(c, `say: ${text}`);
      const done = await c.waitFor('response.done');
      expect(done['response']).toMatchObject({ audio: { output: { format: { type } } } });
      const bytes = Buffer.concat(c.events.filter((e) => e.type === 'response.output_audio.delta').map((e) => Buffer.from(String(e['delta']), 'base64')));
      const ms = bytes.length / 8;
      expect(ms).toBeGreaterThanOrEqual(text.length * 60 - 1);
      expect(ms).toBeLessThanOrEqual(text.length * 70);
      // Silence would encode as a single repeated byte; speech spreads over many code words.
      expect(new Set(bytes).size).toBeGreaterThan(40);
      await c.close();
    }
  });

  it('truncates, retrieves and deletes items', async () => {
    const c = await open();
    say(c, 'say: Twelve words of speech to be truncated half way through by the client.');
    const done = await c.waitFor('response.done');
    const item = (done['response'] as { output: Array<{ id: string }> }).output[0]!;
    c.send({ type: 'conversation.item.truncate', item_id: item.id, content_index: 0, audio_end_ms: 1000 });
    expect(await c.waitFor('conversation.item.truncated')).toMatchObject({ item_id: item.id, content_index: 0, audio_end_ms: 1000 });
    c.send({ type: 'conversation.item.retrieve', item_id: item.id });
    const retrieved = await c.waitFor('conversation.item.retrieved');
    const part = (retrieved['item'] as { content: Array<{ audio: string; transcript: string }> }).content[0]!;
    expect(Buffer.from(part.audio, 'base64').length).toBe(48_000);
    expect(part.transcript.length).toBeLessThan(40);
    expect(part.transcript.length).toBeGreaterThan(5);
    c.send({ type: 'conversation.item.truncate', item_id: item.id, content_index: 0, audio_end_ms: 5000 });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'invalid_value', param: 'audio_end_ms' } });
    c.send({ type: 'conversation.item.delete', item_id: item.id });
    expect(await c.waitFor('conversation.item.deleted')).toMatchObject({ item_id: item.id });
    await c.close();
  });
});

describe('audio input', () => {
  const speech = (ms: number): Int16Array => synthesizeSpeech('x'.repeat(Math.round(ms / 65)) , { msPerChar: 65 });

  async function appendPcm(c: TestClient, pcm: Int16Array, chunkMs = 100): Promise<void> {
    const per = 24 * chunkMs;
    for (let i = 0; i < pcm.length; i += per) c.send({ type: 'input_audio_buffer.append', audio: pcmToBase64(pcm.subarray(i, i + per)) });
  }

  it('detects a spoken turn with server VAD, transcribes it and answers', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } } } });
    await c.waitFor('session.updated');
    await appendPcm(c, concatPcm([silence(500), synthesizeSpeech('hello there, this is the user speaking'), silence(800)]));
    const started = await c.waitFor('input_audio_buffer.speech_started');
    const stopped = await c.waitFor('input_audio_buffer.speech_stopped');
    // Like OpenAI: audio_start_ms includes prefix_padding_ms (300) before the onset at ~500 ms;
    // audio_end_ms includes silence_duration_ms (200) after the last voiced frame.
    expect(Number(started['audio_start_ms'])).toBeGreaterThanOrEqual(480 - 300);
    expect(Number(started['audio_start_ms'])).toBeLessThanOrEqual(560 - 300);
    const spokenMs = 'hello there, this is the user speaking'.length * 65;
    expect(Number(stopped['audio_end_ms'])).toBeGreaterThan(500 + spokenMs - 100 + 200);
    expect(Number(stopped['audio_end_ms'])).toBeLessThanOrEqual(500 + spokenMs + 40 + 200);
    expect(stopped['item_id']).toBe(started['item_id']);
    const committed = await c.waitFor('input_audio_buffer.committed');
    expect(committed['item_id']).toBe(started['item_id']);
    const added = await c.waitFor('conversation.item.added');
    expect(added['item']).toMatchObject({ id: started['item_id'], role: 'user', content: [{ type: 'input_audio', transcript: null }] });
    const completed = await c.waitFor('conversation.item.input_audio_transcription.completed');
    expect(completed['usage']).toMatchObject({ type: 'tokens', input_token_details: { text_tokens: 0 } });
    expect(String(completed['transcript'])).toMatch(/^\(\d+\.\d s of audio\)$/);
    const done = await c.waitFor('response.done');
    const transcript = (done['response'] as { output: Array<{ content: Array<{ transcript: string }> }> }).output[0]!.content[0]!.transcript;
    expect(transcript).toMatch(/^I heard you speak for \d\.\d seconds\.$/);
    expect(usageOf(done).input_token_details?.audio_tokens).toBeGreaterThan(20);
    await c.close();
  });

  it('interrupts the active response when the user starts speaking (turn_detected)', async () => {
    const s = await startSimulator({ timing: { deltaIntervalMs: 10 } });
    const c = await connectClient(s.url + '?model=gpt-realtime');
    await c.waitFor('session.created');
    say(c, 'say: ' + 'I will keep talking for quite a while now. '.repeat(6));
    await c.waitFor('response.output_audio.delta');
    await appendPcm(c, concatPcm([speech(600), silence(400)]));
    await c.waitFor('input_audio_buffer.speech_started');
    const cancelled = await c.waitFor('response.done');
    expect(cancelled['response']).toMatchObject({ status: 'cancelled', status_details: { type: 'cancelled', reason: 'turn_detected' } });
    // The new turn then gets its own response.
    const next = await c.waitFor('response.done');
    expect(next['response']).toMatchObject({ status: 'completed' });
    await c.close();
    await s.close();
  });

  it('commits by hand with turn_detection null and clears the buffer', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.waitFor('session.updated');
    await appendPcm(c, speech(700));
    c.send({ type: 'input_audio_buffer.commit' });
    const committed = await c.waitFor('input_audio_buffer.committed');
    await c.waitFor('conversation.item.done');
    expect(c.events.some((e) => e.type === 'input_audio_buffer.speech_started')).toBe(false);
    await appendPcm(c, speech(300));
    c.send({ type: 'input_audio_buffer.clear' });
    await c.waitFor('input_audio_buffer.cleared');
    c.send({ type: 'input_audio_buffer.commit' });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'input_audio_buffer_commit_empty' } });
    c.send({ type: 'response.create' });
    const done = await c.waitFor('response.done');
    expect(done['response']).toMatchObject({ status: 'completed' });
    c.send({ type: 'conversation.item.retrieve', item_id: committed['item_id'] });
    const retrieved = await c.waitFor('conversation.item.retrieved');
    const audio = (retrieved['item'] as { content: Array<{ audio: string }> }).content[0]!.audio;
    expect(Buffer.from(audio, 'base64').length).toBe(speech(700).length * 2);
    await c.close();
  });

  it('runs VAD on G.711 μ-law input', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
    await c.waitFor('session.updated');
    const ulaw = encodeAudio(concatPcm([silence(400), synthesizeSpeech('a caller on the phone line'), silence(600)]), 'pcmu');
    for (let i = 0; i < ulaw.length; i += 160) c.send({ type: 'input_audio_buffer.append', audio: ulaw.subarray(i, i + 160).toString('base64') });
    await c.waitFor('input_audio_buffer.speech_stopped');
    const done = await c.waitFor('response.done');
    const transcript = (done['response'] as { output: Array<{ content: Array<{ transcript: string }> }> }).output[0]!.content[0]!.transcript;
    // 26 characters of speech (1.69 s) plus the 300 ms prefix padding and the 200 ms silence window.
    expect(transcript).toBe('I heard you speak for 2.2 seconds.');
    await c.close();
  });

  it('fires idle_timeout_ms after a response when the user stays silent', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: { type: 'server_vad', idle_timeout_ms: 5000 } } } } });
    await c.waitFor('session.updated');
    say(c, 'say: are you still there?');
    await c.waitFor('response.done');
    const timeout = await c.waitFor('input_audio_buffer.timeout_triggered', 8000);
    const committed = await c.waitFor('input_audio_buffer.committed');
    expect(committed['item_id']).toBe(timeout['item_id']);
    const created = await c.waitFor('response.created');
    expect(created['response']).toMatchObject({ status: 'in_progress' });
    await c.waitFor('response.done');
    await c.close();
  }, 15_000);

  it('serves transcription-only sessions (intent=transcription)', async () => {
    const c = await open('?intent=transcription');
    expect(c.events[0]!['session']).toMatchObject({ type: 'transcription', object: 'realtime.transcription_session' });
    c.send({ type: 'session.update', session: { type: 'transcription', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } });
    await c.waitFor('session.updated');
    await appendPcm(c, concatPcm([speech(800), silence(500)]));
    await c.waitFor('conversation.item.input_audio_transcription.completed');
    expect(c.events.some((e) => e.type === 'response.created')).toBe(false);
    c.send({ type: 'response.create' });
    expect(await c.waitFor('error')).toMatchObject({ error: { param: 'type' } });
    await c.close();
  });
});

describe('fault hooks', () => {
  it('freeze stops events and pongs; drop and dropAfterDeltas cut the TCP connection', async () => {
    const c = await open();
    const frozen = sim.connections[sim.connections.length - 1]!;
    frozen.freeze();
    const before = c.events.length;
    say(c, 'say: nobody will answer');
    let ponged = false;
    c.ws.on('pong', () => (ponged = true));
    c.ws.ping();
    // The bound: a ping sent later on a live connection of the same simulator is answered.
    const live = await open();
    await new Promise<void>((resolve) => {
      live.ws.once('pong', () => resolve());
      live.ws.ping();
    });
    say(live, 'say: I am alive');
    await live.waitFor('response.done');
    expect(ponged).toBe(false);
    expect(c.events.length).toBe(before);
    c.ws.terminate();
    live.ws.terminate();

    const d = await open();
    sim.connections[sim.connections.length - 1]!.drop();
    expect((await d.closed).code).toBe(1006);

    const e = await open();
    sim.connections[sim.connections.length - 1]!.dropAfterDeltas(2);
    say(e, 'say: this answer is long enough to need more than two audio deltas for sure');
    expect((await e.closed).code).toBe(1006);
    expect(e.events.filter((x) => x.type === 'response.output_audio.delta')).toHaveLength(2);
    expect(e.events.some((x) => x.type === 'response.done')).toBe(false);

    const f = await open();
    sim.connections[sim.connections.length - 1]!.closeWith(1011, 'upstream bug');
    expect(await f.closed).toEqual({ code: 1011, reason: 'upstream bug' });
  });

  it('pings clients every pingIntervalMs and lets tests swap the brain', async () => {
    const s = await startSimulator({ pingIntervalMs: 30 });
    s.onConnection((conn) => conn.setBrain(() => ({ text: 'custom brain', usage: { total_tokens: 3, input_tokens: 2, output_tokens: 1, input_token_details: { text_tokens: 2, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } }, output_token_details: { text_tokens: 1, audio_tokens: 0 } } })));
    const c = await connectClient(s.url + '?model=gpt-realtime');
    let pings = 0;
    c.ws.on('ping', () => pings++);
    await c.waitFor('session.created');
    say(c, 'hi', { output_modalities: ['text'] });
    const done = await c.waitFor('response.done');
    expect(done['response']).toMatchObject({ output: [{ content: [{ text: 'custom brain' }] }], usage: { total_tokens: 3 } });
    await vi.waitFor(() => expect(pings).toBeGreaterThanOrEqual(2), { timeout: 5000, interval: 10 });
    expect(s.connections[0]!.received.map((r) => r.type)).toEqual(['conversation.item.create', 'response.create']);
    expect(s.connections[0]!.sent.filter((x) => x.responseId !== null).length).toBeGreaterThan(5);
    await c.close();
    await s.close();
  });
});

describe('conversation and session rules', () => {
  it('places items by previous_item_id, including root', async () => {
    const c = await open();
    const create = (id: string, previous?: string) =>
      c.send({ type: 'conversation.item.create', ...(previous ? { previous_item_id: previous } : {}), item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: id }] } });
    create('item_a');
    create('item_c');
    create('item_b', 'item_a');
    create('item_0', 'root');
    const added: AnyEvent[] = [];
    while (added.length < 4) added.push(await c.waitFor('conversation.item.added'));
    expect(added.map((e) => [(e['item'] as { id: string }).id, e['previous_item_id']])).toEqual([
      ['item_a', null], ['item_c', 'item_a'], ['item_b', 'item_a'], ['item_0', null],
    ]);
    create('item_a');
    expect(await c.waitFor('error')).toMatchObject({ error: { param: 'item.id' } });
    // A response over a custom input sees only the referenced item.
    c.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], input: [{ type: 'item_reference', id: 'item_b' }] } });
    expect((await c.waitFor('response.done'))['response']).toMatchObject({ status: 'completed' });
    await c.close();
  });

  it('locks the voice once assistant audio exists', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'cedar' } } } });
    expect((await c.waitFor('session.updated'))['session']).toMatchObject({ audio: { output: { voice: 'cedar' } } });
    say(c, 'say: now there is audio');
    await c.waitFor('response.done');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'marin' } } } });
    expect(await c.waitFor('error')).toMatchObject({ error: { code: 'cannot_update_voice' } });
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'cedar' } }, truncation: { type: 'retention_ratio', retention_ratio: 0.8 } } });
    expect((await c.waitFor('session.updated'))['session']).toMatchObject({ truncation: { type: 'retention_ratio', retention_ratio: 0.8 } });
    await c.close();
  });

  it('turns brain failures into failed responses and keeps serving', async () => {
    const s = await startSimulator();
    let calls = 0;
    s.onConnection((conn) =>
      conn.setBrain(() => {
        calls++;
        if (calls === 1) return { fail: { code: 'rate_limit_exceeded', message: 'busy' } };
        if (calls === 2) throw new Error('boom');
        return { text: 'fine' };
      }),
    );
    const c = await connectClient(s.url + '?model=gpt-realtime');
    await c.waitFor('session.created');
    c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    const first = await c.waitFor('response.done');
    expect(first['response']).toMatchObject({ status: 'failed', status_details: { type: 'failed', error: { code: 'rate_limit_exceeded', message: 'busy' } } });
    c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    const second = await c.waitFor('response.done');
    expect(second['response']).toMatchObject({ status: 'failed', status_details: { error: { code: 'server_error' } } });
    expect(usageViolations(usageOf(second))).toEqual([]);
    c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    expect((await c.waitFor('response.done'))['response']).toMatchObject({ status: 'completed', output: [{ content: [{ text: 'fine' }] }] });
    await c.close();
    await s.close();
  });
});

describe('held bytes: one budget across sessions (maxHeldBytes)', () => {
  const BUDGET = 1024 * 1024;
  /** 600 KiB of PCM (12.8 s), in one append: more than half the budget. */
  const CHUNK = Buffer.alloc(600 * 1024, 7).toString('base64');
  const MEMORY_EXCEEDED = `The server holds at most ${BUDGET} bytes of conversation and input audio across its sessions; past it, the session holding the most is ended: this one.`;
  let small: SimulatorHandle;
  beforeAll(async () => {
    small = await startSimulator({ apiKey: KEY, maxHeldBytes: BUDGET });
  });
  afterAll(async () => {
    await small.close();
  });

  /** A session without turn detection: its appends stay in the input buffer until a commit. */
  async function holding(): Promise<TestClient> {
    const c = await connectClient(`${small.url}?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
    await c.waitFor('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.waitFor('session.updated');
    return c;
  }

  /** A marker the session answers after everything sent before it. */
  async function marker(c: TestClient, n: number): Promise<void> {
    c.send({ type: 'session.update', session: { type: 'realtime', instructions: `marker ${n}` } });
    await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as { instructions?: string }).instructions === `marker ${n}`);
  }

  it('the session whose append goes past it gets an error and close 1011; the other goes on, and room comes back', async () => {
    const first = await holding();
    first.send({ type: 'input_audio_buffer.append', audio: CHUNK });
    await marker(first, 1);
    const second = await holding();
    const before = second.events.length;
    second.send({ type: 'input_audio_buffer.append', audio: CHUNK });
    const close = await second.closed;
    expect(close).toEqual({ code: 1011, reason: 'session_memory_exceeded' });
    // Every byte it got after its update: the error, nothing else.
    expect(second.events.slice(before)).toEqual([
      {
        type: 'error',
        event_id: expect.any(String) as string,
        error: {
          type: 'server_error',
          code: 'session_memory_exceeded',
          message: MEMORY_EXCEEDED,
          param: null,
          event_id: null,
        },
      },
    ]);
    // The first goes on: its audio is still there to commit.
    first.send({ type: 'input_audio_buffer.commit' });
    const committed = await first.waitFor('conversation.item.done');
    expect(first.events.filter((e) => e.type === 'error')).toEqual([]);
    expect((committed['item'] as { type: string }).type).toBe('message');
    // The second's bytes left the budget with it: a third session holds as much as it did.
    const third = await holding();
    third.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(300 * 1024, 7).toString('base64') });
    await marker(third, 2);
    expect(third.events.filter((e) => e.type === 'error')).toEqual([]);
    await Promise.all([first.close(), third.close()]);
  });

  // Red team 2026-12-07 (b24): the session whose growth crossed the budget ended, however little it
  // held: one session kept just under the budget, and every other session's first append ended that
  // other session. The one holding the most pays now.
  it('past it, the session holding the most ends, not a small one whose append crossed it', async () => {
    const hog = await holding();
    hog.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(1000 * 1024, 7).toString('base64') });
    await marker(hog, 10);
    const hogBefore = hog.events.length;
    const small = await holding();
    const smallBefore = small.events.length;
    small.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(32 * 1024, 7).toString('base64') });
    expect(await hog.closed).toEqual({ code: 1011, reason: 'session_memory_exceeded' });
    expect(hog.events.slice(hogBefore)).toEqual([
      {
        type: 'error',
        event_id: expect.any(String) as string,
        error: { type: 'server_error', code: 'session_memory_exceeded', message: MEMORY_EXCEEDED, param: null, event_id: null },
      },
    ]);
    // The small one goes on, its audio kept: every byte it got after its update is the commit's answer.
    await marker(small, 11);
    small.send({ type: 'input_audio_buffer.commit' });
    await small.waitFor('conversation.item.done');
    expect(small.events.slice(smallBefore).filter((e) => e.type === 'error')).toEqual([]);
    expect(small.events.slice(smallBefore).map((e) => e.type)).toEqual(['session.updated', 'input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done']);
    await small.close();
  });

  it('a closed session gives its bytes back: sessions one after the other never reach it', async () => {
    for (let i = 0; i < 4; i++) {
      const c = await holding();
      c.send({ type: 'input_audio_buffer.append', audio: CHUNK });
      await marker(c, i);
      expect(c.events.filter((e) => e.type === 'error')).toEqual([]);
      await c.close();
    }
  });
});
