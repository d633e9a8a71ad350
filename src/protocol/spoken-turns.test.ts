import { describe, expect, it } from 'vitest';
import { Frame } from '../pipeline/frame.js';
import { Conversation } from './conversation.js';
import { ProxyError } from './errors.js';
import { SpokenTurns } from './spoken-turns.js';

/**
 * The conversation view's record of spoken turns awaiting the proxy's answer
 * (`ConversationView.spokenTurns`): what the spoken-turn hold writes and the truncation filter
 * reads (until 2026-12-06 a module-level map of hold.ts, which the truncation filter reached into).
 */

const noop = () => {};
const CREATE = Frame.fromClient('response.create', Buffer.from('{"type":"response.create"}'));

describe('spoken turns awaiting the proxy\'s answer (the conversation view\'s record)', () => {
  it('every conversation has its own, empty until a record is opened: nothing pinned, no create stands, a refusal tells nobody', () => {
    const a = new Conversation();
    const b = new Conversation();
    expect(a.spokenTurns).not.toBe(b.spokenTurns);
    expect(a.spokenTurns.pinned('item_a')).toBeUndefined();
    expect(a.spokenTurns.clientCreateStands).toBe(false);
    a.clientStopped(CREATE, null);
    a.spokenTurns.open(4, noop).hold('item_a');
    expect(a.spokenTurns.pinned('item_a')).toBe('held');
    expect(b.spokenTurns.pinned('item_a')).toBeUndefined();
  });

  it('set and clear: a committed turn is pinned `held`; once its transcript passed, `answering`; blocked (decided, not answering), unpinned', () => {
    const view = new SpokenTurns();
    const r = view.open(4, noop);
    r.hold('item_a');
    r.hold('item_b');
    expect(r.heldCount).toBe(2);
    expect([view.pinned('item_a'), view.pinned('item_b'), view.pinned('item_c')]).toEqual(['held', 'held', undefined]);
    expect(r.decided('item_a')).toBe(true);
    r.answering('item_a');
    expect(view.pinned('item_a')).toBe('answering');
    expect(r.decided('item_b')).toBe(true);
    expect(view.pinned('item_b')).toBeUndefined();
    // Decided once only: a turn not held is not decided again.
    expect(r.decided('item_b')).toBe(false);
    expect(r.decided('item_z')).toBe(false);
    expect(r.heldCount).toBe(0);
  });

  it('answering pins are bounded: past the bound the oldest is let go, and a turn pinned already keeps its place', () => {
    const view = new SpokenTurns();
    const r = view.open(3, noop);
    for (const id of ['a', 'b', 'c']) r.answering(id);
    r.answering('a'); // already pinned: lets none go, stays the oldest
    expect(['a', 'b', 'c'].map((id) => view.pinned(id))).toEqual(['answering', 'answering', 'answering']);
    r.answering('d');
    expect(['a', 'b', 'c', 'd'].map((id) => view.pinned(id))).toEqual([undefined, 'answering', 'answering', 'answering']);
    // Held turns do not count against it.
    r.hold('h');
    r.answering('e');
    expect(['b', 'c', 'd', 'e', 'h'].map((id) => view.pinned(id))).toEqual([undefined, 'answering', 'answering', 'answering', 'held']);
  });

  it('the response leaves: the turns it answers are unpinned and returned in order (the held ones stay); with nothing owed, all are', () => {
    const view = new SpokenTurns();
    const r = view.open(8, noop);
    r.answering('a');
    r.answering('b');
    r.hold('c');
    expect(r.answered()).toEqual(['a', 'b']);
    expect([view.pinned('a'), view.pinned('b'), view.pinned('c')]).toEqual([undefined, undefined, 'held']);
    expect(r.answered()).toEqual([]);
    // Pinned again (the proxy's response was cancelled and is owed again), then a response ends with nothing owed.
    r.answering('a');
    r.stand(true);
    r.settled();
    expect(view.pinned('a')).toBeUndefined();
    expect(view.clientCreateStands).toBe(false);
    expect(view.pinned('c')).toBe('held');
  });

  it('a client create that stands: read by any filter; a refusal tells the record\'s owner once, and nothing when none stands', () => {
    const view = new SpokenTurns();
    let told = 0;
    const r = view.open(8, () => told++);
    view.createStopped(null);
    expect(told).toBe(0);
    r.stand(true);
    expect([r.standing, view.clientCreateStands]).toEqual([true, true]);
    view.createStopped(null);
    expect(told).toBe(1);
    // The refusal used it up: it stands no more.
    expect([r.standing, view.clientCreateStands]).toEqual([false, false]);
    view.createStopped(null);
    r.refused();
    expect(told).toBe(1);
  });

  it('the create that stands, refused by the upstream: an error naming the id it left with tells the owner once; before it left, after its response started, or once replaced, nothing', () => {
    const view = new SpokenTurns();
    let told = 0;
    const r = view.open(8, () => told++);
    // None stands: a create that leaves is not remembered.
    view.createLeft('evt_free');
    expect(r.refusedUpstream('evt_free')).toBe(false);
    r.stand(true);
    expect(r.refusedUpstream('evt_1')).toBe(false); // not left yet
    view.createLeft('evt_1');
    // A response that ended meanwhile settles the record: the create that left still stands for the turns.
    r.settled();
    expect([r.refusedUpstream('evt_other'), told]).toEqual([false, 0]);
    expect([r.refusedUpstream('evt_1'), told, r.standing]).toEqual([true, 1, false]);
    expect([r.refusedUpstream('evt_1'), told]).toEqual([false, 1]);
    // Its response started: it cannot be refused any more.
    r.stand(true);
    view.createLeft('evt_2');
    view.createStarted('evt_other');
    view.createStarted('evt_2');
    expect([r.refusedUpstream('evt_2'), told]).toEqual([false, 1]);
    // A new decision (the next client create) forgets the one that left.
    r.stand(true);
    view.createLeft('evt_3');
    r.stand(false);
    expect([r.refusedUpstream('evt_3'), told]).toEqual([false, 1]);
    // Refused by a later filter first: it never left.
    r.stand(true);
    r.refused();
    view.createLeft('evt_4');
    expect([r.refusedUpstream('evt_4'), told]).toEqual([false, 2]);
  });

  it('the view tells the record which client create left and which one started (observeClient, response.created); the proxy\'s own are not the client\'s', () => {
    const c = new Conversation();
    let told = 0;
    const r = c.spokenTurns.open(8, () => told++);
    const wire = (event: { type: string; [k: string]: unknown }) => new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));
    r.stand(true);
    c.observeClient(wire({ type: 'response.create', event_id: 'event_proxy_1' }), true);
    expect(r.refusedUpstream('event_proxy_1')).toBe(false);
    c.observeServer(wire({ type: 'response.created', response: { id: 'resp_p', status: 'in_progress', output: [], conversation_id: 'conv_1' } }));
    c.observeServer(wire({ type: 'response.done', response: { id: 'resp_p', status: 'completed', output: [], conversation_id: 'conv_1' } }));
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_stamped_1', response: {} }), false);
    expect(r.refusedUpstream('evt_stamped_1')).toBe(true);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'no', event_id: 'evt_stamped_1' } }));
    r.stand(true);
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_stamped_2', response: {} }), false);
    c.observeServer(wire({ type: 'response.created', response: { id: 'resp_1', status: 'in_progress', output: [], conversation_id: 'conv_1' } }));
    expect(c.response('resp_1')?.createEventId).toBe('evt_stamped_2');
    expect(r.refusedUpstream('evt_stamped_2')).toBe(false);
    expect(told).toBe(1);
  });

  it('session end (the record closed): nothing pinned, nothing stands, a refusal tells nobody; writes after it reach no reader', () => {
    const view = new SpokenTurns();
    let told = 0;
    const r = view.open(8, () => told++);
    r.hold('a');
    r.answering('b');
    r.stand(true);
    r.close();
    expect([view.pinned('a'), view.pinned('b'), view.clientCreateStands]).toEqual([undefined, undefined, false]);
    expect([r.heldCount, r.standing]).toEqual([0, false]);
    view.createStopped(null);
    r.hold('late');
    r.stand(true);
    expect([view.pinned('late'), view.clientCreateStands]).toEqual([undefined, false]);
    view.createStopped(null);
    expect(told).toBe(0);
  });

  it('one record speaks for the session: a newer one replaces the older, and the older closing leaves the newer alone', () => {
    const view = new SpokenTurns();
    let toldOld = 0;
    let toldNew = 0;
    const old = view.open(8, () => toldOld++);
    old.hold('a');
    old.stand(true);
    const newer = view.open(8, () => toldNew++);
    expect([view.pinned('a'), view.clientCreateStands]).toEqual([undefined, false]);
    newer.hold('b');
    newer.stand(true);
    // The older keeps its own state for its owner, but readers see the newer only.
    expect(old.pinned('a')).toBe('held');
    old.close();
    expect([view.pinned('b'), view.clientCreateStands]).toEqual(['held', true]);
    view.createStopped(null);
    expect([toldOld, toldNew]).toEqual([0, 1]);
    newer.close();
    expect(view.pinned('b')).toBeUndefined();
  });

  describe('a client create the hold let go, stopped by a filter after it (the chain tells the view: `clientStopped`)', () => {
    const create = Frame.fromClient('response.create', Buffer.from('{"type":"response.create","event_id":"evt_c"}'));
    const setUp = () => {
      const view = new Conversation();
      let owed = 0;
      const r = view.spokenTurns.open(4, () => owed++);
      r.answering('item_a');
      r.stand(true);
      return { view, r, owed: () => owed };
    };

    it('refused for its own sake (invalid_value) or dropped: it stands no more and the turns are owed the proxy\'s create, once', () => {
      for (const refusal of [new ProxyError('invalid_value'), null]) {
        const { view, owed } = setUp();
        view.clientStopped(create, refusal);
        expect(view.spokenTurns.clientCreateStands).toBe(false);
        expect(owed()).toBe(1);
        // The next client create stopped is not the one that stood: nothing more is owed.
        view.clientStopped(create, refusal);
        expect(owed()).toBe(1);
      }
    });

    it.each(['budget_exceeded', 'budget_unavailable', 'token_limit_exceeded'] as const)('refused by %s (no response may be made now): it stands no more, and nothing is owed', (code) => {
      const { view, owed } = setUp();
      view.clientStopped(create, new ProxyError(code));
      expect(view.spokenTurns.clientCreateStands).toBe(false);
      expect(owed()).toBe(0);
    });

    it('another event type stopped, or a create stopped after the one that stood left: nothing changes', () => {
      const { view, owed } = setUp();
      view.clientStopped(Frame.fromEvent({ type: 'conversation.item.create' }), null);
      expect(view.spokenTurns.clientCreateStands).toBe(true);
      view.spokenTurns.createLeft('evt_c');
      view.clientStopped(create, new ProxyError('invalid_value'));
      expect(view.spokenTurns.clientCreateStands).toBe(true);
      expect(owed()).toBe(0);
    });

    it('a create the hold did not let go to stand (stand(false)) is refused: nothing is owed', () => {
      const { view, r, owed } = setUp();
      r.stand(false);
      view.clientStopped(create, new ProxyError('invalid_value'));
      expect(owed()).toBe(0);
    });
  });
});
