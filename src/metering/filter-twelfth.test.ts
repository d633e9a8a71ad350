/**
 * Metering, twelfth session (2026-12-06): the gaps the eleventh left (MCP output a create is sent
 * before, a server-VAD response the proxy never read, references to out-of-band output) and what
 * another adversarial pass found (an out-of-band create reading the conversation while a response
 * streams into it). Driven as src/metering/filter.test.ts drives the filter; the same scenarios
 * through the proxy are in test/metering/redteam-money-3.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { client, created, done, server, session, setup, usage, probe, references, outputItemAdded, startResponse, reservedNow, type Setup } from '../../test/metering/filter-harness.js';
import type { Filter, Verdict } from '../pipeline/filter.js';

const spentNanos = (s: Setup) => s.records.reduce((a, r) => a + r.costNanos, 0);
const CAPPED = { dailyUsd: '1000' };
// gpt-realtime: a 32,768-token context window, $4/M text in, $32/M audio in, $16/M text out.
const WINDOW = 32_768;
const TEXT_IN = 4_000;
const TEXT_OUT = 16_000;
const mcpTool = { type: 'mcp', server_label: 'kb', server_url: 'https://mcp.example/sse', require_approval: 'never' };
/** The session's MCP tool as the prompt counts it (one token per byte of its JSON). */
const TOOL = Buffer.byteLength(JSON.stringify([mcpTool]), 'utf8');
const mcpSession = (tools: unknown[] = [mcpTool]) => ({ type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'], tools } });
const call = { id: 'item_call', type: 'mcp_call', server_label: 'kb', name: 'search', arguments: '{"q":"x"}', approval_request_id: null, error: null };
const callAdded = (responseId: string) => ({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: { ...call, output: null } });
/** The upstream's list of the session's MCP server `kb` (one tool), done: its size is known from here on. */
const kbListed = { type: 'conversation.item.done', previous_item_id: null, item: { id: 'item_list_kb', type: 'mcp_list_tools', server_label: 'kb', tools: [{ name: 'search', description: 'search the kb', input_schema: { type: 'object' } }] } };
const KB_LIST = 8 + Buffer.byteLength(JSON.stringify(kbListed.item), 'utf8');
const userItem = (text: string) => ({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });


/**
 * The red-team form of these tests: a create the filter admitted runs upstream as a one-token text
 * response reading `inputTokens` (billed as OpenAI would); a refused one never runs.
 */
function runIfAdmitted(f: Filter, verdict: Verdict, responseId: string, inputTokens: number, opts: { outOfBand?: boolean } = {}): void {
  if (verdict.kind === 'reject') return;
  const oob = opts.outOfBand ? { conversation_id: null } : {};
  server(f, created(responseId, { ...oob, max_output_tokens: 1, output_modalities: ['text'] }));
  server(f, done(responseId, usage(inputTokens, 0, 1, 0), 'completed', { ...oob, output_modalities: ['text'] }));
}
describe('an MCP call whose output a create is sent before (its conversation.item.done not read yet)', () => {
  /*
   * The MCP server's output is input to the next response in the conversation, and no response's
   * usage counts it: metering counted it at the call's `conversation.item.done`. A create the client
   * sends before that event reaches the proxy (the upstream reads it after the calling response is
   * done) was reserved without it: with a 100,000-byte output, ~25,000 tokens short.
   */
  it('admission worst_case, $0.08 cap: a create sent while the call runs is reserved with an output of unknown size', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.08' });
    server(f, mcpSession());
    server(f, kbListed);
    client(f, userItem('look it up'));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    server(f, callAdded('resp_1'));
    // Sent now; the upstream reads it once resp_1 (and the call) is done.
    const next = client(f, { type: 'response.create', event_id: 'c2', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    const output = 'r'.repeat(100_000);
    server(f, { type: 'conversation.item.done', item: { ...call, output } });
    server(f, done('resp_1', usage(20, 0, 10, 0), 'completed', { output_modalities: ['text'], output: [{ ...call, output }] }));
    runIfAdmitted(f, next, 'resp_2', 25_030);
    // Old code: admitted at ~100 tokens, $0.10 spent against $0.08.
    expect(spentNanos(s)).toBeLessThanOrEqual(80_000_000);
    expect(next.kind).toBe('reject');
  });

  it('the create is sent before the call item is even added: a running response that may call an MCP tool counts it too', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, mcpSession());
    server(f, kbListed);
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    // The conversation fills the window: the MCP output's size is unknown.
    expect(probe(s, f, {})).toEqual({ tokens: WINDOW + 1, nanos: WINDOW * TEXT_IN + TEXT_OUT });
    // A create waiting for its response.created, with MCP tools of its own: the same.
    const t = setup();
    const b = session(t, CAPPED);
    server(b.f, mcpSession([]));
    server(b.f, kbListed);
    expect(client(b.f, { type: 'response.create', event_id: 'c_wait', response: { output_modalities: ['text'], max_output_tokens: 50, tools: [mcpTool] } }).kind).toBe('continue');
    expect(probe(t, b.f, {}).tokens).toBe(WINDOW + 1);
  });

  it('an out-of-band reference to the call item while it runs counts the unknown output; once done, its output as the conversation holds it', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, mcpSession());
    server(f, kbListed);
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    server(f, callAdded('resp_1'));
    expect(probe(s, f, references('item_call')).tokens).toBe(WINDOW + 1);
    server(f, { type: 'conversation.item.done', item: { ...call, output: 'r'.repeat(1000) } });
    server(f, done('resp_1', usage(20, 0, 10, 0), 'completed', { output_modalities: ['text'] }));
    // Done: the reference is to an item the estimate has no size for, so the whole conversation counts (the output included).
    const after = probe(s, f, references('item_call'));
    expect(after.tokens).toBeGreaterThanOrEqual(1000);
    expect(after.tokens).toBeLessThan(WINDOW);
  });

  it('controls: no MCP tool anywhere, or an out-of-band create with its own input list: no unknown output', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, mcpSession([]));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    expect(probe(s, f, {}).tokens).toBe(50 + 8 + 8 + 1);
    const t = setup();
    const b = session(t, CAPPED);
    server(b.f, mcpSession());
    server(b.f, kbListed);
    startResponse(b.f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    server(b.f, callAdded('resp_1'));
    // Its own input list, the session's tools: the MCP server's list (known) beside it.
    expect(probe(t, b.f, { conversation: 'none', input: [] }).tokens).toBe(KB_LIST + 8 + TOOL + 1);
    // The call done and its response done: the next create reads the output as counted, not the window.
    server(b.f, { type: 'conversation.item.done', item: { ...call, output: 'r'.repeat(100) } });
    server(b.f, done('resp_1', usage(20, 0, 10, 0), 'completed', { output_modalities: ['text'] }));
    expect(probe(t, b.f, {}).tokens).toBeLessThan(30 + 100 + 8 + TOOL + 1 + 100);
  });
});

