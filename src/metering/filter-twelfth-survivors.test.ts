/**
 * The mutation run of the twelfth session's metering changes (2026-12-06: MCP outputs and tool lists
 * of unknown size, out-of-band output read back, the unread VAD response, the client gone with audio
 * in the buffer) left these untested. Each test names what a mutant changed: money reserved or billed,
 * a record's ref/settledBy/estimated, an event sent upstream. Driven as src/metering/filter-twelfth.test.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import { client, created, done, probe, references, reservedNow, server, session, setup, startResponse, outputItemAdded, usage, type Setup } from '../../test/metering/filter-harness.js';
import type { Filter } from '../pipeline/filter.js';

const CAPPED = { dailyUsd: '1000' };
// gpt-realtime: a 32,768-token context window.
const WINDOW = 32_768;
const mcpTool = (label?: string) => ({ type: 'mcp', ...(label !== undefined ? { server_label: label } : {}), server_url: 'https://mcp.example/sse', require_approval: 'never' });
const textSession = (extra: Record<string, unknown> = {}) => ({ type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'], ...extra } });
const listDone = (id: string, label: string | undefined, bytes = 100) => ({
  type: 'conversation.item.done',
  previous_item_id: null,
  item: { id, type: 'mcp_list_tools', ...(label !== undefined ? { server_label: label } : {}), tools: [{ name: 'search', description: 'd'.repeat(bytes), input_schema: { type: 'object' } }] },
});
const call = (id: string) => ({ id, type: 'mcp_call', server_label: 'kb', name: 'search', arguments: '{}', approval_request_id: null, error: null, output: null });
const callAdded = (responseId: string, id = 'item_call') => ({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: call(id) });
const userItem = (text: string, id?: string) => ({ type: 'conversation.item.create', item: { ...(id ? { id } : {}), type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
const vadSession = (extra: Record<string, unknown> = {}, td: unknown = { type: 'server_vad' }) => ({
  type: 'session.updated',
  session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'], audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: null, turn_detection: td } }, ...extra },
});
const committed = (itemId: string) => ({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });
const close = (f: Filter) => f.onClose!({ initiator: 'client', code: 1000, reason: '' });
const responses = (s: Setup) => s.records.filter((r) => r.source === 'response').map((r) => [r.ref, r.settledBy, r.estimated]);
const UNREAD = [['vad:unread-response', 'client_gone_estimate', true]];

describe('MCP tool lists by server label', () => {
  it('an MCP tool without server_label and its list without one: the same server (listed: the list counts as known, not the window)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool()] }));
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
    server(f, listDone('item_list', undefined));
    expect(probe(s, f, {}).tokens).toBeLessThan(1000);
  });

  it('a listing without server_label that failed lists nothing for the tool without one; an item id "" is an id', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool()] }));
    server(f, { type: 'conversation.item.added', previous_item_id: null, item: { id: '', type: 'mcp_list_tools', tools: [] } });
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
    server(f, { type: 'mcp_list_tools.failed' });
    expect(probe(s, f, {}).tokens).toBeLessThan(1000);
  });

  it('a conversation.item.added without an item, a tools list that is not a list or holds null: no MCP tool, nothing thrown', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    expect(server(f, { type: 'conversation.item.added', previous_item_id: null }).kind).toBe('continue');
    expect(probe(s, f, { tools: null }).tokens).toBeLessThan(100);
    expect(probe(s, f, { tools: [null, { type: 'function', name: 'f', parameters: {} }] }).tokens).toBeLessThan(200);
    server(f, textSession({ tools: 'x' }));
    expect(probe(s, f, {}).tokens).toBeLessThan(100);
  });

  it('a server item done that is not a tool list lists no server (the tool without server_label stays unknown)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool()] }));
    // An item the server added by itself (no response, no client create): counted as a server item, no tool list.
    server(f, { type: 'conversation.item.done', previous_item_id: null, item: { id: 'item_srv', type: 'message', role: 'system', status: 'completed', content: [{ type: 'input_text', text: 'hi' }] } });
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
  });

  it('a server listed again with a shorter list keeps the larger (read by a response with its own tools and its own input)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    server(f, listDone('item_l1', 'kb', 4000));
    const own = { conversation: 'none', input: [], tools: [mcpTool('kb')] };
    const first = probe(s, f, own).tokens;
    expect(first).toBeGreaterThan(4000);
    server(f, listDone('item_l2', 'kb', 10));
    expect(probe(s, f, own).tokens).toBe(first);
  });

  it('lists of 256 servers are kept; the 257th server\'s list is taken as unknown', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    for (let i = 0; i <= 256; i++) server(f, listDone(`item_l${i}`, `s${i}`, 1));
    const own = (label: string) => ({ conversation: 'none', input: [], tools: [mcpTool(label)] });
    expect(probe(s, f, own('s255')).tokens).toBeLessThan(1000);
    expect(probe(s, f, own('s256')).tokens).toBe(WINDOW + 1);
  });

  it('an out-of-band create with its own input list and tools: the session\'s known lists are not read; reading the conversation, the session\'s unlisted server is', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool('kb')] }));
    server(f, listDone('item_list', 'kb', 4000));
    expect(probe(s, f, { conversation: 'none', input: [], tools: [] }).tokens).toBe(8 + 1);
    const t = setup();
    const b = session(t, CAPPED);
    server(b.f, textSession({ tools: [mcpTool('kb')] }));
    expect(probe(t, b.f, { tools: [] }).tokens).toBe(WINDOW + 1);
  });
});

describe('MCP calls and the responses that may make them', () => {
  it('a create waiting for its response.created that takes the session\'s MCP tools counts an MCP output; one with tools: [] does not', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool('kb')] }));
    server(f, listDone('item_list', 'kb'));
    expect(client(f, { type: 'response.create', event_id: 'c_wait', response: { output_modalities: ['text'], max_output_tokens: 5 } }).kind).toBe('continue');
    expect(probe(s, f, { conversation: 'none' }).tokens).toBe(WINDOW + 1);
    const t = setup();
    const b = session(t, CAPPED);
    server(b.f, textSession({ tools: [] }));
    expect(client(b.f, { type: 'response.create', event_id: 'c_wait', response: { output_modalities: ['text'], max_output_tokens: 5, tools: [] } }).kind).toBe('continue');
    expect(probe(t, b.f, {}).tokens).toBeLessThan(100);
  });

  it('a running response whose create set no MCP tool but which made an MCP call counts its output; another response\'s call does not count for it', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 5, tools: [] });
    server(f, callAdded('resp_1'));
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
    // An out-of-band response with its own MCP tool makes a call; the conversation response beside it made none.
    const t = setup();
    const b = session(t, CAPPED);
    server(b.f, textSession({ tools: [] }));
    server(b.f, listDone('item_list', 'kb'));
    expect(client(b.f, { type: 'response.create', event_id: 'c_oob', response: { conversation: 'none', input: [], output_modalities: ['text'], max_output_tokens: 5, tools: [mcpTool('kb')] } }).kind).toBe('continue');
    server(b.f, created('resp_oob', { conversation_id: null, max_output_tokens: 5, output_modalities: ['text'] }));
    startResponse(b.f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 5, tools: [] });
    server(b.f, callAdded('resp_oob'));
    expect(probe(t, b.f, {}).tokens).toBeLessThan(1000);
  });

  it('a create with its own MCP tool whose reservation expired before its response.created: the response still may call one', () => {
    vi.useFakeTimers();
    const s = setup({ pendingResponseTimeoutMs: 1000 });
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    server(f, listDone('item_list', 'kb'));
    expect(client(f, { type: 'response.create', event_id: 'c_late', response: { output_modalities: ['text'], max_output_tokens: 5, tools: [mcpTool('kb')] } }).kind).toBe('continue');
    vi.advanceTimersByTime(1000);
    expect(reservedNow(s).tokens).toBe(0);
    server(f, created('resp_late', { max_output_tokens: 5, output_modalities: ['text'] }));
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
  });

  it('a model message added to a running response is no MCP call: a reference to it counts the response\'s output, not the window', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 50 });
    server(f, outputItemAdded('resp_1', 'item_answer'));
    expect(probe(s, f, references('item_answer')).tokens).toBeLessThan(1000);
    expect(probe(s, f, {}).tokens).toBeLessThan(1000);
  });

  it('a call whose response ended without its item done: no longer an output of unknown size; a call of a response still running stays one', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    client(f, userItem('u'.repeat(100)));
    expect(client(f, { type: 'response.create', event_id: 'c_a', response: { conversation: 'none', input: [], output_modalities: ['text'], max_output_tokens: 5, tools: [mcpTool('kb')] } }).kind).toBe('continue');
    server(f, created('resp_a', { conversation_id: null, max_output_tokens: 5, output_modalities: ['text'] }));
    expect(client(f, { type: 'response.create', event_id: 'c_b', response: { conversation: 'none', input: [], output_modalities: ['text'], max_output_tokens: 5, tools: [mcpTool('kb')], metadata: { n: 'b' } } }).kind).toBe('continue');
    server(f, created('resp_b', { conversation_id: null, max_output_tokens: 5, output_modalities: ['text'], metadata: { n: 'b' } }));
    server(f, callAdded('resp_a', 'item_call_a'));
    server(f, callAdded('resp_b', 'item_call_b'));
    server(f, done('resp_a', usage(10, 0, 5, 0), 'completed', { conversation_id: null, output_modalities: ['text'] }));
    // item_call_a: its response is done, the id unknown: the conversation (108) counts, not the window.
    expect(probe(s, f, references('item_call_a')).tokens).toBe(108 + 8 + 1);
    expect(probe(s, f, references('item_call_b')).tokens).toBe(WINDOW + 1);
  });

  it('a server-VAD response in a session with MCP tools may call one: a create sent while it runs counts its output', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool('kb')] }));
    server(f, listDone('item_list', 'kb'));
    server(f, created('resp_vad', { output_modalities: ['text'] }));
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
  });

  it('a server-VAD response\'s reservation counts the session\'s known MCP lists once (they are in the conversation)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool('kb')], max_output_tokens: 1 }));
    server(f, listDone('item_list', 'kb', 4000));
    const expected = probe(s, f, {});
    server(f, created('resp_vad', { output_modalities: ['text'], max_output_tokens: 1 }));
    expect(reservedNow(s).tokens).toBe(expected.tokens);
  });
});

describe('out-of-band output read back by reference', () => {
  const oobCreate = (f: Filter, id: string) => {
    expect(client(f, { type: 'response.create', event_id: `c_${id}`, response: { conversation: 'none', input: [], max_output_tokens: 300, metadata: { id } } }).kind).toBe('continue');
    server(f, created(id, { conversation_id: null, max_output_tokens: 300, metadata: { id } }));
  };

  it('the output counts the larger of the text details and the output total less audio (usage whose details fall short)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession());
    oobCreate(f, 'resp_a');
    const u = { ...usage(20, 0, 40, 0), output_tokens: 300, total_tokens: 320 };
    server(f, done('resp_a', u, 'completed', { conversation_id: null, metadata: { id: 'resp_a' }, output: [{ id: 'item_a', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'hi' }] }] }));
    expect(probe(s, f, references('item_a')).tokens).toBe(300 + 8 + 8 + 1);
  });

  it('a usage that cannot be priced says nothing of the output: each item counts its own content only', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession());
    oobCreate(f, 'resp_a');
    const bad = { ...usage(20, 0, 40, 0), output_tokens: 300, total_tokens: 320, output_token_details: { text_tokens: 'many', audio_tokens: 0 } };
    server(f, done('resp_a', bad, 'completed', { conversation_id: null, metadata: { id: 'resp_a' }, output: [{ id: 'item_a', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'hi' }] }] }));
    const own = probe(s, f, references('item_a')).tokens;
    expect(own).toBeLessThan(300);
    expect(own).toBeGreaterThan(8 + 8 + 1);
  });

  it('output entries that are null or have no id are skipped, the rest noted', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession());
    oobCreate(f, 'resp_a');
    const output = [null, { type: 'message', role: 'assistant', content: [] }, { id: 'item_a', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'hi' }] }];
    expect(server(f, done('resp_a', usage(20, 0, 40, 0), 'completed', { conversation_id: null, metadata: { id: 'resp_a' }, output })).kind).toBe('continue');
    expect(probe(s, f, references('item_a')).tokens).toBe(40 + 8 + 8 + 1);
  });

  it('a conversation response\'s output item keeps no size of its own: a reference to it counts the whole conversation', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession());
    client(f, userItem('u'.repeat(1000)));
    startResponse(f, 'resp_1', { output_modalities: ['text'], max_output_tokens: 10 }, { output_modalities: ['text'] });
    server(f, outputItemAdded('resp_1', 'item_answer'));
    server(f, done('resp_1', usage(1_008, 0, 10, 0), 'completed', { output_modalities: ['text'], output: [{ id: 'item_answer', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'ok' }] }] }));
    expect(probe(s, f, references('item_answer')).tokens).toBeGreaterThanOrEqual(1000);
  });
});

describe('the response server VAD owes for a turn it committed', () => {
  it('before any session event (turn detection on by default, create_response on): a committed turn\'s response is billed at the close', () => {
    const s = setup();
    const { f } = session(s);
    server(f, committed('item_t'));
    close(f);
    expect(responses(s)).toEqual(UNREAD);
  });

  it('turn detection off when a committed arrives: nothing thrown, nothing due', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession({}, null));
    expect(server(f, committed('item_t')).kind).toBe('continue');
    close(f);
    expect(responses(s)).toEqual([]);
  });

  it('an out-of-band response.created is not the turn\'s response: still billed at the close', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession());
    server(f, committed('item_t'));
    expect(client(f, { type: 'response.create', event_id: 'c_oob', response: { conversation: 'none', input: [], output_modalities: ['text'], max_output_tokens: 5 } }).kind).toBe('continue');
    server(f, created('resp_oob', { conversation_id: null, max_output_tokens: 5, output_modalities: ['text'] }));
    server(f, done('resp_oob', usage(5, 0, 5, 0), 'completed', { conversation_id: null, output_modalities: ['text'] }));
    close(f);
    expect(responses(s)).toEqual([['resp_oob', 'response.done', false], ...UNREAD]);
  });

  it('a client commit the upstream refused: the committed that follows is server VAD\'s turn (its response billed at the close)', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    client(f, { type: 'input_audio_buffer.commit', event_id: 'c_commit' });
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'input_audio_buffer_commit_empty', message: 'empty', event_id: ctx.upstreamIdOf('c_commit') } });
    server(f, committed('item_vad'));
    close(f);
    expect(responses(s)).toEqual(UNREAD);
  });

  it('an error about another event leaves the client commit waiting: its committed starts no response', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession());
    client(f, { type: 'input_audio_buffer.commit', event_id: 'c_commit' });
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'event_other' } });
    server(f, committed('item_own'));
    close(f);
    expect(responses(s)).toEqual([]);
  });

  it('more than 64 client commits waiting: the oldest are forgotten, so the 65th committed counts as server VAD\'s turn', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession());
    for (let i = 0; i < 65; i++) client(f, { type: 'input_audio_buffer.commit', event_id: `c_${i}` });
    for (let i = 0; i < 64; i++) server(f, committed(`item_${i}`));
    close(f);
    expect(responses(s)).toEqual([]);
    const t = setup();
    const b = session(t);
    server(b.f, vadSession());
    for (let i = 0; i < 65; i++) client(b.f, { type: 'input_audio_buffer.commit', event_id: `c_${i}` });
    for (let i = 0; i < 65; i++) server(b.f, committed(`item_${i}`));
    close(b.f);
    expect(responses(t)).toEqual(UNREAD);
  });

  it('not billed for a call\'s sideband, nor for a transcription session', () => {
    const s = setup();
    const a = session(s);
    (a.ctx as unknown as { callId: string }).callId = 'rtc_1';
    server(a.f, vadSession());
    server(a.f, committed('item_t'));
    close(a.f);
    const t = setup();
    const b = session(t, null, 'gpt-realtime', { intent: 'transcription' });
    server(b.f, vadSession());
    server(b.f, committed('item_t'));
    close(b.f);
    expect([responses(s), responses(t)]).toEqual([[], []]);
  });

  it('billed at the session\'s max_output_tokens (text only): a small answer\'s worth, not the model\'s whole output', () => {
    const s = setup();
    const { f } = session(s);
    server(f, vadSession({ max_output_tokens: 10 }));
    server(f, committed('item_t'));
    close(f);
    expect(responses(s)).toEqual(UNREAD);
    // ~16 tokens read at $4/M, at most 10 written at $16/M.
    expect(s.records[0]!.costNanos).toBeLessThan(1_000_000);
  });

  it('a create sent while the turn\'s response is due, the session\'s output unknown (no session read): counts the model\'s whole output', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, committed('item_t'));
    expect(probe(s, f, { conversation: 'none' }).tokens).toBeGreaterThan(4096);
  });

  it('a create sent while the turn\'s response is due, in a session with MCP tools: counts an MCP output', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, vadSession({ tools: [mcpTool('kb')] }));
    server(f, listDone('item_list', 'kb'));
    server(f, committed('item_t'));
    expect(probe(s, f, { conversation: 'none' }).tokens).toBe(WINDOW + 1);
  });
});

describe('the unread VAD response at the model\'s own price', () => {
  // A deployment with a larger output limit than the last-resort model's 4,096.
  const BIG = { prices: { 'big-rt': { extends: 'gpt-realtime', maxOutputTokens: 20_000 } } };

  it('a create sent while the turn\'s response is due counts the session model\'s output limit', () => {
    const s = setup(BIG);
    const { f } = session(s, CAPPED, 'big-rt');
    server(f, committed('item_t'));
    // Its 20,000 tokens, the turn's audio item (8 + 8 of framing), the response's item (8); 8 of prompt, 1 out.
    expect(probe(s, f, { conversation: 'none' }).tokens).toBe(20_000 + 16 + 8 + 8 + 1);
  });

  it('the close bills it at the session model\'s output limit', () => {
    const s = setup(BIG);
    const { f } = session(s, null, 'big-rt');
    server(f, committed('item_t'));
    close(f);
    expect(responses(s)).toEqual(UNREAD);
    // 20,000 tokens out at $16/M (text) at least.
    expect(s.records[0]!.costNanos).toBeGreaterThanOrEqual(20_000 * 16_000);
  });

  it('no model known (no price looked up): the close bills it at the last-resort model, nothing thrown', () => {
    const s = setup();
    const { f } = session(s, null, '');
    server(f, committed('item_t'));
    close(f);
    expect(s.records.filter((r) => r.source === 'response').map((r) => r.ref)).toEqual(['vad:unread-response']);
  });

  it('the session\'s output limit unknown (no session read): billed at the model\'s whole output', () => {
    const s = setup();
    const { f } = session(s);
    server(f, committed('item_t'));
    close(f);
    expect(responses(s)).toEqual(UNREAD);
    expect(s.records[0]!.costNanos).toBeGreaterThanOrEqual(4096 * 16_000);
  });

  it('the session\'s known MCP lists count once (they are in the conversation), as a create reading it counts them', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, vadSession({ tools: [mcpTool('kb')], max_output_tokens: 1 }));
    server(f, listDone('item_list', 'kb', 4000));
    const before = probe(s, f, {});
    server(f, committed('item_t'));
    close(f);
    expect(responses(s)).toEqual(UNREAD);
    // The turn's audio item adds its framing (as audio); the 4,000-byte list read twice would add ~$0.016.
    expect(s.records.find((r) => r.ref === 'vad:unread-response')!.costNanos).toBeLessThan(before.nanos + 100 * 32_000);
  });
});

describe('MCP listings not done yet', () => {
  it('listings of 256 servers are kept; the 257th one failing tells nothing (its list stays unknown)', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    for (let i = 0; i <= 256; i++) server(f, { type: 'conversation.item.added', previous_item_id: null, item: { id: `item_l${i}`, type: 'mcp_list_tools', server_label: `s${i}`, tools: [] } });
    server(f, { type: 'mcp_list_tools.failed', item_id: 'item_l255' });
    server(f, { type: 'mcp_list_tools.failed', item_id: 'item_l256' });
    const own = (label: string) => ({ conversation: 'none', input: [], tools: [mcpTool(label)] });
    expect(probe(s, f, own('s255')).tokens).toBeLessThan(1000);
    expect(probe(s, f, own('s256')).tokens).toBe(WINDOW + 1);
  });
});

describe('a failed listing the proxy never saw added', () => {
  it('lists nothing and keeps no place among the 256 lists kept', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [] }));
    server(f, { type: 'mcp_list_tools.failed', item_id: 'item_never_added' });
    for (let i = 0; i < 256; i++) server(f, listDone(`item_l${i}`, `s${i}`, 1));
    expect(probe(s, f, { conversation: 'none', input: [], tools: [mcpTool('s255')] }).tokens).toBeLessThan(1000);
  });
});

describe('MCP listings among other items added', () => {
  it('256 messages added before a listing do not use up the listings kept: the listing that failed still lists nothing', () => {
    const s = setup();
    const { f } = session(s, CAPPED);
    server(f, textSession({ tools: [mcpTool('kb')] }));
    for (let i = 0; i < 256; i++) server(f, { type: 'conversation.item.added', previous_item_id: null, item: { id: `item_m${i}`, type: 'message', role: 'user', content: [] } });
    server(f, { type: 'conversation.item.added', previous_item_id: null, item: { id: 'item_l', type: 'mcp_list_tools', server_label: 'kb', tools: [] } });
    expect(probe(s, f, {}).tokens).toBe(WINDOW + 1);
    server(f, { type: 'mcp_list_tools.failed', item_id: 'item_l' });
    expect(probe(s, f, {}).tokens).toBeLessThan(5000);
  });
});

describe('a response.done for a response the proxy never saw start', () => {
  it('is billed from its usage; nothing thrown', () => {
    const s = setup();
    const { f } = session(s);
    server(f, textSession());
    expect(server(f, done('resp_unseen', usage(10, 0, 5, 0), 'completed', { output_modalities: ['text'], output: [] })).kind).toBe('continue');
    expect(s.records.map((r) => [r.ref, r.settledBy])).toEqual([['resp_unseen', 'response.done']]);
  });
});

describe('the client gone with audio in the input buffer', () => {
  const SECOND = 48_000;
  const append = (bytes: number) => ({ type: 'input_audio_buffer.append', audio: Buffer.alloc(bytes).toString('base64') });

  it('an error about another event while the clear is on its way: still awaited', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    client(f, append(SECOND));
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
    server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'no', event_id: 'event_other' } });
    expect(f.awaitingUpstream!()).toBe(true);
  });

  it('exactly a turn\'s least audio (100 ms by the estimate\'s bound): the clear is sent; 20 ms less, nothing', () => {
    // The append's wire bytes (its JSON, 47 + 6,352 base64 characters) are the bound: ceil(6,399 × 3 / 4 / 48) = 100 ms.
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    client(f, append(4_764));
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
    const t = setup();
    const b = session(t);
    server(b.f, vadSession());
    client(b.f, append(4_764 - 960));
    b.f.onClientGone!();
    expect(b.ctx.upstream).toEqual([]);
  });

  it('speech heard, less than a turn\'s audio appended since: the clear is sent all the same', () => {
    const s = setup();
    const { ctx, f } = session(s);
    server(f, vadSession());
    client(f, append(960));
    server(f, { type: 'input_audio_buffer.speech_started', item_id: 'item_1', audio_start_ms: 0 });
    f.onClientGone!();
    expect(ctx.upstream.map((e) => e.type)).toEqual(['input_audio_buffer.clear']);
  });
});
