import { describe, expect, it } from 'vitest';
import { Frame } from '../pipeline/frame.js';
import { Conversation, MAX_EARLY_UPDATE_BYTES, MAX_FORGOTTEN_CREATES, MAX_ITEMS, MAX_LISTED_ITEMS, MAX_RESPONSES, MAX_RESTAMPED, MAX_RESTAMPED_CHARS, MAX_RUNNING_RESPONSES, parseUsage } from './conversation.js';
import { keptId, MAX_KEPT_ID_CHARS } from './json.js';

const wire = (event: { type: string; [k: string]: unknown }) => new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));
const created = (id: string, extra: Record<string, unknown> = {}) => wire({ type: 'response.created', response: { id, status: 'in_progress', output: [], ...extra } });
const done = (id: string, output: unknown[] = [], status = 'completed') =>
  wire({ type: 'response.done', response: { id, status, output, usage: { input_tokens: 12, output_tokens: 7, input_token_details: { text_tokens: 12, cached_tokens: 4 } } } });
const added = (item: Record<string, unknown>) => wire({ type: 'conversation.item.added', previous_item_id: null, item });

describe('conversation view', () => {
  it('pairs responses with their origin: client, out of band, proxy, or server VAD', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', response: {} }), false);
    c.observeServer(created('r1'));
    c.observeClient(wire({ type: 'response.create', response: { conversation: 'none' } }), false);
    c.observeServer(created('r2'));
    c.observeClient(wire({ type: 'response.create' }), true);
    c.observeServer(created('r3'));
    c.observeServer(created('r4'));
    expect(['r1', 'r2', 'r3', 'r4'].map((id) => c.response(id)?.origin)).toEqual(['client', 'out_of_band', 'proxy', 'vad']);
    expect(c.activeResponses()).toEqual(['r1', 'r2', 'r3', 'r4']);
    c.observeServer(done('r2', [], 'cancelled'));
    expect(c.activeResponses()).toEqual(['r1', 'r3', 'r4']);
    expect(c.response('r2')).toMatchObject({ state: 'cancelled', usage: { inputTokens: 12, outputTokens: 7, cachedTokens: 4 } });
  });

  it('a create the upstream refused does not shift the pairing', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_bad', response: { conversation: 'none' } }), false);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'evt_bad' } }));
    c.observeServer(created('r1'));
    expect(c.response('r1')?.origin).toBe('vad');
  });

  it('pairs on metadata whatever order the echo lists its members in', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', event_id: 'a', response: { conversation: 'none', metadata: { topic: 'x', lang: 'en' } } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'b', response: { conversation: 'none', metadata: { topic: 'y', lang: 'en' } } }), false);
    c.observeServer(created('r_b', { conversation_id: null, metadata: { lang: 'en', topic: 'y' } }));
    c.observeServer(created('r_a', { conversation_id: null, metadata: { lang: 'en', topic: 'x' } }));
    expect([c.response('r_a')?.createEventId, c.response('r_b')?.createEventId]).toEqual(['a', 'b']);
    expect(c.awaitingResponses).toBe(0);
  });

  it('pairs a created response with the create that agrees on conversation, metadata and output limit, not the oldest', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime', max_output_tokens: 200 } }));
    c.observeClient(wire({ type: 'response.create', event_id: 'big', response: { conversation: 'none', metadata: { k: 'big' } } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'small', response: { conversation: 'none', metadata: { k: 'small' }, max_output_tokens: 1 } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'conv', response: { max_output_tokens: 5 } }), false);
    c.observeServer(created('r_small', { conversation_id: null, metadata: { k: 'small' }, max_output_tokens: 1 }));
    // A VAD response (session limit) is not the pending conversation create (limit 5).
    c.observeServer(created('r_vad', { conversation_id: 'conv_1', max_output_tokens: 200 }));
    c.observeServer(created('r_big', { conversation_id: null, metadata: { k: 'big' }, max_output_tokens: 200 }));
    c.observeServer(created('r_conv', { conversation_id: 'conv_1', max_output_tokens: 5 }));
    expect(['r_small', 'r_vad', 'r_big', 'r_conv'].map((id) => [c.response(id)?.origin, c.response(id)?.createEventId])).toEqual([
      ['out_of_band', 'small'],
      ['vad', null],
      ['out_of_band', 'big'],
      ['client', 'conv'],
    ]);
    expect(c.response('r_big')).toMatchObject({ conversationId: null, metadata: '{"k":"big"}', maxOutputTokens: 200 });
    expect(c.sessionMaxOutputTokens).toBe(200);
    expect(c.awaitingResponses).toBe(0);
  });

  it('keeps a reported null conversation_id (out of band) apart from an absent one; the kind of an unreported one comes from its create', () => {
    const c = new Conversation();
    c.observeServer(created('r_null', { conversation_id: null }));
    c.observeServer(created('r_conv', { conversation_id: 'conv_1' }));
    c.observeServer(created('r_vad'));
    c.observeClient(wire({ type: 'response.create', event_id: 'oob', response: { conversation: 'none' } }), false);
    c.observeServer(created('r_oob_unreported'));
    c.observeClient(wire({ type: 'response.create', event_id: 'conv', response: {} }), false);
    c.observeServer(created('r_conv_unreported'));
    const facts = (id: string) => [c.response(id)?.conversationId, c.response(id)?.outOfBand, c.response(id)?.createEventId];
    expect(['r_null', 'r_conv', 'r_vad', 'r_oob_unreported', 'r_conv_unreported'].map(facts)).toEqual([
      [null, true, null],
      ['conv_1', false, null],
      [undefined, false, null],
      [undefined, true, 'oob'],
      [undefined, false, 'conv'],
    ]);
    // A response.done that reports it settles the kind; one that omits it changes nothing.
    c.observeServer(wire({ type: 'response.done', response: { id: 'r_vad', status: 'completed', conversation_id: null, output: [] } }));
    c.observeServer(wire({ type: 'response.done', response: { id: 'r_oob_unreported', status: 'completed', output: [] } }));
    expect(facts('r_vad')).toEqual([null, true, null]);
    expect(facts('r_oob_unreported')).toEqual([undefined, true, 'oob']);
    // Its response.created unseen: unreported is not out of band.
    c.observeServer(wire({ type: 'response.done', response: { id: 'r_unseen', status: 'completed', output: [] } }));
    expect(facts('r_unseen')).toEqual([undefined, false, null]);
  });

  it('a create without a limit of its own pairs with its response whatever limit the session has by then', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime', max_output_tokens: 'inf' } }));
    // session.update { max_output_tokens: 300 } is in flight when the create goes out.
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_plain', response: {} }), false);
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime', max_output_tokens: 300 } }));
    c.observeServer(wire({ type: 'response.created', response: { id: 'r1', status: 'in_progress', output: [], conversation_id: 'conv_1', max_output_tokens: 300 } }));
    expect(c.response('r1')).toMatchObject({ origin: 'client', createEventId: 'evt_plain', maxOutputTokens: 300 });
    // A create with a limit of its own still tells its response apart from a VAD one.
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_own', response: { max_output_tokens: 5 } }), false);
    c.observeServer(wire({ type: 'response.created', response: { id: 'r_vad', status: 'in_progress', output: [], conversation_id: 'conv_1', max_output_tokens: 300 } }));
    expect(c.response('r_vad')).toMatchObject({ origin: 'vad', createEventId: null });
    expect(c.awaitingResponses).toBe(1);
  });

  it('stamps every client create with an event_id of the proxy\'s, unpredictable, and remembers the client\'s own for errors', () => {
    const c = new Conversation();
    let n = 0;
    const fresh = () => `event_proxy_${++n}`;
    const send = (event: { type: string; [k: string]: unknown }) => {
      const stamped = c.stamp(wire(event), fresh);
      c.observeClient(stamped.frame, false);
      return { id: stamped.eventId!, sent: JSON.parse(stamped.frame.bytes.toString('utf8')) as Record<string, unknown> };
    };
    const first = send({ type: 'response.create', event_id: 'evt_1', response: { conversation: 'none' } });
    expect(first.id).toMatch(/^event_proxy_1_[0-9a-f]{12}$/);
    // Only the id changes.
    expect(first.sent).toEqual({ type: 'response.create', event_id: first.id, response: { conversation: 'none' } });
    expect(c.clientEventId(first.id)).toBe('evt_1');
    // The same client id again, and the same fresh id (a scheme that repeats): still ids of their own.
    const again = c.stamp(wire({ type: 'response.create', event_id: 'evt_1', response: { conversation: 'none', metadata: { k: 2 } } }), () => 'event_proxy_x');
    const twice = c.stamp(wire({ type: 'response.create', event_id: 'evt_1' }), () => 'event_proxy_x');
    expect(again.eventId).toMatch(/^event_proxy_x_[0-9a-f]{12}$/);
    expect(twice.eventId).toMatch(/^event_proxy_x_[0-9a-f]{12}$/);
    expect(new Set([first.id, again.eventId, twice.eventId]).size).toBe(3);
    expect([c.clientEventId(again.eventId!), c.clientEventId(twice.eventId!)]).toEqual(['evt_1', 'evt_1']);
    // Without an id of its own (or one that is not a string): nothing to give back.
    const none = send({ type: 'response.create' });
    const notString = send({ type: 'response.create', event_id: 7 });
    expect(none.id).toMatch(/^event_proxy_2_[0-9a-f]{12}$/);
    expect(notString.id).toMatch(/^event_proxy_3_[0-9a-f]{12}$/);
    expect(none.sent['event_id']).toBe(none.id);
    expect([c.clientEventId(none.id), c.clientEventId(notString.id), c.clientEventId('evt_1')]).toEqual([undefined, undefined, undefined]);
    // The response names the id its create left with.
    c.observeServer(wire({ type: 'response.created', response: { id: 'r1', status: 'in_progress', output: [], conversation_id: null } }));
    expect(c.response('r1')?.createEventId).toBe(first.id);
    // Unreadable: sent as it was, with no key, and no fresh id drawn.
    const broken = new Frame('response.create', Buffer.from('{"type":"response.create",'));
    expect(c.stamp(broken, fresh)).toEqual({ frame: broken, eventId: null, own: null });
    expect(n).toBe(3);
  });

  it('keeps the usage of a response.done whose response.created it never saw', () => {
    const c = new Conversation();
    c.observeServer(done('r_unseen'));
    expect(c.response('r_unseen')?.usage).toMatchObject({ inputTokens: 12, outputTokens: 7, cachedTokens: 4, cached: { text: 4 } });
    expect(c.activeResponses()).toEqual([]);
  });

  it('knows who made each item: client, proxy, model, or committed speech', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } }), false);
    c.observeServer(added({ id: 'i_client', type: 'message', role: 'user' }));
    c.observeClient(wire({ type: 'conversation.item.create', item: { id: 'i_proxy', type: 'message', role: 'system', content: [] } }), true);
    c.observeServer(added({ id: 'i_proxy', type: 'message', role: 'system' }));
    c.observeServer(created('r1'));
    c.observeServer(wire({ type: 'response.output_item.added', response_id: 'r1', output_index: 0, item: { id: 'i_model', type: 'message', role: 'assistant', status: 'in_progress' } }));
    c.observeServer(added({ id: 'i_model', type: 'message', role: 'assistant' }));
    c.observeServer(wire({ type: 'input_audio_buffer.committed', item_id: 'i_speech' }));
    c.observeServer(added({ id: 'i_speech', type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] }));
    expect(['i_client', 'i_proxy', 'i_model', 'i_speech'].map((id) => c.item(id)?.provenance)).toEqual(['client', 'proxy', 'model', 'client']);
    expect(c.item('i_model')?.responseId).toBe('r1');
    expect(c.response('r1')?.itemIds).toEqual(['i_model']);
    expect(c.item('i_speech')?.transcript).toBe('pending');
    c.observeServer(wire({ type: 'conversation.item.input_audio_transcription.failed', item_id: 'i_speech', content_index: 0, error: {} }));
    expect(c.item('i_speech')?.transcript).toBe('failed');
    c.mark('i_model', { kind: 'redacted', by: 'test', rule: 'mail' });
    c.mark('i_model', { kind: 'redacted', by: 'test', rule: 'mail' });
    expect(c.item('i_model')?.marks).toHaveLength(1);
    c.observeServer(wire({ type: 'conversation.item.deleted', item_id: 'i_model' }));
    expect(c.item('i_model')).toBeUndefined();
  });

  it('never parses audio frames', () => {
    const c = new Conversation();
    const out = wire({ type: 'response.output_audio.delta', response_id: 'r', item_id: 'i', delta: 'AAAA' });
    const append = wire({ type: 'input_audio_buffer.append', audio: 'AAAA' });
    c.observeServer(out);
    c.observeClient(append, false);
    expect(out.parsed).toBe(false);
    expect(append.parsed).toBe(false);
  });

  it('keeps a bounded number of items, pruning the oldest', () => {
    const c = new Conversation();
    for (let i = 0; i < MAX_ITEMS + 10; i++) c.observeServer(added({ id: `i${i}`, type: 'message', role: 'user' }));
    expect([...c.items()].length).toBe(MAX_ITEMS);
    expect(c.item('i0')).toBeUndefined();
    expect(c.item(`i${MAX_ITEMS + 9}`)).toBeDefined();
  });

  it('survives malformed control frames', () => {
    const c = new Conversation();
    expect(() => c.observeServer(new Frame('response.done', Buffer.from('{"type":"response.done",')))).not.toThrow();
    expect(parseUsage(null)).toBeNull();
    expect(parseUsage({ input_tokens: 'x' })).toMatchObject({ inputTokens: 0, outputTokens: 0, cachedTokens: 0 });
  });
});

