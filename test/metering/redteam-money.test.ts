/**
 * Red team (metering, 2026-12-06): an adversary with a valid tenant key and a tight cap tries to make
 * the upstream bill more than the proxy reserved or billed. Real sockets through the proxy and the
 * simulator where the simulator can play the upstream's part; the filter harness where it cannot
 * (the simulator keeps a connection's model fixed).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { appendEvents, speechThenSilence, type TestProxy } from '../support/harness.js';
import { startRedis } from './redis-server.js';
import { client, created, done, lastSent, server, session, setup, transcribed, usage } from './filter-harness.js';
import { ADMIN_KEY, errorCode, noticeCode, spend, usageRecords, meteredProxy, until } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);
const total = (records: Record<string, unknown>[]) => records.reduce((a, r) => a + (r['costNanos'] as number), 0);

const proxy = (options: Parameters<typeof meteredProxy>[1] = {}): Promise<TestProxy> => meteredProxy(cleanups, options);


describe('red team: an item_reference to a model item whose id the client "re-created" small', () => {
  /*
   * The estimate keeps a size per item id for out-of-band `item_reference`s. A client
   * `conversation.item.create` naming the id of an item the session already has (the model's answer)
   * is refused upstream as a duplicate, but the estimate recorded the client's tiny item under that
   * id: every out-of-band create then reserves a few tokens for a reference the upstream reads as
   * the model's whole answer.
   */
  it('admission worst_case, $0.20 cap: out-of-band creates reading a 4,000-token answer never take spend over the cap', async () => {
    const cap = '0.20';
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    // A turn whose answer is 16,000 characters of text (the simulator: 4 characters a token, ~4,000 tokens).
    const answer = 'abcd'.repeat(4000);
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ${answer}` }] } });
    c.send({ type: 'response.create', event_id: 'evt_turn', response: { output_modalities: ['text'] } });
    const first = await c.waitFor((e) => e.type === 'response.done' || e.type === 'error', 10_000, 'the first turn');
    expect(first.type).toBe('response.done');
    const modelItem = ((first['response'] as { output: { id: string }[] }).output[0]!).id;
    // The duplicate: refused upstream, the answer stays the item under that id.
    c.send({ type: 'conversation.item.create', event_id: 'evt_dup', item: { id: modelItem, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
    const dup = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_dup', 10_000, 'the duplicate refused');
    expect((dup['error'] as { code: string }).code).toBe('duplicate_item_id');
    const n = 30;
    const ids = Array.from({ length: n }, (_, i) => `evt_oob_${i}`);
    for (const id of ids) {
      c.send({ type: 'response.create', event_id: id, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: modelItem }], metadata: { n: id } } });
    }
    const answered = (id: string) =>
      c.events.some((e) => (e.type === 'response.done' && (e['response'] as { metadata?: { n?: string } }).metadata?.n === id) || (e.type === 'error' && (e['error'] as { event_id?: string }).event_id === id));
    await until(() => ids.every(answered), 30_000, 'every create answered');
    const oobDone = c.ofType('response.done').filter((e) => (e['response'] as { metadata?: { n?: string } | null }).metadata?.n?.startsWith('evt_oob_'));
    const refused = c.ofType('error').filter((e) => errorCode(e) === 'budget_exceeded').length;
    // What the upstream billed each out-of-band response: the answer's ~4,000 tokens as input.
    const inputTokens = oobDone.map((e) => (e['response'] as { usage: { input_tokens: number } }).usage.input_tokens);
    expect(Math.min(...inputTokens)).toBeGreaterThan(3900);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    const spent = total(records);
    expect({ served: oobDone.length, refused, spentNanos: (await spend(tp.adminUrl)).day.spentNanos }).toEqual({ served: oobDone.length, refused: n - oobDone.length, spentNanos: spent });
    // worst_case admission: never over the cap (old code: every one of the 30 served, ~$0.56 against $0.20).
    expect(spent).toBeLessThanOrEqual(nanos(cap));
  }, 60_000);
});

describe('red team: the same once the conversation view has pruned the model item', () => {
  /*
   * The view keeps the most recent 2,048 items (src/protocol/conversation.ts MAX_ITEMS): after 2,100
   * tiny client items (free: no response) it no longer knows the model's answer, so a check against
   * the view alone would take the duplicate create for a new item again.
   */
  it('admission worst_case, $0.20 cap: still never over the cap', async () => {
    const cap = '0.20';
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ${'abcd'.repeat(4000)}` }] } });
    c.send({ type: 'response.create', event_id: 'evt_turn', response: { output_modalities: ['text'] } });
    const first = await c.waitFor((e) => e.type === 'response.done' || e.type === 'error', 10_000, 'the first turn');
    expect(first.type).toBe('response.done');
    const modelItem = ((first['response'] as { output: { id: string }[] }).output[0]!).id;
    for (let i = 0; i < 2100; i++) c.send({ type: 'conversation.item.create', item: { id: `item_filler_${i}`, type: 'message', role: 'user', content: [{ type: 'input_text', text: '.' }] } });
    await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === 'item_filler_2099', 20_000, 'the fillers');
    c.send({ type: 'conversation.item.create', event_id: 'evt_dup', item: { id: modelItem, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
    const n = 30;
    const ids = Array.from({ length: n }, (_, i) => `evt_oob_${i}`);
    for (const id of ids) {
      c.send({ type: 'response.create', event_id: id, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: modelItem }], metadata: { n: id } } });
    }
    const answered = (id: string) =>
      c.events.some((e) => (e.type === 'response.done' && (e['response'] as { metadata?: { n?: string } }).metadata?.n === id) || (e.type === 'error' && (e['error'] as { event_id?: string }).event_id === id));
    await until(() => ids.every(answered), 30_000, 'every create answered');
    // The upstream refused the duplicate: the model's answer is still the item under that id.
    const dup = await c.waitFor((e) => e.type === 'error' && (e['error'] as { event_id?: string }).event_id === 'evt_dup', 10_000, 'the duplicate refused');
    expect(errorCode(dup)).toBe('duplicate_item_id');
    const spent = total(await usageRecords(tp.adminUrl, '?tenant=acme'));
    expect(spent).toBeLessThanOrEqual(nanos(cap));
  }, 60_000);
});

