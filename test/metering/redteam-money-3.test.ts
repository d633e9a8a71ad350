/**
 * Red team (metering, 2026-12-06, twelfth session): the gaps the eleventh left and a further pass. An
 * adversary with a valid tenant key and a tight cap tries to make the upstream bill more than the proxy
 * reserved or billed. Real sockets through the proxy; the simulator where it plays the upstream's part,
 * a scripted upstream where it does not (an MCP server's output, a response streaming while others
 * read the conversation: the simulator's items hold no content until their response is done). The same
 * scenarios against the filter alone: src/metering/filter-twelfth.test.ts.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import type { ReceivedEvent } from '../support/client.js';
import { errorCode, meteredProxy, scriptedMeteredProxy, spend, textUsage, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);
const total = (records: Record<string, unknown>[]) => records.reduce((a, r) => a + (r['costNanos'] as number), 0);
const usage = textUsage;
const sessionCreated = (tools: unknown[] = []) => ({
  type: 'session.created',
  event_id: 'event_s0',
  session: { type: 'realtime', object: 'realtime.session', id: 'sess_scripted', model: 'gpt-realtime', output_modalities: ['text'], max_output_tokens: 'inf', tools, expires_at: 0 },
});
type Event = { type: string; event_id?: string; item?: { id?: string }; response?: { conversation?: string; metadata?: Record<string, string> | null; max_output_tokens?: unknown } };
/** A response object as the upstream reports it. */
const responseOf = (id: string, r: Event['response'], status: string, extra: Record<string, unknown> = {}) => ({
  object: 'realtime.response',
  id,
  status,
  status_details: null,
  output: [],
  conversation_id: r?.conversation === 'none' ? null : 'conv_1',
  output_modalities: ['text'],
  max_output_tokens: r?.max_output_tokens ?? 'inf',
  metadata: r?.metadata ?? null,
  usage: null,
  ...extra,
});
/** The client events other than the proxy's and upstream's bookkeeping the tests do not look at. */
const seen = (events: ReceivedEvent[]) => events.map((e) => (e.type === 'error' ? `error:${errorCode(e)}:${(e['error'] as { event_id?: string }).event_id}` : e.type));

