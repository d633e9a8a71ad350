import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it, afterEach } from 'vitest';
import { QUEUED_FRAME_OVERHEAD_BYTES } from '../../src/pipeline/chain.js';
import { CONTINUE, DROP, type Clock, type FilterFactory, type SessionContext, type Verdict } from '../../src/pipeline/filter.js';
import { Conversation } from '../../src/protocol/conversation.js';
import { CloseCode, ProxyError } from '../../src/protocol/errors.js';
import { MemoryBudget } from '../../src/server/memory-budget.js';
import type { RelaySession } from '../../src/relay/session.js';
import { scriptedUpstream, sessionCreated, type ScriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { FakeClient, filterOf, relaySessionFixture, reportsFilter, responseIdOf, say, send, sendRaw, until } from '../support/relay-session.js';

/**
 * The relay core on its own (test/support/relay-session.ts: a fake client socket, the simulator
 * upstream, a chain of test filters). The end-to-end tests reach these paths only with the shipped filters, which never ask
 * for output audio and rarely hold a frame behind a verdict; mutation testing of the core
 * (2026-12-05: 38 of 99 mutants of forward/cancelResponse killed by them) showed what they miss.
 */

const core = relaySessionFixture();
const { open, upstreamReceived } = core;

describe('RelaySession: suppression of a cancelled response', () => {
  it('output audio that a filter asked for goes through the chain and is still dropped once its response is cancelled', async () => {
    let audioSeen = 0;
    const f = filterOf({ server: ['response.output_audio.delta'] }, (ctx, _d, frame) => {
      if (++audioSeen === 2) ctx.cancelResponse(frame.string('response_id')!, 'test', new ProxyError('guardrail_blocked'));
      return CONTINUE;
    });
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    say(session, `say: ${'a long answer with plenty of audio to cancel '.repeat(4)}`);
    await until(() => client.types().includes('response.done'), 'response.done');
    const id = responseIdOf(client)!;
    const audio = client.frames.filter((x) => x['type'] === 'response.output_audio.delta' && x['response_id'] === id);
    // The first delta left before the cancel; the second (the one that triggered it) and any later one did not.
    expect(audioSeen).toBeGreaterThanOrEqual(2);
    expect(audio).toHaveLength(1);
    expect((client.frames.find((x) => x['type'] === 'response.done')!['response'] as { status: string }).status).toBe('cancelled');
    // The client sees the response.done (cancelled): why is a notice, not an error (policies.notices: event).
    expect(client.frames.filter((x) => x['type'] === 'rtproxy.notice').map((x) => (x['notice'] as { code: string }).code)).toEqual(['guardrail_blocked']);
    expect(client.types()).not.toContain('error');
    expect(upstreamReceived().filter((e) => e['type'] === 'response.cancel')).toEqual([expect.objectContaining({ response_id: id })]);
    expect(session.isSuppressed(id)).toBe(false);
    // The delta that left was metered as it left (the relay's own output audio counters).
    expect(f.ctx().audio.outputFrames).toBe(1);
  });

  it('frames queued behind an async verdict are checked again when they leave: none of a response cancelled meanwhile reaches the client', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let first = true;
    const f = filterOf({ server: ['response.output_audio_transcript.delta'] }, () => {
      if (!first) return CONTINUE;
      first = false;
      // The first transcript delta waits for a slow verdict; later frames queue behind it.
      return held.then(() => CONTINUE);
    });
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    say(session, `say: ${'words that wait behind a slow verdict '.repeat(3)}`);
    await until(() => upstreamReceived().some((e) => e['type'] === 'response.create') && core.sim.connections.at(-1)!.sent.some((e) => e.type === 'response.done'), 'the upstream finished the response');
    const id = core.sim.connections.at(-1)!.sent.find((e) => e.type === 'response.created')!.responseId!;
    // Cancelled while its frames wait in the chain.
    f.ctx().cancelResponse(id, 'test', new ProxyError('guardrail_blocked'));
    release();
    await until(() => client.types().includes('response.done'), 'response.done');
    const leaked = client.frames.filter((x) => String(x['type']).startsWith('response.output_audio') && x['response_id'] === id);
    expect(leaked).toEqual([]);
    expect((client.frames.find((x) => x['type'] === 'response.done')!['response'] as { status: string }).status).toBe('cancelled');
  });

  it('a cancel of a response no longer active sends no response.cancel; on a call every cancel also clears the output audio buffer', async () => {
    const f = filterOf({}, () => CONTINUE);
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.cancelResponse('resp_gone', 'test', new ProxyError('guardrail_blocked'));
    await until(() => client.types().includes('rtproxy.notice'), 'the notice');
    expect(upstreamReceived().filter((e) => e['type'] === 'response.cancel' || e['type'] === 'output_audio_buffer.clear')).toEqual([]);
    // Idempotent: a second cancel of the same response sends nothing more and no second notice.
    session.cancelResponse('resp_gone', 'test', new ProxyError('guardrail_blocked'));
    await new Promise((r) => setTimeout(r, 20));
    expect(client.types().filter((t) => t === 'rtproxy.notice')).toHaveLength(1);
  });

  it.each([
    ['event', ['rtproxy.notice']],
    ['error', ['error']],
    ['off', []],
  ] as const)('policies.notices: %s: a cancelled response is told with %j', async (notices, told) => {
    const f = filterOf({}, () => CONTINUE);
    const { session, client } = open([f.factory], { notices });
    await until(() => client.types().includes('session.created'), 'session.created');
    session.cancelResponse('resp_gone', 'test', new ProxyError('guardrail_blocked'));
    // A marker sent behind it: everything the cancel told the client is before it.
    session.sendClient({ type: 'input_audio_buffer.cleared', event_id: 'evt_marker' }, 'test');
    await until(() => client.types().includes('input_audio_buffer.cleared'), 'the marker');
    const types = client.types();
    expect(types.slice(types.indexOf('session.created') + 1, types.indexOf('input_audio_buffer.cleared'))).toEqual(told);
    const event = client.frames.find((x) => x['type'] === told[0]);
    if (event) expect(event[notices === 'error' ? 'error' : 'notice']).toMatchObject({ type: 'policy_error', code: 'guardrail_blocked', event_id: null });
  });
});

describe('RelaySession: events the proxy injects', () => {
  it('an injected event gets an event_id of the session scheme when it has none; upstream errors about harmless ones stay with the proxy, whoever chose the id (2026-12-05: one with its own id reached the client)', async () => {
    const f = filterOf({}, () => CONTINUE);
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'conversation.item.delete', item_id: 'item_missing' }, 'test');
    session.sendUpstream({ type: 'response.cancel', response_id: 'resp_x', event_id: 'evt_mine' }, 'test');
    await until(() => upstreamReceived().some((e) => e['type'] === 'response.cancel'), 'the injected events upstream');
    const del = upstreamReceived().find((e) => e['type'] === 'conversation.item.delete')!;
    expect(del['event_id']).toMatch(/^event_proxy_/);
    expect(upstreamReceived().find((e) => e['type'] === 'response.cancel')!['event_id']).toBe('evt_mine');
    // The upstream answers the delete with an error: not the client's business.
    await new Promise((r) => setTimeout(r, 100));
    expect(client.frames.filter((x) => x['type'] === 'error')).toEqual([]);
  });

  it('an event sent to the client goes out as given, outside the chain', async () => {
    const seen: string[] = [];
    const f = filterOf({ server: '*' }, (_c, _d, frame) => {
      seen.push(frame.type);
      return frame.type === 'session.created' ? DROP : CONTINUE;
    });
    const { session, client } = open([f.factory]);
    await until(() => seen.includes('session.created'), 'session.created in the chain');
    session.sendClient({ type: 'error', event_id: 'evt_notice', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }, 'test');
    await until(() => client.frames.length > 0, 'the notice');
    expect(client.frames).toEqual([{ type: 'error', event_id: 'evt_notice', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }]);
    expect(seen).not.toContain('error');
  });
});

describe('RelaySession: client frames through the chain', () => {
  it('a rejected client frame is counted and answered with an error; the upstream never sees it', async () => {
    const f = filterOf({ client: ['conversation.item.create'] }, (_c, _d, frame) => (JSON.stringify(frame.json()).includes('forbidden') ? { kind: 'reject', error: new ProxyError('guardrail_blocked') } : CONTINUE));
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'conversation.item.create', event_id: 'evt_bad', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'forbidden' }] } });
    send(session, { type: 'conversation.item.create', event_id: 'evt_ok', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'fine' }] } });
    // Item creates leave with an event_id of the proxy's: told apart by their text.
    const texts = () => upstreamReceived().filter((e) => e['type'] === 'conversation.item.create').map((e) => JSON.stringify(e['item']));
    await until(() => texts().some((t) => t.includes('fine')), 'the allowed item upstream');
    expect(texts().some((t) => t.includes('forbidden'))).toBe(false);
    expect(session.stats.rejectedFrames).toBe(1);
    expect(client.frames.filter((x) => x['type'] === 'error').map((x) => (x['error'] as { code: string }).code)).toEqual(['guardrail_blocked']);
  });

  it("every response.create leaves with an event_id (the client's, or one of the session scheme), and the chain hears it was sent, even when no filter asks for it (2026-12-05: such a create left unstamped and unread by the view)", async () => {
    const reports: unknown[] = [];
    const factory: FilterFactory = { name: 'reports', wants: {}, create: () => ({ onReport: (r) => void reports.push(r) }) };
    const { session, client } = open([factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', response: { output_modalities: ['text'] } });
    send(session, { type: 'response.create', event_id: 'evt_create', response: { output_modalities: ['text'], conversation: 'none' } });
    await until(() => upstreamReceived().filter((e) => e['type'] === 'response.create').length === 2, 'both creates upstream');
    const ids = upstreamReceived().filter((e) => e['type'] === 'response.create').map((e) => e['event_id']);
    // Every create leaves with an id of the proxy's that no client can predict; the client's own is kept for what it is shown.
    expect(ids[0]).toMatch(/^event_proxy_\w+_\w+_[0-9a-f]{12}$/);
    expect(ids[1]).toMatch(/^event_proxy_\w+_\w+_[0-9a-f]{12}$/);
    const view = session.conversation;
    if (!(view instanceof Conversation)) throw new Error('the session keeps a Conversation');
    expect(view.clientEventId(ids[1] as string)).toBe('evt_create');
    expect(reports.filter((r) => (r as { kind: string }).kind === 'create_sent')).toEqual([
      { kind: 'create_sent', eventId: ids[0] },
      { kind: 'create_sent', eventId: ids[1] },
    ]);
  });
});