describe('red team: a transcribed commit the client leaves right behind', () => {
  /*
   * The close bills a transcription whose completed event never came by its committed audio, but
   * only for items whose `input_audio_buffer.committed` the proxy read. A client that closes in the
   * same write as its commit ends the session before the upstream's `committed` is read (no response
   * runs, so the relay does not linger): the upstream has the commit and transcribes (and bills) the
   * audio; the proxy billed nothing.
   */
  it('3 s of audio, commit, close at once: the transcription is billed at the close (estimated)', async () => {
    const tp = await proxy({ simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, turn_detection: null } } } });
    await c.next('session.updated');
    for (const ev of appendEvents(Buffer.alloc(3 * 48_000))) c.send(ev);
    c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_commit' });
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    // The upstream got the commit: the 3 s are an item it transcribes (OpenAI bills it: $0.006/min = 300,000 nanos).
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    expect(upstream.received.map((e) => e.type).filter((t) => t.startsWith('input_audio_buffer.commit'))).toEqual(['input_audio_buffer.commit']);
    await until(() => upstream.sent.some((e) => e.type === 'input_audio_buffer.committed'), 5000, 'the upstream committed the audio');
    // The client got nothing about the commit (it left), and the proxy billed it by its audio length.
    expect(c.ofType('input_audio_buffer.committed')).toHaveLength(0);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['model'], r['settledBy'], r['estimated']])).toEqual([['transcription', 'whisper-1', 'client_gone_estimate', true]]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(300_000);
    expect(records[0]!['costNanos'] as number).toBeLessThan(330_000);
  });

  it('the same in one write with the session.update that turns transcription on (before its session.updated)', async () => {
    const tp = await proxy({ simulator: { timing: { transcriptionDelayMs: 2_000 } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'whisper-1' }, turn_detection: null } } } });
    for (const ev of appendEvents(Buffer.alloc(3 * 48_000))) c.send(ev);
    c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_commit' });
    c.ws.close();
    await until(() => tp.proxy.server.sessionCount === 0, 5000, 'session end');
    const upstream = tp.sim.connections[0]!;
    await upstream.closed;
    // The upstream applied the update, then committed the 3 s: it transcribes them.
    expect(upstream.sent.map((e) => e.type).filter((t) => t === 'session.updated' || t === 'input_audio_buffer.committed')).toEqual(['session.updated', 'input_audio_buffer.committed']);
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    expect(records.map((r) => [r['source'], r['model'], r['settledBy'], r['estimated']])).toEqual([['transcription', 'whisper-1', 'client_gone_estimate', true]]);
    expect(records[0]!['costNanos'] as number).toBeGreaterThanOrEqual(300_000);
  });
});

