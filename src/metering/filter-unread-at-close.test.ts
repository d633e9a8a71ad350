/**
 * The close bills the responses the conversation view learned of and metering never read (their
 * frames queued behind an asynchronous verdict when the session ended), running or done, and nothing
 * metering read (billed or not). End to end: test/metering/redteam-22-close-during-reserve.test.ts
 * ("both waited"), test/metering/redteam-23-unread-done-billed-once.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { created, done, ev, server, session, setup, usage, type Event } from '../../test/metering/filter-harness.js';
import { MAX_SETTLED_IDS } from './settled-ids.js';
import { MAX_RUNNING_RESPONSES } from '../protocol/conversation.js';

const CLOSE = { initiator: 'upstream', code: 1006, reason: '' } as const;
const billed = (s: ReturnType<typeof setup>) => s.records.map((r) => [r.ref, r.settledBy, r.estimated]);

describe('metering at the close: responses the view learned of and metering never read', () => {
  it('bills one whose response.created and response.done both went unread, at a server-started worst case', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, created('resp_read'));
    server(f, done('resp_read', usage(10, 0, 5, 0)));
    // Learned by the view, queued before metering.
    const unread = (e: Event) => ctx.conversation.observeServer(ev(e));
    unread(created('resp_unread'));
    unread(done('resp_unread', usage(10, 0, 5, 0)));
    f.onClose!(CLOSE);
    expect(billed(s)).toEqual([
      ['resp_read', 'response.done', false],
      ['resp_unread', 'upstream_drop_estimate', true],
    ]);
    expect(s.records[1]!.costNanos).toBeGreaterThan(0);
  });

  it('bills one the view learned of from its response.done alone', () => {
    const s = setup();
    const { ctx, f } = session(s);
    ctx.conversation.observeServer(ev(done('resp_done_only', usage(10, 0, 5, 0))));
    f.onClose!(CLOSE);
    expect(billed(s)).toEqual([['resp_done_only', 'upstream_drop_estimate', true]]);
  });

  // Until 2026-12-07 the view kept every running response, and 8,292 ran at once here; it runs at most
  // MAX_RUNNING_RESPONSES at once now (past that the relay ends the session), so they run in waves.
  it(`bills nothing more for responses metering read: ${MAX_SETTLED_IDS + 100} in waves of ${MAX_RUNNING_RESPONSES} at once (more than metering remembers as billed)`, () => {
    const s = setup();
    const { f, ctx } = session(s);
    const ids = Array.from({ length: MAX_SETTLED_IDS + 100 }, (_, i) => `resp_${i}`);
    for (let wave = 0; wave < ids.length; wave += MAX_RUNNING_RESPONSES) {
      const running = ids.slice(wave, wave + MAX_RUNNING_RESPONSES);
      for (const id of running) server(f, created(id, { conversation_id: null }));
      for (const id of running) server(f, done(id, usage(10, 0, 5, 0), 'completed', { conversation_id: null }));
    }
    expect(ctx.conversation.upstreamFault).toBeNull();
    f.onClose!(CLOSE);
    expect(s.records).toHaveLength(ids.length);
    expect(new Set(s.records.map((r) => r.ref)).size).toBe(ids.length);
    expect(s.records.every((r) => r.settledBy === 'response.done')).toBe(true);
  });

  it('a response metering read and chose not to hold (a repeat of one billed) is not billed at the close either', () => {
    const s = setup();
    const { f } = session(s);
    server(f, created('resp_1'));
    server(f, done('resp_1', usage(10, 0, 5, 0)));
    server(f, created('resp_1'));
    f.onClose!(CLOSE);
    expect(billed(s)).toEqual([['resp_1', 'response.done', false]]);
  });
});
