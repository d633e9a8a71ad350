import { describe, expect, it, vi } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { nextUtcMidnight, utcDate } from '../../test/support/clock.js';
import { client, created, done, json, server, session, setup, spent, T0, usage } from '../../test/metering/filter-harness.js';
import type { Admission, Verdict } from '../pipeline/filter.js';
import { Frame } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import type { Tenant } from '../tenants/tenant.js';
import type { TenantLimitsConfig } from './config.js';
import { resolveLimits } from './limits.js';
import { formatUsd } from './money.js';

describe('metering filter: usage', () => {
  it('bills each response.done exactly and keeps running totals for the session-end log', () => {
    const s = setup();
    const { ctx, f } = session(s);
    expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 500, 0)));
    server(f, created('resp_2'));
    server(f, done('resp_2', usage(0, 2000, 0, 1000)));
    // 1000·4 + 500·16 = 12000 µ$; 2000·32 + 1000·64 = 128000 µ$
    expect(s.records.map((r) => formatUsd(r.costNanos))).toEqual(['0.012', '0.128']);
    expect(s.ledger.status('acme', resolveLimits(ctx.tenant, s.rt.config).caps, T0).day.spent).toEqual({ nanos: 140_000_000, tokens: 4500 });
    expect(ctx.reports.filter((r) => r.kind === 'usage')).toHaveLength(2);
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(f.summary!()).toMatchObject({ meteringResponses: 2, meteringCostUsd: '0.14', meteringInputTokens: 3000, meteringOutputTokens: 1500, meteringRefused: 0 });
  });

  it('bills input transcription at the transcription model price', () => {
    const s = setup();
    const { f } = session(s);
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } } } });
    server(f, {
      type: 'conversation.item.input_audio_transcription.completed',
      item_id: 'item_1',
      content_index: 0,
      transcript: 'hello',
      usage: { type: 'tokens', input_tokens: 180, output_tokens: 40, total_tokens: 220, input_token_details: { text_tokens: 20, audio_tokens: 160 } },
    });
    expect(s.records).toHaveLength(1);
    expect(s.records[0]).toMatchObject({ source: 'transcription', ref: 'item_1', model: 'gpt-4o-mini-transcribe', totalTokens: 220 });
    expect(formatUsd(s.records[0]!.costNanos)).toBe('0.000705');
  });

  it('refuses a session.update that selects an unpriced transcription model (non-fatal)', () => {
    const s = setup();
    const { f } = session(s);
    const v = client(f, { type: 'session.update', event_id: 'e1', session: { type: 'realtime', audio: { input: { transcription: { model: 'mystery-stt' } } } } });
    expect(v.kind).toBe('reject');
    if (v.kind === 'reject') {
      expect(v.error.code).toBe('unknown_model_price');
      expect(v.error.closesSession).toBe(false);
      expect(v.error.eventId).toBe('e1');
    }
  });
});

describe('metering filter: max_output_tokens clamp', () => {
  it('rewrites "inf" and larger values in response.create and notifies the client', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    const v = client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 'inf', metadata: { k: 'v' } } });
    expect(json(v)['response']).toEqual({ max_output_tokens: 300, metadata: { k: 'v' } });
    expect(ctx.client).toHaveLength(1);
    expect(ctx.client[0]).toMatchObject({ type: 'error', error: { code: 'max_output_tokens_clamped', event_id: 'c1', details: { requested: 'inf', limit: 300 } } });
    expect(client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 200 } }).kind).toBe('continue');
  });

  it('sets the limit on a response.create without one while the session default is not yet clamped', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    expect(ctx.upstream).toEqual([{ type: 'session.update', session: { type: 'realtime', max_output_tokens: 300 } }]);
    expect(json(client(f, { type: 'response.create', event_id: 'c1' }))['response']).toEqual({ max_output_tokens: 300 });
    expect(ctx.client).toHaveLength(0); // the client asked for nothing: no notice
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 300 } });
    expect(client(f, { type: 'response.create', event_id: 'c2' }).kind).toBe('continue');
    expect(ctx.upstream).toHaveLength(1);
  });

  it('clamps session.update', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    const v = client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 4096, instructions: 'x' } });
    expect(json(v)['session']).toEqual({ type: 'realtime', max_output_tokens: 300, instructions: 'x' });
    expect(ctx.client[0]).toMatchObject({ error: { code: 'max_output_tokens_clamped', param: 'session.max_output_tokens' } });
    expect(client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'y' } }).kind).toBe('continue');
  });
});