describe('conversation view: what each observed server event changes', () => {
  const item = (id: string, extra: Record<string, unknown> = {}) => ({ id, type: 'message', role: 'assistant', status: 'in_progress', ...extra });

  it.each(['session.created', 'session.updated'])('%s reports the session output limit; a transcription session does not', (type) => {
    const c = new Conversation();
    c.observeServer(wire({ type, session: { type: 'realtime', max_output_tokens: 300 } }));
    expect(c.sessionMaxOutputTokens).toBe(300);
    c.observeServer(wire({ type, session: { type: 'transcription', max_output_tokens: 5 } }));
    expect(c.sessionMaxOutputTokens).toBe(300);
    c.observeServer(wire({ type, session: { type: 'realtime' } }));
    expect(c.sessionMaxOutputTokens).toBe(300);
  });

  it.each(['response.output_item.added', 'response.output_item.done'])('%s records a model item of its response', (type) => {
    const c = new Conversation();
    c.observeServer(created('r1'));
    c.observeServer(wire({ type, response_id: 'r1', output_index: 0, item: item('i1', { status: type.endsWith('done') ? 'completed' : 'in_progress' }) }));
    expect(c.item('i1')).toMatchObject({ provenance: 'model', responseId: 'r1', role: 'assistant', type: 'message', status: type.endsWith('done') ? 'completed' : 'in_progress' });
    expect(c.response('r1')?.itemIds).toEqual(['i1']);
  });

  it.each(['conversation.item.added', 'conversation.item.created', 'conversation.item.done'])('%s records the item; a model item seen first this way gets its response later', (type) => {
    const c = new Conversation();
    c.observeServer(wire({ type, previous_item_id: null, item: item('i1', { role: 'user', status: 'completed' }) }));
    expect(c.item('i1')).toMatchObject({ provenance: 'server', responseId: null, role: 'user', status: 'completed' });
    c.observeServer(created('r1'));
    c.observeServer(wire({ type: 'response.output_item.done', response_id: 'r1', output_index: 0, item: item('i1') }));
    expect(c.item('i1')).toMatchObject({ provenance: 'model', responseId: 'r1' });
    expect(c.response('r1')?.itemIds).toEqual(['i1']);
  });

  it('conversation.item.deleted forgets the item', () => {
    const c = new Conversation();
    c.observeServer(added(item('i1')));
    c.observeServer(added(item('i2')));
    c.observeServer(wire({ type: 'conversation.item.deleted', item_id: 'i1' }));
    expect(c.item('i1')).toBeUndefined();
    expect([...c.items()].map((i) => i.id)).toEqual(['i2']);
  });

  it('a committed input buffer makes its user item the client’s, with a transcript pending until it completes or fails', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'input_audio_buffer.committed', item_id: 'u1' }));
    c.observeServer(wire({ type: 'input_audio_buffer.committed', item_id: 'u2' }));
    c.observeServer(added({ id: 'u1', type: 'message', role: 'user', content: [] }));
    c.observeServer(added({ id: 'u2', type: 'message', role: 'user', content: [] }));
    expect(c.item('u1')).toMatchObject({ provenance: 'client', transcript: 'pending' });
    c.observeServer(wire({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'u1', content_index: 0, transcript: 'hi' }));
    c.observeServer(wire({ type: 'conversation.item.input_audio_transcription.failed', item_id: 'u2', content_index: 0, error: {} }));
    expect([c.item('u1')?.transcript, c.item('u2')?.transcript]).toEqual(['completed', 'failed']);
    // A user item nobody committed is the server's, with no transcript to wait for.
    c.observeServer(added({ id: 'u3', type: 'message', role: 'user', content: [] }));
    expect(c.item('u3')).toMatchObject({ provenance: 'server', transcript: 'none' });
  });

  it('an error about an item create drops that create: the next item is not taken for it', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'conversation.item.create', event_id: 'bad', item: { type: 'message', role: 'user', content: [] } }), false);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'bad' } }));
    c.observeServer(added({ id: 'i1', type: 'message', role: 'user', content: [] }));
    expect(c.item('i1')?.provenance).toBe('server');
    // An error about something else leaves a waiting create alone.
    c.observeClient(wire({ type: 'conversation.item.create', event_id: 'good', item: { type: 'message', role: 'user', content: [] } }), true);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'other' } }));
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no' } }));
    c.observeServer(added({ id: 'i2', type: 'message', role: 'user', content: [] }));
    expect(c.item('i2')?.provenance).toBe('proxy');
  });

  it('a frame that is not JSON past its type is ignored, not thrown', () => {
    const c = new Conversation();
    expect(() => c.observeServer(new Frame('response.created', Buffer.from('{"type":"response.created",', 'utf8')))).not.toThrow();
    expect(c.activeResponses()).toEqual([]);
  });

  it('marks an item once per kind and rule', () => {
    const c = new Conversation();
    c.observeServer(added(item('i1')));
    c.mark('i1', { kind: 'redacted', by: 'guardrails', rule: 'pii' });
    c.mark('i1', { kind: 'redacted', by: 'guardrails', rule: 'pii' });
    c.mark('i1', { kind: 'redacted', by: 'guardrails', rule: 'card' });
    c.mark('i1', { kind: 'blocked', by: 'guardrails', rule: 'pii' });
    c.mark('missing', { kind: 'blocked', by: 'guardrails', rule: null });
    expect(c.item('i1')?.marks.map((m) => `${m.kind}:${m.rule}`)).toEqual(['redacted:pii', 'redacted:card', 'blocked:pii']);
  });

  it('an item create with an id pairs by id; one without takes the next unknown item', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } }), false);
    c.observeClient(wire({ type: 'conversation.item.create', item: { id: 'mine', type: 'message', role: 'user', content: [] } }), true);
    c.observeServer(added({ id: 'mine', type: 'message', role: 'user', content: [] }));
    c.observeServer(added({ id: 'anon', type: 'message', role: 'user', content: [] }));
    expect([c.item('mine')?.provenance, c.item('anon')?.provenance]).toEqual(['proxy', 'client']);
  });

  it('waiting creates and commits are bounded (64): the oldest is forgotten', () => {
    const c = new Conversation();
    for (let i = 0; i < 65; i++) c.observeClient(wire({ type: 'response.create', response: {} }), false);
    expect(c.awaitingResponses).toBe(64);
    c.observeClient(wire({ type: 'conversation.item.create', item: { id: 'first', type: 'message', role: 'user', content: [] } }), true);
    for (let i = 0; i < 64; i++) c.observeClient(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } }), false);
    c.observeServer(added({ id: 'first', type: 'message', role: 'user', content: [] }));
    expect(c.item('first')?.provenance).toBe('client');
    const d = new Conversation();
    for (let i = 0; i < 65; i++) d.observeServer(wire({ type: 'input_audio_buffer.committed', item_id: `u${i}` }));
    d.observeServer(added({ id: 'u0', type: 'message', role: 'user', content: [] }));
    d.observeServer(added({ id: 'u64', type: 'message', role: 'user', content: [] }));
    expect([d.item('u0')?.provenance, d.item('u64')?.provenance]).toEqual(['client', 'server']);
  });

  it('a committed id on an item that is not a user message waits for no transcript', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'input_audio_buffer.committed', item_id: 'a1' }));
    c.observeServer(wire({ type: 'input_audio_buffer.committed', item_id: 'f1' }));
    c.observeServer(added({ id: 'a1', type: 'message', role: 'assistant', content: [] }));
    c.observeServer(added({ id: 'f1', type: 'function_call_output', call_id: 'c', output: '' }));
    expect([c.item('a1')?.transcript, c.item('f1')?.transcript]).toEqual(['none', 'none']);
  });

  it.each([
    ['completed', 'completed'],
    ['cancelled', 'cancelled'],
    ['failed', 'failed'],
    ['incomplete', 'incomplete'],
    ['in_progress', 'completed'],
    [undefined, 'completed'],
  ])('response.done with status %s leaves the response %s', (status, state) => {
    const c = new Conversation();
    c.observeServer(created('r1'));
    c.observeServer(wire({ type: 'response.done', response: { id: 'r1', ...(status ? { status } : {}), output: [] } }));
    expect(c.response('r1')?.state).toBe(state);
    expect(c.activeResponses()).toEqual([]);
  });

  it('a response.done whose response.created was not seen still records the response, its usage and its items', () => {
    const c = new Conversation();
    c.observeServer(
      wire({
        type: 'response.done',
        response: { id: 'r9', status: 'completed', conversation_id: null, output: [item('o1', { status: 'completed' }), 'not an item'], usage: { input_tokens: 3, output_tokens: 2 } },
      }),
    );
    expect(c.response('r9')).toMatchObject({ origin: 'vad', state: 'completed', conversationId: null, outOfBand: true, itemIds: ['o1'], usage: { inputTokens: 3, outputTokens: 2 } });
    expect(c.item('o1')).toMatchObject({ provenance: 'model', responseId: 'r9', status: 'completed' });
    c.observeServer(wire({ type: 'response.done', response: { status: 'completed' } }));
    expect([...c.items()].length).toBe(1);
  });

  it('a second response.created for the same id changes nothing; the next create still waits', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', event_id: 'a', response: {} }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'b', response: {} }), false);
    c.observeServer(created('r1'));
    c.observeServer(created('r1'));
    c.observeServer(wire({ type: 'response.created', response: { status: 'in_progress' } }));
    expect(c.awaitingResponses).toBe(1);
    expect(c.activeResponses()).toEqual(['r1']);
    expect(c.response('r1')?.createEventId).toBe('a');
  });

  it('out of band when the echo says so, else as its create asked; a server-started response is in the conversation', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', response: { conversation: 'none' } }), false);
    c.observeServer(created('oob'));
    c.observeServer(created('vad'));
    c.observeServer(wire({ type: 'response.created', response: { id: 'echoed', conversation_id: 'conv_1' } }));
    expect([c.response('oob')?.outOfBand, c.response('vad')?.outOfBand, c.response('echoed')?.outOfBand]).toEqual([true, false, false]);
  });

  it('keeps at most 256 responses, never forgetting one still running', () => {
    const c = new Conversation();
    c.observeServer(created('running'));
    for (let i = 0; i < 256; i++) {
      c.observeServer(created(`r${i}`));
      c.observeServer(done(`r${i}`));
    }
    expect(c.response('running')?.state).toBe('in_progress');
    expect(c.response('r0')).toBeUndefined();
    expect(c.response('r1')?.state).toBe('completed');
    expect(c.response('r255')?.state).toBe('completed');
  });

  it('numbers the responses in the order learned (from response.created, or a response.done that came first) and lists those after a place, running or done', () => {
    const c = new Conversation();
    c.observeServer(created('r1'));
    c.observeServer(done('r2'));
    c.observeServer(created('r3'));
    c.observeServer(done('r3'));
    // A repeat learns nothing new.
    c.observeServer(created('r1'));
    c.observeServer(done('r1'));
    expect(['r1', 'r2', 'r3'].map((id) => c.response(id)?.learned)).toEqual([1, 2, 3]);
    expect(c.responsesLearnedAfter(0).map((r) => r.id)).toEqual(['r1', 'r2', 'r3']);
    expect(c.responsesLearnedAfter(1).map((r) => [r.id, r.state])).toEqual([
      ['r2', 'completed'],
      ['r3', 'completed'],
    ]);
    expect(c.responsesLearnedAfter(3)).toEqual([]);
  });

  it('lists only the responses still kept after a place: the pruned are not, and the numbering goes on past them', () => {
    const c = new Conversation();
    for (let i = 1; i <= 300; i++) {
      c.observeServer(created(`r${i}`));
      c.observeServer(done(`r${i}`));
    }
    expect(c.response('r300')?.learned).toBe(300);
    const after = c.responsesLearnedAfter(10);
    expect(after).toHaveLength(256);
    expect(after[0]?.id).toBe('r45');
    expect(after.at(-1)?.id).toBe('r300');
  });

  it(`remembers the place of a forgotten response by its create's event id (the most recent ${MAX_FORGOTTEN_CREATES}), for metering to bill it once (red team 2026-12-07)`, () => {
    const c = new Conversation();
    const n = MAX_RESPONSES + MAX_FORGOTTEN_CREATES + 10;
    for (let i = 1; i <= n; i++) {
      c.observeClient(wire({ type: 'response.create', event_id: `evt_${i}`, response: {} }), false);
      c.observeServer(created(`r${i}`));
      c.observeServer(done(`r${i}`));
    }
    // Still kept: named by the view, not forgotten.
    expect(c.responsesOfCreate(`evt_${n}`).map((r) => r.id)).toEqual([`r${n}`]);
    expect(c.forgottenResponseOf(`evt_${n}`)).toBeNull();
    // Forgotten, within the bound: its place.
    const lastForgotten = n - MAX_RESPONSES;
    expect(c.forgottenResponseOf(`evt_${lastForgotten}`)).toBe(lastForgotten);
    expect(c.forgottenResponseOf(`evt_${lastForgotten - MAX_FORGOTTEN_CREATES + 1}`)).toBe(lastForgotten - MAX_FORGOTTEN_CREATES + 1);
    // Past the bound: not remembered (metering then bills its create by its id too: more, never less).
    expect(c.forgottenResponseOf(`evt_${lastForgotten - MAX_FORGOTTEN_CREATES}`)).toBeNull();
    expect(c.forgottenResponseOf('evt_never_sent')).toBeNull();
  });

  it('never throws on observed events whose members are missing or of the wrong kind', () => {
    const c = new Conversation();
    c.observeServer(created('r1'));
    const odd = [
      { type: 'session.created' },
      { type: 'session.updated', session: 'x' },
      { type: 'response.created' },
      { type: 'response.created', response: null },
      { type: 'response.done' },
      { type: 'response.done', response: 7 },
      { type: 'response.done', response: { id: 'r1', output: 'x', usage: 'x' } },
      { type: 'response.output_item.added', response_id: 'r1' },
      { type: 'response.output_item.done', response_id: 'r1', item: 'x' },
      { type: 'response.output_item.done', response_id: 'r1', item: { type: 'message' } },
      { type: 'conversation.item.added' },
      { type: 'conversation.item.created', item: [] },
      { type: 'conversation.item.done', item: null },
      { type: 'conversation.item.deleted' },
      { type: 'input_audio_buffer.committed' },
      { type: 'conversation.item.input_audio_transcription.completed' },
      { type: 'conversation.item.input_audio_transcription.failed', item_id: 'nope' },
      { type: 'error' },
      { type: 'error', error: 'x' },
      { type: 'error', error: { event_id: 5 } },
    ];
    for (const e of odd) expect(() => c.observeServer(wire(e)), e.type).not.toThrow();
    for (const e of [{ type: 'response.create', response: 'x' }, { type: 'conversation.item.create', item: 'x' }, { type: 'conversation.item.create' }]) {
      expect(() => c.observeClient(wire(e), false), e.type).not.toThrow();
    }
    expect(c.response('r1')?.state).toBe('completed');
    expect([...c.items()]).toEqual([]);
  });

  it('errors without an event id, or about another create, leave waiting response creates alone', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', response: {} }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'a', response: {} }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'b', response: {} }), false);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no' } }));
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'zzz' } }));
    expect(c.awaitingResponses).toBe(3);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'a' } }));
    expect(c.awaitingResponses).toBe(2);
    c.observeServer(created('r1'));
    c.observeServer(created('r2'));
    expect([c.response('r1')?.createEventId, c.response('r2')?.createEventId]).toEqual([null, 'b']);
  });

  it('pairs on the conversation the echo names, and a limit-less echo with a create that set one', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', event_id: 'oob', response: { conversation: 'none' } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'in', response: { max_output_tokens: 5 } }), false);
    c.observeServer(wire({ type: 'response.created', response: { id: 'r_in', conversation_id: 'conv_1' } }));
    expect(c.response('r_in')?.createEventId).toBe('in');
    c.observeServer(wire({ type: 'response.created', response: { id: 'r_odd', conversation_id: 5 } }));
    expect(c.response('r_odd')?.conversationId).toBeUndefined();
    expect(c.response('r_odd')?.createEventId).toBe('oob');
  });

  it('response.done names the conversation: in it, not out of band', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', response: { conversation: 'none' } }), false);
    c.observeServer(created('r1'));
    expect(c.response('r1')?.outOfBand).toBe(true);
    c.observeServer(wire({ type: 'response.done', response: { id: 'r1', status: 'completed', conversation_id: 'conv_1', output: [] } }));
    expect(c.response('r1')).toMatchObject({ conversationId: 'conv_1', outOfBand: false });
  });

  it('an unknown item is not taken for a waiting create that named another id; an item without a type reads as ""', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'conversation.item.create', item: { id: 'x', type: 'message', role: 'user', content: [] } }), true);
    c.observeServer(added({ id: 'y', role: 'user', content: [] }));
    c.observeServer(added({ id: 'x', type: 'message', role: 'user', content: [] }));
    expect([c.item('y')?.provenance, c.item('x')?.provenance, c.item('y')?.type]).toEqual(['server', 'proxy', '']);
  });

  it('output items of a response it never saw, and a client frame that is not JSON, do not throw', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'response.output_item.added', response_id: 'ghost', output_index: 0, item: item('g1') }));
    c.observeServer(added(item('g2')));
    c.observeServer(wire({ type: 'response.output_item.done', response_id: 'ghost', output_index: 0, item: item('g2') }));
    expect([c.item('g1')?.responseId, c.item('g2')?.responseId]).toEqual(['ghost', 'ghost']);
    expect(() => c.observeClient(Frame.fromClient('response.create', Buffer.from('{"type":"response.create",', 'utf8')), false)).not.toThrow();
    expect(c.awaitingResponses).toBe(0);
  });
});