describe('red team: a switch to a cheaper model while a response runs', () => {
  /*
   * The filter harness (the simulator keeps a connection's model fixed). A response runs at the
   * model the session had when it started: OpenAI bills it at that model. The proxy priced every
   * response.done at the model in use when the done arrived, so a client that switches to
   * gpt-realtime-mini while a gpt-realtime-2 response streams had it billed at mini's rates (~1/3).
   */
  it('a gpt-realtime-2 response whose done comes after a confirmed switch to gpt-realtime-mini is billed at gpt-realtime-2', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '5' }, 'gpt-realtime-2');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime-2', max_output_tokens: 'inf' } });
    expect(client(f, { type: 'response.create', event_id: 'c1', response: { max_output_tokens: 4096 } }).kind).toBe('continue');
    server(f, created('resp_1', { max_output_tokens: 4096 }));
    // Mid-response: the switch, confirmed by the upstream (it applies to the responses after it).
    expect(client(f, { type: 'session.update', session: { type: 'realtime', model: 'gpt-realtime-mini' } }).kind).toBe('continue');
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime-mini', max_output_tokens: 'inf' } });
    server(f, done('resp_1', usage(0, 0, 0, 4096), 'incomplete', { max_output_tokens: 4096 }));
    // What the upstream bills: 4,096 audio output tokens at gpt-realtime-2's $64/M = $0.262144.
    expect(s.records.map((r) => [r.ref, r.model, r.costNanos])).toEqual([['resp_1', 'gpt-realtime-2', 4096 * 64_000]]);
    expect(ctx.closedWith).toBeNull();
  });
});

