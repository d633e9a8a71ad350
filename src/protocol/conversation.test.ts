import { describe, expect, it } from 'vitest';
import { Frame } from '../pipeline/frame.js';
import { Conversation, MAX_ITEMS, parseUsage } from './conversation.js';

const wire = (event: { type: string; [k: string]: unknown }) => new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));
const created = (id: string) => wire({ type: 'response.created', response: { id, status: 'in_progress', output: [] } });
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
    const started = (id: string, extra: Record<string, unknown>) => wire({ type: 'response.created', response: { id, status: 'in_progress', output: [], ...extra } });
    const c = new Conversation();
    c.observeClient(wire({ type: 'response.create', event_id: 'a', response: { conversation: 'none', metadata: { topic: 'x', lang: 'en' } } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'b', response: { conversation: 'none', metadata: { topic: 'y', lang: 'en' } } }), false);
    c.observeServer(started('r_b', { conversation_id: null, metadata: { lang: 'en', topic: 'y' } }));
    c.observeServer(started('r_a', { conversation_id: null, metadata: { lang: 'en', topic: 'x' } }));
    expect([c.response('r_a')?.createEventId, c.response('r_b')?.createEventId]).toEqual(['a', 'b']);
    expect(c.awaitingResponses).toBe(0);
  });

  it('pairs a created response with the create that agrees on conversation, metadata and output limit, not the oldest', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'session.updated', session: { type: 'realtime', max_output_tokens: 200 } }));
    c.observeClient(wire({ type: 'response.create', event_id: 'big', response: { conversation: 'none', metadata: { k: 'big' } } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'small', response: { conversation: 'none', metadata: { k: 'small' }, max_output_tokens: 1 } }), false);
    c.observeClient(wire({ type: 'response.create', event_id: 'conv', response: { max_output_tokens: 5 } }), false);
    const started = (id: string, extra: Record<string, unknown>) => wire({ type: 'response.created', response: { id, status: 'in_progress', output: [], ...extra } });
    c.observeServer(started('r_small', { conversation_id: null, metadata: { k: 'small' }, max_output_tokens: 1 }));
    // A VAD response (session limit) is not the pending conversation create (limit 5).
    c.observeServer(started('r_vad', { conversation_id: 'conv_1', max_output_tokens: 200 }));
    c.observeServer(started('r_big', { conversation_id: null, metadata: { k: 'big' }, max_output_tokens: 200 }));
    c.observeServer(started('r_conv', { conversation_id: 'conv_1', max_output_tokens: 5 }));
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
    const started = (id: string, extra: Record<string, unknown> = {}) => wire({ type: 'response.created', response: { id, status: 'in_progress', output: [], ...extra } });
    c.observeServer(started('r_null', { conversation_id: null }));
    c.observeServer(started('r_conv', { conversation_id: 'conv_1' }));
    c.observeServer(started('r_vad'));
    c.observeClient(wire({ type: 'response.create', event_id: 'oob', response: { conversation: 'none' } }), false);
    c.observeServer(started('r_oob_unreported'));
    c.observeClient(wire({ type: 'response.create', event_id: 'conv', response: {} }), false);
    c.observeServer(started('r_conv_unreported'));
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

  it('stamps every client create with an event_id no waiting create has', () => {
    const c = new Conversation();
    let n = 0;
    const fresh = () => `event_proxy_${++n}`;
    const send = (event: { type: string; [k: string]: unknown }) => {
      const stamped = c.stampCreate(wire(event), fresh);
      c.observeClient(stamped.frame, false);
      return { id: stamped.eventId, sent: JSON.parse(stamped.frame.bytes.toString('utf8')) as Record<string, unknown> };
    };
    const own = wire({ type: 'response.create', event_id: 'evt_1', response: { conversation: 'none' } });
    const kept = c.stampCreate(own, fresh);
    expect(kept).toEqual({ frame: own, eventId: 'evt_1' });
    c.observeClient(kept.frame, false);
    // The client reuses the id of a create still waiting: the upstream gets a fresh one.
    const reused = send({ type: 'response.create', event_id: 'evt_1', response: { conversation: 'none', metadata: { k: 2 } } });
    expect(reused.id).toBe('event_proxy_1');
    expect(reused.sent).toEqual({ type: 'response.create', event_id: 'event_proxy_1', response: { conversation: 'none', metadata: { k: 2 } } });
    const none = send({ type: 'response.create' });
    expect(none.id).toBe('event_proxy_2');
    expect(none.sent['event_id']).toBe('event_proxy_2');
    const notString = send({ type: 'response.create', event_id: 7 });
    expect(notString.id).toBe('event_proxy_3');
    // Answered, the client's id is free again.
    c.observeServer(wire({ type: 'response.created', response: { id: 'r1', status: 'in_progress', output: [], conversation_id: null } }));
    expect(c.response('r1')?.createEventId).toBe('evt_1');
    expect(send({ type: 'response.create', event_id: 'evt_1' }).id).toBe('evt_1');
    // Unreadable: sent as it was, with no key.
    const broken = new Frame('response.create', Buffer.from('{"type":"response.create",'));
    expect(c.stampCreate(broken, fresh)).toEqual({ frame: broken, eventId: null });
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
