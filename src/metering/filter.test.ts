/**
 * The metering filter, driven without sockets (test/metering/filter-harness.ts: a real in-memory
 * SQLite ledger, or the same behind an asynchronous Redis-like interface, and a FakeSession whose
 * conversation view learns every frame as the relay core's would). One file on purpose: Stryker
 * runs it for every mutant of filter.ts, and each test file costs a setup of its own.
 */
import { describe, expect, it, vi } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { nextUtcMidnight, utcDate } from '../../test/support/clock.js';
import { client, created, done, json, server, session as harnessSession, setup, spent, T0, usage, appendFrame, NEXT_DAY, tenant, transcribed, transcriptionSession, AsyncLedger, clientAsync, serverAsync, ev, probe as harnessProbe, references, outputItemAdded, startResponse, type Setup } from '../../test/metering/filter-harness.js';
import { AdmissionTicket, type Admission, type Verdict, type Filter } from '../pipeline/filter.js';
import { Frame } from '../pipeline/frame.js';
import { ProxyError } from '../protocol/errors.js';
import type { Tenant } from '../tenants/tenant.js';
import type { TenantLimitsConfig } from './config.js';
import { resolveLimits, type CapName, NO_CAPS } from './limits.js';
import { formatUsd } from './money.js';
import { createMeteringFilterFactory } from './filter-factory.js';
import { admissionProbe } from './session-slots.js';
import type { CapHit } from './ledger.js';
import { dayPeriod } from './periods.js';
import { audioTokensOfBase64 } from './context.js';

/** The event_ids client creates left with (the relay's `create_sent` reports), oldest first. */
const sentCreates = (ctx: FakeSession): string[] => ctx.reports.flatMap((r) => (r.kind === 'create_sent' ? [r.eventId] : []));

const contexts = new WeakMap<Filter, FakeSession>();
function session(...args: Parameters<typeof harnessSession>): ReturnType<typeof harnessSession> {
  const r = harnessSession(...args);
  contexts.set(r.f, r.ctx);
  return r;
}
/** The event_id the latest create left for the upstream with: the one the upstream's error about it names (the relay may stamp its own). */
const lastSent = (f: Filter): string => sentCreates(contexts.get(f)!).at(-1)!;

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
    expect(ctx.client[0]).toMatchObject({ type: 'rtproxy.notice', notice: { code: 'max_output_tokens_clamped', event_id: 'c1', details: { requested: 'inf', limit: 300 } } });
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

  it('injects the session clamp once while it is on its way: a session.updated that names no limit does not re-arm it', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'x' } });
    // Another client update answered before the clamp: still "inf" upstream, and the clamp is already sent.
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    expect(ctx.upstream).toEqual([{ type: 'session.update', session: { type: 'realtime', max_output_tokens: 300 } }]);
    // A limit within the cap (the clamp applied) re-arms it: a later "inf" (a client's own update) is clamped again.
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 300 } });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    expect(ctx.upstream).toHaveLength(2);
  });

  it('sends the session clamp at the start, before any client event, once; nothing without a limit, on a call sideband or in a transcription session', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    f.onStart?.();
    expect(ctx.upstream).toEqual([{ type: 'session.update', session: { type: 'realtime', max_output_tokens: 300 } }]);
    // session.created predates the clamp ("inf"): not sent again.
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    expect(ctx.upstream).toHaveLength(1);
    const none = session(setup(), {});
    none.f.onStart?.();
    expect(none.ctx.upstream).toEqual([]);
    const call = session(setup(), { maxResponseOutputTokens: 300 });
    Object.assign(call.ctx, { callId: 'rtc_1' });
    call.f.onStart?.();
    expect(call.ctx.upstream).toEqual([]);
    const stt = session(setup(), { maxResponseOutputTokens: 300 });
    Object.assign(stt.ctx, { query: new Map([['intent', 'transcription']]) });
    stt.f.onStart?.();
    expect(stt.ctx.upstream).toEqual([]);
  });

  it('on a call, a response reported over the limit is cancelled (its create was on the data channel, unclampable), within it runs; elsewhere it is left to the clamp', () => {
    const s = setup();
    const call = session(s, { maxResponseOutputTokens: 300 });
    Object.assign(call.ctx, { callId: 'rtc_1' });
    server(call.f, created('resp_inf', { max_output_tokens: 'inf' }));
    server(call.f, created('resp_big', { max_output_tokens: 301 }));
    server(call.f, created('resp_ok', { max_output_tokens: 300 }));
    server(call.f, created('resp_unsaid', { max_output_tokens: undefined }));
    expect(call.ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.details])).toEqual([
      ['resp_inf', 'max_output_tokens_exceeded', { requested: 'inf', limit: 300 }],
      ['resp_big', 'max_output_tokens_exceeded', { requested: '301', limit: 300 }],
    ]);
    expect(call.ctx.reports.filter((r) => r.kind === 'lock')).toEqual([
      { kind: 'lock', field: 'max_output_tokens', action: 'rejected', direction: 'server' },
      { kind: 'lock', field: 'max_output_tokens', action: 'rejected', direction: 'server' },
    ]);
    expect(call.ctx.reports.some((r) => r.kind === 'budget' && r.action === 'cancelled')).toBe(false);
    expect(call.f.summary?.()).toMatchObject({ meteringCancelled: 2 });
    // Without a limit, or outside a call: nothing cancelled for it.
    const free = session(setup(), {});
    Object.assign(free.ctx, { callId: 'rtc_2' });
    server(free.f, created('resp_inf'));
    expect(free.ctx.cancelled).toEqual([]);
    const ws = session(setup(), { maxResponseOutputTokens: 300 });
    server(ws.f, created('resp_inf'));
    expect(ws.ctx.cancelled).toEqual([]);
  });

  it('clamps the proxy\'s own session.update (SessionChain.inject) without a notice to the client, and never refuses it', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    const own = (e: { type: string; [k: string]: unknown }) => f.onClient!(ev(e), 'policies.locks') as Verdict;
    expect(json(own({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 4096 } }))['session']).toEqual({ type: 'realtime', max_output_tokens: 300 });
    // Not the client's: no notice, the clamp still counted.
    expect(ctx.client).toEqual([]);
    expect(ctx.reports.filter((r) => r.kind === 'budget')).toEqual([{ kind: 'budget', action: 'clamped', scope: 'tenant', limit: 'max_response_output_tokens', code: 'max_output_tokens_clamped', responseId: null }]);
    // What a client's is refused for leaves as it is (logged): refused, the session would run unlocked.
    expect(own({ type: 'session.update', session: { type: 'realtime', model: 'gpt-9-realtime' } }).kind).toBe('continue');
    expect(own({ type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'mystery-stt' } } } } }).kind).toBe('continue');
    expect(json(own({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 'lots' } }))['session']).toEqual({ type: 'realtime', max_output_tokens: 300 });
    expect(s.logs.filter((l) => l.msg.includes("the proxy's own session.update")).map((l) => l['param'])).toEqual(['session.model', 'session.audio.input.transcription.model', 'session.max_output_tokens']);
    expect(ctx.client).toEqual([]);
    // The client's own is refused.
    expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-9-realtime' } }).kind).toBe('reject');
  });

  it('clamps session.update', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
    const v = client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 4096, instructions: 'x' } });
    expect(json(v)['session']).toEqual({ type: 'realtime', max_output_tokens: 300, instructions: 'x' });
    expect(ctx.client[0]).toMatchObject({ notice: { code: 'max_output_tokens_clamped', param: 'session.max_output_tokens' } });
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
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: 'daily_usd', code: 'budget_exceeded', responseId: null });
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
    // Large enough to hold both responses' worst cases (4,104 tokens each) while they run.
    const { ctx, f } = session(s, { maxSessionTokens: 10_000 });
    client(f, { type: 'response.create' });
    server(f, created('resp_1'));
    server(f, created('resp_2')); // an out-of-band response still running
    server(f, done('resp_1', usage(10_000, 0, 50, 0)));
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
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'x', event_id: lastSent(f) } });
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
    const unpriced = refusal(await setup().factory.admit!({ tenant: tenant(), model: 'gpt-9-realtime', query: q, ticket: new AdmissionTicket() }));
    expect([unpriced?.code, unpriced?.param, unpriced?.httpStatus, unpriced?.message]).toEqual(['unknown_model_price', 'model', 400, 'No price is configured for model "gpt-9-realtime".']);
    expect(await setup({ fallbackPrice: 'gpt-realtime' }).factory.admit!({ tenant: tenant(), model: 'gpt-9-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
    expect(await setup().factory.admit!({ tenant: tenant(), model: '', query: new Map([['intent', 'transcription']]), ticket: new AdmissionTicket() })).toBeNull();
  });

  it('refuses a transcription model as the session\'s model: at admission and in a session.update', async () => {
    for (const model of ['whisper-1', 'gpt-4o-transcribe', 'gpt-realtime-whisper']) {
      const e = refusal(await setup({ fallbackPrice: 'gpt-realtime' }).factory.admit!({ tenant: tenant(), model, query: q, ticket: new AdmissionTicket() }));
      expect([e?.code, e?.param, e?.httpStatus, e?.details]).toEqual(['unknown_model_price', 'model', 400, { model, kind: 'transcription' }]);
    }
    const s = setup();
    const { f } = session(s);
    const v = client(f, { type: 'session.update', event_id: 'a', session: { type: 'realtime', model: 'whisper-1' } });
    expect(v.kind === 'reject' && [v.error.code, v.error.closesSession]).toEqual(['unknown_model_price', false]);
    // Still usable as the input transcription model.
    expect(client(f, { type: 'session.update', event_id: 'b', session: { type: 'realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } }).kind).toBe('continue');
  });

  it('refuses a tenant already over budget (429 before the upgrade)', async () => {
    const s = setup();
    s.ledger.settle(null, spent(5));
    const e = refusal(await s.factory.admit!({ tenant: tenant({ dailyUsd: '0.000000005' }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }));
    expect(e?.code).toBe('budget_exceeded');
    expect(e?.httpStatus).toBe(429);
    expect(await s.factory.admit!({ tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
  });

  it('caps concurrent sessions per tenant and frees the slot on close', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 1 });
    const ticket = new AdmissionTicket();
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket })).toBeNull();
    const ctx = new FakeSession({ tenant: t, admission: ticket });
    const f = s.factory.create(ctx);
    const refused = refusal(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }));
    expect(refused?.code).toBe('concurrent_sessions_exceeded');
    expect(refused?.details).toEqual({ limit: 1 });
    expect(refused?.httpStatus).toBe(429);
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
  });

  it('an admitted upgrade that never becomes a session frees its slot after 30 s, and no later session takes that freed slot as its own', async () => {
    vi.useFakeTimers();
    try {
      const s = setup();
      const t = tenant({ maxConcurrentSessions: 1 });
      const admit = async (ticket = new AdmissionTicket()) => refusal(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket }))?.code ?? 'admitted';
      // The client left during the upgrade: its slot is held until the handoff wait ends.
      expect(await admit()).toBe('admitted');
      expect(await admit()).toBe('concurrent_sessions_exceeded');
      vi.advanceTimersByTime(30_000);
      const ticket = new AdmissionTicket();
      expect(await admit(ticket)).toBe('admitted');
      const f = s.factory.create(new FakeSession({ tenant: t, admission: ticket }));
      // The session holds the slot its own admission took: the limit still holds after the next wait too.
      expect(await admit()).toBe('concurrent_sessions_exceeded');
      vi.advanceTimersByTime(30_000);
      expect(await admit()).toBe('concurrent_sessions_exceeded');
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(await admit()).toBe('admitted');
    } finally {
      vi.useRealTimers();
    }
  });

  it('sees no audio frames unless a cap holds input back (then it never parses them); the estimate reads the relay\'s count', () => {
    const s = setup();
    const w = s.factory.wants;
    expect(w.server).not.toContain('response.output_audio.delta');
    expect(w.client).not.toContain('input_audio_buffer.append');
    expect(w.onRequest).toEqual({ client: ['input_audio_buffer.append'] });
    const { ctx, f } = session(s);
    const append = new Frame('input_audio_buffer.append', Buffer.from(`{"type":"input_audio_buffer.append","audio":"${'A'.repeat(6400)}"}`));
    expect(f.onClient!(append)).toEqual({ kind: 'continue' });
    expect(append.parsed).toBe(false);
    expect(ctx.watched.size).toBe(0);
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
    const e = await s.factory.admit!({ tenant, model: 'gpt-4o-mini-realtime-preview', query: new Map(), ticket: new AdmissionTicket() });
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
    // Only now does metering ask the relay for the audio frames it must drop.
    expect([...ctx.watched]).toEqual(['metering client input_audio_buffer.append']);
    const first = append();
    expect(first.kind === 'reject' && [first.error.code, first.error.param, first.error.closesSession]).toEqual(['budget_exceeded', 'input_audio_buffer.append', false]);
    expect(append().kind).toBe('drop'); // told once, not per frame
    // The admin raises the cap: after the recheck interval audio flows again.
    s.ledger.setOverride('acme', 'day', { nanos: 1_000_000_000 });
    now += 5000;
    expect(append().kind).toBe('drop'); // this one triggers the (synchronous, SQLite) recheck
    expect(ctx.watched.size).toBe(0);
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
    client(f, { type: 'response.create', event_id: 'same', response: { conversation: 'none', metadata: { k: 'huge' }, max_output_tokens: 1, input: [{ type: 'item_reference', id: 'item_big' }] } });
    // The relay stamps it (Conversation.stamp) and reports the id it left with.
    const secondId = sentCreates(ctx).at(-1)!;
    expect(secondId).toMatch(/^event_proxy_/);
    const huge = reserved() - tiny;
    expect(huge).toBeGreaterThan(20_000 * 4_000);
    // The upstream starts the huge one first, then the tiny one, which finishes first.
    server(f, created('resp_huge', { conversation_id: null, metadata: { k: 'huge' }, max_output_tokens: 1 }));
    server(f, created('resp_tiny', { conversation_id: null, metadata: { k: 'tiny' }, max_output_tokens: 1 }));
    expect(ctx.conversation.response('resp_huge')?.createEventId).toBe(secondId);
    expect(ctx.conversation.response('resp_tiny')?.createEventId).toBe(sentCreates(ctx).at(-2));
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
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'x', event_id: lastSent(f) } });
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBeGreaterThanOrEqual(4096 * 64_000);
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos).toBeLessThan(4096 * 64_000 + tiny);
  });

  it('a refused create without event_id gets one, and the upstream error about it releases the reservation at once', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    client(f, { type: 'response.create', response: {} });
    const eventId = sentCreates(ctx).at(-1)!;
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
    server(f, { type: 'error', error: { type: 'x', code: 'x', message: 'x', event_id: lastSent(f) } });
    client(f, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(20_000) }] } });
    client(f, { type: 'response.create', event_id: 'b', response: { max_output_tokens: 1, output_modalities: ['text'] } });
    expect(s.ledger.status('acme', caps, T0).day.reserved.nanos - small).toBe((20_000 + 8) * 4_000);
  });

  it("reserves an empty or unknown output_modalities list at the audio rate, only ['text'] at the text rate", () => {
    const reservedFor = (modalities: unknown): number => {
      const s = setup();
      const { ctx, f } = session(s, { dailyUsd: '100' });
      const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
      client(f, { type: 'response.create', event_id: 'a', response: { max_output_tokens: 1000, output_modalities: modalities } });
      return s.ledger.status('acme', caps, T0).day.reserved.nanos;
    };
    const audio = reservedFor(['audio']);
    expect(reservedFor(['text'])).toBeLessThan(audio);
    expect(reservedFor([])).toBe(audio);
    expect(reservedFor(['text', 'image'])).toBe(audio);
    expect(reservedFor(['text', 'audio'])).toBe(audio);
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
    // A response that may have spoken: undetailed output at the dearest (audio) rate.
    client(f, { type: 'response.create', event_id: 'c2' });
    server(f, created('resp_2'));
    server(f, { type: 'response.done', response: { id: 'resp_2', status: 'completed', conversation_id: 'conv_1', output_modalities: ['audio'], usage: { input_tokens: 100, output_tokens: 100, total_tokens: 200, input_token_details: { text_tokens: 100 } } } });
    expect(s.records[1]!.costNanos).toBe(100 * 4_000 + 100 * 64_000);
  });
});

/**
 * Issue 16 regression: a planted bug "the monthly cost cap compared with the day's spend" survived
 * the suite. Each cap (day/month × cost/tokens) is checked against its own period's spend in its
 * own unit, at admission (429 before the upgrade), at response.create, at a server-started (VAD)
 * response and after a settle (end_session: close 4002), with the spend of the other period or the
 * other unit on the other side of the cap. Likewise the per-session token limit.
 */
