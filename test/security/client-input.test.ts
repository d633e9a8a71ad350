import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/** Hostile client frames: each gets an error event, nothing reaches the upstream, the session goes on. */

describe('client input', () => {
  let tp: TestProxy;

  beforeAll(async () => {
    tp = await startTestProxy({ config: { server: { maxJsonDepth: 32 } } });
  });

  afterAll(async () => {
    await tp?.stop();
  });

  it('an event nested deeper than server.maxJsonDepth gets invalid_event and is not relayed; the session continues', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    const receivedBefore = conn.received.length;
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    // Deep in a sniffable event, and deep in one the sniffer hands to the parser.
    c.send(`{"type":"conversation.item.create","event_id":"evt_deep","item":{"type":"message","role":"user","content":${deep(100_000)}}}`);
    c.send(`{"event_id":"evt_deep2","x":${deep(5_000)},"type":"session.update"}`);
    await c.nth('error', 2);
    const errors = c.ofType('error').map((e) => e['error'] as { code: string; message: string; event_id: string | null });
    expect(errors.map((e) => e.code)).toEqual(['invalid_event', 'invalid_event']);
    expect(errors.map((e) => e.event_id)).toEqual(['evt_deep', 'evt_deep2']);
    expect(errors[0]!.message).toContain('32');
    // Depth inside strings does not count.
    c.send({ type: 'conversation.item.create', event_id: 'evt_flat', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: '[[[[[[[[[['.repeat(1000) }] } });
    c.say('say: still fine');
    expect(((await c.next('response.done'))['response'] as { status: string }).status).toBe('completed');
    expect(c.ofType('error')).toHaveLength(2);
    // Relayed events carry the proxy's event_ids (Conversation.stamp): they are told apart by content.
    // Exactly the flat item, then c.say's item and create: neither deep event (a session.update, an item) went up.
    const relayed = conn.received.slice(receivedBefore).map((r) => r.event as { type: string; item?: { content: { text: string }[] } });
    expect(relayed.map((e) => e.type)).toEqual(['conversation.item.create', 'conversation.item.create', 'response.create']);
    expect(relayed.map((e) => e.item?.content[0]!.text)).toEqual(['[[[[[[[[[['.repeat(1000), 'say: still fine', undefined]);
    c.close();
  });
});