describe('red team 3: a create sent before an MCP call\'s output reaches the proxy', () => {
  /*
   * The MCP server's output joins the conversation (the next response reads it) and no response's
   * usage counts it: metering counted it at the call's `conversation.item.done`. A create the client
   * sends while the call runs is read by the upstream after the calling response is done (had it been
   * read while that response was active, it would have been refused): it reads the output, which the
   * proxy had not seen when it reserved the create. Here the upstream reads the create once the call
   * has returned 100,000 bytes and its response is done (~25,000 tokens, $0.10 at gpt-realtime).
   */
  it('admission worst_case, $0.08 cap: the create is reserved with an MCP output of unknown size (refused), never over the cap', async () => {
    const cap = '0.08';
    const call = { id: 'item_call', type: 'mcp_call', server_label: 'kb', name: 'search', arguments: '{"q":"x"}', approval_request_id: null, error: null };
    const mcpTool = { type: 'mcp', server_label: 'kb', server_url: 'https://mcp.example/sse', require_approval: 'never' };
    const upstreamCreates: Event[] = [];
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws: WebSocket, send) => {
        send(sessionCreated([mcpTool]));
        // The server's tool list, as the upstream makes it for an MCP tool new to the session.
        const list = { id: 'item_list', type: 'mcp_list_tools', server_label: 'kb', tools: [{ name: 'search', description: 'search the kb', input_schema: { type: 'object' } }] };
        send({ type: 'conversation.item.added', event_id: 'event_l0', previous_item_id: null, item: { ...list, tools: [] } });
        send({ type: 'mcp_list_tools.in_progress', event_id: 'event_l1', item_id: list.id });
        send({ type: 'mcp_list_tools.completed', event_id: 'event_l2', item_id: list.id });
        send({ type: 'conversation.item.done', event_id: 'event_l3', previous_item_id: null, item: list });
        let r1: Event['response'] | null = null;
        let r1Done = false;
        const finishR1 = () => {
          if (r1Done || r1 === null) return;
          r1Done = true;
          const output = 'r'.repeat(100_000);
          send({ type: 'response.mcp_call.completed', event_id: 'event_m2', item_id: call.id, output_index: 0 });
          send({ type: 'conversation.item.done', event_id: 'event_m3', previous_item_id: null, item: { ...call, output } });
          send({ type: 'response.output_item.done', event_id: 'event_m4', response_id: 'resp_1', output_index: 0, item: { ...call, output } });
          send({ type: 'response.done', event_id: 'event_m5', response: responseOf('resp_1', r1, 'completed', { output: [{ ...call, output }], usage: usage(20, 10) }) });
        };
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as Event;
          if (ev.type === 'response.create') {
            upstreamCreates.push(ev);
            if (upstreamCreates.length === 1) {
              r1 = ev.response ?? {};
              send({ type: 'response.created', event_id: 'event_c1', response: responseOf('resp_1', r1, 'in_progress') });
              send({ type: 'response.output_item.added', event_id: 'event_m0', response_id: 'resp_1', output_index: 0, item: { ...call, output: null } });
              send({ type: 'response.mcp_call.in_progress', event_id: 'event_m1', item_id: call.id, output_index: 0 });
              return;
            }
            // The call returned and resp_1 finished before the upstream read this create: it runs, reading the MCP output.
            finishR1();
            send({ type: 'response.created', event_id: 'event_c2', response: responseOf('resp_2', ev.response, 'in_progress') });
            send({ type: 'response.done', event_id: 'event_d2', response: responseOf('resp_2', ev.response, 'completed', { usage: usage(25_030, 1) }) });
            return;
          }
          if (ev.type === 'conversation.item.create' && ev.item?.id === 'item_marker') {
            finishR1();
            send({ type: 'conversation.item.done', event_id: 'event_mk', previous_item_id: null, item: { id: 'item_marker', object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: '.' }] } });
          }
        });
      },
      { tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } },
    );
    const c = await tp.client();
    await c.next('session.created');
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === 'item_list', 10_000, 'the MCP tool list');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'look it up' }] } });
    c.send({ type: 'response.create', event_id: 'evt_c1', response: { output_modalities: ['text'], max_output_tokens: 50 } });
    await c.next('response.mcp_call.in_progress', 10_000);
    // While the call runs: the next turn, then a marker (the upstream ends the call's response at the latest there).
    c.send({ type: 'response.create', event_id: 'evt_c2', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    c.send({ type: 'conversation.item.create', item: { id: 'item_marker', type: 'message', role: 'user', content: [{ type: 'input_text', text: '.' }] } });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === 'item_marker', 10_000, 'the marker');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Old code: evt_c2 admitted at ~100 tokens, run by the upstream on 25,030 tokens: $0.1003 against $0.08.
    expect(total(records)).toBeLessThanOrEqual(nanos(cap));
    expect(upstreamCreates).toHaveLength(1);
    expect(records.map((r) => [r['ref'], r['settledBy']])).toEqual([['resp_1', 'response.done']]);
    expect((await spend(tp.adminUrl)).day).toMatchObject({ spentNanos: total(records), reservedUsd: '0.00' });
    expect(seen(c.events)).toEqual([
      'session.created',
      'conversation.item.added',
      'mcp_list_tools.in_progress',
      'mcp_list_tools.completed',
      'conversation.item.done',
      'response.created',
      'response.output_item.added',
      'response.mcp_call.in_progress',
      'error:budget_exceeded:evt_c2',
      'response.mcp_call.completed',
      'conversation.item.done',
      'response.output_item.done',
      'response.done',
      'conversation.item.done',
    ]);
  }, 30_000);
});

