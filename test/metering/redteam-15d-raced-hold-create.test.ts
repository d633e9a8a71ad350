/**
 * Red team (today's changes, 15d): the spoken-turn hold's create, reserved, then refused upstream.
 *
 * Since 2026-12-06 the hold's `response.create` passes metering (SessionChain.inject), which reserves
 * its worst case; and under `admission: worst_case` no timer releases a reservation: only its
 * response's start, an upstream error naming it, or the session's end do. The relay keeps every
 * upstream error about an event the proxy injected to itself (#isAboutInjected): a hold create that
 * lost the race with a response the upstream had already started (`conversation_already_has_active_response`,
 * the case the relay calls harmless) is answered by an error neither metering nor the conversation
 * view ever sees. Its reservation stays held for the rest of the session, and the view keeps it
 * waiting for a `response.created` (the next response is paired with it).
 *
 * An adversary (or any caller who talks while a response is starting) loses the race once per turn:
 * each time one more worst case stays reserved against the tenant's cap, and the tenant's creates are
 * refused `budget_exceeded` while nothing was spent. Scripted upstream: it commits and transcribes a
 * spoken turn on its own, and refuses the first response.create as the API does when a response runs.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { heldPolicy, policyDir } from '../policies/support.js';
import { errorCode, scriptedMeteredProxy, scriptedResponse, scriptedSession, textUsage, until } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type ClientEvent = { type: string; event_id?: string; session?: Record<string, unknown>; response?: Record<string, unknown> };

function racingUpstream(creates: ClientEvent[]) {
  return (ws: WebSocket, send: (event: Record<string, unknown>) => void) => {
    const session = scriptedSession({ type: 'server_vad', create_response: false });
    send({ type: 'session.created', event_id: 'event_s0', session });
    let n = 0;
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as ClientEvent;
      if (ev.type === 'session.update') {
        send({ type: 'session.updated', event_id: `event_u${++n}`, session: { ...session, ...ev.session } });
        return;
      }
      if (ev.type !== 'response.create') return;
      creates.push(ev);
      if (creates.length === 1) {
        // The hold's create: a response had started upstream before it was read.
        send({ type: 'error', event_id: `event_e${++n}`, error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'Conversation already has an active response in progress.', param: null, event_id: ev.event_id } });
        // A marker the client sees once the proxy has read that error.
        send({ type: 'rate_limits.updated', event_id: `event_r${++n}`, rate_limits: [] });
        return;
      }
      // The client's creates: each runs and ends, a little text read and written.
      const id = `resp_${creates.length}`;
      send({ type: 'response.created', event_id: `event_rc${++n}`, response: scriptedResponse(id, 'in_progress', { max_output_tokens: ev.response?.['max_output_tokens'] ?? 'inf' }) });
      send({ type: 'response.done', event_id: `event_rd${++n}`, response: scriptedResponse(id, 'completed', { max_output_tokens: ev.response?.['max_output_tokens'] ?? 'inf', usage: textUsage(50, 10) }) });
    });
  };
}

describe('red team 15d: a hold create refused upstream as racing a running response', () => {
  it('admission worst_case: its reservation is released, so the next create fits under a cap that holds one', async () => {
    const creates: ClientEvent[] = [];
    let upstream: ((event: Record<string, unknown>) => void) | null = null;
    const onConnection = racingUpstream(creates);
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        upstream = send;
        onConnection(ws, send);
      },
      {
        // One response's worst case (1,000 output tokens and the small conversation) fits; two do not.
        tenants: { acme: { policy: 'held', limits: { dailyUsd: '0.03', maxResponseOutputTokens: 1000 } } },
        config: { policies: { dir: policyDir({ 'held.yaml': heldPolicy(5000) }), watch: false } },
        metering: { admission: 'worst_case' },
      },
    );
    const c = await tp.client();
    await c.next('session.created');
    await until(() => upstream !== null, 5000, 'the upstream connection');
    // A spoken turn, committed and transcribed by the upstream: the hold checks it and answers it.
    const send = upstream!;
    send({ type: 'input_audio_buffer.committed', event_id: 'event_c1', previous_item_id: null, item_id: 'item_turn' });
    send({ type: 'conversation.item.added', event_id: 'event_a1', previous_item_id: null, item: { id: 'item_turn', object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] } });
    send({ type: 'conversation.item.done', event_id: 'event_d1', previous_item_id: null, item: { id: 'item_turn', object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] } });
    send({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'event_t1', item_id: 'item_turn', content_index: 0, transcript: 'what is the weather like today' });
    await until(() => creates.length === 1, 5000, "the hold's create");
    // The client's own create, once the upstream's refusal of the hold's is read.
    await c.next('rate_limits.updated');
    c.send({ type: 'response.create', event_id: 'evt_mine' });
    await until(() => creates.length === 2 || c.events.some((e) => e.type === 'error'), 5000, 'the client create relayed or refused');
    // Old code: the hold's worst case stayed reserved, and this create was refused over the cap.
    expect(c.ofType('error').map((e) => errorCode(e))).toEqual([]);
    expect(creates).toHaveLength(2);
    // Its response ran and ended: the next create fits again. Had the conversation view kept awaiting
    // the refused create, that response would have been paired with it, and this create's own
    // reservation would have stayed held instead.
    await c.next('response.done');
    c.send({ type: 'response.create', event_id: 'evt_mine_2' });
    await until(() => creates.length === 3 || c.events.some((e) => e.type === 'error'), 5000, 'the second client create relayed or refused');
    expect(c.ofType('error').map((e) => errorCode(e))).toEqual([]);
    expect(creates).toHaveLength(3);
  }, 20_000);
});