describe('metering filter: budgets', () => {
  it('refuses response.create once the daily cap is spent, with cap, period and reset time', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '0.02' });
    expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 500, 0))); // $0.012
    expect(client(f, { type: 'response.create', event_id: 'c2' }).kind).toBe('continue');
    server(f, created('resp_2'));
    server(f, done('resp_2', usage(1000, 0, 500, 0))); // $0.024 ≥ $0.02
    const v = client(f, { type: 'response.create', event_id: 'c3' });
    expect(v.kind).toBe('reject');
    if (v.kind !== 'reject') return;
    expect(v.error.code).toBe('budget_exceeded');
    expect(v.error.closesSession).toBe(false);
    expect(v.error.eventId).toBe('c3');
    expect(v.error.details).toEqual({
      cap: 'daily_usd',
      period: utcDate(T0),
      limit: '0.02',
      spent: '0.024',
      reserved: '0.00',
      unit: 'USD',
      resetsAt: new Date(nextUtcMidnight(T0)).toISOString(),
    });
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: 'daily_usd', responseId: null });
  });

  it('holds a worst-case reservation while a response runs, so a concurrent one is refused', () => {
    const s = setup();
    const a = session(s, { dailyUsd: '0.10', maxResponseOutputTokens: 1600 });
    const b = session(s, { dailyUsd: '0.10', maxResponseOutputTokens: 1600 });
    // worst case: 8 prompt tokens·4 + 1600·64 µ$ = $0.102432 ≥ $0.10 remaining
    expect(client(a.f, { type: 'response.create' }).kind).toBe('replace');
    expect(client(b.f, { type: 'response.create' }).kind).toBe('reject');
    server(a.f, created('resp_a', { max_output_tokens: 1600 }));
    server(a.f, done('resp_a', usage(10, 0, 10, 0)));
    expect(client(b.f, { type: 'response.create' }).kind).toBe('replace');
  });

  it('cancels a server-started (VAD) response over budget and still bills its response.done', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '0.01' });
    s.ledger.settle(null, spent(10_000_000));
    expect(server(f, created('resp_vad')).kind).toBe('continue');
    expect(ctx.cancelled).toHaveLength(1);
    expect(ctx.cancelled[0]).toMatchObject({ responseId: 'resp_vad', by: 'metering' });
    expect(ctx.cancelled[0]!.notice.code).toBe('budget_exceeded');
    server(f, done('resp_vad', usage(100, 0, 5, 0), 'cancelled'));
    expect(s.records).toHaveLength(1);
    expect(s.records[0]).toMatchObject({ ref: 'resp_vad', status: 'cancelled' });
    expect(f.summary!()).toMatchObject({ meteringCancelled: 1 });
  });

  it('end_session: refuses, then closes with 4002 once running responses are billed', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { dailyUsd: '0.01' });
    client(f, { type: 'response.create' });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 500, 0))); // $0.012 ≥ cap → end
    expect(ctx.closedWith?.code).toBe('budget_exceeded');
    expect(ctx.closedWith?.closeCode).toBe(4002);
  });

  it('end_session with a response running: cancels it and closes after its response.done', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionTokens: 100 });
    client(f, { type: 'response.create' });
    server(f, created('resp_1'));
    server(f, created('resp_2')); // an out-of-band response still running
    server(f, done('resp_1', usage(100, 0, 50, 0)));
    expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_2']);
    expect(ctx.closedWith).toBeNull();
    server(f, done('resp_2', usage(100, 0, 5, 0), 'cancelled'));
    expect(ctx.closedWith?.code).toBe('token_limit_exceeded');
    expect(s.records).toHaveLength(2);
  });

  it('refuses responses past the session token limit', () => {
    const s = setup();
    const { f } = session(s, { maxSessionTokens: 100 });
    client(f, { type: 'response.create' });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(80, 0, 30, 0)));
    const v = client(f, { type: 'response.create' });
    expect(v.kind === 'reject' && v.error.code).toBe('token_limit_exceeded');
  });

  it('releases a reservation when the upstream refuses the response.create, and on close', () => {
    const s = setup();
    const caps = { dailyUsd: '1' };
    const { ctx, f } = session(s, caps);
    const c = resolveLimits(ctx.tenant, s.rt.config).caps;
    client(f, { type: 'response.create', event_id: 'c1' });
    expect(s.ledger.status('acme', c, T0).day.reserved.nanos).toBeGreaterThan(0);
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'x', event_id: 'c1' } });
    expect(s.ledger.status('acme', c, T0).day.reserved.nanos).toBe(0);
    client(f, { type: 'response.create' });
    server(f, created('resp_1'));
    client(f, { type: 'response.create' });
    expect(s.ledger.status('acme', c, T0).day.reserved.nanos).toBeGreaterThan(0);
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(s.ledger.status('acme', c, T0).day.reserved.nanos).toBe(0);
  });

  it('ends the session at its maximum duration', () => {
    vi.useFakeTimers();
    const s = setup();
    const { ctx } = session(s, { maxSessionDurationSec: 5 });
    vi.advanceTimersByTime(4999);
    expect(ctx.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect(ctx.closedWith?.code).toBe('session_duration_exceeded');
    expect(ctx.closedWith?.closeCode).toBe(4002);
  });
});