describe('RelaySession: what the core records', () => {
  it('injected events are reported by direction, type and filter; the view marks items the proxy created as its own; after the end nothing more is sent', async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'conversation.item.create', item: { id: 'item_proxy', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'from the proxy' }] } }, 'test-filter');
    send(session, { type: 'conversation.item.create', item: { id: 'item_client', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'from the client' }] } });
    session.sendClient({ type: 'error', event_id: 'evt_n', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }, 'test-filter');
    await until(() => session.conversation.item('item_proxy') !== undefined && session.conversation.item('item_client') !== undefined, 'both items added');
    expect(session.conversation.item('item_proxy')!.provenance).toBe('proxy');
    expect(session.conversation.item('item_client')!.provenance).toBe('client');
    expect(reports.filter((r) => r['kind'] === 'injected')).toEqual([
      { kind: 'injected', direction: 'client', eventType: 'conversation.item.create', by: 'test-filter' },
      { kind: 'injected', direction: 'server', eventType: 'error', by: 'test-filter' },
    ]);
    // The session scheme: the session id's last eight characters, then a sequence.
    const injectedId = upstreamReceived().find((e) => e['type'] === 'conversation.item.create')!['event_id'] as string;
    expect(injectedId.startsWith(`event_proxy_${session.id.slice(-8)}_`)).toBe(true);
    session.close(new ProxyError('server_shutting_down'));
    const sent = upstreamReceived().length;
    const shown = client.frames.length;
    session.sendUpstream({ type: 'response.cancel' }, 'late');
    session.sendClient({ type: 'error', event_id: 'evt_late', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }, 'late');
    await new Promise((r) => setTimeout(r, 50));
    expect(upstreamReceived()).toHaveLength(sent);
    expect(client.frames).toHaveLength(shown);
    expect(reports.filter((r) => r['by'] === 'late')).toEqual([]);
  });

  it('one client frame in 64 is timed from the socket read to the upstream write (relay_latency), audio and control alike; none while frames queue', async () => {
    const reports: Record<string, unknown>[] = [];
    let release!: (v: Verdict) => void;
    let hold = false;
    const holder = filterOf({ client: ['conversation.item.create'] }, () => (hold ? new Promise<Verdict>((r) => (release = r)) : CONTINUE));
    const { session, client } = open([reportsFilter(reports), holder.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    const latency = () => reports.filter((r) => r['kind'] === 'relay_latency');
    for (let i = 0; i < 63; i++) send(session, { type: 'input_audio_buffer.append', audio: 'AAAA' });
    expect(latency()).toEqual([]);
    send(session, { type: 'input_audio_buffer.append', audio: 'AAAA' });
    for (let i = 0; i < 64; i++) send(session, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `t${i}` }] } });
    expect(latency()).toHaveLength(2);
    for (const r of latency()) {
      expect(r['direction']).toBe('client');
      expect(r['ms']).toBeGreaterThanOrEqual(0);
      expect(r['ms']).toBeLessThan(60_000);
    }
    // A frame that waits behind a verdict is not timed (its wait is not the relay's).
    hold = true;
    for (let i = 0; i < 64; i++) send(session, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `h${i}` }] } });
    expect(latency()).toHaveLength(2);
    release(CONTINUE);
  });

  it("a session timer runs its callback; one that throws ends that session with internal_error (1011)", async () => {
    const logs: Record<string, unknown>[] = [];
    const { session, client, ended } = open([], { logs });
    await until(() => client.types().includes('session.created'), 'session.created');
    let ran = false;
    session.setTimer(1, () => void (ran = true));
    await until(() => ran, 'the timer');
    expect(session.ended).toBe(false);
    session.setTimer(1, () => {
      throw new Error('timer bug');
    });
    await ended;
    expect(client.ended?.code).toBe(1011);
    expect((client.frames.find((x) => x['type'] === 'error')!['error'] as { code: string }).code).toBe('internal_error');
    expect(logs.find((l) => l['msg'] === 'timer handler failed')).toMatchObject({ level: 50, err: { message: 'timer bug' } });
  });

  it('input audio a filter asked for leaves through the chain and is counted as it leaves', async () => {
    const f = filterOf({ client: ['input_audio_buffer.append'] }, () => CONTINUE);
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    const audio = Buffer.alloc(4800).toString('base64');
    send(session, { type: 'input_audio_buffer.append', audio });
    await until(() => upstreamReceived().some((e) => e['type'] === 'input_audio_buffer.append'), 'the append upstream');
    expect(f.ctx().audio.inputBytes).toBe(4800);
    expect(f.ctx().audio.inputFrames).toBe(1);
  });

  it('a client that drained below the low watermark lets a paused upstream resume, reported once; not while it is still over', async () => {
    const reports: Record<string, unknown>[] = [];
    const config = { highWatermarkBytes: 1024, lowWatermarkBytes: 512 };
    const { session, client } = open([reportsFilter(reports)], { backpressure: config });
    await until(() => client.types().includes('session.created'), 'session.created');
    // The client stops reading: its buffer sits over the high watermark, the upstream is paused.
    client.buffered = 4096;
    client.answer = 0;
    say(session, 'say: hello there');
    await until(() => reports.some((r) => r['kind'] === 'backpressure' && r['state'] === 'paused'), 'the upstream paused');
    session.onClientDrain();
    expect(reports.filter((r) => r['state'] === 'resumed')).toEqual([]);
    client.buffered = 0;
    session.onClientDrain();
    session.onClientDrain();
    expect(reports.filter((r) => r['kind'] === 'backpressure' && r['state'] === 'resumed')).toEqual([{ kind: 'backpressure', direction: 'server', state: 'resumed' }]);
    client.answer = 1;
    await until(() => client.types().includes('response.done'), 'the response, after the resume');
  });
});

