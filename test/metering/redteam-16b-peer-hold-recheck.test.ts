import { describe, expect, it } from 'vitest';
import { appendFrame, created, done, server, session, setup, spent, T0, usage } from './filter-harness.js';
import { createMeteringFilterFactory } from '../../src/metering/filter-factory.js';
import { TenantAudioHolds } from '../../src/metering/tenant-holds.js';
import type { Verdict } from '../../src/pipeline/filter.js';

/**
 * Adversary (metering.admission: worst_case): a tenant a little under its daily cap, so that no response's worst case fits any more
 * (the reservation is refused) while its settled spend alone is still under the cap. It opens
 * several sessions, each with a large conversation, and one with a tiny one. It speaks in the tiny
 * one: that server-VAD response is cancelled at response.created (billed for almost nothing) and
 * every session of the tenant holds its input audio (ff156fb). Five seconds later each session's
 * recheck asks the ledger whether the tenant is over on SETTLED spend ('remaining'), finds it is
 * not, and lets audio flow again: every large session then speaks, and each VAD response is
 * started upstream, cancelled at response.created and billed for the large conversation it read.
 * Guarantee broken: past a cap the tenant pays at most one cancelled VAD response, not one per
 * session (test/metering/redteam-16-sessions-vad-cap.test.ts); here each session pays one per recheck.
 */

describe('a tenant cap found by a refused reservation: the peers held stay held', () => {
  it('a peer-held session does not let audio flow again while no response of it can be reserved', () => {
    let now = T0;
    const s = setup({ admission: 'worst_case' }, () => now);
    const holds = { ...s, factory: createMeteringFilterFactory({ ...s.rt, tenantHolds: new TenantAudioHolds() }) };
    // $0.149 of $0.15 spent: under the cap, but no response's worst case fits.
    s.ledger.settle(null, spent(149_000_000));
    const tiny = session(holds, { dailyUsd: '0.15' });
    const large = session(holds, { dailyUsd: '0.15' });
    tiny.f.onStart?.();
    large.f.onStart?.();
    expect(large.f.onClient!(appendFrame()) as Verdict).toMatchObject({ kind: 'continue' });

    // The tiny session's VAD response is refused its reservation: cancelled, and the tenant's audio held.
    server(tiny.f, created('resp_tiny'));
    expect(tiny.ctx.cancelled.map((c) => c.notice.code)).toEqual(['budget_exceeded']);
    server(tiny.f, done('resp_tiny', usage(10, 0, 0, 0), 'cancelled'));
    expect((large.f.onClient!(appendFrame()) as Verdict).kind).toBe('reject');

    // Later: nothing changed (no cap raised, same day); the large session keeps speaking.
    now += 60_000;
    const after = [0, 1, 2].map(() => (large.f.onClient!(appendFrame()) as Verdict).kind);
    // Before a fix: ['drop', 'continue', 'continue']: the recheck found settled spend under the cap,
    // the audio reached the upstream, and its VAD response would be cancelled and billed.
    expect(after).not.toContain('continue');

    // The admin raises the cap: at the next recheck the audio flows again.
    s.ledger.setOverride('acme', 'day', { nanos: 10_000_000_000 });
    now += 60_000;
    const raised = [0, 1].map(() => (large.f.onClient!(appendFrame()) as Verdict).kind);
    expect(raised).toEqual(['drop', 'continue']);
  });
});