describe("metering filter: issue 16 regression: every cap against its own period and unit", () => {
  const q = new Map<string, string>();

  /** The first day of T0's month (00:00 UTC) and the next month's: the monthly cap's period and reset. */
  const monthStart = (ms: number) => Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth(), 1);
  const nextMonth = (ms: number) => Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth() + 1, 1);

  interface CapCase {
    readonly cap: CapName;
    /** Limits where this cap is the one reached and the other period's cap of the same unit is far away. */
    readonly limits: TenantLimitsConfig;
    /** Earlier spend that reaches the cap exactly: nanos and tokens. */
    readonly spend: readonly [number, number];
    /** What details show for limit and spent. */
    readonly shown: { limit: string | number; spent: string | number; unit: string };
    /** The same spend, in the other unit only: below this cap. */
    readonly otherUnit: readonly [number, number];
  }

  const CASES: readonly CapCase[] = [
    { cap: 'daily_usd', limits: { dailyUsd: '0.05', monthlyUsd: '100' }, spend: [50_000_000, 10], shown: { limit: '0.05', spent: '0.05', unit: 'USD' }, otherUnit: [49_999_999, 10_000_000_000] },
    { cap: 'monthly_usd', limits: { dailyUsd: '100', monthlyUsd: '0.05' }, spend: [50_000_000, 10], shown: { limit: '0.05', spent: '0.05', unit: 'USD' }, otherUnit: [49_999_999, 10_000_000_000] },
    { cap: 'daily_tokens', limits: { dailyTokens: 5000, monthlyTokens: 1_000_000 }, spend: [1, 5000], shown: { limit: 5000, spent: 5000, unit: 'tokens' }, otherUnit: [10_000_000_000, 4999] },
    { cap: 'monthly_tokens', limits: { dailyTokens: 1_000_000, monthlyTokens: 5000 }, spend: [1, 5000], shown: { limit: 5000, spent: 5000, unit: 'tokens' }, otherUnit: [10_000_000_000, 4999] },
  ];

  const isDaily = (c: CapCase) => c.cap.startsWith('daily');

  function expectBudgetError(e: ProxyError | null | undefined, c: CapCase, at: number) {
    expect(e?.code).toBe('budget_exceeded');
    const day = isDaily(c);
    expect(e?.details).toEqual({
      cap: c.cap,
      period: day ? utcDate(at) : utcDate(at).slice(0, 7),
      limit: c.shown.limit,
      spent: c.shown.spent,
      reserved: c.shown.unit === 'USD' ? '0.00' : 0,
      unit: c.shown.unit,
      resetsAt: new Date(day ? nextUtcMidnight(at) : nextMonth(at)).toISOString(),
    });
    expect(e?.message).toBe(
      `The tenant ${day ? 'daily' : 'monthly'} ${c.shown.unit === 'USD' ? 'cost' : 'token'} budget is exhausted (resets ${new Date(day ? nextUtcMidnight(at) : nextMonth(at)).toISOString()}).`,
    );
  }

  const rejected = (v: Verdict): ProxyError | null => (v.kind === 'reject' ? v.error : null);

  describe('caps: each cap against its own period and unit (issue 16)', () => {
    for (const c of CASES) {
      describe(c.cap, () => {
        // A daily cap is reached by today's spend; a monthly cap by spend earlier this month, with
        // nothing spent today (the planted bug compared the monthly cap with the day's spend).
        const spentAt = T0;
        const now = isDaily(c) ? T0 : NEXT_DAY;

        it('admission: refused with 429 and the cap, its period and reset; the upgrade never happens', async () => {
          const s = setup({}, () => now);
          s.ledger.settle(null, spent(c.spend[0], c.spend[1], spentAt));
          const e = await s.factory.admit!({ tenant: tenant(c.limits), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() });
          expect(e).toBeInstanceOf(ProxyError);
          const err = e as ProxyError;
          expectBudgetError(err, c, now);
          expect(err.httpStatus).toBe(429);
          expect(err.closeCode).toBe(4002);
        });

        it('admission: a tenant one unit below the cap is admitted, and so is one over it only in the other unit', async () => {
          for (const [nanos, tokens] of [[c.spend[0] - (c.shown.unit === 'USD' ? 1 : 0), c.spend[1] - (c.shown.unit === 'USD' ? 0 : 1)], c.otherUnit]) {
            const s = setup({}, () => now);
            s.ledger.settle(null, spent(nanos!, tokens!, spentAt));
            expect(await s.factory.admit!({ tenant: tenant(c.limits), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
          }
        });

        it('in session: response.create is refused (non-fatal error naming the cap) and a VAD response is cancelled', () => {
          const s = setup({}, () => now);
          s.ledger.settle(null, spent(c.spend[0], c.spend[1], spentAt));
          const { ctx, f } = session(s, c.limits);
          const e = rejected(client(f, { type: 'response.create', event_id: 'c1' }));
          expectBudgetError(e, c, now);
          expect(e?.closesSession).toBe(false);
          expect(e?.eventId).toBe('c1');
          expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: c.cap, code: 'budget_exceeded', responseId: null });
          server(f, created('resp_vad'));
          expect(ctx.cancelled.map((x) => [x.responseId, x.by, x.notice.code, x.notice.details?.['cap'], x.notice.closesSession])).toEqual([['resp_vad', 'metering', 'budget_exceeded', c.cap, false]]);
          expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'cancelled', scope: 'tenant', limit: c.cap, code: 'budget_exceeded', responseId: 'resp_vad' });
          expect(ctx.closedWith).toBeNull();
          expect(f.summary!()).toMatchObject({ meteringRefused: 1, meteringCancelled: 1 });
          expect(ctx.reports.some((r) => r.kind === 'budget' && r.action === 'ended')).toBe(false); // refuse policy: the session goes on
        });

        it('in session: under the cap (or over it in the other unit only), a create and a VAD response run', () => {
          for (const start of ['create', 'vad'] as const) {
            const s = setup({}, () => now);
            s.ledger.settle(null, spent(c.otherUnit[0], c.otherUnit[1], spentAt));
            const { ctx, f } = session(s, c.limits);
            if (start === 'create') expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
            server(f, created('resp_1'));
            expect(ctx.cancelled).toEqual([]);
            // Its worst case is reserved until it is billed.
            const st = s.ledger.status('acme', s.rt.limitsOf(ctx.tenant).caps, now);
            expect(st.day.reserved.tokens).toBeGreaterThan(4096);
          }
        });

        it('end_session: the response that reaches the cap ends the session with 4002 once it is billed', () => {
          const s = setup({ onExhausted: 'end_session' }, () => now);
          // Earlier spend one unit short of the cap; this session's first response reaches it.
          s.ledger.settle(null, spent(c.spend[0] - (c.shown.unit === 'USD' ? 1 : 0), c.spend[1] - (c.shown.unit === 'USD' ? 0 : 1), spentAt));
          const { ctx, f } = session(s, c.limits);
          expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
          server(f, created('resp_1'));
          expect(ctx.closedWith).toBeNull();
          server(f, done('resp_1', usage(10, 0, 1, 0)));
          expect(ctx.closedWith?.code).toBe('budget_exceeded');
          expect(ctx.closedWith?.closeCode).toBe(4002);
          expect(ctx.closedWith?.details?.['cap']).toBe(c.cap);
          expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'tenant', limit: c.cap, code: 'budget_exceeded', responseId: null });
          // Once ending, any further create gets the same error, not a new reservation.
          const again = rejected(client(f, { type: 'response.create', event_id: 'c2' }));
          expect([again?.code, again?.eventId, again?.closesSession, again?.details?.['cap']]).toEqual(['budget_exceeded', 'c2', false, c.cap]);
        });

        it('refuse policy with input transcription: the transcription that reaches the cap holds input audio back, naming the cap, until that cap is raised', () => {
          let clock = now;
          const s = setup({}, () => clock);
          s.ledger.settle(null, spent(c.spend[0] - (c.shown.unit === 'USD' ? 1 : 0), c.spend[1] - (c.shown.unit === 'USD' ? 0 : 1), spentAt));
          const { ctx, f } = session(s, c.limits);
          server(f, transcriptionSession());
          expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('continue');
          server(f, transcribed('item_1', { type: 'tokens', input_tokens: 10, output_tokens: 1, total_tokens: 11, input_token_details: { audio_tokens: 10 } }));
          const v = f.onClient!(appendFrame()) as Verdict;
          expect(rejected(v)?.details?.['cap']).toBe(c.cap);
          expect(rejected(v)?.param).toBe('input_audio_buffer.append');
          // Rechecked every 5 s: still over this cap (whatever the other period's spend), still held.
          clock += 5000;
          expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('drop');
          expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('drop');
          // The operator raises this cap: at the next recheck audio flows again.
          s.ledger.setOverride('acme', isDaily(c) ? 'day' : 'month', c.shown.unit === 'USD' ? { nanos: 1_000_000_000 } : { tokens: 1_000_000 });
          clock += 5000;
          expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('drop');
          expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('continue');
          expect(ctx.closedWith).toBeNull();
        });
      });
    }

    it('monthly cap: spend on an earlier day of the month counts, spend in the previous month does not', async () => {
      const limits = { monthlyUsd: '0.05' };
      const lastMonth = monthStart(T0) - 3_600_000;
      const s = setup({}, () => NEXT_DAY);
      s.ledger.settle(null, spent(50_000_000, 0, lastMonth));
      expect(await s.factory.admit!({ tenant: tenant(limits), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      s.ledger.settle(null, spent(50_000_000, 0, T0));
      expect((await s.factory.admit!({ tenant: tenant(limits), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }) as ProxyError).details?.['cap']).toBe('monthly_usd');
    });

    it('daily cap: yesterday\'s spend does not count today', async () => {
      const s = setup({}, () => NEXT_DAY);
      s.ledger.settle(null, spent(50_000_000, 5000, T0));
      expect(await s.factory.admit!({ tenant: tenant({ dailyUsd: '0.05', dailyTokens: 5000 }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      const { f } = session(s, { dailyUsd: '0.05', dailyTokens: 5000 });
      // Let through as it is (the relay gives it its event_id).
      expect(client(f, { type: 'response.create' }).kind).toBe('continue');
    });

    it('a session admitted under the monthly cap is stopped in session when its responses reach it (day still under)', () => {
      const s = setup({}, () => NEXT_DAY);
      s.ledger.settle(null, spent(40_000_000, 0, T0)); // $0.04 earlier this month
      const { ctx, f } = session(s, { dailyUsd: '1', monthlyUsd: '0.05' });
      expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(1000, 0, 500, 0))); // $0.012 today: month $0.052, day $0.012
      const e = rejected(client(f, { type: 'response.create', event_id: 'c2' }));
      expect(e?.details).toMatchObject({ cap: 'monthly_usd', spent: '0.052', limit: '0.05' });
      expect(ctx.closedWith).toBeNull();
    });
  });

  describe('caps: the per-session token limit (issue 16)', () => {
    it('a session below its limit runs; at the limit its next create is refused with token_limit_exceeded (not fatal)', () => {
      const s = setup();
      const { ctx, f } = session(s, { maxSessionTokens: 100 });
      client(f, { type: 'response.create' });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(60, 0, 39, 0))); // 99 tokens
      expect(client(f, { type: 'response.create', event_id: 'c2' }).kind).toBe('continue');
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(1, 0, 0, 0))); // 100 tokens
      const e = rejected(client(f, { type: 'response.create', event_id: 'c3' }));
      expect([e?.code, e?.eventId, e?.closesSession, e?.details]).toEqual(['token_limit_exceeded', 'c3', false, { limit: 100, used: 100, reserved: 0 }]);
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null });
      // A server-started response past the limit is cancelled before any output.
      server(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.details])).toEqual([['resp_vad', 'token_limit_exceeded', { limit: 100, used: 100, reserved: 0 }]]);
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'cancelled', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: 'resp_vad' });
      expect(ctx.closedWith).toBeNull();
    });

    it('is per session: the tenant\'s other session, and its spend in the ledger, are not limited by it', () => {
      const s = setup();
      const a = session(s, { maxSessionTokens: 100 });
      client(a.f, { type: 'response.create' });
      server(a.f, created('resp_1'));
      server(a.f, done('resp_1', usage(100, 0, 50, 0)));
      expect(client(a.f, { type: 'response.create' }).kind).toBe('reject');
      const b = session(s, { maxSessionTokens: 100 });
      expect(client(b.f, { type: 'response.create', event_id: 'b1' }).kind).toBe('continue');
    });

    it('input transcription tokens count against the session limit', () => {
      const s = setup();
      const { f } = session(s, { maxSessionTokens: 100 });
      server(f, transcriptionSession('gpt-4o-transcribe'));
      server(f, transcribed('item_1', { type: 'tokens', input_tokens: 90, output_tokens: 10, total_tokens: 100, input_token_details: { audio_tokens: 90 } }));
      expect(rejected(client(f, { type: 'response.create' }))?.details).toEqual({ limit: 100, used: 100, reserved: 0 });
    });

    it('end_session: the response that reaches the limit ends the session with 4002 token_limit_exceeded', () => {
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { maxSessionTokens: 100 });
      client(f, { type: 'response.create' });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(60, 0, 39, 0)));
      expect(ctx.closedWith).toBeNull();
      client(f, { type: 'response.create' });
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(1, 0, 0, 0)));
      expect([ctx.closedWith?.code, ctx.closedWith?.closeCode, ctx.closedWith?.details]).toEqual(['token_limit_exceeded', 4002, { limit: 100, used: 100, reserved: 0 }]);
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null });
    });

    it('end_session: a create past the limit ends the session (no error event of its own, the close carries it)', () => {
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { maxSessionTokens: 0 });
      expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('drop');
      expect([ctx.closedWith?.code, ctx.closedWith?.closeCode]).toEqual(['token_limit_exceeded', 4002]);
    });

    it('end_session: a VAD response over a cost cap is cancelled and the session ends once it is billed', () => {
      const s = setup({ onExhausted: 'end_session' });
      s.ledger.settle(null, spent(50_000_000));
      const { ctx, f } = session(s, { monthlyUsd: '0.05' });
      server(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => [c.notice.code, c.notice.details?.['cap'], c.notice.closesSession])).toEqual([['budget_exceeded', 'monthly_usd', false]]);
      // The session is ending from the cancel on (a create meanwhile gets the ending error), not only from the settle.
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'tenant', limit: 'monthly_usd', code: 'budget_exceeded', responseId: null });
      server(f, done('resp_vad', usage(5, 0, 0, 0), 'cancelled'));
      expect([ctx.closedWith?.code, ctx.closedWith?.closeCode, ctx.closedWith?.details?.['cap']]).toEqual(['budget_exceeded', 4002, 'monthly_usd']);
    });

    it('end_session: a VAD response cancelled for another reason (unpriced model) does not end the session', () => {
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { dailyUsd: '1' }, 'gpt-9');
      server(f, created('resp_vad'));
      server(f, done('resp_vad', usage(5, 0, 0, 0), 'cancelled'));
      expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['unknown_model_price']);
      expect(ctx.closedWith).toBeNull();
      // The session's model, not the tenant's cap: a call's governor ends the call with this code
      // (until 2026-12-06 reported as the tenant's, so a call was hung up as over its cost cap).
      expect(ctx.reports.filter((r) => r.kind === 'budget')).toEqual([{ kind: 'budget', action: 'cancelled', scope: 'session', limit: 'unknown_model_price', code: 'unknown_model_price', responseId: 'resp_vad' }]);
    });

    it('end_session: a VAD response past the limit is cancelled and the session ends', () => {
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { maxSessionTokens: 0 });
      server(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.closesSession])).toEqual([['resp_vad', 'token_limit_exceeded', false]]);
      expect(ctx.closedWith).toBeNull(); // waits for the cancelled response's response.done
      server(f, done('resp_vad', usage(5, 0, 0, 0), 'cancelled'));
      expect([ctx.closedWith?.code, ctx.closedWith?.closeCode]).toEqual(['token_limit_exceeded', 4002]);
      expect(s.records.map((r) => [r.ref, r.status, r.settledBy])).toEqual([['resp_vad', 'cancelled', 'response.done']]);
    });
  });
});

/**
 * The metering filter against a ledger that answers asynchronously (as Redis does) and one that
 * fails: who is refused, with which code and close code, and what is billed. No sockets.
 */
