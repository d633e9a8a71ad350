import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { wire } from '../../test/policies/support.js';
import { Frame } from '../pipeline/frame.js';
import { MAX_HELD_TURNS, SpokenTurnHold } from './hold.js';

/**
 * Survivors of the 2026-12-06 mutation run of hold.ts's changed lines (93c2b2d: held and passed
 * turns pinned until their response leaves, a client create the truncation budget refuses owed
 * again). Those lines were exercised end to end only (test/policies/held-truncation.test.ts): here
 * the hold is driven directly, as the guardrail filter drives it.
 */

let t: FakeSession;
beforeEach(() => {
  vi.useFakeTimers();
  t = new FakeSession();
});
afterEach(() => {
  vi.useRealTimers();
});

const newHold = () => new SpokenTurnHold(t, 'policies.guardrails', 1000, () => ({ policy: 'p', policyVersion: 'v1' }));
const response = (id: string, type: 'response.created' | 'response.done') =>
  t.conversation.observeServer(wire({ type, event_id: `ev_${type}_${id}`, response: { id, object: 'realtime.response', status: type === 'response.done' ? 'completed' : 'in_progress', output: [], conversation_id: 'conv_1', usage: null } }));
const creates = () => t.upstream.filter((e) => e.type === 'response.create').length;
/** A spoken turn committed and passed. */
const pass = (h: SpokenTurnHold, id: string) => {
  h.committed(id);
  h.passed(id);
};
const MAX_ANSWERING = 2 * MAX_HELD_TURNS;
/** A filter after the hold refused a client `response.create` (the chain tells the view). */
const refuseCreate = () => t.conversation.clientStopped(Frame.fromClient('response.create', Buffer.from('{"type":"response.create"}')), null);

describe('turns pinned while they wait for their response (awaitsAnswer)', () => {
  /** Passed turns that wait: a response runs, so the proxy's create for them waits too. */
  const waiting = (h: SpokenTurnHold, n: number, prefix = 'item_') => {
    for (let i = 0; i < n; i++) pass(h, `${prefix}${i}`);
  };

  it(`at most ${MAX_ANSWERING} (twice the held-turn cap): one more lets the oldest go, and only it`, async () => {
    // The bound is a module constant: the module is imported afresh, so that it is built with
    // whatever mutant is active even if the runner kept the module as first imported.
    vi.resetModules();
    const fresh = await import('./hold.js');
    const h = new fresh.SpokenTurnHold(t, 'policies.guardrails', 1000, () => ({ policy: 'p', policyVersion: 'v1' }));
    response('resp_busy', 'response.created');
    waiting(h, MAX_ANSWERING);
    for (let i = 0; i < MAX_ANSWERING; i++) expect(h.awaitsAnswer(`item_${i}`), `item_${i}`).toBe(true);
    pass(h, `item_${MAX_ANSWERING}`);
    expect(h.awaitsAnswer('item_0')).toBe(false);
    for (let i = 1; i <= MAX_ANSWERING; i++) expect(h.awaitsAnswer(`item_${i}`), `item_${i}`).toBe(true);
    expect(creates()).toBe(0);
    h.close();
  });

  it('a turn already pinned, passed again at the bound, lets none go', () => {
    const h = newHold();
    response('resp_busy', 'response.created');
    waiting(h, MAX_ANSWERING);
    pass(h, `item_${MAX_ANSWERING - 1}`);
    for (let i = 0; i < MAX_ANSWERING; i++) expect(h.awaitsAnswer(`item_${i}`), `item_${i}`).toBe(true);
    h.close();
  });

  it('a proxy create leaves them unpinned; its response cancelled for a held turn pins them again', () => {
    const h = newHold();
    pass(h, 'item_a');
    expect(creates()).toBe(1);
    expect(h.awaitsAnswer('item_a')).toBe(false);
    h.committed('item_b');
    response('resp_proxy', 'response.created');
    expect(t.conversation.response('resp_proxy')?.origin).toBe('proxy');
    expect(h.startedUnchecked('resp_proxy')).toBe(true);
    expect(h.awaitsAnswer('item_a')).toBe(true);
    expect(h.awaitsAnswer('item_b')).toBe(true);
    h.close();
  });

  it('a proxy response the hold did not create, cancelled for a held turn, pins nothing but the held turn', () => {
    const h = newHold();
    t.sendUpstream({ type: 'response.create' });
    h.committed('item_b');
    response('resp_other', 'response.created');
    expect(t.conversation.response('resp_other')?.origin).toBe('proxy');
    expect(h.startedUnchecked('resp_other')).toBe(true);
    expect(h.awaitsAnswer('item_b')).toBe(true);
    // (A mutant seeded the list of what the last create was for with a made-up id.)
    expect(h.awaitsAnswer('Stryker was here')).toBe(false);
    h.close();
  });

  it('a response that ends while a passed turn is still owed (another turn held) keeps it pinned', () => {
    const h = newHold();
    response('resp_busy', 'response.created');
    pass(h, 'item_a');
    h.committed('item_b');
    response('resp_busy', 'response.done');
    h.responseDone();
    expect(creates()).toBe(0);
    expect(h.awaitsAnswer('item_a')).toBe(true);
    h.passed('item_b');
    expect(creates()).toBe(1);
    h.close();
  });

  it('a client create that stood for the turns: once its response ends with nothing owed, they are unpinned and it no longer stands', () => {
    const h = newHold();
    h.committed('item_a');
    const paused = h.clientCreate({ type: 'response.create' });
    expect(paused).toBeInstanceOf(Promise);
    h.passed('item_a');
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(true);
    expect(h.awaitsAnswer('item_a')).toBe(true);
    response('resp_client', 'response.created');
    response('resp_client', 'response.done');
    h.responseDone();
    expect(h.awaitsAnswer('item_a')).toBe(false);
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(false);
    expect(creates()).toBe(0);
    h.close();
  });
});

