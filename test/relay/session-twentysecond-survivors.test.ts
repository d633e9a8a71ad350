import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { QUEUED_FRAME_OVERHEAD_BYTES } from '../../src/pipeline/chain.js';
import { CONTINUE, DROP, replace, type FilterFactory, type Verdict } from '../../src/pipeline/filter.js';
import { Frame } from '../../src/pipeline/frame.js';
import type { SpokenTurnsRecord } from '../../src/protocol/spoken-turns.js';
import { ProxyError } from '../../src/protocol/errors.js';
import { TRANSLATION_SESSION_KEY } from '../../src/protocol/events.js';
import { MemoryBudget } from '../../src/server/memory-budget.js';
import type { FakeClient } from '../support/relay-session.js';
import { filterOf, relaySessionFixture, reportsFilter, send, sendRaw, until } from '../support/relay-session.js';

/**
 * What mutation testing of src/relay/session.ts found untested (twenty-second session, 2026-12-07):
 * each test names the mutant it kills. The relay core on its own (test/support/relay-session.ts).
 */

const core = relaySessionFixture();
const { open, upstreamReceived } = core;

const errors = (client: FakeClient) => client.frames.filter((f) => f['type'] === 'error').map((f) => f['error'] as Record<string, unknown>);

/** An upstream that starts `resp_<n>` on each create and leaves the rest to the test (`socket`: its last connection). */
async function manualUpstream(): Promise<{ url: string; socket: () => WebSocket; received: Record<string, unknown>[] }> {
  const up = await core.respondingUpstream();
  return { url: up.url, socket: () => up.connections.at(-1)!, received: up.received };
}

const textDelta = (id: string, n: number) => JSON.stringify({ type: 'response.output_text.delta', event_id: `evt_d${n}_${id}`, response_id: id, item_id: 'item_x', output_index: 0, content_index: 0, delta: 'x' });
const responseDone = (id: string, status = 'completed') => JSON.stringify({ type: 'response.done', event_id: `evt_done_${id}`, response: { id, object: 'realtime.response', status, output: [], usage: null } });