describe("metering filter: an asynchronous or failing ledger", () => {
  const q = new Map<string, string>();
  const flush = () => new Promise<void>((r) => setImmediate(r));

  function asyncSetup(config: Record<string, unknown> = {}, wall: () => number = () => T0) {
    let a!: AsyncLedger;
    const s = setup(config, wall, (l) => (a = new AsyncLedger(l)));
    return { ...s, async: a };
  }

  const reserved = (s: ReturnType<typeof asyncSetup>) => s.ledger.status('acme', { dayNanos: 1, monthNanos: null, dayTokens: null, monthTokens: null }, T0).day.reserved;

  describe('metering filter: an asynchronous ledger (Redis)', () => {
    it('a create under the cap waits for the reservation, then goes upstream; over the cap it is refused', async () => {
      const s = asyncSetup();
      const { f } = session(s, { dailyUsd: '0.05' });
      const ok = client(f, { type: 'response.create', event_id: 'c1' });
      expect(ok).toBeInstanceOf(Promise);
      expect((await ok).kind).toBe('continue');
      expect(reserved(s).nanos).toBeGreaterThan(0);
      await serverAsync(f, created('resp_1'));
      await serverAsync(f, done('resp_1', usage(10_000, 0, 500, 0))); // $0.048
      await flush();
      expect(s.ledger.status('acme', { dayNanos: 1, monthNanos: null, dayTokens: null, monthTokens: null }, T0).day.spent.nanos).toBe(48_000_000);
      s.ledger.settle(null, spent(2_000_000));
      const v = await clientAsync(f, { type: 'response.create', event_id: 'c2' });
      expect(v.kind === 'reject' && [v.error.code, v.error.details?.['cap'], v.error.closesSession]).toEqual(['budget_exceeded', 'daily_usd', false]);
    });

    it('a spent cap the ledger reports only after the session closed neither ends nor holds the closed session', async () => {
      for (const onExhausted of ['end_session', 'refuse'] as const) {
        const s = asyncSetup({ onExhausted });
        const { ctx, f } = session(s, { dailyUsd: '0.05' });
        // A transcribed session: the refuse policy checks the cap after each response too.
        server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } });
        expect((await clientAsync(f, { type: 'response.create', event_id: 'c1' })).kind).toBe('continue');
        await serverAsync(f, created('resp_1'));
        // Over the cap; the ledger's answer to the check after it comes once the client has gone.
        await serverAsync(f, done('resp_1', usage(20_000, 0, 500, 0)));
        f.onClose!({ initiator: 'client', code: 1000, reason: '' });
        await flush();
        expect({ onExhausted, closedWith: ctx.closedWith, toClient: ctx.client, watched: [...ctx.watched.keys()] }).toEqual({ onExhausted, closedWith: null, toClient: [], watched: [] });
      }
    });

    it('a VAD response is reserved asynchronously; over the cap it is cancelled and input audio is held back', async () => {
      const s = asyncSetup();
      s.ledger.settle(null, spent(50_000_000));
      const { ctx, f } = session(s, { dailyUsd: '0.05' });
      expect((await serverAsync(f, created('resp_vad'))).kind).toBe('continue');
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.details?.['cap']])).toEqual([['resp_vad', 'budget_exceeded', 'daily_usd']]);
      const held = f.onClient!(appendFrame()) as Verdict;
      expect(held.kind === 'reject' && [held.error.code, held.error.param]).toEqual(['budget_exceeded', 'input_audio_buffer.append']);
      // Its response.done is billed all the same.
      await serverAsync(f, done('resp_vad', usage(100, 0, 0, 0), 'cancelled'));
      expect(s.records.map((r) => [r.ref, r.status, r.costNanos])).toEqual([['resp_vad', 'cancelled', 400_000]]);
    });

    it('held input audio flows again as soon as a response is admitted (the cap was raised), without waiting for the recheck', async () => {
      const s = asyncSetup();
      s.ledger.settle(null, spent(50_000_000));
      const { f } = session(s, { dailyUsd: '0.05' });
      await serverAsync(f, created('resp_vad'));
      expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('reject');
      s.ledger.setOverride('acme', 'day', { nanos: 1_000_000_000 });
      expect((await clientAsync(f, { type: 'response.create', event_id: 'c1' })).kind).toBe('continue');
      expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('continue');
    });

    it('an uncapped tenant\'s create refused upstream releases nothing in the ledger (nothing was reserved)', async () => {
      const s = asyncSetup();
      const { f } = session(s);
      await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      await serverAsync(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'c1' } });
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(s.async.calls).toEqual([]);
    });

    it('a VAD response under the cap holds its reservation until its response.done', async () => {
      const s = asyncSetup();
      const { ctx, f } = session(s, { dailyUsd: '100' });
      await serverAsync(f, created('resp_vad'));
      expect(ctx.cancelled).toEqual([]);
      const r = reserved(s);
      expect(r.tokens).toBe(8 + 4096);
      await serverAsync(f, done('resp_vad', usage(100, 0, 0, 0)));
      await flush();
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    });

    it('a tenant the ledger already knows to be over a cap: the VAD response is cancelled at once, before any ledger round trip', () => {
      const s = asyncSetup();
      const { ctx, f } = session(s, { dailyUsd: '0.05' });
      const hit: CapHit = { cap: 'daily_usd', period: dayPeriod(T0), limit: 50_000_000, spent: 60_000_000, reserved: 0 };
      s.async.knownOverHit = hit;
      const v = server(f, created('resp_vad'));
      expect(v).toEqual({ kind: 'continue' }); // synchronous: no frame of it passes before the cancel
      expect(s.async.calls).not.toContain('reserve');
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.details?.['spent']])).toEqual([['resp_vad', 'budget_exceeded', '0.06']]);
      expect((f.onClient!(appendFrame()) as Verdict).kind).toBe('reject');
    });

    it('the session closes while the reservation is in flight: the create is dropped and its reservation released', async () => {
      const s = asyncSetup();
      const { f } = session(s, { dailyUsd: '100' });
      const pending = client(f, { type: 'response.create', event_id: 'c1' });
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(await pending).toEqual({ kind: 'drop' });
      await flush();
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
      expect(s.async.calls.filter((c) => c === 'release')).toHaveLength(1);
    });

    it('the session closes while a VAD reservation is in flight: the response started, billed at its reservation, nothing left reserved', async () => {
      // Until 2026-12-07 it was released unbilled (test/metering/redteam-22-close-during-reserve.test.ts).
      const s = asyncSetup();
      const { f } = session(s, { dailyUsd: '100' });
      const pending = server(f, created('resp_vad'));
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(await pending).toEqual({ kind: 'continue' });
      await flush();
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
      expect(s.records.map((r) => [r.ref, r.settledBy, r.estimated])).toEqual([['resp_vad', 'client_gone_estimate', true]]);
      expect(s.records[0]!.costNanos).toBeGreaterThan(0);
    });

    it('a refused reservation in flight at close releases nothing it does not hold', async () => {
      const s = asyncSetup();
      s.ledger.settle(null, spent(50_000_000));
      const { f } = session(s, { dailyUsd: '0.05' });
      const a = client(f, { type: 'response.create', event_id: 'c1' });
      const b = server(f, created('resp_vad'));
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(await a).toEqual({ kind: 'drop' });
      expect(await b).toEqual({ kind: 'continue' });
      await flush();
      expect(s.async.calls).not.toContain('release');
    });
  });

  describe('metering filter: the ledger unavailable', () => {
    for (const fault of ['reject', 'throw'] as const) {
      it(`failMode closed (${fault}): a create is refused with budget_unavailable (session stays), a VAD response is cancelled`, async () => {
        const s = asyncSetup();
        s.async.faults.set('reserve', fault);
        const { ctx, f } = session(s, { dailyUsd: '1' });
        const v = await clientAsync(f, { type: 'response.create', event_id: 'c1' });
        expect(v.kind === 'reject' && [v.error.code, v.error.eventId, v.error.closesSession]).toEqual(['budget_unavailable', 'c1', false]);
        // A fixed reason: the ledger's own error text stays out of what clients see.
        expect(v.kind === 'reject' && v.error.details?.['reason']).toBe('ledger unavailable');
        // Logged either way, with why (the text clients are not shown).
        expect(s.logs.filter((l) => l.level === 'error' && l.msg === 'metering: reserve failed')).toHaveLength(1);
        expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ledger_unavailable', scope: 'tenant', limit: 'ledger', code: 'budget_unavailable', responseId: null });
        await serverAsync(f, created('resp_vad'));
        expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_vad', 'budget_unavailable']]);
        expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ledger_unavailable', scope: 'tenant', limit: 'ledger', code: 'budget_unavailable', responseId: 'resp_vad' });
        expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'cancelled', scope: 'tenant', limit: 'budget_unavailable', code: 'budget_unavailable', responseId: 'resp_vad' });
        expect(ctx.closedWith).toBeNull();
        expect(f.summary!()).toMatchObject({ meteringRefused: 1, meteringCancelled: 1 });
      });
    }

    it("the ledger's own unavailable text never reaches the client: a fixed reason does (it names the ledger's address)", async () => {
      const s = asyncSetup();
      s.async.reserveUnavailable = 'connect ECONNREFUSED 10.0.0.7:6379';
      const { ctx, f } = session(s, { dailyUsd: '1' });
      const v = await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      expect(v.kind === 'reject' && v.error.details).toEqual({ reason: 'ledger unavailable' });
      await serverAsync(f, created('resp_vad'));
      expect(ctx.cancelled[0]?.notice.details).toEqual({ reason: 'ledger unavailable' });
    });

    it('failMode open: responses run unreserved, and are still billed at response.done', async () => {
      const s = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
      s.async.reserveUnavailable = 'redis down';
      const { ctx, f } = session(s, { dailyUsd: '1' });
      expect((await clientAsync(f, { type: 'response.create', event_id: 'c1' })).kind).toBe('continue');
      await serverAsync(f, created('resp_1'));
      await serverAsync(f, created('resp_vad'));
      expect(ctx.cancelled).toEqual([]);
      await serverAsync(f, done('resp_1', usage(1000, 0, 0, 0)));
      await flush();
      expect(s.records.map((r) => [r.ref, r.costNanos])).toEqual([['resp_1', 4_000_000]]);
      // The VAD response, unreserved, is billed at its worst case if its done never comes.
      f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
      expect(s.records.map((r) => [r.ref, r.settledBy])).toEqual([['resp_1', 'response.done'], ['resp_vad', 'upstream_drop_estimate']]);
    });

    it('failMode open, but the primary (not the ledger behind it) did not answer a relay worker: refused, never run unreserved', async () => {
      const s = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
      s.async.reserveUnavailable = 'ledger owner did not answer reserve within 5000 ms';
      s.async.ownerSilent = true;
      const { ctx, f } = session(s, { dailyUsd: '1' });
      const v = await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      expect(v.kind === 'reject' && v.error.code).toBe('budget_unavailable');
      await serverAsync(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['budget_unavailable']);
    });

    it('failMode open, but the Redis ledger\'s settle queue is full: refused, never run unreserved', async () => {
      const s = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
      s.async.reserveUnavailable = 'redis ledger: usage records not written (queue full)';
      s.async.queueFull = true;
      const { ctx, f } = session(s, { dailyUsd: '1' });
      const v = await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      expect(v.kind === 'reject' && v.error.code).toBe('budget_unavailable');
      await serverAsync(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['budget_unavailable']);
    });

    it('a settle that fails still exports the record and keeps the session going; a failing export is logged', async () => {
      const s = asyncSetup();
      s.async.faults.set('settle', 'reject');
      const { ctx, f } = session(s);
      client(f, { type: 'response.create', event_id: 'c1' });
      await serverAsync(f, created('resp_1'));
      await serverAsync(f, done('resp_1', usage(1000, 0, 0, 0)));
      await flush();
      expect(s.records.map((r) => r.ref)).toEqual(['resp_1']);
      expect(s.logs.some((l) => l.level === 'error' && l.msg === 'metering: settle failed')).toBe(true);
      s.async.faults.set('settle', 'throw');
      await serverAsync(f, created('resp_2'));
      await serverAsync(f, done('resp_2', usage(1000, 0, 0, 0)));
      expect(s.records.map((r) => r.ref)).toEqual(['resp_1', 'resp_2']);
      expect(s.logs.filter((l) => l.msg === 'metering: settle failed').map((l) => l['ref'] ?? (l['record'] as { ref: string }).ref)).toEqual(['resp_1', 'resp_2']);
      // The export sink failing (disk full) is logged too; billing goes on.
      s.async.faults.delete('settle');
      (s.rt as { onRecord: (r: unknown) => void }).onRecord = () => {
        throw new Error('disk full');
      };
      await serverAsync(f, created('resp_3'));
      await serverAsync(f, done('resp_3', usage(1000, 0, 0, 0)));
      await flush();
      expect(s.logs.some((l) => l.level === 'error' && l.msg === 'metering: usage export failed')).toBe(true);
      expect(s.ledger.usagePage('acme', 0, 10).records.map((r) => r.ref)).toEqual(['resp_3']);
      expect(ctx.closedWith).toBeNull();
    });

    it('a release that fails (rejects or throws) is swallowed: the session goes on', async () => {
      for (const fault of ['reject', 'throw'] as const) {
        const s = asyncSetup();
        s.async.faults.set('release', fault);
        const { ctx, f } = session(s, { dailyUsd: '1' });
        await clientAsync(f, { type: 'response.create', event_id: 'c1' });
        await serverAsync(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: lastSent(f) } });
        await flush();
        expect(ctx.closedWith).toBeNull();
        expect(s.async.calls).toContain('release');
        expect(s.logs.some((l) => l.msg === 'metering: release failed')).toBe(fault === 'throw');
      }
    });

    it('refuse policy without input transcription: a settle does not ask the ledger for status (nothing to hold back)', async () => {
      const s = asyncSetup();
      const { f } = session(s, { dailyUsd: '0.001' });
      await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      await serverAsync(f, created('resp_1'));
      await serverAsync(f, done('resp_1', usage(1000, 0, 0, 0)));
      await flush();
      expect(s.async.calls).not.toContain('status');
    });

    it('end_session: a session that closes while the status after a settle is in flight is not ended again', async () => {
      const s = asyncSetup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { dailyUsd: '0.001' });
      await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      await serverAsync(f, created('resp_1'));
      await serverAsync(f, done('resp_1', usage(1000, 0, 0, 0)));
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      await flush();
      expect(ctx.closedWith).toBeNull();
      expect(ctx.reports.some((r) => r.kind === 'budget' && r.action === 'ended')).toBe(false);
    });

    it('end_session: a ledger status that fails after a settle leaves the session open', async () => {
      for (const fault of ['reject', 'throw'] as const) {
        const s = asyncSetup({ onExhausted: 'end_session' });
        s.async.faults.set('status', fault);
        const { ctx, f } = session(s, { dailyUsd: '0.001' });
        await clientAsync(f, { type: 'response.create', event_id: 'c1' });
        await serverAsync(f, created('resp_1'));
        await serverAsync(f, done('resp_1', usage(1000, 0, 0, 0)));
        await flush();
        expect(ctx.closedWith).toBeNull();
      }
    });

    it('end_session with an asynchronous ledger: the settle that reaches the cap ends the session (4002)', async () => {
      const s = asyncSetup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { dailyUsd: '0.004' });
      await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      await serverAsync(f, created('resp_1'));
      await serverAsync(f, done('resp_1', usage(1000, 0, 0, 0)));
      await flush();
      await flush();
      expect([ctx.closedWith?.code, ctx.closedWith?.closeCode, ctx.closedWith?.details?.['cap']]).toEqual(['budget_exceeded', 4002, 'daily_usd']);
    });

    it('held input audio: the recheck is asynchronous and one at a time; a failed recheck keeps audio held and is retried a second later', async () => {
      let now = T0;
      const s = asyncSetup({}, () => now);
      s.ledger.settle(null, spent(50_000_000));
      const { f } = session(s, { dailyUsd: '0.05' });
      await serverAsync(f, created('resp_vad')); // cancelled over the cap: audio held
      const append = () => f.onClient!(appendFrame()) as Verdict;
      expect(append().kind).toBe('reject');
      now += 4999;
      expect(append().kind).toBe('drop');
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(0);
      now += 1;
      s.async.faults.set('status', 'reject');
      expect(append().kind).toBe('drop');
      expect(append().kind).toBe('drop'); // a recheck is running: not asked twice
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(1);
      await flush();
      s.async.faults.delete('status');
      s.ledger.setOverride('acme', 'day', { nanos: 1_000_000_000 });
      // A failed recheck is retried after 1 s, not at every frame (until 2026-12-07 each frame
      // asked a ledger that was down: one IPC round trip per 20-40 ms frame in a relay worker).
      for (let i = 0; i < 10; i++) expect(append().kind).toBe('drop');
      now += 999;
      expect(append().kind).toBe('drop');
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(1);
      now += 1;
      expect(append().kind).toBe('drop'); // the failed recheck is retried
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(2);
      await flush();
      expect(append().kind).toBe('continue');
    });

    it('held input audio: after a recheck that finds the cap still spent, the next one waits another 5 s', async () => {
      let now = T0;
      const s = asyncSetup({}, () => now);
      s.ledger.settle(null, spent(50_000_000));
      const { ctx, f } = session(s, { dailyUsd: '0.05' });
      await serverAsync(f, created('resp_vad'));
      const append = () => f.onClient!(appendFrame()) as Verdict;
      const held = append();
      expect(held.kind === 'reject' && held.error.message).toMatch(/^The tenant daily cost budget is exhausted \(resets .*\)\. Input audio is not accepted until the budget allows\.$/);
      expect(f.summary!()).toMatchObject({ meteringRefused: 1, meteringCancelled: 1 });
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: 'daily_usd', code: 'budget_exceeded', responseId: null });
      // Another VAD response cancelled over the cap: the client was told once, it is not told again.
      await serverAsync(f, created('resp_vad2'));
      expect(append().kind).toBe('drop');
      now += 5000;
      append();
      await flush();
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(1);
      now += 4999;
      append();
      await flush();
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(1);
      now += 1;
      append();
      expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(2);
      expect(f.summary!()).toMatchObject({ meteringRefused: 1 });
    });
  });

  describe('metering filter: admission with a ledger that fails', () => {
    it('failMode closed: a capped tenant whose spend cannot be read is refused with budget_unavailable (HTTP 503 before the upgrade, 1013 after it; was HTTP 500); open admits', async () => {
      for (const fault of ['reject', 'throw'] as const) {
        const closed = asyncSetup();
        closed.async.faults.set('status', fault);
        const e = await closed.factory.admit!({ tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() });
        expect(e instanceof ProxyError && [e.code, e.closeCode, e.httpStatus]).toEqual(['budget_unavailable', 1013, 503]);
        expect(closed.logs.some((l) => l.level === 'warn' && l.msg === 'metering: ledger status unavailable at admission' && l['tenant'] === 'acme')).toBe(true);
        expect(closed.logs.find((l) => l.msg === 'metering: ledger status unavailable at admission')?.['err']).toBe(fault === 'reject' ? 'status: redis down' : 'status: ledger broken');
        const open = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
        open.async.faults.set('status', fault);
        expect(await open.factory.admit!({ tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      }
    });

    it('a tenant without caps is admitted without asking the ledger', async () => {
      const s = asyncSetup();
      s.async.faults.set('status', 'throw');
      expect(await s.factory.admit!({ tenant: tenant({ maxSessionTokens: 5 }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      expect(s.async.calls).toEqual([]);
    });

    it('concurrent-session slots unavailable: refused with budget_unavailable (closed), admitted (open)', async () => {
      const closed = asyncSetup();
      closed.async.slotUnavailable = true;
      const e = await closed.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() });
      expect(e instanceof ProxyError && [e.code, e.closeCode]).toEqual(['budget_unavailable', 1013]);
      const open = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
      open.async.slotUnavailable = true;
      expect(await open.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
    });

    it('refusal at a cap shows what the period has reserved by running responses', async () => {
      const s = setup();
      const running = session(s, { dailyUsd: '100' });
      client(running.f, { type: 'response.create', event_id: 'c1' });
      const held = s.ledger.status('acme', { dayNanos: 1, monthNanos: 1, dayTokens: null, monthTokens: null }, T0);
      s.ledger.settle(null, spent(50_000_000, 10));
      for (const [limits, cap, shown] of [
        [{ dailyUsd: '0.05' }, 'daily_usd', held.day.reserved.nanos],
        [{ monthlyUsd: '0.05' }, 'monthly_usd', held.month.reserved.nanos],
        [{ dailyTokens: 10 }, 'daily_tokens', held.day.reserved.tokens],
        [{ monthlyTokens: 10 }, 'monthly_tokens', held.month.reserved.tokens],
      ] as const) {
        const e = (await s.factory.admit!({ tenant: tenant(limits), model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })) as ProxyError;
        expect(e.details?.['cap']).toBe(cap);
        expect(e.details?.['reserved']).toBe(cap.endsWith('_usd') ? (shown / 1e9).toString() : shown);
      }
    });
  });

  describe('metering filter: admission probe (calls) and concurrent-session slots', () => {
    it('the probe refuses like admission but never holds a slot', async () => {
      const s = setup();
      const t = tenant({ maxConcurrentSessions: 1 });
      expect(await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
      expect(await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
      // A real session takes the only slot: the probe now says so.
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      const e = await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q });
      expect(e?.code).toBe('concurrent_sessions_exceeded');
      expect(e?.details).toEqual({ limit: 1 });
      expect(e?.httpStatus).toBe(429);
      expect(e?.closeCode).toBe(4002);
    });

    it('the probe for a tenant without a concurrency cap asks for no slot', async () => {
      const s = asyncSetup();
      expect(await admissionProbe(s.rt, { tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q })).toBeNull();
      expect(s.async.calls).toEqual(['status']);
    });

    it('the probe refuses unpriced models and tenants at a cap', async () => {
      const s = setup();
      expect((await admissionProbe(s.rt, { tenant: tenant(), model: 'gpt-9', query: q }))?.code).toBe('unknown_model_price');
      s.ledger.settle(null, spent(1));
      expect((await admissionProbe(s.rt, { tenant: tenant({ dailyUsd: '0.000000001' }), model: 'gpt-realtime', query: q }))?.code).toBe('budget_exceeded');
    });

    it('the probe with slots unavailable: budget_unavailable when closed, null when open', async () => {
      const closed = asyncSetup();
      closed.async.slotUnavailable = true;
      expect((await admissionProbe(closed.rt, { tenant: tenant({ maxConcurrentSessions: 2 }), model: 'gpt-realtime', query: q }))?.closeCode).toBe(1013);
      const open = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
      open.async.slotUnavailable = true;
      expect(await admissionProbe(open.rt, { tenant: tenant({ maxConcurrentSessions: 2 }), model: 'gpt-realtime', query: q })).toBeNull();
      expect(open.async.calls).not.toContain('releaseSlot');
    });

    it('a slot whose upgrade never completes is released after 30 s; a session claims its slot once', async () => {
      vi.useFakeTimers();
      const s = setup();
      const t = tenant({ maxConcurrentSessions: 2 });
      const completes = new AdmissionTicket();
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: completes })).toBeNull();
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
      // One upgrade completes: its session holds a slot for as long as it runs.
      const a = session(s, { maxConcurrentSessions: 2 }, 'gpt-realtime', undefined, completes);
      vi.advanceTimersByTime(29_999);
      expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
      vi.advanceTimersByTime(1);
      // The other never did: its slot is free again, the session's is not.
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
      vi.advanceTimersByTime(60_000);
      a.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
    });

    it('a slot released after 30 s is not handed to a later session: that session claims the slot admitted for it', async () => {
      vi.useFakeTimers();
      const s = setup();
      const t = tenant({ maxConcurrentSessions: 1 });
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      vi.advanceTimersByTime(30_000); // that upgrade never completed
      const ticket = new AdmissionTicket();
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket })).toBeNull();
      const a = session(s, { maxConcurrentSessions: 1 }, 'gpt-realtime', undefined, ticket);
      a.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      // Its close frees its own slot at once, not 30 s later.
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
    });

    it('the filter declares what it must see: every event that changes cost or the estimate, never output audio; it fails closed', () => {
      const f = setup().factory;
      expect(f.name).toBe('metering');
      expect(f.failMode).toBe('closed');
      expect(f.wants.client).toEqual(['response.create', 'session.update', 'conversation.item.create', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'transcription_session.update', 'session.input_audio_buffer.append']);
      expect(f.wants.server).toEqual([
        'input_audio_buffer.committed',
        'input_audio_buffer.cleared',
        'input_audio_buffer.speech_started',
        'session.created',
        'session.updated',
        'transcription_session.updated',
        'response.created',
        'response.done',
        'conversation.item.input_audio_transcription.completed',
        'conversation.item.input_audio_transcription.failed',
        'conversation.item.done',
        'response.output_item.added',
        'conversation.item.added',
        'mcp_list_tools.failed',
        'error',
      ]);
    });

    it('two sessions of one tenant claim two parked slots; a session without a parked slot releases nothing', async () => {
      const s = setup();
      const t = tenant({ maxConcurrentSessions: 2 });
      const [forA, forB] = [new AdmissionTicket(), new AdmissionTicket()];
      await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: forA });
      await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: forB });
      const a = session(s, { maxConcurrentSessions: 2 }, 'gpt-realtime', undefined, forA);
      const b = session(s, { maxConcurrentSessions: 2 }, 'gpt-realtime', undefined, forB);
      const c = session(s, { maxConcurrentSessions: 2 }); // e.g. admitted by another path
      c.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
      a.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      a.f.onClose!({ initiator: 'client', code: 1000, reason: '' }); // a second close is a no-op
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
      expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
      b.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() })).toBeNull();
    });

    it('a call the proxy governs: the client\'s own ?call_id= socket is neither admitted against caps nor metered', async () => {
      const s = setup();
      const rt = { ...s.rt, callsGoverned: true };
      const factory = createMeteringFilterFactory(rt);
      s.ledger.settle(null, spent(1));
      const capped = tenant({ dailyUsd: '0.000000001', maxConcurrentSessions: 1 });
      expect(await factory.admit!({ tenant: capped, model: 'gpt-realtime', query: new Map([['call_id', 'rtc_1']]), ticket: new AdmissionTicket() })).toBeNull();
      expect((await factory.admit!({ tenant: capped, model: 'gpt-realtime', query: q, ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
      const { FakeSession } = await import('../../test/support/fake-session.js');
      // The server decides it as it makes the session (SessionContext.watchesGovernedCall).
      const unmetered = factory.create(new FakeSession({ tenant: capped, query: { call_id: 'rtc_1' }, watchesGovernedCall: true }));
      expect([unmetered.onClient, unmetered.onServer, unmetered.onClose]).toEqual([undefined, undefined, undefined]);
      const metered = factory.create(new FakeSession({ tenant: capped }));
      expect(typeof metered.onClient).toBe('function');
      // Without calls governance a call_id socket is metered like any other.
      expect((await s.factory.admit!({ tenant: capped, model: 'gpt-realtime', query: new Map([['call_id', 'rtc_1']]), ticket: new AdmissionTicket() }))?.constructor).toBe(ProxyError);
    });
  });

  describe('metering filter: transcription usage', () => {
    it('an unknown transcription model is billed at the dearest shipped transcription price, marked fallback', () => {
      const s = setup();
      const { f } = session(s);
      server(f, transcriptionSession('mystery-stt'));
      server(f, transcribed('item_1', { type: 'tokens', input_tokens: 180, output_tokens: 40, total_tokens: 220, input_token_details: { text_tokens: 20, audio_tokens: 160 } }));
      expect(s.records).toEqual([expect.objectContaining({ model: 'mystery-stt', costNanos: 1_410_000, fallbackPrice: true, source: 'transcription', ref: 'item_1' })]);
      expect(s.logs.some((l) => l.level === 'warn' && /transcription with an unknown model billed at gpt-4o-transcribe/.test(l.msg))).toBe(true);
    });

    it('transcription without a transcription model in the session is billed at the last-resort price under its id', () => {
      const s = setup();
      const { f } = session(s);
      server(f, transcribed('item_1', { type: 'duration', seconds: 60 }));
      expect(s.records).toEqual([expect.objectContaining({ model: 'gpt-4o-transcribe', costNanos: 6_000_000, fallbackPrice: true, seconds: 60, estimated: false })]);
    });

    it('a transcription without usage is not billed (logged)', () => {
      const s = setup();
      const { f } = session(s);
      server(f, transcriptionSession('whisper-1'));
      server(f, transcribed('item_1', undefined));
      expect(s.records).toEqual([]);
      expect(s.logs.some((l) => l.level === 'warn' && l.msg === 'metering: input transcription completed without usage; not billed' && l['itemId'] === 'item_1')).toBe(true);
    });

    it('the full record of a transcription: exact upstream usage, counted in the session totals and reported', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, transcriptionSession('gpt-4o-mini-transcribe'));
      server(f, { type: 'conversation.item.input_audio_transcription.completed', content_index: 0, transcript: 'x', usage: { type: 'tokens', input_tokens: 180, output_tokens: 40, total_tokens: 220, input_token_details: { text_tokens: 20, audio_tokens: 160 } } });
      expect(s.records).toEqual([
        {
          ts: T0, tenant: 'acme', session: 'rps_test', source: 'transcription', ref: 'item_unknown', model: 'gpt-4o-mini-transcribe', status: null,
          costNanos: 705_000, inputTokens: 180, outputTokens: 40, cachedTokens: 0, totalTokens: 220, input: null, cached: null, output: null,
          seconds: null, estimated: false, settledBy: 'transcription.completed', fallbackPrice: false,
        },
      ]);
      expect(ctx.reports).toContainEqual({ kind: 'usage', responseId: 'item_unknown', model: 'gpt-4o-mini-transcribe', costMicros: 705, inputTokens: 180, outputTokens: 40, cachedTokens: 0, source: 'transcription' });
      expect(f.summary!()).toMatchObject({ meteringCostNanos: 705_000, meteringTranscriptionUsd: '0.000705', meteringSessionTokens: 220, meteringResponses: 0 });
    });

    describe('a committed input whose transcription never reports (client and upstream gone)', () => {
      // One second of PCM16 at 24 kHz, as the client appends it; the relay counts the frame's bytes.
      const second = { type: 'input_audio_buffer.append', audio: Buffer.alloc(48_000).toString('base64') };
      const wireMs = Math.ceil((JSON.stringify(second).length * 3) / 4 / 48);
      /** The client appends that second, the upstream commits it as `itemId`. */
      const commitSecond = (f: Filter, itemId: string) => {
        client(f, second);
        server(f, { type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });
      };
      // Server VAD that starts no response (the committed items here are its turns): a turn's response unread at the close is billed too (src/metering/filter-twelfth.test.ts).
      const pcmSession = (model: string) => ({ type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model }, turn_detection: { type: 'server_vad', create_response: false } } } } });

      it('is billed at close by its audio length at the model it was committed under, estimated, with the close rule', () => {
        const s = setup();
        const { ctx, f } = session(s);
        server(f, pcmSession('whisper-1'));
        commitSecond(f, 'item_a');
        server(f, pcmSession('gpt-4o-mini-transcribe'));
        f.onClose!({ initiator: 'client', code: 1006, reason: '' });
        expect(wireMs).toBeGreaterThanOrEqual(1000);
        expect(s.records).toEqual([
          {
            ts: T0, tenant: 'acme', session: 'rps_test', source: 'transcription', ref: 'item_a', model: 'whisper-1', status: null,
            // whisper-1: $0.006 per minute.
            costNanos: Math.round((wireMs * 6_000_000) / 60_000), inputTokens: 0, outputTokens: 0, cachedTokens: 0, totalTokens: 0,
            input: null, cached: null, output: null, seconds: wireMs / 1000, estimated: true, settledBy: 'client_gone_estimate', fallbackPrice: false,
          },
        ]);
        expect(f.summary!()).toMatchObject({ meteringEstimated: 1, meteringResponses: 0 });
        expect(ctx.reports).toContainEqual(expect.objectContaining({ kind: 'usage', responseId: 'item_a', source: 'transcription' }));
        expect(s.logs.some((l) => l.level === 'warn' && l.msg === 'metering: transcription without its completed event billed by its audio length' && l['rule'] === 'client_gone_estimate')).toBe(true);
      });

      it('a completed or failed transcription leaves nothing to bill at close; the completed one is billed once, exactly', () => {
        const s = setup();
        const { f } = session(s);
        server(f, pcmSession('whisper-1'));
        for (const id of ['item_a', 'item_b']) {
          commitSecond(f, id);
        }
        server(f, transcribed('item_a', { type: 'duration', seconds: 1 }));
        server(f, { type: 'conversation.item.input_audio_transcription.failed', item_id: 'item_b', content_index: 0, error: { type: 'transcription_error', code: 'x', message: 'x' } });
        f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
        expect(s.records.map((r) => [r.ref, r.settledBy, r.costNanos])).toEqual([['item_a', 'transcription.completed', 100_000]]);
      });

      it('nothing is pending in a session that does not transcribe', () => {
        const s = setup();
        const { f } = session(s);
        commitSecond(f, 'item_a');
        f.onClose!({ initiator: 'client', code: 1006, reason: '' });
        // (The response server VAD starts for that turn, never read, is billed: src/metering/filter-twelfth.test.ts.)
        expect(s.records.filter((r) => r.source === 'transcription')).toEqual([]);
      });

      it('a commit that names no item is not tracked (its completion could not be matched: never billed twice)', () => {
        const s = setup();
        const { f } = session(s);
        server(f, pcmSession('whisper-1'));
        client(f, second);
        server(f, { type: 'input_audio_buffer.committed', previous_item_id: null });
        f.onClose!({ initiator: 'client', code: 1006, reason: '' });
        expect(s.records).toEqual([]);
      });

      it('an exact transcription is not counted or logged as estimated, even when its price conversion is', () => {
        const s = setup();
        const { f } = session(s);
        server(f, pcmSession('whisper-1'));
        commitSecond(f, 'item_a');
        // whisper-1 is priced per minute: tokens are converted to a duration (estimated: true on the record).
        server(f, transcribed('item_a', { type: 'tokens', input_tokens: 10, output_tokens: 2, total_tokens: 12, input_token_details: { text_tokens: 0, audio_tokens: 10 } }));
        f.onClose!({ initiator: 'client', code: 1000, reason: '' });
        expect(s.records.map((r) => [r.ref, r.settledBy, r.estimated])).toEqual([['item_a', 'transcription.completed', true]]);
        expect(f.summary!()).toMatchObject({ meteringEstimated: 0 });
        expect(s.logs.some((l) => l.msg === 'metering: transcription without its completed event billed by its audio length')).toBe(false);
      });

      it('bounded: beyond 256 unanswered commits the oldest is billed at once as dropped by the upstream', () => {
        const s = setup();
        const { f } = session(s);
        server(f, pcmSession('whisper-1'));
        for (let i = 0; i < 257; i++) {
          commitSecond(f, `item_${i}`);
        }
        expect(s.records.map((r) => [r.ref, r.settledBy, r.estimated])).toEqual([['item_0', 'upstream_drop_estimate', true]]);
        // Its completed event, if it comes after all, is not billed a second time.
        server(f, transcribed('item_0', { type: 'duration', seconds: 1 }));
        expect(s.records).toHaveLength(1);
        f.onClose!({ initiator: 'proxy', code: 1001, reason: '' });
        expect(s.records).toHaveLength(257);
        expect(new Set(s.records.map((r) => r.ref)).size).toBe(257);
        expect(s.records.slice(1).every((r) => r.settledBy === 'session_end_estimate')).toBe(true);
      });
    });

    it('the session transcription model can be switched off (transcription: null) and on again', () => {
      const s = setup();
      const { f } = session(s);
      server(f, transcriptionSession('gpt-4o-mini-transcribe'));
      server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: { transcription: null } } } });
      server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm' } } } } });
      server(f, transcribed('item_1', { type: 'duration', seconds: 60 }));
      expect(s.records[0]).toMatchObject({ model: 'gpt-4o-transcribe', fallbackPrice: true });
    });
  });
});

