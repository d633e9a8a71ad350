import { afterEach, describe, expect, it } from 'vitest';
import { appendEvents, speechThenSilence, type TestClient } from '../support/harness.js';
import { meteredProxy, spend, usageRecords } from './support.js';

/*
 * Red team, sixteenth session (money, many sessions of one tenant): a server-VAD response the proxy
 * cancels at `response.created` over a cap is billed for the conversation it read, and is outside
 * the guarantee because it is bounded: the session that had one cancelled holds its input audio
 * back. But that bound was per session. A tenant opens several sessions (its
 * `maxConcurrentSessions`), puts a large text item in each (free: nothing reads it yet), spends to
 * the cap in one, then speaks one turn in each of the others, one after another: every one started
 * a response that read its whole conversation, cancelled and billed, although the tenant was
 * known to be at its cap after the first. Guarantee broken: past a cap the tenant's spend is
 * bounded by one such response (not one per session it can hold open).
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SESSIONS = 5;
// ~20,000 simulator tokens of text: $0.08 at gpt-realtime's $4/1M text input, for every response reading it.
const BIG = 'lorem ipsum dolor sit amet '.repeat(3000);

async function bigConversation(c: TestClient, id: string): Promise<void> {
  c.send({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: BIG }] } });
  await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === id, 10_000, 'the big item');
}

describe('over a cap, a tenant with several sessions does not pay one cancelled VAD response per session', () => {
  it('after one session had its VAD response cancelled over the cap, the others speaking start no response', async () => {
    const tp = await meteredProxy(cleanups, {
      metering: { admission: 'worst_case' },
      tenants: { acme: { limits: { dailyUsd: '0.15', maxResponseOutputTokens: 16, maxConcurrentSessions: SESSIONS } } },
    });
    const clients: TestClient[] = [];
    for (let i = 0; i < SESSIONS; i++) {
      const c = await tp.client();
      await c.next('session.created');
      await bigConversation(c, `item_big_${i}`);
      clients.push(c);
    }
    // Session 0 spends most of the cap with one text answer reading its conversation (~$0.08).
    clients[0]!.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    const first = await clients[0]!.waitFor((e) => e.type === 'response.done' || e.type === 'error', 10_000, 'the first answer');
    expect(first.type).toBe('response.done');
    const afterFirst = Number((await spend(tp.adminUrl)).day.spentUsd);

    // Every other session speaks one turn, one after the other; each turn's VAD response (if one
    // starts) is cancelled over the cap and its response.done read before the next session speaks.
    let started = 0;
    for (let i = 1; i < SESSIONS; i++) {
      const c = clients[i]!;
      for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
      // A marker item after the audio: once it is done, the upstream has read (or never got) the turn.
      const marker = `item_marker_${i}`;
      c.send({ type: 'conversation.item.create', item: { id: marker, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
      await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === marker, 10_000, 'marker item');
      if (c.ofType('response.created').length > 0) {
        started++;
        await c.next('response.done', 10_000);
      }
    }
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    const spent = Number((await spend(tp.adminUrl)).day.spentUsd);
    // One cancelled VAD response past the cap, not one per session. Before the fix: 4 started,
    // 4 cancelled responses each billed ~$0.08 for the conversation they read (spend ~$0.40 on a $0.15 cap).
    expect(started).toBeLessThanOrEqual(1);
    expect(records.filter((r) => r['status'] === 'cancelled').length).toBeLessThanOrEqual(1);
    expect(spent - afterFirst).toBeLessThan(0.1);
    for (const c of clients) c.close();
  });
});
