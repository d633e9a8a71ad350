import type { SimConnection } from '../../src/simulator/index.js';
import type { TestClient, TestProxy } from '../support/harness.js';

/*
 * What the late-custom-verdict twin tests share: a session with its upstream connection, the items
 * echoed with a text, a round trip that settles every delete sent before it, and the deletes of a
 * set of items on both sides.
 */

export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** A client of tenant `acme` and the simulator connection serving it, after session.created. */
export async function openSession(tp: TestProxy): Promise<{ c: TestClient; sim: SimConnection }> {
  const before = tp.sim.connections.length;
  const c = await tp.client({ tenant: 'acme' });
  await until(() => tp.sim.connections.length > before, 'the upstream connection');
  const sim = tp.sim.connections[before]!;
  await c.next('session.created');
  return { c, sim };
}

/** Ids of the items the client saw added with `text` in them. */
export const echoedWith = (c: TestClient, text: string): string[] =>
  c
    .ofType('conversation.item.added')
    .filter((e) => JSON.stringify(e['item']).includes(JSON.stringify(text)))
    .map((e) => (e['item'] as { id: string }).id);

/**
 * Every delete the proxy sent before now has reached the upstream, and its answer the client: one
 * more item goes round (the upstream answers in order).
 */
export async function settled(c: TestClient): Promise<void> {
  const text = `marker ${c.ofType('conversation.item.added').length}`;
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  await until(() => echoedWith(c, text).length === 1, 'the marker echoed');
}

/** What the upstream was asked to delete, and what the client saw deleted, of these items. */
export function deletesOf(c: TestClient, sim: SimConnection, ids: readonly string[]): { upstream: unknown[]; client: unknown[] } {
  return {
    upstream: sim.received.filter((r) => r.type === 'conversation.item.delete').map((r) => (r.event as Record<string, unknown>)['item_id']).filter((id) => ids.includes(String(id))),
    client: c.ofType('conversation.item.deleted').map((e) => e['item_id']).filter((id) => ids.includes(String(id))),
  };
}
