/**
 * The metering side of a call taken over by another instance (SessionContext.carried, given by the
 * calls governor to its sideband): the session token limit counts on from the tokens the call's
 * earlier sidebands settled, and the duration limit runs from the call's start. End to end, on two
 * proxies sharing a ledger: test/calls/takeover-limits.test.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import type { TenantLimitsConfig } from '../../src/metering/config.js';
import type { CarriedUsage, Filter, Verdict } from '../../src/pipeline/filter.js';
import { FakeSession } from '../support/fake-session.js';
import { created, ev, setup, T0, usage, type Setup } from '../metering/filter-harness.js';

/** A call's sideband session: the call's usage so far, and what its settles told the governor. */
class SidebandSession extends FakeSession {
  readonly settled: number[] = [];
  readonly carried: CarriedUsage;
  constructor(s: Setup, limits: TenantLimitsConfig, carried: { startedAtWallMs: number; tokens: number }) {
    super({ tenant: { limits }, log: s.log });
    this.carried = { ...carried, settled: (tokens) => this.settled.push(tokens) };
  }
}

function sideband(s: Setup, limits: TenantLimitsConfig, carried: { startedAtWallMs: number; tokens: number }): { ctx: SidebandSession; f: Filter } {
  const ctx = new SidebandSession(s, limits, carried);
  const f = s.factory.create(ctx);
  const record = ctx.report.bind(ctx);
  ctx.report = (r) => {
    record(r);
    f.onReport?.(r);
  };
  f.onStart?.();
  return { ctx, f };
}

const done = (id: string, tokens: number) => ({ type: 'response.done', response: { id, status: 'completed', conversation_id: 'conv_1', output: [], usage: usage(tokens, 0, 0, 0) } });

describe('metering on a call taken over (SessionContext.carried)', () => {
  it('the session token limit counts on from the carried tokens: a response runs below it, the next one is refused; each settle reports the call\'s total', () => {
    const s = setup();
    const { ctx, f } = sideband(s, { maxSessionTokens: 100 }, { startedAtWallMs: T0, tokens: 60 });
    // 60 carried < 100: a server-started response runs.
    ctx.fromServer(f, ev(created('resp_1')));
    expect(ctx.cancelled).toEqual([]);
    ctx.fromServer(f, ev(done('resp_1', 50)));
    expect(ctx.settled).toEqual([110]);
    // 110 >= 100: the next one is cancelled over the session token limit.
    ctx.fromServer(f, ev(created('resp_2')));
    expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.details])).toEqual([['resp_2', 'token_limit_exceeded', { limit: 100, used: 110, reserved: 0 }]]);
    f.onClose!({ initiator: 'proxy', code: 1000, reason: '' });
    expect(f.summary!()['meteringSessionTokens']).toBe(s.records.reduce((n, r) => n + r.totalTokens, 0) + 60);
  });

  it('carried over the limit already: input audio is held back from the start (refuse), or the session ends at once (end_session)', () => {
    const refuse = setup();
    const held = sideband(refuse, { maxSessionTokens: 100 }, { startedAtWallMs: T0, tokens: 100 });
    expect(held.ctx.closedWith).toBeNull();
    const append = () => held.ctx.fromClient(held.f, ev({ type: 'input_audio_buffer.append', audio: Buffer.alloc(4800).toString('base64') })) as Verdict;
    const first = append();
    expect(first.kind === 'reject' ? [first.error.code, first.error.param] : first.kind).toEqual(['token_limit_exceeded', 'input_audio_buffer.append']);
    expect(append().kind).toBe('drop');
    const end = setup({ onExhausted: 'end_session' });
    const ended = sideband(end, { maxSessionTokens: 100 }, { startedAtWallMs: T0, tokens: 150 });
    expect(ended.ctx.closedWith?.code).toBe('token_limit_exceeded');
    // Below the limit, nothing happens at the start.
    const below = sideband(setup({ onExhausted: 'end_session' }), { maxSessionTokens: 100 }, { startedAtWallMs: T0, tokens: 99 });
    expect(below.ctx.closedWith).toBeNull();
  });

  it('a session (no call) with maxSessionTokens: 0 is at its limit from the start: its audio is held back (refuse), or it ends (end_session)', () => {
    const start = (s: Setup) => {
      const ctx = new FakeSession({ tenant: { limits: { maxSessionTokens: 0 } }, log: s.log });
      const f = s.factory.create(ctx);
      f.onStart?.();
      return { ctx, f };
    };
    const held = start(setup());
    expect(held.ctx.closedWith).toBeNull();
    const first = held.ctx.fromClient(held.f, ev({ type: 'input_audio_buffer.append', audio: Buffer.alloc(4800).toString('base64') })) as Verdict;
    expect(first.kind === 'reject' ? [first.error.code, first.error.param] : first.kind).toEqual(['token_limit_exceeded', 'input_audio_buffer.append']);
    expect(start(setup({ onExhausted: 'end_session' })).ctx.closedWith?.code).toBe('token_limit_exceeded');
    // A limit above 0 at 0 tokens: nothing at the start.
    const ctx = new FakeSession({ tenant: { limits: { maxSessionTokens: 1 } }, log: setup().log });
    const s = setup({ onExhausted: 'end_session' });
    s.factory.create(ctx).onStart?.();
    expect(ctx.closedWith).toBeNull();
  });

  it('the duration limit runs from the call\'s start: 59 s of 60 gone leaves 1 s; a call past it ends at once', () => {
    vi.useFakeTimers();
    const s = setup();
    const { ctx } = sideband(s, { maxSessionDurationSec: 60 }, { startedAtWallMs: T0 - 59_000, tokens: 0 });
    vi.advanceTimersByTime(999);
    expect(ctx.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect(ctx.closedWith?.code).toBe('session_duration_exceeded');
    const past = sideband(setup(), { maxSessionDurationSec: 60 }, { startedAtWallMs: T0 - 61_000, tokens: 0 });
    expect(past.ctx.closedWith).toBeNull();
    vi.advanceTimersByTime(0);
    expect(past.ctx.closedWith?.code).toBe('session_duration_exceeded');
    // Started now (a call's first sideband): the whole minute.
    const fresh = sideband(setup(), { maxSessionDurationSec: 60 }, { startedAtWallMs: T0, tokens: 0 });
    vi.advanceTimersByTime(59_999);
    expect(fresh.ctx.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect(fresh.ctx.closedWith?.code).toBe('session_duration_exceeded');
  });
});
