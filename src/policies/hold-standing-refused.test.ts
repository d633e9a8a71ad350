import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeSession } from '../../test/support/fake-session.js';
import { entryOf, heldPolicy, policyFrom, wire } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import { GuardrailFilter } from './guardrails.js';

/**
 * A client `response.create` the hold let go to stand for a turn that passed (so the proxy owes the
 * turn no response of its own), which the upstream then refuses (an `error` naming the id it left
 * with): no response answers the turn. Like a create the truncation budget refuses (93c2b2d), the
 * turn is owed the proxy's own create again. Found 2026-12-06 while moving the hold's state into the
 * conversation view (`spokenTurns`): until then such a turn went unanswered.
 */

let s: FakeSession;
let g: GuardrailFilter;
beforeEach(async () => {
  vi.useFakeTimers();
  s = new FakeSession();
  g = new GuardrailFilter(s, entryOf(await policyFrom(heldPolicy(1000), 'held')));
});
afterEach(() => {
  g.onClose();
  vi.useRealTimers();
});

const committed = (itemId: string) => s.fromServer(g, wire({ type: 'input_audio_buffer.committed', event_id: `ev_c_${itemId}`, previous_item_id: null, item_id: itemId }));
const transcript = (itemId: string, text: string) =>
  s.fromServer(g, wire({ type: 'conversation.item.input_audio_transcription.completed', event_id: `ev_t_${itemId}`, item_id: itemId, content_index: 0, transcript: text }));
const response = (id: string, type: 'response.created' | 'response.done') =>
  s.fromServer(g, wire({ type, event_id: `ev_${type}_${id}`, response: { id, object: 'realtime.response', status: type === 'response.done' ? 'completed' : 'in_progress', output: [], conversation_id: 'conv_1', usage: null } }));
const upstreamError = (eventId: string, code = 'invalid_value') =>
  s.fromServer(g, wire({ type: 'error', event_id: 'ev_err', error: { type: 'invalid_request_error', code, message: 'no', param: 'response.output_modalities', event_id: eventId } }));
/** The proxy's own creates (`s.upstream` records what the proxy injects; a client event that left is `stamped`). */
const proxyCreates = () => s.upstream.filter((e) => e.type === 'response.create').length;
/** The id the client's create left with (it went upstream). */
const leftAs = (clientEventId: string) => s.upstreamIdOf(clientEventId);

describe('a client create that stood for a passed turn, refused by the upstream', () => {
  it('paused while the turn was held, let go once it passed, refused upstream: the proxy answers the turn with its own create, once', async () => {
    committed('item_a');
    const v = s.fromClient(g, wire({ type: 'response.create', event_id: 'evt_bad', response: { output_modalities: ['video'] } }));
    transcript('item_a', 'what is the weather');
    expect(await v).toEqual({ kind: 'continue' });
    expect(s.conversation.spokenTurns.clientCreateStands).toBe(true);
    expect(proxyCreates()).toBe(0);
    upstreamError(leftAs('evt_bad'));
    // Until 2026-12-06: nothing more went upstream; the user's turn had no answer.
    expect(proxyCreates()).toBe(1);
    expect(s.conversation.spokenTurns.clientCreateStands).toBe(false);
    upstreamError(leftAs('evt_bad'));
    expect(proxyCreates()).toBe(1);
  });

  it('sent after the turn passed while a response ran (it stands): refused upstream, the proxy answers the turn', () => {
    response('resp_busy', 'response.created');
    committed('item_a');
    transcript('item_a', 'what is the weather');
    // The response ended (the view knows) and the client's create comes before the hold hears of it.
    const done = wire({ type: 'response.done', event_id: 'ev_done', response: { id: 'resp_busy', status: 'completed', output: [], conversation_id: 'conv_1', usage: null } });
    s.conversation.observeServer(done);
    expect((s.fromClient(g, wire({ type: 'response.create', event_id: 'evt_bad', response: {} })) as Verdict).kind).toBe('continue');
    expect(s.conversation.spokenTurns.clientCreateStands).toBe(true);
    // The hold hears of that response.done (nothing owed any more: the create stands for the turn).
    g.onServer(done);
    expect(proxyCreates()).toBe(0);
    upstreamError(leftAs('evt_bad'), 'conversation_already_has_active_response');
    expect(proxyCreates()).toBe(1);
  });

  it('controls: an error naming the client\'s own id, another event, or a create that stood for nothing owes nothing', async () => {
    committed('item_a');
    const v = s.fromClient(g, wire({ type: 'response.create', event_id: 'evt_ok', response: {} }));
    transcript('item_a', 'what is the weather');
    await v;
    // The client's own id is not the id the create left with (an unread append may carry it).
    upstreamError('evt_ok');
    upstreamError('event_other');
    expect(proxyCreates()).toBe(0);
    // Its response starts and ends: it answered the turn; an error naming it later owes nothing.
    response('resp_client', 'response.created');
    response('resp_client', 'response.done');
    expect(s.conversation.spokenTurns.clientCreateStands).toBe(false);
    upstreamError(leftAs('evt_ok'));
    expect(proxyCreates()).toBe(0);
    // A create with nothing owed stands for nothing: its refusal owes nothing.
    expect((s.fromClient(g, wire({ type: 'response.create', event_id: 'evt_free', response: {} })) as Verdict).kind).toBe('continue');
    upstreamError(leftAs('evt_free'));
    expect(proxyCreates()).toBe(0);
  });
});
