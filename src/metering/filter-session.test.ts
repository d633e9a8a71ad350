/**
 * The metering filter over one session's life, without sockets: what each reservation holds (the
 * conversation it reads, the prompt, the output limit), clamps, model switches, unpriced models,
 * the end of a session (grace, estimates) and the session-end log.
 */
import { describe, expect, it, vi } from 'vitest';
import { appendFrame, client, created, done, json, server, session, setup, T0, usage, type Setup } from '../../test/metering/filter-harness.js';
import type { Filter } from '../pipeline/filter.js';
import { audioTokensOfBase64 } from './context.js';
import { NO_CAPS } from './limits.js';

const CAPPED = { dailyUsd: '1000' };
const caps = { ...NO_CAPS, dayNanos: 1 };
const reserved = (s: Setup) => s.ledger.status('acme', caps, T0).day.reserved;

// gpt-realtime, nano-dollars per token: text in 4,000, audio in 32,000, image in 5,000, text out 16,000, audio out 64,000.
const BARE = { nanos: 8 * 4_000 + 4096 * 64_000, tokens: 8 + 4096 };

let seq = 0;
/** What a response.create would reserve now (the create is then refused upstream, freeing it). */
function probe(s: Setup, f: Filter, response: Record<string, unknown> = {}): { nanos: number; tokens: number } {
  const id = `probe_${++seq}`;
  const before = reserved(s);
  const v = client(f, { type: 'response.create', event_id: id, response });
  expect(['continue', 'replace']).toContain(v.kind);
  const after = reserved(s);
  server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: id } });
  expect(reserved(s)).toEqual(before);
  return { nanos: after.nanos - before.nanos, tokens: after.tokens - before.tokens };
}

const text = (s: string) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: s }] });