describe('a client create that stands for passed turns (clientCreateStands; refused by a later filter)', () => {
  it('none at first; a refusal then owes nothing', () => {
    const h = newHold();
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(false);
    refuseCreate();
    expect(creates()).toBe(0);
    h.close();
  });

  it('an out-of-band create stands for nothing', () => {
    const h = newHold();
    h.clientCreate({ type: 'response.create', response: { conversation: 'none' } });
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(false);
    refuseCreate();
    expect(creates()).toBe(0);
    h.close();
  });

  it('a create sent while a passed turn is owed stands for it; refused, the proxy owes the turn its own create, once', () => {
    const h = newHold();
    response('resp_busy', 'response.created');
    pass(h, 'item_a');
    expect(creates()).toBe(0);
    // The response ended (the view knows) and the client's create comes before the hold hears of it.
    response('resp_busy', 'response.done');
    expect(h.clientCreate({ type: 'response.create' })).toEqual({ kind: 'continue' });
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(true);
    refuseCreate();
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(false);
    expect(creates()).toBe(1);
    refuseCreate();
    expect(creates()).toBe(1);
    h.close();
  });

  it('a create with nothing owed stands for nothing', () => {
    const h = newHold();
    expect(h.clientCreate({ type: 'response.create' })).toEqual({ kind: 'continue' });
    expect(t.conversation.spokenTurns.clientCreateStands).toBe(false);
    h.close();
  });
});

describe('close', () => {
  it('unregisters the hold of its session, not a newer hold of the same session', () => {
    // The session's record of its spoken turns (the conversation view's) is the newest hold's.
    const view = t.conversation.spokenTurns;
    const h1 = newHold();
    h1.committed('item_1');
    expect(view.pinned('item_1')).toBe('held');
    const h2 = newHold();
    h2.committed('item_2');
    expect([view.pinned('item_1'), view.pinned('item_2')]).toEqual([undefined, 'held']);
    h1.close();
    expect(view.pinned('item_2')).toBe('held');
    h2.close();
    expect(view.pinned('item_2')).toBeUndefined();
  });
});