/**
 * The metering filter over one session's life, without sockets: what each reservation holds (the
 * conversation it reads, the prompt, the output limit), clamps, model switches, unpriced models,
 * the end of a session (grace, estimates) and the session-end log.
 */
describe("metering filter: one session's life", () => {
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
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: lastSent(f) } });
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
      const { ctx, f } = session(s, CAPPED);
      const chars = 64_000; // 48,000 bytes: 6 s of G.711 (60 tokens), 1 s of PCM16 (10 tokens)
      // (Server VAD here starts no response for the turns it commits: one unread would count as output in flight, src/metering/filter-twelfth.test.ts.)
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: false } } } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      client(f, { type: 'input_audio_buffer.clear' });
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_0' });
      // The empty commit: one item's framing (8 text, 8 audio).
      expect(probe(s, f)).toEqual({ nanos: BARE.nanos + 8 * 4_000 + 8 * 32_000, tokens: BARE.tokens + 16 });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      // The client's clear starts the buffer again; the upstream's "cleared" answering it is no new start.
      client(f, { type: 'input_audio_buffer.clear' });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.cleared' });
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1' });
      // The relay counts each append frame whole as it leaves (never parsed): its JSON wrapper makes it a little longer.
      const size = appendFrame('A'.repeat(chars)).size;
      const g711 = audioTokensOfBase64(size, 8);
      const pcm16 = audioTokensOfBase64(size, 48);
      expect([g711, pcm16]).toEqual([61, 11]);
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_2' });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16);
      server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_3' });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16 + 16 + g711);
      // A session.updated without a format keeps the known one.
      server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: {} } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_4' });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16 + 16 + g711 + 16 + g711);
      // ...whichever it is: back to PCM16, then an update without a format.
      server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
      server(f, { type: 'session.updated', session: { type: 'realtime', audio: { input: {} } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_5' });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + 16 + g711 + 16 + pcm16 + 16 + g711 + 16 + g711 + 16 + pcm16);
    });

    it('session instructions and tools count as prompt; a response\'s own instructions or tools replace only that part', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'i'.repeat(1000), tools: [] } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 1000);
      expect(probe(s, f, { instructions: 'short' }).tokens).toBe(BARE.tokens + 5);
      // Tools of its own keep the session's instructions (found 2026-12-05: they were dropped from the estimate).
      expect(probe(s, f, { tools: [{ type: 'function', name: 'f' }] }).tokens).toBe(BARE.tokens + 1000 + JSON.stringify([{ type: 'function', name: 'f' }]).length);
      // A session.updated without them keeps them.
      server(f, { type: 'session.updated', session: { type: 'realtime', output_modalities: ['audio'] } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 1000);
      // Each replaces its own part: new instructions keep the tools, new tools keep the instructions.
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'j'.repeat(200) } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 200);
      const tools = [{ type: 'function', name: 'lookup_order', description: 'd'.repeat(300) }];
      server(f, { type: 'session.updated', session: { type: 'realtime', tools } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 200 + JSON.stringify(tools).length);
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'k' } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 1 + JSON.stringify(tools).length);
      // A response with instructions of its own still runs with the session's tools (found 2026-12-05).
      expect(probe(s, f, { instructions: 'short' }).tokens).toBe(BARE.tokens + 5 + JSON.stringify(tools).length);
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
      // A session.updated that does not name the modalities keeps them.
      server(f, { type: 'session.updated', session: { type: 'realtime' } });
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
      expect(reserved(s)).toEqual({ nanos: 1008 * 4_000 + 100 * 64_000 + 1008 * 4_000 + 4096 * 16_000, tokens: 1108 + 1008 + 4096 });
      server(f, { type: 'session.updated', session: { type: 'realtime', output_modalities: ['text'] } });
      server(f, created('resp_vad3', { max_output_tokens: 1 }));
      expect(reserved(s).nanos).toBe(1008 * 4_000 + 100 * 64_000 + 1008 * 4_000 + 4096 * 16_000 + 1008 * 4_000 + 16_000);
    });

    it('a VAD response in the conversation recalibrates the estimate with its upstream count too', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: { id: 'item_x', ...text('x'.repeat(20_000)) } });
      // Read upstream before the VAD response started (a create still on its way would stay: redteam-15-vad-mark).
      server(f, { type: 'conversation.item.done', item: { id: 'item_x', ...text('x'.repeat(20_000)) } });
      server(f, created('resp_vad'));
      server(f, done('resp_vad', usage(300, 0, 20, 0)));
      expect(probe(s, f).tokens).toBe(BARE.tokens + 320);
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
      expect(ctx.client[0]).toMatchObject({ type: 'rtproxy.notice', notice: { code: 'max_output_tokens_clamped', message: 'max_output_tokens inf was lowered to 4096 (the tenant limit, at most the model\'s maximum).', param: 'response.max_output_tokens', details: { requested: 'inf', limit: 4096 } } });
      expect(client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 4096 } }).kind).toBe('continue');
      expect(ctx.reports.filter((r) => r.kind === 'budget')).toEqual([{ kind: 'budget', action: 'clamped', scope: 'tenant', limit: 'max_response_output_tokens', code: 'max_output_tokens_clamped', responseId: null }]);
      expect(f.summary!()).toMatchObject({ meteringClamped: 1 });
    });

    it('session.update: a value above the limit is clamped (numbers and "inf" alike), at or below it passes', () => {
      const s = setup();
      const { ctx, f } = session(s, { maxResponseOutputTokens: 300 });
      expect(json(client(f, { type: 'session.update', event_id: 'u1', session: { type: 'realtime', max_output_tokens: 301 } }))['session']).toEqual({ type: 'realtime', max_output_tokens: 300 });
      expect(ctx.client[0]).toMatchObject({ notice: { event_id: 'u1', details: { requested: '301', limit: 300 } } });
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

    it('a session whose model is not known yet is clamped at the tenant limit', () => {
    const s = setup();
    const { ctx, f } = session(s, { maxResponseOutputTokens: 300 }, '');
    expect(json(client(f, { type: 'session.update', event_id: 'u1', session: { type: 'realtime', max_output_tokens: 'inf' } }))['session']).toEqual({ type: 'realtime', max_output_tokens: 300 });
    expect(ctx.client[0]).toMatchObject({ notice: { code: 'max_output_tokens_clamped', details: { requested: 'inf', limit: 300 } } });
    const v = client(f, { type: 'response.create', event_id: 'c1' });
    expect(v.kind === 'reject' && [v.error.code, v.error.message]).toEqual(['unknown_model_price', 'No price is configured for model "(unknown)".']);
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
      {
        // A fallback price covers unknown models, never retired ones: OpenAI no longer serves them.
        const s = setup({ fallbackPrice: 'gpt-realtime' });
        const { ctx, f } = session(s, null, '');
        server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-4o-realtime-preview' } });
        expect(ctx.closedWith?.code).toBe('model_retired');
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
      expect(s.logs.some((l) => l.level === 'error' && l.msg === 'metering: usage for an unpriced model billed at gpt-realtime-2 prices' && l['model'] === 'gpt-9' && l['responseId'] === 'resp_vad')).toBe(true);
      expect(ctx.closedWith).toBeNull();
    });

    it('session.created/updated that report no model, or the model already in use, change neither the model nor the session', () => {
      // Without a model yet (call_id): a session event that names none leaves it unknown.
      const noModel = session(setup(), null, '');
      server(noModel.f, { type: 'session.created', session: { type: 'realtime' } });
      server(noModel.f, { type: 'session.updated' });
      expect([noModel.ctx.closedWith, noModel.f.summary!()['meteringModel']]).toEqual([null, null]);
      // An unpriced model reported again is the same session: it stays up (its creates are refused).
      const unpriced = session(setup(), null, 'gpt-9');
      server(unpriced.f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-9' } });
      expect(unpriced.ctx.closedWith).toBeNull();
      // The priced model reported again is no switch.
      const s = setup();
      const priced = session(s, null, 'gpt-realtime');
      server(priced.f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime' } });
      expect(s.logs.filter((l) => l.msg === 'metering: model switched')).toEqual([]);
    });

    it('a session on an unpriced model takes the priced model the upstream reports (e.g. a deployment name resolved)', () => {
      const s = setup();
      const { f } = session(s, null, 'gpt-9');
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
      expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(1000, 0, 0, 0)));
      expect(s.records.map((r) => [r.model, r.costNanos, r.fallbackPrice])).toEqual([['gpt-realtime-mini', 600_000, false]]);
    });

    it('two models without a price of their own (both on the fallback) are not taken for the same model', () => {
      const s = setup({ fallbackPrice: 'gpt-realtime-mini' });
      const { f } = session(s);
      expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'brand-new' } }).kind).toBe('continue');
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'other-unknown' } });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(1000, 0, 0, 0)));
      expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime', 4_000_000]]);
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

    it('a response.done without usage is billed at its reservation (estimated, logged), never at zero; frames without a response id are ignored', () => {
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
      expect(s.records.map((r) => [r.ref, r.costNanos, r.totalTokens, r.estimated, r.settledBy])).toEqual([['resp_1', BARE.nanos, BARE.tokens, true, 'unreadable_usage_estimate']]);
      expect(s.logs.some((l) => l.level === 'warn' && l.msg === 'metering: response.done with a usage that cannot be priced; billed at its reservation' && l['responseId'] === 'resp_1')).toBe(true);
      // A response.done for a response this session never saw start: nothing held, nothing billed (logged).
      server(f, done('resp_unknown', null, 'failed'));
      expect(s.records).toHaveLength(1);
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(s.records).toHaveLength(1);
    });

    it.each<[string, unknown]>([
      ['{}', {}],
      ['counts as strings', { total_tokens: '1200', input_tokens: '1000', output_tokens: '200', input_token_details: { text_tokens: '1000' }, output_token_details: { audio_tokens: '200' } }],
      ['a detail count that is not a number', { ...usage(10, 0, 5, 0), output_token_details: { text_tokens: 5, audio_tokens: 'lots' } }],
    ])('a response.done whose usage cannot be read (%s) is billed at its reservation, not at zero', (_name, u) => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1' });
      server(f, created('resp_1'));
      server(f, done('resp_1', u));
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
      expect(s.records.map((r) => [r.costNanos, r.estimated, r.settledBy])).toEqual([[BARE.nanos, true, 'unreadable_usage_estimate']]);
      expect(f.summary!()).toMatchObject({ meteringEstimated: 1, meteringSessionTokens: BARE.tokens });
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

    it('while the relay does not read the upstream (backpressure), a create never answered keeps its reservation; the wait restarts in full on resume', () => {
      vi.useFakeTimers();
      const s = setup({ pendingResponseTimeoutMs: 1000 });
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
      vi.advanceTimersByTime(500);
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
      // Its response.created may sit unread upstream: a create sent while paused is kept too.
      client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 5 } });
      vi.advanceTimersByTime(60_000);
      // c2 also reserves the output c1 may add to the conversation before c2 is read (8 + 5).
      expect(reserved(s).tokens).toBe(3 * (8 + 5));
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'resumed' });
      vi.advanceTimersByTime(999);
      expect(reserved(s).tokens).toBe(3 * (8 + 5));
      vi.advanceTimersByTime(1);
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    });

    it('a create waiting while the upstream was not read is billed at its reservation when the session ends before it is read; one that waited only while it was read is released (found 2026-12-05)', () => {
      vi.useFakeTimers();
      const s = setup({ pendingResponseTimeoutMs: 1000 });
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'resumed' });
      client(f, { type: 'response.create', event_id: 'c2', response: { max_output_tokens: 5 } });
      f.onClose!({ initiator: 'client', code: 1001, reason: '' });
      // c1 may have run unread; c2 was sent while the upstream was read: no response.created, nothing ran.
      expect(s.records.map((r) => [r.ref, r.estimated, r.settledBy, r.totalTokens])).toEqual([[ctx.upstreamIdOf('c1'), true, 'client_gone_estimate', 8 + 5]]);
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
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
      expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
      f.onClose!({ initiator: 'client', code: 1001, reason: '' });
      expect(s.records.map((r) => [r.ref, r.costNanos, r.totalTokens, r.settledBy, r.estimated])).toEqual([
        ['resp_1', BARE.nanos, BARE.tokens, 'client_gone_estimate', true],
        ['resp_vad', BARE.nanos, BARE.tokens, 'client_gone_estimate', true],
      ]);
      // Priced at the model's own price: the records say so, and name the model.
      expect(s.records.map((r) => [r.model, r.fallbackPrice])).toEqual([['gpt-realtime', false], ['gpt-realtime', false]]);
    });
  });

  describe('metering filter: ending a session', () => {
    it('end_session: a response that never sends response.done does not hold the session beyond 3 s', () => {
      vi.useFakeTimers();
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { maxSessionTokens: 10_000 }); // holds both worst cases (4,104 each)
      client(f, { type: 'response.create', event_id: 'c1' });
      server(f, created('resp_1'));
      server(f, created('resp_2'));
      server(f, done('resp_1', usage(10_000, 0, 0, 0)));
      expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_2']);
      vi.advanceTimersByTime(2999);
      expect(ctx.closedWith).toBeNull();
      vi.advanceTimersByTime(1);
      expect([ctx.closedWith?.code, ctx.closedWith?.closeCode]).toEqual(['token_limit_exceeded', 4002]);
      // The relay then closes: the response still without response.done is billed at its reservation.
      f.onClose!({ initiator: 'proxy', code: 4002, reason: 'token_limit_exceeded' });
      expect(s.records.map((r) => [r.ref, r.settledBy])).toEqual([['resp_1', 'response.done'], ['resp_2', 'session_end_estimate']]);
    });

    it('ending: a response the relay already suppresses is not cancelled twice; one that starts meanwhile is cancelled and billed at its hold at close', () => {
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { maxSessionTokens: 10_000 }); // holds both worst cases (4,104 each)
      client(f, { type: 'response.create', event_id: 'c1' });
      server(f, created('resp_1'));
      server(f, created('resp_2'));
      ctx.cancelResponse('resp_2', 'guardrails', ctx.closedWith ?? ({} as never));
      server(f, done('resp_1', usage(10_000, 0, 0, 0)));
      expect(ctx.cancelled.map((c) => [c.responseId, c.by])).toEqual([['resp_2', 'guardrails']]);
      server(f, created('resp_3'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_2', undefined], ['resp_3', 'token_limit_exceeded']]);
      f.onClose!({ initiator: 'proxy', code: 4002, reason: '' });
      expect(s.records.map((r) => [r.ref, r.settledBy])).toEqual([['resp_1', 'response.done'], ['resp_2', 'session_end_estimate'], ['resp_3', 'session_end_estimate']]);
      expect(f.summary!()).toMatchObject({ meteringEstimated: 2, meteringResponses: 3 });
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
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'session', limit: 'session_duration_exceeded', code: 'session_duration_exceeded', responseId: null });
    });

    it('a response that starts while the session is ending is cancelled with the ending reason, reserves nothing in the ledger and bills its hold at close', () => {
      vi.useFakeTimers();
      const s = setup();
      const { ctx, f } = session(s, { maxSessionDurationSec: 1, dailyUsd: '100' });
      server(f, created('resp_1'));
      vi.advanceTimersByTime(1000);
      const before = reserved(s);
      server(f, created('resp_late'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.closesSession])).toEqual([['resp_1', 'session_duration_exceeded', false], ['resp_late', 'session_duration_exceeded', false]]);
      expect(reserved(s)).toEqual(before);
      f.onClose!({ initiator: 'proxy', code: 4002, reason: '' });
      // Both were cancelled, neither reported a response.done: both are billed at their worst case.
      expect(s.records.map((r) => [r.ref, r.settledBy, r.costNanos])).toEqual([
        ['resp_1', 'session_end_estimate', 262_176_000],
        ['resp_late', 'session_end_estimate', 262_176_000],
      ]);
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

    it('frames after the close bill nothing: a response started then, and a second close, add no record', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    server(f, created('resp_late'));
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(s.records).toEqual([]);
  });

  it('a free model still bills the tokens of a response without response.done (token caps count them)', () => {
    const free = { textIn: 0, cachedTextIn: 0, textOut: 0, audioIn: 0, cachedAudioIn: 0, audioOut: 0, imageIn: 0, cachedImageIn: 0 };
    const s = setup({ prices: { 'free-rt': free } });
    const { f } = session(s, { dailyTokens: 1_000_000 }, 'free-rt');
    client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 10 } });
    server(f, created('resp_1', { max_output_tokens: 10 }));
    f.onClose!({ initiator: 'client', code: 1006, reason: '' });
    expect(s.records.map((r) => [r.costNanos, r.totalTokens, r.settledBy])).toEqual([[0, 18, 'client_gone_estimate']]);
  });

  it('a usage before the session knows its model is billed at the dearest price under that price\'s id', () => {
    const s = setup();
    const { f } = session(s, null, '');
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(0, 0, 1000, 0)));
    expect(s.records.map((r) => [r.model, r.costNanos, r.fallbackPrice])).toEqual([['gpt-realtime-2', 24_000_000, true]]);
  });

  it('client gone: a response cancelled over the session token limit is billed at its worst case when its response.done never comes', () => {
      const s = setup({ onExhausted: 'end_session' });
      const { ctx, f } = session(s, { maxSessionTokens: 0 });
      server(f, created('resp_1', { max_output_tokens: 10 })); // cancelled at once: the upstream may still bill what it read
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_1', 'token_limit_exceeded']]);
      f.onClose!({ initiator: 'client', code: 1006, reason: '' });
      // 8 allowance tokens at $4/M text in + 10 output tokens at $64/M audio out.
      expect(s.records.map((r) => [r.ref, r.model, r.costNanos, r.totalTokens, r.settledBy, r.fallbackPrice])).toEqual([['resp_1', 'gpt-realtime', 8 * 4000 + 10 * 64_000, 18, 'client_gone_estimate', false]]);
    });

    it('client gone: a response cancelled because its model has no price is billed at the last-resort price, marked as a fallback', () => {
      const s = setup();
      const { ctx, f } = session(s, null, 'unknown-rt');
      server(f, created('resp_1', { max_output_tokens: 10 }));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_1', 'unknown_model_price']]);
      f.onClose!({ initiator: 'client', code: 1006, reason: '' });
      // gpt-realtime-2: 8 tokens at $4/M text in + 10 at $64/M audio out.
      expect(s.records.map((r) => [r.ref, r.model, r.costNanos, r.settledBy, r.fallbackPrice])).toEqual([['resp_1', 'unknown-rt', 8 * 4000 + 10 * 64_000, 'client_gone_estimate', true]]);
    });

    it('a response started before the session knows its model is held and billed under the last-resort id, as a fallback', () => {
      const s = setup();
      const { ctx, f } = session(s, null, '');
      server(f, created('resp_1', { max_output_tokens: 10 }));
      expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_1']);
      f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
      expect(s.records.map((r) => [r.model, r.costNanos, r.settledBy, r.fallbackPrice])).toEqual([['gpt-realtime-2', 8 * 4000 + 10 * 64_000, 'upstream_drop_estimate', true]]);
    });

    it('a response cancelled at response.created settles its actual usage when its response.done comes, not the hold', () => {
      const s = setup();
      const { f } = session(s, { maxSessionTokens: 0 });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(100, 0, 0, 0), 'cancelled'));
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(s.records.map((r) => [r.ref, r.settledBy, r.estimated])).toEqual([['resp_1', 'response.done', false]]);
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

  const TEXT_IN_NANOS = 4_000; // gpt-realtime nanos per text input token
  const AUDIO_IN_NANOS = 32_000; // gpt-realtime nanos per audio input token

  function startCapped() {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '100' });
    const caps = resolveLimits(ctx.tenant, s.rt.config).caps;
    const reserved = () => s.ledger.status('acme', caps, T0).day.reserved.nanos;
    return { f, reserved };
  }

  describe('metering filter: under-counts found 2026-12-05 (session tools with per-response instructions)', () => {
    const tools = [{ type: 'function', name: 'lookup', description: 'd'.repeat(20_000), parameters: { type: 'object', properties: {} } }];
    const oob = { conversation: 'none', input: [], max_output_tokens: 1, output_modalities: ['text'] };

    it('control: a create without instructions reserves the session tools', () => {
      const { f, reserved } = startCapped();
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', instructions: 'x', tools } });
      client(f, { type: 'response.create', event_id: 'c', response: oob });
      expect(reserved()).toBeGreaterThanOrEqual(20_000 * TEXT_IN_NANOS);
    });

    it('the same create with per-response instructions still reads the session tools, and reserves them', () => {
      const { f, reserved } = startCapped();
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', instructions: 'x', tools } });
      // The upstream keeps the session's tools for a response that does not set `tools`.
      client(f, { type: 'response.create', event_id: 'c', response: { ...oob, instructions: 'y' } });
      expect(reserved()).toBeGreaterThanOrEqual(20_000 * TEXT_IN_NANOS);
    });
  });

  describe('metering filter: under-counts found 2026-12-05 (audio appended while a clear is answered)', () => {
    const audio = 'A'.repeat(640_000); // appended right after the clear: in the new buffer upstream
    const ref = { conversation: 'none', input: [{ type: 'item_reference', id: 'item_1' }], max_output_tokens: 1, output_modalities: ['text'] };
    const floor = audioTokensOfBase64(audio.length, 8) * AUDIO_IN_NANOS;

    it('control: cleared event before the appends: the committed item is reserved in full', () => {
      const { f, reserved } = startCapped();
      client(f, { type: 'input_audio_buffer.clear' });
      server(f, { type: 'input_audio_buffer.cleared' });
      client(f, { type: 'input_audio_buffer.append', audio });
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
      client(f, { type: 'response.create', event_id: 'c', response: ref });
      expect(reserved()).toBeGreaterThanOrEqual(floor);
    });

    it('the upstream\'s cleared arriving after the appends (one round trip later) does not drop them from the item', () => {
      const { f, reserved } = startCapped();
      client(f, { type: 'input_audio_buffer.clear' });
      client(f, { type: 'input_audio_buffer.append', audio });
      server(f, { type: 'input_audio_buffer.cleared' });
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
      client(f, { type: 'response.create', event_id: 'c', response: ref });
      expect(reserved()).toBeGreaterThanOrEqual(floor);
    });
  });

  describe('metering filter: red-team money review 2026-12-05', () => {
    const rejected = (v: Verdict): ProxyError | null => (v.kind === 'reject' ? v.error : null);
    it('calibration: a conversation response with its own input list read that list, not the conversation: the estimate keeps the conversation', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: text('x'.repeat(20_000)) });
      // In the conversation (its output is added to it), but it reads an empty custom context.
      client(f, { type: 'response.create', event_id: 'wipe', response: { input: [], max_output_tokens: 1 } });
      server(f, created('resp_wipe', { max_output_tokens: 1 }));
      server(f, done('resp_wipe', usage(10, 0, 1, 0)));
      // Not recalibrated from its 11 tokens: the conversation's 20,008 (plus that output, at most) still count.
      expect(probe(s, f).tokens).toBeGreaterThanOrEqual(BARE.tokens + 20_008);
      // A response that read the conversation recalibrates as before.
      client(f, { type: 'response.create', event_id: 'c1' });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(300, 0, 20, 0)));
      expect(probe(s, f).tokens).toBe(BARE.tokens + 320);
    });

    it('calibration mark: an item the client sends right after a create is not in that response\'s count, so it stays in the estimate', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1' });
      // Sent behind the create: the upstream adds it after the response began reading.
      client(f, { type: 'conversation.item.create', item: text('x'.repeat(20_000)) });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(10, 0, 1, 0)));
      expect(probe(s, f).tokens).toBe(BARE.tokens + 11 + 20_008);
    });

    it('calibration mark: a create sent while another conversation response runs keeps its mark in step when that one recalibrates first', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: text('a'.repeat(992)) }); // 1,000
      client(f, { type: 'response.create', event_id: 'c1' });
      client(f, { type: 'conversation.item.create', item: text('b'.repeat(1992)) }); // 2,000
      client(f, { type: 'response.create', event_id: 'c2' });
      client(f, { type: 'conversation.item.create', item: text('c'.repeat(4992)) }); // 5,000, after c2 left
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(1000, 0, 1, 0)));
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(3001, 0, 1, 0)));
      // resp_2 read a, resp_1's output and b; c came after it: 3,002 + 5,000.
      expect(probe(s, f).tokens).toBe(BARE.tokens + 3_002 + 5_000);
    });

    it('session token limit: parallel creates hold their worst cases against it, so they cannot all pass while nothing is settled', () => {
      const s = setup();
      const { ctx, f } = session(s, { maxSessionTokens: 30_000 });
      client(f, { type: 'conversation.item.create', item: { id: 'item_big', ...text('x'.repeat(24_992)) } }); // 25,000
      const oob = (i: number) => ({ type: 'response.create', event_id: `o${i}`, response: { conversation: 'none', input: [{ type: 'item_reference', id: 'item_big' }], output_modalities: ['text'], max_output_tokens: 1, metadata: { n: String(i) } } });
      // The first holds 25,000 + 8 + 1: the second still passes (below the limit), the third does not.
      expect(client(f, oob(0)).kind).toBe('continue');
      expect(client(f, oob(1)).kind).toBe('continue');
      const e = rejected(client(f, oob(2)));
      expect([e?.code, e?.details]).toEqual(['token_limit_exceeded', { limit: 30_000, used: 0, reserved: 2 * 25_009 }]);
      // Held while running, too; a server-started response over it is cancelled.
      server(f, created('resp_0', { conversation_id: null, metadata: { n: '0' }, max_output_tokens: 1 }));
      server(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_vad']);
      // Released by the upstream's refusal and settled by response.done, as the ledger's.
      server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: sentCreates(ctx)[1] } });
      server(f, { type: 'response.done', response: { id: 'resp_vad', status: 'cancelled', conversation_id: 'conv_1', usage: usage(0, 0, 0, 0) } });
      server(f, { type: 'response.done', response: { id: 'resp_0', status: 'completed', conversation_id: null, usage: usage(25_000, 0, 1, 0) } });
      expect(client(f, oob(3)).kind).toBe('continue');
      expect(rejected(client(f, oob(4)))?.details).toEqual({ limit: 30_000, used: 25_001, reserved: 25_009 });
    });

    it('error echo: the upstream error about another event with the same event_id, sent just before the create, never releases the create', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      const big = { conversation: 'none', input: [text('x'.repeat(20_000))], max_output_tokens: 1, output_modalities: ['text'], metadata: { n: '1' } };
      client(f, { type: 'conversation.item.delete', event_id: 'evt_1', item_id: 'item_does_not_exist' });
      client(f, { type: 'response.create', event_id: 'evt_1', response: big });
      const held = reserved(s);
      expect(held.tokens).toBeGreaterThan(20_000);
      // The upstream refuses the delete (it read it first): its error echoes the client's id.
      server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'item_not_found', message: 'x', event_id: 'evt_1' } });
      expect(reserved(s)).toEqual(held);
      server(f, created('resp_1', { conversation_id: null, metadata: { n: '1' }, max_output_tokens: 1 }));
      expect(ctx.conversation.response('resp_1')?.createEventId).toBe(sentCreates(ctx).at(-1));
      // Still the create's reservation, not a second one for a "server-started" response.
      expect(reserved(s)).toEqual(held);
      // The upstream's error about the create itself (the id it left with) still releases it at once.
      client(f, { type: 'response.create', event_id: 'evt_2', response: { ...big, metadata: { n: '2' } } });
      server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: sentCreates(ctx).at(-1) } });
      expect(reserved(s)).toEqual(held);
    });

    it('estimate races: a forwarded session.update counts at once (the larger of known and asked) until the upstream answers it', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      // An update the proxy sent earlier (not the client's) is answered first: the client's is still in flight.
      ctx.sendUpstream({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'] } });
      expect(client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'i'.repeat(20_000) } }).kind).toBe('continue');
      expect(probe(s, f).tokens).toBe(BARE.tokens + 20_000);
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: '' } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 20_000);
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'i'.repeat(20_000) } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 20_000);
      // A smaller update: the larger known value stays until it is answered; then the report rules.
      client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'j' } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 20_000);
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'j' } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 1);
      // Tools and a higher session output limit count at once too; a refused update (its error) stops counting.
      server(f, { type: 'session.updated', session: { type: 'realtime', max_output_tokens: 10 } });
      expect(probe(s, f).tokens).toBe(8 + 1 + 10);
      const tools = [{ type: 'function', name: 'f', description: 'd'.repeat(5_000) }];
      client(f, { type: 'session.update', event_id: 'up', session: { type: 'realtime', max_output_tokens: 'inf', tools } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 1 + JSON.stringify(tools).length);
      server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: ctx.upstreamIdOf('up') } });
      expect(probe(s, f).tokens).toBe(8 + 1 + 10);
    });

    it('estimate races: an audio format, output modalities or an output limit asked in a forwarded session.update count at once, the costlier way', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      const chars = 64_000;
      const size = appendFrame('A'.repeat(chars)).size;
      const [g711, pcm16] = [audioTokensOfBase64(size, 8), audioTokensOfBase64(size, 48)];
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad', create_response: false } } } } });
      // Known: PCM16, text output. Asked (unanswered): G.711, audio output.
      client(f, { type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], audio: { input: { format: { type: 'audio/pcmu' } } } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a' });
      // The denser format for the audio, the audio output rate for the output.
      expect(probe(s, f)).toEqual({ nanos: BARE.nanos + 16 * 4_000 / 2 + (8 + g711) * 32_000, tokens: BARE.tokens + 16 + g711 });
      expect(g711).toBeGreaterThan(pcm16);
      // A PCM16 update while G.711 is known does not lower the density.
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
      ctx.fromClient(f, appendFrame('A'.repeat(chars)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_b' });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + g711 + 16 + g711);
    });

    it('estimate races: output asked as text only does not lower the rate; a transcription update and an update asking nothing are no guesses; at most 64 are kept', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 10, audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad', create_response: false } } } } });
      const textOnly = probe(s, f);
      expect(textOnly).toEqual({ nanos: 8 * 4_000 + 10 * 16_000, tokens: 8 + 10 });
      client(f, { type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } });
      client(f, { type: 'session.update', session: { type: 'transcription', audio: { input: { format: { type: 'audio/pcmu' } } } } });
      client(f, { type: 'session.update', session: { type: 'realtime', voice: 'marin' } });
      expect(probe(s, f)).toEqual(textOnly);
      // A larger output limit asked counts at once; "inf" is the model's maximum.
      client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 20 } });
      expect(probe(s, f)).toEqual({ nanos: 8 * 4_000 + 20 * 16_000, tokens: 8 + 20 });
      client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 'inf' } });
      expect(probe(s, f).tokens).toBe(8 + 4096);
      // 64 guesses at most: 64 later small ones push the two large ones out (none answered yet).
      for (let i = 0; i < 64; i++) client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 5 } });
      expect(probe(s, f)).toEqual(textOnly);
      // None of those asked another audio format (the transcription one is no realtime update), and
      // asking the known one again changes nothing: appended audio counts as PCM16.
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
      ctx.fromClient(f, appendFrame('A'.repeat(64_000)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_c' });
      expect(probe(s, f).tokens).toBe(textOnly.tokens + 16 + audioTokensOfBase64(appendFrame('A'.repeat(64_000)).size, 48));
    });

    it('estimate races: the update a clamp rewrote is the one guessed from (max_output_tokens "inf" governed to the tenant limit)', () => {
      const s = setup();
      const { f } = session(s, { ...CAPPED, maxResponseOutputTokens: 300 });
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 10 } });
      expect(client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 'inf' } }).kind).toBe('replace');
      expect(probe(s, f).tokens).toBe(8 + 300);
    });

    it('estimate races: a refused duplicate item create never lowers the estimate of the item it names', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: { id: 'item_big', ...text('x'.repeat(20_000)) } });
      client(f, { type: 'conversation.item.create', event_id: 'dup', item: { id: 'item_big', ...text('x') } });
      server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'duplicate_item_id', message: 'x', event_id: 'dup' } });
      expect(probe(s, f, { conversation: 'none', input: [{ type: 'item_reference', id: 'item_big' }] }).tokens).toBe(BARE.tokens + 20_008);
    });

    it('model item ids past the view\'s and past metering\'s own bound: a duplicate is still known, and past 10,000 every client id counts as one (over-reserve, never under)', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: { id: 'item_big', ...text('x'.repeat(20_000)) } });
      const whole = probe(s, f).tokens - BARE.tokens;
      expect(whole).toBe(20_008);
      // The model's items of a response the view never kept: the view forgets all but the last 2,048.
      const modelItem = (i: number) => `item_model_${i}`;
      for (let i = 0; i < 10_000; i++) server(f, outputItemAdded('resp_unkept', modelItem(i)));
      expect(contexts.get(f)!.conversation.item(modelItem(0))).toBeUndefined();
      // A client create reusing the first (refused upstream as a duplicate) never becomes its estimate.
      client(f, { type: 'conversation.item.create', item: { id: modelItem(0), ...text('x') } });
      // Room is kept for 10,000: a new id is still the client's own item, estimated as created.
      client(f, { type: 'conversation.item.create', item: { id: 'item_fresh_before', ...text('y') } });
      const base = whole + 9 + 9;
      expect(probe(s, f, references(modelItem(0))).tokens - BARE.tokens).toBe(base);
      expect(probe(s, f, references('item_fresh_before')).tokens - BARE.tokens).toBe(9);
      // The 10,001st model id: no room, so every client id may be the model's from now on.
      server(f, outputItemAdded('resp_unkept', modelItem(10_000)));
      client(f, { type: 'conversation.item.create', item: { id: 'item_fresh_after', ...text('z') } });
      expect(probe(s, f, references('item_fresh_after')).tokens - BARE.tokens).toBe(base + 9);
      // An id given an estimate before stays as it was.
      expect(probe(s, f, references('item_fresh_before')).tokens - BARE.tokens).toBe(9);
    });

    it('items the proxy saw no create for (a call\'s data channel, mcp_list_tools) count once complete (conversation.item.done)', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      // A browser's item on a call: the sideband sees it added and done, never created.
      const browserItem = { id: 'item_browser', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_text', text: 'x'.repeat(10_000) }] };
      server(f, { type: 'conversation.item.added', item: { ...browserItem, content: [] } });
      server(f, { type: 'conversation.item.done', item: browserItem });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 10_008);
      // The MCP server's tool list, made by the server itself.
      const tools = Array.from({ length: 50 }, (_, i) => ({ name: `tool_${i}`, description: 'd'.repeat(100), input_schema: { type: 'object' } }));
      const list = { id: 'item_mcp', type: 'mcp_list_tools', server_label: 'm', tools };
      server(f, { type: 'conversation.item.added', item: { ...list, tools: [] } });
      server(f, { type: 'conversation.item.done', item: list });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 10_008 + 8 + JSON.stringify(list).length);
      // The client's own items are counted at their create, not again when done.
      client(f, { type: 'conversation.item.create', item: { id: 'item_own', ...text('y'.repeat(992)) } });
      server(f, { type: 'conversation.item.added', item: { id: 'item_own', type: 'message', role: 'user', content: [] } });
      server(f, { type: 'conversation.item.done', item: { id: 'item_own', ...text('y'.repeat(992)) } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + 10_008 + 8 + JSON.stringify(list).length + 1_000);
    });
  });
});