describe('RelaySession: what the upstream sends', () => {
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const u of upstreams.splice(0)) await u.close();
  });

  it('frames no client could parse are dropped (binary, not JSON, JSON that is not an object); the rest flow in order; every frame is counted', async () => {
    const up = await scriptedUpstream((ws) => {
      const frames: (string | Buffer)[] = [
        sessionCreated(1),
        // Binary, even when its bytes are an event: the Realtime API sends only text frames.
        Buffer.from(JSON.stringify({ type: 'rate_limits.updated', event_id: 'evt_binary', rate_limits: [] })),
        'not json',
        '[1,2]',
        '"a string"',
        // A type the sniffer cannot read cheaply (an escaped member name): parsed, then relayed.
        '{"\\u0074ype":"rate_limits.updated","event_id":"evt_escaped","rate_limits":[]}',
        JSON.stringify({ type: 'rate_limits.updated', event_id: 'evt_last', rate_limits: [] }),
      ];
      for (const f of frames) ws.send(f, { binary: Buffer.isBuffer(f) });
      bytes = frames.reduce((n, f) => n + Buffer.byteLength(f), 0);
    });
    let bytes = 0;
    upstreams.push(up);
    const { session, client } = open([], { upstreamUrl: up.url });
    await until(() => client.frames.some((f) => f['event_id'] === 'evt_last'), 'the last frame');
    expect(client.frames.map((f) => f['event_id'] ?? f['type'])).toEqual(['event_fault_1', 'evt_escaped', 'evt_last']);
    expect(session.stats.serverFrames).toBe(7);
    expect(session.stats.serverBytes).toBe(bytes);
  });

  it('which refusals of injected events are harmless (a race or an item already gone) and which end the session', async () => {
    const cases: [string, Record<string, unknown>, string, string | null, boolean][] = [
      ['response.cancel', { response_id: 'r' }, 'response_cancel_not_active', null, true],
      ['output_audio_buffer.clear', {}, 'invalid_value', null, true],
      ['conversation.item.delete', { item_id: 'i' }, 'item_not_found', null, true],
      ['conversation.item.delete', { item_id: 'i' }, 'invalid_value', 'item_id', true],
      ['conversation.item.truncate', { item_id: 'i', content_index: 0, audio_end_ms: 0 }, 'item_not_found', null, true],
      ['conversation.item.truncate', { item_id: 'i', content_index: 0, audio_end_ms: 0 }, 'invalid_value', 'item_id', false],
      ['response.create', {}, 'conversation_already_has_active_response', null, true],
      ['response.create', {}, 'invalid_value', null, false],
      ['session.update', { session: { type: 'realtime' } }, 'conversation_already_has_active_response', null, false],
    ];
    for (const [type, body, code, param, harmless] of cases) {
      const up = await scriptedUpstream((ws) => {
        ws.send(sessionCreated(1));
        ws.on('message', (raw) => {
          const ev = JSON.parse(String(raw)) as { event_id?: string };
          ws.send(JSON.stringify({ type: 'error', event_id: 'evt_err', error: { type: 'invalid_request_error', code, message: `m${'x'.repeat(400)}`, param, event_id: ev.event_id } }));
        });
      });
      upstreams.push(up);
      const logs: Record<string, unknown>[] = [];
      const { session, client, ended } = open([], { upstreamUrl: up.url, logs });
      await until(() => client.types().includes('session.created'), 'session.created');
      session.sendUpstream({ type, ...body } as never, 'test');
      const what = `${type} ${code} ${param}`;
      if (harmless) {
        await new Promise((r) => setTimeout(r, 60));
        expect(session.ended, what).toBe(false);
        expect(client.frames.filter((f) => f['type'] === 'error'), what).toEqual([]);
        // Kept for the operator at debug level: which event, which code.
        expect(logs.filter((l) => l['msg'] === 'upstream error about an injected event'), what).toEqual([expect.objectContaining({ level: 20, code, eventType: type })]);
      } else {
        await ended;
        const err = client.frames.find((f) => f['type'] === 'error')!['error'] as { code: string; message: string; details: unknown };
        expect(err.code, what).toBe('governance_failed');
        expect(err.message, what).toBe(`The upstream refused the proxy's ${type} (${code}); the session cannot be governed as configured and was ended.`);
        expect(err.details, what).toEqual({ eventType: type, by: 'test', upstreamCode: code });
      }
    }
  });

  it("the upstream refusing an event the proxy injected is a governance failure: reported, and the session ends (governance_failed) unless per_response; a refusal of a harmless one stays quiet", async () => {
    for (const policy of ['end_session', 'per_response'] as const) {
      const up = await scriptedUpstream((ws) => {
        ws.send(sessionCreated(1));
        ws.on('message', (raw) => {
          const ev = JSON.parse(String(raw)) as { type: string; event_id?: string };
          const code = ev.type === 'response.cancel' ? 'response_cancel_not_active' : 'invalid_value';
          ws.send(JSON.stringify({ type: 'error', event_id: 'evt_err', error: { type: 'invalid_request_error', code, message: 'refused', param: null, event_id: ev.event_id } }));
        });
      });
      upstreams.push(up);
      const reports: Record<string, unknown>[] = [];
      const factory: FilterFactory = { name: 'reports', wants: {}, create: () => ({ onReport: (r) => void reports.push(r as unknown as Record<string, unknown>) }) };
      const { session, client, ended } = open([factory], { upstreamUrl: up.url, onInjectedEventError: policy });
      await until(() => client.types().includes('session.created'), 'session.created');
      session.sendUpstream({ type: 'response.cancel', response_id: 'resp_x' }, 'test');
      await new Promise((r) => setTimeout(r, 50));
      expect(reports.filter((r) => r['kind'] === 'injected_error'), policy).toEqual([]);
      session.sendUpstream({ type: 'session.update', session: { type: 'realtime', instructions: 'x' } }, 'locks');
      await until(() => reports.some((r) => r['kind'] === 'injected_error'), 'the failure reported');
      expect(reports.filter((r) => r['kind'] === 'injected_error'), policy).toEqual([{ kind: 'injected_error', eventType: 'session.update', by: 'locks', code: 'invalid_value' }]);
      // The client never sees the upstream's error about the proxy's own events.
      expect(client.frames.filter((f) => f['event_id'] === 'evt_err'), policy).toEqual([]);
      if (policy === 'end_session') {
        await ended;
        expect((client.frames.find((f) => f['type'] === 'error')!['error'] as { code: string; details: unknown }).code).toBe('governance_failed');
        expect(client.ended?.code).toBe(4003);
      } else {
        await new Promise((r) => setTimeout(r, 50));
        expect(session.ended).toBe(false);
      }
    }
  });
});

describe('RelaySession: what a client may send', () => {
  const raw = sendRaw;
  const errors = (client: FakeClient) => client.frames.filter((f) => f['type'] === 'error').map((f) => f['error'] as Record<string, unknown>);

  it('each malformed frame gets its own invalid-event answer, is counted, never reaches the upstream, and the session goes on', async () => {
    const { session, client } = open([], { maxFrameBytes: 4096, maxJsonDepth: 8 });
    await until(() => client.types().includes('session.created'), 'session.created');
    const before = upstreamReceived().length;
    const deep = `{"type":"conversation.item.create","event_id":"evt_deep","item":${'{"a":'.repeat(9)}1${'}'.repeat(9)}}`;
    const cases: [string | Buffer, boolean, Record<string, unknown>][] = [
      [JSON.stringify({ type: 'response.create' }), true, { code: 'invalid_event', message: 'Expected a text WebSocket message.' }],
      [`{"type":"response.create","x":"${'a'.repeat(4100)}"}`, false, { code: 'frame_too_large' }],
      ['{"type":"response.create","type":"session.update"}', false, { code: 'invalid_event', message: "The event has more than one 'type' member." }],
      [deep, false, { code: 'invalid_event', event_id: 'evt_deep', details: { reason: 'too_deep' } }],
      ['{"ty\\u0070e":', false, { code: 'invalid_json', message: 'The frame is not valid JSON.' }],
      ['[{"type":"response.create"}]', false, { code: 'invalid_event', message: 'The event must be a JSON object.' }],
      ['{"event_id":"evt_untyped","type":7}', false, { code: 'invalid_event', message: "The 'type' field is missing or not a string.", event_id: 'evt_untyped' }],
      ['{"event_id":"evt_empty","type":""}', false, { code: 'invalid_event', event_id: 'evt_empty' }],
      ['{"\\u0074ype":"a","type":"b"}', false, { code: 'invalid_event' }],
      // Not an object, read by the real parser (the sniffer cannot).
      ['null', false, { code: 'invalid_event', message: 'The event must be a JSON object.' }],
      ['"response.create"', false, { code: 'invalid_event', message: 'The event must be a JSON object.' }],
      ['7', false, { code: 'invalid_event', message: 'The event must be a JSON object.' }],
      // A type the sniffer cannot read (an escape in it) and another member twice: the parser's own answer.
      ['{"type":"response.\\u0063reate","event_id":"evt_twice","x":1,"x":2}', false, { code: 'invalid_event', param: 'x', event_id: 'evt_twice', details: { reason: "duplicate_member" } }],
    ];
    for (const [text, binary] of cases) raw(session, text, binary);
    await until(() => errors(client).length >= cases.length, 'the answers');
    const got = errors(client);
    expect(got).toHaveLength(cases.length);
    cases.forEach(([, , want], i) => expect(got[i], String(i)).toMatchObject(want));
    expect(got[3]!['message']).toBe('The event nests deeper than 8 levels.');
    expect(got[1]!['message']).toBe(`The frame has ${Buffer.byteLength(cases[1]![0])} bytes; the maximum is 4096.`);
    expect(session.stats.rejectedFrames).toBe(cases.length);
    expect(session.stats.clientFrames).toBe(cases.length);
    expect(session.stats.clientBytes).toBe(cases.reduce((n, [text]) => n + Buffer.byteLength(text), 0));
    // At the limit exactly is still allowed.
    const atLimit = `{"type":"input_audio_buffer.clear","event_id":"evt_at_limit","pad":"`;
    raw(session, `${atLimit}${'p'.repeat(4096 - atLimit.length - 2)}"}`);
    // Still relaying: a good event after them reaches the upstream, and only it.
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_good' });
    await until(() => upstreamReceived().length > before, 'the good event upstream');
    expect(upstreamReceived().slice(before).map((e) => e['event_id'])).toEqual(['evt_at_limit', 'evt_good']);
    expect(session.ended).toBe(false);
    // After the end nothing is read or counted.
    session.close(new ProxyError('server_shutting_down'));
    const counted = { ...session.stats };
    raw(session, 'not json');
    send(session, { type: 'input_audio_buffer.clear' });
    expect(session.stats).toEqual(counted);
  });

  it('a large frame the memory budget cannot hold is refused (memory_budget_exceeded); one that fits reserves its size; small frames never ask', async () => {
    const budget = new MemoryBudget(200 * 1024);
    const { session, client } = open([], { budget });
    await until(() => client.types().includes('session.created'), 'session.created');
    const big = (n: number) => JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(n) }] } });
    raw(session, big(150 * 1024));
    expect(budget.used).toBe(Buffer.byteLength(big(150 * 1024)));
    await new Promise((r) => setTimeout(r, 20));
    expect(errors(client)).toEqual([]);
    raw(session, big(100 * 1024));
    await until(() => errors(client).length > 0, 'the refusal');
    expect(errors(client).map((e) => e['code'])).toEqual(['memory_budget_exceeded']);
    budget.resync(0);
    raw(session, big(1000));
    expect(budget.used).toBe(0);
    // 64 KiB exactly counts as large; one byte less does not.
    const exact = (n: number) => {
      const head = big(0);
      return big(n - Buffer.byteLength(head));
    };
    raw(session, exact(64 * 1024 - 1));
    expect(budget.used).toBe(0);
    raw(session, exact(64 * 1024));
    expect(budget.used).toBe(64 * 1024);
    expect(session.stats.rejectedFrames).toBe(1);
  });

  it('frames waiting behind an async verdict are bounded by the upstream buffer limit: past it the session ends (upstream_backpressure)', async () => {
    let release!: (v: Verdict) => void;
    const holder = filterOf({ client: ['conversation.item.create'] }, () => new Promise<Verdict>((r) => (release = r)));
    const { session, client, ended } = open([holder.factory], { backpressure: { upstreamMaxBufferedBytes: 4096 } });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'held' }] } });
    // Queued behind the verdict: what fits waits.
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_small', pad: 'x'.repeat(1000) });
    expect(session.ended).toBe(false);
    // Up to the limit exactly still waits.
    // (The frame being checked is the filter's; what queues behind it counts, each frame with its overhead.)
    const queued = () => Buffer.byteLength(JSON.stringify({ type: 'input_audio_buffer.clear', event_id: 'evt_small', pad: 'x'.repeat(1000) }));
    const fill = (n: number) => ({ type: 'input_audio_buffer.clear', event_id: 'evt_fill', pad: 'x'.repeat(n - Buffer.byteLength(JSON.stringify({ type: 'input_audio_buffer.clear', event_id: 'evt_fill', pad: '' }))) });
    send(session, fill(4096 - queued() - 2 * QUEUED_FRAME_OVERHEAD_BYTES));
    expect(session.ended).toBe(false);
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_over' });
    await ended;
    expect(errors(client)).toEqual([expect.objectContaining({ code: 'upstream_backpressure', message: 'Too much data was sent while an earlier event was being checked.' })]);
    release(CONTINUE);
  });
});

