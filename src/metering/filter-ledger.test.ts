/**
 * The metering filter against a ledger that answers asynchronously (as Redis does) and one that
 * fails: who is refused, with which code and close code, and what is billed. No sockets.
 */
import { describe, expect, it, vi } from 'vitest';
import { AsyncLedger, client, clientAsync, created, done, server, serverAsync, session, setup, spent, T0, tenant, transcribed, transcriptionSession, usage, appendFrame } from '../../test/metering/filter-harness.js';
import type { Verdict } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { createMeteringFilterFactory, admissionProbe } from './filter.js';
import type { CapHit } from './ledger.js';
import { dayPeriod } from './periods.js';

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

  it('the session closes while a VAD reservation is in flight: released, nothing billed', async () => {
    const s = asyncSetup();
    const { f } = session(s, { dailyUsd: '100' });
    const pending = server(f, created('resp_vad'));
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(await pending).toEqual({ kind: 'continue' });
    await flush();
    expect(reserved(s)).toEqual({ nanos: 0, tokens: 0 });
    expect(s.records).toEqual([]);
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
      expect(v.kind === 'reject' && String(v.error.details?.['reason'])).toContain('reserve: ');
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ledger_unavailable', scope: 'tenant', limit: 'ledger', responseId: null });
      await serverAsync(f, created('resp_vad'));
      expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code])).toEqual([['resp_vad', 'budget_unavailable']]);
      expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ledger_unavailable', scope: 'tenant', limit: 'ledger', responseId: 'resp_vad' });
      expect(ctx.closedWith).toBeNull();
      expect(f.summary!()).toMatchObject({ meteringRefused: 1, meteringCancelled: 1 });
    });
  }

  it('the unavailable reason reaches the client trimmed to 200 characters', async () => {
    const s = asyncSetup();
    s.async.reserveUnavailable = 'x'.repeat(500);
    const { ctx, f } = session(s, { dailyUsd: '1' });
    const v = await clientAsync(f, { type: 'response.create', event_id: 'c1' });
    expect(v.kind === 'reject' && v.error.details).toEqual({ reason: 'x'.repeat(200) });
    await serverAsync(f, created('resp_vad'));
    expect(ctx.cancelled[0]?.notice.details).toEqual({ reason: 'x'.repeat(200) });
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
    expect(ctx.closedWith).toBeNull();
  });

  it('a release that fails (rejects or throws) is swallowed: the session goes on', async () => {
    for (const fault of ['reject', 'throw'] as const) {
      const s = asyncSetup();
      s.async.faults.set('release', fault);
      const { ctx, f } = session(s, { dailyUsd: '1' });
      await clientAsync(f, { type: 'response.create', event_id: 'c1' });
      await serverAsync(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'c1' } });
      await flush();
      expect(ctx.closedWith).toBeNull();
      expect(s.async.calls).toContain('release');
    }
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

  it('held input audio: the recheck is asynchronous and one at a time; a failed recheck keeps audio held and is retried', async () => {
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
    expect(append().kind).toBe('drop'); // the failed recheck let the next frame ask again
    expect(s.async.calls.filter((c) => c === 'status')).toHaveLength(2);
    await flush();
    expect(append().kind).toBe('continue');
  });
});