describe('conversation view: what went upstream before session.created', () => {
  const update = (session: Record<string, unknown>) => wire({ type: 'session.update', session: { type: 'realtime', ...session } });
  const sessionCreated = (session: Record<string, unknown>) => wire({ type: 'session.created', session: { type: 'realtime', ...session } });

  it('every session.update sent before session.created is read, the injected ones too, merged in order; fixed from then on', () => {
    const c = new Conversation();
    expect(c.updatesBeforeCreated).toBeNull();
    c.observeClient(update({ instructions: 'locked', audio: { input: { turn_detection: null } } }), true);
    c.observeClient(update({ audio: { output: { voice: 'cedar' } } }), false);
    c.observeClient(update({ instructions: 'client', audio: { output: { speed: 1.1 } } }), false);
    // Not session updates: not part of it.
    c.observeClient(wire({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } }), false);
    const merged = { type: 'realtime', instructions: 'client', audio: { input: { turn_detection: null }, output: { voice: 'cedar', speed: 1.1 } } };
    expect(c.updatesBeforeCreated).toEqual(merged);
    // session.updated is not session.created: updates still count until that is read.
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime' } }));
    c.observeClient(update({ tools: [] }), false);
    expect(c.updatesBeforeCreated).toEqual({ ...merged, tools: [] });
    c.observeServer(sessionCreated({ instructions: '' }));
    c.observeClient(update({ instructions: 'later' }), false);
    expect(c.updatesBeforeCreated).toEqual({ ...merged, tools: [] });
    // Not an observed type (audio): kept. The next observed event: dropped, for good.
    c.observeServer(wire({ type: 'response.output_audio.delta', delta: 'AAAA' }));
    expect(c.updatesBeforeCreated).not.toBeNull();
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime' } }));
    expect(c.updatesBeforeCreated).toBeNull();
    c.observeClient(update({ instructions: 'later still' }), false);
    expect(c.updatesBeforeCreated).toBeNull();
    // Creates are still paired after it (only session updates stop being read).
    c.observeClient(wire({ type: 'response.create', event_id: 'e_after', response: {} }), false);
    c.observeServer(created('r_after'));
    expect(c.response('r_after')?.origin).toBe('client');
  });

  it('a transcription session.created also ends it; an update without a session body, or not JSON, changes nothing', () => {
    const t = new Conversation();
    t.observeClient(update({ instructions: 'x' }), true);
    t.observeServer(wire({ type: 'session.created', session: { type: 'transcription' } }));
    t.observeClient(update({ instructions: 'y' }), true);
    expect(t.updatesBeforeCreated).toEqual({ type: 'realtime', instructions: 'x' });
    // A second session.created is the next event: the first one has been decided.
    t.observeServer(wire({ type: 'session.created', session: { type: 'realtime' } }));
    expect(t.updatesBeforeCreated).toBeNull();
    const odd = new Conversation();
    odd.observeClient(wire({ type: 'session.update' }), false);
    odd.observeClient(new Frame('session.update', Buffer.from('{"type":"session.update","session":')), false);
    expect(odd.updatesBeforeCreated).toBeNull();
  });

  it('is bounded: past MAX_EARLY_UPDATE_BYTES of updates it is forgotten (null: a filter re-imposes what differs)', () => {
    const c = new Conversation();
    const big = 'x'.repeat(MAX_EARLY_UPDATE_BYTES / 2);
    c.observeClient(update({ instructions: big }), false);
    c.observeClient(update({ audio: { output: { voice: 'cedar' } } }), false);
    expect(c.updatesBeforeCreated).not.toBeNull();
    c.observeClient(update({ tools: [{ type: 'function', name: 'f', description: big }] }), false);
    expect(c.updatesBeforeCreated).toBeNull();
    c.observeClient(update({ audio: { output: { voice: 'ash' } } }), false);
    expect(c.updatesBeforeCreated).toBeNull();
    // Exactly the budget still counts; one byte more does not.
    const sized = (bytes: number) => {
      const frame = update({ instructions: '' });
      return update({ instructions: 'x'.repeat(bytes - frame.bytes.length) });
    };
    const at = new Conversation();
    at.observeClient(sized(MAX_EARLY_UPDATE_BYTES), false);
    expect(at.updatesBeforeCreated).not.toBeNull();
    const over = new Conversation();
    over.observeClient(sized(MAX_EARLY_UPDATE_BYTES + 1), false);
    expect(over.updatesBeforeCreated).toBeNull();
  });
});

