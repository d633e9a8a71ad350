/**
 * Red team 23 (bounds): an upstream (a broken Azure deployment, a man in the middle of a plain-ws
 * upstream) that sends `response.created` after `response.created` without any `response.done`
 * grew the conversation view's running responses (and every filter that walks them, metering's
 * close among them) without limit: 2,000 of them were all relayed, all held. The view runs at most
 * MAX_RUNNING_RESPONSES at once (src/protocol/conversation.ts); the upstream past it ends the session
 * (`upstream_protocol_violation`, close 1011), the frame that went past it is not relayed, and every
 * response still running is billed once: at its reservation, or at a server-started response's
 * worst case for the one metering never read.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_LISTED_ITEMS, MAX_RUNNING_RESPONSES } from '../../src/protocol/conversation.js';
import { keptId, MAX_KEPT_ID_CHARS } from '../../src/protocol/json.js';
import { scriptedMeteredProxy, scriptedResponse, scriptedSession, until, usageRecords } from './support.js';
import type { TestProxy } from '../support/harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A proxy whose upstream answers the client's first item create with `burst` (then keeps reading). */
async function burstProxy(burst: (send: (event: Record<string, unknown>) => void) => void): Promise<{ tp: TestProxy; upstreamClosed: Promise<void> }> {
  let closed: () => void = () => undefined;
  const upstreamClosed = new Promise<void>((resolve) => (closed = resolve));
  const tp = await scriptedMeteredProxy(
    cleanups,
    (ws: WebSocket, send) => {
      ws.once('close', () => closed());
      send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
      ws.on('message', (data) => {
        if ((JSON.parse(String(data)) as { type: string }).type === 'conversation.item.create') burst(send);
      });
    },
    { tenants: { acme: { limits: { dailyUsd: 10_000 } } } },
  );
  return { tp, upstreamClosed };
}

const item = { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } };

async function billed(tp: TestProxy, n: number): Promise<Record<string, unknown>[]> {
  await until(() => tp.logs.some((l) => l.msg === 'session end'), 10_000, 'the session ended');
  await until(async () => (await usageRecords(tp.adminUrl, '?tenant=acme')).length >= n, 10_000, `${n} records`);
  return await usageRecords(tp.adminUrl, '?tenant=acme');
}

describe('red team 23: an upstream that starts responses and never ends them', () => {
  it(`ends the session past ${MAX_RUNNING_RESPONSES} running responses, relays none past the bound, and bills each running one once`, async () => {
    const SENT = 2000;
    const { tp, upstreamClosed } = await burstProxy((send) => {
      for (let i = 0; i < SENT; i++) send({ type: 'response.created', event_id: `event_c${i}`, response: scriptedResponse(`resp_${i}`, 'in_progress') });
    });
    const c = await tp.client();
    await c.next('session.created');
    c.send(item);
    const close = await c.closed;
    await upstreamClosed;

    // Every byte the client got: the session, the responses up to the bound, the error, the close.
    const started = Array.from({ length: MAX_RUNNING_RESPONSES }, (_, i) => ({ type: 'response.created', event_id: `event_c${i}`, response: scriptedResponse(`resp_${i}`, 'in_progress') }));
    expect(c.events.slice(1, -1)).toEqual(started);
    expect(c.events[0]?.type).toBe('session.created');
    const error = c.events.at(-1)!;
    expect(error).toEqual({
      type: 'error',
      event_id: expect.any(String) as string,
      error: {
        type: 'server_error',
        code: 'upstream_protocol_violation',
        message: `The Realtime upstream went past a bound the proxy keeps (running_responses: ${MAX_RUNNING_RESPONSES}); the session was ended.`,
        param: null,
        event_id: null,
        details: { bound: 'running_responses', limit: MAX_RUNNING_RESPONSES },
      },
    });
    expect(close).toEqual({ code: 1011, reason: 'upstream_protocol_violation' });

    // The bound plus the one past it ran upstream: each billed once, at its worst case (estimated).
    const records = await billed(tp, MAX_RUNNING_RESPONSES + 1);
    expect(records).toHaveLength(MAX_RUNNING_RESPONSES + 1);
    const refs = records.map((r) => r['ref']).sort();
    expect(refs).toEqual(Array.from({ length: MAX_RUNNING_RESPONSES + 1 }, (_, i) => `resp_${i}`).sort());
    expect(new Set(records.map((r) => `${String(r['estimated'])}:${String(r['settledBy'])}`))).toEqual(new Set(['true:session_end_estimate']));
    // The one past the bound, never read by metering, at a server-started response's worst case: as much as those it held.
    const cost = (ref: string) => records.find((r) => r['ref'] === ref)!['costNanos'];
    expect(cost(`resp_${MAX_RUNNING_RESPONSES}`)).toBe(cost('resp_0'));
    expect(tp.logs.filter((l) => l.msg === 'the upstream went past a bound of the conversation view: ending the session')).toHaveLength(1);
  });

  it(`ends the session past ${MAX_LISTED_ITEMS} output items listed by the running responses, billing the response once`, async () => {
    const { tp, upstreamClosed } = await burstProxy((send) => {
      send({ type: 'response.created', event_id: 'event_c', response: scriptedResponse('resp_many', 'in_progress') });
      for (let i = 0; i <= MAX_LISTED_ITEMS + 10; i++) {
        send({ type: 'response.output_item.added', event_id: `event_i${i}`, response_id: 'resp_many', output_index: i, item: { id: `item_${i}`, object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] } });
      }
    });
    const c = await tp.client();
    await c.next('session.created');
    c.send(item);
    const close = await c.closed;
    await upstreamClosed;
    expect(close).toEqual({ code: 1011, reason: 'upstream_protocol_violation' });
    expect(c.events.map((e) => e.type)).toEqual(['session.created', 'response.created', ...Array<string>(MAX_LISTED_ITEMS).fill('response.output_item.added'), 'error']);
    expect(c.ofType('response.output_item.added').map((e) => (e['item'] as { id: string }).id)).toEqual(Array.from({ length: MAX_LISTED_ITEMS }, (_, i) => `item_${i}`));
    expect((c.events.at(-1)!['error'] as Record<string, unknown>)['details']).toEqual({ bound: 'response_items', limit: MAX_LISTED_ITEMS });
    const records = await billed(tp, 1);
    expect(records.map((r) => [r['ref'], r['estimated'], r['settledBy']])).toEqual([['resp_many', true, 'session_end_estimate']]);
  });

  it(`ends the session at an item id past ${MAX_KEPT_ID_CHARS} characters, which is not relayed; the running response is billed once`, async () => {
    const long = `item_${'x'.repeat(1024 * 1024)}`;
    const { tp, upstreamClosed } = await burstProxy((send) => {
      send({ type: 'response.created', event_id: 'event_c', response: scriptedResponse('resp_1', 'in_progress') });
      send({ type: 'response.output_item.added', event_id: 'event_i', response_id: 'resp_1', output_index: 0, item: { id: long, object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] } });
    });
    const c = await tp.client();
    await c.next('session.created');
    c.send(item);
    const close = await c.closed;
    await upstreamClosed;
    expect(close).toEqual({ code: 1011, reason: 'upstream_protocol_violation' });
    expect(c.events.map((e) => e.type)).toEqual(['session.created', 'response.created', 'error']);
    expect((c.events.at(-1)!['error'] as Record<string, unknown>)['details']).toEqual({ bound: 'id_length', limit: MAX_KEPT_ID_CHARS });
    const records = await billed(tp, 1);
    expect(records.map((r) => [r['ref'], r['estimated'], r['settledBy']])).toEqual([['resp_1', true, 'session_end_estimate']]);
  });
});