const itemCreate = (text: string) => ({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

describe('RelaySession survivors: large frames and the memory budget', () => {
  // 340: `refused === 'share'` → true / false / `!==`.
  it("a frame over the tenant's share is refused as the tenant's (scope and limit in details); one over the global budget as everyone's", async () => {
    const shared = new MemoryBudget(400 * 1024, 0.25);
    const { session, client } = open([], { budget: shared });
    await until(() => client.types().includes('session.created'), 'session.created');
    sendRaw(session, JSON.stringify(itemCreate('x'.repeat(120 * 1024))));
    await until(() => errors(client).length === 1, 'the share refusal');
    expect(errors(client)[0]).toEqual({
      type: 'server_error',
      code: 'memory_budget_exceeded',
      message: "This tenant's sessions hold their share of the proxy's memory budget; the frame was not relayed. Retry shortly.",
      param: null,
      event_id: null,
      details: { scope: 'tenant', limit: 100 * 1024 },
    });

    const global = new MemoryBudget(200 * 1024);
    const other = open([], { budget: global });
    await until(() => other.client.types().includes('session.created'), 'session.created');
    sendRaw(other.session, JSON.stringify(itemCreate('x'.repeat(150 * 1024))));
    sendRaw(other.session, JSON.stringify(itemCreate('x'.repeat(100 * 1024))));
    await until(() => errors(other.client).length === 1, 'the global refusal');
    expect(errors(other.client)[0]).toEqual({
      type: 'server_error',
      code: 'memory_budget_exceeded',
      message: 'The proxy is holding too much data for all sessions; the frame was not relayed. Retry shortly.',
      param: null,
      event_id: null,
    });
    expect(session.ended || other.session.ended).toBe(false);
  });
});

describe('RelaySession survivors: frames queued behind a verdict', () => {
  // 346: `queued('client') > 0` → true / `>= 0`: the bound is on what waits, not on a frame that leaves at once.
  it('a frame within the upstream buffer limit but not with the overhead of a queued frame, with nothing waiting, leaves at once', async () => {
    const { session, client } = open([], { backpressure: { upstreamMaxBufferedBytes: 4096 } });
    await until(() => client.types().includes('session.created'), 'session.created');
    const big = { type: 'input_audio_buffer.clear', event_id: 'evt_big', pad: 'x'.repeat(4000) };
    expect(Buffer.byteLength(JSON.stringify(big)) + QUEUED_FRAME_OVERHEAD_BYTES).toBeGreaterThan(4096);
    send(session, big);
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_big'), 'the large frame upstream');
    expect(session.ended).toBe(false);
    expect(errors(client)).toEqual([]);
  });

  // 346:45: `queuedBytes + byteLength` → `-`: the arriving frame's own bytes count toward the bound.
  it('a frame that would fit beside what waits only without its own bytes ends the session (upstream_backpressure)', async () => {
    let release!: (v: Verdict) => void;
    const holder = filterOf({ client: ['conversation.item.create'] }, () => new Promise<Verdict>((r) => (release = r)));
    const { session, client } = open([holder.factory], { backpressure: { upstreamMaxBufferedBytes: 4096 } });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, itemCreate('held'));
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_small', pad: 'x'.repeat(500) });
    expect(session.ended).toBe(false);
    // ~800 bytes queued (with its overhead): 3200 more, with their own overhead, pass 4096.
    const waiting = Buffer.byteLength(JSON.stringify({ type: 'input_audio_buffer.clear', event_id: 'evt_small', pad: 'x'.repeat(500) })) + QUEUED_FRAME_OVERHEAD_BYTES;
    expect(waiting + 3200 + QUEUED_FRAME_OVERHEAD_BYTES).toBeGreaterThan(4096);
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_over', pad: 'x'.repeat(3200) });
    await until(() => session.ended, 'the session ended');
    expect(errors(client)).toEqual([expect.objectContaining({ code: 'upstream_backpressure' })]);
    release(CONTINUE);
  });
});

describe('RelaySession survivors: what a client may send', () => {
  // 360: `type !== AUDIO_IN && …` → true. Appends are relayed as their bytes, never parsed on the
  // relay's path (the depth scan is the parsers' guard; the strict parser has its own when a filter reads one).
  it('an input audio append is not depth-scanned: relayed as sent, while any other event nesting as deep is refused', async () => {
    const { session, client } = open([], { maxJsonDepth: 8 });
    await until(() => client.types().includes('session.created'), 'session.created');
    const nested = `${'['.repeat(9)}1${']'.repeat(9)}`;
    sendRaw(session, `{"type":"input_audio_buffer.append","event_id":"evt_deep_audio","audio":"AAAA","x":${nested}}`);
    sendRaw(session, `{"type":"input_audio_buffer.clear","event_id":"evt_deep_clear","x":${nested}}`);
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_after' });
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_after'), 'the marker upstream');
    expect(upstreamReceived().filter((e) => String(e['event_id']).startsWith('evt_deep')).map((e) => e['event_id'])).toEqual(['evt_deep_audio']);
    // The proxy refused the clear; the upstream judged the append's shape (the simulator, as OpenAI, refuses the unknown member).
    await until(() => errors(client).length === 2, "the upstream's answer to the append");
    expect(errors(client)).toEqual([
      { type: 'invalid_request_error', code: 'invalid_event', message: 'The event nests deeper than 8 levels.', param: null, event_id: 'evt_deep_clear', details: { reason: 'too_deep' } },
      expect.objectContaining({ code: 'unknown_parameter', param: 'x', event_id: 'evt_deep_audio' }),
    ]);
    expect(session.audio.inputFrames).toBe(1);
  });

  // 405:21 (a non-string event_id echoed) and 406:9 (every parsed frame refused): the parser's path.
  it('a frame only the parser reads goes through it: a typed one is relayed; an untyped one is refused, its event_id echoed only when a string', async () => {
    const { session, client } = open([]);
    await until(() => client.types().includes('session.created'), 'session.created');
    sendRaw(session, '{"type":"input_audio_buffer.\\u0063lear","event_id":"evt_escaped"}');
    sendRaw(session, '{"event_id":7,"type":7}');
    sendRaw(session, '{"event_id":"evt_named","type":["x"]}');
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_after' });
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_after'), 'the marker upstream');
    expect(upstreamReceived().filter((e) => e['type'] === 'input_audio_buffer.clear').map((e) => e['event_id'])).toEqual(['evt_escaped', 'evt_after']);
    const message = "The 'type' field is missing or not a string.";
    expect(errors(client)).toEqual([
      { type: 'invalid_request_error', code: 'invalid_event', message, param: null, event_id: null },
      { type: 'invalid_request_error', code: 'invalid_event', message, param: null, event_id: 'evt_named' },
    ]);
  });

  // 449: the relay's own refusals (binary, too large, unparseable) are reported as the relay's verdicts, with their codes.
  it("a frame the relay refuses unread is reported as the relay's reject verdict with the refusal's code", async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)], { maxFrameBytes: 4096 });
    await until(() => client.types().includes('session.created'), 'session.created');
    sendRaw(session, JSON.stringify({ type: 'response.create' }), true);
    sendRaw(session, JSON.stringify({ type: 'response.create', pad: 'x'.repeat(4100) }));
    sendRaw(session, '{"type":');
    await until(() => errors(client).length === 3, 'the refusals');
    const verdict = (code: string) => ({ kind: 'verdict', filter: 'relay', direction: 'client', eventType: 'unread', verdict: 'reject', code });
    expect(reports.filter((r) => r['kind'] === 'verdict')).toEqual([verdict('invalid_event'), verdict('frame_too_large'), verdict('invalid_json')]);
    expect(session.stats.rejectedFrames).toBe(3);
  });

  // 373 `#refusedForSessionKind(…)` → false on the sniffed path (410 is the parsed one).
  it("a translation session's append in a realtime session is refused before any filter or the upstream sees it, sniffed or parsed; counted as the relay's reject", async () => {
    const reports: Record<string, unknown>[] = [];
    const seen: string[] = [];
    const watcher = filterOf({ client: '*' }, (_c, _d, frame) => {
      seen.push(frame.type);
      return CONTINUE;
    });
    const { session, client } = open([reportsFilter(reports), watcher.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'session.input_audio_buffer.append', event_id: 'evt_sniffed', audio: 'AAAA' });
    // An escape in the type: the sniffer cannot read it, the parser does.
    sendRaw(session, '{"type":"session.input_audio_buffer.\\u0061ppend","event_id":"evt_parsed","audio":"AAAA"}');
    send(session, { type: 'input_audio_buffer.clear', event_id: 'evt_after' });
    await until(() => upstreamReceived().some((e) => e['event_id'] === 'evt_after'), 'the marker upstream');
    expect(upstreamReceived().filter((e) => e['type'] === 'session.input_audio_buffer.append')).toEqual([]);
    expect(seen).toEqual(['input_audio_buffer.clear']);
    const message = "'session.input_audio_buffer.append' is a translation session's event ('/realtime/translations'); use 'input_audio_buffer.append'. It was not sent upstream.";
    expect(errors(client)).toEqual([
      { type: 'invalid_request_error', code: 'invalid_event', message, param: 'type', event_id: 'evt_sniffed' },
      { type: 'invalid_request_error', code: 'invalid_event', message, param: 'type', event_id: 'evt_parsed' },
    ]);
    expect(session.stats.rejectedFrames).toBe(2);
    expect(reports.filter((r) => r['kind'] === 'verdict' && r['verdict'] === 'reject')).toEqual([
      { kind: 'verdict', filter: 'relay', direction: 'client', eventType: 'unread', verdict: 'reject', code: 'invalid_event' },
      { kind: 'verdict', filter: 'relay', direction: 'client', eventType: 'unread', verdict: 'reject', code: 'invalid_event' },
    ]);
    expect(session.ended).toBe(false);
  });

  it('a translation session takes its own events only: a realtime event is refused there, sniffed or parsed; its own pass', async () => {
    const { session, client } = open([], { query: { [TRANSLATION_SESSION_KEY]: '1' } });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_create' });
    sendRaw(session, '{"type":"response.\\u0063reate","event_id":"evt_create_parsed"}');
    // A type is quoted up to 64 characters.
    send(session, { type: `x.${'y'.repeat(100)}`, event_id: 'evt_long' });
    send(session, { type: 'session.update', event_id: 'evt_own', session: { type: 'realtime' } });
    await until(() => upstreamReceived().some((e) => e['type'] === 'session.update'), 'its own event upstream');
    expect(upstreamReceived().filter((e) => e['type'] === 'response.create')).toEqual([]);
    const message = "A translation session takes session.update, session.input_audio_buffer.append, session.close only; 'response.create' was not sent upstream.";
    expect(errors(client)).toEqual([
      { type: 'invalid_request_error', code: 'invalid_event', message, param: 'type', event_id: 'evt_create' },
      { type: 'invalid_request_error', code: 'invalid_event', message, param: 'type', event_id: 'evt_create_parsed' },
      expect.objectContaining({ message: `A translation session takes session.update, session.input_audio_buffer.append, session.close only; 'x.${'y'.repeat(62)}' was not sent upstream.`, event_id: 'evt_long' }),
    ]);
    expect(session.ended).toBe(false);
    session.close(new ProxyError('server_shutting_down'));
  });
});