describe('metering filter: what a reservation holds', () => {
  it('a bare create reserves the prompt framing plus the model maximum output at the audio rate', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    expect(probe(s, f)).toEqual(BARE);
  });

  it('items the client adds count at one token per byte; an item create without an item adds nothing', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    client(f, { type: 'conversation.item.create', item: text('x'.repeat(1000)) });
    client(f, { type: 'conversation.item.create' });
    expect(probe(s, f)).toEqual({ nanos: BARE.nanos + 1008 * 4_000, tokens: BARE.tokens + 1008 });
  });

  it('appended audio counts once committed (G.711 density until the format is known; PCM16 after); a clear drops it', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    const chars = 64_000; // 48,000 bytes: 6 s of G.711 (60 tokens), 1 s of PCM16 (10 tokens)
    f.onClient!(appendFrame('A'.repeat(chars)));
    client(f, { type: 'input_audio_buffer.clear' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_0' });
    // The empty commit: one item's framing (8 text, 8 audio).
    expect(probe(s, f)).toEqual({ nanos: BARE.nanos + 8 * 4_000 + 8 * 32_000, tokens: BARE.tokens + 16 });
    f.onClient!(appendFrame('A'.repeat(chars)));
    server(f, { type: 'input_audio_buffer.cleared' });
    f.onClient!(appendFrame('A'.repeat(chars)));
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1' });
    // The append frame is counted whole (never parsed): its JSON wrapper makes it a little longer.
    const size = appendFrame('A'.repeat(chars)).size;
    const g711 = audioTokensOfBase64(size, 8);
    const pcm16 = audioTokensOfBase64(size, 48);
    expect([g711, pcm16]).toEqual([61, 11]);
    expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711);
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
    f.onClient!(appendFrame('A'.repeat(chars)));
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_2' });
    expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16);
    server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
    f.onClient!(appendFrame('A'.repeat(chars)));
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_3' });
    expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16 + 16 + g711);
    // A session.updated without a format keeps the known one.
    server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: {} } } });
    f.onClient!(appendFrame('A'.repeat(chars)));
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_4' });
    expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16 + 16 + g711 + 16 + g711);
  });

  it('session instructions and tools count as prompt; a response\'s own instructions replace them for that response', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'i'.repeat(1000), tools: [] } });
    expect(probe(s, f).tokens).toBe(BARE.tokens + 1000);
    expect(probe(s, f, { instructions: 'short' }).tokens).toBe(BARE.tokens + 5);
    expect(probe(s, f, { tools: [{ type: 'function', name: 'f' }] }).tokens).toBe(BARE.tokens + JSON.stringify([{ type: 'function', name: 'f' }]).length);
    // A session.updated without them keeps them.
    server(f, { type: 'session.updated', session: { type: 'realtime', output_modalities: ['audio'] } });
    expect(probe(s, f).tokens).toBe(BARE.tokens + 1000);
  });

  it('a transcription session: its instructions are no response prompt and no clamp is injected', () => {
    const s = setup();
    const { ctx, f } = session(s, { ...CAPPED, maxResponseOutputTokens: 100 });
    server(f, { type: 'session.created', session: { type: 'transcription', instructions: 'i'.repeat(1000), output_modalities: ['text'], max_output_tokens: 'inf' } });
    expect(ctx.upstream).toEqual([]);
    expect(probe(s, f, { max_output_tokens: 100 }).tokens).toBe(8 + 100);
  });

  it('text-only output is reserved at the text output rate (session or response), audio at the audio rate', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    expect(probe(s, f, { output_modalities: ['text'] }).nanos).toBe(8 * 4_000 + 4096 * 16_000);
    server(f, { type: 'session.updated', session: { type: 'realtime', output_modalities: ['text'] } });
    expect(probe(s, f).nanos).toBe(8 * 4_000 + 4096 * 16_000);
    expect(probe(s, f, { output_modalities: ['audio'] }).nanos).toBe(BARE.nanos);
    server(f, { type: 'session.updated', session: { type: 'realtime', output_modalities: ['audio'] } });
    expect(probe(s, f).nanos).toBe(BARE.nanos);
  });

  it('inputAllowanceTokens is added to every reservation at the text rate', () => {
    const s = setup({ inputAllowanceTokens: 500 });
    const { f } = session(s, CAPPED);
    expect(probe(s, f)).toEqual({ nanos: BARE.nanos + 500 * 4_000, tokens: BARE.tokens + 500 });
  });

  it('the output part follows max_output_tokens: the response\'s, else the session\'s, else the model maximum', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    expect(probe(s, f, { max_output_tokens: 10 }).tokens).toBe(8 + 10);
    expect(probe(s, f, { max_output_tokens: 'inf' }).tokens).toBe(BARE.tokens);
    server(f, { type: 'session.updated', session: { type: 'realtime', max_output_tokens: 50 } });
    expect(probe(s, f).tokens).toBe(8 + 50);
  });

  it('after a conversation response, its upstream count replaces the estimate; an out-of-band response changes nothing', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    client(f, { type: 'conversation.item.create', item: text('x'.repeat(20_000)) });
    client(f, { type: 'response.create', event_id: 'oob', response: { conversation: 'none' } });
    server(f, created('resp_oob', { conversation_id: null }));
    server(f, { type: 'response.done', response: { id: 'resp_oob', status: 'completed', conversation_id: null, usage: usage(10, 0, 1, 0) } });
    expect(probe(s, f).tokens).toBe(BARE.tokens + 20_008);
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(300, 0, 20, 0)));
    expect(probe(s, f).tokens).toBe(BARE.tokens + 320);
  });

  it('a VAD response reserves the whole conversation and the session output limit', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    client(f, { type: 'conversation.item.create', item: text('x'.repeat(992)) });
    server(f, created('resp_vad', { max_output_tokens: 100 }));
    expect(reserved(s)).toEqual({ nanos: 1008 * 4_000 + 100 * 64_000, tokens: 1108 });
    server(f, created('resp_vad2', { max_output_tokens: undefined, output_modalities: ['text'] }));
    expect(reserved(s).tokens).toBe(1108 + 1008 + 4096);
  });
});