/**
 * What the surviving mutants of the 2026-12-05 run (test/mutation/last-report.md) showed untested:
 * the re-keying of a create on the relay's create_sent report, the models a session.update asks,
 * the guesses an update in flight keeps, calibration marks in audio and images, the warnings and
 * reports of estimated settles, the ledger's synchronous answers, timers and a second close.
 */
describe('metering filter: survivors of the 2026-12-05 mutation run', () => {
  const CAPPED = { dailyUsd: '1000' };
  const caps = { ...NO_CAPS, dayNanos: 1 };
  const reserved = (s: Setup) => s.ledger.status('acme', caps, T0).day.reserved;
  const NONE = { nanos: 0, tokens: 0 };
  // gpt-realtime: 8 framing tokens of prompt, the model's 4,096 output tokens at the audio rate.
  const BARE = { nanos: 8 * 4_000 + 4096 * 64_000, tokens: 8 + 4096 };
  const text = (s: string) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: s }] });
  const flush = () => new Promise<void>((r) => setImmediate(r));
  const refuseUpstream = (f: Filter, eventId: string) => server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: eventId } });
  const q = new Map<string, string>();
  let seq = 0;
  /** What a response.create would reserve now (then refused upstream, which frees it). */
  function probe(s: Setup, f: Filter, response: Record<string, unknown> = {}): { nanos: number; tokens: number } {
    const id = `survivor_probe_${++seq}`;
    const before = reserved(s);
    expect(['continue', 'replace']).toContain(client(f, { type: 'response.create', event_id: id, response }).kind);
    const after = reserved(s);
    refuseUpstream(f, lastSent(f));
    expect(reserved(s)).toEqual(before);
    return { nanos: after.nanos - before.nanos, tokens: after.tokens - before.tokens };
  }

  describe('create_sent: the id a create left with', () => {
    it('a create_sent with no create queued by metering (one another filter sent) moves nothing: the session still closes cleanly', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      ctx.report({ kind: 'create_sent', eventId: 'event_injected_1' });
      expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('continue');
      expect(reserved(s)).toEqual(BARE);
      ctx.report({ kind: 'create_sent', eventId: 'event_injected_2' });
      server(f, created('resp_1'));
      expect(() => f.onClose!({ initiator: 'client', code: 1000, reason: '' })).not.toThrow();
      expect(s.records.map((r) => [r.ref, r.settledBy, r.costNanos])).toEqual([['resp_1', 'client_gone_estimate', BARE.nanos]]);
      expect(reserved(s)).toEqual(NONE);
    });

    it('only create_sent names the id: the clamp notice reported in between leaves the create under its own, so the upstream error about it releases it', () => {
      const s = setup();
      const { ctx, f } = session(s, { ...CAPPED, maxResponseOutputTokens: 300 });
      expect(client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 'inf' } }).kind).toBe('replace');
      expect(ctx.reports.map((r) => r.kind)).toEqual(['budget', 'create_sent', 'stamped']);
      expect(reserved(s).tokens).toBe(8 + 300);
      refuseUpstream(f, lastSent(f));
      expect(reserved(s)).toEqual(NONE);
    });

    it('a create_sent reported again for the same create keeps the calibration mark of the first', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1' });
      client(f, { type: 'conversation.item.create', item: text('x'.repeat(992)) }); // 1,000, behind the create
      ctx.report({ kind: 'create_sent', eventId: lastSent(f) });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(10, 0, 1, 0)));
      expect(probe(s, f).tokens).toBe(BARE.tokens + 11 + 1_000);
    });

    it('a create whose create_sent never came takes its calibration mark at its response.created', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      // Straight to the filter and the view, without the relay's stamp and report.
      const frame = ev({ type: 'response.create', event_id: 'c1' });
      expect(f.onClient!(frame)).toEqual({ kind: 'continue' });
      ctx.conversation.observeClient(frame, false);
      client(f, { type: 'conversation.item.create', item: { id: 'item_x', ...text('x'.repeat(4_992)) } }); // 5,000
      server(f, { type: 'conversation.item.done', item: { id: 'item_x', ...text('x'.repeat(4_992)) } }); // read upstream before the start
      server(f, created('resp_1'));
      client(f, { type: 'conversation.item.create', item: text('y'.repeat(992)) }); // 1,000, after the start
      server(f, done('resp_1', usage(6_000, 0, 1, 0)));
      // The upstream's 6,001 replaces what was there at the start; the later 1,000 stays.
      expect(probe(s, f).tokens).toBe(BARE.tokens + 6_001 + 1_000);
    });

    it('an out-of-band create never recalibrates the conversation, even when its response.done names the conversation', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: text('x'.repeat(19_992)) }); // 20,000
      client(f, { type: 'response.create', event_id: 'o1', response: { conversation: 'none', metadata: { k: 'o1' } } });
      server(f, created('resp_o', { conversation_id: null, metadata: { k: 'o1' } }));
      server(f, done('resp_o', usage(10, 0, 1, 0), 'completed', { conversation_id: 'conv_1' }));
      expect(probe(s, f).tokens).toBe(BARE.tokens + 20_000);
    });
  });

  describe('models a session.update asks', () => {
    it('finding: a switch confirmed behind a later ask is priced at the model it switched to (every model asked counts, not only the last)', () => {
      const s = setup();
      const { f } = session(s, null, 'gpt-realtime-mini');
      client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-2' } });
      client(f, { type: 'session.update', event_id: 'u2', session: { type: 'realtime', model: 'gpt-realtime' } });
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-2' } });
      refuseUpstream(f, 'u2');
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(0, 0, 1000, 0)));
      // gpt-realtime-2: text out 24 µ$ a token (the old code billed gpt-realtime-mini's 2.40).
      expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime-2', 24_000_000]]);
    });

    it('finding: asking the model in use again behind a switch: the switch back is priced when the upstream confirms it', () => {
      const s = setup();
      const { f } = session(s, null, 'gpt-realtime-2');
      client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
      client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-2' } });
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(0, 0, 1000, 0)));
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-2' } });
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(0, 0, 1000, 0)));
      expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime-mini', 2_400_000], ['gpt-realtime-2', 24_000_000]]);
    });

    it('the model in use asked alone asks nothing: a snapshot name the upstream reports keeps the session model (no switch)', () => {
      const s = setup();
      const { f } = session(s, null, 'gpt-realtime');
      expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime' } }).kind).toBe('continue');
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-2025-08-28' } });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(0, 0, 1000, 0)));
      expect(s.records.map((r) => [r.model, r.costNanos])).toEqual([['gpt-realtime', 16_000_000]]);
      expect(s.logs.filter((l) => l.msg === 'metering: model switched')).toEqual([]);
      // An unpriced session model named again is not refused either: the session is on it already.
      const unpriced = session(setup(), null, 'gpt-9');
      expect(client(unpriced.f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-9' } }).kind).toBe('continue');
    });

    it('the 16 most recent models asked are remembered: a confirmation of an older one keeps the price in use', () => {
      const s = setup({ fallbackPrice: 'gpt-realtime-mini' });
      const { f } = session(s, null, 'gpt-realtime');
      for (let i = 0; i <= 16; i++) expect(client(f, { type: 'session.update', session: { type: 'realtime', model: `model-${i}` } }).kind).toBe('continue');
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'model-0' } });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(0, 0, 1000, 0)));
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'model-1' } });
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(0, 0, 1000, 0)));
      // model-1 is priced by the fallback (gpt-realtime-mini), under its own name.
      expect(s.records.map((r) => [r.model, r.costNanos, r.fallbackPrice])).toEqual([['gpt-realtime', 16_000_000, false], ['model-1', 2_400_000, true]]);
      // Distinct models: one asked many times takes one place, so an older one asked once is still known.
      const t = setup({ fallbackPrice: 'gpt-realtime-mini' });
      const g = session(t, null, 'gpt-realtime');
      client(g.f, { type: 'session.update', session: { type: 'realtime', model: 'model-a' } });
      for (let i = 0; i < 20; i++) client(g.f, { type: 'session.update', session: { type: 'realtime', model: 'model-b' } });
      server(g.f, { type: 'session.updated', session: { type: 'realtime', model: 'model-a' } });
      server(g.f, created('resp_1'));
      server(g.f, done('resp_1', usage(0, 0, 1000, 0)));
      expect(t.records.map((r) => r.model)).toEqual(['model-a']);
    });

    it('a model priced by the fallback that the client asked for is switched to when the upstream reports it', () => {
      const s = setup({ fallbackPrice: 'gpt-realtime-mini' });
      const { f } = session(s, null, 'gpt-realtime');
      expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'my-model' } }).kind).toBe('continue');
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'my-model' } });
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(0, 0, 1000, 0)));
      expect(s.records.map((r) => [r.model, r.costNanos, r.fallbackPrice])).toEqual([['my-model', 2_400_000, true]]);
    });

    it('a retired model in a session.update is refused whatever the fallback price', () => {
      const s = setup({ fallbackPrice: 'gpt-realtime' });
      const { f } = session(s);
      const v = client(f, { type: 'session.update', event_id: 'u1', session: { type: 'realtime', model: 'gpt-4o-realtime-preview' } });
      expect(v.kind === 'reject' && [v.error.code, v.error.param, v.error.eventId, v.error.closesSession, v.error.details]).toEqual([
        'model_retired',
        'session.model',
        'u1',
        false,
        { model: 'gpt-4o-realtime-preview', successor: 'gpt-realtime-2.1' },
      ]);
      expect(f.summary!()).toMatchObject({ meteringRefused: 1 });
    });

    it('a create in a session on an unpriced model counts as refused', () => {
      const { f } = session(setup(), null, 'gpt-9');
      expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('reject');
      expect(client(f, { type: 'response.create', event_id: 'c2' }).kind).toBe('reject');
      expect(f.summary!()).toMatchObject({ meteringRefused: 2 });
    });
  });

  describe('what an update in flight keeps', () => {
    it('an output limit asked counts at the larger of the known and the asked; "inf" on either side is the model maximum', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 100 } });
      expect(probe(s, f)).toEqual({ nanos: 8 * 4_000 + 100 * 16_000, tokens: 8 + 100 });
      client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 50 } });
      expect(probe(s, f)).toEqual({ nanos: 8 * 4_000 + 100 * 16_000, tokens: 8 + 100 });
      client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 200 } });
      expect(probe(s, f).tokens).toBe(8 + 200);
      client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 'inf' } });
      expect(probe(s, f).tokens).toBe(8 + 4096);
      // Known "inf", a smaller one asked: still the maximum.
      const t = setup();
      const g = session(t, CAPPED);
      server(g.f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 'inf' } });
      client(g.f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 50 } });
      expect(probe(t, g.f)).toEqual({ nanos: 8 * 4_000 + 4096 * 16_000, tokens: 8 + 4096 });
      // Unknown (nothing reported yet) is the maximum whatever is asked.
      const u = setup();
      const h = session(u, CAPPED);
      client(h.f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 50 } });
      expect(probe(u, h.f)).toEqual(BARE);
    });

    it('an update asking nothing of the output keeps a text-only session at the text rate; one asking audio does not', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 100 } });
      client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'abcd' } });
      expect(probe(s, f)).toEqual({ nanos: 12 * 4_000 + 100 * 16_000, tokens: 12 + 100 });
      client(f, { type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } });
      expect(probe(s, f)).toEqual({ nanos: 12 * 4_000 + 100 * 16_000, tokens: 12 + 100 });
      client(f, { type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'] } });
      expect(probe(s, f)).toEqual({ nanos: 12 * 4_000 + 100 * 64_000, tokens: 12 + 100 });
    });

    it('each field an update asks counts on its own; an update asking nothing (or without a session) takes none of the 64 places', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 10, audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad', create_response: false } } } } });
      expect(client(f, { type: 'session.update' })).toEqual({ kind: 'continue' });
      client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'i'.repeat(1_000) } });
      // Asking no format leaves the known one: this audio counts at PCM16.
      const pcm = appendFrame('A'.repeat(4_800));
      ctx.fromClient(f, pcm);
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1' });
      let tokens = 8 + 1_000 + 16 + audioTokensOfBase64(pcm.size, 48) + 10;
      expect(probe(s, f).tokens).toBe(tokens);
      const tools = [{ type: 'function', name: 'f', description: 'd'.repeat(2_000) }];
      client(f, { type: 'session.update', session: { type: 'realtime', tools } });
      tokens += JSON.stringify(tools).length;
      const text = probe(s, f);
      expect(text.tokens).toBe(tokens);
      client(f, { type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'] } });
      expect(probe(s, f)).toEqual({ nanos: text.nanos + 10 * (64_000 - 16_000), tokens });
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
      const g711 = appendFrame('A'.repeat(4_800));
      ctx.fromClient(f, g711);
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_2' });
      tokens += 16 + audioTokensOfBase64(g711.size, 8);
      expect(probe(s, f).tokens).toBe(tokens);
      // 64 updates asking nothing metering reads: every guess above is still kept.
      for (let i = 0; i < 64; i++) client(f, { type: 'session.update', session: { type: 'realtime', voice: 'marin' } });
      expect(probe(s, f)).toEqual({ nanos: text.nanos + 10 * (64_000 - 16_000) + (16 + audioTokensOfBase64(g711.size, 8) - 8) * 32_000 + 8 * 4_000, tokens });
    });

    it('the update a clamp rewrote is the one guessed from: a server-started response that echoes no limit reserves the clamped one', () => {
      const s = setup();
      const { f } = session(s, { ...CAPPED, maxResponseOutputTokens: 300 });
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 10 } });
      expect(client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 'inf' } }).kind).toBe('replace');
      server(f, created('resp_vad', { max_output_tokens: undefined }));
      expect(reserved(s)).toEqual({ nanos: 8 * 4_000 + 300 * 16_000, tokens: 8 + 300 });
    });

    it('a session.update refused by metering is no guess', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 100 } });
      const base = probe(s, f);
      expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-9', instructions: 'i'.repeat(5_000), max_output_tokens: 'inf' } }).kind).toBe('reject');
      expect(client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 0, instructions: 'i'.repeat(5_000) } }).kind).toBe('reject');
      expect(probe(s, f)).toEqual(base);
    });

    it('a session.updated answers the oldest update in flight: its guess goes, later ones stay (the denser audio format too)', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 10, audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: { type: 'server_vad', create_response: false } } } } });
      client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'i'.repeat(5_000) } });
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } });
      client(f, { type: 'session.update', session: { type: 'realtime', max_output_tokens: 10 } });
      expect(probe(s, f).tokens).toBe(8 + 5_000 + 10);
      // The first answered, as the upstream applied it (its word on the instructions rules).
      server(f, { type: 'session.updated', session: { type: 'realtime', instructions: 'short', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } } });
      expect(probe(s, f).tokens).toBe(8 + 5 + 10);
      // The G.711 ask is still in flight: appended audio counts at its density.
      const frame = appendFrame('A'.repeat(64_000));
      ctx.fromClient(f, frame);
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a' });
      expect(probe(s, f).tokens).toBe(8 + 5 + 10 + 16 + audioTokensOfBase64(frame.size, 8));
    });
  });

  describe('calibration marks in every modality', () => {
    it('a create sent while another conversation response runs keeps its audio and image marks in step when that one recalibrates first', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      const media = (n: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'A'.repeat(8_000 + n) }, { type: 'input_image', image_url: 'data:image/png;base64,AAAA' }] });
      client(f, { type: 'conversation.item.create', item: media(0) });
      client(f, { type: 'response.create', event_id: 'c1' });
      client(f, { type: 'conversation.item.create', item: media(4) });
      client(f, { type: 'response.create', event_id: 'c2' });
      const before = probe(s, f).tokens;
      client(f, { type: 'conversation.item.create', item: media(8) }); // after c2 left: stays after both calibrate
      const last = probe(s, f).tokens - before;
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(100, 50, 1, 0)));
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(200, 100, 2, 0)));
      expect(probe(s, f).tokens).toBe(BARE.tokens + 302 + last);
    });
  });

  describe('server items', () => {
    it('a conversation.item.done without an item, or without an id, adds nothing; one with an empty id is read safely', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      const tools = [{ name: 't', description: 'd'.repeat(1_000), input_schema: { type: 'object' } }];
      expect(server(f, { type: 'conversation.item.done' }).kind).toBe('continue');
      expect(server(f, { type: 'conversation.item.done', item: { type: 'mcp_list_tools', server_label: 'm', tools } }).kind).toBe('continue');
      expect(probe(s, f)).toEqual(BARE);
      // The view records no item without an id: still estimated (an MCP tool list is never free).
      expect(server(f, { type: 'conversation.item.done', item: { id: '', type: 'mcp_list_tools', server_label: 'm', tools } }).kind).toBe('continue');
      expect(probe(s, f).tokens).toBe(BARE.tokens + 8 + JSON.stringify({ id: '', type: 'mcp_list_tools', server_label: 'm', tools }).length);
    });

    it('an event type metering does not want passes unchanged', () => {
      const { f } = session(setup(), CAPPED);
      expect(server(f, { type: 'rate_limits.updated', rate_limits: [] })).toEqual({ kind: 'continue' });
      expect(client(f, { type: 'input_audio_buffer.commit' })).toEqual({ kind: 'continue' });
    });
  });

  describe('what estimated settles log and report', () => {
    it('a response.done whose usage cannot be priced: the warning names the response, its status and the problem; billed and reported at its reservation', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1' });
      server(f, created('resp_1'));
      server(f, done('resp_1', { input_tokens: 'many', output_tokens: 1 }, 'incomplete'));
      const warnings = () => s.logs.filter((l) => l.msg.startsWith('metering: response.done with a usage')).map((l) => [l.level, l.msg, l['responseId'], l['status'], l['problem']]);
      expect(warnings()).toEqual([['warn', 'metering: response.done with a usage that cannot be priced; billed at its reservation', 'resp_1', 'incomplete', 'input_tokens or output_tokens is not a count']]);
      // Its done came: not the warning of a response whose done never came.
      expect(s.logs.filter((l) => l.msg === 'metering: response without response.done billed at its reservation')).toEqual([]);
      expect(ctx.reports.filter((r) => r.kind === 'usage')).toEqual([
        { kind: 'usage', responseId: 'resp_1', model: 'gpt-realtime', costMicros: BARE.nanos / 1000, inputTokens: 0, outputTokens: 0, cachedTokens: 0, source: 'response' },
      ]);
      expect(s.records.map((r) => [r.ref, r.settledBy, r.costNanos])).toEqual([['resp_1', 'unreadable_usage_estimate', BARE.nanos]]);
      // A response this session never saw start: logged with its problem, not billed.
      server(f, done('resp_other', { input_tokens: 1 }));
      expect(warnings()[1]).toEqual(['warn', 'metering: response.done with a usage that cannot be priced, for a response this session never saw start; not billed', 'resp_other', undefined, 'input_tokens or output_tokens is not a count']);
      expect(s.records).toHaveLength(1);
    });

    it('a response whose done never came: warned with its rule and cost, reported as usage at its reservation', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1' });
      server(f, created('resp_1'));
      f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
      expect(s.logs.filter((l) => l.msg === 'metering: response without response.done billed at its reservation').map((l) => [l.level, l['responseId'], l['rule'], l['costNanos']])).toEqual([['warn', 'resp_1', 'upstream_drop_estimate', BARE.nanos]]);
      expect(ctx.reports.filter((r) => r.kind === 'usage')).toEqual([
        { kind: 'usage', responseId: 'resp_1', model: 'gpt-realtime', costMicros: BARE.nanos / 1000, inputTokens: 0, outputTokens: 0, cachedTokens: 0, source: 'response' },
      ]);
    });
  });

  describe('the ledger', () => {
    it('a synchronous ledger (no promise from release or settle) logs no failure', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1' });
      refuseUpstream(f, lastSent(f));
      client(f, { type: 'response.create', event_id: 'c2' });
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(10, 0, 1, 0)));
      expect(s.records.map((r) => r.ref)).toEqual(['resp_2']);
      expect(s.ledger.usagePage('acme', 0, 10).records.map((r) => r.ref)).toEqual(['resp_2']);
      expect(reserved(s)).toEqual(NONE);
      expect(s.logs.filter((l) => l.level === 'error')).toEqual([]);
    });

    it('a ledger call that throws is logged with its error', async () => {
      let a!: AsyncLedger;
      const s = setup({}, () => T0, (l) => (a = new AsyncLedger(l)));
      const { f } = session(s, CAPPED);
      a.faults.set('reserve', 'throw');
      expect((await clientAsync(f, { type: 'response.create', event_id: 'c1' })).kind).toBe('reject');
      a.faults.delete('reserve');
      a.faults.set('release', 'throw');
      expect((await clientAsync(f, { type: 'response.create', event_id: 'c2' })).kind).toBe('continue');
      refuseUpstream(f, lastSent(f));
      (s.rt as { onRecord: (r: unknown) => void }).onRecord = () => {
        throw new Error('disk full');
      };
      await serverAsync(f, created('resp_vad'));
      await serverAsync(f, done('resp_vad', usage(10, 0, 1, 0)));
      await flush();
      const errors = s.logs.filter((l) => l.level === 'error').map((l) => [l.msg, (l['err'] as { message?: string } | undefined)?.message]);
      expect(errors).toEqual([
        ['metering: reserve failed', 'reserve: ledger broken'],
        ['metering: release failed', 'release: ledger broken'],
        ['metering: usage export failed', 'disk full'],
      ]);
    });
  });

  describe('timers and the close', () => {
    it('every timer a create, a running response or the session set is cleared once done with', () => {
      const s = setup();
      vi.useFakeTimers();
      const { ctx, f } = session(s, { ...CAPPED, maxSessionDurationSec: 60 });
      expect(vi.getTimerCount()).toBe(1); // the session's duration
      client(f, { type: 'response.create', event_id: 'c1' });
      expect(vi.getTimerCount()).toBe(2); // the create waiting for its response.created
      refuseUpstream(f, lastSent(f));
      expect(vi.getTimerCount()).toBe(1);
      client(f, { type: 'response.create', event_id: 'c2' });
      server(f, created('resp_2'));
      expect(vi.getTimerCount()).toBe(1);
      // The duration runs out while resp_2 runs: the end waits (a grace timer) for its done.
      vi.advanceTimersByTime(60_000);
      expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_2']);
      expect(vi.getTimerCount()).toBe(1);
      server(f, done('resp_2', usage(10, 0, 1, 0), 'cancelled'));
      expect(ctx.closedWith?.code).toBe('session_duration_exceeded');
      expect(vi.getTimerCount()).toBe(0);
      // Closed while the grace timer runs, or with the duration timer set: both cleared.
      const t = session(s, { ...CAPPED, maxSessionDurationSec: 60 });
      client(t.f, { type: 'response.create', event_id: 'c3' });
      server(t.f, created('resp_3'));
      vi.advanceTimersByTime(60_000);
      expect(vi.getTimerCount()).toBe(1);
      t.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(vi.getTimerCount()).toBe(0);
      const u = session(s, { ...CAPPED, maxSessionDurationSec: 60 });
      expect(vi.getTimerCount()).toBe(1);
      u.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(vi.getTimerCount()).toBe(0);
    });

    it('a second close does nothing: the session slot is released once', async () => {
      let a!: AsyncLedger;
      const s = setup({}, () => T0, (l) => (a = new AsyncLedger(l)));
      const ticket = new AdmissionTicket();
      expect(await s.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 2 }), model: 'gpt-realtime', query: q, ticket })).toBeNull();
      const { f } = session(s, { maxConcurrentSessions: 2 }, 'gpt-realtime', undefined, ticket);
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(a.calls.filter((c) => c === 'releaseSlot')).toHaveLength(1);
    });
  });

  describe('input audio held back over a cap', () => {
    it('a recheck that answers after the hold was lifted and taken again leaves the new hold alone', async () => {
      let now = T0;
      let a!: DeferredStatusLedger;
      const s = setup({}, () => now, (l) => (a = new DeferredStatusLedger(l)));
      const { ctx, f } = session(s, { dailyUsd: '1' });
      const hit: CapHit = { cap: 'daily_usd', period: dayPeriod(T0), limit: 1_000_000_000, spent: 1_000_000_000, reserved: 0 };
      const held = 'metering client input_audio_buffer.append';
      a.knownOverHit = hit;
      server(f, created('resp_vad_1'));
      a.knownOverHit = null;
      expect(ctx.watched.has(held)).toBe(true);
      // 5 s later an append asks the ledger again (its answer waits).
      now = T0 + 5_000;
      expect(ctx.fromClient(f, appendFrame())).toMatchObject({ kind: 'reject' });
      expect(a.waiting).toBe(1);
      // Meanwhile a create is admitted (the hold is lifted), and a server-started response at a cap known takes it again.
      expect((await clientAsync(f, { type: 'response.create', event_id: 'c1' })).kind).toBe('continue');
      expect(ctx.watched.has(held)).toBe(false);
      server(f, created('resp_1'));
      a.knownOverHit = hit;
      server(f, created('resp_vad_2'));
      expect(ctx.watched.has(held)).toBe(true);
      // The old recheck answers "under the cap": it was about the old hold.
      a.answer();
      await flush();
      expect(ctx.watched.has(held)).toBe(true);
      expect(ctx.fromClient(f, appendFrame())).toMatchObject({ kind: 'reject' });
    });
  });
});

