/**
 * The close bills the responses the conversation view learned of and metering never read (their
 * frames queued behind an asynchronous verdict when the session ended), running or done, and nothing
 * metering read (billed or not). End to end: test/metering/redteam-22-close-during-reserve.test.ts
 * ("both waited"), test/metering/redteam-23-unread-done-billed-once.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { client, created, done, ev, server, session, setup, T0, usage, type Event } from '../../test/metering/filter-harness.js';
import { NO_CAPS } from './limits.js';
import { MAX_SETTLED_IDS } from './settled-ids.js';
import { MAX_RESPONSES, MAX_RUNNING_RESPONSES } from '../protocol/conversation.js';

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

  // The view keeps the most recent MAX_RESPONSES (256) responses; at most 64 run at once, but finished
  // ones free their place, so a client's creates (and server VAD) go on while one verdict holds the
  // server direction (a blocking guardrail: up to 30 s). Found 2026-12-07 (bounds helper).
  it(`bills every one of ${MAX_RESPONSES + 44} client creates whose responses started and ended unread behind one verdict: none released, none twice`, () => {
    const s = setup();
    const { ctx, f } = session(s);
    const n = MAX_RESPONSES + 44;
    for (let i = 0; i < n; i++) {
      client(f, { type: 'response.create', event_id: `evt_${i}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 5 } });
      ctx.conversation.observeServer(ev(created(`resp_${i}`, { conversation_id: null, max_output_tokens: 5 })));
      ctx.conversation.observeServer(ev(done(`resp_${i}`, usage(10, 0, 5, 0), 'completed', { conversation_id: null })));
    }
    expect(ctx.conversation.upstreamFault).toBeNull();
    f.onClose!(CLOSE);
    // The view still names the last 256 (each billed at its create's reservation); the 44 it forgot are
    // billed by their place, at no less than any create's reservation (before: released, unbilled).
    const forgotten = Array.from({ length: n - MAX_RESPONSES }, (_, i) => `unread-response:${i + 1}`);
    const named = Array.from({ length: MAX_RESPONSES }, (_, i) => `resp_${i + n - MAX_RESPONSES}`);
    expect(s.records.map((r) => r.ref).sort()).toEqual([...named, ...forgotten].sort());
    expect(s.records.every((r) => r.estimated && r.settledBy === 'upstream_drop_estimate')).toBe(true);
    const reservation = s.records.find((r) => r.ref === named[0])!.costNanos;
    expect(reservation).toBeGreaterThan(0);
    expect(s.records.filter((r) => r.ref.startsWith('unread-response:')).every((r) => r.costNanos >= reservation)).toBe(true);
    expect(s.ledger.status('acme', NO_CAPS, T0).day.reserved).toEqual({ nanos: 0, tokens: 0 });
  });

  // Red team 2026-12-07 (b24): a create that waited while the relay did not read the upstream (a paused
  // client) is billed by its event id when the view names no response of it; its response, learned and
  // forgotten, was billed again under its place.
  it(`bills each of ${MAX_RESPONSES + 44} creates that waited unread (the upstream paused) once: a forgotten response is not billed again by its create's event id`, () => {
    const s = setup();
    const { ctx, f } = session(s);
    const n = MAX_RESPONSES + 44;
    for (let i = 0; i < n; i++) {
      client(f, { type: 'response.create', event_id: `evt_${i}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 5 } });
      ctx.conversation.observeServer(ev(created(`resp_${i}`, { conversation_id: null, max_output_tokens: 5 })));
      ctx.conversation.observeServer(ev(done(`resp_${i}`, usage(10, 0, 5, 0), 'completed', { conversation_id: null })));
    }
    // The client stops reading: every create still waiting for metering's read may have run unseen.
    ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
    f.onClose!(CLOSE);
    const forgotten = Array.from({ length: n - MAX_RESPONSES }, (_, i) => `unread-response:${i + 1}`);
    const named = Array.from({ length: MAX_RESPONSES }, (_, i) => `resp_${i + n - MAX_RESPONSES}`);
    expect(s.records.map((r) => r.ref).sort()).toEqual([...named, ...forgotten].sort());
    expect(s.ledger.status('acme', NO_CAPS, T0).day.reserved).toEqual({ nanos: 0, tokens: 0 });
  });

  it('a create that waited unread and whose response the view never learned of is still billed by its event id (it may have run unseen)', () => {
    const s = setup();
    const { ctx, f } = session(s);
    client(f, { type: 'response.create', event_id: 'evt_unseen', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 5 } });
    ctx.report({ kind: 'backpressure', direction: 'server', state: 'paused' });
    f.onClose!(CLOSE);
    expect(billed(s)).toEqual([[ctx.upstreamIdOf('evt_unseen'), 'upstream_drop_estimate', true]]);
  });

  it(`bills every one of ${MAX_RESPONSES + 44} server-started responses that started and ended unread behind one verdict`, () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, created('resp_read'));
    server(f, done('resp_read', usage(10, 0, 5, 0)));
    const n = MAX_RESPONSES + 44;
    for (let i = 0; i < n; i++) {
      ctx.conversation.observeServer(ev(created(`resp_${i}`)));
      ctx.conversation.observeServer(ev(done(`resp_${i}`, usage(10, 0, 5, 0))));
    }
    f.onClose!(CLOSE);
    const forgotten = Array.from({ length: n - MAX_RESPONSES }, (_, i) => `unread-response:${i + 2}`);
    const named = Array.from({ length: MAX_RESPONSES }, (_, i) => `resp_${i + n - MAX_RESPONSES}`);
    expect(s.records.map((r) => r.ref).sort()).toEqual(['resp_read', ...named, ...forgotten].sort());
    const estimates = s.records.filter((r) => r.ref !== 'resp_read');
    expect(estimates.every((r) => r.settledBy === 'upstream_drop_estimate' && r.estimated)).toBe(true);
    // Each forgotten one at a server-started response's worst case, as those still named.
    expect(new Set(estimates.map((r) => r.costNanos)).size).toBe(1);
    expect(estimates[0]!.costNanos).toBeGreaterThan(0);
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
