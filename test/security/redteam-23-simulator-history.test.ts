import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIMULATOR_KEY, type ProxyHandle } from '../../src/main.js';
import { Connection, MAX_CONVERSATION_BYTES, MAX_INPUT_AUDIO_BYTES } from '../../src/simulator/connection.js';
import type { SimulatorHandle } from '../../src/simulator/index.js';
import { OFFER } from '../calls/support.js';
import { embeddedSimulatorProxy } from '../support/embedded-simulator.js';
import { TestClient } from '../support/harness.js';

/**
 * Red team (a tenant key, the embedded simulator as `npm start` runs it): sessions come and go.
 *
 * The simulator kept, for its tests, every event each connection received (appended audio included,
 * base64 and all) and sent, and every connection after it closed. The proxy's embedded simulator
 * (`npm start` without OPENAI_API_KEY, the demo) kept them too, in the proxy's own process, for its
 * whole life: every session a tenant opened, and every byte of audio it streamed, stayed held (an
 * hour of microphone audio is ~150 MB), and no budget saw it. Rules broken: every buffer has a byte
 * budget; one tenant cannot exhaust memory for the others. Now the embedded simulator keeps no
 * history unless its caller asks (the test harness does); asserted on what the simulator exposes
 * (its connections, their records), not on timing.
 */

const KEY = 'rpk_redteam23_history_0123456789';
const SESSIONS = 6;
/** Appended per session: 8 frames of 64 KiB of PCM (~87 KB of base64 each). */
const FRAMES = 8;
const FRAME = Buffer.alloc(64 * 1024, 1).toString('base64');

let proxy: ProxyHandle;
let sim: SimulatorHandle;

beforeAll(async () => {
  ({ proxy, sim } = await embeddedSimulatorProxy(KEY));
});

afterAll(async () => {
  await proxy.shutdown(0);
});

function client(): TestClient {
  return new TestClient(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
}

async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('red team 23: the embedded simulator and sessions that come and go', () => {
  it(`${SESSIONS} sessions streaming audio, then gone: the simulator holds none of them, nor any record of their events`, async () => {
    for (let s = 0; s < SESSIONS; s++) {
      const c = client();
      await c.opened;
      await c.next('session.created');
      for (let f = 0; f < FRAMES; f++) c.send({ type: 'input_audio_buffer.append', audio: FRAME });
      // A marker the upstream answers after every append (it handles events in order).
      c.send({ type: 'session.update', session: { type: 'realtime', instructions: `marker ${s}` } });
      const updated = await c.next('session.updated');
      expect((updated['session'] as { instructions: string }).instructions).toBe(`marker ${s}`);
      // While the session is open: it is listed, and nothing it received or was sent is recorded.
      expect(sim.connections).toHaveLength(1);
      expect(sim.connections[0]!.received).toHaveLength(0);
      expect(sim.connections[0]!.sent).toHaveLength(0);
      c.close();
      expect((await c.closed).code).toBe(1000);
      await until('the simulator to let the closed connection go', () => sim.connections.length === 0);
    }
    expect(sim.connections).toHaveLength(0);
  }, 60_000);
});

describe('red team 23: the embedded simulator and calls that come and go', () => {
  it('a call hung up is let go once the next call is created: the simulator holds the live calls only', async () => {
    const base = sim.url.replace(/^ws/, 'http').replace(/\/v1\/realtime$/, '');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const form = new FormData();
      form.set('sdp', OFFER);
      form.set('session', JSON.stringify({ type: 'realtime', model: 'gpt-realtime' }));
      const created = await fetch(`${base}/v1/realtime/calls`, { method: 'POST', headers: { authorization: `Bearer ${SIMULATOR_KEY}` }, body: form });
      expect(created.status).toBe(201);
      const id = created.headers.get('location')!.split('/').pop()!;
      ids.push(id);
      // Only this call is held: every one before it was hung up.
      expect([...sim.calls.calls.keys()]).toEqual([id]);
      const hungUp = await fetch(`${base}/v1/realtime/calls/${id}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${SIMULATOR_KEY}` } });
      expect(hungUp.status).toBe(200);
    }
    expect(new Set(ids).size).toBe(5);
  });
});

describe('red team 23: the embedded simulator and one session that sends without end', () => {
  const MiB = 1024 * 1024;

  it('text items past 64 MiB: the oldest are forgotten (retrieve: item_not_found), the newest kept whole', async () => {
    const c = client();
    await c.opened;
    await c.next('session.created');
    const ITEMS = 9;
    const text = (i: number) => `${i} `.padEnd(8 * MiB, 'x');
    for (let i = 0; i < ITEMS; i++) c.send({ type: 'conversation.item.create', item: { id: `item_big_${i}`, type: 'message', role: 'user', content: [{ type: 'input_text', text: text(i) }] } });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === `item_big_${ITEMS - 1}`, 60_000, 'the last item');
    expect(sim.connections).toHaveLength(1);
    const conn = sim.connections[0];
    expect(conn).toBeInstanceOf(Connection);
    expect((conn as Connection).heldBytes).toBeLessThanOrEqual(MAX_CONVERSATION_BYTES);
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_first', item_id: 'item_big_0' });
    const first = await c.waitFor((e) => e.type === 'error' || e.type === 'conversation.item.retrieved', 20_000, 'the first item retrieved');
    expect(first.type).toBe('error');
    expect(first['error']).toMatchObject({ code: 'item_not_found', event_id: 'evt_first' });
    c.send({ type: 'conversation.item.retrieve', event_id: 'evt_last', item_id: `item_big_${ITEMS - 1}` });
    const last = await c.next('conversation.item.retrieved', 20_000);
    const item = last['item'] as { id: string; content: { text: string }[] };
    expect(item.id).toBe(`item_big_${ITEMS - 1}`);
    expect(item.content[0]!.text).toBe(text(ITEMS - 1));
    c.close();
    expect((await c.closed).code).toBe(1000);
    await until('the simulator to let the closed connection go', () => sim.connections.length === 0);
  }, 120_000);

  it('appended audio past 64 MiB without turn detection: the buffer keeps the newest, within the bound', async () => {
    const c = client();
    await c.opened;
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.next('session.updated');
    const frame = Buffer.alloc(11 * MiB, 3).toString('base64');
    for (let i = 0; i < 7; i++) c.send({ type: 'input_audio_buffer.append', audio: frame });
    c.send({ type: 'session.update', session: { type: 'realtime', instructions: 'marker' } });
    const marker = await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as { instructions?: string }).instructions === 'marker', 60_000, 'the marker');
    expect(marker.type).toBe('session.updated');
    // This session's connection: the newest.
    const conn = sim.connections[sim.connections.length - 1];
    expect(conn).toBeInstanceOf(Connection);
    // 77 MiB appended, nothing committed: the newest whole frames that fit.
    expect((conn as Connection).heldBytes).toBeLessThanOrEqual(MAX_INPUT_AUDIO_BYTES);
    expect((conn as Connection).heldBytes).toBeGreaterThan(MAX_INPUT_AUDIO_BYTES - 11 * MiB);
    c.close();
    expect((await c.closed).code).toBe(1000);
    await until('the simulator to let the closed connection go', () => sim.connections.length === 0);
  }, 120_000);
});