describe('metering filter: max_output_tokens as clients write it', () => {
  it('session.update: an unreadable value is refused (invalid_value, non-fatal), a value written another way is forwarded canonical', () => {
    const s = setup();
    const { ctx, f } = session(s);
    const bad = client(f, { type: 'session.update', event_id: 'u1', session: { type: 'realtime', max_output_tokens: 'lots' } });
    expect(bad.kind === 'reject' && [bad.error.code, bad.error.param, bad.error.eventId, bad.error.closesSession]).toEqual(['invalid_value', 'session.max_output_tokens', 'u1', false]);
    expect(bad.kind === 'reject' && bad.error.message).toBe('max_output_tokens must be a whole number of at least 1 or "inf": "lots" is neither a whole number nor "inf".');
    expect(json(client(f, { type: 'session.update', event_id: 'u2', session: { type: 'realtime', max_output_tokens: '4096' } }))).toEqual({ type: 'session.update', event_id: 'u2', session: { type: 'realtime', max_output_tokens: 4096 } });
    expect(client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 'inf' } }).kind).toBe('continue');
    expect(client(f, { type: 'session.update', session: { type: 'realtime' } }).kind).toBe('continue');
    expect(client(f, { type: 'session.update' }).kind).toBe('continue');
    expect(ctx.client).toEqual([]);
  });

  it('response.create: an unreadable value is refused before anything is reserved; "100" goes upstream as 100', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    const bad = client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 0 } });
    expect(bad.kind === 'reject' && [bad.error.code, bad.error.param, bad.error.eventId]).toEqual(['invalid_value', 'response.max_output_tokens', 'c1']);
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    const v = client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: '100', metadata: { a: 'b' } } });
    expect(json(v)).toEqual({ type: 'response.create', event_id: 'c2', response: { max_output_tokens: 100, metadata: { a: 'b' } } });
    expect(reserved(s).tokens).toBe(8 + 100);
  });

  it('a tenant limit above the model maximum clamps to the model maximum (the upstream would refuse more)', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 8000 });
    expect(json(client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 'inf' } }))['response']).toEqual({ max_output_tokens: 4096 });
    expect(ctx.client[0]).toMatchObject({ type: 'error', error: { code: 'max_output_tokens_clamped', message: 'max_output_tokens inf was lowered to 4096 (the tenant limit, at most the model\'s maximum).', param: 'response.max_output_tokens', details: { requested: 'inf', limit: 4096 } } });
    expect(client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 4096 } }).kind).toBe('continue');
    expect(ctx.reports.filter((r) => r.kind === 'budget')).toEqual([{ kind: 'budget', action: 'clamped', scope: 'tenant', limit: 'max_response_output_tokens', responseId: null }]);
    expect(f.summary!()).toMatchObject({ meteringClamped: 1 });
  });

  it('session.update: a value above the limit is clamped (numbers and "inf" alike), at or below it passes', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    expect(json(client(f, { type: 'session.update', event_id: 'u1', session: { type: 'realtime', max_output_tokens: 301 } }))['session']).toEqual({ type: 'realtime', max_output_tokens: 300 });
    expect(ctx.client[0]).toMatchObject({ error: { event_id: 'u1', details: { requested: '301', limit: 300 } } });
    expect(client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 300 } }).kind).toBe('continue');
    expect(json(client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: null } }))['session']).toEqual({ type: 'realtime', max_output_tokens: 300 });
    expect(ctx.client).toHaveLength(2);
  });

  it('response.create at exactly the limit passes unchanged; one above is clamped', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    expect(client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 300 } }).kind).toBe('continue');
    expect(json(client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 301 } }))['response']).toEqual({ max_output_tokens: 300 });
    expect(ctx.client).toHaveLength(1);
  });

  it('the session clamp is injected once per "inf" the upstream reports, again if a later session.updated is back above the limit', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    server(f, { type: 'session.created', session: { type: 'realtime', max_output_tokens: 'inf' } });
    server(f, { type: 'session.updated', session: { type: 'realtime', max_output_tokens: 'inf' } });
    expect(ctx.upstream).toHaveLength(1);
    server(f, { type: 'session.updated', session: { type: 'realtime', max_output_tokens: 300 } });
    server(f, { type: 'session.updated', session: { type: 'realtime', max_output_tokens: 301 } });
    expect(ctx.upstream).toEqual([
      { type: 'session.update', session: { type: 'realtime', max_output_tokens: 300 } },
      { type: 'session.update', session: { type: 'realtime', max_output_tokens: 300 } },
    ]);
    server(f, { type: 'session.updated', session: { type: 'realtime' } }); // no max_output_tokens: nothing to check
    expect(ctx.upstream).toHaveLength(2);
  });

  it('without a tenant limit nothing is clamped or injected', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, { type: 'session.created', session: { type: 'realtime', max_output_tokens: 'inf' } });
    expect(client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 'inf' } }).kind).toBe('continue');
    expect(ctx.upstream).toEqual([]);
    expect(ctx.client).toEqual([]);
  });
});

