import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { systemClock } from '../../src/main.js';
import { ChainTemplate } from '../../src/pipeline/chain.js';
import { CONTINUE, DROP, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../../src/pipeline/filter.js';
import type { Frame } from '../../src/pipeline/frame.js';
import { Conversation } from '../../src/protocol/conversation.js';
import { CloseCode, ProxyError } from '../../src/protocol/errors.js';
import { MemoryBudget } from '../../src/server/memory-budget.js';
import { RelaySession, type ClientSocket } from '../../src/relay/session.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import type { Tenant } from '../../src/tenants/tenant.js';
import { TenantResolver } from '../../src/tenants/resolver.js';
import { upstreamTarget } from '../../src/upstream/dial.js';
import { scriptedUpstream, sessionCreated, type ScriptedUpstream } from '../resilience/support/faulty-upstream.js';

/**
 * The relay core on its own: a RelaySession between a fake client socket (the four uWS calls the
 * client link makes, every frame recorded) and the real simulator upstream, with a chain of test
 * filters. The end-to-end tests reach these paths only with the shipped filters, which never ask
 * for output audio and rarely hold a frame behind a verdict; mutation testing of the core
 * (2026-12-05: 38 of 99 mutants of forward/cancelResponse killed by them) showed what they miss.
 */

const SIM_KEY = 'sk-simulator-core';
let sim: SimulatorHandle;
beforeAll(async () => {
  sim = await startSimulator({ apiKey: SIM_KEY });
});
afterAll(async () => {
  await sim?.close();
});

/** What the client link needs of a uWS socket; every frame the client would read is kept, parsed. */
class FakeClient {
  readonly frames: Record<string, unknown>[] = [];
  ended: { code: number; reason: string } | null = null;
  /** What getBufferedAmount answers, and what send answers (1 written, 0 backpressure). */
  buffered = 0;
  answer = 1;
  send(data: Buffer | string): number {
    this.frames.push(JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as Record<string, unknown>);
    return this.answer;
  }
  cork(fn: () => void): this {
    fn();
    return this;
  }
  getBufferedAmount(): number {
    return this.buffered;
  }
  end(code: number, reason: string): void {
    this.ended = { code, reason };
  }
  types(): string[] {
    return this.frames.map((f) => String(f['type']));
  }
}

/** A test filter: sees what `wants` names, decides with `decide`, reaches its session through `ctx`. */
function filterOf(wants: FilterFactory['wants'], decide: (ctx: SessionContext, direction: 'client' | 'server', frame: Frame) => Verdict | Promise<Verdict>): { factory: FilterFactory; ctx: () => SessionContext } {
  let ctx: SessionContext | null = null;
  const factory: FilterFactory = {
    name: 'test',
    wants,
    create: (c): Filter => {
      ctx = c;
      return { onClient: (f) => decide(c, 'client', f), onServer: (f) => decide(c, 'server', f) };
    },
  };
  return { factory, ctx: () => ctx! };
}

const sessions: RelaySession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) if (!s.ended) s.close(new ProxyError('server_shutting_down'));
});

interface OpenOptions {
  callId?: string;
  backpressure?: Record<string, number>;
  upstreamUrl?: string;
  onInjectedEventError?: string;
  /** Metering on with this linger; off when absent. */
  lingerMs?: number;
  maxFrameBytes?: number;
  maxJsonDepth?: number;
  budget?: MemoryBudget;
}

function open(factories: FilterFactory[], options: OpenOptions = {}): { session: RelaySession; client: FakeClient; ended: Promise<void> } {
  const server: Record<string, unknown> = {
    ...(options.backpressure ? { backpressure: options.backpressure } : {}),
    ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
    ...(options.maxJsonDepth !== undefined ? { maxJsonDepth: options.maxJsonDepth } : {}),
  };
  const config = parseConfig(
    {
      upstream: { provider: 'openai', url: options.upstreamUrl ?? sim.url, apiKey: SIM_KEY, allowCallId: true, ...(options.onInjectedEventError ? { onInjectedEventError: options.onInjectedEventError } : {}) },
      ...(Object.keys(server).length > 0 ? { server } : {}),
      // Metering on only when a test sets the linger (no metering filter: the core only reads its linger setting).
      metering: options.lingerMs !== undefined ? { enabled: true, lingerAfterClientCloseMs: options.lingerMs } : { enabled: false },
      tenants: { acme: { keys: [{ key: 'rpk_core_test_key_0123456789' }] } },
    },
    '(session core test)',
    {},
  );
  const tenant = new TenantResolver(config).tenants.get('acme') as Tenant;
  const query = new Map([['model', 'gpt-realtime']]);
  const client = new FakeClient();
  let onEnded!: () => void;
  const ended = new Promise<void>((r) => (onEnded = r));
  const session = new RelaySession(
    {
      id: `rps_core${sessions.length}`,
      tenant,
      model: 'gpt-realtime',
      query,
      target: upstreamTarget(config.upstream, query, new Map()),
      config,
      template: new ChainTemplate(factories),
      clock: systemClock,
      log: pino({ level: 'silent' }),
      onEnded: () => onEnded(),
      ...(options.callId ? { callId: options.callId } : {}),
      ...(options.budget ? { budget: options.budget } : {}),
    },
    client as unknown as ClientSocket,
  );
  sessions.push(session);
  session.start();
  return { session, client, ended };
}

