/**
 * Survivors of the nineteenth session's mutation run of src/metering/translation.ts (with
 * translation.test.ts alone): the price check's errors, the duration limit, maxSessionTokens, the
 * block bounds and admission modes, refusals and what they report, the ledger's faults, the records
 * and the summary. The filter is driven directly, as translation.test.ts does.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AsyncLedger, client, clientAsync, reservedNow, session, setup, spent, T0, type Setup } from '../../test/metering/filter-harness.js';
import { FakeSession } from '../../test/support/fake-session.js';
import type { Filter, Verdict } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { TRANSLATION_SESSION_KEY } from '../protocol/events.js';
import type { TenantLimitsConfig } from './config.js';
import { PriceBook } from './pricing.js';
import { TRANSLATION_BLOCK_MS, TranslationMeteringFilter, translationPriceProblem } from './translation.js';

const TRANSLATION = { [TRANSLATION_SESSION_KEY]: '1' };
const MODEL = 'gpt-realtime-translate';
/** Priced per minute and by tokens (10 audio tokens a second): the tokens count against maxSessionTokens. */
const TOKEN_MODEL = 'gpt-4o-transcribe';
const append = (ms: number, eventId = 'evt_a') => ({ type: 'session.input_audio_buffer.append', event_id: eventId, audio: Buffer.alloc(ms * 48).toString('base64') });
const closeInfo = { initiator: 'client' as const, code: 1006, reason: '' };
/** A minute of gpt-realtime-translate: $0.034. */
const MINUTE_NANOS = 34_000_000;

function asyncSetup(config: Record<string, unknown> = {}): Setup & { async: AsyncLedger } {
  let a!: AsyncLedger;
  const s = setup(config, () => T0, (l) => (a = new AsyncLedger(l)));
  return { ...s, async: a };
}