describe('RelaySession: ends and the linger for response.done', () => {
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const u of upstreams.splice(0)) await u.close();
  });

  it('a client that leaves mid-response: one response.cancel, the upstream read until its response.done, then the session ends as the client closed it', async () => {
    const up = await core.respondingUpstream(30);
    const reports: string[] = [];
    const watcher = filterOf({ server: ['response.done', 'response.output_text.delta'] }, (ctx, _d, frame) => {
      reports.push(frame.type);
      return CONTINUE;
    });
    const { session, client, ended } = open([watcher.factory], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    const seen = client.frames.length;
    session.onClientClose(1001, 'gone');
    expect(session.ended).toBe(false);
    await ended;
    // The filters read what still came and the response.done (metering bills it); the client, gone,
    // was sent nothing, and its socket is not ended by the proxy (the client closed it). One cancel.
    expect(reports).toEqual(['response.output_text.delta', 'response.output_text.delta', 'response.done']);
    expect(client.frames.length).toBe(seen);
    expect(client.ended).toBeNull();
    expect(up.received.filter((e) => e['type'] === 'response.cancel').map((e) => e['response_id'])).toEqual(['resp_1']);
    expect(session.endRecord()).toMatchObject({ initiator: 'client', clientCloseCode: 1001 });
  });

  it('a response a filter would start while the session lingers is not sent: nobody would hear it, OpenAI would bill it (2026-12-06: a filter answering each response.done looped create/cancel for the whole linger)', async () => {
    const up = await core.respondingUpstream(30);
    // A filter that answers the first response.done with a create of its own, as the spoken-turn hold does for an owed turn.
    const answering = filterOf({ server: ['response.done'] }, (ctx, _d, frame) => {
      if (frame.type === 'response.done') ctx.sendUpstream({ type: 'response.create' }, 'test');
      return CONTINUE;
    });
    const { session, client, ended } = open([answering.factory], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1001, 'gone');
    await ended;
    expect(up.received.map((e) => e['type'])).toEqual(['response.create', 'response.cancel']);
  });

  it('a client that stopped reading, then left: the linger reads the paused upstream again and says so (metering keeps unanswered creates while it is paused; found 2026-12-05)', async () => {
    const up = await core.respondingUpstream(30);
    const reports: Record<string, unknown>[] = [];
    const { session, client, ended } = open([reportsFilter(reports)], { upstreamUrl: up.url, lingerMs: 10_000, backpressure: { highWatermarkBytes: 1024, lowWatermarkBytes: 512 } });
    await until(() => client.types().includes('session.created'), 'session.created');
    client.buffered = 4096;
    client.answer = 0;
    send(session, { type: 'response.create' });
    await until(() => reports.some((r) => r['kind'] === 'backpressure' && r['state'] === 'paused'), 'the upstream paused');
    session.onClientClose(1001, 'gone');
    expect(reports.filter((r) => r['kind'] === 'backpressure' && r['state'] === 'resumed')).toEqual([{ kind: 'backpressure', direction: 'server', state: 'resumed' }]);
    await ended;
    expect(up.received.filter((e) => e['type'] === 'response.cancel').map((e) => e['response_id'])).toEqual(['resp_1']);
  });

  it("the linger ends only once every filter has had the response.done: one still deciding on it (async) keeps the session (2026-12-05: it ended while the verdict was pending, before the filters after it saw the frame)", async () => {
    const up = await core.respondingUpstream(10);
    let settled = false;
    const slow = filterOf({ server: ['response.done'] }, () => new Promise<Verdict>((r) => setTimeout(() => ((settled = true), r(CONTINUE)), 50)));
    const after: string[] = [];
    const next = filterOf({ server: ['response.done'] }, (_c, _d, frame) => (after.push(frame.type), CONTINUE));
    const { session, client, ended } = open([slow.factory, { ...next.factory, name: 'test-after' }], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1000, '');
    let endedWhileDeciding: boolean | null = null;
    void ended.then(() => (endedWhileDeciding = !settled));
    await ended;
    expect(endedWhileDeciding).toBe(false);
    expect(after).toEqual(['response.done']);
  });

  it('a create not yet answered also keeps the upstream; a response it starts while lingering is cancelled too', async () => {
    const up = await core.respondingUpstream(10);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    session.onClientClose(1000, '');
    expect(session.ended).toBe(false);
    await ended;
    expect(up.received.filter((e) => e['type'] === 'response.cancel').map((e) => e['response_id'])).toEqual(['resp_1']);
  });

  it('the linger is bounded: an upstream that never finishes the response is closed after lingerAfterClientCloseMs', async () => {
    const up = await core.respondingUpstream(null);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 100 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1000, '');
    await ended;
    expect(session.endRecord()).toMatchObject({ initiator: 'client' });
    await until(() => up.connections[0]!.readyState === up.connections[0]!.CLOSED, 'the upstream closed');
  });

  it('without metering, or with nothing running, a client close ends the session at once and cancels nothing', async () => {
    for (const lingerMs of [undefined, 10_000]) {
      const up = await core.respondingUpstream(10);
      const { session, client } = open([], { upstreamUrl: up.url, ...(lingerMs ? { lingerMs } : {}) });
      await until(() => client.types().includes('session.created'), 'session.created');
      if (lingerMs === undefined) {
        send(session, { type: 'response.create' });
        await until(() => client.types().includes('response.created'), 'response.created');
      }
      session.onClientClose(1000, '');
      expect(session.ended, String(lingerMs)).toBe(true);
      expect(up.received.filter((e) => e['type'] === 'response.cancel'), String(lingerMs)).toEqual([]);
    }
  });

  it('the proxy ending a session mid-response: the client gets the error and its close code at once, the upstream is kept for the response.done; close runs once', async () => {
    const up = await core.respondingUpstream(30);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.close(new ProxyError('policy_violation'));
    session.close(new ProxyError('internal_error'));
    expect(client.ended).toEqual({ code: CloseCode.policyViolation, reason: expect.any(String) });
    expect(client.frames.filter((f) => f['type'] === 'error').map((f) => (f['error'] as { code: string }).code)).toEqual(['policy_violation']);
    // The client's own close follows the proxy's end: it changes nothing (no second cancel, no early end).
    session.onClientClose(CloseCode.policyViolation, '');
    expect(session.ended).toBe(false);
    await ended;
    expect(up.received.filter((e) => e['type'] === 'response.cancel')).toHaveLength(1);
    expect(client.ended).toEqual({ code: CloseCode.policyViolation, reason: expect.any(String) });
    expect(session.endRecord()).toMatchObject({ initiator: 'proxy', clientCloseCode: CloseCode.policyViolation });
  });

  it('the proxy ending a session ends it at once without metering, or with nothing running', async () => {
    for (const lingerMs of [undefined, 10_000]) {
      const up = await core.respondingUpstream(10);
      const { session, client } = open([], { upstreamUrl: up.url, ...(lingerMs ? { lingerMs } : {}) });
      await until(() => client.types().includes('session.created'), 'session.created');
      if (lingerMs === undefined) {
        send(session, { type: 'response.create' });
        await until(() => client.types().includes('response.created'), 'response.created');
      }
      session.close(new ProxyError('policy_violation'));
      expect(session.ended, String(lingerMs)).toBe(true);
      expect(client.ended?.code, String(lingerMs)).toBe(CloseCode.policyViolation);
      expect(up.received.filter((e) => e['type'] === 'response.cancel'), String(lingerMs)).toEqual([]);
    }
  });

  it('a response a filter already cancelled is not cancelled again when the client leaves; the others are', async () => {
    const up = await core.respondingUpstream(10);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', response: { conversation: 'none' } });
    send(session, { type: 'response.create', response: { conversation: 'none' } });
    await until(() => client.types().filter((t) => t === 'response.created').length === 2, 'both responses');
    session.cancelResponse('resp_1', 'test', new ProxyError('policy_violation', { close: null }));
    session.onClientClose(1000, '');
    await ended;
    expect(up.received.filter((e) => e['type'] === 'response.cancel').map((e) => [e['response_id'], e['event_id']?.toString().startsWith('event_proxy_')])).toEqual([
      ['resp_1', true],
      ['resp_2', true],
    ]);
  });

  it('the session-end record: who ended it (null while open), a duration, the upstream connect time to 0.1 ms', async () => {
    const { session, client } = open([]);
    await until(() => client.types().includes('session.created'), 'session.created');
    expect(session.endRecord()).toMatchObject({ event: 'session_end', initiator: null, clientCloseCode: null, upstreamCloseCode: null });
    session.close(new ProxyError('server_shutting_down'));
    const record = session.endRecord();
    expect(record['initiator']).toBe('proxy');
    expect(record['durationMs']).toBeGreaterThanOrEqual(0);
    expect(record['durationMs']).toBeLessThan(60_000);
    const connect = record['upstreamConnectMs'] as number;
    expect(connect).toBeGreaterThan(0);
    expect(connect).toBeLessThan(60_000);
    expect(Math.round(connect * 10) / 10).toBe(connect);
    expect(connect).toBeCloseTo(session.upstreamConnectMs!, 0);
  });

  it("a handler failing while the session lingers ends it at once (it used to wait for the linger's end: fail closed nothing once close had run)", async () => {
    const up = await core.respondingUpstream(null);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 60_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.close(new ProxyError('policy_violation'));
    expect(session.ended).toBe(false);
    session.fail('test', new Error('boom'));
    expect(session.ended).toBe(true);
    await ended;
  });

  it('the upstream closing: its own codes pass to the client unchanged; 4001-4999 become 4100 with the original in details; others 1011', async () => {
    for (const [code, clientCode, error] of [
      [1000, 1000, false],
      [3000, 3000, false],
      [4000, 4000, false],
      [4001, CloseCode.upstreamApplication, true],
      [4999, CloseCode.upstreamApplication, true],
      [1002, CloseCode.internalError, true],
      // Each of OpenAI's own codes passes unchanged, with no error of the proxy's (1011 included).
      [1001, 1001, false],
      [1008, 1008, false],
      [1011, 1011, false],
      [1012, 1012, false],
      [1013, 1013, false],
      [1003, CloseCode.internalError, true],
    ] as const) {
      const up = await scriptedUpstream((ws) => {
        ws.send(sessionCreated(1));
        setTimeout(() => ws.close(code, 'bye'), 20);
      });
      upstreams.push(up);
      const { session, client, ended } = open([], { upstreamUrl: up.url });
      await ended;
      expect(client.ended?.code, String(code)).toBe(clientCode);
      const errs = client.frames.filter((f) => f['type'] === 'error').map((f) => f['error'] as Record<string, unknown>);
      expect(errs, String(code)).toEqual(error ? [expect.objectContaining({ code: 'upstream_closed', message: `The Realtime upstream closed the connection (code ${code}).`, details: { upstreamCode: code } })] : []);
      expect(session.endRecord(), String(code)).toMatchObject({ initiator: 'upstream', upstreamCloseCode: code });
    }
  });

  // Red team, 2026-12-06 (thirteenth session): client frames still in the chain when the client
  // leaves, and a watcher of a call.
  /**
   * A session whose second client response.create waits behind an async verdict (as the spoken-turn
   * hold pauses one, or an asynchronous ledger's admission), with the client's audio queued behind it,
   * while the first response runs.
   */
  async function secondCreateWaiting() {
    const up = await core.respondingUpstream(30);
    let release!: (v: Verdict) => void;
    let creates = 0;
    const slow = filterOf({ client: ['response.create'] }, (_ctx, _direction, frame) => {
      if (frame.type !== 'response.create' || ++creates < 2) return CONTINUE;
      return new Promise<Verdict>((r) => (release = r));
    });
    const { session, client, ended } = open([slow.factory], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_first' });
    await until(() => client.types().includes('response.created'), 'response.created');
    send(session, { type: 'response.create', event_id: 'evt_second' });
    send(session, { type: 'input_audio_buffer.append', audio: Buffer.alloc(4800).toString('base64') });
    return { up, session, client, ended, release: (v: Verdict) => release(v) };
  }

  // Failed before the fix: the verdict let the create (and the audio) go upstream while the relay
  // lingered: a response nobody hears, read from the whole conversation and billed, and audio
  // refilling the input buffer after metering's clear.
  it('a create released by its verdict while the session lingers, and the audio queued behind it, do not go upstream', async () => {
    const { up, session, client, ended, release } = await secondCreateWaiting();
    session.onClientClose(1006, '');
    expect(session.ended).toBe(false);
    // The verdict comes while the relay reads the cancelled response to its response.done.
    release(CONTINUE);
    await ended;
    expect(up.received.map((e) => [e['type'], e['type'] === 'response.cancel' ? e['response_id'] : e['event_id']])).toEqual([
      ['response.create', expect.stringMatching(/^event_proxy_/)],
      ['response.cancel', 'resp_1'],
    ]);
    expect(client.ended).toBeNull();
  });

  it('control: the same create released before the client leaves goes upstream, the audio behind it too', async () => {
    const { up, session, ended, release } = await secondCreateWaiting();
    release(CONTINUE);
    await until(() => up.received.some((e) => e['type'] === 'input_audio_buffer.append'), 'the audio upstream');
    session.onClientClose(1006, '');
    await ended;
    // (This upstream starts a second response beside the first; the linger cancels both.)
    expect(up.received.map((e) => e['type'])).toEqual(['response.create', 'response.create', 'input_audio_buffer.append', 'response.cancel', 'response.cancel']);
  });

  // Failed before the fix: a client's own socket on a SIP/WebRTC call (`?call_id=`, a supervisor's
  // dashboard) that left while the call's model spoke made the relay linger like any session, and the
  // linger cancelled every running response: the caller heard the answer cut off.
  it("a client on a call's sideband leaving mid-response does not cancel the call's response: the linger only reads it", async () => {
    const up = await core.respondingUpstream(30);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 300, callId: 'rtc_watched' });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_first' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1001, 'dashboard closed');
    await ended;
    expect(up.received.map((e) => e['type'])).toEqual(['response.create']);
  });

});

