import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ChainTemplate, type ChainSink } from '../../src/pipeline/chain.js';
import type { Frame } from '../../src/pipeline/frame.js';
import { Conversation } from '../../src/protocol/conversation.js';
import type { ProxyError } from '../../src/protocol/errors.js';
import { guardrailsFactory } from '../../src/policies/guardrails.js';
import type { PolicyRegistry } from '../../src/policies/registry.js';
import { truncationFactory } from '../../src/policies/truncation.js';
import type { SimConnection } from '../../src/simulator/index.js';
import { FakeSession } from '../support/fake-session.js';
import { appendEvents, speechThenSilence, startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { neverReached, recordBytes, until, type Json } from '../governance/support.js';
import { entryOf, policyDir, policyFrom, wire } from './support.js';

/**
 * `guardrails.holdSpokenInput` with a truncation `budget`: the proxy, not the server, answers a
 * spoken turn (its own `response.create` once the transcript passed), and the budget may refuse a
 * client's `response.create` or prune the conversation. Real proxy, the simulator as upstream
 * (server VAD, transcription taking TRANSCRIPTION_MS), a raw WebSocket client; every event the
 * client receives is asserted, negative checks after a barrier (a retrieve answered through the
 * proxy after everything sent before it).
 */

const TRANSCRIPTION_MS = 250;
/** maxTokens 2,000 × 0.5: target 1,000; instructions and tools share 500 tokens (2,000 characters). */
const policy_ = (keepLast: number, maxTokens = 2000) => `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  holdSpokenInput: { enabled: true, timeoutMs: 5000 }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
truncation:
  budget: { maxTokens: ${maxTokens}, targetRatio: 0.5, keepFirst: 0, keepSystem: true, keepLast: ${keepLast} }
`;

let transcribe: () => string = () => 'what is the weather like today';
let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    // `small`: 200 tokens, keepLast 0: a 25-second turn (≈ 254 tokens) is over the budget by itself.
    tenants: { acme: { policy: 'held' }, small: { policy: 'small' } },
    config: { policies: { dir: policyDir({ 'held.yaml': policy_(2), 'small.yaml': policy_(0, 200) }), watch: false } },
    simulator: { transcribe: () => transcribe(), timing: { transcriptionDelayMs: TRANSCRIPTION_MS, deltaIntervalMs: 1 } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

interface Session {
  readonly c: TestClient;
  readonly raw: string[];
  readonly conn: SimConnection;
}

async function open(tenant = 'acme'): Promise<Session> {
  const before = tp.sim.connections.length;
  const c = await tp.client({ tenant });
  const raw = recordBytes(c);
  await c.next('session.created');
  const updated = await c.next('session.updated');
  expect((updated['session'] as { audio: { input: Json } }).audio.input['turn_detection']).toMatchObject({ type: 'server_vad', create_response: false });
  return { c, raw, conn: tp.sim.connections[before]! };
}

const upstreamGot = (s: Session, type: string) => s.conn.received.filter((e) => e.type === type).map((e) => e.event as Json);
const errors = (s: Session) => s.c.ofType('error').map((e) => e['error'] as Json);
/** The client's event types in order, without the deltas (asserted apart) and the barrier's answer. */
const clientTypes = (s: Session) => s.raw.map((r) => String((JSON.parse(r) as Json)['type'])).filter((t) => !t.endsWith('.delta') && t !== 'conversation.item.retrieved');

async function barrier(s: Session, itemId: string): Promise<void> {
  const n = s.c.events.length;
  s.c.send({ type: 'conversation.item.retrieve', item_id: itemId, event_id: `evt_barrier_${n}` });
  await s.c.waitFor((e) => (e.type === 'conversation.item.retrieved' || e.type === 'error') && s.c.events.indexOf(e) >= n, 5000, 'barrier');
}

/** One spoken turn committed by server VAD, as the client sees it up to its transcript. */
const SPOKEN_TURN = ['session.created', 'session.updated', 'input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done', 'conversation.item.input_audio_transcription.completed'];
/** One audio response, as the client sees it. */
const ONE_RESPONSE = ['response.created', 'response.output_item.added', 'conversation.item.added', 'response.content_part.added', 'response.output_audio.done', 'response.output_audio_transcript.done', 'response.content_part.done', 'conversation.item.done', 'response.output_item.done', 'response.done', 'rate_limits.updated'];

/**
 * After the refusal the turn has exactly one response, the proxy's (its own event id, nothing but
 * the session's settings), which heard the user's speech; the refused create never reached the
 * upstream; the deltas the client got are the response's transcript and audio, in full.
 */
async function expectAnsweredByProxy(s: Session, itemId: string, refusedMarker: string): Promise<void> {
  await barrier(s, itemId);
  // Until 2026-12-06: no response.create ever went upstream; the user's turn had no answer.
  expect(upstreamGot(s, 'response.create')).toEqual([{ type: 'response.create', event_id: expect.stringMatching(/^event_proxy_\w+_[0-9a-f]{12}$/) }]);
  const done = await s.c.next('response.done');
  // The simulator's last event of a response.
  await s.c.next('rate_limits.updated');
  const transcript = String(((done['response'] as { output: { content: Json[] }[] }).output[0]!.content[0]!)['transcript']);
  expect(done['response']).toMatchObject({ status: 'completed', output: [{ type: 'message', role: 'assistant' }] });
  expect(transcript).toMatch(/^I heard you speak for \d\.\d seconds\.$/);
  expect(s.c.ofType('response.output_audio_transcript.delta').map((e) => e['delta']).join('')).toBe(transcript);
  expect(s.c.ofType('response.output_audio.delta').every((e) => e['response_id'] === (done['response'] as Json)['id'])).toBe(true);
  expect(s.c.ofType('conversation.item.input_audio_transcription.delta').map((e) => e['delta']).join('')).toBe('what is the weather like today');
  expect(JSON.stringify(s.conn.received)).not.toContain(refusedMarker);
  expect(neverReached(s.raw, refusedMarker)).toBeNull();
}

describe('a held spoken turn whose client response.create the truncation budget refuses', () => {
  it('server VAD: the client gets context_budget_exceeded for its create (its event_id), and the proxy answers the turn with the session\'s settings (found 2026-12-06)', async () => {
    transcribe = () => 'what is the weather like today';
    const s = await open();
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) s.c.send(e);
    const itemId = String((await s.c.next('input_audio_buffer.committed'))['item_id']);
    // While the turn is held: a create with its own instructions over the 500-token share (1,100 tokens).
    s.c.send({ type: 'response.create', event_id: 'evt_big', response: { instructions: 'Answer as a pirate. '.repeat(220) } });
    await s.c.waitFor((e) => e.type === 'error');
    await expectAnsweredByProxy(s, itemId, 'pirate');
    expect(errors(s)).toEqual([
      {
        type: 'invalid_request_error',
        code: 'context_budget_exceeded',
        message: 'The instructions, tools and prompt variables a response would read exceed their share of the context budget.',
        param: 'response.instructions',
        event_id: 'evt_big',
        details: { tokens: 1100, limit: 500 },
      },
    ]);
    // Every event the client got: the turn and its transcript, the refusal (once the transcript
    // passed and the create was let go), then exactly one response.
    expect(clientTypes(s)).toEqual([...SPOKEN_TURN, 'error', ...ONE_RESPONSE]);
    s.c.close();
  });

  it('push-to-talk: a commit and a create with its own input over maxTokens; the same rule (found 2026-12-06)', async () => {
    transcribe = () => 'what is the weather like today';
    const s = await open();
    s.c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await s.c.nth('session.updated', 2);
    for (const e of appendEvents(speechThenSilence(500, 0), 20)) s.c.send(e);
    s.c.send({ type: 'input_audio_buffer.commit', event_id: 'evt_commit' });
    // An in-conversation create reading its own input of ≈ 2,504 tokens: over maxTokens (2,000).
    s.c.send({ type: 'response.create', event_id: 'evt_input', response: { input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'parrot '.repeat(1430) }] }] } });
    const itemId = String((await s.c.next('input_audio_buffer.committed'))['item_id']);
    await s.c.waitFor((e) => e.type === 'error');
    await expectAnsweredByProxy(s, itemId, 'parrot');
    // The input (4 + 10,010 / 4 tokens) with the session's instructions it reads too.
    const instructions = String((s.c.ofType('session.created')[0]!['session'] as Json)['instructions']);
    expect(errors(s)).toEqual([
      {
        type: 'invalid_request_error',
        code: 'context_budget_exceeded',
        message: 'The instructions, tools and prompt variables a response would read exceed their share of the context budget.',
        param: 'response.input',
        event_id: 'evt_input',
        details: { tokens: 2507 + Math.ceil(instructions.length / 4), limit: 2000 },
      },
    ]);
    expect(clientTypes(s)).toEqual([
      'session.created',
      'session.updated',
      'session.updated',
      'input_audio_buffer.committed',
      'conversation.item.added',
      'conversation.item.done',
      'conversation.item.input_audio_transcription.completed',
      'error',
      ...ONE_RESPONSE,
    ]);
    s.c.close();
  });

  it('a create the budget lets through still stands for the turn: one response, the client\'s, and no second one from the proxy', async () => {
    transcribe = () => 'what is the weather like today';
    const s = await open();
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) s.c.send(e);
    const itemId = String((await s.c.next('input_audio_buffer.committed'))['item_id']);
    s.c.send({ type: 'response.create', event_id: 'evt_fits', response: { instructions: 'Answer briefly.' } });
    const done = await s.c.next('response.done');
    expect(done['response']).toMatchObject({ status: 'completed' });
    await barrier(s, itemId);
    const creates = upstreamGot(s, 'response.create');
    expect(creates).toEqual([{ type: 'response.create', event_id: expect.stringMatching(/^event_proxy_\w+_[0-9a-f]{12}$/), response: { instructions: 'Answer briefly.' } }]);
    expect(errors(s)).toEqual([]);
    expect(clientTypes(s)).toEqual([...SPOKEN_TURN, ...ONE_RESPONSE]);
    s.c.close();
  });
});