describe('red team 23: a response id longer than any kept', () => {
  it('ends the session at its response.created, not relayed; the response (it started) is billed once under its hash', async () => {
    const long = `resp_${'y'.repeat(1024 * 1024)}`;
    const { tp, upstreamClosed } = await burstProxy((send) => {
      send({ type: 'response.created', event_id: 'event_c', response: scriptedResponse(long, 'in_progress') });
    });
    const c = await tp.client();
    await c.next('session.created');
    c.send(item);
    const close = await c.closed;
    await upstreamClosed;
    expect(close).toEqual({ code: 1011, reason: 'upstream_protocol_violation' });
    expect(c.events.map((e) => e.type)).toEqual(['session.created', 'error']);
    expect((c.events.at(-1)!['error'] as Record<string, unknown>)['details']).toEqual({ bound: 'id_length', limit: MAX_KEPT_ID_CHARS });
    const records = await billed(tp, 1);
    expect(records.map((r) => [r['ref'], r['estimated'], r['settledBy']])).toEqual([[keptId(long), true, 'session_end_estimate']]);
  });
});

describe('red team 23: a client that starts more responses than the proxy lets run at once', () => {
  it(`refuses the response.create past ${MAX_RUNNING_RESPONSES} running or starting (too_many_responses), before anything is reserved; the session goes on`, async () => {
    const received: string[] = [];
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws: WebSocket, send) => {
        send({ type: 'session.created', event_id: 'event_s0', session: scriptedSession() });
        // An upstream that starts nothing yet: every create waits for its response.created.
        ws.on('message', (data) => {
          const ev = JSON.parse(String(data)) as { type: string };
          received.push(ev.type);
          if (ev.type === 'session.update') send({ type: 'session.updated', event_id: 'event_u', session: scriptedSession() });
        });
      },
      // No linger for the 64 creates never answered: the close ends the session at once.
      { tenants: { acme: { limits: { dailyUsd: 10_000 } } }, metering: { lingerAfterClientCloseMs: 0 } },
    );
    const c = await tp.client();
    await c.next('session.created');
    for (let i = 0; i < MAX_RUNNING_RESPONSES + 2; i++) c.send({ type: 'response.create', event_id: `evt_create_${i}`, response: { conversation: 'none', output_modalities: ['text'] } });
    // The session goes on: an update after them is answered.
    c.send({ type: 'session.update', event_id: 'evt_update', session: { type: 'realtime', instructions: 'still here' } });
    await c.next('session.updated');
    expect(received.filter((t) => t === 'response.create')).toHaveLength(MAX_RUNNING_RESPONSES);
    const refused = {
      type: 'error',
      event_id: expect.any(String) as string,
      error: {
        type: 'rate_limit_error',
        code: 'too_many_responses',
        message: `${MAX_RUNNING_RESPONSES} responses are running or starting on this session; the proxy allows ${MAX_RUNNING_RESPONSES} at once. The response.create was not sent upstream.`,
        param: null,
        details: { limit: MAX_RUNNING_RESPONSES },
      },
    };
    // Every event the client got: the session, the two refusals (its own ids), the update's answer.
    expect(c.events).toEqual([
      expect.objectContaining({ type: 'session.created' }),
      { ...refused, error: { ...refused.error, event_id: `evt_create_${MAX_RUNNING_RESPONSES}` } },
      { ...refused, error: { ...refused.error, event_id: `evt_create_${MAX_RUNNING_RESPONSES + 1}` } },
      expect.objectContaining({ type: 'session.updated' }),
    ]);
    c.close();
    await c.closed;
  });
});
