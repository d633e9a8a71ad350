/**
 * Red team (metering, 2026-12-06, second pass): the gaps the first pass (redteam-money.test.ts) left.
 * An adversary with a valid tenant key and a tight cap tries to make the upstream bill more than the
 * proxy reserved or billed. Real sockets through the proxy and the simulator where the simulator can
 * play the upstream's part; the filter harness where it cannot (the simulator's items hold no content
 * while their response streams, so it bills a reference to one as empty).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { client, created, done, server, session, setup, T0, transcribed, usage } from './filter-harness.js';
import { ADMIN_KEY, spend, usageRecords, meteredProxy, until } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const proxy = (options: Parameters<typeof meteredProxy>[1] = {}): Promise<TestProxy> => meteredProxy(cleanups, options);


const sessionCreated = { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'] } };

describe('red team 2: an out-of-band reference to an item of a response still streaming', () => {
  /*
   * The filter harness. A conversation response streams a long answer (4,096 output tokens at most);
   * while it runs, the client sends out-of-band creates whose `input` is an `item_reference` to the
   * answer's item (its id came with `response.output_item.added`). The upstream reads the item as it
   * is when it reads the create: the answer so far. The estimate had no size for a model item and
   * counted the whole conversation instead, which gains the answer only at its `response.done`: each
   * create was reserved at a few tokens and read thousands.
   */
  it('admission worst_case, $0.20 cap: references to a streaming answer never take spend over the cap', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.20' });
    server(f, sessionCreated);
    client(f, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'tell a long story' }] } });
    expect(client(f, { type: 'response.create', event_id: 'c_story', response: { output_modalities: ['text'], max_output_tokens: 4096 } }).kind).toBe('continue');
    server(f, created('resp_story', { max_output_tokens: 4096, output_modalities: ['text'] }));
    const story = { id: 'item_story', object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
    server(f, { type: 'response.output_item.added', response_id: 'resp_story', output_index: 0, item: story });
    // The story streams (deltas, which metering never reads); 4,000 tokens of it are out when the creates are read.
    const admitted: number[] = [];
    for (let i = 0; i < 30; i++) {
      const v = client(f, { type: 'response.create', event_id: `oob_${i}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: 'item_story' }], metadata: { n: String(i) } } });
      if (v.kind === 'reject') continue;
      admitted.push(i);
      server(f, created(`resp_oob_${i}`, { conversation_id: null, metadata: { n: String(i) }, max_output_tokens: 1, output_modalities: ['text'] }));
    }
    // What the upstream bills each: the 4,000 tokens of the story so far (+ framing) read, one token out.
    for (const i of admitted) server(f, done(`resp_oob_${i}`, usage(4_010, 0, 1, 0), 'completed', { conversation_id: null, metadata: { n: String(i) }, output_modalities: ['text'] }));
    server(f, done('resp_story', usage(20, 0, 4096, 0), 'incomplete', { output_modalities: ['text'], output: [{ ...story, status: 'incomplete' }] }));
    const spentNanos = s.records.reduce((a, r) => a + r.costNanos, 0);
    // worst_case admission: never over the cap (old code: all 30 admitted, $0.55 against $0.20).
    expect({ admitted: admitted.length > 0, overCap: spentNanos > 200_000_000 }).toEqual({ admitted: true, overCap: false });
  });

  /*
   * The same root, in the default conversation: a create sent while a conversation response still
   * streams is refused upstream if that response is still active when the create is read, but runs
   * if it finished just before (its `response.done` on its way to the proxy): then it reads the
   * whole answer, which the estimate gains only at that done.
   */
  it('admission worst_case, $0.075 cap: a create sent just before the previous answer\'s done is reserved with that answer', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.075' });
    server(f, sessionCreated);
    client(f, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'tell a long story' }] } });
    expect(client(f, { type: 'response.create', event_id: 'c_story', response: { output_modalities: ['text'], max_output_tokens: 4096 } }).kind).toBe('continue');
    server(f, created('resp_story', { max_output_tokens: 4096, output_modalities: ['text'] }));
    // Sent while the story streams; the upstream reads it after the story is done.
    const next = client(f, { type: 'response.create', event_id: 'c_next', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    server(f, done('resp_story', usage(30, 0, 4096, 0), 'incomplete', { output_modalities: ['text'] }));
    if (next.kind !== 'reject') {
      server(f, created('resp_next', { max_output_tokens: 1, output_modalities: ['text'] }));
      // It read the conversation: the 30 tokens before and the 4,096 of the story.
      server(f, done('resp_next', usage(4_130, 0, 1, 0), 'completed', { output_modalities: ['text'] }));
    }
    const spentNanos = s.records.reduce((a, r) => a + r.costNanos, 0);
    // worst_case admission: never over the cap (old code: admitted, $0.082 against $0.075).
    expect(spentNanos).toBeLessThanOrEqual(75_000_000);
    expect(next.kind).toBe('reject');
  });
});

describe('red team 2: token caps and input transcription', () => {
  /*
   * The filter harness. A token cap (`dailyTokens`, `monthlyTokens`, `maxSessionTokens`) counts the
   * tokens a transcription's usage reports (`{type: tokens}`: gpt-4o-transcribe and its kin). When the
   * completed event never comes (the client left, the upstream dropped) or its usage cannot be read,
   * the transcription is billed by its audio length at the model's per-minute price: with 0 tokens, so
   * a token cap never saw the tokens the model reports (and OpenAI bills) for that audio.
   */
  const tenSeconds = { type: 'input_audio_buffer.append', audio: Buffer.alloc(10 * 48_000).toString('base64') };
  const pcm = (model: string) => ({ type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model } } } } });

  it.each([
    ['its completed event never comes', null],
    ['its completed event has no usage', 'absent'],
  ])('gpt-4o-transcribe, 10 s committed, %s: the estimate counts the audio tokens the model reports (at least 100)', (_name, completed) => {
    const s = setup();
    const { f } = session(s, { dailyTokens: 1_000_000, maxSessionTokens: 1_000_000 });
    server(f, pcm('gpt-4o-transcribe'));
    client(f, tenSeconds);
    client(f, { type: 'input_audio_buffer.commit' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a', previous_item_id: null });
    if (completed !== null) server(f, transcribed('item_a', undefined));
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(s.records.map((r) => [r.source, r.ref, r.estimated])).toEqual([['transcription', 'item_a', true]]);
    // 10 s of audio: at least 100 audio tokens (10 a second), as the model's own usage would report.
    expect(s.records[0]!.totalTokens).toBeGreaterThanOrEqual(100);
    expect(s.ledger.status('acme', { dayNanos: null, monthNanos: null, dayTokens: 1_000_000, monthTokens: null }, T0).day.spent.tokens).toBe(s.records[0]!.totalTokens);
  });

  it('documented: a per-minute model (whisper-1) reports seconds only, so its transcription costs dollars and no tokens', () => {
    const s = setup();
    const { f } = session(s, { dailyTokens: 1_000_000 });
    server(f, pcm('whisper-1'));
    client(f, tenSeconds);
    client(f, { type: 'input_audio_buffer.commit' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_w', previous_item_id: null });
    server(f, transcribed('item_w', { type: 'duration', seconds: 10 }));
    expect(s.records.map((r) => [r.source, r.costNanos, r.totalTokens, r.seconds])).toEqual([['transcription', 1_000_000, 0, 10]]);
  });
});

describe('red team 2: a server-VAD turn the upstream committed after the proxy stopped reading', () => {
  /*
   * Under server VAD the upstream commits the input buffer itself (speech_started, speech_stopped,
   * committed) and transcribes the turn, which OpenAI bills. Metering billed a transcription at the
   * close only for items whose `committed` it read, or for the client's own commits. A client that
   * sends a spoken turn (speech, then the silence that ends it) and closes in the same write ends the
   * session before any of the upstream's answers is read (no response runs: the relay does not
   * linger): the upstream commits and transcribes the turn, the proxy billed nothing. Repeatable, one
   * free turn per session, on as many sessions as the tenant may open.
   */
  const vadTranscribed = { type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, turn_detection: { type: 'server_vad', create_response: false } } } } };

  it('3 s of speech and the silence that ends the turn, sent with the close: the turn is billed at the close (estimated)', async () => {
    const tp = await proxy({ simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(vadTranscribed);
    await c.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(3000, 800))) c.send(ev);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    // The upstream's VAD committed the turn (it transcribes it: 3 s and the padding at $0.006/min ≥ 300,000 nanos);
    // the proxy, lingering for what the gone client's audio became, read that and cleared the rest.
    expect(upstream.sent.map((e) => e.type).filter((t) => t.startsWith('input_audio_buffer.'))).toEqual(['input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'input_audio_buffer.cleared']);
    expect(c.ofType('input_audio_buffer.committed')).toHaveLength(0);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['model'], r['settledBy'], r['estimated']])).toEqual([['transcription', 'whisper-1', 'client_gone_estimate', true]]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(300_000);
    // An upper bound, not a guess: at most the audio the client sent (3.8 s: 380,000 nanos, plus the appends' JSON framing).
    expect(records[0]!['costNanos'] as number).toBeLessThanOrEqual(390_000);
  });

  it('speech streamed first (its speech_started read), then the closing silence and the close: the turn is billed (estimated)', async () => {
    const tp = await proxy({ simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send(vadTranscribed);
    await c.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(3000, 0))) c.send(ev);
    await c.next('input_audio_buffer.speech_started', 5000);
    // Now the silence that ends the turn, and leave before the upstream's answer comes back.
    for (const ev of appendEvents(speechThenSilence(0, 800))) c.send(ev);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    expect(upstream.sent.map((e) => e.type).filter((t) => t === 'input_audio_buffer.committed')).toEqual(['input_audio_buffer.committed']);
    expect(c.ofType('input_audio_buffer.committed')).toHaveLength(0);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['model'], r['settledBy'], r['estimated']])).toEqual([['transcription', 'whisper-1', 'client_gone_estimate', true]]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(300_000);
  });

  it('control: a client streaming only silence in real time and leaving is not billed a transcription', async () => {
    const tp = await proxy();
    const c = await tp.client();
    await c.next('session.created');
    c.send(vadTranscribed);
    await c.next('session.updated');
    const silence = appendEvents(speechThenSilence(0, 1500));
    for (const ev of silence) {
      c.send(ev);
      await new Promise((r) => setTimeout(r, 100));
    }
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    expect(await usageRecords(tp.adminUrl, '?tenant=acme')).toEqual([]);
  });
});