describe('conversation view: a create event_id names the create alone (red-team review 2026-12-05)', () => {
  const setup = () => {
    const c = new Conversation();
    let n = 0;
    const fresh = () => `event_proxy_${++n}`;
    const create = (event: { type: string; [k: string]: unknown }) => {
      const stamped = c.stamp(wire(event), fresh);
      c.observeClient(stamped.frame, false);
      return stamped.eventId;
    };
    const other = (event: { type: string; [k: string]: unknown }) => {
      const out = c.unambiguous(Frame.fromClient(event.type, Buffer.from(JSON.stringify(event))), fresh);
      c.observeClient(out, false);
      return JSON.parse(out.wireBytes().toString('utf8')) as Record<string, unknown>;
    };
    const error = (eventId: string) => wire({ type: 'error', error: { type: 'invalid_request_error', code: 'item_not_found', message: 'x', event_id: eventId } });
    return { c, fresh, create, other, error };
  };
  const oob = (id: string) => ({ type: 'response.create', event_id: id, response: { conversation: 'none', metadata: { k: id } } });
  const created = (id: string, k: string) => wire({ type: 'response.created', response: { id, status: 'in_progress', output: [], conversation_id: null, metadata: { k } } });

  it('an error about an event sent before the create with the same id (an audio append the proxy never read) leaves the create waiting (found 2026-12-05)', () => {
    const { c, create, error } = setup();
    // The append leaves unread (no create waits: the relay does not even sniff it).
    const append = Buffer.from('{"type":"input_audio_buffer.append","event_id":"evt_1","audio":5}');
    expect(c.unambiguousAudio(append, () => 'x')).toBeNull();
    const id = create(oob('evt_1'));
    expect(id).toMatch(/^event_proxy_1_[0-9a-f]{12}$/);
    // The upstream refuses the append: its error names the client's id, not the create's.
    c.observeServer(error('evt_1'));
    expect(c.awaitingResponses).toBe(1);
    // Shown to the client as the upstream sent it: the append's error, with the append's id.
    expect(c.forClient(error('evt_1')).json()).toEqual(error('evt_1').json());
    c.observeServer(created('r1', 'evt_1'));
    expect(c.response('r1')).toMatchObject({ origin: 'out_of_band', createEventId: id });
  });

  it('an error about the create itself reaches the client with the client\'s own id; one about another event passes as it is', () => {
    const { c, create, error } = setup();
    const id = create(oob('evt_1'))!;
    const shown = c.forClient(error(id)).json()['error'] as Record<string, unknown>;
    expect(shown).toEqual({ type: 'invalid_request_error', code: 'item_not_found', message: 'x', event_id: 'evt_1' });
    c.observeServer(error(id));
    expect(c.awaitingResponses).toBe(0);
    const other = error('other');
    expect(c.forClient(other)).toBe(other);
    // Not an error, or one that cannot be read: the same frame.
    const notError = wire({ type: 'response.done', event_id: id });
    expect(c.forClient(notError)).toBe(notError);
    const broken = new Frame('error', Buffer.from('{"type":"error",'));
    expect(c.forClient(broken)).toBe(broken);
    const noBody = wire({ type: 'error', event_id: id });
    expect(c.forClient(noBody)).toBe(noBody);
  });

  it('an event reusing the id of a waiting create leaves with a fresh id (an audio append too, sniffed and spliced, never parsed)', () => {
    const { c, create, other, error } = setup();
    // A proxy's own create (its id follows the session's scheme, which a client can guess).
    c.observeClient(wire({ type: 'response.create', event_id: 'evt_p', response: { conversation: 'none', metadata: { k: 'evt_p' } } }), true);
    expect(other({ type: 'conversation.item.delete', event_id: 'evt_p', item_id: 'nope' })['event_id']).toBe('event_proxy_1');
    c.observeServer(error('event_proxy_1'));
    expect(c.awaitingResponses).toBe(1);
    const append = Buffer.from('{"type":"input_audio_buffer.append","event_id":"evt_p","audio":"AAAA"}');
    const restamped = c.unambiguousAudio(append, () => 'event_proxy_x');
    expect(restamped?.toString()).toBe('{"type":"input_audio_buffer.append","event_id":"event_proxy_x","audio":"AAAA"}');
    expect(c.unambiguousAudio(Buffer.from('{"type":"input_audio_buffer.append","event_id":"evt_2","audio":"AAAA"}'), () => 'x')).toBeNull();
    // Compared byte for byte without a string: a prefix, a longer id, a non-ASCII one of the same length are others.
    for (const other of ['evt_', 'evt_pp', 'evt_é', 'evt_q']) expect(c.unambiguousAudio(Buffer.from(`{"type":"input_audio_buffer.append","event_id":"${other}","audio":"AAAA"}`), () => 'x'), other).toBeNull();
    // An id escaped in the JSON: parsed to compare, rewritten only on a collision.
    const escaped = c.unambiguousAudio(Buffer.from('{"type":"input_audio_buffer.append","event_id":"evt\\u005fp","audio":"AAAA"}'), () => 'event_proxy_y');
    expect(JSON.parse(escaped!.toString())).toEqual({ type: 'input_audio_buffer.append', event_id: 'event_proxy_y', audio: 'AAAA' });
    expect(c.unambiguousAudio(Buffer.from('{"type":"input_audio_buffer.append","event_id":"evt\\u005fq","audio":"AAAA"}'), () => 'x')).toBeNull();
    expect(other({ type: 'conversation.item.delete', event_id: 'evt_2', item_id: 'nope' })['event_id']).toBe('evt_2');
    expect(c.forClient(error('event_proxy_x')).json()['error']).toMatchObject({ event_id: 'evt_p' });
    // A client create's id is never one a client event carries: nothing to restamp.
    const id = create(oob('evt_1'));
    expect(other({ type: 'conversation.item.delete', event_id: 'evt_1', item_id: 'nope' })['event_id']).toBe('evt_1');
    c.observeServer(created('r1', 'evt_p'));
    c.observeServer(created('r2', 'evt_1'));
    expect([c.response('r1')?.createEventId, c.response('r2')?.createEventId]).toEqual(['evt_p', id]);
    // No create waiting: nothing is read.
    expect(c.unambiguousAudio(append, () => 'x')).toBeNull();
  });

  it('forClient rewrites only an error, and keeps its type; a non-error frame carrying the same member passes as it is', () => {
    const { c, create, error } = setup();
    const id = create(oob('evt_1'))!;
    const shown = c.forClient(error(id));
    expect(shown.type).toBe('error');
    expect(JSON.parse(shown.bytes.toString('utf8'))).toEqual({ type: 'error', error: { type: 'invalid_request_error', code: 'item_not_found', message: 'x', event_id: 'evt_1' } });
    const lookalike = new Frame('response.done', Buffer.from(JSON.stringify({ type: 'response.done', error: { event_id: id } })));
    expect(c.forClient(lookalike)).toBe(lookalike);
  });

  it('collisions: only a string id that a waiting create has; with several waiting, any of them; parsed frames and escaped or spaced appends too', () => {
    const { c, other } = setup();
    // Creates the proxy injected (their ids follow the session's scheme) and one read without an id.
    for (const id of ['p1', 'p2']) c.observeClient(wire({ type: 'response.create', event_id: id, response: { conversation: 'none', metadata: { k: id } } }), true);
    c.observeClient(wire({ type: 'response.create', response: { conversation: 'none', metadata: { k: 'none' } } }), true);
    // A null id never collides with the create sent without one.
    expect(other({ type: 'conversation.item.delete', event_id: null, item_id: 'x' })['event_id']).toBeNull();
    expect(other({ type: 'conversation.item.delete', event_id: 'p1', item_id: 'x' })['event_id']).toBe('event_proxy_1');
    // A frame a filter parsed: rewritten from what was read, the rest kept.
    let n = 0;
    const parsed = Frame.fromClient('conversation.item.delete', Buffer.from('{"type":"conversation.item.delete","event_id":"p2","item_id":"x"}'), { type: 'conversation.item.delete', event_id: 'p2', item_id: 'x' });
    const out = c.unambiguous(parsed, () => `fresh_${++n}`);
    expect(JSON.parse(out.wireBytes().toString('utf8'))).toEqual({ type: 'conversation.item.delete', event_id: 'fresh_1', item_id: 'x' });
    const kept = Frame.fromClient('conversation.item.delete', Buffer.from('{"type":"conversation.item.delete","event_id":"p3","item_id":"x"}'), { type: 'conversation.item.delete', event_id: 'p3', item_id: 'x' });
    expect(c.unambiguous(kept, () => 'never')).toBe(kept);
    const nullId = Frame.fromClient('conversation.item.delete', Buffer.from('{"type":"conversation.item.delete","event_id":null,"item_id":"x"}'), { type: 'conversation.item.delete', event_id: null, item_id: 'x' });
    expect(c.unambiguous(nullId, () => 'never')).toBe(nullId);
    // Not parsed: the id is spliced into the bytes as they came, spacing kept.
    const spacedEvent = c.unambiguous(Frame.fromClient('conversation.item.delete', Buffer.from('{ "type": "conversation.item.delete", "event_id": "p1", "item_id": "x" }')), () => 'r');
    expect(spacedEvent.wireBytes().toString('utf8')).toBe('{ "type": "conversation.item.delete", "event_id": "r", "item_id": "x" }');
    // An append without an id, or unreadable JSON with an escaped id: left alone.
    expect(c.unambiguousAudio(Buffer.from('{"type":"input_audio_buffer.append","audio":"AAAA"}'), () => 'never')).toBeNull();
    expect(c.unambiguousAudio(Buffer.from('{"type":"input_audio_buffer.append","event_id":"p\\u0031",'), () => 'never')).toBeNull();
    // Spacing kept: the id is spliced in place, not re-serialised.
    const spaced = c.unambiguousAudio(Buffer.from('{ "type": "input_audio_buffer.append", "event_id": "p2", "audio": "AAAA" }'), () => 'q');
    expect(spaced?.toString()).toBe('{ "type": "input_audio_buffer.append", "event_id": "q", "audio": "AAAA" }');
    expect([c.clientEventId('event_proxy_1'), c.clientEventId('fresh_1'), c.clientEventId('r'), c.clientEventId('q')]).toEqual(['p1', 'p2', 'p1', 'p2']);
  });

  it('keeps the client ids of the most recent 384 restamped events, within 64 Ki characters of ids; a longer id is not kept', () => {
    expect([MAX_RESTAMPED, MAX_RESTAMPED_CHARS]).toEqual([384, 64 * 1024]);
    const { c, create, error } = setup();
    const ids = Array.from({ length: 385 }, (_, i) => create(oob(`evt_${i}`))!);
    expect(c.clientEventId(ids[0]!)).toBeUndefined();
    expect(c.clientEventId(ids[1]!)).toBe('evt_1');
    expect(c.forClient(error(ids[384]!)).json()['error']).toMatchObject({ event_id: 'evt_384' });
    // Long ids: the oldest go first, until the rest fit.
    const long = (k: string) => k.padEnd(MAX_RESTAMPED_CHARS / 4, '_');
    const longIds = ['a', 'b', 'c', 'd'].map((k) => create(oob(long(k)))!);
    expect(c.clientEventId(ids[384]!)).toBeUndefined();
    expect(c.clientEventId(longIds[0]!)).toBe(long('a'));
    const e = create(oob(long('e')))!;
    expect([c.clientEventId(longIds[0]!), c.clientEventId(longIds[1]!), c.clientEventId(e)]).toEqual([undefined, long('b'), long('e')]);
    // Exactly the bound fits; one character more is never kept (and evicts nothing).
    const whole = create(oob('w'.repeat(MAX_RESTAMPED_CHARS)))!;
    expect(c.clientEventId(whole)).toBe('w'.repeat(MAX_RESTAMPED_CHARS));
    expect(c.clientEventId(e)).toBeUndefined();
    const over = create(oob('o'.repeat(MAX_RESTAMPED_CHARS + 1)))!;
    expect(c.clientEventId(over)).toBeUndefined();
    expect(c.clientEventId(whole)).toBe('w'.repeat(MAX_RESTAMPED_CHARS));
    expect(c.forClient(error(over)).json()['error']).toMatchObject({ event_id: over });
  });
});