describe('metering filter: models', () => {
  it('a session.update that names the current model needs no new price; an unpriced one is refused', () => {
    const s = setup();
    const { f } = session(s, null, 'gpt-realtime');
    expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime' } }).kind).toBe('continue');
    expect(client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } }).kind).toBe('continue');
    const v = client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-9' } });
    expect(v.kind === 'reject' && [v.error.code, v.error.param, v.error.message]).toEqual(['unknown_model_price', 'session.model', 'No price is configured for model "gpt-9".']);
    const tx = client(f, { type: 'session.update', event_id: 'u', session: { type: 'realtime', audio: { input: { transcription: { model: 'stt-9' } } } } });
    expect(tx.kind === 'reject' && [tx.error.param, tx.error.message]).toEqual(['session.audio.input.transcription.model', 'No price is configured for transcription model "stt-9".']);
    expect(f.summary!()).toMatchObject({ meteringRefused: 2 });
  });

  it('a switch the client asked for applies when the upstream confirms it, also under its snapshot name', () => {
    const s = setup();
    const { ctx, f } = session(s);
    client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
    // Not confirmed yet: still the old price.
    server(f, created('resp_0'));
    server(f, done('resp_0', usage(1000, 0, 0, 0)));
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-mini-2025-12-15' } });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 0, 0)));
    expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime', 4_000_000], ['gpt-realtime-mini-2025-12-15', 600_000]]);
    expect(s.logs.some((l) => l.msg === 'metering: model switched' && l['from'] === 'gpt-realtime' && l['to'] === 'gpt-realtime-mini-2025-12-15')).toBe(true);
    expect(ctx.closedWith).toBeNull();
  });

  it('a model the upstream reports that the client never asked for keeps the session\'s price', () => {
    const s = setup();
    const { f } = session(s);
    client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-2' } });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(0, 0, 1000, 0)));
    expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime', 16_000_000]]);
  });

  it('a session without a model (call_id) learns it from session.created; an unpriced or retired one ends the session', () => {
    for (const [model, code] of [['gpt-9', 'unknown_model_price'], ['gpt-4o-realtime-preview', 'model_retired']] as const) {
      const s = setup();
      const { ctx, f } = session(s, null, '');
      server(f, { type: 'session.created', session: { type: 'realtime', model } });
      expect(ctx.closedWith?.code).toBe(code);
    }
    const s = setup();
    const { ctx, f } = session(s, null, '');
    expect(f.summary!()['meteringModel']).toBeNull();
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 0, 0)));
    expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime-mini', 600_000]]);
    expect(ctx.closedWith).toBeNull();
    expect(s.logs.some((l) => l.msg === 'metering: model switched')).toBe(false);
    expect(f.summary!()['meteringModel']).toBe('gpt-realtime-mini');
  });

  it('an unpriced session model (no fallback): creates are refused, VAD responses cancelled, usage billed at the dearest price', () => {
    const s = setup();
    const { ctx, f } = session(s, null, 'gpt-9');
    const v = client(f, { type: 'response.create', event_id: 'c1' });
    expect(v.kind === 'reject' && [v.error.code, v.error.eventId, v.error.closesSession]).toEqual(['unknown_model_price', 'c1', false]);
    server(f, created('resp_vad'));
    expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.closesSession])).toEqual([['resp_vad', 'unknown_model_price', false]]);
    server(f, done('resp_vad', usage(0, 0, 1000, 0), 'cancelled'));
    // gpt-realtime-2: text out 24 µ$.
    expect(s.records).toEqual([expect.objectContaining({ ref: 'resp_vad', model: 'gpt-9', costNanos: 24_000_000, fallbackPrice: true })]);
    expect(s.logs.some((l) => l.level === 'error' && /billed at gpt-realtime-2 prices/.test(l.msg))).toBe(true);
    expect(ctx.closedWith).toBeNull();
  });

  it('a model priced through the fallback is billed at it, marked fallback', () => {
    const s = setup({ fallbackPrice: 'gpt-realtime-mini' });
    const { f } = session(s, null, 'brand-new');
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 0, 0)));
    expect(s.records).toEqual([expect.objectContaining({ model: 'brand-new', costNanos: 600_000, fallbackPrice: true })]);
  });
});

