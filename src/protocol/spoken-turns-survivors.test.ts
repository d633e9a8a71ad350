import { describe, expect, it } from 'vitest';
import { Frame } from '../pipeline/frame.js';
import { FakeSession } from '../../test/support/fake-session.js';
import { SpokenTurnHold } from '../policies/hold.js';
import { Conversation } from './conversation.js';
import { ProxyError } from './errors.js';
import { SpokenTurns } from './spoken-turns.js';

/**
 * The mutation run of the twelfth session's held-turn changes (2026-12-06: src/protocol/spoken-turns.ts,
 * the hold's lines that write it) left these untested: which started response lets the create that
 * stands go, a session with no hold (no record open) whose client creates are stopped or start, and
 * the answering pins of a turn that passed while another is still held when a response ends.
 */

const wire = (event: { type: string; [k: string]: unknown }) => new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));

describe('spoken turns: the create that stands and the responses that start', () => {
  it("another create's response starting does not let the one that stands go: an upstream error naming it still owes the turns again", () => {
    const view = new SpokenTurns();
    let owed = 0;
    const r = view.open(8, () => owed++);
    r.answering('item_a');
    r.stand(true);
    view.createLeft('evt_stands');
    // A response of an earlier create (another id) starts first, then one with no create id at all.
    view.createStarted('evt_earlier');
    view.createStarted(null);
    expect(r.refusedUpstream('evt_stands')).toBe(true);
    expect(owed).toBe(1);
  });

  it('the same through the conversation view: the earlier client create\'s response.created, then the error naming the one that stands', () => {
    const c = new Conversation();
    let owed = 0;
    const r = c.spokenTurns.open(8, () => owed++);
    // A client create that stands for nothing leaves and waits for its response.
    r.stand(false);
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_earlier', response: { metadata: { n: '1' } } }), false);
    // The hold lets the next client create go to stand for a turn that passed.
    r.answering('item_a');
    r.stand(true);
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_stands', response: { metadata: { n: '2' } } }), false);
    c.observeServer(wire({ type: 'response.created', response: { id: 'resp_1', status: 'in_progress', output: [], conversation_id: 'conv_1', metadata: { n: '1' } } }));
    expect(c.response('resp_1')?.createEventId).toBe('evt_earlier');
    expect(r.refusedUpstream('evt_stands')).toBe(true);
    expect(owed).toBe(1);
  });
});

describe('a session without a spoken-turn hold (no record open)', () => {
  it('a client create stopped by a filter, refused or dropped: nothing throws, nothing stands', () => {
    const c = new Conversation();
    const create = Frame.fromClient('response.create', Buffer.from('{"type":"response.create","event_id":"evt_c"}'));
    expect(() => c.clientStopped(create, new ProxyError('invalid_value'))).not.toThrow();
    expect(() => c.clientStopped(create, null)).not.toThrow();
    expect(c.spokenTurns.clientCreateStands).toBe(false);
  });

  it("a client create's response starts: the view records it (nothing throws)", () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_c', response: {} }), false);
    c.observeServer(wire({ type: 'response.created', response: { id: 'resp_1', status: 'in_progress', output: [], conversation_id: 'conv_1' } }));
    expect(c.response('resp_1')).toMatchObject({ origin: 'client', createEventId: 'evt_c', state: 'in_progress' });
    expect(c.activeResponses()).toEqual(['resp_1']);
  });
});

describe('the spoken-turn hold: a response ends while a turn that passed waits for another still held', () => {
  it('the turn that passed stays pinned (answering) and is answered by the proxy once the other is decided', () => {
    const s = new FakeSession();
    const hold = new SpokenTurnHold(s, 'policies.guardrails', 60_000, () => ({ policy: 'p', policyVersion: 'v1' }));
    try {
      expect(hold.committed('item_a')).toBe(true);
      expect(hold.committed('item_b')).toBe(true);
      hold.passed('item_a');
      // item_b still held: nothing is owed yet, and a response (one that ran before) ends.
      hold.responseDone();
      expect(s.conversation.spokenTurns.pinned('item_a')).toBe('answering');
      expect(hold.awaitsAnswer('item_a')).toBe(true);
      hold.passed('item_b');
      expect(s.upstream.filter((e) => e.type === 'response.create')).toHaveLength(1);
      // The proxy's create left for both: neither is pinned any more.
      expect([s.conversation.spokenTurns.pinned('item_a'), s.conversation.spokenTurns.pinned('item_b')]).toEqual([undefined, undefined]);
    } finally {
      hold.close();
    }
  });
});