const translation = (s: Setup, limits: TenantLimitsConfig | null = { dailyUsd: '5' }, model = MODEL) => session(s, limits, model, TRANSLATION);
const refs = (s: Setup) => s.records.map((r) => r.ref);
const errorLogs = (s: Setup) => s.logs.filter((l) => l.level === 'error');
/** Lets promise callbacks (an asynchronous ledger's answers and their catches) run. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

function rejected(v: Verdict): ProxyError {
  if (v.kind !== 'reject') throw new Error(`expected reject, got ${v.kind}`);
  return v.error;
}
function closedWith(v: Verdict): ProxyError {
  if (v.kind !== 'close') throw new Error(`expected close, got ${v.kind}`);
  return v.error;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('translationPriceProblem', () => {
  const prices = new PriceBook({ prices: {}, aliases: {}, fallbackPrice: null });

  it('a translation model runs a translation session, as its dated snapshot and an alias of it do, and a model only the config prices', () => {
    const configured = new PriceBook({ prices: { 'my-translate': { kind: 'transcription', perMinute: '0.02' } }, aliases: { 'eu-translate': MODEL }, fallbackPrice: null });
    expect(translationPriceProblem(prices, MODEL)).toBeNull();
    expect(translationPriceProblem(prices, `${MODEL}-2026-11-01`)).toBeNull();
    expect(translationPriceProblem(configured, 'eu-translate')).toBeNull();
    // The price book cannot tell what a model it does not ship is: the upstream decides.
    expect(translationPriceProblem(configured, 'my-translate')).toBeNull();
  });

  it('a shipped transcription model (priced per minute too) is refused: the translations endpoint runs translation models only', () => {
    // Until 2026-12-07 gpt-realtime-whisper was dialled at the translations endpoint and only the upstream refused it.
    const aliased = new PriceBook({ prices: {}, aliases: { 'eu-whisper': 'gpt-realtime-whisper' }, fallbackPrice: null });
    for (const [book, model] of [[prices, 'gpt-realtime-whisper'], [prices, TOKEN_MODEL], [prices, 'gpt-realtime-whisper-2026-11-01'], [aliased, 'eu-whisper']] as const) {
      const e = translationPriceProblem(book, model)!;
      expect([e.code, e.message, e.details, e.param]).toEqual([
        'unknown_model_price',
        `The model "${model}" is a transcription model: a translation session needs a translation model (gpt-realtime-translate).`,
        { model, kind: 'transcription' },
        'model',
      ]);
      expect(e.httpStatus).toBe(400);
    }
  });

  it('a retired model is refused with its successor', () => {
    const e = translationPriceProblem(prices, 'gpt-4o-mini-realtime-preview')!;
    expect([e.code, e.message, e.details, e.param]).toEqual([
      'model_retired',
      'The model "gpt-4o-mini-realtime-preview" has been shut down by OpenAI; use "gpt-realtime-2.1-mini" instead.',
      { model: 'gpt-4o-mini-realtime-preview', successor: 'gpt-realtime-2.1-mini' },
      'model',
    ]);
  });

  it('a realtime model is refused: its price bills responses, which a translation session never has', () => {
    const e = translationPriceProblem(prices, 'gpt-realtime')!;
    expect([e.code, e.message, e.details, e.param]).toEqual([
      'unknown_model_price',
      'The model "gpt-realtime" is priced as a realtime model: a translation session is billed by its input audio and needs a per-minute price.',
      { model: 'gpt-realtime', kind: 'realtime' },
      'model',
    ]);
  });

  it('an unpriced model is refused, and a session naming none says so', () => {
    const e = translationPriceProblem(prices, 'no-such-model')!;
    expect([e.code, e.message, e.param]).toEqual(['unknown_model_price', 'No price is configured for model "no-such-model".', 'model']);
    expect(translationPriceProblem(prices, '')!.message).toBe('No price is configured for model "(unknown)".');
  });
});

describe('the session duration limit', () => {
  it('ends the session once maxSessionDurationSec has passed, and reports it', () => {
    vi.useFakeTimers();
    const s = setup();
    const { ctx } = translation(s, { maxSessionDurationSec: 2 });
    vi.advanceTimersByTime(1999);
    expect(ctx.closedWith).toBeNull();
    vi.advanceTimersByTime(1);
    expect([ctx.closedWith?.code, ctx.closedWith?.details]).toEqual(['session_duration_exceeded', { limitSec: 2 }]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'session', limit: 'session_duration_exceeded', code: 'session_duration_exceeded', responseId: null });
  });

  it('without the limit nothing ends the session; closed first, the timer is cleared', () => {
    vi.useFakeTimers();
    const s = setup();
    const unlimited = translation(s, { dailyUsd: '5' });
    const limited = translation(s, { maxSessionDurationSec: 2 });
    limited.f.onClose!(closeInfo);
    vi.runAllTimers();
    expect([unlimited.ctx.closedWith, limited.ctx.closedWith]).toEqual([null, null]);
    expect([...unlimited.ctx.reports, ...limited.ctx.reports].filter((r) => r.kind === 'budget')).toEqual([]);
  });
});

describe('what an append counts', () => {
  it('an event of another type is not counted, whatever it carries', () => {
    const s = setup();
    const { f } = translation(s);
    expect(client(f, { type: 'session.update', audio: Buffer.alloc(48_000).toString('base64') }).kind).toBe('continue');
    expect(f.summary!()['meteringTranslationSeconds']).toBe(0);
    f.onClose!(closeInfo);
    expect(s.records).toEqual([]);
  });

  it('an append without audio passes uncounted', () => {
    const s = setup();
    const { f } = translation(s);
    expect(client(f, { type: 'session.input_audio_buffer.append' }).kind).toBe('continue');
    expect(client(f, { type: 'session.input_audio_buffer.append', audio: 7 }).kind).toBe('continue');
    expect(reservedNow(s).nanos).toBe(0);
  });

  it('an append after the close is not counted', () => {
    const s = setup();
    const { f } = translation(s);
    client(f, append(1000));
    f.onClose!(closeInfo);
    expect(client(f, append(1000)).kind).toBe('continue');
    expect(f.summary!()['meteringTranslationSeconds']).toBe(1);
    expect(reservedNow(s).nanos).toBe(0);
  });
});

describe('maxSessionTokens', () => {
  it('an append taking the session past the limit is refused with what was used; up to it passes', () => {
    const s = setup();
    const { f, ctx } = translation(s, { maxSessionTokens: 20 }, TOKEN_MODEL);
    // 2 s is 20 tokens: exactly the limit.
    expect(client(f, append(2000)).kind).toBe('continue');
    const e = rejected(client(f, { type: 'session.input_audio_buffer.append', event_id: 'evt_b', audio: 'AA==' }));
    expect([e.code, e.eventId, e.param, e.details]).toEqual(['token_limit_exceeded', 'evt_b', 'audio', { limit: 20, used: 20, reserved: 0 }]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null });
    expect(f.summary!()).toMatchObject({ meteringTranslationSeconds: 2, meteringRefused: 1 });
  });

  it('without the limit a model with token prices is not refused', () => {
    const s = setup();
    const { f } = translation(s, { dailyUsd: '5' }, TOKEN_MODEL);
    expect(client(f, append(2000)).kind).toBe('continue');
  });

  it('under onExhausted end_session it ends the session', () => {
    const s = setup({ onExhausted: 'end_session' });
    const { f, ctx } = translation(s, { maxSessionTokens: 5 }, TOKEN_MODEL);
    const e = closedWith(client(f, append(1000, 'evt_t')));
    expect([e.code, e.eventId, e.details, e.closeCode]).toEqual(['token_limit_exceeded', 'evt_t', { limit: 5, used: 0, reserved: 0 }, 4002]);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'session', limit: 'max_session_tokens', code: 'token_limit_exceeded', responseId: null });
  });
});

describe('blocks', () => {
  it('an append ending at the block end reserves nothing more', () => {
    const s = setup();
    const { f } = translation(s);
    client(f, append(30_000));
    client(f, append(30_000));
    expect(reservedNow(s).nanos).toBe(MINUTE_NANOS);
    expect(s.records).toEqual([]);
    f.onClose!(closeInfo);
    expect(s.records.map((r) => [r.ref, r.seconds])).toEqual([['rps_test:translation:1', 60]]);
  });

  it('a block used up is settled when the next is reserved, each under its own reservation id', () => {
    const s = setup();
    const { f } = translation(s);
    for (let i = 0; i < 61; i++) expect(client(f, append(1000)).kind).toBe('continue');
    expect(s.records.map((r) => [r.ref, r.seconds])).toEqual([['rps_test:translation:1', 60]]);
    expect(reservedNow(s).nanos).toBe(MINUTE_NANOS);
    f.onClose!(closeInfo);
    expect(s.records.map((r) => [r.ref, r.seconds])).toEqual([['rps_test:translation:1', 60], ['rps_test:translation:2', 1]]);
    expect(reservedNow(s).nanos).toBe(0);
  });

  it('an append crossing the block end reserves what it lacks past the block', () => {
    const s = setup();
    const { f } = translation(s);
    client(f, append(30_000));
    client(f, append(100_000));
    // 130 s in all: the first minute billed, 70 s reserved.
    expect(reservedNow(s).nanos).toBe(39_666_667);
    f.onClose!(closeInfo);
    expect(s.records.map((r) => r.seconds)).toEqual([60, 70]);
  });

  it('uncapped, the records get ids of their own', () => {
    const s = setup();
    const { f } = translation(s, null);
    for (let i = 0; i < 61; i++) client(f, append(1000));
    f.onClose!(closeInfo);
    // Block 2's id is taken before block 1 is billed (3); the close bills block 2 (4).
    expect(refs(s)).toEqual(['rps_test:translation:3', 'rps_test:translation:4']);
  });
});

describe('admission of a block', () => {
  it('under remaining a block is granted while anything of the cap is left', () => {
    const s = setup();
    const { f } = translation(s, { dailyUsd: '0.03' });
    expect(client(f, append(1000)).kind).toBe('continue');
    expect(reservedNow(s).nanos).toBe(MINUTE_NANOS);
  });

  it('under worst_case a block must fit', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = translation(s, { dailyUsd: '0.03' });
    expect(rejected(client(f, append(1000))).code).toBe('budget_exceeded');
  });

  it('a block longer than a minute must fit even under remaining', () => {
    const s = setup();
    const { f } = translation(s, { dailyUsd: '0.03' });
    expect(rejected(client(f, append(61_000))).code).toBe('budget_exceeded');
    expect(reservedNow(s).nanos).toBe(0);
  });
});

describe('refusals', () => {
  it('over a cap: refused with the cap, reported for the tenant, not counted', () => {
    const s = setup();
    s.ledger.settle(null, spent(10_000_000));
    const { f, ctx } = translation(s, { dailyUsd: '0.01' });
    const e = rejected(client(f, append(1000, 'evt_o')));
    expect([e.code, e.eventId, e.param, e.details?.['cap']]).toEqual(['budget_exceeded', 'evt_o', 'audio', 'daily_usd']);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: 'daily_usd', code: 'budget_exceeded', responseId: null });
    expect(f.summary!()).toMatchObject({ meteringTranslationSeconds: 0, meteringRefused: 1 });
  });

  it('over a cap under end_session: the session ends with the same error', () => {
    const s = setup({ onExhausted: 'end_session' });
    s.ledger.settle(null, spent(10_000_000));
    const { f, ctx } = translation(s, { dailyUsd: '0.01' });
    const e = closedWith(client(f, append(1000, 'evt_o')));
    expect([e.code, e.eventId, e.closeCode, e.message]).toEqual(['budget_exceeded', 'evt_o', 4002, expect.stringContaining('daily cost budget is exhausted')]);
    expect(e.details).toMatchObject({ cap: 'daily_usd', limit: '0.01', spent: '0.01' });
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'ended', scope: 'tenant', limit: 'daily_usd', code: 'budget_exceeded', responseId: null });
  });

  it('the ledger unavailable under end_session: refused, the session goes on', async () => {
    const s = asyncSetup({ onExhausted: 'end_session' });
    s.async.reserveUnavailable = 'redis down';
    const { f, ctx } = translation(s);
    const e = rejected(await clientAsync(f, append(1000, 'evt_u')));
    expect([e.code, e.message]).toEqual(['budget_unavailable', 'The budget ledger is unavailable; the audio was not sent upstream.']);
    expect(ctx.reports).toContainEqual({ kind: 'budget', action: 'refused', scope: 'tenant', limit: 'budget_unavailable', code: 'budget_unavailable', responseId: null });
  });

  it('a reserve that rejects or throws is logged and refuses the append', async () => {
    for (const fault of ['reject', 'throw'] as const) {
      const s = asyncSetup();
      s.async.faults.set('reserve', fault);
      const { f } = translation(s);
      expect(rejected(await clientAsync(f, append(1000))).code).toBe('budget_unavailable');
      expect(errorLogs(s)).toEqual([expect.objectContaining({ msg: 'metering: translation reserve failed', err: expect.objectContaining({ message: `reserve: ${fault === 'reject' ? 'redis down' : 'ledger broken'}` }) })]);
    }
  });

  it('failMode open: the ledger unavailable, the block runs unreserved and is billed under an id of its own', async () => {
    const s = asyncSetup({ ledger: { path: ':memory:', failMode: 'open' } });
    s.async.reserveUnavailable = 'redis down';
    const { f } = translation(s);
    expect((await clientAsync(f, append(1000))).kind).toBe('continue');
    f.onClose!(closeInfo);
    await settled();
    expect(s.records.map((r) => [r.ref, r.seconds])).toEqual([['rps_test:translation:2', 1]]);
  });
});

describe('a reservation answered after the close', () => {
  it('an unavailable answer releases nothing', async () => {
    const s = asyncSetup();
    s.async.reserveUnavailable = 'redis down';
    const { f } = translation(s);
    const verdict = clientAsync(f, append(1000));
    f.onClose!(closeInfo);
    expect((await verdict).kind).toBe('continue');
    expect(s.async.calls).not.toContain('release');
  });

  it('a release that rejects is let go quietly; one that throws is logged', async () => {
    for (const fault of ['reject', 'throw'] as const) {
      const s = asyncSetup();
      s.async.faults.set('release', fault);
      const { f } = translation(s);
      const verdict = clientAsync(f, append(1000));
      f.onClose!(closeInfo);
      await verdict;
      await settled();
      expect(s.async.calls).toContain('release');
      expect(errorLogs(s).map((l) => [l.msg, (l['err'] as { message?: string } | undefined)?.message])).toEqual(fault === 'throw' ? [['metering: release failed', 'release: ledger broken']] : []);
    }
  });
});

/** A promise that notes whether a rejection handler was attached to it (an unhandled one would fail the run, not a test). */
class WatchedPromise extends Promise<void> {
  handled = false;
  override catch<T = never>(onRejected?: ((reason: unknown) => T | PromiseLike<T>) | null): Promise<void | T> {
    this.handled = true;
    return super.catch(onRejected);
  }
}

