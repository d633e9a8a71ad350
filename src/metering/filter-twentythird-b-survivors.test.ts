/**
 * Mutation survivors of the twenty-third session's metering lines (#noteResponseRead, the close's walk
 * of the responses the view learned after the last one metering read): see
 * test/mutation/open-survivors.md, "twenty-third (b)".
 */
import { describe, expect, it } from 'vitest';
import { created, done, ev, server, session, setup, usage } from '../../test/metering/filter-harness.js';
import { MAX_RESPONSES, MAX_RUNNING_RESPONSES } from '../protocol/conversation.js';

const CLOSE = { initiator: 'upstream', code: 1006, reason: '' } as const;

describe('metering at the close: the last response read is the one learned last, not the one read last', () => {
  // Written with MAX_SETTLED_IDS + 100 running at once, past what metering remembers as billed; since
  // 3bfbac0 more than MAX_RUNNING_RESPONSES running is the upstream's fault (the session ends), and the
  // responses the view keeps are always among those remembered: a wrong place read up to bills nothing twice.
  it(`${MAX_RUNNING_RESPONSES} responses running at once, done in reverse order: each billed once by its usage, nothing again at the close`, () => {
    const s = setup();
    const { f } = session(s);
    const ids = Array.from({ length: MAX_RUNNING_RESPONSES }, (_, i) => `resp_${i}`);
    for (const id of ids) server(f, created(id, { conversation_id: null }));
    // The last frame read is of the response learned first: the place read up to stays the last learned.
    for (const id of ids.slice().reverse()) server(f, done(id, usage(10, 0, 5, 0), 'completed', { conversation_id: null }));
    f.onClose!(CLOSE);
    expect(s.records).toHaveLength(ids.length);
    expect(new Set(s.records.map((r) => r.ref)).size).toBe(ids.length);
    expect(s.records.every((r) => r.settledBy === 'response.done' && !r.estimated)).toBe(true);
  });

  it(`a response.done read after the view pruned its response (queued while ${MAX_RESPONSES + 10} more were learned) is billed once (at its reservation: the view no longer has its usage)`, () => {
    const s = setup();
    const { ctx, f } = session(s);
    const late = [created('resp_late'), done('resp_late', usage(10, 0, 5, 0))];
    const others = Array.from({ length: MAX_RESPONSES + 10 }, (_, i) => `resp_${i}`).flatMap((id) => [created(id), done(id, usage(10, 0, 5, 0))]);
    // The view learns every frame as it arrives; metering reads them later, in the same order.
    for (const e of [...late, ...others]) ctx.conversation.observeServer(ev(e));
    expect(ctx.conversation.response('resp_late')).toBeUndefined();
    for (const e of [...late, ...others]) f.onServer!(ev(e));
    f.onClose!(CLOSE);
    expect(s.records).toHaveLength(1 + MAX_RESPONSES + 10);
    expect(s.records.filter((r) => r.ref === 'resp_late')).toMatchObject([{ settledBy: 'unreadable_usage_estimate', estimated: true }]);
    expect(new Set(s.records.map((r) => r.ref)).size).toBe(s.records.length);
  });
});