describe('a held spoken turn the budget would prune', () => {
  it('keepLast 0, a turn over the budget by itself: not deleted while held, the proxy\'s response hears it; pruned once answered (found 2026-12-06)', async () => {
    transcribe = () => 'what is the weather like today';
    const s = await open('small');
    // 25 seconds of speech: ≈ 254 tokens against a budget of 200 (target 100), nothing pinned by position.
    for (const e of appendEvents(speechThenSilence(25_000, 700), 20)) s.c.send(e);
    const itemId = String((await s.c.next('input_audio_buffer.committed'))['item_id']);
    const done = await s.c.next('response.done', 10_000);
    // Until 2026-12-06 the proxy deleted the held turn at its echo, and its response answered an
    // empty conversation ("Hello from the realtime simulator.").
    const transcript = String(((done['response'] as { output: { content: Json[] }[] }).output[0]!.content[0]!)['transcript']);
    expect(transcript).toMatch(/^I heard you speak for 25\.\d seconds\.$/);
    const deletes = () => upstreamGot(s, 'conversation.item.delete').map((e) => e['item_id']);
    const createAt = s.conn.received.findIndex((e) => e.type === 'response.create');
    expect(s.conn.received.slice(0, createAt).filter((e) => e.type === 'conversation.item.delete')).toEqual([]);
    // Answered, it is pruned like any item (at the response's response.done).
    await until(() => deletes().length > 0, 'the prune after the response');
    expect(deletes()[0]).toBe(itemId);
    expect(errors(s)).toEqual([]);
    s.c.close();
  });
});