describe('MCP calls the upstream leaves open (found 2026-12-07: kept without bound)', () => {
  it('past 1,024 calls not done (named for responses metering never sees end), any item may hold an MCP output: never counted less', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, mcpSession([]));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    server(f, outputItemAdded('resp_1', 'item_msg'));
    const ghostCall = (i: number) => ({ type: 'response.output_item.added', response_id: `resp_ghost_${i}`, output_index: 0, item: { ...call, id: `item_ghost_${i}`, output: null } });
    for (let i = 0; i < 1024; i++) server(f, ghostCall(i));
    // Within the bound: a reference to a message of the running response counts that response's output.
    const within = probe(s, f, references('item_msg')).tokens;
    expect(within).toBeLessThan(WINDOW);
    // Past it the call is not kept: every item may be an MCP call not done, of a size the proxy cannot know.
    server(f, ghostCall(1024));
    expect(probe(s, f, references('item_msg')).tokens).toBe(WINDOW + 1);
    expect(probe(s, f, references('item_ghost_1024')).tokens).toBe(WINDOW + 1);
  });
});

describe('an out-of-band create without an input list while a conversation response streams', () => {
  /*
   * `conversation: "none"` without `input` reads the default conversation as it is when the upstream
   * reads the create: a conversation response still streaming holds its output so far, which the
   * estimate gains only at its response.done. Conversation creates counted it (2026-12-06, second
   * pass); out-of-band ones reading the conversation did not.
   */
  it('admission worst_case, $0.20 cap: 30 such creates while a 4,096-token answer streams never take spend over the cap', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.20' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'] } });
    client(f, userItem('tell a long story'));
    startResponse(f, 'resp_story', { output_modalities: ['text'], max_output_tokens: 4096 }, { output_modalities: ['text'] });
    server(f, outputItemAdded('resp_story', 'item_story'));
    const admitted: number[] = [];
    for (let i = 0; i < 30; i++) {
      const v = client(f, { type: 'response.create', event_id: `oob_${i}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { n: String(i) } } });
      if (v.kind === 'reject') continue;
      admitted.push(i);
      server(f, created(`resp_oob_${i}`, { conversation_id: null, metadata: { n: String(i) }, max_output_tokens: 1, output_modalities: ['text'] }));
    }
    // What the upstream bills each: the story so far (4,000 tokens) and the 30 before, one token out.
    for (const i of admitted) server(f, done(`resp_oob_${i}`, usage(4_030, 0, 1, 0), 'completed', { conversation_id: null, metadata: { n: String(i) }, output_modalities: ['text'] }));
    server(f, done('resp_story', usage(20, 0, 4096, 0), 'incomplete', { output_modalities: ['text'] }));
    // Old code: all 30 admitted at ~40 tokens each, $0.48 against $0.20.
    expect({ admitted: admitted.length > 0, overCap: spentNanos(s) > 200_000_000 }).toEqual({ admitted: true, overCap: false });
  });

  it('it counts what a conversation create counts: running conversation responses and conversation creates waiting', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 }, { output_modalities: ['text'] });
    expect(probe(s, f, { conversation: 'none' })).toEqual(probe(s, f, {}));
    expect(probe(s, f, { conversation: 'none' }).tokens).toBe(50 + 8 + 8 + 1);
  });
});

describe('a server-VAD response the upstream started and the proxy never read', () => {
  /*
   * Server VAD with `create_response` (the default) starts a response when it commits a turn: the
   * response reads the whole conversation, which OpenAI bills. A client that sends a turn (speech and
   * the silence that ends it) faster than real time and leaves in the same write ends the session
   * before the proxy reads the turn's committed or the response's created (nothing runs in its view,
   * so the relay does not linger): the response was free. Before it, the conversation can be filled
   * with text items (free until a response reads them): one free context window a session.
   */
  const seconds = (n: number) => ({ type: 'input_audio_buffer.append', audio: Buffer.alloc(n * 48_000).toString('base64') });
  const vad = (td: unknown = { type: 'server_vad' }) => ({ type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: td } } } });
  const close = (f: Filter) => f.onClose!({ initiator: 'client', code: 1000, reason: '' });
  const responses = (s: Setup) => s.records.filter((r) => r.source === 'response').map((r) => [r.ref, r.settledBy, r.estimated]);

  it('100,000 bytes of text, a turn sent at once, the close: a response is billed at the close (estimated), at least what it read', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vad());
    client(f, userItem('x'.repeat(100_000)));
    ctx.time = 1000;
    client(f, seconds(3));
    ctx.time = 1100;
    close(f);
    expect(responses(s)).toEqual([['vad:unread-response', 'client_gone_estimate', true]]);
    // At least the text the response read (100,000 bytes is ~25,000 tokens: $0.10); the estimate fills the window.
    expect(s.records[0]!.costNanos).toBeGreaterThanOrEqual(25_000 * TEXT_IN);
  });

  it('the turn\'s committed read, its response.created not: billed too', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vad());
    client(f, userItem('x'.repeat(1000)));
    client(f, seconds(3));
    server(f, { type: 'input_audio_buffer.speech_started', audio_start_ms: 0, item_id: 'item_t' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_t', previous_item_id: null });
    f.onClose!({ initiator: 'upstream', code: 1006, reason: '' });
    expect(responses(s)).toEqual([['vad:unread-response', 'upstream_drop_estimate', true]]);
  });

  it('controls: the response read (billed from its done), create_response off, turn detection off, audio in real time: no estimate', () => {
    const cases: Array<[string, (s: Setup) => Filter]> = [
      ['read', (s) => {
        const { f } = session(s);
        server(f, vad());
        client(f, seconds(3));
        server(f, { type: 'input_audio_buffer.committed', item_id: 'item_t', previous_item_id: null });
        server(f, created('resp_vad'));
        server(f, done('resp_vad', usage(30, 0, 1, 0)));
        return f;
      }],
      ['create_response off', (s) => {
        const { f } = session(s);
        server(f, vad({ type: 'server_vad', create_response: false }));
        client(f, seconds(3));
        server(f, { type: 'input_audio_buffer.committed', item_id: 'item_t', previous_item_id: null });
        return f;
      }],
      ['turn detection off', (s) => {
        const { f } = session(s);
        server(f, vad(null));
        client(f, seconds(3));
        return f;
      }],
      ['real time', (s) => {
        const { ctx, f } = session(s);
        server(f, vad());
        client(f, seconds(3));
        ctx.time = 3000;
        return f;
      }],
    ];
    for (const [name, run] of cases) {
      const s = setup();
      close(run(s));
      expect(responses(s).filter((r) => r[1] !== 'response.done'), name).toEqual([]);
    }
  });

  it('create_response turned on by an update in flight counts; turned off by one answered does not', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vad({ type: 'server_vad', create_response: false }));
    client(f, { type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', create_response: true } } } } });
    client(f, seconds(3));
    close(f);
    expect(responses(s).map((r) => r[0])).toEqual(['vad:unread-response']);
  });
});

describe('a reference to an output item of an out-of-band response', () => {
  /*
   * Out-of-band output is not added to the conversation (reference §3.3), and an `item_reference` is
   * to "any item that has previously existed in the conversation" (OpenAI's API reference): the
   * upstream refuses it (item_not_found, as the simulator does), which releases the reservation. Were
   * it accepted, the reference would read that output, and an id the estimate has no size for counted
   * the conversation only: an empty conversation reserved nothing for a 4,000-token output. The
   * reservation now counts the output either way.
   */
  it('admission worst_case, $0.20 cap: references to a 4,000-token out-of-band answer never take spend over the cap (if the upstream ran them)', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.20' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'] } });
    const answer = { id: 'item_oob', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'abcd'.repeat(4000) }] };
    expect(client(f, { type: 'response.create', event_id: 'c_a', response: { conversation: 'none', input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'long' }] }], output_modalities: ['text'], max_output_tokens: 4096 } }).kind).toBe('continue');
    server(f, created('resp_a', { conversation_id: null, max_output_tokens: 4096, output_modalities: ['text'] }));
    server(f, { type: 'response.output_item.added', response_id: 'resp_a', output_index: 0, item: { ...answer, status: 'in_progress', content: [] } });
    server(f, done('resp_a', usage(20, 0, 4000, 0), 'completed', { conversation_id: null, output_modalities: ['text'], output: [answer] }));
    const admitted: number[] = [];
    for (let i = 0; i < 30; i++) {
      const v = client(f, { type: 'response.create', event_id: `oob_${i}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: [{ type: 'item_reference', id: 'item_oob' }], metadata: { n: String(i) } } });
      if (v.kind === 'reject') continue;
      admitted.push(i);
      server(f, created(`resp_r_${i}`, { conversation_id: null, metadata: { n: String(i) }, max_output_tokens: 1, output_modalities: ['text'] }));
      server(f, done(`resp_r_${i}`, usage(4_010, 0, 1, 0), 'completed', { conversation_id: null, metadata: { n: String(i) }, output_modalities: ['text'] }));
    }
    expect({ admitted: admitted.length > 0, overCap: spentNanos(s) > 200_000_000 }).toEqual({ admitted: true, overCap: false });
  });

  it('the reference counts the output (text, or audio as audio) and not the whole conversation; an unknown id still counts the whole conversation', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['audio'] } });
    client(f, userItem('y'.repeat(500)));
    expect(client(f, { type: 'response.create', event_id: 'c_a', response: { conversation: 'none', input: [], max_output_tokens: 300 } }).kind).toBe('continue');
    server(f, created('resp_a', { conversation_id: null, max_output_tokens: 300 }));
    const spoken = { id: 'item_spoken', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_audio', transcript: 'hi' }] };
    server(f, done('resp_a', usage(20, 0, 40, 200), 'completed', { conversation_id: null, output: [spoken] }));
    // The output: 40 text + 200 audio tokens, 8 of framing; the probe's 8 of prompt and 1 out.
    expect(probe(s, f, references('item_spoken')).tokens).toBe(40 + 200 + 8 + 8 + 1);
    expect(probe(s, f, references('item_nowhere')).tokens).toBe(500 + 8 + 8 + 1);
  });
});

