import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyHandle } from '../../src/main.js';
import { Connection, MAX_CONVERSATION_BYTES } from '../../src/simulator/connection.js';
import type { SimulatorHandle } from '../../src/simulator/index.js';
import { embeddedSimulatorProxy } from '../support/embedded-simulator.js';
import { TestClient } from '../support/harness.js';

/**
 * Red team 23b (a tenant key, the embedded simulator as `npm start` runs it): MCP servers named
 * without end.
 *
 * The simulator bounds a session's conversation at MAX_CONVERSATION_BYTES by forgetting its oldest
 * settled items. The `mcp_list_tools` item it adds for each new MCP server of a session.update was
 * never counted (nor could it be forgotten), and the server's tool names (`allowed_tools`, as the
 * client wrote them) were kept for the session's life besides: a session.update naming a new server
 * with megabytes of tool names, again and again, grew the proxy's own process without bound. Now a
 * list item counts once listed, is forgotten like any other item past the bound, and its server's
 * names go with it.
 */

const KEY = 'rpk_redteam23b_mcp_lists_0123456';
const MiB = 1024 * 1024;

let proxy: ProxyHandle;
let sim: SimulatorHandle;

beforeAll(async () => {
  ({ proxy, sim } = await embeddedSimulatorProxy(KEY));
});

afterAll(async () => {
  await proxy.shutdown(0);
});

describe('red team 23b: the embedded simulator and MCP servers named without end', () => {
  it('tool lists past 64 MiB: the oldest list is forgotten (retrieve: item_not_found), the newest kept', async () => {
    const c = new TestClient(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
    await c.opened;
    await c.next('session.created');
    // 4 MiB of tool names per server: 18 servers are 72 MiB.
    const SERVERS = 18;
    const names = (s: number): string[] => Array.from({ length: 4096 }, (_, k) => `tool_${s}_${k}_`.padEnd(1024, 'n'));
    const listIds: string[] = [];
    for (let s = 0; s < SERVERS; s++) {
      c.send({ type: 'session.update', session: { type: 'realtime', tools: [{ type: 'mcp', server_label: `srv${s}`, server_url: 'https://mcp.example/', allowed_tools: names(s) }] } });
      const added = await c.waitFor((e) => e.type === 'conversation.item.added' && (e['item'] as { server_label?: string }).server_label === `srv${s}`, 30_000, `list ${s}`);
      listIds.push((added['item'] as { id: string }).id);
      await c.waitFor((e) => e.type === 'mcp_list_tools.completed' && e['item_id'] === listIds[s], 30_000, `list ${s} completed`);
    }
    const conn = sim.connections[sim.connections.length - 1];
    expect(conn).toBeInstanceOf(Connection);
    expect((conn as Connection).heldBytes).toBeLessThanOrEqual(MAX_CONVERSATION_BYTES);
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_first', item_id: listIds[0] });
    const first = await c.waitFor((e) => e.type === 'error' || e.type === 'conversation.item.retrieved', 20_000, 'the first list retrieved');
    // Old code: conversation.item.retrieved, its 4 MiB of names and all.
    expect(first.type).toBe('error');
    expect(first['error']).toMatchObject({ code: 'item_not_found', event_id: 'evt_first' });
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_last', item_id: listIds[SERVERS - 1] });
    const last = await c.next('conversation.item.retrieved', 20_000);
    const tools = (last['item'] as { tools: { name: string }[] }).tools.map((t) => t.name);
    expect(tools).toEqual(names(SERVERS - 1));
    // srv0's names went with its list: named again, it is listed again (a new item).
    c.send({ type: 'session.update', session: { type: 'realtime', tools: [{ type: 'mcp', server_label: 'srv0', server_url: 'https://mcp.example/', allowed_tools: ['echo'] }] } });
    const relisted = await c.waitFor((e) => e.type === 'conversation.item.added' && (e['item'] as { server_label?: string; id: string }).server_label === 'srv0' && (e['item'] as { id: string }).id !== listIds[0], 30_000, 'srv0 listed again');
    await c.waitFor((e) => e.type === 'mcp_list_tools.completed' && e['item_id'] === (relisted['item'] as { id: string }).id, 30_000, 'srv0 listed again, completed');
    expect((conn as Connection).heldBytes).toBeLessThanOrEqual(MAX_CONVERSATION_BYTES);
    c.close();
    expect((await c.closed).code).toBe(1000);
  }, 180_000);

  it('servers it cannot reach, each with a 4 MiB label, past 64 MiB: the oldest failed list is forgotten too', async () => {
    const c = new TestClient(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
    await c.opened;
    await c.next('session.created');
    const SERVERS = 18;
    const label = (s: number): string => `srv${s}_`.padEnd(4 * MiB, 'l');
    const listIds: string[] = [];
    for (let s = 0; s < SERVERS; s++) {
      // No server_url nor connector_id: its list fails.
      c.send({ type: 'session.update', session: { type: 'realtime', tools: [{ type: 'mcp', server_label: label(s) }] } });
      const added = await c.waitFor((e) => e.type === 'conversation.item.added' && (e['item'] as { server_label?: string }).server_label === label(s), 30_000, `list ${s}`);
      listIds.push((added['item'] as { id: string }).id);
      await c.waitFor((e) => e.type === 'mcp_list_tools.failed' && e['item_id'] === listIds[s], 30_000, `list ${s} failed`);
    }
    const conn = sim.connections[sim.connections.length - 1];
    expect(conn).toBeInstanceOf(Connection);
    expect((conn as Connection).heldBytes).toBeLessThanOrEqual(MAX_CONVERSATION_BYTES);
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_first', item_id: listIds[0] });
    const first = await c.waitFor((e) => e.type === 'error' || e.type === 'conversation.item.retrieved', 20_000, 'the first list retrieved');
    // Old code: conversation.item.retrieved, its 4 MiB label and all.
    expect(first.type).toBe('error');
    expect(first['error']).toMatchObject({ code: 'item_not_found', event_id: 'evt_first' });
    c.close();
    expect((await c.closed).code).toBe(1000);
  }, 180_000);
});