describe('conversation view: every event whose error the proxy acts on leaves with an id of the proxy\'s (found 2026-12-05)', () => {
  const setup = () => {
    const c = new Conversation();
    let n = 0;
    const send = (event: { type: string; [k: string]: unknown }) => {
      const frame = wire(event);
      expect(Conversation.stamps(event.type)).toBe(true);
      const stamped = c.stamp(frame, () => `event_proxy_${++n}`);
      c.observeClient(stamped.frame, false);
      return { id: stamped.eventId!, sent: JSON.parse(stamped.frame.wireBytes().toString('utf8')) as Record<string, unknown> };
    };
    const error = (eventId: string) => wire({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'x', param: 'audio', event_id: eventId } });
    return { c, send, error };
  };

  it('stamps creates, item creates, commits and session.updates, nothing else', () => {
    expect(['response.create', 'conversation.item.create', 'session.update', 'input_audio_buffer.commit'].map((t) => Conversation.stamps(t))).toEqual([true, true, true, true]);
    expect(['input_audio_buffer.append', 'input_audio_buffer.clear', 'conversation.item.delete', 'response.cancel', 'session.updated', ''].map((t) => Conversation.stamps(t))).toEqual([false, false, false, false, false, false]);
  });

  it('an error naming the client\'s id of a session.update (about another event that carried it) answers no update; the one naming the proxy\'s does, and reaches the client with its own id', () => {
    const { c, send, error } = setup();
    c.observeServer(wire({ type: 'session.created', session: { type: 'realtime' } }));
    const u = send({ type: 'session.update', event_id: 'evt_dup', session: { type: 'realtime', max_output_tokens: 4000 } });
    expect(u.id).toMatch(/^event_proxy_1_[0-9a-f]{12}$/);
    // Only the id changes.
    expect(u.sent).toEqual({ type: 'session.update', event_id: u.id, session: { type: 'realtime', max_output_tokens: 4000 } });
    expect([c.sessionUpdatesSent, c.sessionUpdatesAnswered]).toEqual([1, 0]);
    // An unread append with the same id, refused: not the update's answer, shown as it came.
    c.observeServer(error('evt_dup'));
    expect(c.sessionUpdatesAnswered).toBe(0);
    expect(c.forClient(error('evt_dup')).json()).toEqual(error('evt_dup').json());
    // The update's own refusal answers it; the client reads its own id.
    expect(c.forClient(error(u.id)).json()['error']).toMatchObject({ event_id: 'evt_dup', param: 'audio' });
    c.observeServer(error(u.id));
    expect(c.sessionUpdatesAnswered).toBe(1);
  });

  it('before session.created too: a stamped update is merged into updatesBeforeCreated as it went', () => {
    const { c, send } = setup();
    send({ type: 'session.update', event_id: 'u1', session: { type: 'realtime', instructions: 'be brief' } });
    expect(c.updatesBeforeCreated).toEqual({ type: 'realtime', instructions: 'be brief' });
    expect(c.sessionUpdatesSent).toBe(1);
  });

  it('an error naming the client\'s id of an item create (about another event) leaves the item waiting: it is the client\'s when it comes', () => {
    const { c, send, error } = setup();
    const item = send({ type: 'conversation.item.create', event_id: 'evt_i', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    expect(item.sent).toEqual({ type: 'conversation.item.create', event_id: item.id, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    c.observeServer(error('evt_i'));
    c.observeServer(added({ id: 'item_1', type: 'message', role: 'user' }));
    expect(c.item('item_1')?.provenance).toBe('client');
    // Its own refusal drops it: the next unknown item is the server's.
    const refused = send({ type: 'conversation.item.create', event_id: 'evt_j', item: { type: 'message', role: 'user', content: [] } });
    expect(c.forClient(error(refused.id)).json()['error']).toMatchObject({ event_id: 'evt_j' });
    c.observeServer(error(refused.id));
    c.observeServer(added({ id: 'item_2', type: 'message', role: 'user' }));
    expect(c.item('item_2')?.provenance).toBe('server');
  });

  it('an unreadable update or item create leaves as it came, with no id drawn', () => {
    const c = new Conversation();
    let n = 0;
    for (const type of ['session.update', 'conversation.item.create']) {
      const broken = new Frame(type, Buffer.from(`{"type":"${type}",`));
      expect(c.stamp(broken, () => `x${++n}`)).toEqual({ frame: broken, eventId: null, own: null });
    }
    expect(n).toBe(0);
  });
});

describe('conversation view: session.updates sent and answered', () => {
  it('counts every session.update sent (client and proxy, before and after session.created) and the answers: session.updated in order, or an error naming one', () => {
    const c = new Conversation();
    c.observeClient(wire({ type: 'session.update', session: { type: 'realtime' } }), true);
    c.observeClient(wire({ type: 'session.update', event_id: 'u2', session: { type: 'realtime' } }), false);
    c.observeServer(wire({ type: 'session.created', session: { type: 'realtime' } }));
    c.observeClient(wire({ type: 'session.update', event_id: 'u3', session: { type: 'realtime' } }), false);
    expect([c.sessionUpdatesSent, c.sessionUpdatesAnswered]).toEqual([3, 0]);
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime' } }));
    expect(c.sessionUpdatesAnswered).toBe(1);
    // An error about u3 answers it and every one before it.
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'u3' } }));
    expect(c.sessionUpdatesAnswered).toBe(3);
    // Never more answers than updates.
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime' } }));
    expect(c.sessionUpdatesAnswered).toBe(3);
  });

  it('after session.created: a parsed update is counted by its id; an unreadable one before it counts too, with no id; an unreadable create is no update', () => {
    const c = new Conversation();
    c.observeClient(new Frame('session.update', Buffer.from('{"type":"session.update",')), false);
    expect(c.sessionUpdatesSent).toBe(1);
    c.observeClient(new Frame('response.create', Buffer.from('{"type":"response.create",')), false);
    expect(c.sessionUpdatesSent).toBe(1);
    c.observeServer(wire({ type: 'session.created', session: { type: 'realtime' } }));
    const parsed = Frame.fromClient('session.update', Buffer.from('{"type":"session.update","event_id":"u2","session":{}}'), { type: 'session.update', event_id: 'u2', session: {} });
    c.observeClient(parsed, false);
    expect(c.sessionUpdatesSent).toBe(2);
    // The error naming u2 answers it and the one before.
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'u2' } }));
    expect(c.sessionUpdatesAnswered).toBe(2);
  });

  it('an error naming an update already answered answers nothing more', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'session.created', session: { type: 'realtime' } }));
    c.observeClient(wire({ type: 'session.update', event_id: 'u1', session: {} }), false);
    c.observeClient(wire({ type: 'session.update', event_id: 'u2', session: {} }), false);
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime' } }));
    expect(c.sessionUpdatesAnswered).toBe(1);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'u1' } }));
    expect(c.sessionUpdatesAnswered).toBe(1);
  });

  it('keeps the ids of the last 64 unanswered updates; an error naming the newest answers every one sent, one naming a forgotten id nothing', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'session.created', session: { type: 'realtime' } }));
    for (let i = 0; i < 65; i++) c.observeClient(wire({ type: 'session.update', event_id: `u${i}`, session: {} }), false);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'u0' } }));
    expect(c.sessionUpdatesAnswered).toBe(0);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'u1' } }));
    expect(c.sessionUpdatesAnswered).toBe(1);
    c.observeServer(wire({ type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: 'u64' } }));
    expect(c.sessionUpdatesAnswered).toBe(64);
    // Nothing left to answer: a later session.updated changes nothing.
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime' } }));
    expect(c.sessionUpdatesAnswered).toBe(64);
  });
});

