import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTINUE } from '../../src/pipeline/filter.js';
import { MAX_RESPONSES } from '../../src/protocol/conversation.js';
import { ProxyError } from '../../src/protocol/errors.js';
import { scriptedUpstream, sessionCreated, type ScriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { filterOf, relaySessionFixture, reportsFilter, send, until } from '../support/relay-session.js';

/**
 * What mutation testing of src/relay/session.ts's linger and drain (919–1057) left in the
 * twenty-fourth session (test/mutation/open-survivors.md, "twenty-fourth"): each test names the
 * mutant it kills. The relay core on its own (test/support/relay-session.ts).
 */

const core = relaySessionFixture();
const { open } = core;

const upstreams: ScriptedUpstream[] = [];
afterEach(async () => {
  for (const u of upstreams.splice(0)) await u.close();
});

const created = (id: string, n: number) => JSON.stringify({ type: 'response.created', event_id: `evt_rc${n}`, response: { id, object: 'realtime.response', status: 'in_progress', output: [] } });
const done = (id: string, n: number) => JSON.stringify({ type: 'response.done', event_id: `evt_done${n}`, response: { id, object: 'realtime.response', status: 'cancelled', output: [], usage: null } });

describe('RelaySession survivors: the linger cancels every response that runs', () => {
  // 1018: `!active.includes(id)` → false (a cancelled id never forgotten: the set grows with every
  // response the linger cancels). Seen when the upstream starts a response under an id it used before,
  // once the conversation view forgot that one (past MAX_RESPONSES), while another keeps the session
  // lingering: the second ran uncancelled to the linger's end (read, and billed, for nobody).
  it('a response id the upstream uses again after its response.done is cancelled again', async () => {
    const received: Record<string, unknown>[] = [];
    let socket: WebSocket | null = null;
    let n = 0;
    const up = await scriptedUpstream((ws) => {
      socket = ws;
      ws.send(sessionCreated(1));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as Record<string, unknown>;
        received.push(ev);
        // Two responses beside each other; only resp_same ends when cancelled.
        if (ev['type'] === 'response.create') for (const id of ['resp_same', 'resp_other']) ws.send(created(id, ++n));
        if (ev['type'] === 'response.cancel' && ev['response_id'] === 'resp_same') ws.send(done('resp_same', ++n));
      });
    });
    upstreams.push(up);
    const seenDone: string[] = [];
    const watcher = filterOf({ server: ['response.done'] }, (_c, _d, frame) => (seenDone.push(frame.type), CONTINUE));
    const { session, client, ended } = open([watcher.factory], { upstreamUrl: up.url, lingerMs: 60_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => session.conversation.activeResponses().length === 2, 'both responses running');
    session.onClientClose(1001, 'gone');
    const cancelsOf = (id: string) => received.filter((e) => e['type'] === 'response.cancel' && e['response_id'] === id).length;
    await until(() => seenDone.length === 1 && cancelsOf('resp_other') === 1, 'resp_same done, resp_other cancelled');
    // Past the linger's look at the done (deferred a turn): only resp_other runs now.
    await new Promise((r) => setImmediate(r));
    // More responses than the view keeps, each done as it starts (nothing for the linger to cancel).
    for (let i = 0; i <= MAX_RESPONSES; i++) {
      socket!.send(created(`resp_f${i}`, ++n));
      socket!.send(done(`resp_f${i}`, ++n));
    }
    socket!.send(created('resp_same', ++n));
    await until(() => cancelsOf('resp_same') === 2, 'resp_same cancelled again');
    socket!.send(done('resp_other', ++n));
    await ended;
    // (One of the burst's may be cancelled too, if the linger looks between its created and its done.)
    expect([cancelsOf('resp_same'), cancelsOf('resp_other')]).toEqual([2, 1]);
    expect(seenDone).toHaveLength(MAX_RESPONSES + 1 + 3);
    expect(session.ended).toBe(true);
  });
});

describe("RelaySession survivors: the drain before a call's hang-up", () => {
  // 932 and 936: the drain's response.cancel and output_audio_buffer.clear reported as injected by
  // `''`: the relay sends them (an upstream error about either names it as their sender too).
  it('its response.cancel and output_audio_buffer.clear are reported as injected by the relay', async () => {
    const up = await core.respondingUpstream(10);
    const reports: Record<string, unknown>[] = [];
    let drained = false;
    const { session, client, ended } = open([reportsFilter(reports)], {
      upstreamUrl: up.url,
      lingerMs: 60_000,
      callId: 'rtc_drained',
      endCallFirst: (_error, drain) => drain().then(() => void (drained = true)),
    });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.close(new ProxyError('guardrail_blocked'));
    await ended;
    expect(drained).toBe(true);
    expect(up.received.filter((e) => e['type'] !== 'response.create').map((e) => [e['type'], e['response_id']])).toEqual([
      ['response.cancel', 'resp_1'],
      ['output_audio_buffer.clear', undefined],
    ]);
    expect(reports.filter((r) => r['kind'] === 'injected')).toEqual([
      { kind: 'injected', direction: 'client', eventType: 'response.cancel', by: 'relay' },
      { kind: 'injected', direction: 'client', eventType: 'output_audio_buffer.clear', by: 'relay' },
    ]);
  });
});