describe('RelaySession: construction, start and what its links report', () => {
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const u of upstreams.splice(0)) await u.close();
  });
  /** A clock the test moves by hand (monotonic time only). */
  function manualClock(start: number): Clock & { t: number } {
    const clock = { t: start, now: () => clock.t, wall: () => Date.now() };
    return clock;
  }
  const errorsOf = (client: FakeClient) => client.frames.filter((f) => f['type'] === 'error').map((f) => f['error'] as Record<string, unknown>);

  it('a session opened with a client secret sends its governed config first (by client_secret), before what the client sent meanwhile; the call id comes from the query', async () => {
    const reports: Record<string, unknown>[] = [];
    const secret = { type: 'realtime', instructions: 'from the secret' };
    const { session, client } = open([reportsFilter(reports)], { secretSession: secret, query: { call_id: 'rtc_from_query' } });
    // Sent while the upstream is still being dialled.
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_client_first' });
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_client_first'), 'the client event upstream');
    const got = upstreamReceived();
    expect(got[0]).toEqual({ type: 'session.update', event_id: expect.stringMatching(new RegExp(`^event_proxy_${session.id.slice(-8)}_`)), session: secret });
    expect(got[1]!['event_id']).toBe('evt_client_first');
    expect(reports.filter((r) => r['kind'] === 'injected')).toEqual([{ kind: 'injected', direction: 'client', eventType: 'session.update', by: 'client_secret' }]);
    expect(session.secretSession).toEqual(secret);
    expect(session.callId).toBe('rtc_from_query');
    await until(() => client.types().includes('session.created'), 'session.created');
    // A cancel on the call also clears the call's output audio buffer.
    session.cancelResponse('resp_any', 'test', new ProxyError('guardrail_blocked'));
    await until(() => upstreamReceived().some((e) => e['type'] === 'output_audio_buffer.clear'), 'the clear');
  });

  it('a session without a client secret sends no session.update of its own, and has no call unless told', async () => {
    const { session, client } = open([]);
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_marker' });
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_marker'), 'the marker upstream');
    expect(upstreamReceived().map((e) => e['type'])).toEqual(['input_audio_buffer.clear']);
    expect([session.secretSession, session.callId]).toEqual([null, null]);
    await until(() => client.types().includes('session.created'), 'session.created');
  });

  it('a filter ending the session as it starts: the client gets its error and close, and the upstream is never dialled', async () => {
    const before = core.sim.connections.length;
    const closer: FilterFactory = { name: 'closer', wants: {}, create: (ctx) => ({ onStart: () => ctx.close(new ProxyError('policy_violation')) }) };
    const { session, client, ended } = open([closer]);
    await ended;
    expect(session.ended).toBe(true);
    expect(client.ended?.code).toBe(CloseCode.policyViolation);
    expect(errorsOf(client).map((e) => e['code'])).toEqual(['policy_violation']);
    // A session opened after it reaches the simulator: the ended one never dialled (it would have been first).
    const next = open([]);
    await until(() => next.client.types().includes('session.created'), 'the next session.created');
    expect(core.sim.connections.length).toBe(before + 1);
  });

  it('the upstream connection is reported once with its connect time; an unreachable upstream ends the session with upstream_unavailable (1013)', async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)]);
    await until(() => client.types().includes('session.created'), 'session.created');
    expect(reports.filter((r) => r['kind'] === 'upstream_connected')).toEqual([{ kind: 'upstream_connected', ms: session.upstreamConnectMs }]);
    expect(session.upstreamConnectMs).toBeGreaterThanOrEqual(0);
    // A port nobody listens on (taken, then given back).
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const dead = open([], { upstreamUrl: `ws://127.0.0.1:${port}/v1/realtime` });
    await dead.ended;
    expect(dead.client.ended?.code).toBe(CloseCode.tryAgainLater);
    expect(errorsOf(dead.client).map((e) => e['code'])).toEqual(['upstream_unavailable']);
    expect(dead.session.upstreamConnectMs).toBeNull();
  });

  it('one upstream frame in 64 is timed from its read to the flush that wrote it to the client (relay_latency, server)', async () => {
    // Far from zero: a sum in place of the difference could not pass for a duration.
    const clock: Clock = { now: () => performance.now() + 1e9, wall: () => Date.now() };
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as { n?: number };
        for (let i = 0; i < (ev.n ?? 0); i++) ws.send(JSON.stringify({ type: 'rate_limits.updated', event_id: `evt_rl_${i}`, rate_limits: [] }));
      });
    });
    upstreams.push(up);
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)], { upstreamUrl: up.url, clock });
    const latency = () => reports.filter((r) => r['kind'] === 'relay_latency');
    const burst = async (n: number, total: number) => {
      send(session, { type: 'input_audio_buffer.clear', n });
      await until(() => client.frames.length === total, `${total} frames at the client`);
    };
    await until(() => client.types().includes('session.created'), 'session.created');
    await burst(62, 63);
    expect(latency()).toEqual([]);
    await burst(1, 64);
    expect(latency()).toEqual([{ kind: 'relay_latency', direction: 'server', ms: expect.any(Number) }]);
    await burst(64, 128);
    expect(latency()).toHaveLength(2);
    for (const r of latency()) {
      expect(r['ms']).toBeGreaterThanOrEqual(0);
      expect(r['ms']).toBeLessThan(60_000);
    }
  });

  it('the slow-client grace runs from the pause: a flush while still paused restarts nothing; past the grace the next tick ends the session (slow_consumer, 4008), not at it', async () => {
    const clock = manualClock(1_000_000);
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)], { clock, backpressure: { highWatermarkBytes: 1024, lowWatermarkBytes: 512, slowClientGraceMs: 5000 } });
    await until(() => client.types().includes('session.created'), 'session.created');
    client.buffered = 4096;
    client.answer = 0;
    say(session, 'say: hello there');
    await until(() => reports.some((r) => r['kind'] === 'backpressure'), 'the upstream paused');
    clock.t += 3000;
    session.sendClient({ type: 'error', event_id: 'evt_later', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }, 'test');
    await until(() => client.frames.some((f) => f['event_id'] === 'evt_later'), 'the later frame');
    expect(reports.filter((r) => r['kind'] === 'backpressure')).toEqual([{ kind: 'backpressure', direction: 'server', state: 'paused' }]);
    expect(session.stats.backpressureEvents).toBe(1);
    session.tick(1_000_000 + 5000);
    expect(session.ended).toBe(false);
    session.tick(1_000_000 + 5001);
    expect(session.ended).toBe(true);
    expect(client.ended?.code).toBe(CloseCode.slowConsumer);
    expect(errorsOf(client).at(-1)).toMatchObject({ code: 'slow_consumer', message: 'The client stayed over 1024 buffered bytes for 5000 ms.' });
  });

  it('a client that drained with no drain event from uWS: the next tick resumes the paused upstream and ends nothing (2026-12-06)', async () => {
    const clock = manualClock(1_000_000);
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)], { clock, backpressure: { highWatermarkBytes: 1024, lowWatermarkBytes: 512, slowClientGraceMs: 5000 } });
    await until(() => client.types().includes('session.created'), 'session.created');
    client.buffered = 4096;
    client.answer = 0;
    say(session, 'say: hello there');
    await until(() => reports.some((r) => r['kind'] === 'backpressure'), 'the upstream paused');
    // The kernel took the backlog: the buffer is empty, and uWS said nothing.
    client.buffered = 0;
    client.answer = 1;
    session.tick(1_000_000 + 5001);
    expect(session.ended).toBe(false);
    expect(reports.filter((r) => r['kind'] === 'backpressure')).toEqual([
      { kind: 'backpressure', direction: 'server', state: 'paused' },
      { kind: 'backpressure', direction: 'server', state: 'resumed' },
    ]);
    await until(() => client.types().includes('response.done'), 'the response, after the resume');
  });

  it('an upstream that leaves a ping unanswered past pongTimeoutMs ends the session on the tick after it (upstream_timeout, 1011)', async () => {
    const clock = manualClock(1_000_000);
    const up = await scriptedUpstream((ws) => ws.send(sessionCreated(1)), { autoPong: false });
    upstreams.push(up);
    const { session, client, ended } = open([], { upstreamUrl: up.url, clock, pingIntervalMs: 1000, pongTimeoutMs: 2000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    // The ticks run back to back: no pong could be read between them.
    session.tick(1_000_000);
    session.tick(1_002_000);
    expect(session.ended).toBe(false);
    session.tick(1_002_001);
    await ended;
    expect(client.ended?.code).toBe(CloseCode.internalError);
    expect(errorsOf(client)).toEqual([expect.objectContaining({ code: 'upstream_timeout', message: 'The Realtime upstream did not answer a ping within 2000 ms.' })]);
  });

  it('a frame the client socket dropped ends the session (slow_consumer, 4008)', async () => {
    const { session, client, ended } = open([]);
    await until(() => client.types().includes('session.created'), 'session.created');
    client.answer = 2;
    session.sendClient({ type: 'error', event_id: 'evt_dropped', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }, 'test');
    await ended;
    expect(client.ended?.code).toBe(CloseCode.slowConsumer);
  });

  it('a socket call throwing in the flush ends that session with internal_error (1011), logged as the client flush failing', async () => {
    const logs: Record<string, unknown>[] = [];
    const { session, client, ended } = open([], { logs });
    await until(() => client.types().includes('session.created'), 'session.created');
    client.throwOnSend = new Error('socket gone');
    session.sendClient({ type: 'error', event_id: 'evt_x', error: { type: 'invalid_request_error', code: 'x', message: 'm', param: null, event_id: null } }, 'test');
    await ended;
    expect(client.ended?.code).toBe(CloseCode.internalError);
    expect(logs.find((l) => l['msg'] === 'client flush handler failed')).toMatchObject({ level: 50, err: { message: 'socket gone' } });
  });

  it('a throw while an upstream frame is handled ends that session with internal_error (1011), logged as the upstream message failing', async () => {
    let armed = false;
    const clock: Clock = {
      now: () => {
        if (armed) {
          armed = false;
          throw new Error('clock bug');
        }
        return performance.now();
      },
      wall: () => Date.now(),
    };
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', () => ws.send(JSON.stringify({ type: 'response.output_audio.delta', event_id: 'evt_a', response_id: 'resp_a', item_id: 'item_a', output_index: 0, content_index: 0, delta: 'AAAA' })));
    });
    upstreams.push(up);
    const logs: Record<string, unknown>[] = [];
    const { client, session, ended } = open([], { upstreamUrl: up.url, clock, logs });
    await until(() => client.types().includes('session.created'), 'session.created');
    armed = true;
    send(session, { type: 'input_audio_buffer.clear' });
    await ended;
    expect(client.ended?.code).toBe(CloseCode.internalError);
    expect(errorsOf(client).map((e) => e['code'])).toEqual(['internal_error']);
    expect(logs.find((l) => l['msg'] === 'upstream message handler failed')).toMatchObject({ level: 50, err: { message: 'clock bug' } });
  });

  it('audio the relay meters is reported when it starts (the first output delta of a response); a filter marks an item through the session', async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)]);
    await until(() => client.types().includes('session.created'), 'session.created');
    say(session, 'say: hello there');
    await until(() => client.types().includes('response.done'), 'response.done');
    const id = responseIdOf(client)!;
    expect(reports.filter((r) => r['kind'] === 'output_audio_started')).toEqual([{ kind: 'output_audio_started', responseId: id, at: expect.any(Number) }]);
    const itemId = [...session.conversation.items()].find((i) => i.role === 'user')!.id;
    session.markItem(itemId, { kind: 'redacted', by: 'test', rule: 'r1' });
    expect(session.conversation.item(itemId)!.marks).toEqual([{ kind: 'redacted', by: 'test', rule: 'r1' }]);
  });
});

