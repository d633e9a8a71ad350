import { describe, expect, it } from 'vitest';
import type { Verdict } from '../../src/pipeline/filter.js';
import type { SqliteLedger } from '../../src/metering/sqlite-ledger.js';
import { appendFrame, server, session, setup, spent, T0, created } from './filter-harness.js';

/*
 * A held session asks the ledger again at its next input audio frame after AUDIO_RECHECK_MS. The
 * SQLite ledger answers synchronously and its status() throws when the file cannot be read (a cold
 * period's total: the first recheck after midnight, a tenant not read since start) — the settle
 * path already catches that (#afterSettle). The recheck did not: the throw left `checking` true, so
 * that session never asked again and its input audio stayed held for the rest of the session, even
 * once the file read again and the operator raised the cap; and every frame that tried came back
 * to the client as a filter failure (internal_error) instead of the held-audio drop.
 */

/** The SQLite ledger, whose status() throws while `failing` (what a read error on the file does). */
function flaky(l: SqliteLedger, state: { failing: boolean; calls: number }): SqliteLedger {
  return new Proxy(l, {
    get(target, prop) {
      if (prop === 'status') {
        return (...args: Parameters<SqliteLedger['status']>) => {
          state.calls++;
          if (state.failing) throw new Error('SQLITE_IOERR: disk I/O error');
          return target.status(...args);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('redteam 17b: a held session whose recheck throws synchronously', () => {
  it('keeps rechecking: the hold is lifted once the ledger reads again and the cap allows', () => {
    let now = T0;
    const state = { failing: false, calls: 0 };
    const s = setup({}, () => now, (l) => flaky(l, state));
    s.ledger.settle(null, spent(50_000_000));
    const { ctx, f } = session(s, { dailyUsd: '0.05' });
    server(f, created('resp_vad')); // a server-VAD response over the cap: cancelled, audio held
    const append = () => f.onClient!(appendFrame()) as Verdict;
    expect(append().kind).toBe('reject'); // told once: budget_exceeded
    state.failing = true;
    now += 5000;
    // Before the fix this frame threw out of the filter (the relay turns that into internal_error).
    expect(append().kind).toBe('drop');
    state.failing = false;
    s.ledger.setOverride('acme', 'day', { nanos: 1_000_000_000 });
    const asked = state.calls;
    now += 5000;
    expect(append().kind).toBe('drop'); // this one rechecks (synchronously)
    // Before the fix: never asked again (checking stuck true), audio held for good.
    expect(state.calls).toBe(asked + 1);
    expect(append().kind).toBe('continue');
    expect(ctx.watched.size).toBe(0);
    expect(ctx.closedWith).toBeNull();
  });
});