describe('RelaySession survivors: the upstream path', () => {
  // 516: the idle waiters, resolved by the upstream frame after which nothing is in flight (the false, `||`,
  // `<= 0`, negation-dropped and empty-list mutants). A call's governor awaits idle() before hanging up.
  it('idle() resolves at once with nothing in flight; with a response running, at its response.done, not at a frame before it', async () => {
    const up = await manualUpstream();
    const { session, client } = open([], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    let idleAtOnce = false;
    void session.idle(60_000).then(() => (idleAtOnce = true));
    await until(() => idleAtOnce, 'idle with nothing in flight');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    let idle = false;
    void session.idle(60_000).then(() => (idle = true));
    up.socket().send(textDelta('resp_1', 0));
    await until(() => client.types().includes('response.output_text.delta'), 'the delta');
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    // Far before the 60 s bound: the response.done resolves it.
    up.socket().send(responseDone('resp_1'));
    await until(() => idle, 'idle at the response.done');
    expect(client.types().at(-1)).toBe('response.done');
  });
});

describe('RelaySession survivors: client events after the filters', () => {
  // 646: the stamped report (metering pairs a commit's answer by it; guardrails an item create's error).
  it("every stamped event is reported with the proxy's id it left with and the client's own (null when it sent none)", async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { ...itemCreate('hello'), event_id: 'evt_item' });
    send(session, { type: 'input_audio_buffer.commit' });
    await until(() => upstreamReceived().some((e) => e['type'] === 'input_audio_buffer.commit'), 'the commit upstream');
    const left = (type: string) => upstreamReceived().find((e) => e['type'] === type)!['event_id'];
    expect(reports.filter((r) => r['kind'] === 'stamped')).toEqual([
      { kind: 'stamped', eventType: 'conversation.item.create', eventId: left('conversation.item.create'), clientEventId: 'evt_item' },
      { kind: 'stamped', eventType: 'input_audio_buffer.commit', eventId: left('input_audio_buffer.commit'), clientEventId: null },
    ]);
    expect(left('conversation.item.create')).toMatch(/^event_proxy_/);
  });
});