describe('metering filter: responses', () => {
  it('the record of a response.done: exact usage, every field', () => {
    const s = setup();
    const { ctx, f } = session(s);
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    const u = {
      total_tokens: 1800, input_tokens: 1300, output_tokens: 500,
      input_token_details: { text_tokens: 300, audio_tokens: 1000, image_tokens: 0, cached_tokens: 1100, cached_tokens_details: { text_tokens: 200, audio_tokens: 900, image_tokens: 0 } },
      output_token_details: { text_tokens: 100, audio_tokens: 400 },
    };
    server(f, done('resp_1', u, 'incomplete'));
    // 100·4 + 200·0.4 + 100·32 + 900·0.4 + 100·16 + 400·64 µ$ = 400 + 80 + 3200 + 360 + 1600 + 25600 = 31,240 µ$
    expect(s.records).toEqual([
      {
        ts: T0, tenant: 'acme', session: 'rps_test', source: 'response', ref: 'resp_1', model: 'gpt-realtime', status: 'incomplete',
        costNanos: 31_240_000, inputTokens: 1300, outputTokens: 500, cachedTokens: 1100, totalTokens: 1800,
        input: { text: 300, audio: 1000, image: 0 }, cached: { text: 200, audio: 900, image: 0 }, output: { text: 100, audio: 400 },
        seconds: null, estimated: false, settledBy: 'response.done', fallbackPrice: false,
      },
    ]);
    expect(ctx.reports).toContainEqual({ kind: 'usage', responseId: 'resp_1', model: 'gpt-realtime', costMicros: 31_240, inputTokens: 1300, outputTokens: 500, cachedTokens: 1100, source: 'response' });
    expect(f.summary!()).toEqual({
      meteringModel: 'gpt-realtime', meteringResponses: 1, meteringEstimated: 0, meteringCostUsd: '0.03124', meteringCostNanos: 31_240_000,
      meteringTranscriptionUsd: '0.00', meteringInputTokens: 1300, meteringOutputTokens: 500, meteringCachedTokens: 1100, meteringSessionTokens: 1800,
      meteringRefused: 0, meteringCancelled: 0, meteringClamped: 0,
    });
  });

  it('a response.done without usage bills nothing and frees the reservation; frames without a response id are ignored', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, { type: 'response.created' });
    server(f, { type: 'response.created', response: { status: 'in_progress' } });
    server(f, { type: 'response.done' });
    server(f, { type: 'response.done', response: { status: 'failed' } });
    expect(reserved(s)).toEqual(BARE);
    server(f, done('resp_1', null, 'failed'));
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    expect(s.records).toEqual([]);
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(s.records).toEqual([]);
  });

  it('a second response.created for a running response reserves nothing more', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, created('resp_vad'));
    server(f, created('resp_vad'));
    expect(reserved(s)).toEqual(BARE);
  });

  it('a create never answered is released after pendingResponseTimeoutMs; a response that starts later reserves itself', () => {
    vi.useFakeTimers();
    const s = setup({ pendingResponseTimeoutMs: 1000 });
    const { f } = session(s, CAPPED);
    client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
    vi.advanceTimersByTime(999);
    expect(reserved(s).tokens).toBe(8 + 5);
    vi.advanceTimersByTime(1);
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    server(f, created('resp_late', { max_output_tokens: 5 }));
    expect(reserved(s).tokens).toBe(8 + 5);
  });

  it('a started response keeps its reservation past the pending timeout, until its response.done', () => {
    vi.useFakeTimers();
    const s = setup({ pendingResponseTimeoutMs: 1000 });
    const { f } = session(s, CAPPED);
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    vi.advanceTimersByTime(5000);
    expect(reserved(s)).toEqual(BARE);
    server(f, done('resp_1', usage(1, 0, 0, 0)));
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
  });

  it('an upstream error without an event id, or about another event, releases nothing', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, { type: 'error', error: { type: 'server_error', code: 'x', message: 'x' } });
    server(f, { type: 'error', error: { type: 'server_error', code: 'x', message: 'x', event_id: 'other' } });
    server(f, { type: 'error' });
    expect(reserved(s)).toEqual(BARE);
  });

  it('an uncapped tenant reserves nothing in the ledger, but a response without response.done is still billed at its worst case', () => {
    const s = setup();
    const { f } = session(s);
    expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    server(f, created('resp_1'));
    server(f, created('resp_vad'));
    f.onClose!({ initiator: 'client', code: 1001, reason: '' });
    expect(s.records.map((r) => [r.ref, r.costNanos, r.totalTokens, r.settledBy, r.estimated])).toEqual([
      ['resp_1', BARE.nanos, BARE.tokens, 'client_gone_estimate', true],
      ['resp_vad', BARE.nanos, BARE.tokens, 'client_gone_estimate', true],
    ]);
  });
});

