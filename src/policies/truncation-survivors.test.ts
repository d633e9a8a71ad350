// Tests that pin behaviour the mutation run of src/policies/truncation.ts found unchecked.
import { describe, expect, it } from 'vitest';
import { FakeSession, LoggedSession } from '../../test/support/fake-session.js';
import type { Verdict } from '../pipeline/filter.js';
import { textItem, trackerBudget, wire } from '../../test/policies/support.js';
import type { PolicyRegistry } from './registry.js';
import { checkPromptPrefix, ContextTracker, truncationFactory, TruncationFilter } from './truncation.js';

const budget = trackerBudget;
const text = textItem;
/** Tools whose JSON is exactly `chars` long (chars / 4 tokens). */
const tools = (chars: number) => [{ type: 'function', name: 'f', description: 'd'.repeat(chars - 65), parameters: {} }];
const added = (item: object, prev: string | null) => wire({ type: 'conversation.item.added', previous_item_id: prev, item });
const update = (session: object) => wire({ type: 'session.update', session: { type: 'realtime', ...session } });
const kind = (v: unknown) => (v as Verdict).kind;
const deletes = (s: FakeSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

describe('checkPromptPrefix (survivors)', () => {
  const b = budget(2000); // share 500

  it('what the session already reads is the sum of its instructions and tools', () => {
    // 300 + 300 read now; instructions of 300 keep the sum at 600: not refused although over the share.
    expect(checkPromptPrefix(b, { instructions: 300, tools: 300 }, { instructions: 'x'.repeat(1200) }, 'session', null)).toBeNull();
  });

  it('tools it carries as they are are not its doing: the param names the instructions even when smaller', () => {
    expect(checkPromptPrefix(b, { instructions: 0, tools: 400 }, { instructions: 'x'.repeat(800), tools: tools(1600) }, 'session', null)).toMatchObject({ param: 'session.instructions', details: { tokens: 600 } });
  });

  it('both changed and equal: the instructions name the param', () => {
    expect(checkPromptPrefix(b, { instructions: 0, tools: 0 }, { instructions: 'x'.repeat(1004), tools: tools(1004) }, 'session', null)).toMatchObject({ param: 'session.instructions', details: { tokens: 502 } });
  });
});

describe('ContextTracker (survivors)', () => {
  it('tokensOf: the tracked size, null for an unknown id', () => {
    const t = new ContextTracker();
    t.upsert(text('a', 'user', 400), undefined);
    expect(t.tokensOf('a')).toBe(104);
    expect(t.tokensOf('b')).toBeNull();
  });

  it('a function_call without a call_id is no unanswered call: deleted like any item', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'fc', type: 'function_call', name: 'f', arguments: 'x'.repeat(40) }, undefined); // 15
    t.upsert(text('u1', 'user', 400), undefined);
    t.upsert(text('u2', 'user', 400), undefined);
    expect(t.plan(budget(200))!.itemIds).toEqual(['fc', 'u1', 'u2']);
  });

  it('the newest unanswered call the model made is pinned even over the share', () => {
    const t = new ContextTracker();
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c1', name: 'f', arguments: 'x'.repeat(400) }, undefined, 'model'); // 105 > share 50
    t.upsert(text('u1', 'user', 400), undefined);
    expect(t.plan(budget(200))!.itemIds).toEqual(['u1']);
  });

  it('a call group with a pinned member is not prunable: over the lasting budget nothing goes while the rest fits maxTokens − target', () => {
    const t = new ContextTracker();
    t.upsert(text('m', 'user', 40), undefined); // 14
    t.upsert({ id: 'fc', type: 'function_call', call_id: 'c', name: 'f', arguments: 'x'.repeat(400) }, undefined); // 105
    t.upsert({ id: 'fo', type: 'function_call_output', call_id: 'c', output: '{}' }, undefined); // 5, pinned by keepLast
    t.calibrate(124 + 150, 0, []); // overhead 150 > maxTokens
    expect(t.plan(budget(100, { keepLast: 1 }))).toBeNull();
  });

  it('prunable exactly maxTokens − target under an unmeetable budget: nothing goes; one more and it goes', () => {
    const t = new ContextTracker();
    t.upsert(text('m', 'user', 184), undefined); // 50
    t.calibrate(200, 0, []); // overhead 150
    expect(t.plan(budget(100))).toBeNull();
    const u = new ContextTracker();
    u.upsert(text('m', 'user', 188), undefined); // 51
    u.calibrate(201, 0, []);
    expect(u.plan(budget(100))!.itemIds).toEqual(['m']);
  });
});

describe('truncation factory (survivors)', () => {
  it('wants session.created and session.updated from the server', () => {
    const f = truncationFactory({} as PolicyRegistry);
    expect(f.wants.server).toContain('session.created');
    expect(f.wants.server).toContain('session.updated');
  });
});