describe('red team 3: a server-VAD response the proxy never read', () => {
  /*
   * Server VAD with `create_response` (the default) starts a response for every turn it commits; the
   * response reads the whole conversation. A client fills the conversation with text (free until a
   * response reads it), then sends a spoken turn and its closing silence faster than real time and
   * closes in the same write: the proxy ends the session before it reads the turn's `committed` or
   * the response's `response.created` (nothing runs in its view, so the relay does not linger). The
   * upstream started the response and bills what it read; the proxy billed nothing.
   */
  /** 100,000 characters of text in the conversation, then a spoken turn and its closing silence sent with the close. */
  async function fillerThenTurnAndClose(tp: TestProxy) {
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: { type: 'server_vad' } } } } });
    await c.next('session.updated');
    c.send({ type: 'conversation.item.create', item: { id: 'item_filler', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'abcd'.repeat(25_000) }] } });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === 'item_filler', 10_000, 'the filler');
    for (const ev of appendEvents(speechThenSilence(1000, 800))) c.send(ev);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    return { c, upstream };
  }

  it('100,000 characters of text, a turn, the close: the proxy lingers, clears the buffer, reads the response VAD started and cancels it: billed from its response.done', async () => {
    const tp = await meteredProxy(cleanups, { simulator: { timing: { firstAudioDelayMs: 2_000 } } });
    const { c, upstream } = await fillerThenTurnAndClose(tp);
    // After the client's appends the proxy's own clear; the response VAD started is cancelled at once.
    const fromProxy = upstream.received.map((e) => e.type).filter((t) => t !== 'input_audio_buffer.append');
    expect(fromProxy).toEqual(['session.update', 'conversation.item.create', 'input_audio_buffer.clear', 'response.cancel']);
    expect(upstream.sent.map((e) => e.type).filter((t) => t.startsWith('input_audio_buffer.') || t.startsWith('response.') && !t.includes('delta'))).toEqual(
      expect.arrayContaining(['input_audio_buffer.committed', 'input_audio_buffer.cleared', 'response.created', 'response.done']),
    );
    // Cancelled right after it started: its response.done came before any output delta.
    const responseId = upstream.sent.find((e) => e.type === 'response.done')!.responseId;
    expect(upstream.sent.filter((e) => e.responseId === responseId && e.type.endsWith('.delta'))).toEqual([]);
    expect(seen(c.events)).toEqual(['session.created', 'session.updated', 'conversation.item.added', 'conversation.item.done']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['ref'], r['settledBy'], r['estimated']])).toEqual([['response', responseId, 'response.done', false]]);
    // The 25,000 text tokens it read ($4/M: $0.10), as the upstream reported them.
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(25_000 * 4_000);
  }, 30_000);

  it('100,000 characters of text, a turn, the close, and an upstream that does not answer in time: the response is billed at the close, at least what it read', async () => {
    // No linger (metering.lingerAfterClientCloseMs 0): what the proxy bills when it cannot read the upstream after the client left.
    const tp = await meteredProxy(cleanups, { simulator: { timing: { firstAudioDelayMs: 2_000 } }, metering: { lingerAfterClientCloseMs: 0 } });
    const { c, upstream } = await fillerThenTurnAndClose(tp);
    // The upstream's VAD committed the turn and started its response (which read the 25,000-token filler).
    expect(upstream.sent.map((e) => e.type).filter((t) => t === 'input_audio_buffer.committed' || t === 'response.created')).toEqual(['input_audio_buffer.committed', 'response.created']);
    expect(seen(c.events)).toEqual(['session.created', 'session.updated', 'conversation.item.added', 'conversation.item.done']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['ref'], r['settledBy'], r['estimated']])).toEqual([['response', 'vad:unread-response', 'client_gone_estimate', true]]);
    // At least the 25,000 text tokens it read ($4/M: $0.10); old code: nothing billed.
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(25_000 * 4_000);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(records[0]!['costNanos']);
  }, 30_000);

  it('an honest caller hanging up mid-sentence (speech heard, no turn committed): the proxy clears the buffer and reads that nothing ran: nothing is billed', async () => {
    // Until 2026-12-06 (twelfth session, the estimate at the close) such a caller was billed a whole
    // worst-case response and the turn's transcription, neither of which ran.
    const tp = await meteredProxy(cleanups, { simulator: { timing: { transcriptionDelayMs: 100 } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, turn_detection: { type: 'server_vad' } } } } });
    await c.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(1500, 0))) c.send(ev);
    await c.next('input_audio_buffer.speech_started', 5000);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    expect(upstream.received.map((e) => e.type).filter((t) => t !== 'input_audio_buffer.append')).toEqual(['session.update', 'input_audio_buffer.clear']);
    expect(upstream.sent.map((e) => e.type).filter((t) => t.startsWith('input_audio_buffer.') || t.startsWith('response.'))).toEqual(['input_audio_buffer.speech_started', 'input_audio_buffer.cleared']);
    expect(await usageRecords(tp.adminUrl, '?tenant=acme')).toEqual([]);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(0);
  }, 30_000);

  it('control: a turn spoken in real time, its response read to the end before the close: billed once, from its response.done', async () => {
    const tp = await meteredProxy(cleanups);
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: { type: 'server_vad' } } } } });
    await c.next('session.updated');
    for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
    const doneEv = await c.next('response.done', 10_000);
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['ref'], r['settledBy']])).toEqual([['response', (doneEv['response'] as { id: string }).id, 'response.done']]);
  }, 30_000);
});