/** The asynchronous ledger whose status answers wait until the test lets them (`answer`). */
class DeferredStatusLedger extends AsyncLedger {
  readonly #waiting: (() => void)[] = [];
  get waiting(): number {
    return this.#waiting.length;
  }
  override status(tenant: string, caps: Parameters<AsyncLedger['status']>[1], wallMs: number) {
    return new Promise<ReturnType<SqliteStatus>>((resolve) => this.#waiting.push(() => resolve(this.inner.status(tenant, caps, wallMs))));
  }
  answer(): void {
    for (const go of this.#waiting.splice(0)) go();
  }
}
type SqliteStatus = AsyncLedger['inner']['status'];

/**
 * The fixes of the 2026-12-05 adversarial review (test/metering/adversary-*.test.ts end to end),
 * one by one at the filter: the session token limit holds input audio for good, a client commit
 * counts its buffer, a create reading the conversation counts the uncommitted buffer, creates keep
 * their reservations while the upstream is not read, prompt variables count, and a model switch in
 * flight reserves at the dearest model.
 */
describe('metering filter: the 2026-12-05 adversarial review\'s fixes, unit by unit', () => {
  const CAPPED = { dailyUsd: '1000' };
  const caps = { ...NO_CAPS, dayNanos: 1 };
  const reserved = (s: Setup) => s.ledger.status('acme', caps, T0).day.reserved;
  const NONE = { nanos: 0, tokens: 0 };
  // gpt-realtime: 8 framing tokens of prompt, the model's 4,096 output tokens at the audio rate.
  const BARE = { nanos: 8 * 4_000 + 4096 * 64_000, tokens: 8 + 4096 };
  const refuseUpstream = (f: Filter, eventId: string) => server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: eventId } });
  let seq = 0;
  /** What a response.create would reserve now (then refused upstream, which frees it). */
  function probe(s: Setup, f: Filter, response: Record<string, unknown> = {}): { nanos: number; tokens: number } {
    const id = `review_probe_${++seq}`;
    const before = reserved(s);
    expect(['continue', 'replace']).toContain(client(f, { type: 'response.create', event_id: id, response }).kind);
    const after = reserved(s);
    refuseUpstream(f, lastSent(f));
    expect(reserved(s)).toEqual(before);
    return { nanos: after.nanos - before.nanos, tokens: after.tokens - before.tokens };
  }
  const rejected = (v: Verdict | Promise<Verdict>): ProxyError | null => (!(v instanceof Promise) && v.kind === 'reject' ? v.error : null);
  const closeClient = (f: Filter) => f.onClose!({ initiator: 'client', code: 1001, reason: '' });
  // A reusable prompt whose variables are 10,000 characters: 8 (item) + 4 ("name") + 10,000 tokens of text.
  const bigPrompt = { id: 'pmpt_1', variables: { name: 'v'.repeat(10_000) } };
  const PROMPT_TOKENS = 8 + 4 + 10_000;