describe('RelaySession survivors: a create a filter stopped', () => {
  // 695: `direction === 'client' && injectedBy === null` → true / `||` / `injectedBy` dropped: only the
  // client's own create stands for spoken turns; a create the proxy made (the hold's answer) that a later
  // filter refused (metering over a cap) is none, and must not set the hold owing the turns again.
  it("a client create a later filter stopped stands no more for the turns; a create a filter made and a later one stopped does not count", async () => {
    let refusedCount = 0;
    let record: SpokenTurnsRecord | null = null;
    const hold = filterOf({ client: ['response.create'] }, (ctx) => {
      record ??= ctx.conversation.spokenTurns.open(8, () => refusedCount++);
      return CONTINUE;
    });
    const refuser = filterOf({ client: ['response.create'] }, () => ({ kind: 'reject', error: new ProxyError('guardrail_blocked') }));
    const { session, client } = open([hold.factory, { ...refuser.factory, name: 'refuser' }]);
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_first' });
    await until(() => errors(client).length === 1, "the first create's refusal");
    expect(record).not.toBeNull();
    // The hold let a client create go that stands for the turns (still in the chain) when the proxy's own create is stopped.
    record!.stand(true);
    session.sendUpstream({ type: 'response.create' }, 'hold');
    await until(() => errors(client).length === 2, "the proxy's create refused");
    expect(refusedCount).toBe(0);
    expect(record!.standing).toBe(true);
    // The client's own create stopped: the record hears it (the hold owes the turns again).
    send(session, { type: 'response.create', event_id: 'evt_second' });
    await until(() => errors(client).length === 3, "the second create's refusal");
    expect(refusedCount).toBe(1);
    expect(record!.standing).toBe(false);
    expect(upstreamReceived().filter((e) => e['type'] === 'response.create')).toEqual([]);
  });
});