/** Answers every release with a rejected WatchedPromise, as Redis down would. */
class RejectingRelease extends AsyncLedger {
  readonly releases: WatchedPromise[] = [];
  override release(): Promise<void> {
    const answer = new WatchedPromise((_resolve, reject) => reject(new Error('release: redis down')));
    this.releases.push(answer);
    return answer;
  }
}

describe('a release answered with a promise', () => {
  it('a release after the close that rejects has its rejection caught', async () => {
    let a!: RejectingRelease;
    const s = setup({}, () => T0, (l) => (a = new RejectingRelease(l)));
    const { f } = translation(s);
    const verdict = clientAsync(f, append(1000));
    f.onClose!(closeInfo);
    await verdict;
    await settled();
    expect(a.releases.map((r) => r.handled)).toEqual([true]);
  });
});

describe('what a close bills', () => {
  it('the record and the usage report of the audio used', () => {
    const s = setup();
    const { f, ctx } = translation(s);
    client(f, append(30_000));
    f.onClose!(closeInfo);
    expect(s.records).toEqual([
      {
        ts: T0, tenant: 'acme', session: 'rps_test', source: 'transcription', ref: 'rps_test:translation:1', model: MODEL, status: null,
        costNanos: MINUTE_NANOS / 2, inputTokens: 0, outputTokens: 0, cachedTokens: 0, totalTokens: 0, input: null, cached: null, output: null,
        seconds: 30, estimated: false, settledBy: 'translation_audio', fallbackPrice: false,
      },
    ]);
    expect(ctx.reports.filter((r) => r.kind === 'usage')).toEqual([
      { kind: 'usage', responseId: 'rps_test:translation:1', model: MODEL, costMicros: 17_000, inputTokens: 0, outputTokens: 0, cachedTokens: 0, source: 'transcription' },
    ]);
  });

  it('a second close bills nothing more', () => {
    const s = setup();
    const { f } = translation(s);
    client(f, append(1000));
    f.onClose!(closeInfo);
    f.onClose!(closeInfo);
    expect(s.records).toHaveLength(1);
  });

  it('a model under the fallback price is billed at it and marked so', () => {
    const s = setup({ fallbackPrice: MODEL });
    const { f } = translation(s, { dailyUsd: '5' }, 'my-translate');
    client(f, append(60_000));
    f.onClose!(closeInfo);
    expect(s.records.map((r) => [r.model, r.costNanos, r.fallbackPrice])).toEqual([['my-translate', MINUTE_NANOS, true]]);
  });

  it('an unpriced model (or none) costs nothing and is not marked as under the fallback', () => {
    for (const model of ['no-such-model', '']) {
      const s = setup();
      const { f } = translation(s, { dailyUsd: '5' }, model);
      expect(client(f, append(1000)).kind).toBe('continue');
      f.onClose!(closeInfo);
      expect(s.records.map((r) => [r.costNanos, r.totalTokens, r.fallbackPrice])).toEqual([[0, 0, false]]);
      expect(f.summary!()['meteringModel']).toBe(model || null);
    }
  });

  it('a settle that rejects or throws is logged; the record is still exported', async () => {
    for (const fault of ['reject', 'throw'] as const) {
      const s = asyncSetup();
      const { f } = translation(s);
      await clientAsync(f, append(1000));
      s.async.faults.set('settle', fault);
      f.onClose!(closeInfo);
      await settled();
      expect(s.records).toHaveLength(1);
      const log = errorLogs(s);
      expect(log.map((l) => l.msg)).toEqual(['metering: settle failed']);
      if (fault === 'reject') expect(log[0]!['ref']).toBe('rps_test:translation:1');
      else expect((log[0]!['record'] as { ref: string }).ref).toBe('rps_test:translation:1');
    }
  });

  it('a synchronous ledger settles without a log', () => {
    const s = setup();
    const { f } = translation(s);
    client(f, append(1000));
    f.onClose!(closeInfo);
    expect(errorLogs(s)).toEqual([]);
    expect(s.ledger.status('acme', { dayNanos: 1, monthNanos: null, dayTokens: null, monthTokens: null }, T0).day.spent.nanos).toBe(566_667);
  });

  it('an export that throws is logged; the ledger has the record', () => {
    const s = setup();
    Object.assign(s.rt, {
      onRecord: () => {
        throw new Error('export down');
      },
    });
    const { f } = translation(s);
    client(f, append(1000));
    f.onClose!(closeInfo);
    expect(errorLogs(s).map((l) => [l.msg, (l['err'] as { message?: string }).message])).toEqual([['metering: usage export failed', 'export down']]);
  });
});