/** A client frame as uWS hands it over. */
function send(session: RelaySession, event: Record<string, unknown>): void {
  const bytes = Buffer.from(JSON.stringify(event));
  session.onClientMessage(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), false);
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const say = (session: RelaySession, text: string) => {
  send(session, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  send(session, { type: 'response.create' });
};
const responseIdOf = (client: FakeClient) => ((client.frames.find((f) => f['type'] === 'response.created')?.['response'] as { id?: string } | undefined)?.id ?? null);
const upstreamReceived = () => sim.connections.at(-1)!.received.map((r) => r.event as Record<string, unknown>);

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
    expect(client.frames.filter((x) => x['type'] === 'error').map((x) => (x['error'] as { code: string }).code)).toEqual(['guardrail_blocked']);
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
    await until(() => upstreamReceived().some((e) => e['type'] === 'response.create') && sim.connections.at(-1)!.sent.some((e) => e.type === 'response.done'), 'the upstream finished the response');
    const id = sim.connections.at(-1)!.sent.find((e) => e.type === 'response.created')!.responseId!;
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
    await until(() => client.types().includes('error'), 'the notice');
    expect(upstreamReceived().filter((e) => e['type'] === 'response.cancel' || e['type'] === 'output_audio_buffer.clear')).toEqual([]);
    // Idempotent: a second cancel of the same response sends nothing more and no second notice.
    session.cancelResponse('resp_gone', 'test', new ProxyError('guardrail_blocked'));
    await new Promise((r) => setTimeout(r, 20));
    expect(client.types().filter((t) => t === 'error')).toHaveLength(1);
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
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_ok'), 'the allowed item upstream');
    expect(upstreamReceived().some((e) => e['event_id'] === 'evt_bad')).toBe(false);
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
  function reportsFilter(reports: Record<string, unknown>[]): FilterFactory {
    return { name: 'reports', wants: {}, create: () => ({ onReport: (r) => void reports.push(r as unknown as Record<string, unknown>) }) };
  }

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
    const { session, client, ended } = open([]);
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
      const { session, client, ended } = open([], { upstreamUrl: up.url });
      await until(() => client.types().includes('session.created'), 'session.created');
      session.sendUpstream({ type, ...body } as never, 'test');
      const what = `${type} ${code} ${param}`;
      if (harmless) {
        await new Promise((r) => setTimeout(r, 60));
        expect(session.ended, what).toBe(false);
        expect(client.frames.filter((f) => f['type'] === 'error'), what).toEqual([]);
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
  const raw = (session: RelaySession, text: string | Buffer, binary = false) => {
    const copy = new Uint8Array(Buffer.byteLength(text));
    copy.set(Buffer.isBuffer(text) ? text : Buffer.from(text));
    session.onClientMessage(copy.buffer, binary);
  };
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
    // (The frame being checked is the filter's; what queues behind it counts.)
    const queued = () => Buffer.byteLength(JSON.stringify({ type: 'input_audio_buffer.clear', event_id: 'evt_small', pad: 'x'.repeat(1000) }));
    const fill = (n: number) => ({ type: 'input_audio_buffer.clear', event_id: 'evt_fill', pad: 'x'.repeat(n - Buffer.byteLength(JSON.stringify({ type: 'input_audio_buffer.clear', event_id: 'evt_fill', pad: '' }))) });
    send(session, fill(4096 - queued()));
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

  /** An upstream that starts a response on each create and ends it (cancelled) `doneAfterCancel` ms after a cancel; never when null. */
  async function slowResponses(doneAfterCancel: number | null): Promise<ScriptedUpstream & { received: Record<string, unknown>[] }> {
    const received: Record<string, unknown>[] = [];
    const up = await scriptedUpstream((ws) => {
      ws.send(sessionCreated(1));
      let n = 0;
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as Record<string, unknown>;
        received.push(ev);
        if (ev['type'] === 'response.create') {
          n++;
          ws.send(JSON.stringify({ type: 'response.created', event_id: `evt_rc${n}`, response: { id: `resp_${n}`, object: 'realtime.response', status: 'in_progress', output: [] } }));
        }
        if (ev['type'] === 'response.cancel' && doneAfterCancel !== null) {
          const id = String(ev['response_id']);
          // A cancelled response still streams a little before its response.done.
          for (let d = 0; d < 2; d++) ws.send(JSON.stringify({ type: 'response.output_text.delta', event_id: `evt_d${d}_${id}`, response_id: id, item_id: 'item_x', output_index: 0, content_index: 0, delta: 'x' }));
          setTimeout(() => ws.send(JSON.stringify({ type: 'response.done', event_id: `evt_done_${id}`, response: { id, object: 'realtime.response', status: 'cancelled', output: [], usage: null } })), doneAfterCancel);
        }
      });
    });
    upstreams.push(up);
    return Object.assign(up, { received });
  }

  it('a client that leaves mid-response: one response.cancel, the upstream read until its response.done, then the session ends as the client closed it', async () => {
    const up = await slowResponses(30);
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

  it("the linger ends only once every filter has had the response.done: one still deciding on it (async) keeps the session (2026-12-05: it ended while the verdict was pending, before the filters after it saw the frame)", async () => {
    const up = await slowResponses(10);
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
    const up = await slowResponses(10);
    const { session, client, ended } = open([], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    session.onClientClose(1000, '');
    expect(session.ended).toBe(false);
    await ended;
    expect(up.received.filter((e) => e['type'] === 'response.cancel').map((e) => e['response_id'])).toEqual(['resp_1']);
  });

  it('the linger is bounded: an upstream that never finishes the response is closed after lingerAfterClientCloseMs', async () => {
    const up = await slowResponses(null);
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
      const up = await slowResponses(10);
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
    const up = await slowResponses(30);
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
      const up = await slowResponses(10);
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
    const up = await slowResponses(10);
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
    const up = await slowResponses(null);
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
});
