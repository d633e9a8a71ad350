import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { observeSentEvents, startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { appendEvents, speechThenSilence, TestClient, type ReceivedEvent } from '../support/client.js';
import { serverEventSchemas, serverEventViolations, type ContractViolation } from './server-events.js';

/**
 * The simulator held to the SDK: representative sessions (text, voice with VAD, tools, MCP,
 * transcription with token and duration usage, transcription failure, cancel, truncate, retrieve,
 * delete, client errors, expiry), every event the simulator sends validated against the `openai`
 * package's server event types. (Every other test file is validated the same way by
 * test/support/setup.ts; this file makes the coverage explicit.)
 */

let sim: SimulatorHandle;
const seen = new Map<string, number>();
const violations: ContractViolation[] = [];
let stopObserving: () => void = () => undefined;

beforeAll(async () => {
  stopObserving = observeSentEvents((event) => {
    const type = String((event as { type?: unknown }).type);
    seen.set(type, (seen.get(type) ?? 0) + 1);
    if (violations.length < 50) violations.push(...serverEventViolations(event));
  });
  sim = await startSimulator({
    transcribe: ({ audioMs }) => {
      if (audioMs > 5000) throw new Error('too long for this transcriber');
      return `(${(audioMs / 1000).toFixed(1)} s of audio)`;
    },
  });
});
afterAll(async () => {
  stopObserving();
  await sim.close();
});

async function open(query = 'model=gpt-realtime'): Promise<TestClient> {
  const c = new TestClient(`${sim.url}?${query}`);
  await c.next('session.created');
  return c;
}

const errorCode = (e: ReceivedEvent) => (e['error'] as { code?: string }).code;

describe('the validator', () => {
  it('rejects what the SDK types reject (so a passing contract means something)', () => {
    const good = { type: 'input_audio_buffer.speech_stopped', event_id: 'event_1', item_id: 'item_1', audio_end_ms: 1200 };
    expect(serverEventViolations(good)).toEqual([]);
    expect(serverEventViolations({ ...good, audio_end_ms: '1200' })).not.toEqual([]);
    expect(serverEventViolations({ ...good, audio_end_ms: -1 })).not.toEqual([]);
    expect(serverEventViolations({ ...good, extra: true })).not.toEqual([]);
    expect(serverEventViolations({ type: 'input_audio_buffer.speech_stopped', event_id: 'event_1', item_id: 'item_1' })).not.toEqual([]);
    expect(serverEventViolations({ ...good, type: 'no.such.event' })).not.toEqual([]);
    const usage = { type: 'conversation.item.input_audio_transcription.completed', event_id: 'e', item_id: 'i', content_index: 0, transcript: 't' };
    expect(serverEventViolations({ ...usage, usage: { type: 'duration', seconds: 1.5 } })).toEqual([]);
    expect(serverEventViolations({ ...usage, usage: { type: 'duration', seconds: 1.5, input_tokens: 3 } })).not.toEqual([]);
  });

  it('has one schema per SDK server event type', () => {
    // The mapped type enforces this at compile time; at run time every key is a distinct type.
    expect(Object.keys(serverEventSchemas).length).toBeGreaterThanOrEqual(46);
  });
});

describe('representative sessions', () => {
  it('text, function call, out-of-band, cancel, truncate, retrieve, delete and client errors', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object' } }] } });
    await c.next('session.updated');
    c.say('say: hello');
    await c.nth('response.done', 1);
    c.say('call:get_weather {"city":"Paris"}');
    const call = await c.next('response.function_call_arguments.done');
    await c.nth('response.done', 2);
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: call['call_id'], output: '{"temp":21}' } });
    c.send({ type: 'response.create' });
    await c.nth('response.done', 3);
    c.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], metadata: { purpose: 'classify' } } });
    await c.nth('response.done', 4);
    c.say('say: a long answer that will be cancelled before it can finish speaking all of these words', { output_modalities: ['audio'] });
    await c.next('response.output_audio.delta');
    c.send({ type: 'response.cancel' });
    await c.nth('response.done', 5);
    const audioItem = c.ofType('response.output_item.done').at(-1)!['item'] as { id: string };
    c.send({ type: 'conversation.item.truncate', item_id: audioItem.id, content_index: 0, audio_end_ms: 100 });
    await c.next('conversation.item.truncated');
    c.send({ type: 'conversation.item.retrieve', item_id: audioItem.id });
    await c.next('conversation.item.retrieved');
    c.send({ type: 'conversation.item.delete', item_id: audioItem.id });
    await c.next('conversation.item.deleted');
    c.send({ type: 'response.cancel', event_id: 'evt_nothing' });
    c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_empty' });
    c.send('{"type":');
    await c.nth('error', 3);
    c.send({ type: 'input_audio_buffer.clear' });
    await c.next('input_audio_buffer.cleared');
    await c.next('rate_limits.updated');
    c.close();
    expect(violations).toEqual([]);
  });

  it('a spoken turn with server VAD and token-billed transcription', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } } } });
    await c.next('session.updated');
    for (const e of appendEvents(speechThenSilence(800, 800), 100)) c.send(e);
    const started = await c.next('input_audio_buffer.speech_started');
    const stopped = await c.next('input_audio_buffer.speech_stopped');
    // OpenAI's numbers: start includes prefix_padding_ms (300), end the silence window (200).
    expect(started['audio_start_ms']).toBe(0);
    expect(stopped['audio_end_ms']).toBeGreaterThanOrEqual(800 + 200);
    expect(stopped['audio_end_ms']).toBeLessThanOrEqual(800 + 20 + 200);
    const completed = await c.next('conversation.item.input_audio_transcription.completed');
    expect((completed['usage'] as { type: string }).type).toBe('tokens');
    await c.next('response.done');
    c.close();
    expect(violations).toEqual([]);
  });

  it('whisper-1 reports duration usage; a failing transcriber reports transcription.failed and the session goes on', async () => {
    const c = await open();
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { transcription: { model: 'whisper-1' }, turn_detection: null } } } });
    await c.next('session.updated');
    for (const e of appendEvents(speechThenSilence(1000, 0), 100)) c.send(e);
    c.send({ type: 'input_audio_buffer.commit' });
    const completed = await c.next('conversation.item.input_audio_transcription.completed');
    expect(completed['usage']).toEqual({ type: 'duration', seconds: 1 });
    // Over 5 s: this test's transcriber throws.
    for (const e of appendEvents(speechThenSilence(6000, 0), 500)) c.send(e);
    c.send({ type: 'input_audio_buffer.commit' });
    const failed = await c.next('conversation.item.input_audio_transcription.failed');
    expect(failed['error']).toMatchObject({ type: 'transcription_error', code: 'audio_unintelligible' });
    c.say('say: still here');
    await c.next('response.done');
    c.close();
    expect(violations).toEqual([]);
  });

  it('MCP: tools listed for a reachable server, a failed listing for an unreachable one, calls that complete and fail', async () => {
    const c = await open();
    c.send({
      type: 'session.update',
      session: {
        type: 'realtime',
        output_modalities: ['text'],
        tools: [
          { type: 'mcp', server_label: 'docs', server_url: 'https://mcp.example.test/sse', allowed_tools: ['search'], require_approval: 'never' },
          { type: 'mcp', server_label: 'nowhere' },
        ],
      },
    });
    await c.next('session.updated');
    const listed = await c.next('mcp_list_tools.completed');
    const failed = await c.next('mcp_list_tools.failed');
    expect(listed['item_id']).not.toBe(failed['item_id']);
    const done = await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { type: string }).type === 'mcp_list_tools');
    expect(done['item']).toMatchObject({ type: 'mcp_list_tools', server_label: 'docs', tools: [{ name: 'search' }] });
    c.say('mcp:docs search {"q":"realtime"}');
    await c.next('response.mcp_call.completed');
    const first = await c.nth('response.done', 1);
    expect((first['response'] as { output: unknown[] }).output).toMatchObject([{ type: 'mcp_call', server_label: 'docs', name: 'search', arguments: '{"q":"realtime"}', output: '{"q":"realtime"}' }]);
    c.say('mcp:docs delete_everything {}');
    await c.next('response.mcp_call.failed');
    const second = await c.nth('response.done', 2);
    expect((second['response'] as { output: unknown[] }).output).toMatchObject([{ type: 'mcp_call', error: { type: 'protocol_error' } }]);
    c.close();
    expect(violations).toEqual([]);
  });

  it('a transcription session, handshake refusals and session expiry', async () => {
    const t = await open('intent=transcription');
    t.close();
    const refused = new TestClient(`${sim.url}?model=gpt-9`);
    expect(errorCode(await refused.next('error'))).toBe('invalid_model');
    const s = await startSimulator({ maxSessionMs: 300 });
    try {
      const c = new TestClient(`${s.url}?model=gpt-realtime`);
      const created = await c.next('session.created');
      const session = created['session'] as { expires_at: number };
      expect(session.expires_at).toBeGreaterThan(0);
      const expired = await c.next('error', 5000);
      expect(expired['error']).toMatchObject({ type: 'invalid_request_error', code: 'session_expired', param: null, event_id: null });
      expect((await c.closed).code).toBe(1001);
    } finally {
      await s.close();
    }
    expect(violations).toEqual([]);
  });

  it('covered every server event type the simulator can send over a WebSocket', () => {
    const notOnWebSocket = [
      'output_audio_buffer.started', 'output_audio_buffer.stopped', 'output_audio_buffer.cleared', // WebRTC/SIP only
      'input_audio_buffer.dtmf_event_received', // SIP only
      'conversation.item.input_audio_transcription.segment', // diarizing transcribers (not simulated)
      'conversation.created', 'conversation.item.created', // beta names, not sent by the GA API
      'input_audio_buffer.timeout_triggered', // idle_timeout_ms ≥ 5 s: src/simulator/simulator.test.ts covers it
    ];
    const expected = Object.keys(serverEventSchemas).filter((t) => !notOnWebSocket.includes(t)).sort();
    expect([...seen.keys()].filter((t) => expected.includes(t)).sort()).toEqual(expected);
    expect(violations).toEqual([]);
  });
});