describe('an input list naming the same item more than once', () => {
  /*
   * The upstream reads each `item_reference` of an input list (the simulator puts a repeated one in
   * twice, and bills it twice). A reference to an item the estimate has no size for (a model answer)
   * counted the whole conversation once for the list, whatever else it named: naming a 1,000-token
   * answer 30 times read 30,000 tokens against a reservation of ~2,000.
   */
  it('admission worst_case, $0.10 cap: 30 references to one answer are reserved as 30 reads (refused), never over the cap', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.10' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'] } });
    client(f, userItem('y'.repeat(1000)));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 1000 }, { output_modalities: ['text'] });
    server(f, outputItemAdded('resp_1', 'item_answer'));
    server(f, done('resp_1', usage(1_010, 0, 1000, 0), 'completed', { output_modalities: ['text'] }));
    const v = client(f, { type: 'response.create', event_id: 'c_dup', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, input: Array.from({ length: 30 }, () => ({ type: 'item_reference', id: 'item_answer' })) } });
    runIfAdmitted(f, v, 'resp_dup', 30_000, { outOfBand: true });
    // Old code: admitted at ~2,000 tokens; $0.024 + $0.120 spent against $0.10.
    expect(spentNanos(s)).toBeLessThanOrEqual(100_000_000);
    expect(v.kind).toBe('reject');
  });

  it('a repeated reference counts again what its first counted: a known item, a streaming response\'s output; distinct unknown ids still share one conversation', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    client(f, { type: 'conversation.item.create', item: { id: 'item_known', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'k'.repeat(100) }] } });
    // 100 + 8 framing, twice; 8 of prompt, 1 out.
    expect(probe(s, f, references('item_known', 'item_known')).tokens).toBe(2 * 108 + 8 + 1);
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 }, { output_modalities: ['text'] });
    server(f, outputItemAdded('resp_1', 'item_a'));
    server(f, outputItemAdded('resp_1', 'item_b'));
    const conversation = 108;
    // item_a twice: resp_1's output (50 + 16 framing for its two items) twice, and the conversation twice (unknown id).
    expect(probe(s, f, references('item_a', 'item_a')).tokens).toBe(2 * (50 + 16) + 2 * conversation + 8 + 1);
    // item_a and item_b: once each response, once the conversation (distinct unknown ids).
    expect(probe(s, f, references('item_a', 'item_b')).tokens).toBe(50 + 16 + conversation + 8 + 1);
  });
});