  describe('creates while the upstream is not read (backpressure)', () => {
    it('only the relay pausing its read of the upstream keeps a create\'s reservation: a client-side pause, or another server report, leaves its wait running', () => {
      vi.useFakeTimers();
      const s = setup({ pendingResponseTimeoutMs: 1000 });
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
      vi.advanceTimersByTime(500);
      // The client's direction paused (the proxy stops reading the client): the upstream is still read.
      ctx.report({ kind: 'backpressure', direction: 'client', state: 'paused' });
      // A latency sample of the server direction is no pause and restarts nothing.
      ctx.report({ kind: 'relay_latency', direction: 'server', ms: 3 });
      vi.advanceTimersByTime(499);
      expect(reserved(s).tokens).toBe(8 + 5);
      vi.advanceTimersByTime(1);
      expect(reserved(s)).toEqual(NONE);
      // Never answered while the upstream was read: released at the close, nothing billed.
      closeClient(f);
      expect(s.records).toEqual([]);
    });

    it('a pause and resume before the wait ends restart it in full: the old wait does not release the create at its first deadline', () => {
      vi.useFakeTimers();
      const s = setup({ pendingResponseTimeoutMs: 1000 });
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
      vi.advanceTimersByTime(500);
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
      vi.advanceTimersByTime(100);
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'resumed' });
      vi.advanceTimersByTime(900); // t = 1,500: past the first deadline
      expect(reserved(s).tokens).toBe(8 + 5);
      vi.advanceTimersByTime(99);
      expect(reserved(s).tokens).toBe(8 + 5);
      vi.advanceTimersByTime(1); // 1,000 after the resume
      expect(reserved(s)).toEqual(NONE);
    });

    it('a create sent while the upstream is not read keeps its reservation, and is billed at it when the session ends before the upstream is read', () => {
      vi.useFakeTimers();
      const s = setup({ pendingResponseTimeoutMs: 1000 });
      const { ctx, f } = session(s, CAPPED);
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
      client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
      vi.advanceTimersByTime(60_000);
      expect(reserved(s).tokens).toBe(8 + 5);
      closeClient(f);
      expect(s.records.map((r) => [r.ref, r.estimated, r.settledBy, r.totalTokens, r.costNanos])).toEqual([[ctx.upstreamIdOf('c1'), true, 'client_gone_estimate', 8 + 5, 8 * 4_000 + 5 * 64_000]]);
      expect(reserved(s)).toEqual(NONE);
    });

    it('a create billed at the close after a pause leaves no wait behind (its timer is cleared)', () => {
      vi.useFakeTimers();
      const s = setup({ pendingResponseTimeoutMs: 1000 });
      const { ctx, f } = session(s, CAPPED);
      client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 5 } });
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
      ctx.report({ kind: 'backpressure', direction: 'server', state: 'resumed' });
      expect(vi.getTimerCount()).toBe(1);
      closeClient(f);
      expect(s.records.map((r) => r.settledBy)).toEqual(['client_gone_estimate']);
      expect(vi.getTimerCount()).toBe(0);
    });
  });

  describe('input audio: a client commit and the uncommitted buffer', () => {
    const audio = 'A'.repeat(64_000);

    it('a client commit counts its buffer at once: a clear right behind it does not drop the committed audio', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      const frame = appendFrame(audio);
      ctx.fromClient(f, frame);
      expect(client(f, { type: 'input_audio_buffer.commit' }).kind).toBe('continue');
      client(f, { type: 'input_audio_buffer.clear' });
      // The committed item: 8 (item) + 8 (audio part) + its audio at the densest format (8 bytes/ms).
      expect(probe(s, f).tokens).toBe(BARE.tokens + 16 + audioTokensOfBase64(frame.size, 8));
      // Control: the same audio cleared without a commit is gone from the estimate.
      const t = setup();
      const g = session(t, CAPPED);
      g.ctx.fromClient(g.f, appendFrame(audio));
      client(g.f, { type: 'input_audio_buffer.clear' });
      expect(probe(t, g.f)).toEqual(BARE);
    });

    it('the uncommitted buffer counts for a create reading the conversation (which the upstream may commit first), not for one reading its own input only', () => {
      const s = setup();
      const { ctx, f } = session(s, CAPPED);
      const shapes: Record<string, Record<string, unknown>> = {
        conversation: {},
        ownListInConversation: { input: [] },
        outOfBandNoInput: { conversation: 'none' },
        outOfBandWithList: { conversation: 'none', input: [] },
      };
      const before = Object.fromEntries(Object.entries(shapes).map(([k, r]) => [k, probe(s, f, r).tokens]));
      const frame = appendFrame(audio);
      ctx.fromClient(f, frame);
      const buffer = 16 + audioTokensOfBase64(frame.size, 8);
      const after = Object.fromEntries(Object.entries(shapes).map(([k, r]) => [k, probe(s, f, r).tokens - before[k]!]));
      expect(after).toEqual({ conversation: buffer, ownListInConversation: buffer, outOfBandNoInput: buffer, outOfBandWithList: 0 });
    });
  });

  describe('reusable prompts\' variables', () => {
    it('a create\'s own prompt variables count in its reservation', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      expect(probe(s, f, { prompt: bigPrompt }).tokens).toBe(BARE.tokens + PROMPT_TOKENS);
      expect(probe(s, f)).toEqual(BARE);
    });

    it('a forwarded session.update\'s prompt counts at once until answered; a prompt cleared (null) asks nothing costly', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'session.update', session: { type: 'realtime', prompt: bigPrompt } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + PROMPT_TOKENS);
      const t = setup();
      const g = session(t, CAPPED);
      client(g.f, { type: 'session.update', session: { type: 'realtime', prompt: null } });
      expect(probe(t, g.f)).toEqual(BARE);
    });

    it('the session\'s prompt as the upstream reports it counts for every create, stays through a report that names none, and a null prompt clears it', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', prompt: bigPrompt } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + PROMPT_TOKENS);
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime' } });
      expect(probe(s, f).tokens).toBe(BARE.tokens + PROMPT_TOKENS);
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', prompt: null } });
      expect(probe(s, f)).toEqual(BARE);
    });
  });

  describe('a model switch in flight', () => {
    // Cheaper per token than gpt-realtime but with twice the output: its worst case has more tokens, fewer nanos.
    const prices = { prices: { 'long-out': { extends: 'gpt-realtime-mini', maxOutputTokens: 8192 } } };

    it('a create behind a switch to a dearer model reserves at the dearer; the switch answered, at the model in use', () => {
      const s = setup();
      const { f } = session(s, CAPPED, 'gpt-realtime-mini');
      const mini = probe(s, f);
      expect(mini.nanos).toBeLessThan(BARE.nanos);
      expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime' } }).kind).toBe('continue');
      expect(probe(s, f)).toEqual(BARE);
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime' } });
      expect(probe(s, f)).toEqual(BARE);
      // A switch to a cheaper model keeps the dearer model in use.
      client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
      expect(probe(s, f)).toEqual(BARE);
    });

    it('an update that names no model, or the model in use, prices nothing new (even with a dearer fallback price configured)', () => {
      const s = setup({ fallbackPrice: 'gpt-realtime' });
      const { f } = session(s, CAPPED, 'gpt-realtime-mini');
      const mini = probe(s, f);
      expect(mini.nanos).toBeLessThan(BARE.nanos);
      client(f, { type: 'session.update', session: { type: 'realtime', instructions: 'abcd' } });
      // Four instruction tokens more, at gpt-realtime-mini's prices still (the fallback is for unpriced models asked).
      const asked = probe(s, f);
      expect(asked.tokens).toBe(mini.tokens + 4);
      expect(asked.nanos).toBeLessThan(BARE.nanos / 2);
      client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
      expect(probe(s, f).nanos).toBeLessThan(BARE.nanos / 2);
    });

    it('the worst case takes the most nanos and the most tokens of the models in play, whichever is in use', () => {
      const s = setup(prices);
      const alone = probe(s, session(s, CAPPED, 'long-out').f);
      expect(alone.nanos).toBeLessThan(BARE.nanos);
      expect(alone.tokens).toBeGreaterThan(BARE.tokens);
      const most = { nanos: BARE.nanos, tokens: alone.tokens };
      const a = session(s, CAPPED, 'gpt-realtime');
      client(a.f, { type: 'session.update', session: { type: 'realtime', model: 'long-out' } });
      expect(probe(s, a.f)).toEqual(most);
      const b = session(s, CAPPED, 'long-out');
      client(b.f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime' } });
      expect(probe(s, b.f)).toEqual(most);
    });
  });

  describe('the session token limit holds input audio for good', () => {
    const hit: CapHit = { cap: 'daily_usd', period: dayPeriod(T0), limit: 1_000_000_000, spent: 1_000_000_000, reserved: 0 };
    const TAIL = 'Input audio is not accepted for the rest of the session.';

    it('a server-started response over the limit on settled tokens alone holds input audio at once: the client is told once, then audio is dropped', () => {
      const s = setup();
      const { ctx, f } = session(s, { maxSessionTokens: 0 });
      server(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_vad', 'token_limit_exceeded']]);
      const refusedBefore = (f.summary!() as { meteringRefused: number }).meteringRefused;
      const reportsBefore = ctx.reports.length;
      // Before its response.done: the audio is held already.
      const v = ctx.fromClient(f, appendFrame());
      const e = rejected(v);
      expect([e?.code, e?.param, e?.closesSession, e?.details]).toEqual(['token_limit_exceeded', 'input_audio_buffer.append', false, { limit: 0, used: 0, reserved: 4104 }]);
      expect(e?.message.endsWith(` ${TAIL}`)).toBe(true);
      expect(e!.message.length).toBeGreaterThan(TAIL.length + 1);
      expect(ctx.reports.slice(reportsBefore)).toEqual([{ kind: 'budget', action: 'refused', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null }]);
      expect(f.summary!()).toMatchObject({ meteringRefused: refusedBefore + 1 });
      expect(ctx.fromClient(f, appendFrame())).toEqual({ kind: 'drop' });
      expect(ctx.fromClient(f, appendFrame())).toEqual({ kind: 'drop' });
      expect(f.summary!()).toMatchObject({ meteringRefused: refusedBefore + 1 });
    });

    it('a response cancelled for another reason (unpriced model), or over the limit only with what running responses hold, leaves input audio flowing', () => {
      const u = session(setup(), { maxSessionTokens: 0 }, 'gpt-9');
      server(u.f, created('resp_vad'));
      expect(u.ctx.cancelled.map((c) => c.notice.code)).toEqual(['unknown_model_price']);
      expect(u.ctx.fromClient(u.f, appendFrame())).toEqual({ kind: 'continue' });
      const s = setup();
      const { ctx, f } = session(s, { maxSessionTokens: 8_000 }); // the two running responses hold 8,208
      client(f, { type: 'response.create', event_id: 'c1' });
      client(f, { type: 'response.create', event_id: 'c2' });
      server(f, created('resp_1'));
      server(f, created('resp_2'));
      server(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_vad', 'token_limit_exceeded']]);
      expect(ctx.fromClient(f, appendFrame())).toEqual({ kind: 'continue' });
    });

    it('a hold over a tenant cap becomes the session limit\'s when the session\'s tokens reach it: the client is told the new reason once, and it stays', async () => {
      let a!: AsyncLedger;
      const s = setup({}, () => T0, (l) => (a = new AsyncLedger(l)));
      const { ctx, f } = session(s, { dailyUsd: '1', maxSessionTokens: 100 });
      a.knownOverHit = hit;
      server(f, created('resp_vad_1'));
      a.knownOverHit = null;
      expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['budget_exceeded']);
      expect(rejected(ctx.fromClient(f, appendFrame()))?.code).toBe('budget_exceeded');
      expect(ctx.fromClient(f, appendFrame())).toEqual({ kind: 'drop' });
      // Its response.done reaches the session's token limit.
      await serverAsync(f, done('resp_vad_1', usage(100, 0, 0, 0), 'cancelled'));
      const e = rejected(ctx.fromClient(f, appendFrame()));
      expect([e?.code, e?.param, e?.details]).toEqual(['token_limit_exceeded', 'input_audio_buffer.append', { limit: 100, used: 100, reserved: 0 }]);
      expect(e?.message.endsWith(TAIL)).toBe(true);
      expect(ctx.fromClient(f, appendFrame())).toEqual({ kind: 'drop' });
      // Another response over the limit holds the audio again: the client is not told twice.
      server(f, created('resp_vad_2'));
      expect(ctx.cancelled.map((c) => c.notice.code)).toEqual(['budget_exceeded', 'token_limit_exceeded']);
      expect(ctx.fromClient(f, appendFrame())).toEqual({ kind: 'drop' });
      expect(ctx.watched.has('metering client input_audio_buffer.append')).toBe(true);
    });
  });
});

/**
 * The 2026-12-06 red-team fixes (test/metering/redteam-money.test.ts has the end-to-end scenarios):
 * the branches, one by one, for the mutation runs (which use this file).
 */