describe('metering filter: admission', () => {
  /** Metering never rewrites the model: its admission is a refusal or null. */
  const refusal = (d: Admission): ProxyError | null => (d instanceof ProxyError ? d : null);
  const tenant = (limits: TenantLimitsConfig | null = null): Tenant => ({ id: 'acme', name: 'Acme', policy: null, plan: null, limits });
  const q = new Map<string, string>();

  it('refuses models without a price unless a fallback is configured', async () => {
    expect(refusal(await setup().factory.admit!({ tenant: tenant(), model: 'gpt-9-realtime', query: q }))?.code).toBe('unknown_model_price');
    expect(await setup({ fallbackPrice: 'gpt-realtime' }).factory.admit!({ tenant: tenant(), model: 'gpt-9-realtime', query: q })).toBeNull();
    expect(await setup().factory.admit!({ tenant: tenant(), model: '', query: new Map([['intent', 'transcription']]) })).toBeNull();
  });

  it('refuses a tenant already over budget (429 before the upgrade)', async () => {
    const s = setup();
    s.ledger.settle(null, spent(5));
    const e = refusal(await s.factory.admit!({ tenant: tenant({ dailyUsd: '0.000000005' }), model: 'gpt-realtime', query: q }));
    expect(e?.code).toBe('budget_exceeded');
    expect(e?.httpStatus).toBe(429);
    expect(await s.factory.admit!({ tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q })).toBeNull();
  });

  it('caps concurrent sessions per tenant and frees the slot on close', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 1 });
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    const ctx = new FakeSession({ tenant: t });
    const f = s.factory.create(ctx);
    const refused = refusal(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q }));
    expect(refused?.code).toBe('concurrent_sessions_exceeded');
    expect(refused?.httpStatus).toBe(429);
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
  });

  it('reads only the size of input audio frames, never parses them, and wants no output audio', () => {
    const s = setup();
    const w = s.factory.wants;
    expect(w.server).not.toContain('response.output_audio.delta');
    const { f } = session(s);
    const append = new Frame('input_audio_buffer.append', Buffer.from(`{"type":"input_audio_buffer.append","audio":"${'A'.repeat(6400)}"}`));
    expect(f.onClient!(append)).toEqual({ kind: 'continue' });
    expect(append.parsed).toBe(false);
    expect(w.client).not.toBe('*');
    expect(w.server).not.toBe('*');
  });
});