describe('a client item of another type than message or function call', () => {
  /*
   * A client may write MCP items (`mcp_list_tools`, `mcp_call`, `mcp_approval_request`: reference §3.4;
   * the guardrails read a client's tool list). The estimate counted a message's texts and a call's name,
   * arguments and output, so a client `mcp_list_tools` of 100 KB counted its 8 framing tokens until its
   * `conversation.item.done` (counted then as a server item), after a create sent right behind it had
   * been reserved.
   */
  it('admission worst_case, $0.08 cap: a create right behind a 100,000-byte mcp_list_tools item is reserved with it', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.08' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'] } });
    const tools = Array.from({ length: 100 }, (_, i) => ({ name: `t${i}`, description: 'd'.repeat(1000), input_schema: { type: 'object' } }));
    client(f, { type: 'conversation.item.create', item: { id: 'item_tools', type: 'mcp_list_tools', server_label: 'kb', tools } });
    const v = client(f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    runIfAdmitted(f, v, 'resp_1', 25_000);
    // Old code: admitted at ~20 tokens, $0.10 spent against $0.08.
    expect(spentNanos(s)).toBeLessThanOrEqual(80_000_000);
    expect(v.kind).toBe('reject');
  });

  it('the same item inline in an out-of-band input list; messages and function calls are counted as before', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    const approval = { type: 'mcp_approval_request', server_label: 'kb', name: 'search', arguments: '{}', id: 'x'.repeat(10) };
    const json = Buffer.byteLength(JSON.stringify(approval), 'utf8');
    expect(probe(s, f, { conversation: 'none', input: [approval] }).tokens).toBe(8 + json + 8 + 1);
    expect(probe(s, f, { conversation: 'none', input: [{ type: 'function_call_output', call_id: 'call_1', output: 'ok' }] }).tokens).toBe(8 + 2 + 8 + 1);
  });
});