describe('RelaySession: the upstream path in detail', () => {
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const u of upstreams.splice(0)) await u.close();
  });
  function manualClock(start: number): Clock & { t: number } {
    const clock = { t: start, now: () => clock.t, wall: () => Date.now() };
    return clock;
  }

  it('any upstream frame proves the upstream alive as a pong does: a ping left unanswered behind data does not end the session', async () => {
    const clock = manualClock(1_000_000);
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', () => ws.send(JSON.stringify({ type: 'rate_limits.updated', event_id: 'evt_data', rate_limits: [] })));
    }, { autoPong: false });
    upstreams.push(up);
    const { session, client } = open([], { upstreamUrl: up.url, clock, pingIntervalMs: 1000, pongTimeoutMs: 2000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    session.tick(1_000_000);
    // Data after the ping: the wait for its pong is over.
    send(session, { type: 'input_audio_buffer.clear' });
    await until(() => client.frames.some((f) => f['event_id'] === 'evt_data'), 'the data frame');
    session.tick(1_002_001);
    expect(session.ended).toBe(false);
  });

  it('an input audio append carrying the event_id of a create still waiting leaves with a fresh one, counted as it left', async () => {
    const f = filterOf({}, () => CONTINUE);
    const up = await scriptedUpstream((ws) => ws.send(sessionCreated(1)));
    upstreams.push(up);
    const received: Record<string, unknown>[] = [];
    const { session, client } = open([f.factory], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    up.connections[0]!.on('message', (data) => void received.push(JSON.parse(String(data)) as Record<string, unknown>));
    // The proxy's own create (a predictable id) waits: the upstream never answers it.
    session.sendUpstream({ type: 'response.create', event_id: 'evt_waiting' }, 'test');
    const audio = Buffer.alloc(480).toString('base64');
    send(session, { type: 'input_audio_buffer.append', event_id: 'evt_waiting', audio });
    send(session, { type: 'input_audio_buffer.append', event_id: 'evt_other', audio });
    await until(() => received.filter((e) => e['type'] === 'input_audio_buffer.append').length === 2, 'both appends upstream');
    const appends = received.filter((e) => e['type'] === 'input_audio_buffer.append');
    expect(appends[0]!['event_id']).toMatch(new RegExp(`^event_proxy_${session.id.slice(-8)}_`));
    expect(appends[0]).toEqual({ type: 'input_audio_buffer.append', event_id: appends[0]!['event_id'], audio });
    expect(appends[1]).toEqual({ type: 'input_audio_buffer.append', event_id: 'evt_other', audio });
    expect([f.ctx().audio.inputFrames, f.ctx().audio.inputBytes]).toEqual([2, 960]);
  });
});