describe('metering filter: 2026-12-06 red-team fixes', () => {
  const CAPPED = { dailyUsd: '1000' };
  const caps = { ...NO_CAPS, dayNanos: 1 };
  const reservedTokens = (s: Setup) => s.ledger.status('acme', caps, T0).day.reserved.tokens;
  const refuseUpstream = (f: Filter, eventId: string) => server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: eventId } });
  let seq = 0;
  /** Tokens a response.create would reserve now (then refused upstream, which frees it). */
  function probe(s: Setup, f: Filter, response: Record<string, unknown>): number {
    const before = reservedTokens(s);
    client(f, { type: 'response.create', event_id: `rt_probe_${++seq}`, response: { output_modalities: ['text'], max_output_tokens: 1, ...response } });
    const after = reservedTokens(s);
    refuseUpstream(f, lastSent(f));
    expect(reservedTokens(s)).toBe(before);
    return after - before;
  }
  const ref = (id: string) => ({ conversation: 'none', input: [{ type: 'item_reference', id }] });
  const conversation = { conversation: 'none' };
  const tiny = (id: string) => ({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
  const modelItem = (id: string, responseId = 'resp_m') => ({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: { id, type: 'message', role: 'assistant', content: [] } });

  describe('a client item create reusing an id the upstream made', () => {
    it('a new id is that item\'s estimate; the id of a model item (seen added) is not: references read the whole conversation', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'y'.repeat(5_000) }] } });
      client(f, tiny('item_new'));
      expect(probe(s, f, ref('item_new'))).toBe(8 + 8 + 1 + 1);
      server(f, modelItem('item_model'));
      client(f, tiny('item_model'));
      expect(probe(s, f, ref('item_model'))).toBe(probe(s, f, conversation));
      expect(probe(s, f, conversation)).toBeGreaterThan(5_000);
    });

    it('an id the view knows (any item made upstream) counts as made upstream', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'conversation.item.added', item: { id: 'item_srv', type: 'message', role: 'user', content: [] } });
      client(f, tiny('item_srv'));
      expect(probe(s, f, ref('item_srv'))).toBe(probe(s, f, conversation));
    });

    it('past 10,000 model item ids no client id is taken as new; an id seen twice is kept once; an event without an item id is ignored', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'response.output_item.added', response_id: 'resp_m', output_index: 0 });
      client(f, tiny('item_early'));
      expect(probe(s, f, ref('item_early'))).toBe(8 + 8 + 1 + 1);
      for (let i = 0; i < 10_001; i++) server(f, modelItem(`item_m${i}`));
      server(f, modelItem('item_m0'));
      client(f, tiny('item_late'));
      expect(probe(s, f, ref('item_late'))).toBe(probe(s, f, conversation));
    });
  });

  describe('a transcribed client commit whose committed event is never read', () => {
    const second = { type: 'input_audio_buffer.append', audio: Buffer.alloc(48_000).toString('base64') };
    const pcm = (model: string | null) => ({ type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: model === null ? null : { model } } } } });

    it('is billed at the close by its audio length, named by the id it left with', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, pcm('whisper-1'));
      client(f, second);
      client(f, { type: 'input_audio_buffer.commit', event_id: 'k1' });
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(s.records.map((r) => [r.source, r.ref, r.model, r.settledBy, r.estimated])).toEqual([['transcription', `commit:${ctx.upstreamIdOf('k1')}`, 'whisper-1', 'client_gone_estimate', true]]);
      expect(s.records[0]!.seconds).toBeGreaterThanOrEqual(1);
    });

    it('its committed event hands it over to the item (billed once); a commit the upstream refused is not billed; nothing without transcription', () => {
      const s = setup();
      const { ctx, f } = session(s);
      client(f, second);
      client(f, { type: 'input_audio_buffer.commit', event_id: 'k0' }); // not transcribed
      server(f, pcm('whisper-1'));
      client(f, second);
      client(f, { type: 'input_audio_buffer.commit', event_id: 'k1' });
      client(f, { type: 'input_audio_buffer.commit', event_id: 'k2' });
      refuseUpstream(f, ctx.upstreamIdOf('k2'));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a', previous_item_id: null });
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(s.records.map((r) => [r.ref, r.settledBy])).toEqual([['item_a', 'client_gone_estimate']]);
    });

    it('a session.update turning transcription on counts for a commit right behind it, until answered', () => {
      const s = setup();
      const { f } = session(s);
      server(f, pcm(null));
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } } } });
      client(f, second);
      client(f, { type: 'input_audio_buffer.commit' });
      // Answered: turned off again by the upstream's report, a later commit is not transcribed.
      server(f, pcm(null));
      client(f, second);
      client(f, { type: 'input_audio_buffer.commit' });
      f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
      expect(s.records.map((r) => [r.model, r.settledBy])).toEqual([['gpt-4o-mini-transcribe', 'upstream_drop_estimate']]);
    });

    it('an empty commit bills nothing; beyond 256 commits in flight the oldest two merge, no audio lost', () => {
      const s = setup();
      const { f } = session(s);
      server(f, pcm('whisper-1'));
      client(f, { type: 'input_audio_buffer.commit' });
      for (let i = 0; i < 257; i++) {
        client(f, second);
        client(f, { type: 'input_audio_buffer.commit' });
      }
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      expect(s.records).toHaveLength(256);
      expect(s.records[0]!.seconds).toBeGreaterThanOrEqual(2);
      expect(s.records[1]!.seconds).toBeLessThan(2);
    });
  });

  it('a response is billed at the model it started at; one whose start was not seen, at the model in use', () => {
    const s = setup();
    const { f } = session(s, null, 'gpt-realtime-2');
    server(f, created('resp_1'));
    client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-mini' } });
    server(f, done('resp_1', usage(0, 0, 0, 1000)));
    server(f, done('resp_unseen', usage(0, 0, 0, 1000)));
    expect(s.records.map((r) => [r.ref, r.model, r.costNanos])).toEqual([
      ['resp_1', 'gpt-realtime-2', 64_000_000],
      ['resp_unseen', 'gpt-realtime-mini', 20_000_000],
    ]);
  });

  it('the output of a conversation response with its own input list joins the conversation estimate (text, audio, framing per item)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    const before = probe(s, f, conversation);
    client(f, { type: 'response.create', event_id: 'c1', response: { input: [] } });
    server(f, created('resp_1'));
    server(f, done('resp_1', { ...usage(0, 0, 1000, 300), output_tokens: 1500 }, 'completed', { output: [{ id: 'a' }, { id: 'b' }] }));
    expect(probe(s, f, conversation)).toBe(before + 2 * 8 + 1200 + 300);
    client(f, { type: 'response.create', event_id: 'c2', response: { input: [] } });
    server(f, created('resp_2'));
    server(f, done('resp_2', usage(0, 0, 10, 0)));
    expect(probe(s, f, conversation)).toBe(before + 2 * 8 + 1200 + 300 + 8 + 10);
    // An out-of-band one's output stays out of it.
    client(f, { type: 'response.create', event_id: 'c3', response: { conversation: 'none', input: [], metadata: { k: '3' } } });
    server(f, created('resp_3', { conversation_id: null, metadata: { k: '3' } }));
    server(f, done('resp_3', usage(0, 0, 10, 0), 'completed', { conversation_id: null, metadata: { k: '3' } }));
    expect(probe(s, f, conversation)).toBe(before + 2 * 8 + 1200 + 300 + 8 + 10);
  });

  it('an MCP call\'s output (or error) counts in the conversation once done; the model\'s arguments do not count again', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    const before = probe(s, f, conversation);
    const call = { id: 'item_call', type: 'mcp_call', server_label: 'kb', name: 'n', arguments: '{"q":1}' };
    expect(probe(s, f, conversation)).toBe(before);
    server(f, modelItem('item_call'));
    expect(probe(s, f, conversation)).toBe(before);
    server(f, { type: 'conversation.item.done', item: { ...call, output: 'o'.repeat(1000), error: null } });
    expect(probe(s, f, conversation)).toBe(before + 1000);
    server(f, modelItem('item_call2'));
    server(f, { type: 'conversation.item.done', item: { ...call, id: 'item_call2', output: null, error: { type: 'x' } } });
    expect(probe(s, f, conversation)).toBe(before + 1000 + JSON.stringify({ type: 'x' }).length);
    server(f, modelItem('item_call3'));
    server(f, { type: 'conversation.item.done', item: { ...call, id: 'item_call3', output: 42 } });
    expect(probe(s, f, conversation)).toBe(before + 1000 + JSON.stringify({ type: 'x' }).length);
  });

  describe('a transcription completed with a usage that prices at nothing', () => {
    it('bills the committed audio by its length, at the model it was committed under; a priced usage is billed as reported', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, transcriptionSession('whisper-1'));
      ctx.fromClient(f, appendFrame('A'.repeat(4000)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a', previous_item_id: null });
      server(f, transcriptionSession('gpt-4o-transcribe'));
      server(f, transcribed('item_a', { type: 'duration', seconds: 0 }));
      ctx.fromClient(f, appendFrame('A'.repeat(4000)));
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_b', previous_item_id: null });
      server(f, transcribed('item_b', { type: 'tokens', input_tokens: 10, output_tokens: 0, total_tokens: 10 }));
      expect(s.records.map((r) => [r.ref, r.model, r.settledBy, r.estimated])).toEqual([
        ['item_a', 'whisper-1', 'unreadable_usage_estimate', true],
        ['item_b', 'gpt-4o-transcribe', 'transcription.completed', false],
      ]);
      expect(s.logs.some((l) => l.msg === 'metering: input transcription completed with a usage that cannot be priced; billed by its audio length' && l['itemId'] === 'item_a')).toBe(true);
    });
  });

  describe('a server-started response while input audio is held back already (idle timeout)', () => {
    it('over a cap: the first is cancelled and holds the audio, the second ends the session (4002)', () => {
      const s = setup();
      const { ctx, f } = session(s, { dailyUsd: '0.01' });
      s.ledger.settle(null, spent(20_000_000));
      server(f, created('resp_1'));
      expect(ctx.closedWith).toBeNull();
      server(f, done('resp_1', usage(10, 0, 0, 0), 'cancelled'));
      server(f, created('resp_2'));
      server(f, done('resp_2', usage(10, 0, 0, 0), 'cancelled'));
      expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_1', 'resp_2']);
      expect(ctx.closedWith?.code).toBe('budget_exceeded');
      expect(ctx.closedWith?.closeCode).toBe(4002);
      expect(s.logs.some((l) => l.msg === 'metering: a server-started response while input audio is held back over a limit (idle timeout); ending the session')).toBe(true);
    });

    it('over the session token limit: the same', () => {
      const s = setup();
      const { ctx, f } = session(s, { maxSessionTokens: 100 });
      server(f, created('resp_0'));
      server(f, done('resp_0', usage(200, 0, 0, 0)));
      server(f, created('resp_1'));
      server(f, done('resp_1', usage(10, 0, 0, 0), 'cancelled'));
      expect(ctx.closedWith?.code).toBe('token_limit_exceeded');
    });

    it('a tenant known over its cap (an asynchronous ledger\'s hint): the same', async () => {
      let a!: AsyncLedger;
      const s = setup({}, () => T0, (l) => (a = new AsyncLedger(l)));
      const { ctx, f } = session(s, { dailyUsd: '0.01' });
      a.knownOverHit = { cap: 'daily_usd', period: dayPeriod(T0), limit: 10_000_000, spent: 20_000_000, reserved: 0 };
      await serverAsync(f, created('resp_1'));
      expect(ctx.closedWith).toBeNull();
      await serverAsync(f, done('resp_1', usage(10, 0, 0, 0), 'cancelled'));
      await serverAsync(f, created('resp_2'));
      await serverAsync(f, done('resp_2', usage(10, 0, 0, 0), 'cancelled'));
      expect(ctx.closedWith?.code).toBe('budget_exceeded');
    });
  });

  it('the ledger unavailable (fail closed): a server-started response is cancelled and input audio held, told once, until the ledger answers', async () => {
    let a!: AsyncLedger;
    let now = T0;
    const s = setup({ ledger: { path: ':memory:', kind: 'redis', url: 'redis://127.0.0.1:1' } }, () => now, (l) => (a = new AsyncLedger(l)));
    const { ctx, f } = session(s, { dailyUsd: '10' });
    a.reserveUnavailable = 'down';
    await serverAsync(f, created('resp_1'));
    expect(ctx.cancelled.map((c) => c.responseId)).toEqual(['resp_1']);
    const first = await Promise.resolve(ctx.fromClient(f, appendFrame()));
    expect(first.kind === 'reject' && first.error.code).toBe('budget_unavailable');
    expect(first.kind === 'reject' && first.error.param).toBe('input_audio_buffer.append');
    expect((await Promise.resolve(ctx.fromClient(f, appendFrame()))).kind).toBe('drop');
    // A cap found meanwhile replaces the reason; the ledger answers again and the cap allows: lifted at the next check.
    a.reserveUnavailable = null;
    now = T0 + 5_000;
    expect((await Promise.resolve(ctx.fromClient(f, appendFrame()))).kind).toBe('drop');
    await new Promise<void>((r) => setImmediate(r));
    expect((await Promise.resolve(ctx.fromClient(f, appendFrame()))).kind).toBe('continue');
    expect(ctx.closedWith).toBeNull();
  });

  it('a create released unanswered, then started: reserves at least its worst case, keeps what it reads; the 65th oldest is forgotten', () => {
    vi.useFakeTimers();
    const s = setup({ pendingResponseTimeoutMs: 1000 });
    const { f } = session(s, CAPPED);
    const big = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(3_000) }] };
    client(f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1, input: [big] } });
    const held = reservedTokens(s);
    vi.advanceTimersByTime(1000);
    expect(reservedTokens(s)).toBe(0);
    // (Taken before resp_1 starts: while it runs, a create reading the conversation counts its worst-case output.)
    const before = probe(s, f, conversation);
    server(f, created('resp_1', { max_output_tokens: 1 }));
    expect(reservedTokens(s)).toBe(held);
    // It read its own input list: its output joins the conversation, no recalibration from its usage.
    server(f, done('resp_1', usage(750, 0, 1, 0), 'completed', { output: [{ id: 'o' }] }));
    expect(probe(s, f, conversation)).toBe(before + 8 + 1);
    for (let i = 0; i < 65; i++) client(f, { type: 'response.create', event_id: `x${i}`, response: { conversation: 'none', metadata: { k: String(i) }, max_output_tokens: 1, input: [big] } });
    vi.advanceTimersByTime(1000);
    server(f, created('resp_x0', { conversation_id: null, metadata: { k: '0' }, max_output_tokens: 1 }));
    server(f, created('resp_x64', { conversation_id: null, metadata: { k: '64' }, max_output_tokens: 1 }));
    // x0 (forgotten) as a server-started response: the conversation (resp_1's 9) + 8 of prompt + 1; x64 as its create.
    expect(reservedTokens(s)).toBe(9 + 8 + 1 + held);
  });
});

describe('metering filter: 2026-12-06 second red-team pass (test/metering/redteam-money-2.test.ts)', () => {
  const CAPPED = { dailyUsd: '1000' };
  const probe = harnessProbe;
  const ref = references;
  const added = outputItemAdded;
  const start = startResponse;

  describe('output of responses still running', () => {
    it('a reference to an item of a running text response counts its output limit as text, once per response, framing per item; nothing once it is done', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      start(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 100 });
      server(f, added('resp_1', 'item_a'));
      // The conversation (0) for the unknown id, resp_1's 100 + 8 framing, 8 of prompt, 1 out.
      expect(probe(s, f, ref('item_a')).tokens).toBe(100 + 8 + 8 + 1);
      server(f, added('resp_1', 'item_b'));
      expect(probe(s, f, ref('item_a', 'item_b')).tokens).toBe(100 + 16 + 8 + 1);
      server(f, done('resp_1', usage(0, 0, 100, 0), 'completed', { output_modalities: ['text'] }));
      // Done: the conversation has it (the calibration), the reference counts the conversation only.
      expect(probe(s, f, ref('item_a')).tokens).toBe(100 + 8 + 1);
    });

    it('an audio response\'s items count its output as audio (the dearer input); "inf" is the model maximum', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      start(f, 'resp_1', { max_output_tokens: 50 });
      server(f, added('resp_1', 'item_a'));
      expect(probe(s, f, ref('item_a'))).toEqual({ tokens: 50 + 8 + 8 + 1, nanos: 50 * 32_000 + 16 * 4_000 + 16_000 });
      start(f, 'resp_2', { conversation: 'none', output_modalities: ['text'] }, { conversation_id: null });
      server(f, added('resp_2', 'item_b'));
      expect(probe(s, f, ref('item_b')).tokens).toBe(4096 + 8 + 8 + 1);
    });

    it('a reference to a client item or a finished response\'s item adds nothing; an unknown id still counts the conversation', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      client(f, { type: 'conversation.item.create', item: { id: 'item_c', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(100) }] } });
      server(f, { type: 'conversation.item.added', item: { id: 'item_c', type: 'message', role: 'user', content: [] } });
      expect(probe(s, f, ref('item_c')).tokens).toBe(108 + 8 + 1);
      expect(probe(s, f, ref('item_zz')).tokens).toBe(108 + 8 + 1);
    });

    it('a create reading the conversation counts the output of conversation responses running or waiting to start, not out-of-band ones', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      expect(probe(s, f, {}).tokens).toBe(8 + 1);
      start(f, 'resp_oob', { conversation: 'none', output_modalities: ['text'], max_output_tokens: 70 }, { conversation_id: null });
      expect(probe(s, f, {}).tokens).toBe(8 + 1);
      start(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 100 });
      expect(probe(s, f, {}).tokens).toBe(108 + 8 + 1);
      // A conversation create waiting for its response.created: its output too (audio: 30 as audio).
      expect(client(f, { type: 'response.create', event_id: 'c_wait', response: { max_output_tokens: 30 } }).kind).toBe('continue');
      expect(probe(s, f, {})).toEqual({ tokens: 108 + 38 + 8 + 1, nanos: (108 + 8 + 8) * 4_000 + 30 * 32_000 + 16_000 });
      // A conversation create with an input list of its own reads it and the conversation's in-flight output too.
      expect(probe(s, f, { input: [] }).tokens).toBe(108 + 38 + 8 + 1);
      // Out of band: none of it.
      expect(probe(s, f, { conversation: 'none', input: [] }).tokens).toBe(8 + 1);
    });

    it('a server-started response keeps its output limit for references to its items', () => {
      const s = setup();
      const { f } = session(s, CAPPED);
      server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 40 } });
      server(f, created('resp_vad', { max_output_tokens: 40, output_modalities: ['text'] }));
      server(f, added('resp_vad', 'item_v'));
      expect(probe(s, f, ref('item_v')).tokens).toBe(40 + 8 + 8 + 1);
    });
  });

  describe('a server-VAD turn whose committed is never read', () => {
    const seconds = (n: number) => ({ type: 'input_audio_buffer.append', audio: Buffer.alloc(n * 48_000).toString('base64') });
    const vadSession = (td: unknown = { type: 'server_vad', prefix_padding_ms: 200 }, tx: unknown = { model: 'whisper-1' }) => ({
      type: 'session.updated',
      session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: tx, turn_detection: td } } },
    });
    const close = (f: Filter) => f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    // Transcriptions: the response server VAD starts for such a turn is billed too (src/metering/filter-twelfth.test.ts).
    const transcriptions = (s: Setup) => s.records.filter((r) => r.source === 'transcription');
    const billed = (s: Setup) => transcriptions(s).map((r) => [r.source, r.ref, r.settledBy, r.seconds]);

    it('3 s sent at once, then the close: the excess over real time plus the padding, within the buffer', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, vadSession());
      ctx.time = 1000;
      client(f, seconds(3));
      ctx.time = 1100;
      close(f);
      expect(transcriptions(s).map((r) => [r.source, r.ref, r.settledBy, r.estimated])).toEqual([['transcription', 'vad:unread', 'client_gone_estimate', true]]);
      // The buffer (3 s + framing) less 1.1 s of wall time, plus 200 ms of padding.
      const bufferMs = Math.ceil((appendFrame(Buffer.alloc(3 * 48_000).toString('base64')).size * 3) / 4 / 48);
      expect(transcriptions(s)[0]!.seconds).toBe((Math.ceil(bufferMs - 1100) + 200) / 1000);
    });

    it('within the buffer: padding never bills more than was appended', () => {
      const s = setup();
      const { f } = session(s);
      server(f, vadSession({ type: 'server_vad', prefix_padding_ms: 60_000 }));
      client(f, seconds(3));
      close(f);
      expect(transcriptions(s)[0]!.seconds).toBeLessThan(3.1);
      expect(transcriptions(s)[0]!.seconds).toBeGreaterThan(3);
    });

    it('audio sent in real time, turn detection off, no transcription, a clear, a commit or a committed: nothing billed this way', () => {
      const cases: Array<(ctx: FakeSession, f: Filter) => void> = [
        (ctx, f) => {
          server(f, vadSession());
          client(f, seconds(3));
          ctx.time = 3000 - 400;
        },
        (_ctx, f) => {
          server(f, vadSession(null));
          client(f, seconds(3));
        },
        (_ctx, f) => {
          server(f, vadSession(undefined, null));
          client(f, seconds(3));
        },
        (_ctx, f) => {
          server(f, vadSession());
          client(f, seconds(3));
          client(f, { type: 'input_audio_buffer.clear' });
        },
        (_ctx, f) => {
          server(f, vadSession());
          client(f, seconds(3));
          server(f, { type: 'input_audio_buffer.speech_started', audio_start_ms: 0, item_id: 'item_s' });
          server(f, { type: 'input_audio_buffer.committed', item_id: 'item_s', previous_item_id: null });
          server(f, transcribed('item_s', { type: 'duration', seconds: 3 }));
        },
      ];
      for (const [i, run] of cases.entries()) {
        const s = setup();
        const { ctx, f } = session(s);
        run(ctx, f);
        close(f);
        expect(billed(s).filter((r) => r[2] !== 'transcription.completed'), `case ${i}`).toEqual([]);
      }
    });

    it('speech heard (speech_started read, its committed not): from its audio_start_ms to the end of the buffer, named by its item', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, vadSession());
      client(f, seconds(2));
      ctx.time = 2000;
      server(f, { type: 'input_audio_buffer.speech_started', audio_start_ms: 1500, item_id: 'item_s' });
      client(f, seconds(1));
      ctx.time = 3000;
      f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
      expect(billed(s)).toEqual([['transcription', 'item_s', 'upstream_drop_estimate', 1.5]]);
    });

    it('speech heard without audio_start_ms or item id: the whole buffer, as vad:unread; a turn detection an update in flight turns on counts', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, vadSession(null));
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad' } } } } });
      client(f, seconds(2));
      ctx.time = 2000;
      server(f, { type: 'input_audio_buffer.speech_started' });
      close(f);
      expect(billed(s).map((r) => r.slice(0, 3))).toEqual([['transcription', 'vad:unread', 'client_gone_estimate']]);
      expect(transcriptions(s)[0]!.seconds).toBeGreaterThan(2);
    });

    it('an update turning transcription on, in flight, counts; once answered, the session as reported decides', () => {
      const s = setup();
      const { ctx, f } = session(s);
      server(f, vadSession(undefined, null));
      client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'whisper-1' } } } } });
      client(f, seconds(3));
      close(f);
      expect(billed(s).map((r) => r[1])).toEqual(['vad:unread']);
      const s2 = setup();
      const b = session(s2);
      server(b.f, vadSession(undefined, null));
      client(b.f, { type: 'session.update', session: { type: 'realtime', audio: { input: { transcription: { model: 'whisper-1' }, turn_detection: null } } } });
      server(b.f, vadSession(null));
      client(b.f, seconds(3));
      close(b.f);
      expect(s2.records).toEqual([]);
      void ctx;
    });
  });

  describe('token caps and transcription billed by its audio length', () => {
    const tenSeconds = { type: 'input_audio_buffer.append', audio: Buffer.alloc(10 * 48_000).toString('base64') };
    const pcm = (model: string) => ({ type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model }, turn_detection: null } } } });
    it.each([
      ['gpt-4o-transcribe', true],
      ['gpt-4o-mini-transcribe', true],
      ['whisper-1', false],
      ['gpt-realtime-whisper', false],
    ])('%s: tokens counted %s', (model, counted) => {
      const s = setup();
      const { ctx, f } = session(s, { dailyTokens: 1_000_000 });
      server(f, pcm(model));
      client(f, tenSeconds);
      client(f, { type: 'input_audio_buffer.commit' });
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a', previous_item_id: null });
      f.onClose!({ initiator: 'client', code: 1000, reason: '' });
      const r = s.records[0]!;
      const tokens = counted ? Math.ceil(r.seconds! * 10) : 0;
      expect([r.inputTokens, r.totalTokens, r.outputTokens]).toEqual([tokens, tokens, 0]);
      expect(r.seconds).toBeGreaterThanOrEqual(10);
      expect(ctx.reports).toContainEqual(expect.objectContaining({ kind: 'usage', source: 'transcription', inputTokens: tokens }));
      expect((f.summary!() as Record<string, unknown>)['meteringSessionTokens']).toBe(tokens);
    });

    it('a completed event with its own token usage keeps it', () => {
      const s = setup();
      const { f } = session(s);
      server(f, pcm('gpt-4o-transcribe'));
      client(f, tenSeconds);
      client(f, { type: 'input_audio_buffer.commit' });
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a', previous_item_id: null });
      server(f, transcribed('item_a', { type: 'tokens', input_tokens: 50, output_tokens: 7, total_tokens: 57, input_token_details: { text_tokens: 0, audio_tokens: 50 } }));
      expect(s.records.map((r) => [r.totalTokens, r.estimated])).toEqual([[57, false]]);
    });
  });
});