describe('RelaySession survivors: events the proxy injects', () => {
  // 752: only a create or a session.update the proxy makes goes through the filters after its sender
  // (metering reserves or clamps it); its other events (cancels, deletes) leave at once.
  it("a response.create or session.update the proxy makes meets the filters; its cancels and deletes go straight upstream", async () => {
    const seen: string[] = [];
    const watcher = filterOf({ client: ['response.create', 'session.update', 'response.cancel', 'conversation.item.delete'] }, (_c, _d, frame) => {
      seen.push(frame.type);
      return CONTINUE;
    });
    const { session, client } = open([watcher.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'session.update', session: { type: 'realtime', instructions: 'x' } }, 'outside');
    session.sendUpstream({ type: 'response.cancel', response_id: 'resp_x' }, 'outside');
    session.sendUpstream({ type: 'conversation.item.delete', item_id: 'item_x' }, 'outside');
    session.sendUpstream({ type: 'response.create', response: { output_modalities: ['text'] } }, 'outside');
    await until(() => upstreamReceived().some((e) => e['type'] === 'response.create'), 'the create upstream');
    expect(seen).toEqual(['session.update', 'response.create']);
    // Each once, in the order sent (752's emptied block sent the create and the update twice).
    expect(upstreamReceived().map((e) => e['type'])).toEqual(['session.update', 'response.cancel', 'conversation.item.delete', 'response.create']);
  });

  // 764/766: metering keys a create's reservation by the id it left with: an injected create is
  // reported create_sent with its id as it leaves; no other injected event is.
  it("an injected create is reported create_sent with the id it left with; an injected session.update is not", async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'session.update', session: { type: 'realtime', instructions: 'x' } }, 'outside');
    session.sendUpstream({ type: 'response.create', response: { output_modalities: ['text'] } }, 'outside');
    await until(() => upstreamReceived().some((e) => e['type'] === 'response.create'), 'the create upstream');
    const createId = upstreamReceived().find((e) => e['type'] === 'response.create')!['event_id'];
    expect(createId).toMatch(/^event_proxy_/);
    expect(reports.filter((r) => r['kind'] === 'create_sent' || r['kind'] === 'injected')).toEqual([
      { kind: 'injected', direction: 'client', eventType: 'session.update', by: 'outside' },
      { kind: 'create_sent', eventId: createId },
      { kind: 'injected', direction: 'client', eventType: 'response.create', by: 'outside' },
    ]);
  });

  // 760: a create the proxy made before the client left, released by a verdict while the session
  // lingers, is not sent (nobody would hear the response; OpenAI would bill it).
  it('an injected create released by its verdict while the session lingers does not go upstream', async () => {
    const up = await manualUpstream();
    let release!: (v: Verdict) => void;
    const holder = filterOf({ client: ['response.create'] }, (_c, _d, frame) => (frame.string('event_id') === 'evt_proxy' ? new Promise<Verdict>((r) => (release = r)) : CONTINUE));
    const { session, client } = open([holder.factory], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_client' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.sendUpstream({ type: 'response.create', event_id: 'evt_proxy' }, 'outside');
    session.onClientClose(1001, 'gone');
    await until(() => up.received.some((e) => e['type'] === 'response.cancel'), 'the linger cancel');
    release(CONTINUE);
    await new Promise((r) => setImmediate(r));
    up.socket().send(responseDone('resp_1', 'cancelled'));
    // Under the mutant the create left and its response kept the session lingering.
    await until(() => session.ended, 'the linger ended');
    expect(up.received.map((e) => e['type'])).toEqual(['response.create', 'response.cancel']);
  });

  // 766 `eventId !== null` → true: a create a filter rewrote without an event_id has no id to key a reservation by.
  it('an injected create a later filter rewrote without an event_id is not reported create_sent', async () => {
    const reports: Record<string, unknown>[] = [];
    const bare = { type: 'response.create', response: { output_modalities: ['text'] } };
    const rewriter = filterOf({ client: ['response.create'] }, () => replace(Frame.fromEvent(bare)));
    const { session, client } = open([reportsFilter(reports), rewriter.factory]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.sendUpstream({ type: 'response.create' }, 'outside');
    await until(() => upstreamReceived().some((e) => e['type'] === 'response.create'), 'the create upstream');
    expect(upstreamReceived().find((e) => e['type'] === 'response.create')!['event_id']).toBeUndefined();
    expect(reports.filter((r) => r['kind'] === 'create_sent' || r['kind'] === 'injected')).toEqual([{ kind: 'injected', direction: 'client', eventType: 'response.create', by: 'outside' }]);
  });

  // 784: a notice the proxy sends the client is reported as injected toward the client, by its filter.
  it('a notice is reported as injected (server direction, its event type, its filter)', async () => {
    const reports: Record<string, unknown>[] = [];
    const { session, client } = open([reportsFilter(reports)], { notices: 'error' });
    await until(() => client.types().includes('session.created'), 'session.created');
    session.notify(new ProxyError('guardrail_blocked'), 'guardrails');
    await until(() => client.types().includes('error'), 'the notice');
    expect(reports.filter((r) => r['kind'] === 'injected')).toEqual([{ kind: 'injected', direction: 'server', eventType: 'error', by: 'guardrails' }]);
  });

  // 731: a create a filter makes while the session lingers is withheld before any filter sees it
  // (metering would reserve a response that never leaves).
  it('a create the proxy makes while the session lingers reaches no filter (and not the upstream)', async () => {
    const up = await manualUpstream();
    const seen: string[] = [];
    const watcher = filterOf({ client: ['response.create'] }, (_c, _d, frame) => {
      seen.push(frame.string('event_id') ?? 'none');
      return CONTINUE;
    });
    const { session, client, ended } = open([watcher.factory], { upstreamUrl: up.url, lingerMs: 10_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create', event_id: 'evt_client' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1001, 'gone');
    await until(() => up.received.some((e) => e['type'] === 'response.cancel'), 'the linger cancel');
    session.sendUpstream({ type: 'response.create', event_id: 'evt_proxy' }, 'outside');
    up.socket().send(responseDone('resp_1', 'cancelled'));
    await ended;
    expect(seen).toEqual(['evt_client']);
    expect(up.received.map((e) => e['type'])).toEqual(['response.create', 'response.cancel']);
  });
});

describe('RelaySession survivors: cancelResponse', () => {
  // 811 `notice.closesSession` → false: a cancel whose reason closes the session ends it (error, then its close code), with no notice.
  it('a cancel whose reason closes the session ends it with that error and close code; no notice', async () => {
    const { session, client } = open([]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.cancelResponse('resp_gone', 'test', new ProxyError('guardrail_blocked', { close: 'policyViolation' }));
    await until(() => session.ended, 'the session ended');
    expect(client.types().slice(1)).toEqual(['error']);
    expect(client.frames[1]!['error']).toMatchObject({ code: 'guardrail_blocked' });
    expect(client.ended?.code).toBe(4003);
  });
});

describe('RelaySession survivors: the linger', () => {
  // 997 (the recheck timer's callback emptied): a filter still deciding on the response.done when the
  // linger looks is looked at again; a verdict that drops the frame forwards nothing that would.
  it('a response.done a filter drops only after the linger looked still ends the linger, long before its bound', async () => {
    const up = await manualUpstream();
    let release: ((v: Verdict) => void) | null = null;
    const dropper = filterOf({ server: ['response.done'] }, () => new Promise<Verdict>((r) => (release = r)));
    const { session, client } = open([dropper.factory], { upstreamUrl: up.url, lingerMs: 600_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    session.onClientClose(1000, '');
    up.socket().send(responseDone('resp_1', 'cancelled'));
    await until(() => release !== null, 'the response.done at the filter');
    // The linger looked while the verdict was pending (deferred by a turn).
    await new Promise((r) => setImmediate(r));
    expect(session.ended).toBe(false);
    release!(DROP);
    await until(() => session.ended, 'the linger ended');
    expect(session.endRecord()).toMatchObject({ initiator: 'client' });
  });
});

describe('RelaySession survivors: the upstream closing', () => {
  // 1028–1033: a filter that knows why the upstream closed (a call the proxy ended from another process):
  // the client gets that error and its close code, once known; without one the upstream's close passes.
  it("a filter's reason for the upstream's close is what the client gets; a filter without one lets the close pass as it came", async () => {
    for (const reason of [new ProxyError('guardrail_blocked', { close: 'policyViolation' }), null]) {
      const up = await manualUpstream();
      const knowing: FilterFactory = { name: 'knowing', wants: {}, create: () => ({ onUpstreamClosed: () => Promise.resolve(reason) }) };
      const { session, client } = open([knowing], { upstreamUrl: up.url });
      await until(() => client.types().includes('session.created'), 'session.created');
      up.socket().close(1000, 'call ended');
      await until(() => session.ended, 'the session ended');
      if (reason) {
        expect(client.types().slice(1)).toEqual(['error']);
        expect(client.frames[1]!['error']).toMatchObject({ code: 'guardrail_blocked' });
        expect(client.ended?.code).toBe(4003);
      } else {
        expect(client.types().slice(1)).toEqual([]);
        expect(client.ended).toEqual({ code: 1000, reason: 'call ended' });
      }
    }
  });
});

describe('RelaySession survivors: only an `error` event refuses the proxy key', () => {
  // 510: `frame.type === 'error'` → true (was listed equivalent): a transcription failure whose own
  // `error` names an auth code would have ended the session as the proxy's key refused.
  it('a transcription failure with an auth code in its error reaches the client and the session goes on', async () => {
    const up = await manualUpstream();
    const { session, client } = open([], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    const failed = { type: 'conversation.item.input_audio_transcription.failed', event_id: 'evt_tf1', item_id: 'item_a', content_index: 0, error: { type: 'invalid_request_error', code: 'invalid_api_key', message: 'x', param: null } };
    up.socket().send(JSON.stringify(failed));
    up.socket().send(JSON.stringify({ type: 'rate_limits.updated', event_id: 'evt_rl', rate_limits: [] }));
    await until(() => client.types().includes('rate_limits.updated'), 'the event after it');
    expect(client.frames.filter((f) => f['type'] === failed.type)).toEqual([failed]);
    expect(errors(client)).toEqual([]);
    expect(session.ended).toBe(false);
  });
});