describe('metering filter: issue 11 regressions', () => {
  it('prices the model in use after a session.update switches it (finding 4)', () => {
    const s = setup();
    const { f } = session(s);
    expect(client(f, { type: 'session.update', event_id: 'su', session: { type: 'realtime', model: 'gpt-realtime-mini' } }).kind).toBe('continue');
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 500, 0)));
    // mini: 1000·0.60 + 500·2.40 = 1800 µ$ (gpt-realtime would be 12,000 µ$).
    expect(s.records[0]).toMatchObject({ model: 'gpt-realtime-mini', costNanos: 1_800_000 });
  });

  it('keeps the URL model price when the upstream reports another id the client never asked for (snapshot, deployment)', () => {
    const s = setup({ prices: { 'my-deployment': { extends: 'gpt-realtime-mini' } } });
    const { f } = session(s, null, 'my-deployment');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime-2025-08-28' } });
    client(f, { type: 'response.create', event_id: 'c1' });
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(1000, 0, 500, 0)));
    expect(s.records[0]).toMatchObject({ model: 'my-deployment', costNanos: 1_800_000 });
  });

  it('refuses a session.update to an unpriced or retired model before it reaches the upstream (non-fatal)', () => {
    const s = setup();
    const { f } = session(s);
    const unpriced = client(f, { type: 'session.update', event_id: 'a', session: { type: 'realtime', model: 'gpt-9-realtime' } });
    expect(unpriced.kind === 'reject' && [unpriced.error.code, unpriced.error.closesSession]).toEqual(['unknown_model_price', false]);
    const retired = client(f, { type: 'session.update', event_id: 'b', session: { type: 'realtime', model: 'gpt-4o-realtime-preview-2025-06-03' } });
    expect(retired.kind === 'reject' && retired.error.code).toBe('model_retired');
    if (retired.kind === 'reject') expect(retired.error.details).toEqual({ model: 'gpt-4o-realtime-preview-2025-06-03', successor: 'gpt-realtime-2.1' });
  });

  it('refuses retired models at admission with model_retired naming the successor (finding 5: was "unknown price")', async () => {
    const s = setup({ fallbackPrice: 'gpt-realtime' });
    const tenant: Tenant = { id: 'acme', name: 'Acme', policy: null, plan: null, limits: null };
    const e = await s.factory.admit!({ tenant, model: 'gpt-4o-mini-realtime-preview', query: new Map() });
    expect(e instanceof ProxyError && [e.code, e.httpStatus, e.details?.['successor']]).toEqual(['model_retired', 400, 'gpt-realtime-2.1-mini']);
    expect(e instanceof ProxyError && e.message).toMatch(/shut down.*gpt-realtime-2\.1-mini/);
  });

  it('end_session: transcription over the cap ends the session when it arrives, not at the next response (finding 4)', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { dailyUsd: '0.001' });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } });
    server(f, { type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_1', content_index: 0, transcript: 'x', usage: { type: 'duration', seconds: 60 } });
    expect(s.records[0]).toMatchObject({ source: 'transcription', costNanos: 6_000_000, settledBy: 'transcription.completed' });
    expect(ctx.closedWith?.code).toBe('budget_exceeded');
  });

  it('refuse policy: over the cap, a transcribed session\'s input audio is held back (no further transcription), until the cap allows', () => {
    let now = T0;
    const s = setup({}, () => now);
    const { ctx, f } = session(s, { dailyUsd: '0.001' });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } });
    const append = () => f.onClient!(new Frame('input_audio_buffer.append', Buffer.from('{"type":"input_audio_buffer.append","audio":"AAAA"}'))) as Verdict;
    expect(append().kind).toBe('continue');
    server(f, { type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_1', content_index: 0, transcript: 'x', usage: { type: 'duration', seconds: 60 } });
    const first = append();
    expect(first.kind === 'reject' && [first.error.code, first.error.param, first.error.closesSession]).toEqual(['budget_exceeded', 'input_audio_buffer.append', false]);
    expect(append().kind).toBe('drop'); // told once, not per frame
    // The admin raises the cap: after the recheck interval audio flows again.
    s.ledger.setOverride('acme', 'day', { nanos: 1_000_000_000 });
    now += 5000;
    expect(append().kind).toBe('drop'); // this one triggers the (synchronous, SQLite) recheck
    expect(append().kind).toBe('continue');
    expect(ctx.closedWith).toBeNull();
  });

  it('refuse policy: the next turn after transcription over the cap is refused (client create and VAD response)', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '0.001' });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } });
    server(f, { type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_1', content_index: 0, transcript: 'x', usage: { type: 'duration', seconds: 60 } });
    expect(client(f, { type: 'response.create', event_id: 'c' }).kind).toBe('reject');
    server(f, created('resp_vad'));
    expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['budget_exceeded']);
  });

  it('pairs response.created with its create by origin and metadata, not by order (finding 3)', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    client(f, { type: 'conversation.item.create', item: { id: 'item_big', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(20_000) }] } });
    // A big out-of-band create first, then a tiny one: both reserved.
    client(f, { type: 'response.create', event_id: 'oob_big', response: { conversation: 'none', metadata: { k: 'big' }, max_output_tokens: 1, input: [{ type: 'item_reference', id: 'item_big' }] } });
    client(f, { type: 'response.create', event_id: 'oob_small', response: { conversation: 'none', metadata: { k: 'small' }, max_output_tokens: 1, input: [] } });
    const reservedBoth = s.ledger.status('acme', caps, T0).day.reserved.nanos;
    // The upstream starts the small one first; it must carry the small reservation.
    server(f, created('resp_small', { conversation_id: null, metadata: { k: 'small' }, max_output_tokens: 1 }));
    server(f, { type: 'response.done', response: { id: 'resp_small', status: 'completed', conversation_id: null, metadata: { k: 'small' }, usage: usage(10, 0, 1, 0) } });
    const reservedBig = s.ledger.status('acme', caps, T0).day.reserved.nanos;
    expect(reservedBig).toBeGreaterThan(20_000 * 4_000);
    expect(reservedBig).toBeLessThan(reservedBoth);
    // A VAD response (conversation, no metadata) is not mistaken for the pending out-of-band create.
    server(f, created('resp_vad'));
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBeGreaterThan(reservedBig);
  });

  it('a create reusing the event_id of a waiting create gets its own id: a small reservation never ends up on a large response', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    const reserved = () => s.ledger.status('acme', caps, T0).day.reserved.nanos;
    client(f, { type: 'conversation.item.create', item: { id: 'item_big', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(20_000) }] } });
    expect(client(f, { type: 'response.create', event_id: 'same', response: { conversation: 'none', metadata: { k: 'tiny' }, max_output_tokens: 1, input: [] } }).kind).toBe('continue');
    const tiny = reserved();
    const second = client(f, { type: 'response.create', event_id: 'same', response: { conversation: 'none', metadata: { k: 'huge' }, max_output_tokens: 1, input: [{ type: 'item_reference', id: 'item_big' }] } });
    const secondId = json(second)['event_id'] as string;
    expect(secondId).toMatch(/^event_proxy_/);
    const huge = reserved() - tiny;
    expect(huge).toBeGreaterThan(20_000 * 4_000);
    // The upstream starts the huge one first, then the tiny one, which finishes first.
    server(f, created('resp_huge', { conversation_id: null, metadata: { k: 'huge' }, max_output_tokens: 1 }));
    server(f, created('resp_tiny', { conversation_id: null, metadata: { k: 'tiny' }, max_output_tokens: 1 }));
    expect(ctx.conversation.response('resp_huge')?.createEventId).toBe(secondId);
    expect(ctx.conversation.response('resp_tiny')?.createEventId).toBe('same');
    server(f, { type: 'response.done', response: { id: 'resp_tiny', status: 'completed', conversation_id: null, usage: usage(10, 0, 1, 0) } });
    // The huge response still runs: its whole reservation is still held.
    expect(reserved()).toBe(huge);
    server(f, { type: 'response.done', response: { id: 'resp_huge', status: 'completed', conversation_id: null, usage: usage(20_000, 0, 1, 0) } });
    expect(reserved()).toBe(0);
  });

  it('a VAD response with a larger output limit never takes the reservation of a small client create', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    client(f, { type: 'response.create', event_id: 'tiny', response: { max_output_tokens: 1 } });
    const tiny = s.ledger.status('acme', caps, T0).day.reserved.nanos;
    server(f, created('resp_vad', { max_output_tokens: 'inf' }));
    // The VAD response reserved its own worst case (4096 output tokens), on top of the tiny one.
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos - tiny).toBeGreaterThanOrEqual(4096 * 64_000);
    // The upstream refuses the tiny create (a conversation response is active): released at once.
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'x', event_id: 'tiny' } });
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBeGreaterThanOrEqual(4096 * 64_000);
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBeLessThan(4096 * 64_000 + tiny);
  });

  it('a refused create without event_id gets one, and the upstream error about it releases the reservation at once', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    const v = client(f, { type: 'response.create', response: {} });
    const eventId = json(v)['event_id'] as string;
    expect(eventId).toMatch(/^event_proxy_/);
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBeGreaterThan(0);
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'x', event_id: eventId } });
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBe(0);
  });

  it('reserves the conversation it sees: a response after a large item reserves its size (finding 2)', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    client(f, { type: 'response.create', event_id: 'a', response: { max_output_tokens: 1, output_modalities: ['text'] } });
    const small = s.ledger.status('acme', caps, T0).day.reserved.nanos;
    server(f, { type: 'error', error: { type: 'x', code: 'x', message: 'x', event_id: 'a' } });
    client(f, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(20_000) }] } });
    client(f, { type: 'response.create', event_id: 'b', response: { max_output_tokens: 1, output_modalities: ['text'] } });
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos - small).toBe((20_000 + 8) * 4_000);
  });

  it('a response whose response.done never came is billed at its reservation with the rule of the close', () => {
    for (const [initiator, rule] of [['client', 'client_gone_estimate'], ['upstream', 'upstream_drop_estimate'], ['proxy', 'session_end_estimate']] as const) {
      const s = setup();
      const { ctx, f } = session(s, { dailyUsd: '100', maxResponseOutputTokens: 10 });
      const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
      client(f, { type: 'response.create', event_id: 'c', response: { output_modalities: ['text'] } });
      const reserved = s.ledger.status('acme', caps, T0).day.reserved;
      server(f, created('resp_1', { max_output_tokens: 10 }));
      client(f, { type: 'response.create', event_id: 'never_started' });
      f.onClose!({ initiator, code: 1006, reason: '' });
      expect(s.records).toEqual([expect.objectContaining({ ref: 'resp_1', estimated: true, settledBy: rule, costNanos: reserved.nanos, totalTokens: reserved.tokens })]);
      expect(s.ledger.status('acme', caps, T0).day).toMatchObject({ spent: reserved, reserved: { nanos: 0, tokens: 0 } });
    }
  });

  it('prices output tokens without a modality split at the text rate for a text-only response (finding 5)', () => {
    const s = setup();
    const { f } = session(s);
    client(f, { type: 'response.create', event_id: 'c' });
    server(f, created('resp_1'));
    server(f, { type: 'response.done', response: { id: 'resp_1', status: 'completed', conversation_id: 'conv_1', output_modalities: ['text'], usage: { input_tokens: 100, output_tokens: 100, total_tokens: 200, input_token_details: { text_tokens: 100 } } } });
    // 100·4 + 100·16 µ$ (the audio rate would give 100·64).
    expect(s.records[0]!.costNanos).toBe(100 * 4_000 + 100 * 16_000);
  });
});