describe('RelaySession: the session-end record in full', () => {
  it('carries the duration by the session clock (rounded), the relay counters and every filter summary; no connect time when the upstream never opened', async () => {
    const clock = { t: 5_000_000, now: () => clock.t, wall: () => Date.now() };
    const summarising: FilterFactory = { name: 'sum', wants: {}, create: () => ({ summary: () => ({ testTotal: 7, testFlag: true }) }) };
    // An upstream that never answers the upgrade: the session ends before it opens.
    const hung = createServer((s) => s.resume());
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const port = (hung.address() as AddressInfo).port;
    try {
      const { session } = open([summarising], { clock, upstreamUrl: `ws://127.0.0.1:${port}/v1/realtime` });
      send(session, { type: 'input_audio_buffer.clear' });
      clock.t += 1234.4;
      session.close(new ProxyError('server_shutting_down'));
      const record = session.endRecord();
      expect(record).toEqual({
        event: 'session_end',
        durationMs: 1234,
        initiator: 'proxy',
        clientCloseCode: CloseCode.serviceRestart,
        clientUnsentBytes: 0,
        upstreamCloseCode: null,
        upstreamConnectMs: null,
        clientFrames: 1,
        clientBytes: Buffer.byteLength(JSON.stringify({ type: 'input_audio_buffer.clear' })),
        serverFrames: 0,
        serverBytes: 0,
        rejectedFrames: 0,
        backpressureEvents: 0,
        testTotal: 7,
        testFlag: true,
      });
    } finally {
      await new Promise<void>((r) => hung.close(() => r()));
    }
  });
});