describe('an MCP server\'s tool list a create is sent before', () => {
  /*
   * An MCP tool new to the session makes the upstream list the server's tools into an `mcp_list_tools`
   * item, which every response reads; metering counted it at its `conversation.item.done`. A create
   * sent right behind the `session.update` that adds the server is read by the upstream after the
   * update, its list included (the server's to decide: any size), but was reserved without it.
   */
  const listed = (label: string, bytes: number) => ({ type: 'conversation.item.done', previous_item_id: null, item: { id: `item_list_${label}`, type: 'mcp_list_tools', server_label: label, tools: [{ name: 'search', description: 'd'.repeat(bytes), input_schema: { type: 'object' } }] } });

  it('admission worst_case, $0.08 cap: a create right behind the update adding an MCP server is reserved with a list of unknown size', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.08' });
    server(f, mcpSession([]));
    client(f, { type: 'session.update', session: { type: 'realtime', tools: [mcpTool] } });
    const v = client(f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    runIfAdmitted(f, v, 'resp_1', 25_000);
    // Old code: admitted at ~100 tokens; the list read, $0.10 spent against $0.08.
    expect(spentNanos(s)).toBeLessThanOrEqual(80_000_000);
    expect(v.kind).toBe('reject');
  });

  it('once the list is done (or failed) it counts as the estimate has it; a response with MCP tools of its own not listed counts it too', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, mcpSession());
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
    server(f, listed('kb', 1000));
    const after = probe(s, f, {}).tokens;
    expect(after).toBeGreaterThan(1000);
    expect(after).toBeLessThan(2000);
    // Its own MCP server, never listed: its list is input to it. Out of band with an input list too.
    expect(probe(s, f, { tools: [{ ...mcpTool, server_label: 'other' }] }).tokens).toBe(WINDOW + 1);
    expect(probe(s, f, { conversation: 'none', input: [], tools: [{ ...mcpTool, server_label: 'other' }] }).tokens).toBe(WINDOW + 1);
    // A listing that failed lists nothing.
    const t = setup();
    const b = session(t, CAPPED);
    server(b.f, mcpSession());
    server(b.f, { type: 'conversation.item.added', previous_item_id: null, item: { id: 'item_l', type: 'mcp_list_tools', server_label: 'kb', tools: [] } });
    server(b.f, { type: 'mcp_list_tools.failed', item_id: 'item_l' });
    expect(probe(t, b.f, {}).tokens).toBeLessThan(1000);
  });
});