describe('metering filter: ending a session', () => {
  it('end_session: a response that never sends response.done does not hold the session beyond 3 s', () => {
    vi.useFakeTimers();
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionTokens: 10 });
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, created('resp_2'));
    server(f, done('resp_1', usage(10, 0, 0, 0)));
    expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_2']);
    vi.advanceTimersByTime(2999);
    expect(ctx.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect([ctx.closedWith?.code, ctx.closedWith?.closeCode]).toEqual(['token_limit_exceeded', 4002]);
    // The relay then closes: the response still without response.done is billed at its reservation.
    f.onClose!({ initiator: 'proxy', code: 4002, reason: 'token_limit_exceeded' });
    expect(s.records.map((r) => [r.ref, r.settledBy])).toEqual([['resp_1', 'response.done'], ['resp_2', 'session_end_estimate']]);
  });

  it('ending: a response the relay already suppresses is not cancelled twice; one that starts meanwhile is cancelled and not billed at close', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionTokens: 10 });
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, created('resp_2'));
    ctx.cancelResponse('resp_2', 'guardrails', ctx.closedWith ?? ({} as never));
    server(f, done('resp_1', usage(10, 0, 0, 0)));
    expect(ctx.cancelled.map((c) => [c.responseId, c.by])).toEqual([['resp_2', 'guardrails']]);
    server(f, created('resp_3'));
    expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_2', undefined], ['resp_3', 'token_limit_exceeded']]);
    f.onClose!({ initiator: 'proxy', code: 4002, reason: '' });
    expect(s.records.map((r) => r.ref)).toEqual(['resp_1', 'resp_2']);
    expect(f.summary!()).toMatchObject({ meteringEstimated: 1, meteringResponses: 2 });
  });

  it('ending closes once the last running response is billed, not before', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionTokens: 10 });
    server(f, created('resp_a'));
    server(f, created('resp_b'));
    server(f, created('resp_c'));
    server(f, done('resp_a', usage(10, 0, 0, 0)));
    expect(ctx.closedWith).toBeNull();
    server(f, done('resp_b', usage(1, 0, 0, 0), 'cancelled'));
    expect(ctx.closedWith).toBeNull();
    server(f, done('resp_c', null, 'cancelled'));
    expect(ctx.closedWith?.code).toBe('token_limit_exceeded');
  });

  it('a session closed by the client stops every timer: no duration close, no end-grace close afterwards', () => {
    vi.useFakeTimers();
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionDurationSec: 5, maxSessionTokens: 10 });
    server(f, created('resp_a'));
    server(f, created('resp_b'));
    server(f, done('resp_a', usage(10, 0, 0, 0)));
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    vi.advanceTimersByTime(10_000);
    expect(ctx.closedWith).toBeNull();
    // Frames arriving after the close bill nothing twice and end nothing.
    server(f, done('resp_b', usage(1, 0, 0, 0)));
    expect(ctx.closedWith).toBeNull();
  });

  it('the maximum duration ends a session with its limit in seconds; a running response is cancelled first', () => {
    vi.useFakeTimers();
    const s = setup();
    const { ctx, f } = session(s, { maxSessionDurationSec: 2 });
    server(f, created('resp_1'));
    vi.advanceTimersByTime(2000);
    expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.closesSession])).toEqual([['resp_1', 'session_duration_exceeded', false]]);
    expect(ctx.closedWith).toBeNull();
    const v = client(f, { type: 'response.create', event_id: 'late' });
    expect(v.kind === 'reject' && [v.error.code, v.error.eventId, v.error.details]).toEqual(['session_duration_exceeded', 'late', { limitSec: 2 }]);
    server(f, done('resp_1', usage(1, 0, 0, 0), 'cancelled'));
    expect([ctx.closedWith?.code, ctx.closedWith?.closeCode, ctx.closedWith?.details]).toEqual(['session_duration_exceeded', 4002, { limitSec: 2 }]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'session', limit: 'session_duration_exceeded', responseId: null });
  });

  it('a session that ends twice closes once, with the first reason', () => {
    vi.useFakeTimers();
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionDurationSec: 1, maxSessionTokens: 0 });
    server(f, created('resp_1'));
    vi.advanceTimersByTime(1000);
    expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['token_limit_exceeded']);
    expect(ctx.closedWith).toBeNull();
    server(f, done('resp_1', usage(1, 0, 0, 0)));
    expect(ctx.closedWith?.code).toBe('token_limit_exceeded');
  });

  it('client gone: a response whose worst case was zero is released, not billed', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionTokens: 0 });
    server(f, created('resp_1')); // cancelled over the limit: nothing reserved
    f.onClose!({ initiator: 'client', code: 1006, reason: '' });
    expect(s.records).toEqual([]);
    expect(ctx.cancelled).toHaveLength(1);
  });

  it('an estimated record names the model and the fallback of the session', () => {
    const s = setup({ fallbackPrice: 'gpt-realtime-mini' });
    const { f } = session(s, CAPPED, 'brand-new');
    client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 10 } });
    server(f, created('resp_1', { max_output_tokens: 10 }));
    f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
    // mini: 8·0.6 + 10·20 µ$
    expect(s.records).toEqual([
      {
        ts: T0, tenant: 'acme', session: 'rps_test', source: 'response', ref: 'resp_1', model: 'brand-new', status: null,
        costNanos: 8 * 600 + 10 * 20_000, inputTokens: 0, outputTokens: 0, cachedTokens: 0, totalTokens: 18,
        input: null, cached: null, output: null, seconds: null, estimated: true, settledBy: 'upstream_drop_estimate', fallbackPrice: true,
      },
    ]);
    expect(s.logs.some((l) => l.level === 'warn' && l.msg === 'metering: response without response.done billed at its reservation' && l['rule'] === 'upstream_drop_estimate')).toBe(true);
    expect(f.summary!()).toMatchObject({ meteringEstimated: 1, meteringResponses: 1, meteringCostNanos: 204_800, meteringCostUsd: '0.0002048' });
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
  });
});