describe('red team: the output of a conversation response that read its own input list', () => {
  /*
   * A create in the default conversation with an `input` list of its own reads that list, but its
   * output is added to the default conversation (OpenAI: `conversation: "auto"`). Its usage does not
   * recalibrate the estimate (it did not read the conversation), and nothing else added its output:
   * the estimate of the conversation lacks it, so a later response reading the conversation (or an
   * out-of-band reference to that output, which counts the whole conversation) is reserved without it.
   */
  it('admission worst_case, $0.40 cap: out-of-band references to that output never take spend over the cap', async () => {
    const cap = '0.40';
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } });
    const c = await tp.client();
    await c.next('session.created');
    const answer = 'abcd'.repeat(4000);
    c.send({ type: 'response.create', event_id: 'evt_own_input', response: { output_modalities: ['text'], input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ${answer}` }] }] } });
    const first = await c.waitFor((e) => e.type === 'response.done' || e.type === 'error', 10_000, 'the first response');
    expect(first.type).toBe('response.done');
    const r1 = first['response'] as { conversation_id: string | null; output: { id: string }[]; usage: { output_tokens: number } };
    // In the default conversation: its ~4,000-token answer is an item of it now.
    expect(r1.conversation_id).not.toBeNull();
    expect(r1.usage.output_tokens).toBeGreaterThan(3900);
    const modelItem = r1.output[0]!.id;
    const n = 30;
    const ids = Array.from({ length: n }, (_, i) => `evt_oob_${i}`);
    for (const id of ids) {
      c.send({ type: 'response.create', event_id: id, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: modelItem }], metadata: { n: id } } });
    }
    const answered = (id: string) =>
      c.events.some((e) => (e.type === 'response.done' && (e['response'] as { metadata?: { n?: string } }).metadata?.n === id) || (e.type === 'error' && (e['error'] as { event_id?: string }).event_id === id));
    await until(() => ids.every(answered), 30_000, 'every create answered');
    const oobDone = c.ofType('response.done').filter((e) => (e['response'] as { metadata?: { n?: string } | null }).metadata?.n?.startsWith('evt_oob_'));
    const refused = c.ofType('error').filter((e) => errorCode(e) === 'budget_exceeded').length;
    expect(oobDone.length + refused).toBe(n);
    const inputTokens = oobDone.map((e) => (e['response'] as { usage: { input_tokens: number } }).usage.input_tokens);
    expect(Math.min(...inputTokens)).toBeGreaterThan(3900);
    const spent = total(await usageRecords(tp.adminUrl, '?tenant=acme'));
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(spent);
    // worst_case admission: never over the cap (old code: all 30 served, ~$0.56 against $0.40).
    expect(spent).toBeLessThanOrEqual(nanos(cap));
  }, 60_000);
});

describe('red team: a transcription completed with a usage that cannot be priced', () => {
  /*
   * The filter harness (the simulator always reports a usage). A response.done whose usage cannot be
   * read is billed at its reservation; an input transcription's completed event with a usage that
   * cannot be read (absent, null, counts that are not numbers, a duration of 0 s) was billed $0,
   * although the proxy knew the committed audio's length (it bills that when the event never comes).
   */
  const tenSeconds = { type: 'input_audio_buffer.append', audio: Buffer.alloc(10 * 48_000).toString('base64') };
  const pcm = { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model: 'gpt-4o-transcribe' } } } } };
  it.each([
    ['absent', undefined],
    ['null', null],
    ['token counts that are not numbers', { type: 'tokens', input_tokens: 'many', output_tokens: 'many', total_tokens: 'many' }],
    ['a duration of 0 s', { type: 'duration', seconds: 0 }],
  ])('usage %s: 10 s of committed audio is billed by its length (estimated), never zero', (_name, u) => {
    const s = setup();
    const { f } = session(s);
    server(f, pcm);
    client(f, tenSeconds);
    client(f, { type: 'input_audio_buffer.commit' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_a', previous_item_id: null });
    server(f, transcribed('item_a', u));
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    // What OpenAI bills: 10 s of audio, at least 100 audio tokens at gpt-4o-transcribe's $6/M = 600,000 nanos.
    expect(s.records.map((r) => [r.source, r.ref, r.estimated])).toEqual([['transcription', 'item_a', true]]);
    expect(s.records[0]!.costNanos).toBeGreaterThanOrEqual(600_000);
  });
});

describe('red team: server VAD idle timeout over a cap', () => {
  /*
   * Over a cap, a server-started response is cancelled at response.created and billed for the input
   * it read; the README bounds that by holding input audio back (no further turn is started). The
   * idle timeout (`server_vad.idle_timeout_ms`) starts a response with no audio at all, and re-arms
   * after every response.done, the cancelled ones included: a client that just keeps the socket open
   * has a response started, cancelled and billed every 5 s, each reading the whole conversation,
   * without bound.
   */
  it('a silent client over its cap is not billed for idle-timeout response after idle-timeout response', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.001' } } } });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: { type: 'server_vad', idle_timeout_ms: 5000, create_response: true } } } } });
    await c.next('session.updated');
    // One turn reading 2,000 tokens of text (the simulator: 8,000 characters), over the $0.001 cap once settled.
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `say: ok ${'abcd'.repeat(2000)}` }] } });
    c.send({ type: 'response.create', response: { max_output_tokens: 1 } });
    await c.next('response.done', 10_000);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBeGreaterThan(nanos('0.001'));
    // Now silent. Each idle timeout: timeout_triggered, a response cancelled over the cap, billed.
    const idle = () => c.ofType('input_audio_buffer.timeout_triggered').length;
    const closed = () => c.ws.readyState >= 2;
    await until(() => idle() >= 3 || closed(), 30_000, 'three idle-timeout responses or the session ended');
    await until(async () => closed() || (await usageRecords(tp.adminUrl, '?tenant=acme')).length >= 1 + idle(), 10_000, 'the idle responses billed');
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    const billedIdle = records.length - 1;
    // Every one billed at the conversation it read (~2,000 tokens); at most one such response past the cap
    // is the README's bound for server-started responses (then the session must stop starting them).
    expect(records.slice(1).every((r) => (r['inputTokens'] as number) > 1900)).toBe(true);
    // Old code: the session goes on, one more response billed every 5 s (3 by the time of this check, no end).
    expect(billedIdle).toBeLessThanOrEqual(2);
    // Now: the second one ends the session (close 4002, budget_exceeded), the client told at each cancel
    // (a notice: nothing the client sent was refused) and at the end (an error).
    expect((await c.closed).code).toBe(4002);
    expect(c.ofType('rtproxy.notice').map((e) => noticeCode(e))).toEqual(['budget_exceeded', 'budget_exceeded']);
    expect(c.ofType('error').map((e) => errorCode(e))).toEqual(['budget_exceeded']);
  }, 60_000);
});

describe('red team: a create answered after pendingResponseTimeoutMs', () => {
  /*
   * The filter harness (a late response.created needs an upstream slower than the timeout), admission
   * worst_case, a $0.20 cap, out-of-band creates that each read ~30,000 text tokens ($0.12 at $4/M).
   */
  afterEach(() => {
    vi.useRealTimers();
  });

  function lateCreates() {
    vi.useFakeTimers();
    const s = setup({ pendingResponseTimeoutMs: 1000, admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.20' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    const big = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(30_000) }] };
    const create = (id: string) => client(f, { type: 'response.create', event_id: id, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [big], metadata: { k: id } } });
    const echo = (id: string) => ({ conversation_id: null, metadata: { k: id } });
    // The upstream starts the response of create `id`, then bills what it read: the ~30,000 tokens and one output token.
    const started = (responseId: string, id: string) => server(f, created(responseId, { ...echo(id), max_output_tokens: 1 }));
    const billed = (responseId: string, id: string) => server(f, done(responseId, usage(30_000, 0, 1, 0), 'completed', echo(id)));
    const spentNanos = () => s.records.reduce((a, r) => a + r.costNanos, 0);
    return { s, f, create, started, billed, spentNanos };
  }

  /*
   * A create never answered within pendingResponseTimeoutMs was released; if its response started
   * after all, it reserved itself like a server-started response: at the conversation estimate and the
   * session's prompt, without the create's own `input` list (out-of-band). Admission then let a second
   * such create through against the freed budget, and both ran.
   */
  it('a late-started out-of-band response keeps its create\'s worst case', () => {
    const { create, started, billed, spentNanos } = lateCreates();
    expect(create('c1').kind).toBe('continue');
    vi.advanceTimersByTime(1000);
    // c1's response starts late; a second create is sent meanwhile.
    started('resp_1', 'c1');
    const second = create('c2');
    if (second.kind !== 'reject') started('resp_2', 'c2');
    billed('resp_1', 'c1');
    if (second.kind !== 'reject') billed('resp_2', 'c2');
    // worst_case admission: never over the cap (old code: both ran, $0.24 against $0.20).
    expect(spentNanos()).toBeLessThanOrEqual(200_000_000);
    expect(second.kind).toBe('reject');
  });

  /*
   * Found in CI under CPU load (test/metering/adversary-backpressure.test.ts): an event loop stalled
   * past pendingResponseTimeoutMs runs its timers before it reads the socket, so a create whose
   * response.created was already waiting unread was released as never started, the next create was
   * admitted against the freed budget, and then both ran: $1.05 against a $1 cap. Under worst_case
   * no timer releases a create any more.
   */
  it('a stalled event loop: a second create sent after the timeout, before the first one\'s response.created is read, is refused', () => {
    const { s, create, started, billed, spentNanos } = lateCreates();
    expect(create('c1').kind).toBe('continue');
    // The stall: far past the timeout, and c1's response.created not read yet.
    vi.advanceTimersByTime(60_000);
    const second = create('c2');
    started('resp_1', 'c1');
    if (second.kind !== 'reject') started('resp_2', 'c2');
    billed('resp_1', 'c1');
    if (second.kind !== 'reject') billed('resp_2', 'c2');
    // Old code: c2 admitted, both ran, $0.24 against $0.20.
    expect(second.kind).toBe('reject');
    expect(spentNanos()).toBeLessThanOrEqual(200_000_000);
    expect(s.records).toHaveLength(1);
  });

  it('the upstream refusing the held create releases it: the next create is admitted', () => {
    const { f, create } = lateCreates();
    expect(create('c1').kind).toBe('continue');
    vi.advanceTimersByTime(60_000);
    server(f, { type: 'error', event_id: 'e1', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'no', param: null, event_id: lastSent(f) } });
    expect(create('c2').kind).toBe('continue');
  });
});

describe('red team: an MCP tool\'s output in the conversation', () => {
  /*
   * The filter harness (the simulator's MCP server echoes the arguments). An `mcp_call` item carries
   * the MCP server's `output`: the server made it, not the model, so the response's output tokens do
   * not include it, and the calibration after the response (its input + output) leaves it out; the
   * item is the model's (response provenance), so conversation.item.done did not count it either.
   * The next response reads it: a tenant's MCP server returning 100 KB made that response's
   * reservation ~25,000 tokens short.
   */
  it('admission worst_case, $0.08 cap: the response after a 100,000-byte MCP output is reserved with it', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.08' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    client(f, { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'look it up' }] } });
    expect(client(f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 50 } }).kind).toBe('continue');
    server(f, created('resp_1', { max_output_tokens: 50, output_modalities: ['text'] }));
    const call = { id: 'item_call', type: 'mcp_call', server_label: 'kb', name: 'search', arguments: '{"q":"x"}', approval_request_id: null, error: null };
    server(f, { type: 'response.output_item.added', response_id: 'resp_1', output_index: 0, item: { ...call, output: null } });
    const output = 'r'.repeat(100_000);
    server(f, { type: 'response.output_item.done', response_id: 'resp_1', output_index: 0, item: { ...call, output } });
    server(f, { type: 'conversation.item.done', item: { ...call, output } });
    server(f, done('resp_1', usage(20, 0, 10, 0), 'completed', { output_modalities: ['text'], output: [{ ...call, output }] }));
    // The next turn reads the MCP output: ~25,000 tokens (4 bytes a token) on top of the 30 before.
    const v = client(f, { type: 'response.create', event_id: 'c2', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    if (v.kind !== 'reject') {
      server(f, created('resp_2', { max_output_tokens: 1, output_modalities: ['text'] }));
      server(f, done('resp_2', usage(25_030, 0, 1, 0), 'completed', { output_modalities: ['text'] }));
    }
    const spentNanos = s.records.reduce((a, r) => a + r.costNanos, 0);
    // worst_case admission: never over the cap (old code: admitted at ~40 tokens, $0.10 spent against $0.08).
    expect(spentNanos).toBeLessThanOrEqual(80_000_000);
  });
});

describe('red team: a Redis outage mid-session (failMode closed) with server VAD', () => {
  /*
   * While the ledger cannot answer, every response is refused (client) or cancelled at
   * response.created (server VAD). Each cancelled VAD response is still billed by the upstream for
   * the conversation it read, and nothing stops the next: over a cap the README holds input audio back
   * after one such response, but not when the reason is the ledger being down, so a client speaking on
   * through an outage had every turn started, cancelled and billed with no cap checked at all.
   */
  it('one VAD response is cancelled (budget_unavailable), then input audio is held back until the ledger answers', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const tp = await proxy({
      tenants: { acme: { limits: { dailyUsd: '5' } } },
      metering: { ledger: { kind: 'redis', url: redis.url, keyPrefix: `outage${process.pid}:`, commandTimeoutMs: 300 } },
    });
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[0]!;
    const appendsUpstream = () => conn.received.filter((e) => e.type === 'input_audio_buffer.append').length;
    await redis.stop(true);
    // Turn 1: VAD starts a response; the ledger cannot reserve it: cancelled, billed (queued) from its done.
    for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
    await c.nth('response.done', 1, 10_000);
    const relayed = appendsUpstream();
    // Turns 2 and 3 while the ledger is still down.
    for (let turn = 0; turn < 2; turn++) {
      for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
      const marker = `item_marker_${turn}`;
      c.send({ type: 'conversation.item.create', item: { id: marker, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
      await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === marker, 10_000, 'marker item');
    }
    // Old code: all three turns started upstream and cancelled (each billed for what it read).
    expect(c.ofType('response.created')).toHaveLength(1);
    expect(appendsUpstream()).toBe(relayed);
    // The cancelled VAD response is a notice; the first append held back is refused (an error).
    expect(c.ofType('rtproxy.notice').map((e) => noticeCode(e))).toEqual(['budget_unavailable']);
    expect(c.ofType('error').map((e) => errorCode(e))).toEqual(['budget_unavailable']);
    // The ledger answers again: the hold is lifted at its next check (every 5 s), audio flows again.
    await redis.restart();
    const silence = appendEvents(speechThenSilence(0, 100))[0]!;
    await until(() => {
      c.send(silence);
      return appendsUpstream() > relayed;
    }, 30_000, 'input audio relayed again');
  }, 60_000);
});