describe('held turns and the budget, as the chain runs the two filters of one session', () => {
  /** The guardrails (holding turns) and the truncation filter, in chain order, on a fake session; what the relay would forward or refuse is recorded. */
  async function setup(maxTokens: number, keepLast: number) {
    const policy = await policyFrom(policy_(keepLast, maxTokens), 'held');
    const registry = { resolve: () => entryOf(policy) } as unknown as PolicyRegistry;
    const session = new FakeSession({ tenant: { policy: 'held' } });
    const refused: ProxyError[] = [];
    const forwarded: string[] = [];
    const sink: ChainSink = {
      forward: (direction: 'client' | 'server', frame: Frame) => {
        forwarded.push(`${direction}:${frame.type}`);
        if (direction !== 'client') return;
        // As the relay does: the view learns a forwarded client event (its create pairs with its response).
        const stamped = Conversation.stamps(frame.type) ? session.conversation.stamp(frame, () => session.nextEventId()).frame : frame;
        session.conversation.observeClient(stamped, false);
        session.upstream.push(stamped.json() as { type: string });
      },
      // The hold's own create goes through FakeSession.sendUpstream here, not the chain.
      forwardInjected: () => {
        throw new Error('nothing is injected into this chain');
      },
      reject: (_direction, error) => void refused.push(error),
      close: () => {
        throw new Error('no session may be closed');
      },
      // As the relay does: the view learns a client event that never left.
      stopped: (direction, frame, refusal, injectedBy) => {
        if (direction === 'client' && injectedBy === null) session.conversation.clientStopped(frame, refusal);
      },
    };
    const chain = new ChainTemplate([guardrailsFactory(registry), truncationFactory(registry)]).instantiate(session, sink);
    return {
      session,
      refused,
      forwarded,
      chain,
      server: (event: { type: string; [k: string]: unknown }) => {
        const frame = wire(event);
        session.conversation.observeServer(frame);
        chain.fromServer(frame);
      },
      client: (event: { type: string; [k: string]: unknown }) => chain.fromClient(wire(event)),
      upstream: () => session.upstream.map((e) => (e.type === 'conversation.item.delete' ? `delete ${String(e['item_id'])}` : e.type)),
    };
  }
  const response = (type: 'response.created' | 'response.done', id: string) => ({ type, response: { id, object: 'realtime.response', status: type === 'response.done' ? 'completed' : 'in_progress', output: [], conversation_id: 'conv_1', usage: null } });
  const userAudio = (id: string) => ({ id, type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] });

  it('a turn that passes while another response runs stays pinned until the proxy\'s response for it is created: its prune at that response.done leaves it (found 2026-12-06)', async () => {
    // Budget 200 (target 100), keepLast 0: the turn (4 + 400 characters of transcript × 2 / 4 = 204) is over it by itself.
    const { server, client, upstream, refused, chain } = await setup(200, 0);
    client({ type: 'response.create', event_id: 'evt_first' });
    server(response('response.created', 'resp_1'));
    server({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: 'item_turn' });
    server({ type: 'conversation.item.added', previous_item_id: null, item: userAudio('item_turn') });
    server({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_turn', content_index: 0, transcript: 'x'.repeat(400) });
    expect(chain.summaries()['contextTokensEstimate']).toBe(204);
    // Passed while resp_1 runs: owed, not created yet.
    expect(upstream()).toEqual(['response.create']);
    server(response('response.done', 'resp_1'));
    // Until 2026-12-06: "delete item_turn" went first, and the proxy's response answered without the turn.
    expect(upstream()).toEqual(['response.create', 'response.create']);
    expect(refused).toEqual([]);
    // Once its response is created the turn is an item like any: the next prune point may take it.
    server(response('response.created', 'resp_2'));
    server(response('response.done', 'resp_2'));
    expect(upstream()).toEqual(['response.create', 'response.create', 'delete item_turn']);
  });

  it('a turn that passed while another is still held stays pinned, even past the response.done of a response the hold cancelled (found 2026-12-06)', async () => {
    const { server, upstream, chain, session } = await setup(200, 0);
    server({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: 'item_t' });
    server({ type: 'conversation.item.added', previous_item_id: null, item: userAudio('item_t') });
    server({ type: 'input_audio_buffer.committed', previous_item_id: 'item_t', item_id: 'item_u' });
    server({ type: 'conversation.item.added', previous_item_id: 'item_t', item: userAudio('item_u') });
    // item_t passes (204 tokens: over the budget by itself) while item_u is still held.
    server({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_t', content_index: 0, transcript: 'x'.repeat(400) });
    expect(chain.summaries()['contextTokensEstimate']).toBe(208);
    // The server starts a response anyway (the lock did not take): cancelled; its response.done is a prune point.
    server(response('response.created', 'resp_vad'));
    server(response('response.done', 'resp_vad'));
    // item_u passes: its transcript is a prune point too, and then the turns are answered.
    server({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_u', content_index: 0, transcript: 'and what about tomorrow' });
    expect(session.cancelled.map((c) => c.responseId)).toEqual(['resp_vad']);
    expect(upstream()).toEqual(['response.create']);
  });

  it('a create the budget refuses that stood for no turn (nothing held, nothing owed) makes the proxy create nothing', async () => {
    // Budget 200 × 0.5: the instructions share is 50 tokens; 204 characters are 51 (one window: scanned at once).
    const { client, upstream, refused, forwarded } = await setup(200, 2);
    client({ type: 'response.create', event_id: 'evt_big', response: { instructions: 'x'.repeat(204) } });
    // The guardrails scan the create's texts in slices (asynchronously): its verdict comes in a few turns.
    await vi.waitFor(() => expect(refused).toHaveLength(1));
    expect(refused.map((e) => [e.code, e.eventId, e.param])).toEqual([['context_budget_exceeded', 'evt_big', 'response.instructions']]);
    expect(upstream()).toEqual([]);
    expect(forwarded).toEqual([]);
  });

  it('a create the budget refuses while a turn is held: refused once the turn passed, and the proxy creates the turn\'s response at once (found 2026-12-06)', async () => {
    const { server, client, upstream, refused } = await setup(200, 2);
    server({ type: 'input_audio_buffer.committed', previous_item_id: null, item_id: 'item_turn' });
    server({ type: 'conversation.item.added', previous_item_id: null, item: userAudio('item_turn') });
    // Its texts fit one window: checked at once, then paused behind the held turn.
    client({ type: 'response.create', event_id: 'evt_big', response: { instructions: 'x'.repeat(204) } });
    expect(refused).toEqual([]);
    server({ type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_turn', content_index: 0, transcript: 'what is the weather' });
    // The guardrails scan the create's texts in slices (asynchronously): its verdict comes in a few turns.
    await vi.waitFor(() => expect(refused).toHaveLength(1));
    expect(refused.map((e) => [e.code, e.eventId, e.param])).toEqual([['context_budget_exceeded', 'evt_big', 'response.instructions']]);
    expect(upstream()).toEqual(['response.create']);
  });
});