describe('truncation filter (survivors)', () => {
  it('a response.create with input: null reads the default conversation: pruned for', () => {
    const session = new FakeSession();
    const f = new TruncationFilter(session, budget(150), 'test');
    session.fromServer(f, added(text('u0', 'user', 400), null));
    session.fromServer(f, added(text('u1', 'user', 400), 'u0'));
    expect(deletes(session)).toEqual([]);
    expect(kind(session.fromClient(f, wire({ type: 'response.create', response: { input: null } })))).toBe('continue');
    expect(deletes(session)).toEqual(['u0', 'u1']);
  });

  describe('a response.create with its own input must fit maxTokens', () => {
    const oob = (response: object) => wire({ type: 'response.create', response: { conversation: 'none', ...response } });

    it('exactly at maxTokens passes, one over is refused', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(2000), 'test');
      expect(kind(session.fromClient(f, oob({ input: [text('a', 'user', 7984)] })))).toBe('continue');
      expect(session.fromClient(f, oob({ input: [text('a', 'user', 7985)] }))).toMatchObject({ kind: 'reject', error: { code: 'context_budget_exceeded', param: 'response.input', details: { tokens: 2001, limit: 2000 } } });
    });

    it('its own tools count with the input', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(2000), 'test');
      expect(session.fromClient(f, oob({ tools: tools(400), input: [text('a', 'user', 7784)] }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 2050 } } });
    });

    it('an item_reference counts as the tracker sizes the item', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(2000), 'test');
      session.fromServer(f, added(text('big', 'user', 7600), null)); // 1904
      expect(session.fromClient(f, oob({ input: [{ type: 'item_reference', id: 'big' }, text('a', 'user', 400)] }))).toMatchObject({
        kind: 'reject',
        error: { details: { tokens: 2008 } },
      });
      expect(kind(session.fromClient(f, oob({ input: [{ type: 'item_reference', id: 'big' }] })))).toBe('continue');
    });
  });

  describe('instructions and tools as the session sets them', () => {
    const b = budget(2000); // share 500

    it('an update that sets only tools keeps the counted instructions, one that sets only instructions the tools', () => {
      const s1 = new FakeSession();
      const f1 = new TruncationFilter(s1, b, 'test');
      s1.fromServer(f1, wire({ type: 'session.created', session: { type: 'realtime', instructions: 'x'.repeat(1600), tools: [] } }));
      expect(kind(s1.fromClient(f1, update({ tools: tools(200) })))).toBe('continue');
      expect(s1.fromClient(f1, update({ tools: tools(404) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });

      const s2 = new FakeSession();
      const f2 = new TruncationFilter(s2, b, 'test');
      s2.fromServer(f2, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: tools(1600) } }));
      expect(kind(s2.fromClient(f2, update({ instructions: 'x'.repeat(200) })))).toBe('continue');
      expect(s2.fromClient(f2, update({ instructions: 'x'.repeat(404) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });
    });

    it('a transcription session shown by the upstream changes nothing counted', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, b, 'test');
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: 'x'.repeat(1600) } }));
      session.fromServer(f, wire({ type: 'session.updated', session: { type: 'transcription' } }));
      expect(session.fromClient(f, update({ tools: tools(404) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });
    });

    it('a session shown without instructions or tools counts none of them (session.created and session.updated)', () => {
      for (const type of ['session.created', 'session.updated']) {
        const session = new FakeSession();
        const f = new TruncationFilter(session, b, 'test');
        session.fromServer(f, wire({ type, session: { type: 'realtime' } }));
        expect(session.fromClient(f, update({ instructions: 'x'.repeat(2004) }))).toMatchObject({ kind: 'reject', error: { param: 'session.instructions', details: { tokens: 501 } } });
      }
    });

    it('a session.updated while a later update is unanswered keeps what that update set, even when it shows more', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, b, 'test');
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
      expect(kind(session.fromClient(f, update({ instructions: 'x'.repeat(1600) })))).toBe('continue');
      expect(kind(session.fromClient(f, update({ instructions: '' })))).toBe('continue');
      // Answers the first: shows 400 of instructions; the second (unanswered) cleared them.
      session.fromServer(f, wire({ type: 'session.updated', session: { type: 'realtime', instructions: 'x'.repeat(1600), tools: [] } }));
      expect(kind(session.fromClient(f, update({ tools: tools(404) })))).toBe('continue');
    });

    it('a second session.created with nothing outstanding counts what it shows, not the larger', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, b, 'test');
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: 'x'.repeat(1600), tools: [] } }));
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
      expect(kind(session.fromClient(f, update({ tools: tools(404) })))).toBe('continue');
    });

    it('session.created with updates outstanding the view no longer holds (past its bound): the larger of each', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, b, 'test');
      // Before session.created, over MAX_EARLY_UPDATE_BYTES: the view forgets it.
      expect(kind(session.fromClient(f, update({ instructions: 'x'.repeat(800), tools: tools(800), metadata: { pad: 'y'.repeat(1_100_000) } })))).toBe('continue');
      expect(session.conversation.updatesBeforeCreated).toBeNull();
      session.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', instructions: '', tools: [] } }));
      expect(session.fromClient(f, update({ tools: tools(1204) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });
      expect(session.fromClient(f, update({ instructions: 'x'.repeat(1204) }))).toMatchObject({ kind: 'reject', error: { details: { tokens: 501 } } });
    });
  });

  describe('items the client or the proxy put in', () => {
    const create = (item: object) => wire({ type: 'conversation.item.create', item });

    it('a pending message that names a call id does not pin that call', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(200), 'test');
      session.fromServer(f, added({ id: 'fc', type: 'function_call', call_id: 'c1', name: 'f', arguments: 'x'.repeat(400) }, null)); // 105
      session.fromServer(f, added(text('u1', 'user', 400), 'fc'));
      session.fromClient(f, create({ type: 'message', role: 'user', call_id: 'c1', content: [] }));
      session.fromClient(f, wire({ type: 'response.create' }));
      expect(deletes(session)).toEqual(['fc', 'u1']);
    });

    it('an echoed message settles its pending item whatever call_id it carries', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(150), 'test');
      session.fromClient(f, create(text('m', 'user', 400)));
      session.fromServer(f, added({ ...text('m', 'user', 400), call_id: 'zz' }, null));
      session.fromClient(f, wire({ type: 'response.create' }));
      expect(deletes(session)).toEqual([]);
    });

    it('speech boundaries that re-size a client item are no prune point', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(150), 'test');
      session.fromClient(f, create(text('u0', 'user', 400)));
      session.fromServer(f, added(text('u0', 'user', 400), null));
      session.fromClient(f, create({ id: 'a1', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }));
      session.fromServer(f, added({ id: 'a1', type: 'message', role: 'user', content: [{ type: 'input_audio' }] }, 'u0'));
      session.fromServer(f, wire({ type: 'input_audio_buffer.speech_started', item_id: 'a1', audio_start_ms: 0 }));
      session.fromServer(f, wire({ type: 'input_audio_buffer.speech_stopped', item_id: 'a1', audio_end_ms: 10_000 }));
      expect(f.tracker.total()).toBe(208);
      expect(deletes(session)).toEqual([]);
    });

    it('no prune while a response runs', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(150), 'test');
      session.fromClient(f, create(text('u0', 'user', 400)));
      session.fromServer(f, added(text('u0', 'user', 400), null));
      session.fromServer(f, wire({ type: 'response.created', response: { id: 'r1', status: 'in_progress', conversation_id: 'conv_1', output: [] } }));
      expect(session.conversation.activeResponses()).toEqual(['r1']);
      session.fromClient(f, create(text('u1', 'user', 400)));
      session.fromServer(f, added(text('u1', 'user', 400), 'u0'));
      expect(deletes(session)).toEqual([]);
    });

    it('a transcript for an item the conversation view does not know changes nothing and does not throw', () => {
      const session = new FakeSession();
      const f = new TruncationFilter(session, budget(150), 'test');
      expect(() => session.fromServer(f, wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'ghost', transcript: 'hi' }))).not.toThrow();
      expect(deletes(session)).toEqual([]);
    });

    it('an echoed client item over budget prunes (logged as trigger "item"); so does one the proxy injected', () => {
      const s1 = new LoggedSession();
      const f1 = new TruncationFilter(s1, budget(150), 'test');
      s1.fromServer(f1, added(text('u0', 'user', 400), null));
      s1.fromClient(f1, create(text('u1', 'user', 400)));
      s1.fromServer(f1, added(text('u1', 'user', 400), 'u0'));
      expect(deletes(s1)).toEqual(['u0', 'u1']);
      expect(s1.lines.filter((l) => l.msg === 'conversation pruned to the context budget').map((l) => l['trigger'])).toEqual(['item']);

      const s2 = new FakeSession();
      const f2 = new TruncationFilter(s2, budget(150), 'test');
      s2.fromServer(f2, added(text('u0', 'user', 400), null));
      s2.sendUpstream({ type: 'conversation.item.create', item: text('p1', 'user', 400) } as never);
      s2.fromServer(f2, added(text('p1', 'user', 400), 'u0'));
      expect(deletes(s2)).toEqual(['u0', 'p1']);
    });
  });
});