describe('metering filter: admission with a ledger that fails', () => {
  it('failMode closed: a capped tenant whose spend cannot be read is refused with budget_unavailable (1013); open admits', async () => {
    for (const fault of ['reject', 'throw'] as const) {
      const closed = asyncSetup();
      closed.async.faults.set('status', fault);
      const e = await closed.factory.admit!({ tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q });
      expect(e instanceof ProxyError && [e.code, e.closeCode]).toEqual(['budget_unavailable', 1013]);
      expect(closed.logs.some((l) => l.level === 'warn' && l.msg === 'metering: ledger status unavailable at admission' && l['tenant'] === 'acme')).toBe(true);
      const open = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
      open.async.faults.set('status', fault);
      expect(await open.factory.admit!({ tenant: tenant({ dailyUsd: '1' }), model: 'gpt-realtime', query: q })).toBeNull();
    }
  });

  it('a tenant without caps is admitted without asking the ledger', async () => {
    const s = asyncSetup();
    s.async.faults.set('status', 'throw');
    expect(await s.factory.admit!({ tenant: tenant({ maxSessionTokens: 5 }), model: 'gpt-realtime', query: q })).toBeNull();
    expect(s.async.calls).toEqual([]);
  });

  it('concurrent-session slots unavailable: refused with budget_unavailable (closed), admitted (open)', async () => {
    const closed = asyncSetup();
    closed.async.slotUnavailable = true;
    const e = await closed.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q });
    expect(e instanceof ProxyError && [e.code, e.closeCode]).toEqual(['budget_unavailable', 1013]);
    const open = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
    open.async.slotUnavailable = true;
    expect(await open.factory.admit!({ tenant: tenant({ maxConcurrentSessions: 1 }), model: 'gpt-realtime', query: q })).toBeNull();
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
      const e = (await s.factory.admit!({ tenant: tenant(limits), model: 'gpt-realtime', query: q })) as ProxyError;
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
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    const e = await admissionProbe(s.rt, { tenant: t, model: 'gpt-realtime', query: q });
    expect(e?.code).toBe('concurrent_sessions_exceeded');
    expect(e?.details).toEqual({ limit: 1 });
    expect(e?.httpStatus).toBe(429);
    expect(e?.closeCode).toBe(4002);
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
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q }))?.constructor).toBe(ProxyError);
    // One upgrade completes: its session holds a slot for as long as it runs.
    const a = session(s, { maxConcurrentSessions: 2 });
    vi.advanceTimersByTime(29_999);
    expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q }))?.constructor).toBe(ProxyError);
    vi.advanceTimersByTime(1);
    // The other never did: its slot is free again, the session's is not.
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q }))?.constructor).toBe(ProxyError);
    vi.advanceTimersByTime(60_000);
    a.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
  });

  it('two sessions of one tenant claim two parked slots; a session without a parked slot releases nothing', async () => {
    const s = setup();
    const t = tenant({ maxConcurrentSessions: 2 });
    await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q });
    await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q });
    const a = session(s, { maxConcurrentSessions: 2 });
    const b = session(s, { maxConcurrentSessions: 2 });
    const c = session(s, { maxConcurrentSessions: 2 }); // e.g. admitted by another path
    c.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q }))?.constructor).toBe(ProxyError);
    a.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    a.f.onClose!({ initiator: 'client', code: 1000, reason: '' }); // a second close is a no-op
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
    expect((await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q }))?.constructor).toBe(ProxyError);
    b.f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    expect(await s.factory.admit!({ tenant: t, model: 'gpt-realtime', query: q })).toBeNull();
  });

  it('a call the proxy governs: the client\'s own ?call_id= socket is neither admitted against caps nor metered', async () => {
    const s = setup();
    const rt = { ...s.rt, callsGoverned: true };
    const factory = createMeteringFilterFactory(rt);
    s.ledger.settle(null, spent(1));
    const capped = tenant({ dailyUsd: '0.000000001', maxConcurrentSessions: 1 });
    expect(await factory.admit!({ tenant: capped, model: 'gpt-realtime', query: new Map([['call_id', 'rtc_1']]) })).toBeNull();
    expect((await factory.admit!({ tenant: capped, model: 'gpt-realtime', query: q }))?.constructor).toBe(ProxyError);
    const { FakeSession } = await import('../../test/support/fake-session.js');
    expect(factory.create(new FakeSession({ tenant: capped, query: { call_id: 'rtc_1' } }))).toEqual({});
    const metered = factory.create(new FakeSession({ tenant: capped }));
    expect(typeof metered.onClient).toBe('function');
    // Without calls governance a call_id socket is metered like any other.
    expect((await s.factory.admit!({ tenant: capped, model: 'gpt-realtime', query: new Map([['call_id', 'rtc_1']]) }))?.constructor).toBe(ProxyError);
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