describe("the session's concurrency slot", () => {
  function direct(slot: string | null): { f: Filter; a: AsyncLedger } {
    let a!: AsyncLedger;
    const s = setup({}, () => T0, (l) => (a = new AsyncLedger(l)));
    const ctx = new FakeSession({ tenant: { limits: { dailyUsd: '5' } }, model: MODEL, query: TRANSLATION, log: s.log });
    return { f: new TranslationMeteringFilter(ctx, s.rt, slot), a };
  }

  it('is given back once at the close; a session without one gives nothing back', () => {
    const held = direct('slot_1');
    held.f.onClose!(closeInfo);
    held.f.onClose!(closeInfo);
    expect(held.a.calls.filter((c) => c === 'releaseSlot')).toHaveLength(1);
    const none = direct(null);
    none.f.onClose!(closeInfo);
    expect(none.a.calls).not.toContain('releaseSlot');
  });
});

describe('the summary', () => {
  it('shows the model, the audio, the cost, the tokens and the refusals', () => {
    const s = setup();
    const { f } = translation(s, { maxSessionTokens: 20 }, TOKEN_MODEL);
    client(f, append(1500));
    client(f, append(1000));
    f.onClose!(closeInfo);
    // 1.5 s of gpt-4o-transcribe ($0.006/min, 15 tokens); the second append refused (25 tokens).
    expect(f.summary!()).toEqual({ meteringModel: TOKEN_MODEL, meteringTranslationSeconds: 1.5, meteringCostUsd: '0.00015', meteringCostNanos: 150_000, meteringTokens: 15, meteringRefused: 1 });
    expect(TRANSLATION_BLOCK_MS).toBe(60_000);
  });
});
