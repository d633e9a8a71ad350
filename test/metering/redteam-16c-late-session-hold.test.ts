import { describe, expect, it } from 'vitest';
import { appendFrame, created, done, server, session, setup, spent, T0, usage, type Setup } from './filter-harness.js';
import { createMeteringFilterFactory } from '../../src/metering/filter-factory.js';
import type { CapHit } from '../../src/metering/ledger.js';
import { NO_CAPS } from '../../src/metering/limits.js';
import { AUDIO_RECHECK_MS, TenantAudioHolds } from '../../src/metering/tenant-holds.js';
import type { Filter, Verdict } from '../../src/pipeline/filter.js';

/**
 * Adversary (metering.admission: worst_case): a tenant at its daily cap. One session's server-VAD
 * response is cancelled at response.created and billed for the conversation it read; every session
 * of the tenant then holds its input audio (test/metering/redteam-16-sessions-vad-cap.test.ts), here
 * and in the other workers and instances (the hold link). But only the sessions open at that moment:
 * the tenant opens a NEW session (its conversation large) a second later and speaks in it. That
 * session was never told, its audio reached the upstream, and the VAD response the turn started
 * was cancelled at response.created and billed for the whole conversation, once per session opened.
 * Guarantee broken: past a cap the tenant pays at most one cancelled VAD response (not one per
 * session it opens).
 */

const CAP_USD = '0.15';
const CAP_NANOS = 150_000_000;
/** ~20,000 tokens of text in the conversation a VAD response reads: $0.08 at gpt-realtime's $4/1M. */
const BIG_READ = usage(20_000, 0, 0, 0);

function heldSetup(clock: () => number): { s: Setup; holds: TenantAudioHolds; open: () => Filter } {
  const s = setup({ admission: 'worst_case' }, clock);
  const holds = new TenantAudioHolds();
  const withHolds = { ...s, factory: createMeteringFilterFactory({ ...s.rt, tenantHolds: holds }) };
  const open = (): Filter => {
    const { f } = session(withHolds, { dailyUsd: CAP_USD });
    f.onStart?.();
    return f;
  };
  return { s, holds, open };
}

const billedNanos = (s: Setup): number => s.records.reduce((sum, r) => sum + r.costNanos, 0);

/**
 * The client speaks one turn (three frames); the upstream, as server VAD does, starts a response
 * only if some of that audio reached it, which reads the large conversation and is cancelled (or
 * not) by the proxy at response.created. Returns the verdicts of the frames.
 */
function speakOneTurn(f: Filter, responseId: string): Verdict['kind'][] {
  const verdicts = [0, 1, 2].map(() => (f.onClient!(appendFrame()) as Verdict).kind);
  if (verdicts.includes('continue')) {
    server(f, created(responseId));
    server(f, done(responseId, BIG_READ, 'cancelled'));
  }
  return verdicts;
}

describe('over a cap, a session opened after the tenant was held starts held', () => {
  it('a hold found in this process holds a session that joins a second later; its own recheck lifts it once the cap is raised', () => {
    let now = T0;
    const { s, open } = heldSetup(() => now);
    s.ledger.settle(null, spent(CAP_NANOS));
    const first = open();

    // The first session's VAD response is refused its reservation: cancelled at response.created, billed, the tenant held.
    expect(speakOneTurn(first, 'resp_first')).toContain('continue');
    const afterFirst = billedNanos(s);
    expect(afterFirst).toBeGreaterThan(70_000_000);

    now += 1000;
    const late = open();
    const verdicts = speakOneTurn(late, 'resp_late');
    // Before the fix the late session's audio flowed (['continue', 'continue', 'continue']) and its VAD
    // response was cancelled and billed $0.08 more for the conversation it read ($0.31 on a $0.15 cap).
    expect(billedNanos(s) - afterFirst).toBe(0);
    expect(verdicts).toEqual(['reject', 'drop', 'drop']);

    // The admin raises the cap: the late session's own recheck lets its audio flow again.
    s.ledger.setOverride('acme', 'day', { nanos: 10_000_000_000 });
    now += AUDIO_RECHECK_MS;
    const raised = [0, 1].map(() => (late.onClient!(appendFrame()) as Verdict).kind);
    expect(raised).toEqual(['drop', 'continue']);
  });

  it('a hold from another worker or instance (the hold link) holds a session that joins here after it', () => {
    let now = T0;
    const { s, holds, open } = heldSetup(() => now);
    s.ledger.settle(null, spent(CAP_NANOS));
    // A session of the tenant here, silent; another process found the tenant over its cap and says so.
    open();
    const day = s.ledger.status('acme', { ...NO_CAPS, dayNanos: CAP_NANOS }, now).day;
    const hit: CapHit = { cap: 'daily_usd', period: day.period, limit: CAP_NANOS, spent: CAP_NANOS, reserved: 0 };
    expect(holds.overCapElsewhere('acme', hit, now)).toBe(1);
    const before = billedNanos(s);

    now += 1000;
    const late = open();
    const verdicts = speakOneTurn(late, 'resp_late');
    // Before the fix the late session's audio flowed and its VAD response was billed $0.08.
    expect(billedNanos(s) - before).toBe(0);
    expect(verdicts).toEqual(['reject', 'drop', 'drop']);
  });
});