describe('conversation view: bounds the upstream alone could push it past (found 2026-12-07)', () => {
  const outputItem = (responseId: string, itemId: string) =>
    wire({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: { id: itemId, type: 'message', role: 'assistant', status: 'in_progress', content: [] } });
  const refsKept = (c: Conversation) => c.responsesLearnedAfter(0).reduce((n, r) => n + r.itemIds.length, 0);

  it(`runs at most ${MAX_RUNNING_RESPONSES} responses at once: the next is kept running (to be billed) and the view is at fault, learning nothing more`, () => {
    const c = new Conversation();
    for (let i = 0; i < MAX_RUNNING_RESPONSES; i++) c.observeServer(created(`r${i}`));
    expect(c.upstreamFault).toBeNull();
    expect(c.activeResponses()).toHaveLength(MAX_RUNNING_RESPONSES);
    c.observeServer(created('one_too_many'));
    expect(c.upstreamFault).toEqual({ what: 'running_responses', limit: MAX_RUNNING_RESPONSES });
    expect(c.activeResponses()).toHaveLength(MAX_RUNNING_RESPONSES + 1);
    expect(c.activeResponses().at(-1)).toBe('one_too_many');
    expect(c.response('one_too_many')?.state).toBe('in_progress');
    // Nothing more is learned: no growth, and no state the relay's close would read differently.
    for (let i = 0; i < 1000; i++) c.observeServer(created(`later${i}`));
    c.observeServer(done('r0'));
    c.observeServer(added({ id: 'item_late', type: 'message', role: 'assistant' }));
    expect(c.activeResponses()).toHaveLength(MAX_RUNNING_RESPONSES + 1);
    expect(c.response('later0')).toBeUndefined();
    expect(c.response('r0')?.state).toBe('in_progress');
    expect(c.item('item_late')).toBeUndefined();
    expect(c.upstreamFault).toEqual({ what: 'running_responses', limit: MAX_RUNNING_RESPONSES });
  });

  it('responses that end make room: thousands one after another never fault', () => {
    const c = new Conversation();
    for (let i = 0; i < 5000; i++) {
      c.observeServer(created(`r${i}`));
      if (i >= MAX_RUNNING_RESPONSES - 1) c.observeServer(done(`r${i - MAX_RUNNING_RESPONSES + 1}`));
    }
    expect(c.upstreamFault).toBeNull();
    expect(c.activeResponses()).toHaveLength(MAX_RUNNING_RESPONSES - 1);
    expect(c.responsesLearnedAfter(0).length).toBeLessThanOrEqual(MAX_RESPONSES);
  });

  it(`running responses list at most ${MAX_LISTED_ITEMS} output items together: past it the view is at fault (a list is never cut)`, () => {
    const c = new Conversation();
    c.observeServer(created('r1'));
    c.observeServer(created('r2'));
    c.observeServer(outputItem('r2', 'item_r2'));
    for (let i = 1; i < MAX_LISTED_ITEMS; i++) c.observeServer(outputItem('r1', `item_${i}`));
    expect(c.upstreamFault).toBeNull();
    expect(c.response('r1')?.itemIds).toHaveLength(MAX_LISTED_ITEMS - 1);
    c.observeServer(outputItem('r1', 'item_past'));
    expect(c.upstreamFault).toEqual({ what: 'response_items', limit: MAX_LISTED_ITEMS });
    expect(c.response('r1')?.itemIds).toHaveLength(MAX_LISTED_ITEMS - 1);
    expect(c.response('r2')?.itemIds).toEqual(['item_r2']);
  });

  it('a response.done listing more output items than the bound faults too, and stops reading them', () => {
    const c = new Conversation();
    const output = Array.from({ length: MAX_LISTED_ITEMS + 50 }, (_, i) => ({ id: `item_${i}`, type: 'message', role: 'assistant', status: 'completed', content: [] }));
    c.observeServer(done('r1', output));
    expect(c.upstreamFault).toEqual({ what: 'response_items', limit: MAX_LISTED_ITEMS });
    expect(c.response('r1')?.itemIds).toHaveLength(MAX_LISTED_ITEMS);
    expect(c.item(`item_${MAX_LISTED_ITEMS + 49}`)).toBeUndefined();
  });

  it(`the done responses kept list at most ${MAX_LISTED_ITEMS} item ids together: the oldest are forgotten first`, () => {
    const c = new Conversation();
    c.observeServer(created('running'));
    c.observeServer(outputItem('running', 'running_item'));
    const perResponse = 256;
    const responses = Math.ceil((MAX_LISTED_ITEMS * 2) / perResponse);
    for (let r = 0; r < responses; r++) {
      const output = Array.from({ length: perResponse }, (_, i) => ({ id: `item_${r}_${i}`, type: 'message', role: 'assistant', status: 'completed', content: [] }));
      c.observeServer(created(`done_${r}`));
      c.observeServer(done(`done_${r}`, output));
    }
    expect(c.upstreamFault).toBeNull();
    expect(refsKept(c)).toBeLessThanOrEqual(MAX_LISTED_ITEMS);
    expect(c.response('done_0')).toBeUndefined();
    expect(c.response(`done_${responses - 1}`)?.itemIds).toHaveLength(perResponse);
    // A running response is never forgotten.
    expect(c.response('running')?.itemIds).toEqual(['running_item']);
  });

  it(`ids the upstream chose past ${MAX_KEPT_ID_CHARS} characters: an item or a committed buffer is not kept, a response is kept running under its hash; the view is at fault`, () => {
    const long = 'x'.repeat(MAX_KEPT_ID_CHARS + 1);
    const item = new Conversation();
    item.observeServer(added({ id: long, type: 'message', role: 'assistant' }));
    expect(item.upstreamFault).toEqual({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
    expect([...item.items()]).toEqual([]);

    const committed = new Conversation();
    committed.observeServer(wire({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: long }));
    expect(committed.upstreamFault).toEqual({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });

    const ofResponse = new Conversation();
    ofResponse.observeServer(created('r1'));
    ofResponse.observeServer(outputItem(long, 'item_1'));
    expect(ofResponse.upstreamFault).toEqual({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
    expect(ofResponse.item('item_1')).toBeUndefined();

    const response = new Conversation();
    response.observeServer(created(long));
    expect(response.upstreamFault).toEqual({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
    expect(response.activeResponses()).toEqual([keptId(long)]);
    expect(response.response(keptId(long))?.state).toBe('in_progress');
    expect(response.response(long)).toBeUndefined();

    // Up to the bound, kept whole.
    const fits = 'y'.repeat(MAX_KEPT_ID_CHARS);
    const whole = new Conversation();
    whole.observeServer(created(fits));
    whole.observeServer(outputItem(fits, fits));
    expect(whole.upstreamFault).toBeNull();
    expect(whole.response(fits)?.itemIds).toEqual([fits]);
  });

  it(`an event of any type naming an item or response (item_id, response_id, previous_item_id) past ${MAX_KEPT_ID_CHARS} characters: the view is at fault (the filters key their state by them)`, () => {
    const long = 'z'.repeat(MAX_KEPT_ID_CHARS + 1);
    for (const member of ['item_id', 'response_id', 'previous_item_id']) {
      const c = new Conversation();
      c.observeServer(wire({ type: 'response.output_text.delta', item_id: 'item_1', response_id: 'resp_1', output_index: 0, content_index: 0, delta: 'hi', [member]: long }));
      expect(c.upstreamFault, member).toEqual({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
    }
    // Read by a parse when the sniffer cannot (an escape in the id): the same.
    const escaped = new Conversation();
    escaped.observeServer(new Frame('response.output_text.delta', Buffer.from(`{"type":"response.output_text.delta","item_id":"\\u0041${'a'.repeat(MAX_KEPT_ID_CHARS)}","delta":"x"}`, 'utf8')));
    expect(escaped.upstreamFault).toEqual({ what: 'id_length', limit: MAX_KEPT_ID_CHARS });
    // At the bound, in any characters (3 UTF-8 bytes each here), it is kept.
    const fits = new Conversation();
    fits.observeServer(wire({ type: 'response.output_text.delta', item_id: '\u20ac'.repeat(MAX_KEPT_ID_CHARS), response_id: 'r'.repeat(MAX_KEPT_ID_CHARS), delta: 'x' }));
    fits.observeServer(new Frame('response.output_text.delta', Buffer.from(`{"type":"response.output_text.delta","item_id":"\\u0041","delta":"x"}`, 'utf8')));
    expect(fits.upstreamFault).toBeNull();
  });

  it('words and metadata as long as a frame are kept as their hash: they still pair and compare', () => {
    const c = new Conversation();
    const metadata = { note: 'm'.repeat(100_000) };
    c.observeClient(wire({ type: 'response.create', event_id: 'event_a', response: { conversation: 'none', metadata } }), false);
    c.observeServer(created('r1', { conversation_id: null, metadata }));
    expect(c.response('r1')?.origin).toBe('out_of_band');
    expect(c.response('r1')?.createEventId).toBe('event_a');
    expect(c.response('r1')?.metadata?.length).toBeLessThanOrEqual(MAX_KEPT_ID_CHARS);
    c.observeServer(created('r2', { conversation_id: 'c'.repeat(100_000) }));
    expect(c.response('r2')?.conversationId?.length).toBeLessThanOrEqual(MAX_KEPT_ID_CHARS);
    c.observeServer(added({ id: 'item_1', type: 't'.repeat(100_000), role: 'r'.repeat(100_000), status: 's'.repeat(100_000) }));
    const item = c.item('item_1');
    expect([item?.type.length, item?.role?.length, item?.status?.length].every((n) => n !== undefined && n <= MAX_KEPT_ID_CHARS)).toBe(true);
    expect(c.upstreamFault).toBeNull();
  });
});