describe('red team 3: a reference to an out-of-band response\'s output', () => {
  /*
   * Out-of-band output is not added to the conversation, and an `item_reference` names an item that
   * existed in it: the upstream (the simulator, as OpenAI's API reference says) refuses the reference,
   * `item_not_found`, which releases the create's reservation. (Were one accepted, the reservation
   * counts that output: src/metering/filter-twelfth.test.ts.)
   */
  it('refused upstream (item_not_found); nothing stays reserved, only the first response is billed', async () => {
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: '1' } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'response.create', event_id: 'evt_a', response: { conversation: 'none', output_modalities: ['text'], input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ${'abcd'.repeat(1000)}` }] }] } });
    const first = await c.next('response.done', 10_000);
    const itemId = ((first['response'] as { output: { id: string }[] }).output[0]!).id;
    c.send({ type: 'response.create', event_id: 'evt_ref', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: itemId }] } });
    const refused = await c.waitFor((e) => e.type === 'error', 10_000, 'the reference refused');
    expect([errorCode(refused), (refused['error'] as { event_id: string }).event_id]).toEqual(['item_not_found', 'evt_ref']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['ref'], r['settledBy']])).toEqual([[(first['response'] as { id: string }).id, 'response.done']]);
    await until(async () => (await spend(tp.adminUrl)).day.reservedUsd === '0.00', 5000, 'nothing reserved');
    expect(c.ofType('response.created')).toHaveLength(1);
  }, 30_000);
});

describe('red team 3: out-of-band creates reading the conversation while a response streams into it', () => {
  /*
   * `conversation: "none"` without an `input` list reads the default conversation as it is when the
   * upstream reads the create, a response still streaming into it included (its answer so far). The
   * second pass reserved that output for conversation creates and item references, not for these: each
   * was reserved at the conversation before the answer (a few tokens) and read ~4,000.
   */
  it('admission worst_case, $0.20 cap: 30 creates while a 4,096-token answer streams never take spend over the cap', async () => {
    const cap = '0.20';
    const answered: string[] = [];
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws: WebSocket, send) => {
        send(sessionCreated());
        let story: Event['response'] | null = null;
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as Event;
          if (ev.type === 'response.create' && ev.response?.conversation !== 'none') {
            story = ev.response ?? {};
            send({ type: 'response.created', event_id: 'event_cs', response: responseOf('resp_story', story, 'in_progress') });
            send({ type: 'response.output_item.added', event_id: 'event_as', response_id: 'resp_story', output_index: 0, item: { id: 'item_story', object: 'realtime.item', type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
            return;
          }
          if (ev.type === 'response.create') {
            // The story so far (4,000 tokens) and the 30 before it, read; one token out.
            const id = `resp_oob_${answered.length}`;
            answered.push(id);
            send({ type: 'response.created', event_id: `event_c_${id}`, response: responseOf(id, ev.response, 'in_progress') });
            send({ type: 'response.done', event_id: `event_d_${id}`, response: responseOf(id, ev.response, 'completed', { usage: usage(4_030, 1) }) });
            return;
          }
          if (ev.type === 'conversation.item.create' && ev.item?.id === 'item_marker') {
            send({ type: 'response.done', event_id: 'event_ds', response: responseOf('resp_story', story ?? {}, 'incomplete', { usage: usage(30, 4096) }) });
            send({ type: 'conversation.item.done', event_id: 'event_mk', previous_item_id: null, item: { id: 'item_marker', object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: '.' }] } });
          }
        });
      },
      { tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } },
    );
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'tell a long story' }] } });
    c.send({ type: 'response.create', event_id: 'evt_story', response: { output_modalities: ['text'], max_output_tokens: 4096 } });
    await c.next('response.output_item.added', 10_000);
    const ids = Array.from({ length: 30 }, (_, i) => `evt_oob_${i}`);
    for (const id of ids) c.send({ type: 'response.create', event_id: id, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { n: id } } });
    const settled = (id: string) =>
      c.events.some((e) => (e.type === 'response.done' && (e['response'] as { metadata?: { n?: string } | null }).metadata?.n === id) || (e.type === 'error' && (e['error'] as { event_id?: string }).event_id === id));
    await until(() => ids.every(settled), 20_000, 'every create answered');
    c.send({ type: 'conversation.item.create', item: { id: 'item_marker', type: 'message', role: 'user', content: [{ type: 'input_text', text: '.' }] } });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === 'item_marker', 10_000, 'the marker');
    const served = c.ofType('response.done').filter((e) => (e['response'] as { metadata?: { n?: string } | null }).metadata?.n?.startsWith('evt_oob_')).length;
    const refused = c.ofType('error').filter((e) => errorCode(e) === 'budget_exceeded').length;
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Old code: all 30 served ($0.0161 each) and the story ($0.066): $0.55 against $0.20.
    expect(total(records)).toBeLessThanOrEqual(nanos(cap));
    expect({ served: served > 0, refused: served + refused, upstream: answered.length }).toEqual({ served: true, refused: 30, upstream: served });
    expect(records).toHaveLength(served + 1);
    expect((await spend(tp.adminUrl)).day).toMatchObject({ spentNanos: total(records), reservedUsd: '0.00' });
  }, 30_000);
});

describe('red team 3: an input list naming one model answer many times', () => {
  /*
   * The upstream reads an item as often as an input list names it (the simulator does, and bills each
   * reading). A reference to an item the estimate has no size for (the model's answer) counted the whole
   * conversation, once for the list: 30 references to a 1,000-token answer were reserved at ~2,000
   * tokens and read 30,000.
   */
  it('admission worst_case, $0.10 cap: the create is reserved as 30 readings (refused), never over the cap', async () => {
    const cap = '0.10';
    const tp = await meteredProxy(cleanups, { tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ${'abcd'.repeat(1000)}` }] } });
    c.send({ type: 'response.create', event_id: 'evt_turn', response: { output_modalities: ['text'] } });
    const first = await c.next('response.done', 10_000);
    const answer = ((first['response'] as { output: { id: string }[] }).output[0]!).id;
    c.send({ type: 'response.create', event_id: 'evt_dup', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: Array.from({ length: 30 }, () => ({ type: 'item_reference', id: answer })) } });
    const ev = await c.waitFor((e) => (e.type === 'response.done' && e !== first) || (e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_dup'), 10_000, 'the create answered');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    // Old code: admitted, and the upstream billed ~30,000 tokens read ($0.12) on top of the first turn's $0.02.
    expect(total(records)).toBeLessThanOrEqual(nanos(cap));
    expect(ev.type === 'error' ? errorCode(ev) : ev.type).toBe('budget_exceeded');
    expect(records.map((r) => r['ref'])).toEqual([(first['response'] as { id: string }).id]);
    expect(seen(c.events)).toEqual([
      'session.created',
      'conversation.item.added',
      'conversation.item.done',
      'response.created',
      'response.output_item.added',
      'conversation.item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'conversation.item.done',
      'response.output_item.done',
      'response.done',
      'rate_limits.updated',
      'error:budget_exceeded:evt_dup',
    ]);
  }, 30_000);
});
