/**
 * Red team (metering, fifteenth pass): the calibration mark of a server-started response.
 *
 * A response that reads the default conversation recalibrates metering's estimate at its
 * `response.done`: what was added to the estimate before its mark is taken as read (its usage counts
 * it), what came after stays on top. A client create's mark is taken when the create leaves for the
 * upstream (events are read in order, exact). A server-started (VAD) response's mark is taken when the
 * proxy reads its `response.created`: but the upstream started it earlier, by the time that event has
 * crossed the network. A client item the proxy forwarded in between is read by the upstream after the
 * response started: not in its usage, yet before its mark, so the calibration drops it from the
 * estimate, and every later create reading the conversation is reserved without it.
 *
 * An adversary with a key speaks a turn and sends a 100,000-byte text item as the turn ends; then
 * out-of-band creates without an `input` list (they read the default conversation, in parallel).
 * The guarantee (src/metering/README.md): `admission: worst_case` never passes the cap. Scripted
 * upstream: server VAD commits the turn and starts its response before it reads the item (its
 * `response.created` goes out first, then the item's `conversation.item.added`, as the API orders them).
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { ConversationEstimate } from '../../src/metering/context.js';
import { errorCode, scriptedMeteredProxy, scriptedSession, spend, textUsage, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);
const total = (records: Record<string, unknown>[]) => records.reduce((a, r) => a + (r['costNanos'] as number), 0);

type ClientEvent = { type: string; event_id?: string; item?: Record<string, unknown>; response?: Record<string, unknown> };

/** Tokens an out-of-band response reads once the 100,000-byte item is in the conversation. */
const WITH_ITEM_TOKENS = 25_100;

function vadUpstream(created: ClientEvent[]) {
  return (ws: WebSocket, send: (event: Record<string, unknown>) => void) => {
    let n = 0;
    let turnStarted = false;
    send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession({ type: 'server_vad', create_response: true }) });
    const response = (id: string, r: Record<string, unknown>, status: string, usage: Record<string, unknown> | null) => ({
      object: 'realtime.response',
      id,
      status,
      status_details: null,
      output: [],
      conversation_id: r['conversation'] === 'none' ? null : 'conv_1',
      output_modalities: ['text'],
      max_output_tokens: r['max_output_tokens'] ?? 'inf',
      metadata: r['metadata'] ?? null,
      usage,
    });
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as ClientEvent;
      if (ev.type === 'input_audio_buffer.append') {
        // The turn ends: server VAD commits it and starts its response (its events are on their way).
        if (turnStarted) return;
        turnStarted = true;
        send({ type: 'input_audio_buffer.speech_started', event_id: `event_v${++n}`, audio_start_ms: 0, item_id: 'item_turn' });
        send({ type: 'input_audio_buffer.speech_stopped', event_id: `event_v${++n}`, audio_end_ms: 900, item_id: 'item_turn' });
        send({ type: 'input_audio_buffer.committed', event_id: `event_v${++n}`, previous_item_id: null, item_id: 'item_turn' });
        send({ type: 'conversation.item.added', event_id: `event_v${++n}`, previous_item_id: null, item: { id: 'item_turn', object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] } });
        return;
      }
      if (ev.type === 'conversation.item.create') {
        // Read after the VAD response started: it is not in that response's input.
        send({ type: 'response.created', event_id: `event_c${++n}`, response: response('resp_vad', {}, 'in_progress', null) });
        const item = { ...ev.item, object: 'realtime.item', status: 'completed' };
        send({ type: 'conversation.item.added', event_id: `event_a${++n}`, previous_item_id: 'item_turn', item });
        send({ type: 'conversation.item.done', event_id: `event_d${++n}`, previous_item_id: 'item_turn', item });
        send({ type: 'response.done', event_id: `event_r${++n}`, response: response('resp_vad', {}, 'completed', textUsage(100, 1)) });
        return;
      }
      if (ev.type === 'response.create') {
        created.push(ev);
        const r = ev.response ?? {};
        const id = `resp_${created.length}`;
        send({ type: 'response.created', event_id: `event_c${++n}`, response: response(id, r, 'in_progress', null) });
        send({ type: 'response.done', event_id: `event_r${++n}`, response: response(id, r, 'completed', textUsage(WITH_ITEM_TOKENS, 1)) });
      }
    });
  };
}

describe('red team 15: a client item forwarded while a server-started response\'s response.created is on its way', () => {
  it('admission worst_case, $0.20 cap: out-of-band creates after that response are reserved with the item, never over the cap', async () => {
    const cap = '0.20';
    const created: ClientEvent[] = [];
    const tp = await scriptedMeteredProxy(cleanups, vadUpstream(created), { tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    // The end of a spoken turn, then right behind it the item.
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(4800).toString('base64') });
    c.send({ type: 'conversation.item.create', item: { id: 'item_big', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'abcd'.repeat(25_000) }] } });
    await c.next('response.done', 10_000);
    for (let k = 0; k < 5; k++) c.send({ type: 'response.create', event_id: `evt_oob_${k}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { job: String(k) } } });
    await until(() => c.ofType('response.done').length + c.events.filter((e) => e.type === 'error' && errorCode(e) === 'budget_exceeded').length >= 6, 10_000, 'every create answered');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Old code: the VAD response's calibration dropped the item; all five ran at ~$0.10 each: $0.50 against $0.20.
    expect(total(records)).toBeLessThanOrEqual(nanos(cap));
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(total(records));
  }, 30_000);
});

describe('red team 15: which client events a server-started response read (the estimate alone)', () => {
  const typed = (bytes: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(bytes) }] });

  it('an item create not acknowledged yet is left out of the mark; once its conversation.item.done is read it is in', () => {
    const e = new ConversationEstimate();
    e.onItemCreate({ id: 'item_a', ...typed(1000) });
    expect(e.serverStartMark().text).toBe(0);
    e.itemAcknowledged('item_a');
    expect(e.serverStartMark().text).toBe(1008);
  });

  it('the item.done of a turn the upstream committed acknowledges no client create', () => {
    const e = new ConversationEstimate();
    e.onItemCreate(typed(1000)); // no id: acknowledged by the oldest client item.done without a known id
    e.onCommitted('item_turn', 0);
    e.itemAcknowledged('item_turn');
    // The turn (8 framing tokens) is in the mark; the typed item, still on its way, is not.
    expect(e.serverStartMark().text).toBe(8);
  });

  it('a client commit still on its way is left out of the mark too', () => {
    const e = new ConversationEstimate();
    e.onClientCommit(48_000);
    expect(e.serverStartMark()).toEqual({ text: 0, audio: 0, image: 0 });
    e.onCommitted('item_c', 48_000);
    expect(e.serverStartMark().audio).toBeGreaterThan(0);
  });
});