describe('RelaySession: relay paths each mutant of the core changed (2026-12-05)', () => {
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const u of upstreams.splice(0)) await u.close();
  });
  const errorsOf = (client: FakeClient) => client.frames.filter((f) => f['type'] === 'error').map((f) => f['error'] as Record<string, unknown>);
  /** A scripted upstream that answers every event with an `error` naming its event_id (code per event type). */
  async function refusing(code: (type: string) => string | null): Promise<{ up: ScriptedUpstream; received: Record<string, unknown>[] }> {
    const received: Record<string, unknown>[] = [];
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', (raw) => {
        const ev = JSON.parse(String(raw)) as { type: string; event_id?: string };
        received.push(ev as unknown as Record<string, unknown>);
        const c = code(ev.type);
        if (c !== null) ws.send(JSON.stringify({ type: 'error', event_id: `evt_err_${received.length}`, error: { type: 'invalid_request_error', code: c, message: 'refused', param: null, event_id: ev.event_id ?? null } }));
      });
    });
    upstreams.push(up);
    return { up, received };
  }

  it('upstream objects the sniffer cannot type are parsed: a repeated type is read as the parser reads it, no type or a non-string one is relayed untyped; non-objects are dropped and logged', async () => {
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.send('{"type":"session.updated","type":"rate_limits.updated","event_id":"evt_twice","rate_limits":[]}');
      ws.send('{"event_id":"evt_untyped","x":1}');
      ws.send('{"type":7,"event_id":"evt_number"}');
      ws.send('not json');
      ws.send(Buffer.from('{"type":"rate_limits.updated"}'), { binary: true });
      ws.send(JSON.stringify({ type: 'rate_limits.updated', event_id: 'evt_last', rate_limits: [] }));
    });
    upstreams.push(up);
    const seen: string[] = [];
    const f = filterOf({ server: '*' }, (_c, _d, frame) => (seen.push(frame.type), CONTINUE));
    const logs: Record<string, unknown>[] = [];
    const { client } = open([f.factory], { upstreamUrl: up.url, logs });
    await until(() => client.frames.some((x) => x['event_id'] === 'evt_last'), 'the last frame');
    expect(client.frames.map((x) => x['event_id'])).toEqual(['event_fault_1', 'evt_twice', 'evt_untyped', 'evt_number', 'evt_last']);
    expect(seen).toEqual(['session.created', 'rate_limits.updated', '', '', 'rate_limits.updated']);
    expect(logs.filter((l) => l['level'] === 40).map((l) => [l['msg'], l['bytes']])).toEqual([
      ['upstream frame that is not a JSON object dropped', 8],
      ['binary frame from upstream dropped', Buffer.byteLength('{"type":"rate_limits.updated"}')],
    ]);
  });

  it("an upstream error the proxy did not cause reaches the client while the proxy has events of its own in flight: one about the client's event (with the client's own id), one with no error object", async () => {
    const { up, received } = await refusing((type) => (type === 'conversation.item.create' ? 'invalid_value' : null));
    const { session, client } = open([], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'input_audio_buffer.clear', event_id: 'evt_injected' }, 'test');
    send(session, { type: 'conversation.item.create', event_id: 'evt_mine', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    await until(() => errorsOf(client).length === 1, "the error about the client's event");
    // It left with the proxy's id; the client reads its own.
    expect(received.find((e) => e['type'] === 'conversation.item.create')!['event_id']).not.toBe('evt_mine');
    expect(errorsOf(client)).toEqual([expect.objectContaining({ code: 'invalid_value', event_id: 'evt_mine' })]);
    up.connections[0]!.send(JSON.stringify({ type: 'error', event_id: 'evt_bare' }));
    await until(() => client.frames.some((x) => x['event_id'] === 'evt_bare'), 'the bare error');
    expect(session.ended).toBe(false);
  });

  it('a refusal without a code is a governance failure under the code "unknown"; a not_found refusal is harmless only for conversation items, a param-less delete refusal is not', async () => {
    for (const [type, body, code, param, harmless] of [
      ['session.update', { session: { type: 'realtime' } }, 'resource_not_found', null, false],
      ['conversation.item.delete', { item_id: 'i' }, 'invalid_value', 'other', false],
    ] as const) {
      const up = await scriptedUpstream((ws) => {
        ws.send(sessionCreated(1));
        ws.on('message', (raw) => {
          const ev = JSON.parse(String(raw)) as { event_id?: string };
          ws.send(JSON.stringify({ type: 'error', event_id: 'evt_err', error: { type: 'invalid_request_error', code, message: 'm', param, event_id: ev.event_id } }));
        });
      });
      upstreams.push(up);
      const { session, client, ended } = open([], { upstreamUrl: up.url });
      await until(() => client.types().includes('session.created'), 'session.created');
      session.sendUpstream({ type, ...body } as never, 'test');
      expect(harmless).toBe(false);
      await ended;
      expect(errorsOf(client)[0], `${type} ${code} ${param}`).toMatchObject({ code: 'governance_failed', details: { eventType: type, by: 'test', upstreamCode: code } });
    }
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', (raw) => {
        const ev = JSON.parse(String(raw)) as { event_id?: string };
        ws.send(JSON.stringify({ type: 'error', event_id: 'evt_err', error: { type: 'invalid_request_error', message: 'no code', event_id: ev.event_id } }));
      });
    });
    upstreams.push(up);
    const reports: Record<string, unknown>[] = [];
    const { session, client, ended } = open([reportsFilter(reports)], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'session.update', session: { type: 'realtime', instructions: 'x' } }, 'locks');
    await ended;
    expect(reports.filter((r) => r['kind'] === 'injected_error')).toEqual([{ kind: 'injected_error', eventType: 'session.update', by: 'locks', code: 'unknown' }]);
    expect(errorsOf(client)[0]!['message']).toBe("The upstream refused the proxy's session.update (unknown); the session cannot be governed as configured and was ended.");
  });

  it('the last 256 injected events are recognised: an error about an older one is shown to the client as any other', async () => {
    const { up } = await refusing((type) => (type === 'response.cancel' ? 'response_cancel_not_active' : null));
    const { session, client } = open([], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    up.connections[0]!.on('message', (raw) => {
      if (String(raw).includes('evt_marker')) up.connections[0]!.send(JSON.stringify({ type: 'rate_limits.updated', event_id: 'evt_marker_answer', rate_limits: [] }));
    });
    for (let i = 0; i <= 256; i++) session.sendUpstream({ type: 'response.cancel', response_id: `resp_${i}`, event_id: `evt_inj_${i}` }, 'test');
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_marker' });
    // The upstream answers in order: once the marker's answer is in, every refusal before it has been handled.
    await until(() => client.frames.some((x) => x['event_id'] === 'evt_marker_answer'), "the marker's answer");
    expect(errorsOf(client).map((e) => e['event_id'])).toEqual(['evt_inj_0']);
  });

  it('only a response.create is reported as create_sent (item creates and session.updates are stamped too); an unreadable create leaves unstamped and unreported', async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    send(session, { type: 'session.update', session: { type: 'realtime', instructions: 'be brief' } });
    const broken = Buffer.from('{"type":"response.create","response":');
    session.onClientMessage(broken.buffer.slice(broken.byteOffset, broken.byteOffset + broken.byteLength), false);
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_marker' });
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_marker'), 'the marker upstream');
    expect(reports.filter((r) => r['kind'] === 'create_sent')).toEqual([]);
  });

  it('a client event other than audio is not metered as input audio; one carrying a waiting create\'s event_id leaves with a fresh one', async () => {
    const f = filterOf({}, () => CONTINUE);
    const { session, client } = open([f.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    // The proxy's own create: the simulator answers it later, it waits meanwhile.
    session.sendUpstream({ type: 'response.create', event_id: 'evt_proxy_create', response: { conversation: 'none', output_modalities: ['text'] } }, 'test');
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_proxy_create' });
    await until(() => upstreamReceived().some((e) => e['type'] === 'input_audio_buffer.clear'), 'the clear upstream');
    expect(upstreamReceived().find((e) => e['type'] === 'input_audio_buffer.clear')!['event_id']).toMatch(new RegExp(`^event_proxy_${session.id.slice(-8)}_`));
    expect([f.ctx().audio.inputFrames, f.ctx().audio.inputWireBytes]).toEqual([0, 0]);
  });

  it('output audio without a response id is relayed (and metered)', async () => {
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.send(JSON.stringify({ type: 'response.output_audio.delta', event_id: 'evt_anon', item_id: 'item_a', output_index: 0, content_index: 0, delta: 'AAAA' }));
    });
    upstreams.push(up);
    const f = filterOf({}, () => CONTINUE);
    const { client } = open([f.factory], { upstreamUrl: up.url });
    await until(() => client.frames.some((x) => x['event_id'] === 'evt_anon'), 'the delta');
    expect(f.ctx().audio.outputFrames).toBe(1);
  });

  it('a filter watching a type on request sees it only while it asks', async () => {
    const seen: string[] = [];
    let ctx!: SessionContext;
    const factory: FilterFactory = {
      name: 'watcher',
      wants: { onRequest: { client: ['input_audio_buffer.append'] } },
      create: (c) => ((ctx = c), { onClient: (frame) => (seen.push(String(frame.json()['event_id'])), CONTINUE) }),
    };
    const { session, client } = open([factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'input_audio_buffer.append', event_id: 'evt_a1', audio: 'AAAA' });
    ctx.watch('watcher', 'client', 'input_audio_buffer.append', true);
    send(session, { type: 'input_audio_buffer.append', event_id: 'evt_a2', audio: 'AAAA' });
    expect(seen).toEqual(['evt_a2']);
  });

  it('too much sent before the upstream opened ends the session (upstream_backpressure)', async () => {
    const hung = createServer((s) => s.resume());
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const port = (hung.address() as AddressInfo).port;
    try {
      const { session, client, ended } = open([], { upstreamUrl: `ws://127.0.0.1:${port}/v1/realtime`, backpressure: { upstreamMaxBufferedBytes: 4096 } });
      send(session, { type: 'input_audio_buffer.clear', pad: 'x'.repeat(3000) });
      expect(session.ended).toBe(false);
      send(session, { type: 'input_audio_buffer.clear', pad: 'x'.repeat(3000) });
      await ended;
      expect(errorsOf(client)).toEqual([expect.objectContaining({ code: 'upstream_backpressure', message: 'Too much data was sent before the upstream connection opened.' })]);
    } finally {
      await new Promise<void>((r) => hung.close(() => r()));
    }
  });

  it('a response.done a filter drops still ends the linger (the upstream frame itself is looked at)', async () => {
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as Record<string, unknown>;
        if (ev['type'] === 'response.create') ws.send(JSON.stringify({ type: 'response.created', event_id: 'evt_rc', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [] } }));
        if (ev['type'] === 'response.cancel') ws.send(JSON.stringify({ type: 'response.done', event_id: 'evt_done', response: { id: 'resp_1', object: 'realtime.response', status: 'cancelled', output: [], usage: null } }));
      });
    });
    upstreams.push(up);
    const dropper = filterOf({ server: ['response.done'] }, () => DROP);
    const { session, client, ended } = open([dropper.factory], { upstreamUrl: up.url, lingerMs: 600_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1000, '');
    expect(session.ended).toBe(false);
    await ended;
    expect(session.endRecord()).toMatchObject({ initiator: 'client' });
  });
});

describe('RelaySession: after the end and while lingering', () => {
  const upstreams: ScriptedUpstream[] = [];
  afterEach(async () => {
    for (const u of upstreams.splice(0)) await u.close();
  });

  it('a create a filter lets through only after the session ended is neither sent nor reported (create_sent)', async () => {
    const reports: Record<string, unknown>[] = [];
    const reporting: FilterFactory = { name: 'reports', wants: {}, create: () => ({ onReport: (r) => void reports.push(r as unknown as Record<string, unknown>) }) };
    let release!: (v: Verdict) => void;
    const holder = filterOf({ client: ['response.create'] }, () => new Promise<Verdict>((r) => (release = r)));
    const { session, client } = open([reporting, holder.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    session.close(new ProxyError('server_shutting_down'));
    const sent = upstreamReceived().length;
    release(CONTINUE);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(reports.filter((r) => r['kind'] === 'create_sent')).toEqual([]);
    expect(upstreamReceived()).toHaveLength(sent);
  });

  /** An upstream that starts a response on create and, on its cancel, sends two audio deltas and the response.done. */
  async function audioOnCancelUpstream() {
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as Record<string, unknown>;
        if (ev['type'] === 'response.create') ws.send(JSON.stringify({ type: 'response.created', event_id: 'evt_rc', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [] } }));
        if (ev['type'] === 'response.cancel') {
          for (let i = 0; i < 2; i++) ws.send(JSON.stringify({ type: 'response.output_audio.delta', event_id: `evt_a${i}`, response_id: 'resp_1', item_id: 'item_1', output_index: 0, content_index: 0, delta: 'AAAA' }));
          ws.send(JSON.stringify({ type: 'response.done', event_id: 'evt_done', response: { id: 'resp_1', object: 'realtime.response', status: 'cancelled', output: [], usage: null } }));
        }
      });
    });
    upstreams.push(up);
    return up;
  }

  it('output audio arriving while the session lingers goes through the filters that asked for it but is not metered as sent (nobody reads it)', async () => {
    const up = await audioOnCancelUpstream();
    const seen: string[] = [];
    const f = filterOf({ server: ['response.output_audio.delta'] }, (_c, _d, frame) => (seen.push(frame.type), CONTINUE));
    const { session, client, ended } = open([f.factory], { upstreamUrl: up.url, lingerMs: 600_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1001, 'gone');
    await ended;
    expect(seen).toEqual(['response.output_audio.delta', 'response.output_audio.delta']);
    expect(f.ctx().audio.outputFrames).toBe(0);
  });

  it('output audio no filter asks for, arriving while the session lingers, is not counted as sent either (found 2026-12-05 by mutation testing)', async () => {
    const up = await audioOnCancelUpstream();
    const f = filterOf({}, () => CONTINUE);
    const { session, client, ended } = open([f.factory], { upstreamUrl: up.url, lingerMs: 600_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1001, 'gone');
    await ended;
    expect(f.ctx().audio.outputFrames).toBe(0);
  });
});