describe('a create sent after a turn server VAD committed, before its response.created is read', () => {
  /*
   * Server VAD starts a response for the turn it commits. A conversation create sent between the
   * turn's `committed` and that response's `response.created` (both on their way to the proxy) is
   * refused upstream while the response is active, but runs if it finished first: then it reads that
   * response's whole output, which no reservation held (the proxy knew of no response running).
   */
  it('the create\'s reservation is at least what the upstream bills it (the VAD response\'s 4,096-token answer read)', () => {
    // The guarantee rests on every reservation being at least its response's cost (README "The guarantee").
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 4096, output_modalities: ['text'], audio: { input: { transcription: null, turn_detection: { type: 'server_vad' } } } } });
    client(f, userItem('tell a long story'));
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_turn', previous_item_id: null });
    expect(client(f, { type: 'response.create', event_id: 'c_next', response: { output_modalities: ['text'], max_output_tokens: 1 } }).kind).toBe('continue');
    const reserved = reservedNow(s).nanos;
    server(f, created('resp_vad', { max_output_tokens: 4096, output_modalities: ['text'] }));
    server(f, done('resp_vad', usage(30, 0, 4096, 0), 'incomplete', { output_modalities: ['text'] }));
    server(f, created('resp_next', { max_output_tokens: 1, output_modalities: ['text'] }));
    server(f, done('resp_next', usage(4_130, 0, 1, 0), 'completed', { output_modalities: ['text'] }));
    const billed = s.records.find((r) => r.ref === 'resp_next')!.costNanos;
    // Old code: ~$0.0002 reserved for a create billed $0.0165.
    expect(reserved).toBeGreaterThanOrEqual(billed);
  });

  it('counted until a conversation response.created is read; not for the answer to a client\'s own commit', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 300, output_modalities: ['text'], audio: { input: { transcription: null, turn_detection: { type: 'server_vad' } } } } });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_turn', previous_item_id: null });
    // The turn's audio item (8 + 8 of framing, no bytes appended), its response's 300 as text and 8 of framing.
    expect(probe(s, f, {}).tokens).toBe(16 + 300 + 8 + 8 + 1);
    server(f, created('resp_vad', { max_output_tokens: 300, output_modalities: ['text'] }));
    server(f, done('resp_vad', usage(10, 0, 20, 0), 'completed', { output_modalities: ['text'] }));
    expect(probe(s, f, {}).tokens).toBe(30 + 8 + 1);
    client(f, { type: 'input_audio_buffer.commit' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_own', previous_item_id: null });
    expect(probe(s, f, {}).tokens).toBeLessThan(300);
  });
});
