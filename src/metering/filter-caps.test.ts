/**
 * Issue 16 regression: a planted bug "the monthly cost cap compared with the day's spend" survived
 * the suite. Each cap (day/month × cost/tokens) is checked against its own period's spend in its
 * own unit, at admission (429 before the upgrade), at response.create, at a server-started (VAD)
 * response and after a settle (end_session: close 4002), with the spend of the other period or the
 * other unit on the other side of the cap. Likewise the per-session token limit.
 */
import { describe, expect, it } from 'vitest';
import { appendFrame, client, created, done, NEXT_DAY, server, session, setup, spent, T0, tenant, transcribed, transcriptionSession, usage } from '../../test/metering/filter-harness.js';
import { nextUtcMidnight, utcDate } from '../../test/support/clock.js';
import type { Verdict } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import type { TenantLimitsConfig } from './config.js';
import type { CapName } from './limits.js';

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
        const e = await s.factory.admit!({ tenant: tenant(c.limits), model: 'gpt-realtime', query: q });
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
          expect(await s.factory.admit!({ tenant: tenant(c.limits), model: 'gpt-realtime', query: q })).toBeNull();
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
        expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: c.cap, responseId: null });
        server(f, created('resp_vad'));
        expect(ctx.cancelled.map((x) => [x.responseId, x.by, x.notice.code, x.notice.details?.['cap'], x.notice.closesSession])).toEqual([['resp_vad', 'metering', 'budget_exceeded', c.cap, false]]);
        expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'cancelled', scope: 'tenant', limit: c.cap, responseId: 'resp_vad' });
        expect(ctx.closedWith).toBeNull();
        expect(f.summary!()).toMatchObject({ meteringRefused: 1, meteringCancelled: 1 });
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
        expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'tenant', limit: c.cap, responseId: null });
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
    expect(await s.factory.admit!({ tenant: tenant(limits), model: 'gpt-realtime', query: q })).toBeNull();
    s.ledger.settle(null, spent(50_000_000, 0, T0));
    expect((await s.factory.admit!({ tenant: tenant(limits), model: 'gpt-realtime', query: q }) as ProxyError).details?.['cap']).toBe('monthly_usd');
  });

  it('daily cap: yesterday\'s spend does not count today', async () => {
    const s = setup({}, () => NEXT_DAY);
    s.ledger.settle(null, spent(50_000_000, 5000, T0));
    expect(await s.factory.admit!({ tenant: tenant({ dailyUsd: '0.05', dailyTokens: 5000 }), model: 'gpt-realtime', query: q })).toBeNull();
    const { f } = session(s, { dailyUsd: '0.05', dailyTokens: 5000 });
    expect(client(f, { type: 'response.create' }).kind).toBe('replace');
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
    expect([e?.code, e?.eventId, e?.closesSession, e?.details]).toEqual(['token_limit_exceeded', 'c3', false, { limit: 100, used: 100 }]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'session', limit: 'max_session_tokens', responseId: null });
    // A server-started response past the limit is cancelled before any output.
    server(f, created('resp_vad'));
    expect(ctx.cancelled.map((c) => [c.responseId, c.notice.code, c.notice.details])).toEqual([['resp_vad', 'token_limit_exceeded', { limit: 100, used: 100 }]]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'cancelled', scope: 'session', limit: 'max_session_tokens', responseId: 'resp_vad' });
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
    expect(rejected(client(f, { type: 'response.create' }))?.details).toEqual({ limit: 100, used: 100 });
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
    expect([ctx.closedWith?.code, ctx.closedWith?.closeCode, ctx.closedWith?.details]).toEqual(['token_limit_exceeded', 4002, { limit: 100, used: 100 }]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'session', limit: 'max_session_tokens', responseId: null });
  });

  it('end_session: a create past the limit ends the session (no error event of its own, the close carries it)', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { ctx, f } = session(s, { maxSessionTokens: 0 });
    expect(client(f, { type: 'response.create', event_id: 'c1' }).kind).toBe('drop');
    expect([ctx.closedWith?.code, ctx.closedWith?.closeCode]).toEqual(['token_limit_exceeded', 4002]);
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
