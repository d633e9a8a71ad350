import WebSocket, { type RawData } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { scriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { noonClock } from '../support/clock.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { ADMIN_KEY, errorCode, spend } from './support.js';

/*
 * Clients choose event ids freely, and an input audio append is never read while no create waits,
 * so an append may carry the event_id of a session.update the client sends next. Until 2026-12-05
 * the update went upstream with the client's id, and the upstream's error about the append (invalid
 * audio) was taken for the update's refusal: metering dropped its guess of the update (here a larger
 * max_output_tokens) while the upstream had still to apply it, and a create sent before the
 * session.updated came was reserved on the old limit. Every session.update (and conversation.item.create)
 * now leaves with an id of the proxy's, as creates do.
 *
 * Real client, the simulator behind a relay on loopback that can hold the simulator's events from
 * its next session.updated on (a slow upstream, made deterministic), the real SQLite ledger.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A relay between the proxy and the simulator; `hold()` queues everything the simulator sends from its next session.updated until `release()`. */
async function gatedSimulator(): Promise<{ url: string; sim: SimulatorHandle; upstreamTypes: string[]; hold(): void; release(): void }> {
  const sim = await startSimulator({ timing: { deltaIntervalMs: 5 } });
  cleanups.push(() => sim.close());
  let holding = false;
  let held: string[] | null = null;
  let toProxy: WebSocket | null = null;
  const upstreamTypes: string[] = [];
  const up = await scriptedUpstream((proxySide) => {
    toProxy = proxySide;
    const simSide = new WebSocket(`${sim.url}?model=gpt-realtime`);
    const early: RawData[] = [];
    simSide.on('open', () => {
      for (const m of early.splice(0)) simSide.send(m.toString('utf8'));
    });
    simSide.on('error', () => undefined);
    simSide.on('close', () => proxySide.close());
    proxySide.on('close', () => simSide.close());
    proxySide.on('message', (data: RawData) => {
      upstreamTypes.push((JSON.parse(data.toString('utf8')) as { type: string }).type);
      if (simSide.readyState === WebSocket.OPEN) simSide.send(data.toString('utf8'));
      else early.push(data);
    });
    simSide.on('message', (data: RawData) => {
      const text = data.toString('utf8');
      if (held === null && holding && (JSON.parse(text) as { type: string }).type === 'session.updated') held = [];
      if (held !== null) held.push(text);
      else proxySide.send(text);
    });
  });
  cleanups.push(() => up.close());
  return {
    url: up.url,
    sim,
    upstreamTypes,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const m of held ?? []) toProxy?.send(m);
      held = null;
    },
  };
}

async function proxyTo(url: string, cap: string): Promise<TestProxy> {
  const tp = await startTestProxy({
    tenants: { acme: { limits: { dailyUsd: cap } } },
    start: { clock: noonClock() },
    config: {
      upstream: { provider: 'openai', url, apiKey: 'sk-x' },
      admin: { key: ADMIN_KEY },
      metering: { admission: 'worst_case', ledger: { path: ':memory:' } },
    },
  });
  cleanups.push(() => tp.stop());
  return tp;
}

async function until(cond: () => boolean, label: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const errorAbout = (id: string) => (e: Record<string, unknown>) => e['type'] === 'error' && (e['error'] as { event_id?: string }).event_id === id;

describe('event_id collision between an unread audio append and a session.update (found 2026-12-05)', () => {
  it("the append's error does not answer the update: until its session.updated comes, a create is reserved on the limit it asked, so one over the cap is refused", async () => {
    // 100 output tokens of audio fit ($0.0064 at $64/M), 4,096 do not ($0.26).
    const gate = await gatedSimulator();
    const tp = await proxyTo(gate.url, '0.05');
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', event_id: 'evt_small', session: { type: 'realtime', max_output_tokens: 100 } });
    await c.next('session.updated');
    // From here the simulator's session.updated (and all after it) waits: a slow upstream.
    gate.hold();
    // Invalid audio (not a string), left unread; then an update with the same id.
    c.send('{"type":"input_audio_buffer.append","event_id":"evt_dup","audio":5}');
    c.send({ type: 'session.update', event_id: 'evt_dup', session: { type: 'realtime', max_output_tokens: 4096 } });
    const appendError = await c.waitFor(errorAbout('evt_dup'), 5000, "the append's error");
    expect(appendError['error']).toMatchObject({ param: 'audio' });
    // The upstream read the update (its session.updated waits in the relay): it applies before any
    // later create, so a create now would run with up to 4,096 tokens: its worst case does not fit.
    expect(gate.sim.connections[0]!.received.map((r) => r.type)).toContain('session.update');
    c.send({ type: 'response.create', event_id: 'evt_create' });
    await until(() => c.ofType('error').some(errorAbout('evt_create')) || gate.upstreamTypes.includes('response.create'), 'the create refused, or sent upstream');
    expect(gate.upstreamTypes).not.toContain('response.create');
    expect(errorCode(c.ofType('error').find(errorAbout('evt_create'))!)).toBe('budget_exceeded');
    // The update's answer arrives: the client reads it, and the limit is known from then on.
    gate.release();
    const updated = await c.nth('session.updated', 2, 5000);
    expect((updated['session'] as { max_output_tokens: unknown }).max_output_tokens).toBe(4096);
    c.send({ type: 'response.create', event_id: 'evt_again' });
    expect(errorCode(await c.waitFor(errorAbout('evt_again'), 5000, 'the second create'))).toBe('budget_exceeded');
    expect(gate.upstreamTypes).not.toContain('response.create');
    expect(c.ofType('response.created')).toHaveLength(0);
    const day = (await spend(tp.adminUrl)).day;
    expect([day.spentUsd, day.reservedUsd]).toEqual(['0.00', '0.00']);
    // Both updates went upstream with ids of the proxy's, distinct, never the client's.
    const updates = gate.sim.connections[0]!.received.filter((r) => r.type === 'session.update').map((r) => (r.event as { event_id: string }).event_id);
    expect(updates).toEqual([expect.stringMatching(/^event_proxy_\w+_[0-9a-f]{12}$/), expect.stringMatching(/^event_proxy_\w+_[0-9a-f]{12}$/)]);
    expect(new Set(updates).size).toBe(2);
  }, 30_000);

  it("an upstream error about the update itself reaches the client with the client's own event_id", async () => {
    const gate = await gatedSimulator();
    const tp = await proxyTo(gate.url, '5');
    const c = await tp.client();
    await c.next('session.created');
    // The simulator refuses an unknown member, naming the event that carried it.
    c.send({ type: 'session.update', event_id: 'evt_mine', session: { type: 'realtime', bogus_field: 1 } });
    const refused = await c.waitFor((e) => e.type === 'error', 5000, "the update's refusal");
    expect(refused['error']).toMatchObject({ event_id: 'evt_mine' });
    const sent = gate.sim.connections[0]!.received.filter((r) => r.type === 'session.update').map((r) => (r.event as { event_id: string }).event_id);
    expect(sent).toEqual([expect.stringMatching(/^event_proxy_\w+_[0-9a-f]{12}$/)]);
    // Sent without an id: the client reads the proxy's.
    c.send({ type: 'session.update', session: { type: 'realtime', bogus_field: 2 } });
    const second = await c.nth('error', 2, 5000);
    const ids = gate.sim.connections[0]!.received.filter((r) => r.type === 'session.update').map((r) => (r.event as { event_id: string }).event_id);
    expect((second['error'] as { event_id: string }).event_id).toBe(ids[1]);
  }, 30_000);
});
